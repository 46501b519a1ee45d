//! A mock backend for unit-testing code that uses the cache, with no Redis.
//!
//! [`MockBackend`] stores values like a real backend (same envelope, same
//! codec), expires them on tokio's clock (so `tokio::time::pause()` and
//! `advance()` expire entries without sleeping), records every operation, and
//! fails or stalls on demand, so the fail-open and deadline paths run exactly
//! as they would against a misbehaving Redis.
//!
//! Enable it in your dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! cache-runtime = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```
//! use cache_runtime::cached;
//! use cache_runtime::testing::{MockBackend, Op};
//! use std::time::Duration;
//!
//! #[cached(ttl = 60, key = "product:{id}")]
//! async fn product_name(id: u64) -> Option<String> {
//!     Some(format!("product {id}")) // the database query
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mock = MockBackend::new();
//! let cache = mock.cache();
//! cache.scope(async {
//!     product_name(1).await; // miss, stored
//!     product_name(1).await; // hit
//! }).await;
//! assert_eq!(mock.operations(), [
//!     Op::Get { key: "product:1".into(), hit: false },
//!     Op::Set { key: "product:1".into(), ttl: Duration::from_secs(60) },
//!     Op::Get { key: "product:1".into(), hit: true },
//! ]);
//! assert_eq!(mock.get::<String>("product:1").as_deref(), Some("product 1"));
//!
//! mock.fail_all(true); // the cache is down: the function still answers
//! assert_eq!(cache.scope(product_name(2)).await.as_deref(), Some("product 2"));
//! # }
//! ```
//!
//! Keys in operations and in every method here are relative to the mock's
//! prefix (`"cache"` unless set with [`MockBackend::with_prefix`]), the same
//! key space as [`Cache::get`](crate::Cache::get) and `#[cached(key = ...)]`.

use crate::backend::{glob, Backend, BoxFuture, Condition};
use crate::builder::CacheBuilder;
use crate::codec::{Codec, CodecImpl};
use crate::{envelope, BackendError, Cache, Operation};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// One operation the cache performed on a [`MockBackend`], in order.
///
/// ```
/// use cache_runtime::testing::Op;
/// let op = Op::Get { key: "product:1".into(), hit: true };
/// assert_eq!(op.key(), "product:1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// A lookup; `hit` if a live entry was there (even one that then failed
    /// to decode).
    ///
    /// A stored `None` (`cache_none`, `none_ttl`) is an entry like any other:
    /// finding it is `hit: true`, the body does not run, and the cache counts
    /// it in [`Stats::none_hits`](crate::Stats::none_hits); a miss is
    /// `hit: false`. Its write is the [`Set`](Op::Set) with `none_ttl`:
    ///
    /// ```
    /// use cache_runtime::cached;
    /// use cache_runtime::testing::{MockBackend, Op};
    /// use std::time::Duration;
    ///
    /// #[cached(ttl = "1h", none_ttl = "30s", key = "user:{id}")]
    /// async fn find_user(id: u64) -> Option<String> {
    ///     None // not in the database
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mock = MockBackend::new();
    /// let cache = mock.cache();
    /// cache.scope(async {
    ///     find_user(9).await; // miss: the body runs, `None` is stored
    ///     find_user(9).await; // hit of the stored `None`
    /// }).await;
    /// assert_eq!(mock.operations(), [
    ///     Op::Get { key: "user:9".into(), hit: false },
    ///     Op::Set { key: "user:9".into(), ttl: Duration::from_secs(30) },
    ///     Op::Get { key: "user:9".into(), hit: true },
    /// ]);
    /// assert_eq!(mock.get::<Option<String>>("user:9"), Some(None)); // stored: a `None`
    /// assert_eq!(cache.stats().none_hits, 1);
    /// # }
    /// ```
    Get {
        /// The key, relative to the prefix.
        key: String,
        /// Whether a live entry was found.
        hit: bool,
    },
    /// A write with its TTL.
    Set {
        /// The key, relative to the prefix.
        key: String,
        /// The TTL asked for.
        ttl: Duration,
    },
    /// A removal.
    Delete {
        /// The key, relative to the prefix.
        key: String,
        /// Whether a live entry was removed.
        existed: bool,
    },
    /// A presence check.
    Exists {
        /// The key, relative to the prefix.
        key: String,
        /// Whether a live entry was there.
        present: bool,
    },
    /// A pattern removal.
    ClearPattern {
        /// The pattern, relative to the prefix.
        pattern: String,
        /// How many entries were removed.
        removed: u64,
    },
    /// A tagged write that was refused because one of its tags was
    /// invalidated after its lookup (the value predates the invalidation).
    SetRefused {
        /// The key, relative to the prefix.
        key: String,
    },
    /// A read-through write that found a value already there (written
    /// while the body ran) and kept it.
    SetKept {
        /// The key, relative to the prefix.
        key: String,
    },
    /// A tag invalidation.
    InvalidateTag {
        /// The tag.
        tag: String,
        /// How many entries were removed.
        removed: u64,
    },
    /// A fill lock taken or found taken (see
    /// [`CacheBuilder::fill_lock`](crate::CacheBuilder::fill_lock)): the
    /// key held nothing and now holds the lock's placeholder (`acquired`),
    /// or held something already.
    Lock {
        /// The entry's key, relative to the prefix.
        key: String,
        /// Whether this caller took the lock.
        acquired: bool,
    },
    /// A fill lock's lease renewed (`held`), or found lost.
    Renew {
        /// The entry's key, relative to the prefix.
        key: String,
        /// Whether the caller still held the lock.
        held: bool,
    },
    /// A fill lock given up (the body failed, the call was cancelled, or
    /// its result is not stored, a `None` say: then the placeholder is
    /// marked so that the waiting callers load without the lock): `held`
    /// if it was still the caller's.
    Unlock {
        /// The entry's key, relative to the prefix.
        key: String,
        /// Whether the caller still held the lock.
        held: bool,
    },
    /// An operation that failed because of an injected fault.
    Failed {
        /// Which operation.
        operation: Operation,
        /// Its key or pattern, relative to the prefix.
        key: String,
    },
}

impl Op {
    /// The key (or pattern) the operation was about.
    ///
    /// ```
    /// use cache_runtime::testing::Op;
    /// assert_eq!(Op::Delete { key: "a".into(), existed: false }.key(), "a");
    /// ```
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key, .. }
            | Op::Set { key, .. }
            | Op::Delete { key, .. }
            | Op::Exists { key, .. }
            | Op::SetRefused { key }
            | Op::SetKept { key }
            | Op::Lock { key, .. }
            | Op::Renew { key, .. }
            | Op::Unlock { key, .. }
            | Op::Failed { key, .. } => key,
            Op::ClearPattern { pattern, .. } => pattern,
            Op::InvalidateTag { tag, .. } => tag,
        }
    }
}

struct Entry {
    value: Bytes,
    expires_at: Instant,
}

#[derive(Default)]
struct MockTag {
    version: u64,
    keys: std::collections::BTreeSet<String>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// By tag key (`{prefix}:__tag:{tag}`).
    tags: BTreeMap<String, MockTag>,
    ops: Vec<Op>,
    fail_next: usize,
    fail_all: bool,
    fail_patterns: Vec<String>,
    delay: Option<Duration>,
}

impl State {
    fn put(&mut self, key: &str, value: Bytes, ttl: Duration) {
        let expires_at = Instant::now().checked_add(ttl).unwrap_or_else(far_future);
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
    }

    fn live(&mut self, key: &str) -> Option<&Entry> {
        let now = Instant::now();
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
        }
        self.entries.get(key)
    }

    /// Whether an injected fault applies to this key; consumes `fail_next`.
    fn should_fail(&mut self, key: &str) -> bool {
        if self.fail_all
            || self
                .fail_patterns
                .iter()
                .any(|p| glob::matches(p.as_bytes(), key.as_bytes()))
        {
            return true;
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return true;
        }
        false
    }
}

struct Shared {
    state: Mutex<State>,
    prefix: String,
    /// The prefix as it appears at the start of patterns.
    escaped_prefix: String,
    codec: CodecImpl,
}

/// An in-memory [`Backend`] for tests: inspectable, scriptable, isolated.
///
/// Cloning gives another handle to the same store. Two mocks never share
/// anything, so tests running in parallel, each with its own mock and
/// [`Cache::scope`], never see each other's entries or operations.
///
/// Faults produce the errors the Redis backend produces (an I/O error for an
/// injected failure; the runtime's deadline for a [`delay`](MockBackend::delay)
/// longer than the command timeout). A delayed operation takes effect before
/// the delay, like a Redis command whose reply is slow.
///
/// ```
/// use cache_runtime::testing::MockBackend;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mock = MockBackend::new();
/// mock.insert("greeting", &"hello", Duration::from_secs(5));
/// let cache = mock.cache();
/// assert_eq!(cache.get::<String>("greeting").await.unwrap().as_deref(), Some("hello"));
/// assert!(mock.was_read("greeting"));
/// # }
/// ```
#[derive(Clone)]
pub struct MockBackend {
    shared: Arc<Shared>,
}

impl fmt::Debug for MockBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MockBackend")
            .field("prefix", &self.shared.prefix)
            .field("entries", &state.entries.len())
            .field("operations", &state.ops.len())
            .finish_non_exhaustive()
    }
}

impl Default for MockBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MockBackend {
    /// An empty mock with the default prefix (`"cache"`) and codec (JSON).
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// assert!(mock.keys().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::build("cache".to_owned(), CodecImpl::Json)
    }

    fn build(prefix: String, codec: CodecImpl) -> Self {
        let mut escaped_prefix = crate::key::pattern(&prefix, "");
        escaped_prefix.pop(); // the ':'
        MockBackend {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                prefix,
                escaped_prefix,
                codec,
            }),
        }
    }

    /// The same mock with another prefix for [`cache`](MockBackend::cache)
    /// and for the keys of every method. Call it before using the mock.
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new().with_prefix("shop");
    /// assert_eq!(mock.cache().prefix(), "shop");
    /// ```
    pub fn with_prefix(self, prefix: impl Into<String>) -> Self {
        Self::build(prefix.into(), self.shared.codec.clone())
    }

    /// The same mock with another codec for [`cache`](MockBackend::cache),
    /// [`get`](MockBackend::get) and [`insert`](MockBackend::insert). Call it
    /// before using the mock.
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new().with_codec(cache_runtime::JsonCodec);
    /// # drop(mock);
    /// ```
    pub fn with_codec<C: Codec>(self, codec: C) -> Self {
        Self::build(self.shared.prefix.clone(), CodecImpl::from_codec(codec))
    }

    /// A cache on this mock with the builder's defaults (100 ms deadline, ...)
    /// but no circuit breaker, so that every call reaches the mock and its
    /// log shows every operation, however many failures you inject. To test
    /// your code with the breaker, start from
    /// [`cache_builder`](MockBackend::cache_builder) and set
    /// [`breaker_threshold`](crate::CacheBuilder::breaker_threshold).
    ///
    /// ```
    /// let cache = cache_runtime::testing::MockBackend::new().cache();
    /// assert_eq!(cache.backend_kind(), "mock");
    /// ```
    pub fn cache(&self) -> Cache {
        self.cache_builder()
            .without_breaker()
            .build()
            .expect("the mock's settings are valid")
    }

    /// A builder already set to this mock, its prefix and its codec, for
    /// tests that need other options (a shorter deadline, ...). Changing the
    /// prefix there makes the mock's keys full keys. Its circuit breaker is
    /// on, as on every builder: five injected failures in a row open it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// let cache = mock.cache_builder().command_timeout(Duration::from_millis(10)).build().unwrap();
    /// # drop(cache);
    /// ```
    pub fn cache_builder(&self) -> CacheBuilder {
        Cache::builder()
            .backend(self.clone())
            .prefix(self.shared.prefix.clone())
            .codec_impl(self.shared.codec.clone())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `key` (or a pattern) relative to the prefix, or as given if outside it.
    fn relative<'k>(&self, full: &'k str) -> &'k str {
        full.strip_prefix(self.shared.prefix.as_str())
            .or_else(|| full.strip_prefix(self.shared.escaped_prefix.as_str()))
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(full)
    }

    fn full(&self, key: &str) -> String {
        crate::key::full(&self.shared.prefix, key)
    }

    // ----- what happened -----

    /// Every operation so far, in order.
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// assert!(mock.operations().is_empty());
    /// ```
    pub fn operations(&self) -> Vec<Op> {
        self.state().ops.clone()
    }

    /// Forgets the recorded operations (entries stay).
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.clear_operations();
    /// ```
    pub fn clear_operations(&self) {
        self.state().ops.clear();
    }

    /// Whether `key` was looked up (successfully or not).
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// assert!(!mock.was_read("product:1"));
    /// ```
    pub fn was_read(&self, key: &str) -> bool {
        self.state().ops.iter().any(|op| match op {
            Op::Get { key: k, .. } => k == key,
            Op::Failed {
                operation: Operation::Get,
                key: k,
            } => k == key,
            _ => false,
        })
    }

    /// Whether `key` was written.
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// assert!(!mock.was_written("product:1"));
    /// ```
    pub fn was_written(&self, key: &str) -> bool {
        self.ttl_of(key).is_some()
    }

    /// The TTL of the last successful write of `key`.
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// assert_eq!(mock.ttl_of("product:1"), None);
    /// ```
    pub fn ttl_of(&self, key: &str) -> Option<Duration> {
        self.state().ops.iter().rev().find_map(|op| match op {
            Op::Set { key: k, ttl } if k == key => Some(*ttl),
            _ => None,
        })
    }

    /// How many lookups found a live entry.
    ///
    /// ```
    /// assert_eq!(cache_runtime::testing::MockBackend::new().hits(), 0);
    /// ```
    pub fn hits(&self) -> usize {
        self.count_gets(true)
    }

    /// How many lookups found nothing.
    ///
    /// ```
    /// assert_eq!(cache_runtime::testing::MockBackend::new().misses(), 0);
    /// ```
    pub fn misses(&self) -> usize {
        self.count_gets(false)
    }

    fn count_gets(&self, want: bool) -> usize {
        self.state()
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Get { hit, .. } if *hit == want))
            .count()
    }

    // ----- what is stored -----

    /// The live value at `key`, decoded with the mock's codec.
    ///
    /// # Panics
    ///
    /// If the stored bytes do not decode as `T` (a test would want to know).
    ///
    /// ```
    /// use std::time::Duration;
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.insert("n", &5u32, Duration::from_secs(1));
    /// assert_eq!(mock.get::<u32>("n"), Some(5));
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = self
            .state()
            .live(&self.full(key))
            .map(|e| e.value.clone())?;
        match envelope::decode(&bytes, &self.shared.codec, usize::MAX) {
            Ok(v) => Some(v),
            // A fill lock held: no value yet.
            Err(envelope::DecodeError::Placeholder) => None,
            Err(e) => panic!(
                "the value at `{key}` does not decode as {}: {e}",
                std::any::type_name::<T>()
            ),
        }
    }

    /// Stores `value` at `key` for `ttl`, as the cache would (not recorded as
    /// an operation).
    ///
    /// # Panics
    ///
    /// If the codec cannot encode the value.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.insert("product:1", &"lamp", Duration::from_secs(60));
    /// assert_eq!(mock.keys(), ["product:1"]);
    /// ```
    pub fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Duration) {
        let bytes = envelope::encode(&self.shared.codec, value, ttl, usize::MAX)
            .unwrap_or_else(|e| panic!("cannot encode the value for `{key}`: {e}"));
        self.insert_raw(key, bytes, ttl);
    }

    /// Stores raw bytes at `key`: foreign or corrupt data, to test that it is
    /// treated as a miss.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.insert_raw("product:1", b"not an envelope".to_vec(), Duration::from_secs(60));
    /// # drop(mock);
    /// ```
    pub fn insert_raw(&self, key: &str, bytes: impl Into<Bytes>, ttl: Duration) {
        let full = self.full(key);
        self.state().entries.insert(
            full,
            Entry {
                value: bytes.into(),
                expires_at: Instant::now().checked_add(ttl).unwrap_or_else(far_future),
            },
        );
    }

    /// The time `key` has left to live, on tokio's clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.insert("k", &1, Duration::from_secs(60));
    /// assert!(mock.remaining_ttl("k").unwrap() <= Duration::from_secs(60));
    /// ```
    pub fn remaining_ttl(&self, key: &str) -> Option<Duration> {
        let full = self.full(key);
        let mut state = self.state();
        state
            .live(&full)
            .map(|e| e.expires_at.saturating_duration_since(Instant::now()))
    }

    /// The live keys, sorted.
    ///
    /// ```
    /// assert!(cache_runtime::testing::MockBackend::new().keys().is_empty());
    /// ```
    pub fn keys(&self) -> Vec<String> {
        let now = Instant::now();
        let mut state = self.state();
        state.entries.retain(|_, e| e.expires_at > now);
        state
            .entries
            .keys()
            .map(|k| self.relative(k).to_owned())
            .collect()
    }

    /// Removes every entry (operations and faults stay).
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.clear();
    /// assert!(mock.keys().is_empty());
    /// ```
    pub fn clear(&self) {
        self.state().entries.clear();
    }

    // ----- faults -----

    /// Makes the next `n` operations fail.
    ///
    /// ```
    /// cache_runtime::testing::MockBackend::new().fail_next(2);
    /// ```
    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    /// Makes every operation fail until called with `false`.
    ///
    /// ```
    /// let mock = cache_runtime::testing::MockBackend::new();
    /// mock.fail_all(true);
    /// mock.fail_all(false);
    /// ```
    pub fn fail_all(&self, fail: bool) {
        self.state().fail_all = fail;
    }

    /// Makes every operation on keys matching the glob `pattern` (relative to
    /// the prefix) fail. Patterns accumulate until
    /// [`reset_faults`](MockBackend::reset_faults).
    ///
    /// ```
    /// cache_runtime::testing::MockBackend::new().fail_keys("product:*");
    /// ```
    pub fn fail_keys(&self, pattern: &str) {
        self.state().fail_patterns.push(pattern.to_owned());
    }

    /// Delays every reply by `delay`; longer than the cache's command timeout,
    /// the runtime gives up on it exactly as on a stalled Redis.
    ///
    /// ```
    /// cache_runtime::testing::MockBackend::new().delay(std::time::Duration::from_secs(1));
    /// ```
    pub fn delay(&self, delay: Duration) {
        self.state().delay = (!delay.is_zero()).then_some(delay);
    }

    /// Removes every injected fault and delay.
    ///
    /// ```
    /// cache_runtime::testing::MockBackend::new().reset_faults();
    /// ```
    pub fn reset_faults(&self) {
        let mut state = self.state();
        state.fail_next = 0;
        state.fail_all = false;
        state.fail_patterns.clear();
        state.delay = None;
    }

    /// Runs one operation: fault check, effect, record; then the delay.
    fn run<'a, T: Send + 'a>(
        &'a self,
        operation: Operation,
        full_key: &'a str,
        effect: impl FnOnce(&mut State, &str) -> (T, Op) + Send + 'a,
    ) -> BoxFuture<'a, Result<T, BackendError>> {
        Box::pin(async move {
            let key = self.relative(full_key);
            let (result, delay) = {
                let mut state = self.state();
                let result = if state.should_fail(key) {
                    state.ops.push(Op::Failed {
                        operation,
                        key: key.to_owned(),
                    });
                    Err(injected_failure())
                } else {
                    let (value, op) = effect(&mut state, key);
                    state.ops.push(op);
                    Ok(value)
                };
                (result, state.delay)
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            result
        })
    }
}

/// The error a Redis connection reports when the server refuses it.
fn injected_failure() -> BackendError {
    BackendError::Redis(redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "mock backend: injected failure",
    )))
}

impl MockBackend {
    /// A tag key without the prefix and the `__tag:` marker.
    fn tag_name<'k>(&self, tag_key: &'k str) -> &'k str {
        let rel = self.relative(tag_key);
        rel.strip_prefix("__tag:").unwrap_or(rel)
    }
}

impl Backend for MockBackend {
    fn get_tagged<'a>(
        &'a self,
        key: &'a str,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<crate::backend::TaggedLookup, BackendError>> {
        self.run(Operation::Get, key, move |state, rel| {
            let value = state.live(key).map(|e| e.value.clone());
            let versions = tags
                .iter()
                .map(|t| state.tags.get(t).map_or(0, |t| t.version))
                .collect();
            let op = Op::Get {
                key: rel.to_owned(),
                hit: value
                    .as_deref()
                    .is_some_and(|v| !envelope::is_placeholder(v)),
            };
            ((value, versions), op)
        })
    }

    fn set_tagged<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
        tags: &'a [String],
        expected: Option<&'a [u64]>,
        condition: Condition<'a>,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(Operation::Set, key, move |state, rel| {
            let current = state.live(key).map(|e| &e.value[..]);
            if !condition.admits(current) {
                let rel = rel.to_owned();
                let op = match condition {
                    // A placeholder written where something was.
                    Condition::Absent if envelope::is_placeholder(&value) => Op::Lock {
                        key: rel,
                        acquired: false,
                    },
                    Condition::Absent => Op::SetKept { key: rel },
                    _ if envelope::is_gave_up(&value) => Op::Unlock {
                        key: rel,
                        held: false,
                    },
                    // A holder whose lock was lost (expired, or replaced by
                    // a write): the newer value stays.
                    _ => Op::SetRefused { key: rel },
                };
                return (false, op);
            }
            let current = tags
                .iter()
                .map(|t| state.tags.get(t).map_or(0, |t| t.version));
            if expected.is_some_and(|e| !current.eq(e.iter().copied())) {
                return (
                    false,
                    Op::SetRefused {
                        key: rel.to_owned(),
                    },
                );
            }
            let op = if envelope::is_gave_up(&value) {
                Op::Unlock {
                    key: rel.to_owned(),
                    held: true,
                }
            } else if envelope::is_placeholder(&value) {
                Op::Lock {
                    key: rel.to_owned(),
                    acquired: true,
                }
            } else {
                Op::Set {
                    key: rel.to_owned(),
                    ttl,
                }
            };
            state.put(key, value, ttl);
            for tag in tags {
                let entry = state.tags.entry(tag.clone()).or_default();
                entry.keys.insert(key.to_owned());
            }
            (true, op)
        })
    }

    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        let first = tags.first().map_or("", String::as_str);
        self.run(Operation::InvalidateTags, first, move |state, _| {
            let now = Instant::now();
            let mut total = 0;
            let mut last = None;
            for tag in tags {
                let record = state.tags.entry(tag.clone()).or_default();
                record.version = crate::backend::new_version();
                let keys = std::mem::take(&mut record.keys);
                let mut removed = 0;
                for key in keys {
                    if state
                        .entries
                        .remove(&key)
                        .is_some_and(|e| e.expires_at > now)
                    {
                        removed += 1;
                    }
                }
                total += removed;
                let op = Op::InvalidateTag {
                    tag: self.tag_name(tag).to_owned(),
                    removed,
                };
                // All but the last are recorded here; `run` records the last.
                if let Some(previous) = last.replace(op) {
                    state.ops.push(previous);
                }
            }
            let last = last.unwrap_or(Op::InvalidateTag {
                tag: String::new(),
                removed: 0,
            });
            (total, last)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        self.run(Operation::Get, key, move |state, rel| {
            let value = state.live(key).map(|e| e.value.clone());
            let op = Op::Get {
                key: rel.to_owned(),
                // A fill lock's placeholder is no value.
                hit: value
                    .as_deref()
                    .is_some_and(|v| !envelope::is_placeholder(v)),
            };
            (value, op)
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.run(Operation::Set, key, move |state, rel| {
            state.put(key, value, ttl);
            (
                (),
                Op::Set {
                    key: rel.to_owned(),
                    ttl,
                },
            )
        })
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        // A tagged write with no tags and no versions to check.
        self.set_tagged(key, value, ttl, &[], None, Condition::Absent)
    }

    fn set_if<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
        condition: Condition<'a>,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.set_tagged(key, value, ttl, &[], None, condition)
    }

    fn expire_if<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(Operation::Set, key, move |state, rel| {
            let held = state.live(key).is_some_and(|e| e.value == expected);
            if held {
                let value = state.entries.remove(key).map(|e| e.value);
                state.put(key, value.unwrap_or_default(), ttl);
            }
            let op = Op::Renew {
                key: rel.to_owned(),
                held,
            };
            (held, op)
        })
    }

    fn delete_if<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(Operation::Delete, key, move |state, rel| {
            let held = state.live(key).is_some_and(|e| e.value == expected);
            if held {
                state.entries.remove(key);
            }
            let op = Op::Unlock {
                key: rel.to_owned(),
                held,
            };
            (held, op)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(Operation::Delete, key, move |state, rel| {
            let existed = state.live(key).is_some();
            state.entries.remove(key);
            (
                existed,
                Op::Delete {
                    key: rel.to_owned(),
                    existed,
                },
            )
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(Operation::Exists, key, move |state, rel| {
            let present = state.live(key).is_some();
            (
                present,
                Op::Exists {
                    key: rel.to_owned(),
                    present,
                },
            )
        })
    }

    fn clear_pattern<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
        self.run(Operation::ClearPattern, pattern, move |state, rel| {
            let now = Instant::now();
            state.entries.retain(|_, e| e.expires_at > now);
            let before = state.entries.len();
            state
                .entries
                .retain(|k, _| !glob::matches(pattern.as_bytes(), k.as_bytes()));
            let removed = (before - state.entries.len()) as u64;
            (
                removed,
                Op::ClearPattern {
                    pattern: rel.to_owned(),
                    removed,
                },
            )
        })
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::NONE
            .with_tags()
            .with_atomic_set_if_absent()
            .with_compare_and_set()
    }

    fn kind(&self) -> &'static str {
        "mock"
    }
}

/// A time no test reaches, for TTLs too long to add to the clock.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
