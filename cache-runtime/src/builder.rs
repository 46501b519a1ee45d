//! [`CacheBuilder`] and [`Cache::from_env`].

use crate::backend::memory::MemoryBackend;
use crate::backend::redis::{PushHandler, RedisBackend, RedisSettings, Target};
use crate::backend::{Backend, Custom, Store, Tier};
use crate::codec::{Codec, CodecImpl};
use crate::engine::{BreakerSettings, Engine, Settings, TtlPresets, L1};
use crate::{envelope, Cache, CacheError};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The most connections [`CacheBuilder::max_connections`] accepts.
///
/// One multiplexed connection already pipelines every concurrent command,
/// and more only help while a single socket's task is the bottleneck: about
/// one per core at most, so 64 covers the largest common machines. Above
/// that, connections cost without helping: each is a socket and a task in
/// this process and a client in Redis (whose default `maxclients` is
/// 10 000, shared by every instance of the application), and the L1's
/// tracking and heartbeat visit every one of them, one after another.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// A string that never shows up in `Debug` output.
#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug)]
enum BackendChoice {
    Memory,
    /// The URL may hold a password, so it is kept as a secret.
    Redis(Secret),
    /// A cluster's seed nodes' URLs.
    RedisCluster(Vec<Secret>),
    Custom(Arc<dyn Backend>),
}

/// Settings for a [`Cache`]. Every setter takes and returns the builder by
/// value; [`build`](CacheBuilder::build) validates everything at once and
/// never touches the network.
///
/// ```
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::builder()
///     .redis("redis://127.0.0.1:6379/0")
///     .l1_capacity(64 << 20) // an L1 of 64 MiB in front of Redis
///     .prefix("shop")
///     .max_connections(2)
///     .command_timeout(Duration::from_millis(50))
///     .ttl_presets(Duration::from_secs(60), Duration::from_secs(600), Duration::from_secs(3600))
///     .build()
///     .unwrap(); // no Redis needed yet: connections open on first use
/// assert_eq!(cache.backend_kind(), "redis");
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct CacheBuilder {
    backend: BackendChoice,
    prefix: String,
    ttl: TtlPresets,
    codec: CodecChoice,
    max_connections: usize,
    command_timeout: Duration,
    evict_timeout: Duration,
    connect_timeout: Duration,
    max_value_size: usize,
    memory_capacity: u64,
    l1_capacity: Option<u64>,
    db: Option<i64>,
    password: Option<Secret>,
    username: Option<String>,
    tls_ca_file: Option<PathBuf>,
    tls_client_cert: Option<(PathBuf, PathBuf)>,
    health_check_interval: Option<Duration>,
    retry_on_timeout: bool,
    breaker: BreakerSettings,
    /// `None`: on for Redis only.
    fill_lock: Option<bool>,
    lock_lease: Duration,
    lock_wait: Option<Duration>,
    /// Caching off: see [`CacheBuilder::disabled`].
    disabled: bool,
}

#[derive(Clone)]
struct CodecChoice(CodecImpl);

impl fmt::Debug for CodecChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheBuilder {
    /// The defaults; same as [`Cache::builder`].
    ///
    /// ```
    /// let cache = cache_runtime::CacheBuilder::new().build().unwrap();
    /// assert_eq!(cache.backend_kind(), "memory");
    /// ```
    pub fn new() -> Self {
        CacheBuilder {
            backend: BackendChoice::Memory,
            prefix: "cache".to_owned(),
            ttl: TtlPresets::default(),
            codec: CodecChoice(CodecImpl::Json),
            max_connections: 1,
            command_timeout: Duration::from_millis(100),
            evict_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            max_value_size: 8 * 1024 * 1024,
            memory_capacity: 64 * 1024 * 1024,
            l1_capacity: None,
            db: None,
            password: None,
            username: None,
            tls_ca_file: None,
            tls_client_cert: None,
            health_check_interval: None,
            retry_on_timeout: false,
            breaker: BreakerSettings::default(),
            fill_lock: None,
            lock_lease: crate::engine::DEFAULT_LEASE,
            lock_wait: None,
            disabled: false,
        }
    }

    /// Turns caching off: every `#[cached]` function runs its body, and
    /// nothing is read from or written to any store; `#[cache_put]` and
    /// `#[cache_evict]` functions run their bodies alone. The direct API
    /// ([`Cache::get`], [`Cache::set`], ...) and write-behinds answer
    /// [`CacheError::Disabled`], so code that uses them learns it. For
    /// comparing a service with and without its cache, and for ruling the
    /// cache out while debugging; `CACHE_DISABLED=1` does the same for
    /// [`Cache::from_env`]. The other settings are still checked (a bad
    /// Redis URL is still an error), and no connection is ever made.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// static RUNS: AtomicU32 = AtomicU32::new(0);
    ///
    /// #[cache_runtime::cached(ttl = 60)]
    /// async fn answer() -> u32 {
    ///     RUNS.fetch_add(1, Ordering::SeqCst);
    ///     42
    /// }
    ///
    /// let cache = cache_runtime::Cache::builder().disabled().build().unwrap();
    /// assert!(cache.is_disabled());
    /// cache.scope(answer()).await;
    /// cache.scope(answer()).await;
    /// assert_eq!(RUNS.load(Ordering::SeqCst), 2, "the body ran each time");
    /// assert!(matches!(
    ///     cache.get::<u32>("k").await,
    ///     Err(cache_runtime::CacheError::Disabled)
    /// ));
    /// # }
    /// ```
    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    /// Use Redis at `url` (`redis://[[user]:password@]host[:port][/db]`).
    /// The URL is checked by [`build`](CacheBuilder::build), which does not
    /// connect: a Redis that is down at start-up is connected to once it is up.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().redis("redis://:s3cret@127.0.0.1:6379/2");
    /// assert!(!format!("{b:?}").contains("s3cret"));
    /// ```
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.backend = BackendChoice::Redis(Secret(url.into()));
        self
    }

    /// Use a Redis Cluster, found from `nodes` (a few of its nodes' URLs,
    /// `redis[s]://[[user]:password@]host[:port]`, all with the same
    /// credentials and scheme; the client learns the rest of the cluster
    /// from them and follows its slots as they move and fail over). Every
    /// feature works as on one server; the README's Redis Cluster section
    /// says how the library's keys are laid out across slots.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis_cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
    ///     .build()
    ///     .unwrap(); // no cluster needed yet: connections open on first use
    /// assert_eq!(cache.backend_kind(), "redis-cluster");
    /// ```
    pub fn redis_cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.backend =
            BackendChoice::RedisCluster(nodes.into_iter().map(|n| Secret(n.into())).collect());
        self
    }

    /// Use the in-process memory store (the default): values live in this
    /// process only, with their TTLs, bounded by
    /// [`memory_capacity`](CacheBuilder::memory_capacity).
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder().memory().build().unwrap();
    /// assert_eq!(cache.backend_kind(), "memory");
    /// ```
    pub fn memory(mut self) -> Self {
        self.backend = BackendChoice::Memory;
        self
    }

    /// Use a backend of your own.
    ///
    /// ```
    /// # use cache_runtime::{Backend, BackendError, BoxFuture};
    /// # use bytes::Bytes; use std::time::Duration;
    /// # #[derive(Debug)] struct Nothing;
    /// # impl Backend for Nothing {
    /// #     fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> { Box::pin(async { Ok(None) }) }
    /// #     fn set<'a>(&'a self, _: &'a str, _: Bytes, _: Duration) -> BoxFuture<'a, Result<(), BackendError>> { Box::pin(async { Ok(()) }) }
    /// #     fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> { Box::pin(async { Ok(false) }) }
    /// #     fn exists<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> { Box::pin(async { Ok(false) }) }
    /// #     fn clear_pattern<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> { Box::pin(async { Ok(0) }) }
    /// #     fn kind(&self) -> &'static str { "nothing" }
    /// # }
    /// let cache = cache_runtime::Cache::builder().backend(Nothing).build().unwrap();
    /// assert_eq!(cache.backend_kind(), "nothing");
    /// ```
    pub fn backend<B: Backend>(mut self, backend: B) -> Self {
        self.backend = BackendChoice::Custom(Arc::new(backend));
        self
    }

    /// The prefix of every key (default `"cache"`): keys are
    /// `{prefix}:{key}`. Must not be empty.
    ///
    /// ```
    /// assert_eq!(cache_runtime::Cache::builder().prefix("shop").build().unwrap().prefix(), "shop");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The TTLs that `ttl = "short"`, `"default"` and `"long"` stand for
    /// (defaults 300, 3600 and 86400 seconds); `"default"` is also used when
    /// a `#[cached]` function gives no `ttl`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = cache_runtime::Cache::builder()
    ///     .ttl_presets(Duration::from_secs(10), Duration::from_secs(60), Duration::from_secs(600));
    /// # drop(b);
    /// ```
    pub fn ttl_presets(mut self, short: Duration, default: Duration, long: Duration) -> Self {
        self.ttl = TtlPresets {
            short,
            default,
            long,
        };
        self
    }

    /// The value format (default [`JsonCodec`](crate::JsonCodec)).
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().codec(cache_runtime::JsonCodec);
    /// # drop(b);
    /// ```
    pub fn codec<C: Codec>(mut self, codec: C) -> Self {
        self.codec = CodecChoice(CodecImpl::from_codec(codec));
        self
    }

    #[cfg(feature = "testing")]
    pub(crate) fn codec_impl(mut self, codec: CodecImpl) -> Self {
        self.codec = CodecChoice(codec);
        self
    }

    /// How many multiplexed Redis connections to open and use round-robin
    /// (default 1). One multiplexed connection pipelines every concurrent
    /// command; more connections only help when that one socket's task is
    /// the bottleneck (many cores, very high rates). On a 2-core machine one
    /// connection gave the most hits per second and half the Redis CPU per
    /// command of four (see `BENCHMARKS.md`). At most 64:
    /// [`build`](CacheBuilder::build) refuses more (beyond about one per
    /// core they cost a socket, a task and a Redis client each, and help
    /// nothing).
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().max_connections(2);
    /// # drop(b);
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// The deadline of every backend command (default 100 ms). A `#[cached]`
    /// call whose lookup misses it runs its body instead. A deadline beyond
    /// what the clock can count (up to `Duration::MAX`) means no practical
    /// limit.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().command_timeout(std::time::Duration::from_millis(20));
    /// # drop(b);
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The bound on one eviction of a `#[cache_evict]` function as a whole:
    /// its keys, tags and pattern together (default 2 s; each command in it
    /// still has [`command_timeout`](CacheBuilder::command_timeout)). When it
    /// runs out, the rest of the eviction is abandoned: the function returns
    /// its result, a warning is logged and an error counted, and what was not
    /// removed yet stays until its TTL or the next eviction. Up to
    /// `Duration::MAX`: no practical limit. The direct API's
    /// [`clear_pattern`](crate::Cache::clear_pattern) and
    /// [`invalidate_tags`](crate::Cache::invalidate_tags) are not bounded as a
    /// whole: their caller chooses.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().evict_timeout(std::time::Duration::from_millis(500));
    /// # drop(b);
    /// ```
    pub fn evict_timeout(mut self, timeout: Duration) -> Self {
        self.evict_timeout = timeout;
        self
    }

    /// Failures in a row (timeouts, dropped or refused connections, failed
    /// authentication) that open the circuit breaker in front of Redis or a
    /// custom backend (default 5; error replies such as `OOM` do not count).
    ///
    /// While it is open, no command waits on the backend: `#[cached]` calls
    /// go to the L1 and their body at once, writes and evictions are
    /// skipped (logged and counted, as in an outage), and the direct API
    /// returns an error for which
    /// [`CacheError::is_circuit_open`](crate::CacheError::is_circuit_open)
    /// holds. After [`breaker_cooldown`](CacheBuilder::breaker_cooldown), one
    /// command goes through as a probe; if it succeeds, the breaker closes.
    /// The opening is logged as a warning, the closing at info level, and
    /// both show in [`Stats`](crate::Stats). The memory store has no
    /// breaker: it cannot fail.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().redis("redis://127.0.0.1").breaker_threshold(3);
    /// # drop(b);
    /// ```
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker.threshold = Some(failures);
        self
    }

    /// How long the circuit breaker stays open before one probe goes
    /// through (default 500 ms). See
    /// [`breaker_threshold`](CacheBuilder::breaker_threshold).
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().breaker_cooldown(std::time::Duration::from_secs(2));
    /// # drop(b);
    /// ```
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker.cooldown = cooldown;
        self
    }

    /// No circuit breaker: every command tries the backend and waits up to
    /// [`command_timeout`](CacheBuilder::command_timeout), however many
    /// failed before it.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().without_breaker();
    /// # drop(b);
    /// ```
    pub fn without_breaker(mut self) -> Self {
        self.breaker.threshold = None;
        self
    }

    /// How long one attempt to connect to Redis may take (default 1 s).
    /// Connecting happens in the background of the first commands, which are
    /// still bounded by [`command_timeout`](CacheBuilder::command_timeout).
    /// Up to `Duration::MAX`: no practical limit.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().connect_timeout(std::time::Duration::from_millis(300));
    /// # drop(b);
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest stored value accepted, envelope included (default 8 MiB).
    /// Larger values are not written, and larger bytes found in the store
    /// are treated as a miss without being decoded. `usize::MAX`: no limit
    /// but memory.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().max_value_size(1 << 20);
    /// # drop(b);
    /// ```
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The memory store's bound in bytes of keys plus values (default 64 MiB;
    /// `u64::MAX`: no bound but the process's memory).
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().memory().memory_capacity(16 << 20);
    /// # drop(b);
    /// ```
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_capacity = bytes;
        self
    }

    /// An L1 in front of Redis: up to `bytes` (keys plus encoded values) of
    /// entries kept in this process, decoded, so that a hit costs no round
    /// trip. Without it (the default), every lookup goes to Redis.
    ///
    /// The L1 stays coherent with Redis: any change to a key in Redis (made
    /// by this process, another instance, or any other client, `FLUSHDB`
    /// and expiry included) removes this process's copy, through Redis's
    /// client tracking (`CLIENT TRACKING`, RESP3: Redis 6 or later; against
    /// an older server, which cannot speak RESP3, every command fails and
    /// the cache fails open). When
    /// the connection that brings those invalidations drops, the L1 is
    /// flushed and serves nothing until they flow again. A copy lives no
    /// longer than the entry's remaining lifetime in Redis; functions opt out
    /// with `#[cached(l1 = false)]` or cap it with `l1_ttl`.
    ///
    /// On the memory store, which already lives in the process, this setting
    /// does nothing. A custom backend has no invalidation channel, so
    /// [`build`](CacheBuilder::build) refuses an L1 in front of it.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6379/0")
    ///     .l1_capacity(64 << 20)
    ///     .build()
    ///     .unwrap();
    /// # drop(cache);
    /// ```
    pub fn l1_capacity(mut self, bytes: u64) -> Self {
        self.l1_capacity = Some(bytes);
        self
    }

    /// The Redis database number, overriding the URL's.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().redis("redis://127.0.0.1").db(3);
    /// # drop(b);
    /// ```
    pub fn db(mut self, db: i64) -> Self {
        self.db = Some(db);
        self
    }

    /// The Redis password, overriding the URL's. Never shown in `Debug`
    /// output, logs or errors.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder().redis("redis://127.0.0.1").password("s3cret");
    /// assert!(!format!("{b:?}").contains("s3cret"));
    /// ```
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret(password.into()));
        self
    }

    /// The Redis ACL user, overriding the URL's
    /// (`redis://user:password@host`); with [`password`](CacheBuilder::password)
    /// it authenticates as that user (`AUTH user password`). The README's
    /// "Failure and security" section gives the least-privilege ACL line a
    /// deployment needs.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1")
    ///     .username("cache")
    ///     .password("s3cret");
    /// # drop(b);
    /// ```
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// A PEM file of the certificate authorities to trust for a `rediss://`
    /// URL, instead of the system's (feature `tls`): for a Redis whose
    /// certificate a private CA signed. Read by [`build`](CacheBuilder::build).
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("rediss://redis.internal:6380")
    ///     .tls_ca_file("/etc/redis/ca.pem");
    /// # drop(b);
    /// ```
    pub fn tls_ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls_ca_file = Some(path.as_ref().to_owned());
        self
    }

    /// A client certificate and its private key (PEM files), presented to a
    /// Redis that asks for one (`tls-auth-clients yes`: mutual TLS; feature
    /// `tls`). Read by [`build`](CacheBuilder::build).
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("rediss://redis.internal:6380")
    ///     .tls_ca_file("/etc/redis/ca.pem")
    ///     .tls_client_cert_files("/etc/redis/client.pem", "/etc/redis/client.key");
    /// # drop(b);
    /// ```
    pub fn tls_client_cert_files(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.tls_client_cert = Some((cert.as_ref().to_owned(), key.as_ref().to_owned()));
        self
    }

    /// A PING on every connection to Redis at this interval (default: none;
    /// 30 s is a common choice): it finds a connection gone silent before a
    /// caller does and replaces it, and it feeds the circuit breaker, so
    /// that while the breaker is open the probe is a PING rather than a
    /// caller's lookup. With an L1, its connections are also checked each
    /// second whatever this says.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1")
    ///     .health_check_interval(std::time::Duration::from_secs(30));
    /// # drop(b);
    /// ```
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = Some(interval);
        self
    }

    /// Gives a lookup (`GET`, `EXISTS`: reads, safe to repeat) that fails
    /// with a timeout or a dropped connection one more try, on the next
    /// connection, if time is left before its deadline; the first try then
    /// gets half of the [`command_timeout`](CacheBuilder::command_timeout).
    /// Never a retry past the deadline, never of a write. Default off.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1")
    ///     .max_connections(2)
    ///     .retry_on_timeout(true);
    /// # drop(b);
    /// ```
    pub fn retry_on_timeout(mut self, retry: bool) -> Self {
        self.retry_on_timeout = retry;
        self
    }

    /// Whether a `#[cached]` miss takes the fill lock, so that one caller
    /// across every process sharing the store runs the body while the
    /// others wait for its value (default: on for Redis, off for other
    /// backends; a function opts out with `#[cached(lock = false)]`).
    ///
    /// The lock is a placeholder at the entry's own key, leased for
    /// [`lock_lease`](CacheBuilder::lock_lease) and renewed while the body
    /// runs; the value is written over it with a compare-and-set, so a
    /// holder that lost its lease overwrites nothing. A caller that finds
    /// it waits up to [`lock_wait`](CacheBuilder::lock_wait) for the value,
    /// then runs the body itself. With an L1, the holder's write wakes the
    /// waiters through Redis's invalidations; without, they read again
    /// after a pause from 5 ms growing to 50 ms (jittered). The memory store
    /// needs no lock (its single flight is one); a custom [`Backend`](crate::Backend)
    /// gets one only if it declares
    /// [`compare_and_set`](crate::Capabilities::compare_and_set).
    ///
    /// ```
    /// use cache_runtime::testing::MockBackend;
    /// use std::time::Duration;
    /// // Two "processes" sharing one store, the lock on in both.
    /// let store = MockBackend::new();
    /// let a = store.cache_builder().fill_lock(true).build().unwrap();
    /// let b = store.cache_builder().fill_lock(true).lock_lease(Duration::from_secs(1)).build().unwrap();
    /// # drop((a, b));
    /// ```
    pub fn fill_lock(mut self, on: bool) -> Self {
        self.fill_lock = Some(on);
        self
    }

    /// How long a fill lock lasts without renewal (default 3 s): a holder
    /// renews it every third of this while its body runs, so it bounds how
    /// long the waiters of a holder that died (killed, partitioned) wait
    /// before one of them takes over, not how long a body may take.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1")
    ///     .lock_lease(std::time::Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn lock_lease(mut self, lease: Duration) -> Self {
        self.lock_lease = lease;
        self
    }

    /// How long a caller waits for another process's fill before it runs
    /// the body itself (counted in [`Stats::lock_timeouts`](crate::Stats::lock_timeouts)).
    /// Default: twice the [`lock_lease`](CacheBuilder::lock_lease), long
    /// enough to outlast a holder that died and a successor's body.
    ///
    /// ```
    /// let b = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1")
    ///     .lock_wait(std::time::Duration::from_secs(10));
    /// # drop(b);
    /// ```
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// Checks the settings and makes the cache. Does no I/O.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the first invalid setting: an empty
    /// prefix, a zero TTL preset, timeout or connection count, more than 64
    /// connections, a maximum value size too small for the envelope, or a
    /// Redis URL that does not parse (the message never repeats the URL,
    /// which may hold a password).
    ///
    /// ```
    /// use cache_runtime::{Cache, CacheError};
    /// let err = Cache::builder().redis("http://:pw@host").build().unwrap_err();
    /// assert!(matches!(err, CacheError::Config { setting: "redis", .. }));
    /// assert!(!err.to_string().contains("pw"));
    /// ```
    pub fn build(mut self) -> Result<Cache, CacheError> {
        if self.prefix.is_empty() {
            return Err(CacheError::config(
                "prefix",
                "must not be empty (clear_pattern would reach the whole keyspace)",
            ));
        }
        for (setting, ttl) in [
            ("ttl_presets.short", self.ttl.short),
            ("ttl_presets.default", self.ttl.default),
            ("ttl_presets.long", self.ttl.long),
        ] {
            if ttl.is_zero() {
                return Err(CacheError::config(setting, "must be greater than zero"));
            }
            if ttl > crate::engine::MAX_TTL {
                return Err(CacheError::config(setting, "must be at most 100 years"));
            }
        }
        if self.command_timeout.is_zero() {
            return Err(CacheError::config(
                "command_timeout",
                "must be greater than zero",
            ));
        }
        if self.evict_timeout.is_zero() {
            return Err(CacheError::config(
                "evict_timeout",
                "must be greater than zero",
            ));
        }
        for (setting, d) in [
            ("lock_lease", Some(self.lock_lease)),
            ("lock_wait", self.lock_wait),
        ] {
            match d {
                Some(d) if d.is_zero() => {
                    return Err(CacheError::config(setting, "must be greater than zero"))
                }
                Some(d) if d > Duration::from_secs(86_400) => {
                    return Err(CacheError::config(setting, "must be at most a day"))
                }
                _ => {}
            }
        }
        if self.health_check_interval.is_some_and(|d| d.is_zero()) {
            return Err(CacheError::config(
                "health_check_interval",
                "must be greater than zero",
            ));
        }
        if self.breaker.threshold == Some(0) {
            return Err(CacheError::config(
                "breaker_threshold",
                "must be at least 1 (use without_breaker for none)",
            ));
        }
        if self.breaker.cooldown.is_zero() {
            return Err(CacheError::config(
                "breaker_cooldown",
                "must be greater than zero",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(CacheError::config(
                "connect_timeout",
                "must be greater than zero",
            ));
        }
        if self.max_connections == 0 {
            return Err(CacheError::config("max_connections", "must be at least 1"));
        }
        if self.max_connections > MAX_CONNECTIONS {
            return Err(CacheError::config(
                "max_connections",
                format!(
                    "must be at most {MAX_CONNECTIONS}, got {}: one multiplexed connection \
                     already pipelines every concurrent command",
                    self.max_connections
                ),
            ));
        }
        if self.max_value_size <= envelope::HEADER_LEN {
            return Err(CacheError::config(
                "max_value_size",
                format!(
                    "must be larger than the {}-byte envelope header",
                    envelope::HEADER_LEN
                ),
            ));
        }
        if let CodecImpl::Custom(c) = &self.codec.0 {
            if c.id() < 128 {
                return Err(CacheError::config(
                    "codec",
                    format!(
                        "codec `{}` has id {}; ids below 128 are reserved",
                        c.name(),
                        c.id()
                    ),
                ));
            }
        }
        if self.l1_capacity == Some(0) {
            return Err(CacheError::config(
                "l1_capacity",
                "must be greater than zero",
            ));
        }
        let mut l1 = None;
        if self.disabled {
            // Checked like any other, then never used.
            if matches!(
                self.backend,
                BackendChoice::Redis(_) | BackendChoice::RedisCluster(_)
            ) {
                self.redis_target()?;
            }
            self.backend = BackendChoice::Memory;
            self.memory_capacity = 1;
            self.l1_capacity = None;
            self.health_check_interval = None;
            self.fill_lock = Some(false);
        }
        let tier = match self.backend {
            // In-process already: an L1 in front would only copy it.
            BackendChoice::Memory => Store::Memory(MemoryBackend::new(self.memory_capacity)),
            BackendChoice::Custom(b) => {
                let custom = Custom(b);
                if self.l1_capacity.is_some() && !custom.caps().invalidations {
                    return Err(CacheError::config(
                        "l1_capacity",
                        format!(
                            "the `{}` backend reports no changes to this process, so an L1 in \
                             front of it could serve stale values; remove l1_capacity",
                            custom.kind()
                        ),
                    ));
                }
                Store::Custom(custom)
            }
            BackendChoice::Redis(_) | BackendChoice::RedisCluster(_) => {
                let (target, tls) = self.redis_target()?;
                let push = self.l1_capacity.map(|capacity| {
                    let cache = Arc::new(L1::new(capacity));
                    l1 = Some(Arc::clone(&cache));
                    Arc::new(move |info| cache.on_push(info)) as PushHandler
                });
                let setting = match target {
                    Target::Single(_) => "redis",
                    Target::Cluster(_) => "redis_cluster",
                };
                let backend = RedisBackend::new(RedisSettings {
                    target,
                    tls,
                    connections: self.max_connections,
                    connect_timeout: self.connect_timeout,
                    push,
                })
                .map_err(|_| {
                    CacheError::config(
                        setting,
                        "the Redis client rejected these connection settings",
                    )
                })?;
                tracing::debug!(
                    address = backend.address(),
                    l1 = l1.is_some(),
                    "redis backend configured"
                );
                Store::Redis(Box::new(backend))
            }
        };
        let lock = self.fill_lock.unwrap_or(matches!(tier, Store::Redis(_)));
        let settings = Settings {
            prefix: self.prefix,
            codec: self.codec.0,
            ttl: self.ttl,
            command_timeout: self.command_timeout,
            evict_timeout: self.evict_timeout,
            max_value_size: self.max_value_size,
            breaker: self.breaker,
            health_check_interval: self.health_check_interval,
            retry_on_timeout: self.retry_on_timeout,
            disabled: self.disabled,
            lock: lock.then(|| crate::engine::LockSettings {
                lease: self.lock_lease,
                wait: self
                    .lock_wait
                    .unwrap_or_else(|| crate::engine::LockSettings::wait_for(self.lock_lease)),
            }),
        };
        let engine = Arc::new_cyclic(|me| Engine::new(settings, tier, l1, me.clone()));
        // Outside a runtime, the first command starts them.
        if tokio::runtime::Handle::try_current().is_ok() {
            engine.start_health_checks();
        }
        Ok(Cache { engine })
    }
}

impl CacheBuilder {
    /// The server or the cluster's seed nodes, with the builder's
    /// overrides applied, and the TLS files.
    fn redis_target(&self) -> Result<(Target, Option<TlsFiles>), CacheError> {
        match &self.backend {
            BackendChoice::RedisCluster(nodes) => {
                const SETTING: &str = "redis_cluster";
                if nodes.is_empty() {
                    return Err(CacheError::config(SETTING, "needs at least one node's URL"));
                }
                if self.db.is_some_and(|db| db != 0) {
                    return Err(CacheError::config(
                        "db",
                        "a Redis Cluster has only database 0",
                    ));
                }
                let mut infos = Vec::with_capacity(nodes.len());
                let mut files = None;
                for url in nodes {
                    let (info, tls) = self.connection_info(SETTING, &url.0)?;
                    if info.redis_settings().db() != 0 {
                        return Err(CacheError::config(
                            SETTING,
                            "a Redis Cluster has only database 0; remove the /db from the URLs",
                        ));
                    }
                    if matches!(info.addr(), redis::ConnectionAddr::Unix(_)) {
                        return Err(CacheError::config(
                            SETTING,
                            "cluster nodes are reached over TCP (the cluster names its nodes by \
                             host and port), not unix sockets",
                        ));
                    }
                    if let Some(first) = infos.first() {
                        let first: &redis::ConnectionInfo = first;
                        let tls = |i: &redis::ConnectionInfo| {
                            matches!(i.addr(), redis::ConnectionAddr::TcpTls { .. })
                        };
                        let same = tls(first) == tls(&info)
                            && first.redis_settings().username()
                                == info.redis_settings().username()
                            && first.redis_settings().password()
                                == info.redis_settings().password();
                        if !same {
                            return Err(CacheError::config(
                                SETTING,
                                "every node's URL needs the same scheme, user and password",
                            ));
                        }
                    }
                    files = tls;
                    infos.push(info);
                }
                Ok((Target::Cluster(infos), files))
            }
            BackendChoice::Redis(url) => {
                let (info, tls) = self.connection_info("redis", &url.0)?;
                Ok((Target::Single(info), tls))
            }
            _ => unreachable!("only called for Redis"),
        }
    }

    /// The connection settings of a Redis URL, with the builder's
    /// overrides (database, user, password) and TLS files applied. Errors
    /// name the setting and never repeat the URL or the password.
    fn connection_info(
        &self,
        setting: &'static str,
        url: &str,
    ) -> Result<(redis::ConnectionInfo, Option<TlsFiles>), CacheError> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        let tls = scheme.eq_ignore_ascii_case("rediss");
        if tls && !cfg!(feature = "tls") {
            return Err(CacheError::config(
                setting,
                "a rediss:// URL needs cache-runtime's `tls` feature",
            ));
        }
        if !tls {
            let setting = if self.tls_ca_file.is_some() {
                Some("tls_ca_file")
            } else if self.tls_client_cert.is_some() {
                Some("tls_client_cert_files")
            } else {
                None
            };
            if let Some(setting) = setting {
                return Err(CacheError::config(
                    setting,
                    "TLS files need a rediss:// URL; this one is not TLS",
                ));
            }
        }
        if tls && url.ends_with("#insecure") && !cfg!(feature = "tls-insecure") {
            return Err(CacheError::config(
                setting,
                "certificate checks can be turned off (`#insecure`) only with cache-runtime's \
                 `tls-insecure` feature; trust a private CA with tls_ca_file instead",
            ));
        }
        let mut info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|_| {
            CacheError::config(
                setting,
                "not a valid Redis URL; expected redis[s]://[[user]:password@]host[:port][/db] or unix:///path",
            )
        })?;
        let mut settings = info.redis_settings().clone();
        if let Some(db) = self.db {
            if db < 0 {
                return Err(CacheError::config("db", "must not be negative"));
            }
            settings = settings.set_db(db);
        }
        if let Some(username) = &self.username {
            if username.is_empty() {
                return Err(CacheError::config("username", "must not be empty"));
            }
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(&password.0);
        }
        // No `CLIENT SETINFO` on connect: one command fewer for the ACL
        // rules to allow (Redis 7.0 does not know it), one round trip fewer.
        settings = settings.set_skip_set_lib_name();
        info = info.set_redis_settings(settings);
        let files = if tls { read_tls_files(self)? } else { None };
        Ok((info, files))
    }
}

/// The TLS files of a `rediss://` connection, read at build time.
#[cfg(feature = "tls")]
pub(crate) type TlsFiles = redis::TlsCertificates;
#[cfg(not(feature = "tls"))]
pub(crate) type TlsFiles = std::convert::Infallible;

/// The TLS files the builder names, read (none named: `None`).
#[cfg(feature = "tls")]
fn read_tls_files(builder: &CacheBuilder) -> Result<Option<TlsFiles>, CacheError> {
    let read = |setting: &'static str, path: &Path| {
        std::fs::read(path).map_err(|e| {
            CacheError::config(setting, format!("cannot read `{}`: {e}", path.display()))
        })
    };
    let root_cert = match &builder.tls_ca_file {
        Some(path) => Some(read("tls_ca_file", path)?),
        None => None,
    };
    let client_tls = match &builder.tls_client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read("tls_client_cert_files", cert)?,
            client_key: read("tls_client_cert_files", key)?,
        }),
        None => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

#[cfg(not(feature = "tls"))]
fn read_tls_files(_: &CacheBuilder) -> Result<Option<TlsFiles>, CacheError> {
    Ok(None)
}

/// The environment variables [`Cache::from_env`] reads, and the builder
/// setting each one maps to.
const ENV_SETTINGS: [(&str, &str); 16] = [
    ("REDIS_URL", "redis"),
    ("REDIS_CLUSTER_NODES", "redis_cluster"),
    ("REDIS_DB", "db"),
    ("REDIS_PASSWORD", "password"),
    ("REDIS_USERNAME", "username"),
    ("REDIS_TLS_CA_FILE", "tls_ca_file"),
    ("REDIS_TLS_CERT_FILE", "tls_client_cert_files"),
    ("REDIS_TLS_KEY_FILE", "tls_client_cert_files"),
    ("REDIS_HEALTH_CHECK_INTERVAL", "health_check_interval"),
    ("REDIS_MAX_CONNECTIONS", "max_connections"),
    ("CACHE_PREFIX", "prefix"),
    ("CACHE_L1_CAPACITY", "l1_capacity"),
    ("CACHE_TTL_SHORT", "ttl_presets.short"),
    ("CACHE_TTL_DEFAULT", "ttl_presets.default"),
    ("CACHE_TTL_LONG", "ttl_presets.long"),
    ("CACHE_DISABLED", "disabled"),
];

impl Cache {
    /// A cache configured from the environment:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `REDIS_URL` | Redis to use; unset or empty: the memory store | memory store |
    /// | `REDIS_CLUSTER_NODES` | instead of `REDIS_URL`: a Redis Cluster, some of its nodes' URLs separated by commas ([`redis_cluster`](CacheBuilder::redis_cluster)) | none |
    /// | `REDIS_DB` | database number, overriding the URL's | the URL's |
    /// | `REDIS_PASSWORD` | password, overriding the URL's | the URL's |
    /// | `REDIS_USERNAME` | ACL user, overriding the URL's | the URL's |
    /// | `REDIS_TLS_CA_FILE` | CA certificates (PEM) to trust for `rediss://` ([`tls_ca_file`](CacheBuilder::tls_ca_file)) | the system's |
    /// | `REDIS_TLS_CERT_FILE` / `REDIS_TLS_KEY_FILE` | client certificate and key (PEM), both or neither | none |
    /// | `REDIS_HEALTH_CHECK_INTERVAL` | seconds between health checks ([`health_check_interval`](CacheBuilder::health_check_interval)) | none |
    /// | `REDIS_MAX_CONNECTIONS` | multiplexed connections, at most 64 | 1 |
    /// | `CACHE_PREFIX` | key prefix | `cache` |
    /// | `CACHE_L1_CAPACITY` | bytes of L1 in front of Redis ([`l1_capacity`](CacheBuilder::l1_capacity)) | no L1 |
    /// | `CACHE_TTL_SHORT` / `_DEFAULT` / `_LONG` | TTL presets, seconds | 300 / 3600 / 86400 |
    /// | `CACHE_DISABLED` | `1` / `true` / `yes` / `on`: caching off ([`disabled`](CacheBuilder::disabled)); `0` / `false` / `no` / `off`: on | on |
    ///
    /// `REDIS_DB`, `REDIS_PASSWORD`, `REDIS_USERNAME` and the TLS files
    /// apply only with `REDIS_URL` or `REDIS_CLUSTER_NODES` (setting both
    /// is an error). When `REDIS_TLS_CERT_FILE` and
    /// `REDIS_TLS_KEY_FILE` disagree, the error names the one at fault.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] whose `setting` is the variable at fault; the
    /// message never repeats `REDIS_URL` or `REDIS_PASSWORD`.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::from_env().unwrap();
    /// println!("caching in {}", cache.backend_kind());
    /// ```
    pub fn from_env() -> Result<Cache, CacheError> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    pub(crate) fn from_vars(
        get: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Cache, CacheError> {
        let var = |name: &'static str| -> Result<Option<String>, CacheError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|_| CacheError::config(name, "is not valid UTF-8")),
            }
        };
        let number = |name: &'static str| -> Result<Option<u64>, CacheError> {
            var(name)?
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        CacheError::config(
                            name,
                            format!("expected a non-negative whole number, got `{v}`"),
                        )
                    })
                })
                .transpose()
        };
        let mut b = Cache::builder();
        if let Some(v) = var("CACHE_DISABLED")? {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => b = b.disabled(),
                "0" | "false" | "no" | "off" => {}
                _ => {
                    return Err(CacheError::config(
                        "CACHE_DISABLED",
                        format!("expected 1, true, yes or on (or 0, false, no, off), got `{v}`"),
                    ))
                }
            }
        }
        let url = var("REDIS_URL")?;
        let nodes = var("REDIS_CLUSTER_NODES")?;
        if url.is_some() && nodes.is_some() {
            return Err(CacheError::config(
                "REDIS_CLUSTER_NODES",
                "set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both",
            ));
        }
        if url.is_some() || nodes.is_some() {
            b = match (url, nodes) {
                (Some(url), _) => b.redis(url),
                (None, Some(nodes)) => b.redis_cluster(
                    nodes
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
                (None, None) => unreachable!(),
            };
            if let Some(db) = number("REDIS_DB")? {
                b = b.db(i64::try_from(db)
                    .map_err(|_| CacheError::config("REDIS_DB", "is too large"))?);
            }
            if let Some(password) = var("REDIS_PASSWORD")? {
                b = b.password(password);
            }
            if let Some(username) = var("REDIS_USERNAME")? {
                b = b.username(username);
            }
            if let Some(ca) = var("REDIS_TLS_CA_FILE")? {
                b = b.tls_ca_file(ca);
            }
            match (var("REDIS_TLS_CERT_FILE")?, var("REDIS_TLS_KEY_FILE")?) {
                (Some(cert), Some(key)) => b = b.tls_client_cert_files(cert, key),
                (None, None) => {}
                (Some(_), None) => {
                    return Err(CacheError::config(
                        "REDIS_TLS_KEY_FILE",
                        "must be set with REDIS_TLS_CERT_FILE (the client certificate's key)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(CacheError::config(
                        "REDIS_TLS_CERT_FILE",
                        "must be set with REDIS_TLS_KEY_FILE (the key's certificate)",
                    ))
                }
            }
        }
        if let Some(secs) = number("REDIS_HEALTH_CHECK_INTERVAL")? {
            b = b.health_check_interval(Duration::from_secs(secs));
        }
        if let Some(n) = number("REDIS_MAX_CONNECTIONS")? {
            b = b.max_connections(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(bytes) = number("CACHE_L1_CAPACITY")? {
            b = b.l1_capacity(bytes);
        }
        if let Some(prefix) = var("CACHE_PREFIX")? {
            b = b.prefix(prefix);
        }
        let secs = |name, default: Duration| -> Result<Duration, CacheError> {
            Ok(number(name)?.map_or(default, Duration::from_secs))
        };
        let defaults = TtlPresets::default();
        b = b.ttl_presets(
            secs("CACHE_TTL_SHORT", defaults.short)?,
            secs("CACHE_TTL_DEFAULT", defaults.default)?,
            secs("CACHE_TTL_LONG", defaults.long)?,
        );
        b.build().map_err(|e| match e {
            CacheError::Config { setting, reason } => CacheError::Config {
                setting: ENV_SETTINGS
                    .iter()
                    .find(|(_, s)| *s == setting)
                    .map_or(setting, |(env, _)| env),
                reason,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn from(vars: &[(&str, &str)]) -> Result<Cache, CacheError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Cache::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn cache_disabled_turns_caching_off_and_a_bad_value_is_named() {
        for on in ["1", "true", "YES", " on "] {
            let cache =
                from(&[("CACHE_DISABLED", on), ("REDIS_URL", "redis://127.0.0.1:1")]).unwrap();
            assert!(cache.is_disabled(), "{on}");
            assert_eq!(cache.backend_kind(), "disabled");
        }
        for off in ["0", "false", "no", "off", ""] {
            assert!(
                !from(&[("CACHE_DISABLED", off)]).unwrap().is_disabled(),
                "{off:?}"
            );
        }
        let err = from(&[("CACHE_DISABLED", "maybe")]).unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Config {
                    setting: "CACHE_DISABLED",
                    ..
                }
            ),
            "{err}"
        );
        // Still checked while off, and named by its variable.
        let err = from(&[("CACHE_DISABLED", "1"), ("CACHE_TTL_SHORT", "soon")]).unwrap_err();
        assert!(
            !matches!(
                err,
                CacheError::Config {
                    setting: "CACHE_DISABLED",
                    ..
                }
            ),
            "{err}"
        );
    }

    fn setting_of(e: CacheError) -> &'static str {
        match e {
            CacheError::Config { setting, .. } => setting,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn empty_environment_is_the_memory_store() {
        let cache = from(&[]).unwrap();
        assert_eq!(cache.backend_kind(), "memory");
        assert_eq!(cache.prefix(), "cache");
        assert_eq!(cache.engine.ttl, TtlPresets::default());
    }

    #[test]
    fn variables_are_applied() {
        let cache = from(&[
            ("REDIS_URL", "redis://127.0.0.1:1/0"),
            ("REDIS_DB", "3"),
            ("REDIS_MAX_CONNECTIONS", "2"),
            ("CACHE_PREFIX", "shop"),
            ("CACHE_TTL_SHORT", "1"),
            ("CACHE_TTL_DEFAULT", "2"),
            ("CACHE_TTL_LONG", "3"),
        ])
        .unwrap();
        assert_eq!(cache.backend_kind(), "redis");
        assert_eq!(cache.prefix(), "shop");
        assert_eq!(cache.engine.ttl.long, Duration::from_secs(3));
        let debug = format!("{cache:?}");
        assert!(debug.contains("127.0.0.1:1/3"), "{debug}");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            setting_of(from(&[("REDIS_URL", "redis://h"), ("REDIS_DB", "x")]).unwrap_err()),
            "REDIS_DB"
        );
        assert_eq!(
            setting_of(from(&[("REDIS_MAX_CONNECTIONS", "0")]).unwrap_err()),
            "REDIS_MAX_CONNECTIONS"
        );
        assert_eq!(
            setting_of(from(&[("CACHE_TTL_LONG", "0")]).unwrap_err()),
            "CACHE_TTL_LONG"
        );
        assert_eq!(
            setting_of(from(&[("CACHE_TTL_SHORT", "-5")]).unwrap_err()),
            "CACHE_TTL_SHORT"
        );
    }

    #[test]
    fn credentials_never_leak() {
        let secret = "hunter2-very-secret";
        let bad_url = format!("notredis://user:{secret}@host:6379");
        let err = from(&[("REDIS_URL", &bad_url)]).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
        assert_eq!(setting_of(err), "REDIS_URL");

        let url = format!("redis://user:{secret}@127.0.0.1:6379/0");
        let cache = from(&[("REDIS_URL", &url), ("REDIS_PASSWORD", secret)]).unwrap();
        assert!(!format!("{cache:?}").contains(secret));
        let builder = Cache::builder().redis(&url).password(secret);
        assert!(!format!("{builder:?}").contains(secret));
    }

    #[test]
    fn cluster_settings_are_checked_and_named() {
        let secret = "hunter2-very-secret";
        let nodes = format!("redis://u:{secret}@127.0.0.1:7000, redis://u:{secret}@127.0.0.1:7001");
        let cache = from(&[("REDIS_CLUSTER_NODES", &nodes)]).unwrap();
        assert_eq!(cache.backend_kind(), "redis-cluster");
        assert!(!format!("{cache:?}").contains(secret), "{cache:?}");

        let e = |b: CacheBuilder| b.build().unwrap_err();
        let err = e(Cache::builder().redis_cluster([format!("notredis://u:{secret}@h:1")]));
        assert!(!err.to_string().contains(secret), "{err}");
        assert_eq!(setting_of(err), "redis_cluster");
        assert_eq!(
            setting_of(e(Cache::builder().redis_cluster(Vec::<String>::new()))),
            "redis_cluster"
        );
        assert_eq!(
            setting_of(e(
                Cache::builder().redis_cluster(["redis://127.0.0.1:7000/2"])
            )),
            "redis_cluster"
        );
        assert_eq!(
            setting_of(e(Cache::builder()
                .redis_cluster(["redis://127.0.0.1:7000"])
                .db(1))),
            "db"
        );
        let mixed = e(Cache::builder().redis_cluster([
            format!("redis://u:{secret}@127.0.0.1:7000"),
            "redis://127.0.0.1:7001".to_owned(),
        ]));
        assert!(!err_text(&mixed).contains(secret));
        assert_eq!(setting_of(mixed), "redis_cluster");
        assert_eq!(
            setting_of(from(&[("REDIS_CLUSTER_NODES", "redis://h:1/x")]).unwrap_err()),
            "REDIS_CLUSTER_NODES"
        );
        assert_eq!(
            setting_of(
                from(&[
                    ("REDIS_CLUSTER_NODES", "redis://h:1"),
                    ("REDIS_URL", "redis://h:2")
                ])
                .unwrap_err()
            ),
            "REDIS_CLUSTER_NODES"
        );
    }

    fn err_text(e: &CacheError) -> String {
        format!("{e} {e:?}")
    }

    #[test]
    fn builder_rejects_bad_settings() {
        let e = |b: CacheBuilder| setting_of(b.build().unwrap_err());
        assert_eq!(e(Cache::builder().prefix("")), "prefix");
        assert_eq!(
            e(Cache::builder().command_timeout(Duration::ZERO)),
            "command_timeout"
        );
        assert_eq!(e(Cache::builder().max_value_size(4)), "max_value_size");
        assert_eq!(e(Cache::builder().redis("redis://h").db(-1)), "db");
        let z = Duration::ZERO;
        let s = Duration::from_secs(1);
        assert_eq!(
            e(Cache::builder().ttl_presets(s, z, s)),
            "ttl_presets.default"
        );
    }

    #[test]
    fn an_l1_needs_a_store_that_reports_changes() {
        #[derive(Debug)]
        struct Silent;
        impl Backend for Silent {
            fn get<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::BoxFuture<'a, Result<Option<bytes::Bytes>, crate::BackendError>>
            {
                Box::pin(async { Ok(None) })
            }
            fn set<'a>(
                &'a self,
                _: &'a str,
                _: bytes::Bytes,
                _: Duration,
            ) -> crate::BoxFuture<'a, Result<(), crate::BackendError>> {
                Box::pin(async { Ok(()) })
            }
            fn delete<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::BoxFuture<'a, Result<bool, crate::BackendError>> {
                Box::pin(async { Ok(false) })
            }
            fn exists<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::BoxFuture<'a, Result<bool, crate::BackendError>> {
                Box::pin(async { Ok(false) })
            }
            fn clear_pattern<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::BoxFuture<'a, Result<u64, crate::BackendError>> {
                Box::pin(async { Ok(0) })
            }
            fn kind(&self) -> &'static str {
                "silent"
            }
        }
        let err = Cache::builder()
            .backend(Silent)
            .l1_capacity(1 << 20)
            .build()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`silent` backend reports no changes"),
            "{err}"
        );
        assert_eq!(setting_of(err), "l1_capacity");
        assert!(
            Cache::builder().backend(Silent).build().is_ok(),
            "no L1, no need"
        );

        let e = |b: CacheBuilder| setting_of(b.build().unwrap_err());
        assert_eq!(
            e(Cache::builder().redis("redis://h").l1_capacity(0)),
            "l1_capacity"
        );
        // The memory store lives in the process already: nothing to put in front.
        let memory = Cache::builder()
            .memory()
            .l1_capacity(1 << 20)
            .build()
            .unwrap();
        assert!(memory.engine.l1.is_none());
        let redis = Cache::builder()
            .redis("redis://h")
            .l1_capacity(1 << 20)
            .build()
            .unwrap();
        assert!(redis.engine.l1.is_some());
        assert!(Cache::builder()
            .redis("redis://h")
            .build()
            .unwrap()
            .engine
            .l1
            .is_none());
    }

    #[test]
    fn the_l1_is_configured_from_the_environment() {
        let cache = from(&[
            ("REDIS_URL", "redis://127.0.0.1:1/0"),
            ("CACHE_L1_CAPACITY", "1048576"),
        ])
        .unwrap();
        assert!(cache.engine.l1.is_some());
        assert_eq!(
            setting_of(
                from(&[("REDIS_URL", "redis://h"), ("CACHE_L1_CAPACITY", "0")]).unwrap_err()
            ),
            "CACHE_L1_CAPACITY"
        );
        assert_eq!(
            setting_of(from(&[("CACHE_L1_CAPACITY", "lots")]).unwrap_err()),
            "CACHE_L1_CAPACITY"
        );
    }

    #[test]
    fn security_and_failure_settings_are_checked_and_named() {
        let redis = || Cache::builder().redis("redis://127.0.0.1:1/0");
        let setting = |b: CacheBuilder| setting_of(b.build().unwrap_err());
        assert_eq!(setting(redis().breaker_threshold(0)), "breaker_threshold");
        assert_eq!(
            setting(redis().breaker_cooldown(Duration::ZERO)),
            "breaker_cooldown"
        );
        assert_eq!(
            setting(redis().health_check_interval(Duration::ZERO)),
            "health_check_interval"
        );
        assert_eq!(setting(redis().username("")), "username");
        // TLS files need a TLS URL; a file that cannot be read is named.
        assert_eq!(setting(redis().tls_ca_file("/ca.pem")), "tls_ca_file");
        assert_eq!(
            setting(redis().tls_client_cert_files("/c.pem", "/k.pem")),
            "tls_client_cert_files"
        );
        let tls = || Cache::builder().redis("rediss://127.0.0.1:1/0");
        if cfg!(feature = "tls") {
            let err = tls()
                .tls_ca_file("/nonexistent/ca.pem")
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
            assert_eq!(setting_of(err), "tls_ca_file");
        }
        // Certificate checks stay on unless asked for by feature and URL.
        if !cfg!(feature = "tls-insecure") {
            let err = Cache::builder()
                .redis("rediss://:pw@127.0.0.1:1/#insecure")
                .build()
                .unwrap_err();
            assert!(!err.to_string().contains("pw"), "{err}");
            assert_eq!(setting_of(err), "redis");
        }
        // A TLS URL builds (connecting happens later).
        if cfg!(feature = "tls") {
            tls().build().unwrap();
        } else {
            assert_eq!(setting(tls()), "redis");
        }
    }

    #[test]
    fn security_settings_come_from_the_environment() {
        let cache = from(&[
            ("REDIS_URL", "redis://127.0.0.1:1/0"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_HEALTH_CHECK_INTERVAL", "30"),
        ])
        .unwrap();
        assert_eq!(
            cache.engine.health_check_interval(),
            Some(Duration::from_secs(30))
        );
        let url = [("REDIS_URL", "rediss://127.0.0.1:1/0")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = url.to_vec();
            vars.extend_from_slice(extra);
            from(&vars).unwrap_err()
        };
        assert_eq!(
            setting_of(with(&[("REDIS_TLS_CERT_FILE", "/c.pem")])),
            "REDIS_TLS_KEY_FILE"
        );
        assert_eq!(
            setting_of(with(&[("REDIS_TLS_KEY_FILE", "/k.pem")])),
            "REDIS_TLS_CERT_FILE"
        );
        if cfg!(feature = "tls") {
            assert_eq!(
                setting_of(with(&[("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")])),
                "REDIS_TLS_CA_FILE"
            );
        }
        assert_eq!(
            setting_of(with(&[("REDIS_HEALTH_CHECK_INTERVAL", "soon")])),
            "REDIS_HEALTH_CHECK_INTERVAL"
        );
    }

    #[test]
    fn ttls_beyond_a_century_are_refused() {
        let huge = u64::MAX.to_string();
        assert_eq!(
            setting_of(from(&[("CACHE_TTL_LONG", &huge)]).unwrap_err()),
            "CACHE_TTL_LONG"
        );
        let year = Duration::from_secs(365 * 24 * 3600);
        let e = Cache::builder()
            .ttl_presets(year, year, year * 101)
            .build()
            .unwrap_err();
        assert_eq!(setting_of(e), "ttl_presets.long");
    }

    #[test]
    fn connection_counts_above_the_limit_are_refused_not_a_panic() {
        let e = |b: CacheBuilder| b.build().unwrap_err();
        for n in [usize::MAX, MAX_CONNECTIONS + 1] {
            let err = e(Cache::builder().redis("redis://h").max_connections(n));
            assert!(err.to_string().contains("at most 64"), "{err}");
            assert_eq!(setting_of(err), "max_connections");
            // The memory store opens no connections, but the setting is
            // checked the same everywhere.
            assert_eq!(
                setting_of(e(Cache::builder().max_connections(n))),
                "max_connections"
            );
        }
        assert!(Cache::builder()
            .redis("redis://h")
            .max_connections(MAX_CONNECTIONS)
            .build()
            .is_ok());
        let huge = u64::MAX.to_string();
        for url in ["redis://127.0.0.1:1/0", ""] {
            let err = from(&[("REDIS_URL", url), ("REDIS_MAX_CONNECTIONS", &huge)]).unwrap_err();
            assert_eq!(setting_of(err), "REDIS_MAX_CONNECTIONS");
        }
    }

    #[tokio::test]
    async fn the_longest_timeouts_and_largest_sizes_are_accepted_and_work() {
        let cache = Cache::builder()
            .memory()
            .command_timeout(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .max_value_size(usize::MAX)
            .memory_capacity(u64::MAX)
            .build()
            .unwrap();
        cache
            .set("k", &5u32, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(5));
        // On Redis (nobody listens on port 1: refused at once), with the
        // largest L1: every command fails, none panics or waits.
        let cache = Cache::builder()
            .redis("redis://127.0.0.1:1/0")
            .command_timeout(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .max_value_size(usize::MAX)
            .l1_capacity(u64::MAX)
            .build()
            .unwrap();
        assert!(cache.get::<u32>("k").await.is_err());
        assert!(cache
            .set("k", &5u32, Duration::from_secs(60))
            .await
            .is_err());
    }

    #[test]
    fn defaults_are_as_documented() {
        let b = CacheBuilder::new();
        assert_eq!(b.max_connections, 1);
        assert_eq!(b.command_timeout, Duration::from_millis(100));
        assert_eq!(b.evict_timeout, Duration::from_secs(2));
        assert_eq!(b.connect_timeout, Duration::from_secs(1));
        assert_eq!(b.max_value_size, 8 * 1024 * 1024);
        assert_eq!(b.memory_capacity, 64 * 1024 * 1024);
        assert_eq!(b.prefix, "cache");
        assert_eq!(
            b.ttl,
            TtlPresets {
                short: Duration::from_secs(300),
                default: Duration::from_secs(3600),
                long: Duration::from_secs(86_400),
            }
        );
    }
}
