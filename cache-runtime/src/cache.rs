//! The [`Cache`] handle and its direct API.

use crate::backend::{BoxFuture, Store, TaggedWrite, TAG_VERSION_WINDOW};
use crate::builder::CacheBuilder;
use crate::call::{Policy, Typed};
use crate::codec::CodecImpl;
use crate::flight::{Flights, Join};
use crate::stats::{Counters, Stats};
use crate::{envelope, key, BackendError, CacheError, Operation};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// A deadline too far to matter, for a `command_timeout` that overflows the clock.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `timeout` after `start`, or [`FAR_FUTURE`] after it if that overflows.
#[inline]
fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + FAR_FUTURE)
}

static INSTALLED: OnceLock<Cache> = OnceLock::new();

/// The longest TTL accepted anywhere (the macro checks the same bound): 100
/// years, so milliseconds fit Redis's signed 64-bit expiry with room to spare.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

tokio::task_local! {
    static SCOPED: Cache;
}

/// The TTLs that `ttl = "short" | "default" | "long"` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TtlPresets {
    pub(crate) short: Duration,
    pub(crate) default: Duration,
    pub(crate) long: Duration,
}

impl Default for TtlPresets {
    fn default() -> Self {
        TtlPresets {
            short: Duration::from_secs(300),
            default: Duration::from_secs(3600),
            long: Duration::from_secs(86_400),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) prefix: String,
    pub(crate) codec: CodecImpl,
    pub(crate) ttl: TtlPresets,
    pub(crate) command_timeout: Duration,
    pub(crate) max_value_size: usize,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    /// Set after a backend failure in a `#[cached]` call, cleared on the next
    /// success: only the first failure of an outage is logged as a warning.
    pub(crate) degraded: AtomicBool,
}

/// A handle to a cache: cheap to clone (an `Arc` inside), safe to share
/// between tasks and threads.
///
/// Build one with [`Cache::builder`] or [`Cache::from_env`], then either
/// [`install`](Cache::install) it for the whole process, pass it to
/// `#[cached(cache = ...)]`, or [`scope`](Cache::scope) a future to it.
/// Keys given to the direct API are relative to the cache's prefix, exactly
/// like `#[cached(key = "...")]` templates.
///
/// ```
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// let cache = Cache::builder().memory().prefix("shop").build()?;
/// cache.set("product:1", &"lamp", Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<String>("product:1").await?.as_deref(), Some("lamp"));
/// assert!(cache.delete("product:1").await?);
/// assert!(!cache.exists("product:1").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.inner.prefix)
            .field("backend", &self.inner.store)
            .field("codec", &self.inner.codec)
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A builder with the defaults: the in-process memory store, prefix
    /// `"cache"`, JSON, TTL presets 300 / 3600 / 86400 s, a 100 ms deadline.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder().prefix("shop").build().unwrap();
    /// assert_eq!(cache.prefix(), "shop");
    /// ```
    pub fn builder() -> CacheBuilder {
        CacheBuilder::new()
    }

    /// The key prefix.
    ///
    /// ```
    /// assert_eq!(cache_runtime::Cache::builder().build().unwrap().prefix(), "cache");
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The backend's kind: `"redis"`, `"memory"`, or a custom backend's name.
    ///
    /// ```
    /// assert_eq!(cache_runtime::Cache::builder().memory().build().unwrap().backend_kind(), "memory");
    /// ```
    pub fn backend_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    /// Makes this cache the process-wide default for `#[cached]` functions
    /// that name no cache and run outside any [`scope`](Cache::scope).
    ///
    /// # Errors
    ///
    /// [`CacheError::AlreadyInstalled`] if a cache was installed before; the
    /// first one stays.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder().build().unwrap();
    /// cache.install().unwrap();
    /// assert!(cache.install().is_err());
    /// ```
    pub fn install(&self) -> Result<(), CacheError> {
        INSTALLED
            .set(self.clone())
            .map_err(|_| CacheError::AlreadyInstalled)
    }

    /// The cache `#[cached]` functions use here: the innermost
    /// [`scope`](Cache::scope), else the [installed](Cache::install) one.
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = Cache::builder().prefix("scoped").build().unwrap();
    /// let seen = cache.scope(async { Cache::current().map(|c| c.prefix().to_owned()) }).await;
    /// assert_eq!(seen.as_deref(), Some("scoped"));
    /// # }
    /// ```
    pub fn current() -> Option<Cache> {
        SCOPED
            .try_with(Cache::clone)
            .ok()
            .or_else(|| INSTALLED.get().cloned())
    }

    /// Runs `fut` with this cache as the default for every `#[cached]`
    /// function it calls that names no cache. The scope is task-local: two
    /// tests running concurrently, each in its own scope, never share a
    /// cache; a task spawned inside does not inherit it (scope it again).
    ///
    /// ```
    /// use cache_runtime::{cached, Cache};
    ///
    /// #[cached(ttl = 60)]
    /// async fn square(x: u64) -> u64 { x * x }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = Cache::builder().memory().build().unwrap();
    /// assert_eq!(cache.scope(square(7)).await, 49);
    /// assert_eq!(cache.stats().misses, 1);
    /// assert_eq!(cache.scope(square(7)).await, 49);
    /// assert_eq!(cache.stats().hits, 1);
    /// # }
    /// ```
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        // Returned as is (not awaited in an `async fn`), so the scope adds a
        // few bytes to `fut`'s size instead of doubling it.
        SCOPED.scope(self.clone(), fut)
    }

    /// The full key a `#[cached]` function without a `key` template uses:
    /// `{prefix}:{name}:{hash}`, where `name` is its `name = "..."` (or module
    /// path and function name) and `args` are its non-skipped arguments as a
    /// tuple, in declaration order. A reference hashes like the value it
    /// points to, and `&str` like `String`.
    ///
    /// # Errors
    ///
    /// When an argument's `Serialize` implementation fails.
    ///
    /// ```
    /// use cache_runtime::{cached, Cache};
    ///
    /// #[cached(name = "users::by_region")]
    /// async fn users(region: String, limit: u32) -> Vec<String> { vec![] }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Cache::builder().build()?;
    /// cache.scope(users("eu".into(), 10)).await;
    /// let key = cache.hashed_key("users::by_region", &("eu", 10u32))?;
    /// assert!(key.starts_with("cache:users::by_region:"));
    /// assert!(cache.delete(&key["cache:".len()..]).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hashed_key<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
    ) -> Result<String, crate::KeyEncodeError> {
        key::hashed(&self.inner.prefix, name, args)
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let _ = cache.get::<u32>("nothing").await;
    /// assert_eq!(cache.stats().misses, 1);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Reads `key` (relative to the prefix). A value that cannot be decoded
    /// (another writer's bytes, another codec, a type that changed shape, a
    /// value above the maximum size) is a miss, counted in
    /// [`Stats::decode_failures`].
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when the backend fails or misses the deadline.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// assert_eq!(cache.get::<u32>("absent").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let full = key::full(&self.inner.prefix, key);
        let found = self
            .inner
            .command(self.inner.store.get(&full))
            .await
            .map_err(|e| {
                // Counted like a failed lookup of a #[cached] call.
                self.inner.counters.miss();
                self.inner.failed(Operation::Get, &full, e)
            })?;
        let value = found.and_then(|bytes| self.inner.decode_counted(&full, &bytes));
        if value.is_some() {
            self.inner.counters.hit();
        } else {
            self.inner.counters.miss();
        }
        Ok(value)
    }

    /// Stores `value` at `key` (relative to the prefix) for `ttl`.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] for a zero `ttl`; [`CacheError::Encode`] when
    /// the codec rejects the value or it exceeds the maximum value size;
    /// [`CacheError::Backend`] when the backend fails or misses the deadline.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// cache.set("greeting", "hello", Duration::from_secs(5)).await?;
    /// assert!(cache.exists("greeting").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let (full, bytes) = self.encode_for(key, value, ttl)?;
        self.inner
            .command(self.inner.store.set(&full, bytes, None, ttl))
            .await
            .map_err(|e| self.inner.failed(Operation::Set, &full, e))
    }

    /// Removes `key` (relative to the prefix); `true` if it was present.
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when the backend fails or misses the deadline.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// assert!(!cache.delete("absent").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.delete_full(&key::full(&self.inner.prefix, key)).await
    }

    /// Whether `key` (relative to the prefix) is present.
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when the backend fails or misses the deadline.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// assert!(!cache.exists("absent").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        let full = key::full(&self.inner.prefix, key);
        self.inner
            .command(self.inner.store.exists(&full))
            .await
            .map_err(|e| self.inner.failed(Operation::Exists, &full, e))
    }

    /// Removes every key under this cache's prefix that matches the Redis glob
    /// `pattern` (relative to the prefix) and returns how many were removed.
    ///
    /// On Redis this walks the keyspace with `SCAN` and removes each batch
    /// with `UNLINK`, so it never blocks the server the way `KEYS` does. The
    /// prefix's own glob characters are escaped: keys outside the prefix are
    /// never touched. Keys written while it runs may or may not be removed.
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when a command fails; keys removed before
    /// then stay removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// for page in 0..3 {
    ///     cache.set(&format!("products:list:{page}"), &page, Duration::from_secs(60)).await?;
    /// }
    /// cache.set("products:item:1", &1, Duration::from_secs(60)).await?;
    /// assert_eq!(cache.clear_pattern("products:list:*").await?, 3);
    /// assert!(cache.exists("products:item:1").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn clear_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        let full = key::pattern(&self.inner.prefix, pattern);
        self.inner
            .bulk(self.inner.store.clear_pattern(&full))
            .await
            .map_err(|e| self.inner.failed(Operation::ClearPattern, &full, e))
    }

    /// Stores `value` at `key` (relative to the prefix) for `ttl`, recorded
    /// under `tags`, so that [`invalidate_tags`](Cache::invalidate_tags)
    /// removes it.
    ///
    /// # Errors
    ///
    /// As [`set`](Cache::set); [`BackendError::Unsupported`](crate::BackendError::Unsupported)
    /// from a custom backend that keeps no tags.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// cache.set_tagged("product:1", &"lamp", Duration::from_secs(60), &["products"]).await?;
    /// cache.set("product:2", &"desk", Duration::from_secs(60)).await?;
    /// assert_eq!(cache.invalidate_tags(&["products"]).await?, 1);
    /// assert!(!cache.exists("product:1").await?);
    /// assert!(cache.exists("product:2").await?, "not tagged");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_tagged<T: Serialize + ?Sized, S: AsRef<str>>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        tags: &[S],
    ) -> Result<(), CacheError> {
        let (full, bytes) = self.encode_for(key, value, ttl)?;
        let tags = self.tag_keys(tags);
        self.inner
            .command(
                self.inner
                    .store
                    .set_tagged(&full, bytes, None, ttl, TaggedWrite::put(&tags)),
            )
            .await
            .map(drop)
            .map_err(|e| self.inner.failed(Operation::Set, &full, e))
    }

    /// Removes every entry recorded under any of `tags` (by `#[cached(tags
    /// = [...])]`, `#[cache_put(tags = [...])]` or
    /// [`set_tagged`](Cache::set_tagged)), then the tags' own records, and
    /// returns how many entries were removed.
    ///
    /// A value being computed while this runs is not stored if its lookup
    /// came before the invalidation: no entry computed from data older than
    /// the invalidation survives it. On Redis, entries are removed in
    /// batches of 1,000, so no single command blocks the server for long,
    /// whatever the tag's size; a tag's record expires with its last entry.
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when a command fails (entries removed before
    /// then stay removed); [`BackendError::Unsupported`](crate::BackendError::Unsupported)
    /// from a custom backend that keeps no tags.
    ///
    /// ```
    /// use cache_runtime::{cached, Cache};
    ///
    /// #[cached(ttl = 60, key = "product:{id}", tags = ["products"])]
    /// async fn product(id: u64) -> String { format!("product {id}") }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = Cache::builder().build()?;
    /// cache.scope(async { product(1).await; product(2).await }).await;
    /// assert_eq!(cache.invalidate_tags(&["products"]).await?, 2);
    /// assert!(!cache.exists("product:1").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate_tags<S: AsRef<str>>(&self, tags: &[S]) -> Result<u64, CacheError> {
        let keys = self.tag_keys(tags);
        self.inner
            .bulk(self.inner.store.invalidate_tags(&keys))
            .await
            .map_err(|e| {
                self.inner
                    .failed(Operation::InvalidateTags, &keys.join(", "), e)
            })
    }

    /// The full key and the encoded value for a direct write, after
    /// checking the TTL.
    fn encode_for<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(String, Bytes), CacheError> {
        if ttl.is_zero() {
            return Err(CacheError::config("ttl", "must be greater than zero"));
        }
        if ttl > MAX_TTL {
            return Err(CacheError::config("ttl", "must be at most 100 years"));
        }
        let full = key::full(&self.inner.prefix, key);
        match envelope::encode(&self.inner.codec, value, ttl, self.inner.max_value_size) {
            Ok(bytes) => Ok((full, Bytes::from(bytes))),
            Err(reason) => Err(CacheError::Encode { key: full, reason }),
        }
    }

    fn tag_keys<S: AsRef<str>>(&self, tags: &[S]) -> Vec<String> {
        tags.iter()
            .map(|t| key::tag(&self.inner.prefix, t.as_ref()))
            .collect()
    }

    /// [`delete`](Cache::delete) of a full key.
    pub(crate) async fn delete_full(&self, full: &str) -> Result<bool, CacheError> {
        self.inner
            .command(self.inner.store.delete(full))
            .await
            .map_err(|e| self.inner.failed(Operation::Delete, full, e))
    }
}

/// Where a call reads and writes: resolved cache, full key, TTL, tag keys.
pub(crate) struct Target {
    pub(crate) cache: Cache,
    pub(crate) key: String,
    pub(crate) ttl: Duration,
    /// Boxed: most calls have no tags, and the state machine stays small.
    pub(crate) tagging: Option<Box<Tagging>>,
}

/// A tagged call's tag keys, and their versions as its lookup read them.
#[derive(Default)]
pub(crate) struct Tagging {
    pub(crate) tags: Vec<String>,
    pub(crate) versions: Option<Vec<u64>>,
}

impl Tagging {
    /// The read-through's write: checked against the versions read.
    fn write(&self, if_absent: bool) -> TaggedWrite<'_> {
        TaggedWrite {
            tags: &self.tags,
            expected: self.versions.as_deref(),
            if_absent,
        }
    }
}

impl TaggedWrite<'static> {
    /// A read-through's write without tags.
    fn untagged(if_absent: bool) -> Self {
        TaggedWrite {
            tags: &[],
            expected: None,
            if_absent,
        }
    }
}

impl<'a> TaggedWrite<'a> {
    /// An unconditional write (direct API, write-through).
    fn put(tags: &'a [String]) -> Self {
        TaggedWrite {
            tags,
            expected: None,
            if_absent: false,
        }
    }
}

/// The read-through path behind `#[cached]`, one state machine from lookup
/// to store, holding `body` once and awaiting it in one place.
///
/// `target` is `None` when there is no cache (or the key could not be
/// built): the body just runs.
// Deliberately not an `async fn`; see the comment in the body.
#[allow(clippy::manual_async_fn)]
pub(crate) fn get_or_compute<P, Out, F>(
    target: Option<Target>,
    typed: Option<Typed<Out>>,
    mut body: F,
) -> impl Future<Output = Out>
where
    P: Policy<Out>,
    F: Future<Output = Out>,
{
    // A plain `fn` returning an `async move` block, not an `async fn`: an
    // `async fn` would keep its arguments twice (as captured and as moved
    // into locals), and the body can be large.
    async move {
        // SAFETY: `body` is captured by this future, which is pinned while it
        // runs, and is never moved again: the binding is shadowed here. Awaiting
        // through the pin (instead of `body.await`, which moves it into a second
        // slot) keeps one copy of the body in the state machine.
        let mut body = unsafe { std::pin::Pin::new_unchecked(&mut body) };
        let Some(Target {
            cache,
            key,
            ttl,
            mut tagging,
        }) = target
        else {
            return body.as_mut().await;
        };
        let inner = &*cache.inner;
        let key = key.as_str();

        // The memory store answers at once: look it up before any coalescing,
        // which only pays off for the body run.
        let mut undecodable_in_memory = false;
        if let Store::Memory(memory) = &inner.store {
            if let Some(entry) = memory.entry(key) {
                if let (Some(t), Some(any)) = (typed, entry.typed.get()) {
                    if let Some(out) = (t.from_any)(&**any) {
                        inner.counters.hit();
                        return out;
                    }
                }
                if let Some(value) = inner.decode_counted::<P::Value>(key, &entry.bytes) {
                    inner.counters.hit();
                    let out = P::from_cached(value);
                    // Written by `Cache::set`: keep a decoded copy from now on.
                    if let Some(t) = typed {
                        if entry.typed.get().is_none() {
                            if let Some(copy) = (t.to_any)(&out) {
                                let _ = entry.typed.set(copy);
                            }
                        }
                    }
                    return out;
                }
                undecodable_in_memory = true;
            }
        }

        let leader = match inner.flights.join(key) {
            Join::Follower(follower) => {
                // Boxed: the wait is the largest future here, and only
                // coalesced callers pay for it.
                if let Some(value) = Box::pin(follower.wait(key))
                    .await
                    .and_then(|b| inner.decode_counted::<P::Value>(key, &b))
                {
                    inner.counters.hit();
                    return P::from_cached(value);
                }
                // The leader had nothing to share (an error, a value not to
                // cache, a cancelled call): load without coalescing.
                None
            }
            Join::Leader(leader) => Some(leader),
        };

        let mut store = true;
        // The write below goes in only if the key is still empty, so that a
        // value written meanwhile (by a write-through, which is newer, or by
        // another process) stays; unless the lookup found bytes that do not
        // decode, which are replaced.
        let mut replace = undecodable_in_memory;
        let started = Instant::now();
        // One deadline for the lookup and the write, read from the clock
        // once here; a hit reads it no more.
        let deadline = deadline_after(started, inner.command_timeout);
        // A tagged lookup also reads the tags' versions: the write below is
        // refused if any tag is invalidated while the body runs.
        let lookup = match (&inner.store, &mut tagging) {
            (Store::Memory(memory), Some(t)) => {
                let (found, v) = memory.get_tagged(key, &t.tags);
                t.versions = Some(v);
                Ok(found.filter(|_| !undecodable_in_memory))
            }
            // Counted already; overwritten below.
            (Store::Memory(_), None) if undecodable_in_memory => Ok(None),
            // Another caller may have stored it since the first look.
            (Store::Memory(memory), None) => Ok(memory.get(key)),
            (_, Some(t)) => inner.lookup_tagged(key, t, deadline).await,
            // Boxed, with its deadline: a network command's future is large,
            // and inlining it would make every cached call's state machine
            // (which each memory hit moves) that much bigger. One allocation
            // per round trip is noise next to the network.
            _ => Box::pin(inner.command_until(deadline, inner.store.get(key))).await,
        };
        match lookup {
            Ok(Some(bytes)) => {
                if let Some(value) = inner.decode_counted::<P::Value>(key, &bytes) {
                    inner.counters.hit();
                    inner.recovered();
                    if let Some(leader) = leader {
                        leader.finish(Some(bytes));
                    }
                    return P::from_cached(value);
                }
                // Undecodable: a miss, overwritten below.
                inner.counters.miss();
                inner.recovered();
                replace = true;
            }
            Ok(None) => {
                inner.counters.miss();
                inner.recovered();
            }
            Err(e) => {
                // Fail open: the caller gets the body's result. Skip the write
                // too, so an outage costs one deadline, not two.
                inner.counters.miss();
                inner.fail_open(Operation::Get, key, &e);
                store = false;
            }
        }

        // The lookup and the write share one deadline, the body's time left
        // out: a slow Redis costs a call at most one deadline on top of its
        // body. (Read here, after a miss: a hit needs no second clock read.)
        let write_budget = deadline.saturating_duration_since(Instant::now());
        let out = body.as_mut().await;
        let encoded = P::cacheable(&out).and_then(|value| {
            let bytes = envelope::encode(&inner.codec, value, ttl, inner.max_value_size)
                .map_err(|reason| {
                    tracing::warn!(key, %reason, "value not cached: it cannot be encoded");
                })
                .ok()?;
            Some(Bytes::from(bytes))
        });
        // Only the memory store keeps decoded copies.
        let copy = match (&inner.store, typed, &encoded) {
            (Store::Memory(_), Some(t), Some(_)) => (t.to_any)(&out),
            _ => None,
        };
        // A version older than the window may have been forgotten, so a
        // tagged result computed over a longer time is not stored.
        if tagging.is_some() && started.elapsed() > TAG_VERSION_WINDOW {
            tracing::debug!(key, "tagged value not cached: computing it took too long");
            store = false;
        }
        let how = match &tagging {
            Some(t) => t.write(!replace),
            None => TaggedWrite::untagged(!replace),
        };
        // The memory store is written first, so that a caller arriving right
        // after the flight ends finds the value there.
        if let (true, Some(bytes), Store::Memory(memory)) = (store, &encoded, &inner.store) {
            not_stored(key, memory.write(key, bytes.clone(), copy, ttl, how));
        }
        // Waiting callers get the value now, without waiting for the write.
        if let Some(leader) = leader {
            leader.finish(encoded.clone());
        }
        if let (true, Some(bytes)) = (store, encoded) {
            if !matches!(inner.store, Store::Memory(_)) {
                // Boxed, like the lookup.
                let write = inner.store.write(key, bytes, None, ttl, how);
                let written = Box::pin(inner.command_within(write_budget, write))
                    .await
                    .map(|stored| not_stored(key, stored));
                match written {
                    Ok(()) => inner.recovered(),
                    Err(e) => inner.fail_open(Operation::Set, key, &e),
                }
            }
        }
        out
    }
}

fn not_stored(key: &str, stored: bool) {
    if !stored {
        tracing::debug!(
            key,
            "value not cached: while it was computed, a newer value was written or one of its tags was invalidated"
        );
    }
}

impl Inner {
    /// The lookup of a tagged call, which also reads the tags' versions.
    /// Boxed, out of the call's state machine.
    fn lookup_tagged<'a>(
        &'a self,
        key: &'a str,
        tagging: &'a mut Tagging,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        Box::pin(async move {
            let (found, versions) = self
                .command_until(deadline, self.store.get_tagged(key, &tagging.tags))
                .await?;
            tagging.versions = Some(versions);
            Ok(found)
        })
    }

    /// Write-through: stores `value` under the target's key and tags,
    /// unconditionally (it is the newest value). Failures are logged and
    /// counted, never returned.
    pub(crate) async fn put<T: Serialize + ?Sized>(&self, target: &Target, value: &T) {
        let key = target.key.as_str();
        let bytes = match envelope::encode(&self.codec, value, target.ttl, self.max_value_size) {
            Ok(bytes) => Bytes::from(bytes),
            Err(reason) => {
                // The old value would now be stale: remove it instead.
                tracing::warn!(key, %reason, "value not cached: it cannot be encoded; removing the old one");
                if let Err(e) = self.command(self.store.delete(key)).await {
                    self.fail_open(Operation::Delete, key, &e);
                }
                return;
            }
        };
        let tags = target.tagging.as_deref().map_or(&[][..], |t| &t.tags[..]);
        let written = self
            .command(
                self.store
                    .write(key, bytes, None, target.ttl, TaggedWrite::put(tags)),
            )
            .await
            .map(drop);
        match written {
            Ok(()) => self.recovered(),
            Err(e) => self.fail_open(Operation::Set, key, &e),
        }
    }

    /// Eviction: removes `keys`, invalidates `tags`, clears `patterns` (all
    /// full). Each step runs even if an earlier one failed; failures are
    /// logged and counted, never returned.
    pub(crate) async fn evict(&self, keys: &[String], tags: &[String], patterns: &[String]) {
        for key in keys {
            if let Err(e) = self.command(self.store.delete(key)).await {
                self.fail_open(Operation::Delete, key, &e);
            }
        }
        if !tags.is_empty() {
            if let Err(e) = self.bulk(self.store.invalidate_tags(tags)).await {
                self.fail_open(Operation::InvalidateTags, &tags.join(", "), &e);
            }
        }
        for pattern in patterns {
            if let Err(e) = self.bulk(self.store.clear_pattern(pattern)).await {
                self.fail_open(Operation::ClearPattern, pattern, &e);
            }
        }
    }

    /// A walk of many commands: the Redis backend bounds each one, not the
    /// whole walk; another backend answers as one command, under the deadline.
    async fn bulk<T>(
        &self,
        walk: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        match &self.store {
            Store::Custom(_) => self.command(walk).await,
            _ => walk.await,
        }
    }

    /// Runs one backend command under the deadline (not armed for in-process
    /// backends, which cannot stall).
    pub(crate) async fn command<T>(
        &self,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.command_within(self.command_timeout, fut).await
    }

    /// As [`command`](Inner::command), ending at `deadline`.
    async fn command_until<T>(
        &self,
        deadline: Instant,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        if self.store.is_local() {
            return fut.await;
        }
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Timeout(self.command_timeout)),
        }
    }

    /// As [`command`](Inner::command), with what is left of a deadline.
    pub(crate) async fn command_within<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        if self.store.is_local() {
            return fut.await;
        }
        if timeout.is_zero() {
            return Err(BackendError::Timeout(self.command_timeout));
        }
        self.command_until(deadline_after(Instant::now(), timeout), fut)
            .await
    }

    pub(crate) fn resolve_ttl(&self, ttl: crate::call::Ttl) -> Duration {
        use crate::call::Ttl;
        match ttl {
            Ttl::Secs(s) => Duration::from_secs(s),
            Ttl::Short => self.ttl.short,
            Ttl::Default => self.ttl.default,
            Ttl::Long => self.ttl.long,
        }
    }

    /// Decodes stored bytes; a failure is logged, counted, and `None`.
    pub(crate) fn decode_counted<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Option<T> {
        match envelope::decode(bytes, &self.codec, self.max_value_size) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.counters.decode_failure();
                tracing::debug!(key, %reason, "stored value not usable; treating it as a miss");
                None
            }
        }
    }

    fn failed(&self, op: Operation, key: &str, source: BackendError) -> CacheError {
        self.counters.error();
        CacheError::Backend {
            op,
            key: key.to_owned(),
            source,
        }
    }

    fn fail_open(&self, op: Operation, key: &str, error: &BackendError) {
        self.counters.error();
        if self.degraded.swap(true, Ordering::Relaxed) {
            tracing::debug!(%op, key, %error, "cache backend still failing; running the body uncached");
        } else {
            tracing::warn!(
                %op, key, %error, backend = self.store.kind(),
                "cache backend failed; running the body uncached (further failures are logged at debug level until it recovers)"
            );
        }
    }

    fn recovered(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(backend = self.store.kind(), "cache backend recovered");
        }
    }
}
