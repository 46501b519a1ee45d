//! The embedded in-process store, on `moka`.

use super::{glob, Backend, BoxFuture};
use crate::BackendError;
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

/// Expires each entry after its own TTL.
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Encoded values in process memory, bounded by total bytes (keys plus
/// values), evicting by moka's TinyLFU policy, each entry expiring after its
/// TTL.
pub(crate) struct MemoryBackend {
    entries: moka::sync::Cache<String, Entry>,
    capacity: u64,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("capacity_bytes", &self.capacity)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryBackend {
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend {
            entries,
            capacity: capacity_bytes,
        }
    }
}

impl Backend for MemoryBackend {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        let found = self.entries.get(key).map(|e| e.value);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.entries.insert(key.to_owned(), Entry { value, ttl });
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        let removed = self.entries.remove(key).is_some();
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        let present = self.entries.contains_key(key);
        Box::pin(std::future::ready(Ok(present)))
    }

    fn clear_pattern<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
        let mut removed = 0;
        for (key, _) in self.entries.iter() {
            if glob::matches(pattern.as_bytes(), key.as_bytes())
                && self.entries.remove(key.as_str()).is_some()
            {
                removed += 1;
            }
        }
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let store = MemoryBackend::new(1 << 20);
        store
            .set("short", Bytes::from_static(b"s"), Duration::from_millis(30))
            .await
            .unwrap();
        store
            .set("long", Bytes::from_static(b"l"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.exists("short").await.unwrap());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(store.get("short").await.unwrap(), None, "expired");
        assert!(!store.exists("short").await.unwrap());
        assert_eq!(store.get("long").await.unwrap().as_deref(), Some(&b"l"[..]));
    }

    #[tokio::test]
    async fn total_size_stays_within_the_bound() {
        let capacity = 64 * 1024;
        let store = MemoryBackend::new(capacity);
        let value = Bytes::from(vec![7u8; 1024]);
        for i in 0..1000 {
            store
                .set(&format!("k{i}"), value.clone(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        store.entries.run_pending_tasks();
        let size = store.entries.weighted_size();
        assert!(size <= capacity, "{size} bytes held, bound {capacity}");
        assert!(
            store.entries.entry_count() < 1000,
            "some entries were evicted"
        );
    }
}
