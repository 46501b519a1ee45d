//! Where encoded values live: the [`Backend`] trait and its implementations.

use crate::BackendError;
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// `d` in whole milliseconds, saturating (Redis takes `PX`, `BLOCK`, idle
/// times in milliseconds).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) mod cluster;
pub(crate) mod glob;
pub(crate) mod memory;
pub(crate) mod redis;
mod tier;

pub(crate) use self::redis::OwnClient;
pub(crate) use tier::{Caps, Custom, Store, Tier, Walk};

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
    /// Stores `value` at `key` for `ttl` if the key's current value meets
    /// `condition`; `true` if it stored.
    ///
    /// The default handles [`Condition::Always`] and [`Condition::Absent`]
    /// with [`set`](Backend::set) and [`set_if_absent`](Backend::set_if_absent),
    /// and answers [`BackendError::Unsupported`] for [`Condition::Holds`]
    /// and [`Condition::StartsWith`]. A
    /// backend that declares [`compare_and_set`](Capabilities::compare_and_set)
    /// implements this, [`expire_if`](Backend::expire_if) and
    /// [`delete_if`](Backend::delete_if), each in one atomic step: the
    /// cross-process fill lock is built on them.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or answers with an error.
    fn set_if<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
        condition: Condition<'a>,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        match condition {
            Condition::Always => {
                Box::pin(async move { self.set(key, value, ttl).await.map(|()| true) })
            }
            Condition::Absent => self.set_if_absent(key, value, ttl),
            Condition::Holds(_) | Condition::StartsWith(_) => {
                Box::pin(async { Err(BackendError::Unsupported("compare-and-set")) })
            }
        }
    }
    /// Gives `key` a new `ttl` if it holds exactly `expected`; `true` if it did.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, answers with an error, or has no
    /// compare-and-set (the default).
    fn expire_if<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let _ = (key, expected, ttl);
        Box::pin(async { Err(BackendError::Unsupported("compare-and-set")) })
    }
    /// Removes `key` if it holds exactly `expected`; `true` if it did.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, answers with an error, or has no
    /// compare-and-set (the default).
    fn delete_if<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let _ = (key, expected);
        Box::pin(async { Err(BackendError::Unsupported("compare-and-set")) })
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
    /// cannot keep tags makes tagged calls fail open. The runtime calls the
    /// tag methods only on a backend whose [`capabilities`](Backend::capabilities)
    /// declare [`tags`](Capabilities::tags): implement them and declare it.
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
    /// before that invalidation and must not outlive it. It also stores
    /// nothing (`false`) unless `key`'s current value meets `condition`, as
    /// in [`set_if`](Backend::set_if).
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
        condition: Condition<'a>,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let _ = (key, value, ttl, tags, expected, condition);
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
    /// What this backend does beyond the required methods (default: none).
    /// The runtime relies on what is declared here: a tagged call on a
    /// backend that declares no tags runs uncached without asking it.
    ///
    /// ```
    /// use cache_runtime::Capabilities;
    /// let caps = Capabilities::NONE.with_tags().with_atomic_set_if_absent();
    /// assert!(caps.tags && caps.atomic_set_if_absent && !caps.compare_and_set);
    /// ```
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }
    /// Whether every operation completes in-process without I/O, so the
    /// runtime need not arm a deadline timer around it.
    fn is_local(&self) -> bool {
        false
    }
}

/// What a [`Backend`] can do beyond the required methods, from
/// [`Backend::capabilities`].
///
/// ```
/// use cache_runtime::Capabilities;
/// assert!(!Capabilities::NONE.tags);
/// assert!(Capabilities::NONE.with_tags().tags);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`get_tagged`](Backend::get_tagged), [`set_tagged`](Backend::set_tagged)
    /// and [`invalidate_tags`](Backend::invalidate_tags) are implemented.
    pub tags: bool,
    /// [`set_if_absent`](Backend::set_if_absent) checks and writes in one
    /// atomic step.
    pub atomic_set_if_absent: bool,
    /// [`set_if`](Backend::set_if) with [`Condition::Holds`],
    /// [`expire_if`](Backend::expire_if) and [`delete_if`](Backend::delete_if)
    /// are implemented, each atomic: the fill lock can be held in this store.
    pub compare_and_set: bool,
}

impl Capabilities {
    /// Nothing beyond the required methods.
    ///
    /// ```
    /// assert_eq!(cache_runtime::Capabilities::NONE, Default::default());
    /// ```
    pub const NONE: Capabilities = Capabilities {
        tags: false,
        atomic_set_if_absent: false,
        compare_and_set: false,
    };

    /// Also tags.
    ///
    /// ```
    /// assert!(cache_runtime::Capabilities::NONE.with_tags().tags);
    /// ```
    #[must_use]
    pub const fn with_tags(self) -> Self {
        Capabilities { tags: true, ..self }
    }

    /// Also an atomic set-if-absent.
    ///
    /// ```
    /// assert!(cache_runtime::Capabilities::NONE.with_atomic_set_if_absent().atomic_set_if_absent);
    /// ```
    #[must_use]
    pub const fn with_atomic_set_if_absent(self) -> Self {
        Capabilities {
            atomic_set_if_absent: true,
            ..self
        }
    }
}

impl Capabilities {
    /// Also compare-and-set ([`Backend::set_if`] with [`Condition::Holds`],
    /// [`Backend::expire_if`], [`Backend::delete_if`]).
    ///
    /// ```
    /// assert!(cache_runtime::Capabilities::NONE.with_compare_and_set().compare_and_set);
    /// ```
    #[must_use]
    pub const fn with_compare_and_set(self) -> Self {
        Capabilities {
            compare_and_set: true,
            ..self
        }
    }
}

/// What a conditional write ([`Backend::set_if`], [`Backend::set_tagged`])
/// requires of the key's current value.
///
/// ```
/// use cache_runtime::Condition;
/// let token = b"lock:1234";
/// assert_ne!(Condition::Holds(token), Condition::Absent);
/// assert!(Condition::Holds(token).admits(Some(&token[..])));
/// assert!(!Condition::Absent.admits(Some(&b"v"[..])));
/// assert!(Condition::Always.admits(Some(&b"v"[..])));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition<'a> {
    /// None: the write replaces whatever is there.
    Always,
    /// The key holds nothing.
    Absent,
    /// The key holds exactly these bytes (compare-and-set).
    Holds(&'a [u8]),
    /// The key holds a value that starts with these bytes: a background
    /// refresh replaces the value it read (its envelope's header names it),
    /// never a newer one, and never writes into a key removed meanwhile.
    StartsWith(&'a [u8]),
}

impl Condition<'_> {
    /// Whether a key holding `current` (`None`: nothing) meets the condition.
    ///
    /// ```
    /// assert!(cache_runtime::Condition::Absent.admits(None));
    /// ```
    #[must_use]
    pub fn admits(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Condition::Always, _) | (Condition::Absent, None) => true,
            (Condition::Absent, Some(_))
            | (Condition::Holds(_) | Condition::StartsWith(_), None) => false,
            (Condition::Holds(expected), Some(current)) => *expected == current,
            (Condition::StartsWith(start), Some(current)) => current.starts_with(start),
        }
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
/// if a tag's version differs from `expected`, and only if the key's value
/// meets `condition`. See [`Backend::set_tagged`].
#[derive(Clone, Copy)]
pub(crate) struct TaggedWrite<'a> {
    pub(crate) tags: &'a [String],
    pub(crate) expected: Option<&'a [u64]>,
    pub(crate) condition: Condition<'a>,
}

/// Which command a [`TaggedWrite`] is, for every tier alike.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Under tags (and maybe checked against versions, maybe if absent).
    Tagged,
    /// Untagged, only into an empty key.
    IfAbsent,
    /// Untagged, only over the given bytes (the fill lock's placeholder), or
    /// a value starting with them (a refresh).
    IfHolds,
    /// Untagged, replacing what is there.
    Plain,
}

impl TaggedWrite<'_> {
    /// The one rule every tier dispatches a write by.
    pub(crate) fn kind(&self) -> WriteKind {
        match (self.tags.is_empty(), self.condition) {
            (false, _) => WriteKind::Tagged,
            (true, Condition::Absent) => WriteKind::IfAbsent,
            (true, Condition::Holds(_) | Condition::StartsWith(_)) => WriteKind::IfHolds,
            (true, Condition::Always) => WriteKind::Plain,
        }
    }
}

impl<'a> TaggedWrite<'a> {
    /// A read-through's write without tags.
    pub(crate) fn untagged(condition: Condition<'a>) -> Self {
        TaggedWrite {
            tags: &[],
            expected: None,
            condition,
        }
    }
}

impl<'a> TaggedWrite<'a> {
    /// An unconditional write (direct API, write-through).
    pub(crate) fn put(tags: &'a [String]) -> Self {
        TaggedWrite {
            tags,
            expected: None,
            condition: Condition::Always,
        }
    }
}
