//! The embedded in-process store, on `moka`.

use super::glob;
use bytes::Bytes;
use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A decoded value kept beside its bytes, so a hit through `#[cached]` can
/// hand out a clone instead of decoding.
pub(crate) type TypedValue = Box<dyn Any + Send + Sync>;

pub(crate) struct Entry {
    pub(crate) bytes: Bytes,
    /// Set when the value is stored through `#[cached]`, or on its first
    /// `#[cached]` hit after a `Cache::set`.
    pub(crate) typed: OnceLock<TypedValue>,
    ttl: Duration,
}

/// Expires each entry after its own TTL.
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Values in process memory, bounded by total encoded size (keys plus
/// values), evicting by moka's TinyLFU policy, each entry expiring after its
/// TTL. Every operation completes synchronously.
pub(crate) struct MemoryBackend {
    entries: moka::sync::Cache<String, Arc<Entry>>,
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
            .weigher(|k: &String, v: &Arc<Entry>| {
                u32::try_from(k.len() + v.bytes.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend {
            entries,
            capacity: capacity_bytes,
        }
    }

    pub(crate) fn entry(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        self.entries.get(key).map(|e| e.bytes.clone())
    }

    pub(crate) fn set(&self, key: &str, bytes: Bytes, typed: Option<TypedValue>, ttl: Duration) {
        let cell = OnceLock::new();
        if let Some(typed) = typed {
            let _ = cell.set(typed);
        }
        let entry = Entry {
            bytes,
            typed: cell,
            ttl,
        };
        self.entries.insert(key.to_owned(), Arc::new(entry));
    }

    pub(crate) fn delete(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    pub(crate) fn exists(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub(crate) fn clear_pattern(&self, pattern: &str) -> u64 {
        let mut removed = 0;
        for (key, _) in self.entries.iter() {
            if glob::matches(pattern.as_bytes(), key.as_bytes())
                && self.entries.remove(key.as_str()).is_some()
            {
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let store = MemoryBackend::new(1 << 20);
        store.set(
            "short",
            Bytes::from_static(b"s"),
            None,
            Duration::from_millis(30),
        );
        store.set(
            "long",
            Bytes::from_static(b"l"),
            None,
            Duration::from_secs(60),
        );
        assert!(store.exists("short"));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(store.get("short"), None, "expired");
        assert!(!store.exists("short"));
        assert_eq!(store.get("long").as_deref(), Some(&b"l"[..]));
    }

    #[test]
    fn total_size_stays_within_the_bound() {
        let capacity = 64 * 1024;
        let store = MemoryBackend::new(capacity);
        let value = Bytes::from(vec![7u8; 1024]);
        for i in 0..1000 {
            store.set(
                &format!("k{i}"),
                value.clone(),
                None,
                Duration::from_secs(60),
            );
        }
        store.entries.run_pending_tasks();
        let size = store.entries.weighted_size();
        assert!(size <= capacity, "{size} bytes held, bound {capacity}");
        assert!(
            store.entries.entry_count() < 1000,
            "some entries were evicted"
        );
    }

    #[test]
    fn typed_values_ride_along() {
        let store = MemoryBackend::new(1 << 20);
        store.set(
            "k",
            Bytes::from_static(b"x"),
            Some(Box::new(42u32)),
            Duration::from_secs(9),
        );
        let entry = store.entry("k").unwrap();
        assert_eq!(
            entry.typed.get().and_then(|t| t.downcast_ref::<u32>()),
            Some(&42)
        );
        assert_eq!(
            entry.typed.get().and_then(|t| t.downcast_ref::<u64>()),
            None
        );
    }
}
