//! The [`Cache`] handle and its direct API: a thin facade over the
//! [`Engine`](crate::engine::Engine).

use crate::builder::CacheBuilder;
use crate::engine::{Engine, MAX_TTL};
use crate::server_info::ServerInfo;
use crate::stats::Stats;
use crate::{key, CacheError, Operation};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

static INSTALLED: OnceLock<Cache> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Cache;
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
    pub(crate) engine: Arc<Engine>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.engine.prefix)
            .field("backend", &self.engine.l2)
            .field("l1", &self.engine.l1)
            .field("codec", &self.engine.codec)
            .field("disabled", &self.engine.disabled)
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
        &self.engine.prefix
    }

    /// The backend's kind: `"redis"`, `"redis-cluster"`, `"memory"`, or a custom backend's name.
    ///
    /// ```
    /// assert_eq!(cache_runtime::Cache::builder().memory().build().unwrap().backend_kind(), "memory");
    /// ```
    pub fn backend_kind(&self) -> &'static str {
        if self.engine.disabled {
            return "disabled";
        }
        self.engine.l2.kind()
    }

    /// Whether caching is turned off ([`CacheBuilder::disabled`],
    /// `CACHE_DISABLED=1`).
    ///
    /// ```
    /// assert!(!cache_runtime::Cache::builder().build().unwrap().is_disabled());
    /// assert!(cache_runtime::Cache::builder().disabled().build().unwrap().is_disabled());
    /// ```
    pub fn is_disabled(&self) -> bool {
        self.engine.disabled
    }

    /// `Err(CacheError::Disabled)` when caching is off.
    fn enabled(&self) -> Result<(), CacheError> {
        if self.engine.disabled {
            Err(CacheError::Disabled)
        } else {
            Ok(())
        }
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
        key::hashed(&self.engine.prefix, name, args)
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
        let mut stats = self.engine.counters.snapshot();
        if let Some(l1) = &self.engine.l1 {
            stats.l1_flushes = l1.flushes();
            stats.l1_invalidations = l1.invalidations();
        }
        let breaker = self.engine.l2.guard().breaker();
        stats.breaker_open = breaker.is_open();
        stats.breaker_opens = breaker.opens();
        stats.breaker_skips = breaker.skips();
        stats
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
        self.enabled()?;
        self.engine.get(&self.engine.full(key)).await
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
        self.enabled()?;
        let (full, bytes) = self.encode_for(key, value, ttl)?;
        self.engine
            .put_bytes(&full, bytes, ttl, &[])
            .await
            .map_err(|e| self.engine.failed(Operation::Set, &full, e))
    }

    /// Stores `value` at `key` (relative to the prefix) for `ttl` only if
    /// nothing is stored there (Redis's `SET NX`, in one step); `true` if
    /// it was stored. For values that must not overwrite one another: a new
    /// session's id, a claim.
    ///
    /// # Errors
    ///
    /// As [`set`](Cache::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// assert!(cache.set_if_absent("claim:7", "worker-a", Duration::from_secs(5)).await?);
    /// assert!(!cache.set_if_absent("claim:7", "worker-b", Duration::from_secs(5)).await?);
    /// assert_eq!(cache.get::<String>("claim:7").await?.as_deref(), Some("worker-a"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.enabled()?;
        let (full, bytes) = self.encode_for(key, value, ttl)?;
        self.engine
            .put_if_absent(&full, bytes, ttl)
            .await
            .map_err(|e| self.engine.failed(Operation::Set, &full, e))
    }

    /// [`get`](Cache::get) from the store itself, never from the L1: for a
    /// value that must not be served for a moment after another instance
    /// removed it (a revoked session). Costs a round trip on every call.
    ///
    /// # Errors
    ///
    /// As [`get`](Cache::get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// cache.set("session:1", &"alice", Duration::from_secs(60)).await?;
    /// assert_eq!(cache.get_fresh::<String>("session:1").await?.as_deref(), Some("alice"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_fresh<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        self.enabled()?;
        self.engine.get_fresh(&self.engine.full(key)).await
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
        self.enabled()?;
        self.engine.delete(&self.engine.full(key)).await
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
        self.enabled()?;
        self.engine.exists(&self.engine.full(key)).await
    }

    /// What Redis reports of itself (`INFO`): clients, memory, keyspace
    /// hits and misses, commands, evictions and expirations, keys; on a
    /// cluster, every primary's and their sums. For a dashboard or a health
    /// page; each call is a round trip (per primary), within the command
    /// timeout.
    ///
    /// The least-privilege ACL user of the README needs `+info` for it.
    ///
    /// # Errors
    ///
    /// [`CacheError::Backend`] when the command fails, and on a store that
    /// is not Redis (the memory store, a custom backend), which has no such
    /// figures.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder().redis("redis://127.0.0.1:6379").build()?;
    /// let info = cache.server_info().await?;
    /// println!(
    ///     "{} clients, {} bytes, server hit rate {:.1}%, {} keys",
    ///     info.connected_clients,
    ///     info.used_memory,
    ///     info.hit_rate() * 100.0,
    ///     info.keys
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub async fn server_info(&self) -> Result<ServerInfo, CacheError> {
        self.enabled()?;
        let nodes = match self.engine.l2.server_info().await {
            Ok(nodes) => nodes,
            // Not a failure of the store: it has no such figures.
            Err(source @ crate::BackendError::Unsupported(_)) => {
                return Err(CacheError::Backend {
                    op: Operation::ServerInfo,
                    key: String::new(),
                    source,
                })
            }
            Err(e) => return Err(self.engine.failed(Operation::ServerInfo, "", e)),
        };
        Ok(ServerInfo::summed(nodes))
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
        self.enabled()?;
        let full = key::pattern(&self.engine.prefix, pattern);
        self.engine
            .clear_pattern(&full)
            .await
            .map_err(|e| self.engine.failed(Operation::ClearPattern, &full, e))
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
        self.enabled()?;
        let (full, bytes) = self.encode_for(key, value, ttl)?;
        let tags = self.tag_keys(tags);
        self.engine
            .put_bytes(&full, bytes, ttl, &tags)
            .await
            .map_err(|e| self.engine.failed(Operation::Set, &full, e))
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
        self.enabled()?;
        let keys = self.tag_keys(tags);
        self.engine.invalidate_tags(&keys).await.map_err(|e| {
            self.engine
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
        let full = self.engine.full(key);
        match crate::envelope::encode(&self.engine.codec, value, ttl, self.engine.max_value_size) {
            Ok(bytes) => Ok((full, Bytes::from(bytes))),
            Err(reason) => Err(CacheError::Encode { key: full, reason }),
        }
    }

    fn tag_keys<S: AsRef<str>>(&self, tags: &[S]) -> Vec<String> {
        tags.iter()
            .map(|t| key::tag(&self.engine.prefix, t.as_ref()))
            .collect()
    }

    /// [`delete`](Cache::delete) of a full key.
    pub(crate) async fn delete_full(&self, full: &str) -> Result<bool, CacheError> {
        self.enabled()?;
        self.engine.delete(full).await
    }
}
