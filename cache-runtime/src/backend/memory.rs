//! The embedded in-process store, on `moka`.

use super::{glob, WriteKind};
use bytes::Bytes;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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
    /// Identifies this write, so that a tag forgets a key only when the
    /// entry it recorded goes, not when a newer one replaces it.
    serial: u64,
    /// The tags this entry is recorded under (usually none).
    tags: Box<[String]>,
}

impl Entry {
    fn new(
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        serial: u64,
        tags: Box<[String]>,
    ) -> Entry {
        let cell = OnceLock::new();
        if let Some(typed) = typed {
            let _ = cell.set(typed);
        }
        Entry {
            bytes,
            typed: cell,
            ttl,
            serial,
            tags,
        }
    }
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
    serial: AtomicU64,
    tags: Mutex<HashMap<String, TagIndex>>,
    /// Tagged entries that moka evicted, expired, replaced or removed, for
    /// the tag index to forget at its next use. The eviction listener only
    /// pushes here: it may run inside a moka call made while `tags` is held.
    gone: Arc<Mutex<Vec<Gone>>>,
}

/// What a tag knows: its version, and the entries recorded under it.
#[derive(Default)]
struct TagIndex {
    version: u64,
    /// When `version` was set; the index is kept at least
    /// `TAG_VERSION_WINDOW` after that.
    bumped: Option<Instant>,
    /// Key to the serial of the entry recorded.
    keys: HashMap<String, u64>,
}

impl TagIndex {
    fn disposable(&self, now: Instant) -> bool {
        self.keys.is_empty()
            && self
                .bumped
                .is_none_or(|at| now.duration_since(at) >= super::TAG_VERSION_WINDOW)
    }
}

struct Gone {
    key: String,
    serial: u64,
    tags: Box<[String]>,
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
        let gone: Arc<Mutex<Vec<Gone>>> = Arc::default();
        let listener_gone = Arc::clone(&gone);
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &String, v: &Arc<Entry>| {
                let tags: usize = v.tags.iter().map(String::len).sum();
                u32::try_from(k.len() + v.bytes.len() + tags).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |key: Arc<String>, entry: Arc<Entry>, _cause| {
                if !entry.tags.is_empty() {
                    lock(&listener_gone).push(Gone {
                        key: String::clone(&key),
                        serial: entry.serial,
                        tags: entry.tags.clone(),
                    });
                }
            })
            .build();
        MemoryBackend {
            entries,
            capacity: capacity_bytes,
            serial: AtomicU64::new(1),
            tags: Mutex::default(),
            gone,
        }
    }

    /// The tag index, with entries that have gone since forgotten.
    fn tags(&self) -> MutexGuard<'_, HashMap<String, TagIndex>> {
        let mut tags = lock(&self.tags);
        let gone = std::mem::take(&mut *lock(&self.gone));
        let now = Instant::now();
        for g in gone {
            for tag in g.tags.iter() {
                if let Some(index) = tags.get_mut(tag) {
                    if index.keys.get(&g.key) == Some(&g.serial) {
                        index.keys.remove(&g.key);
                    }
                    if index.disposable(now) {
                        tags.remove(tag);
                    }
                }
            }
        }
        tags
    }

    pub(crate) fn get_tagged(&self, key: &str, tags: &[String]) -> (Option<Bytes>, Vec<u64>) {
        let index = self.tags();
        let versions = tags
            .iter()
            .map(|t| index.get(t).map_or(0, |i| i.version))
            .collect();
        (self.get(key), versions)
    }

    pub(crate) fn set_tagged(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        cond: super::TaggedWrite<'_>,
    ) -> bool {
        let super::TaggedWrite {
            tags,
            expected,
            condition,
        } = cond;
        // Held across the insert: an invalidation cannot slip between the
        // version check and the write.
        let mut index = self.tags();
        if !condition.admits(self.get(key).as_deref()) {
            return false;
        }
        if let Some(expected) = expected {
            let current = tags.iter().map(|t| index.get(t).map_or(0, |i| i.version));
            if !current.eq(expected.iter().copied()) {
                return false;
            }
        }
        let serial = self.insert(key, bytes, typed, ttl, tags.into());
        for tag in tags {
            index
                .entry(tag.clone())
                .or_default()
                .keys
                .insert(key.to_owned(), serial);
        }
        true
    }

    pub(crate) fn invalidate_tags(&self, tags: &[String]) -> u64 {
        let mut index = self.tags();
        let now = Instant::now();
        let mut removed = 0;
        for tag in tags {
            let entry = index.entry(tag.clone()).or_default();
            entry.version = super::new_version();
            entry.bumped = Some(now);
            for (key, serial) in std::mem::take(&mut entry.keys) {
                let current = self.entries.get(&key).map(|e| e.serial);
                if current == Some(serial) && self.entries.remove(&key).is_some() {
                    removed += 1;
                }
            }
        }
        // Also drop indexes left empty whose version window has passed.
        index.retain(|_, i| !i.disposable(now));
        removed
    }

    pub(crate) fn entry(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        self.entries.get(key).map(|e| e.bytes.clone())
    }

    /// A write as `how` says, in-process; `true` if stored.
    pub(crate) fn write(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        how: super::TaggedWrite<'_>,
    ) -> bool {
        match how.kind() {
            WriteKind::Tagged => self.set_tagged(key, bytes, typed, ttl, how),
            WriteKind::IfAbsent => self.set_if_absent(key, bytes, typed, ttl),
            WriteKind::IfHolds => self.set_if(key, how.condition, bytes, typed, ttl),
            WriteKind::Plain => {
                self.set(key, bytes, typed, ttl);
                true
            }
        }
    }

    pub(crate) fn set(&self, key: &str, bytes: Bytes, typed: Option<TypedValue>, ttl: Duration) {
        self.insert(key, bytes, typed, ttl, Box::default());
    }

    pub(crate) fn set_if_absent(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
    ) -> bool {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        self.entries
            .entry_by_ref(key)
            .or_insert_with(|| Arc::new(Entry::new(bytes, typed, ttl, serial, Box::default())))
            .is_fresh()
    }

    /// Compare-and-set, atomic for this key.
    pub(crate) fn set_if(
        &self,
        key: &str,
        condition: super::Condition<'_>,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
    ) -> bool {
        use moka::ops::compute::Op;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let result = self
            .entries
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(entry) if condition.admits(Some(&entry.value().bytes)) => Op::Put(Arc::new(
                    Entry::new(bytes, typed, ttl, serial, Box::default()),
                )),
                _ => Op::Nop,
            });
        matches!(result, moka::ops::compute::CompResult::ReplacedWith(_))
    }

    fn insert(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        tags: Box<[String]>,
    ) -> u64 {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let entry = Entry::new(bytes, typed, ttl, serial, tags);
        self.entries.insert(key.to_owned(), Arc::new(entry));
        serial
    }

    /// Removes every entry (an L1 flush; no tags are kept there).
    /// Entries held and the bytes they weigh, after moka's pending
    /// maintenance (once a second, for the L1 gauges).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn size(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
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
impl MemoryBackend {
    pub(crate) fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }

    /// How many tags have a record, after forgetting gone entries.
    pub(crate) fn tag_count(&self) -> usize {
        self.tags().len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
