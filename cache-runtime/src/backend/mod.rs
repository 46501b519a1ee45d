//! Where encoded values live: the [`Backend`] trait and its implementations.

use crate::BackendError;
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// `d` in whole milliseconds, saturating (Redis takes `PX`, `BLOCK`, idle
/// times in milliseconds).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) mod glob;
pub(crate) mod memory;
pub(crate) mod redis;

/// How long a tag's new version is kept after an invalidation. A
/// `#[cached]` call whose lookup and body together take longer than this
/// does not store its (tagged) result: a version older than the window may
/// have been forgotten, and the result could predate an invalidation.
pub const TAG_VERSION_WINDOW: Duration = Duration::from_secs(3600);

/// What [`Backend::get_tagged`] finds: the value, if any, and each tag's
/// version.
pub type TaggedLookup = (Option<Bytes>, Vec<u64>);

/// A boxed, sendable future, as returned by [`Backend`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Storage for encoded values under full keys (prefix included).
///
/// The runtime applies the command deadline, the envelope, the codec, the
/// statistics and fail-open around these methods; a backend only moves bytes.
/// Patterns use Redis glob syntax (`*`, `?`, `[a-z]`, `\` escapes).
///
/// ```
/// use cache_runtime::{Backend, BackendError, BoxFuture, Cache};
/// use bytes::Bytes;
/// use std::time::Duration;
///
/// /// A backend that never stores anything.
/// #[derive(Debug)]
/// struct Nothing;
///
/// impl Backend for Nothing {
///     fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
///         Box::pin(async { Ok(None) })
///     }
///     fn set<'a>(&'a self, _key: &'a str, _value: Bytes, _ttl: Duration) -> BoxFuture<'a, Result<(), BackendError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
///         Box::pin(async { Ok(false) })
///     }
///     fn exists<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
///         Box::pin(async { Ok(false) })
///     }
///     fn clear_pattern<'a>(&'a self, _pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
///         Box::pin(async { Ok(0) })
///     }
///     fn kind(&self) -> &'static str { "nothing" }
/// }
///
/// let cache = Cache::builder().backend(Nothing).build().unwrap();
/// # drop(cache);
/// ```
pub trait Backend: fmt::Debug + Send + Sync + 'static {
    /// The bytes stored at `key`, or `None`.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>>;
    /// Stores `value` at `key` for `ttl` (never zero).
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Stores `value` at `key` for `ttl` only if `key` holds nothing;
    /// `true` if it stored. A read-through writes this way, so that a value
    /// written meanwhile (by a write-through, or another process) is kept.
    ///
    /// The default checks and writes in two steps (not atomic); a backend
    /// that can do better should.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            if self.exists(key).await? {
                return Ok(false);
            }
            self.set(key, value, ttl).await.map(|()| true)
        })
    }
    /// Removes `key`; `true` if it was present.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;
    /// Whether `key` is present.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;
    /// Removes every key matching the glob `pattern`, incrementally (never
    /// blocking the store on a large keyspace); returns how many were removed.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error; keys removed
    /// before the failure stay removed.
    fn clear_pattern<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>>;
    /// Like [`get`](Backend::get), and also each tag's current version (in
    /// the order of `tags`; `0` for a tag never invalidated), read at the
    /// same moment. `tags` are tag keys, `{prefix}:__tag:{tag}`, under which
    /// the backend keeps its bookkeeping.
    ///
    /// The default answers [`BackendError::Unsupported`]: a backend that
    /// cannot keep tags makes tagged calls fail open.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, answers with an error, or keeps no tags.
    fn get_tagged<'a>(
        &'a self,
        key: &'a str,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<TaggedLookup, BackendError>> {
        let _ = (key, tags);
        Box::pin(async { Err(BackendError::Unsupported("tags")) })
    }
    /// Stores `value` at `key` for `ttl` and records `key` under each of
    /// `tags`, in one atomic step. With `expected` (versions from
    /// [`get_tagged`](Backend::get_tagged)), stores nothing and returns
    /// `false` if any tag was invalidated since: the value was computed
    /// before that invalidation and must not outlive it. With `if_absent`,
    /// also stores nothing (`false`) if `key` holds a value, as
    /// [`set_if_absent`](Backend::set_if_absent).
    ///
    /// Bookkeeping must not outlive the entries it records: a tag's record
    /// of a key may last as long as the entry, and a tag's version at least
    /// [`TAG_VERSION_WINDOW`] after the invalidation that set it.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, answers with an error, or keeps no tags.
    fn set_tagged<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
        tags: &'a [String],
        expected: Option<&'a [u64]>,
        if_absent: bool,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let _ = (key, value, ttl, tags, expected, if_absent);
        Box::pin(async { Err(BackendError::Unsupported("tags")) })
    }
    /// Gives each of `tags` a new version (so writes computed before now are
    /// refused), then removes every entry recorded under them and the record
    /// itself; returns how many entries were removed. Must work in bounded
    /// steps on a large tag.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, answers with an error, or keeps no
    /// tags; entries removed before the failure stay removed.
    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        let _ = tags;
        Box::pin(async { Err(BackendError::Unsupported("tags")) })
    }
    /// A short name: `"redis"`, `"memory"`, ...
    fn kind(&self) -> &'static str;
    /// Whether every operation completes in-process without I/O, so the
    /// runtime need not arm a deadline timer around it.
    fn is_local(&self) -> bool {
        false
    }
}

/// A fresh tag version in `[2^52, 2^53)`, for every backend that keeps
/// tags: random, so a version forgotten after [`TAG_VERSION_WINDOW`] and set
/// again does not repeat an old one.
pub(crate) fn new_version() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (1 << 52) | (h.finish() & ((1 << 52) - 1))
}

/// How a write goes in: under `tags` (none for an untagged write), refused
/// if a tag's version differs from `expected`, and only into an empty key
/// with `if_absent`. See [`Backend::set_tagged`].
#[derive(Clone, Copy)]
pub(crate) struct TaggedWrite<'a> {
    pub(crate) tags: &'a [String],
    pub(crate) expected: Option<&'a [u64]>,
    pub(crate) if_absent: bool,
}

/// The store behind a cache: the built-in backends dispatched statically (no
/// boxed future per command), a user's backend through the trait.
pub(crate) enum Store {
    Memory(memory::MemoryBackend),
    Redis(Box<redis::RedisBackend>),
    Custom(Arc<dyn Backend>),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Memory(m) => m.fmt(f),
            Store::Redis(r) => r.fmt(f),
            Store::Custom(c) => c.fmt(f),
        }
    }
}

impl Store {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
            Store::Custom(c) => c.kind(),
        }
    }

    /// The Redis backend, if that is what this is.
    pub(crate) fn redis(&self) -> Option<&redis::RedisBackend> {
        match self {
            Store::Redis(r) => Some(r),
            _ => None,
        }
    }

    /// Whether commands complete in-process, so no deadline timer is needed.
    pub(crate) fn is_local(&self) -> bool {
        match self {
            Store::Memory(_) => true,
            Store::Redis(_) => false,
            Store::Custom(c) => c.is_local(),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        match self {
            Store::Memory(m) => Ok(m.get(key)),
            Store::Redis(r) => r.get(key).await,
            Store::Custom(c) => c.get(key).await,
        }
    }

    /// Stores `bytes`; the memory store also keeps `typed`, a decoded copy.
    pub(crate) async fn set(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<memory::TypedValue>,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        match self {
            Store::Memory(m) => {
                m.set(key, bytes, typed, ttl);
                Ok(())
            }
            Store::Redis(r) => r.set(key, &bytes, ttl).await,
            Store::Custom(c) => c.set(key, bytes, ttl).await,
        }
    }

    /// As [`set`](Store::set), only if `key` holds nothing; `true` if stored.
    pub(crate) async fn set_if_absent(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<memory::TypedValue>,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        match self {
            Store::Memory(m) => Ok(m.set_if_absent(key, bytes, typed, ttl)),
            Store::Redis(r) => r.set_if_absent(key, &bytes, ttl).await,
            Store::Custom(c) => c.set_if_absent(key, bytes, ttl).await,
        }
    }

    /// The write of a read-through or a write-through, as `how` says: a
    /// tagged write when it names tags, else a plain or an if-absent one;
    /// `true` if stored.
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<memory::TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        match (self, how.tags.is_empty(), how.if_absent) {
            (Store::Memory(m), ..) => Ok(m.write(key, bytes, typed, ttl, how)),
            (_, false, _) => self.set_tagged(key, bytes, typed, ttl, how).await,
            (_, true, true) => self.set_if_absent(key, bytes, typed, ttl).await,
            (_, true, false) => self.set(key, bytes, typed, ttl).await.map(|()| true),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        match self {
            Store::Memory(m) => Ok(m.delete(key)),
            Store::Redis(r) => r.delete(key).await,
            Store::Custom(c) => c.delete(key).await,
        }
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        match self {
            Store::Memory(m) => Ok(m.exists(key)),
            Store::Redis(r) => r.exists(key).await,
            Store::Custom(c) => c.exists(key).await,
        }
    }

    pub(crate) async fn clear_pattern(&self, pattern: &str) -> Result<u64, BackendError> {
        match self {
            Store::Memory(m) => Ok(m.clear_pattern(pattern)),
            Store::Redis(r) => r.clear_pattern(pattern).await,
            Store::Custom(c) => c.clear_pattern(pattern).await,
        }
    }

    pub(crate) async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
    ) -> Result<(Option<Bytes>, Vec<u64>), BackendError> {
        match self {
            Store::Memory(m) => Ok(m.get_tagged(key, tags)),
            Store::Redis(r) => r.get_tagged(key, tags).await,
            Store::Custom(c) => c.get_tagged(key, tags).await,
        }
    }

    pub(crate) async fn set_tagged(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<memory::TypedValue>,
        ttl: Duration,
        cond: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        let TaggedWrite {
            tags,
            expected,
            if_absent,
        } = cond;
        match self {
            Store::Memory(m) => Ok(m.set_tagged(key, bytes, typed, ttl, cond)),
            Store::Redis(r) => {
                r.set_tagged(key, &bytes, ttl, tags, expected, if_absent)
                    .await
            }
            Store::Custom(c) => {
                c.set_tagged(key, bytes, ttl, tags, expected, if_absent)
                    .await
            }
        }
    }

    pub(crate) async fn invalidate_tags(&self, tags: &[String]) -> Result<u64, BackendError> {
        match self {
            Store::Memory(m) => Ok(m.invalidate_tags(tags)),
            Store::Redis(r) => r.invalidate_tags(tags).await,
            Store::Custom(c) => c.invalidate_tags(tags).await,
        }
    }
}
