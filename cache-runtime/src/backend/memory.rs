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
            .weigher(|k: &String, v: &Entry| u32::try_from(k.len() + v.value.len()).unwrap_or(u32::MAX))
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

    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> BoxFuture<'a, Result<(), BackendError>> {
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
            if glob::matches(pattern.as_bytes(), key.as_bytes()) && self.entries.remove(key.as_str()).is_some() {
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
