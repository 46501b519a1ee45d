//! Write-behind: writes that update the cache at once and reach the
//! database later, in batches.
//!
//! [`WriteBehind::write`] stores the value under its key (readable with
//! [`Cache::get`] at once) and records the change; a background flusher
//! hands the recorded changes to a [`Sink`] (usually a database upsert)
//! every [`interval`](WriteBehindBuilder::interval) or every
//! [`batch_size`](WriteBehindBuilder::batch_size) changes, whichever comes
//! first.
//!
//! ```
//! use cache_runtime::write_behind::{Item, Version, WriteBehind};
//! use cache_runtime::Cache;
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_runtime::CacheError> {
//! let cache = Cache::builder().memory().prefix("shop").build()?; // or .redis(url)
//! // The "database": key -> (value, version of the write that stored it).
//! let database = Arc::new(Mutex::new(HashMap::<String, (u32, Version)>::new()));
//! let db = database.clone();
//! let orders: WriteBehind<u32> = cache
//!     .write_behind("orders", move |batch: Vec<Item<u32>>| {
//!         let db = db.clone();
//!         async move {
//!             // One upsert per item, keyed by `item.key`: the newest version
//!             // wins, so a repeated or late delivery changes nothing.
//!             let mut rows = db.lock().unwrap();
//!             for item in batch {
//!                 let row = rows.entry(item.key).or_insert((item.value, item.version));
//!                 if item.version >= row.1 {
//!                     *row = (item.value, item.version);
//!                 }
//!             }
//!             Ok::<_, std::io::Error>(())
//!         }
//!     })
//!     .start()?;
//!
//! orders.write("order:1", &3).await?;
//! let v = orders.write("order:1", &4).await?; // same key before a flush: delivered once
//! assert_eq!(cache.get::<u32>("order:1").await?, Some(4)); // readable at once
//! orders.flush().await?; // everything written so far has reached the sink
//! assert_eq!(database.lock().unwrap()["order:1"], (4, v));
//! orders.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # On Redis
//!
//! A write is one `MULTI`/`EXEC` transaction: `SET key value PX ttl` and
//! `XADD {prefix}:__wb:{name} * k key v value`. The stream is read by a
//! consumer group (`flushers`), one consumer per handle, on a connection of
//! its own (blocking reads never hold up the cache's commands). A batch is
//! acknowledged and deleted from the stream (`XACK` + `XDEL`) only after the
//! sink accepted it, so the stream holds only what has not reached the
//! database yet.
//!
//! - **Nothing is lost when a process dies.** A flusher starts with the
//!   entries it had read but not acknowledged under its own consumer name,
//!   then claims (`XAUTOCLAIM`) those other consumers left unacknowledged for
//!   longer than [`claim_idle`](WriteBehindBuilder::claim_idle), and keeps
//!   claiming them every `claim_idle` while it runs.
//! - **Delivery is at least once.** A process killed after its sink
//!   succeeded but before the acknowledgement, or a claim from a consumer
//!   that was only slow, delivers a batch again. Each [`Item`] carries the
//!   [`Version`] of its write (the stream entry id, increasing with each
//!   write to the stream): make the sink's upsert keep the highest version
//!   and a repeated or late delivery changes nothing.
//! - **Order.** Within a batch, several writes to one key reach the sink
//!   once, with the latest value. A failing sink is retried with the same
//!   batch (exponential backoff, capped at
//!   [`max_backoff`](WriteBehindBuilder::max_backoff)) and nothing further is
//!   read meanwhile, so one flusher delivers each key's writes in order;
//!   across flushers (several processes, claims) only the versions order
//!   them.
//! - **Entries that cannot be decoded** (written by another version of the
//!   value type or another codec, or not by this library at all) are never
//!   dropped silently: in the same transaction as the batch's
//!   acknowledgement they are moved to the dead-letter stream
//!   `{prefix}:__wb:{name}:dead` (on a cluster, in the stream's slot:
//!   `{prefix}:__wb:{name}{{prefix}:__wb:{name}}:dead`) with their
//!   original fields plus `id` (the
//!   original version) and `error`; each counts in
//!   [`Stats::decode_failures`](crate::Stats::decode_failures) and is logged
//!   at error level. Only readable entries compete for their key, so an
//!   older readable write of a key whose latest write is unreadable is still
//!   delivered. Inspect the dead-letter stream with `XRANGE`; it is never
//!   trimmed by the library. A value that decoded once but not when its
//!   batch is retried after a sink failure (a codec or `Deserialize` with
//!   state of its own) is treated the same way.
//! - **Managed Redis.** Where `CLIENT ID` is refused, the flusher reads with
//!   short blocking reads (50 ms) instead of ending a long one early with
//!   `CLIENT UNBLOCK`: it works the same, with a little more traffic.
//!
//! ## What Redis must keep
//!
//! The stream is the only copy of what the sink has not stored yet:
//!
//! - It has no TTL, and must not be evicted: run Redis with
//!   `maxmemory-policy noeviction`, or a `volatile-*` policy (which evicts
//!   only keys with a TTL; the cached values have one, the stream does not).
//!   An `allkeys-*` policy may evict the stream and lose its writes.
//! - For writes to survive a restart of Redis itself, enable persistence
//!   (`appendonly yes`); without it they survive only the death of the
//!   application process.
//! - It lives under the cache's prefix: `clear_pattern("*")`, `FLUSHDB` or
//!   `FLUSHALL` remove it, and with it every write not yet delivered.
//! - Versions are stream ids: the Redis server's wall clock in
//!   milliseconds, then a sequence. Redis never hands out an id below the
//!   stream's last one, but a stream that is recreated (removed, or lost
//!   with a restart without persistence) on a server whose clock stepped
//!   back can give lower versions than rows the database already holds,
//!   which a newest-version-wins upsert then ignores. In-process versions
//!   come from the process's clock the same way.
//!
//! # On other stores
//!
//! The memory store, the test mock and custom backends get the same handle
//! over an in-process queue, so code using write-behind runs in unit tests
//! without Redis. That queue is not durable: what the sink has not accepted
//! when the process ends is lost. (An undecodable entry, which the
//! in-process queue cannot produce short of a codec bug, is logged, counted
//! and dropped there: it has no dead-letter stream.)

mod flusher;
mod queue;
pub(crate) mod stream;

use crate::{envelope, key, BackendError, Cache, CacheError, Operation};
use bytes::Bytes;
use flusher::{Control, Flusher};
use queue::Queue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use stream::StreamSource;
use tokio::task::JoinHandle;

/// The error a [`Sink`] returns: any error type, boxed.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where a write-behind's batches go: usually a database upsert.
///
/// A batch holds each key at most once, with its latest value, in the order
/// of the writes. Return `Ok` only once the batch is stored for good: the
/// flusher then forgets it. On `Err` (or a panic) the same batch is offered
/// again after a pause that doubles up to the
/// [`max_backoff`](WriteBehindBuilder::max_backoff).
///
/// Delivery is at least once (a batch may come again after a crash or a
/// claim), and batches of different flushers may interleave: write each item
/// only if its [`version`](Item::version) is newer than the stored one.
///
/// A closure `Fn(Vec<Item<T>>) -> impl Future<Output = Result<(), E>>` is a
/// sink; so is a type implementing this trait:
///
/// ```
/// use cache_runtime::write_behind::{Item, Sink, SinkError};
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct Table(Mutex<HashMap<String, (u64, u128)>>);
///
/// impl Sink<u64> for Table {
///     async fn write(&self, batch: Vec<Item<u64>>) -> Result<(), SinkError> {
///         let mut rows = self.0.lock().unwrap();
///         for item in batch {
///             let version = item.version.as_u128();
///             let row = rows.entry(item.key).or_insert((item.value, version));
///             if version >= row.1 {
///                 *row = (item.value, version); // the newest write wins
///             }
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Sink<T>: Send + Sync + 'static {
    /// Stores `batch`.
    ///
    /// # Errors
    ///
    /// Any error: the batch is offered again later.
    fn write(&self, batch: Vec<Item<T>>) -> impl Future<Output = Result<(), SinkError>> + Send;
}

impl<T, F, Fut, E> Sink<T> for F
where
    F: Fn(Vec<Item<T>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<SinkError>,
{
    fn write(&self, batch: Vec<Item<T>>) -> impl Future<Output = Result<(), SinkError>> + Send {
        let fut = self(batch);
        async move { fut.await.map_err(Into::into) }
    }
}

/// One change handed to a [`Sink`]: the latest value written to `key`.
///
/// ```
/// # use cache_runtime::write_behind::Item;
/// fn describe(item: &Item<String>) -> String {
///     format!("{} = {} (version {})", item.key, item.value, item.version)
/// }
/// ```
///
/// [`Item::new`] makes one, to test a sink without a flusher.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Item<T> {
    /// The key as given to [`WriteBehind::write`] (without the cache's prefix).
    pub key: String,
    /// The value.
    pub value: T,
    /// The write's version: later writes have higher versions.
    pub version: Version,
}

impl<T> Item<T> {
    /// An item as the flusher makes them: for unit tests of a [`Sink`].
    ///
    /// ```
    /// use cache_runtime::write_behind::{Item, Sink, SinkError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let sink = |batch: Vec<Item<u64>>| async move {
    ///     assert_eq!(batch[0].value, 5);
    ///     Ok::<_, SinkError>(())
    /// };
    /// let item = Item::new("order:1", 5, "1700000000000-0".parse().unwrap());
    /// sink.write(vec![item]).await.unwrap();
    /// # }
    /// ```
    pub fn new(key: impl Into<String>, value: T, version: Version) -> Self {
        Item {
            key: key.into(),
            value,
            version,
        }
    }
}

/// The version of a write-behind write: on Redis the stream entry id
/// (`{milliseconds}-{sequence}`), in-process a counter of the same shape.
/// Versions of one write-behind increase with each write, whichever process
/// made it (Redis assigns them), as long as its stream exists: they come
/// from the server's wall clock, so a stream recreated after its clock
/// stepped back can start lower (see [the module docs](crate::write_behind#what-redis-must-keep)).
///
/// ```
/// use cache_runtime::write_behind::Version;
/// let v: Version = "1700000000000-3".parse().unwrap();
/// assert_eq!((v.ms(), v.seq()), (1_700_000_000_000, 3));
/// assert!(v < "1700000000001-0".parse().unwrap());
/// assert_eq!(v.to_string(), "1700000000000-3");
/// assert_eq!(v.as_u128(), (1_700_000_000_000u128 << 64) | 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    ms: u64,
    seq: u64,
}

impl Version {
    /// The milliseconds part (on Redis, the server's clock at the write).
    pub fn ms(&self) -> u64 {
        self.ms
    }

    /// The sequence number within the millisecond.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// One number ordered like the versions: `ms << 64 | seq`. (A database
    /// without 128-bit integers can store `ms` and `seq` in two columns and
    /// compare them as a pair.)
    pub fn as_u128(&self) -> u128 {
        (u128::from(self.ms) << 64) | u128::from(self.seq)
    }

    pub(crate) fn new(ms: u64, seq: u64) -> Self {
        Version { ms, seq }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The error of parsing a [`Version`] from text other than `{ms}-{seq}`.
///
/// ```
/// assert!("12".parse::<cache_runtime::write_behind::Version>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a write-behind version (expected `{{ms}}-{{seq}}`): `{0}`")]
pub struct ParseVersionError(String);

impl FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseVersionError(s.to_owned());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(Version {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// A recorded change as the flusher sees it before decoding.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) version: Version,
    pub(crate) body: Body,
}

/// What a stream entry holds.
#[derive(Debug)]
pub(crate) enum Body {
    /// Deleted from the stream while pending: only needs its acknowledgement.
    Gone,
    /// A write: the key and the encoded value.
    Write(String, Bytes),
    /// Fields this library does not write (no `k` and `v`): kept as they
    /// are for the dead-letter stream.
    Foreign(Vec<(Bytes, Bytes)>),
}

/// An entry the flusher cannot deliver, moved to the dead-letter stream
/// with its original fields plus `id` (its version) and `error`.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    pub(crate) version: Version,
    pub(crate) fields: Vec<(Bytes, Bytes)>,
    pub(crate) reason: String,
}

/// Settings of a flusher.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
    pub(crate) claim_idle: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) consumer: String,
}

/// The most changes [`WriteBehindBuilder::batch_size`] accepts. A batch is
/// one sink call, read with one `XREADGROUP COUNT` and acknowledged with one
/// `MULTI` of `XACK` and `XDEL` naming every entry: beyond this, a batch
/// only holds Redis longer per command and the sink longer per call (and
/// Redis refuses a `COUNT` beyond `i64::MAX`, or a tenth of it for
/// `XAUTOCLAIM`, which would stop the flusher for good).
pub(crate) const MAX_BATCH_SIZE: usize = 100_000;

/// The default of [`WriteBehindBuilder::claim_idle`].
pub(crate) const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);

/// The consumer group every flusher of a write-behind joins.
pub(crate) const GROUP: &str = "flushers";

/// Where writes are recorded.
enum Log {
    /// The stream's full key.
    Stream(String),
    Queue(Arc<Queue>),
}

struct Shared {
    cache: Cache,
    name: String,
    ttl: Duration,
    log: Log,
    control: Arc<Control>,
    /// The highest version written through this handle and its clones.
    last_written: Mutex<Option<Version>>,
    task: Mutex<Option<JoinHandle<Result<(), String>>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: the flusher delivers what is left, then stops.
        self.control.stop();
    }
}

/// A handle to a write-behind: cheap to clone, safe to share between tasks.
///
/// Built by [`Cache::write_behind`] or [`WriteBehind::builder`]. Dropping
/// the last clone stops the flusher after it delivered what was already
/// written (without waiting for it; [`shutdown`](WriteBehind::shutdown)
/// waits).
///
/// ```
/// use cache_runtime::write_behind::{Item, WriteBehind};
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// let cache = Cache::builder().memory().build()?;
/// let sink = |batch: Vec<Item<String>>| async move {
///     println!("{} changes", batch.len());
///     Ok::<_, std::io::Error>(())
/// };
/// let names = WriteBehind::builder(&cache, "names", sink)
///     .batch_size(100)
///     .interval(Duration::from_millis(50))
///     .ttl(Duration::from_secs(600))
///     .start()?;
/// names.write("user:1", &"Ada".to_string()).await?;
/// names.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct WriteBehind<T> {
    shared: Arc<Shared>,
    _value: PhantomData<fn(&T)>,
}

impl<T> Clone for WriteBehind<T> {
    fn clone(&self) -> Self {
        WriteBehind {
            shared: self.shared.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for WriteBehind<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind")
            .field("name", &self.shared.name)
            .field("ttl", &self.shared.ttl)
            .field(
                "log",
                &match &self.shared.log {
                    Log::Stream(key) => key.as_str(),
                    Log::Queue(_) => "in-process queue",
                },
            )
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A builder for a write-behind named `name` whose batches go to `sink`;
    /// the same as [`WriteBehind::builder`]. See the [module
    /// docs](crate::write_behind) for what it does.
    ///
    /// ```
    /// use cache_runtime::write_behind::{Item, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// let cache = cache_runtime::Cache::builder().build()?;
    /// let orders: WriteBehind<u64> = cache
    ///     .write_behind("orders", |_batch: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .start()?;
    /// # orders.shutdown().await }
    /// ```
    pub fn write_behind<T, S>(&self, name: &str, sink: S) -> WriteBehindBuilder<T, S>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        S: Sink<T>,
    {
        WriteBehind::builder(self, name, sink)
    }
}

impl<T> WriteBehind<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// A builder for a write-behind named `name` on `cache`, whose batches
    /// go to `sink`. Handles of one name on one Redis (in one process or
    /// many) share one stream and split its batches between them.
    ///
    /// ```
    /// use cache_runtime::write_behind::{Item, WriteBehind};
    /// let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let builder = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async {
    ///     Ok::<_, std::io::Error>(())
    /// });
    /// # drop(builder);
    /// ```
    pub fn builder<S: Sink<T>>(cache: &Cache, name: &str, sink: S) -> WriteBehindBuilder<T, S> {
        WriteBehindBuilder {
            cache: cache.clone(),
            name: name.to_owned(),
            sink,
            ttl: cache.engine.ttl.default,
            config: Config {
                batch_size: 500,
                interval: Duration::from_millis(100),
                claim_idle: DEFAULT_CLAIM_IDLE,
                max_backoff: Duration::from_secs(10),
                shutdown_timeout: Duration::from_secs(30),
                consumer: default_consumer(),
            },
            _value: PhantomData,
        }
    }

    /// Stores `value` under `key` (relative to the cache's prefix, as in
    /// [`Cache::set`]) with the write-behind's TTL, and records the change
    /// for the sink; returns the write's [`Version`].
    ///
    /// On Redis the value and the record are written in one transaction:
    /// either both or neither. Concurrent writes to one key are ordered: the
    /// one with the higher version is the one left in the cache. In-process,
    /// writes through one handle are serialized.
    ///
    /// # Errors
    ///
    /// [`CacheError::Encode`] when the value cannot be encoded;
    /// [`CacheError::Backend`] when the store fails or misses the command
    /// deadline (on a timeout the write may still have happened);
    /// [`CacheError::WriteBehindStopped`] after [`shutdown`](WriteBehind::shutdown).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// # let cache = cache_runtime::Cache::builder().build()?;
    /// # let orders: WriteBehind<u64> = cache
    /// #     .write_behind("orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    /// #     .start()?;
    /// let first = orders.write("order:7", &100).await?;
    /// let second = orders.write("order:7", &120).await?;
    /// assert!(second > first);
    /// assert_eq!(cache.get::<u64>("order:7").await?, Some(120));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write(&self, key: &str, value: &T) -> Result<Version, CacheError> {
        let shared = &*self.shared;
        // Counted until the write is done: `shutdown` waits for it before
        // its final drain.
        let Some(_in_flight) = shared.control.begin_write() else {
            return Err(self.stopped());
        };
        let engine = &*shared.cache.engine;
        let full = key::full(&engine.prefix, key);
        let bytes = envelope::encode(&engine.codec, value, shared.ttl, engine.max_value_size)
            .map(Bytes::from)
            .map_err(|reason| CacheError::Encode {
                key: full.clone(),
                reason,
            })?;
        let version = match &shared.log {
            Log::Stream(stream) => {
                engine.forget_counted(full.as_bytes());
                let appended = engine
                    .l2
                    .stream_append(&full, key, &bytes, shared.ttl, stream)
                    .await;
                engine.forget(&full);
                appended.map_err(|e| self.failed(&full, e))?
            }
            Log::Queue(queue) => {
                // Held across the store write and the enqueue, so that the
                // order of the queue is the order of the writes.
                let mut clock = queue.order.lock().await;
                if queue.is_closed() {
                    return Err(self.stopped());
                }
                engine
                    .put_bytes(&full, bytes.clone(), shared.ttl, &[])
                    .await
                    .map_err(|e| self.failed(&full, e))?;
                let version = clock.next();
                if !queue.push(
                    Entry {
                        version,
                        body: Body::Write(key.to_owned(), bytes),
                    },
                    &shared.control,
                ) {
                    return Err(self.stopped());
                }
                version
            }
        };
        crate::observe::write_behind_pending(&shared.name, 1.0);
        let mut last = shared
            .last_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|v| v < version) {
            *last = Some(version);
        }
        Ok(version)
    }

    /// Waits until every write made through this handle (or a clone) before
    /// the call has reached the sink, and asks the flusher not to wait for
    /// its interval meanwhile.
    ///
    /// On Redis, "reached" means the entries are gone from the stream,
    /// whichever flusher delivered them: an entry left by a process that
    /// died is waited for until a flusher claims it (after
    /// [`claim_idle`](WriteBehindBuilder::claim_idle)). While the sink fails
    /// this keeps waiting; wrap it in `tokio::time::timeout` to bound it.
    /// Timeouts and transient Redis failures of its checks (a dropped
    /// connection, a server still loading) are retried too: it is a waiting
    /// call, a slow reply does not end it.
    ///
    /// # Errors
    ///
    /// [`CacheError::WriteBehindStopped`] if the flusher stopped with writes
    /// undelivered; [`CacheError::Backend`] if Redis refuses the check for
    /// good (an error reply such as `WRONGTYPE` or `NOPERM`).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// # let cache = cache_runtime::Cache::builder().build()?;
    /// # let orders: WriteBehind<u64> = cache
    /// #     .write_behind("orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    /// #     .start()?;
    /// orders.write("order:7", &100).await?;
    /// orders.flush().await?; // the sink has stored order:7
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush(&self) -> Result<(), CacheError> {
        let target = *self
            .shared
            .last_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(target) = target else {
            return Ok(());
        };
        let control = &self.shared.control;
        let _urgent = control.urgent();
        let mut cycles = control.cycles();
        loop {
            cycles.borrow_and_update();
            if self.delivered_through_retrying(target).await? {
                return Ok(());
            }
            if cycles.changed().await.is_err() {
                // The flusher has ended.
                return if self.delivered_through_retrying(target).await? {
                    Ok(())
                } else {
                    Err(self.stopped())
                };
            }
        }
    }

    /// [`delivered_through`](Self::delivered_through), retrying timeouts and
    /// transient Redis failures (a slow reply must not fail a waiting call).
    async fn delivered_through_retrying(&self, target: Version) -> Result<bool, CacheError> {
        let mut failures = 0u32;
        loop {
            match self.delivered_through(target).await {
                Ok(done) => return Ok(done),
                Err(error) if is_transient(&error) => {
                    failures += 1;
                    let pause = flusher::backoff(failures, Duration::from_secs(1));
                    tracing::debug!(name = %self.shared.name, %error, ?pause, "write-behind flush check failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(error) => {
                    let stream = match &self.shared.log {
                        Log::Stream(stream) => stream.as_str(),
                        Log::Queue(_) => self.shared.name.as_str(),
                    };
                    return Err(self.failed(stream, error));
                }
            }
        }
    }

    /// Stops the flusher after it delivered everything written so far, and
    /// waits for it. Writes through any clone fail from now on with
    /// [`CacheError::WriteBehindStopped`]; writes already under way are
    /// waited for and delivered too. Calling it again returns the same
    /// result at once.
    ///
    /// A failing sink is retried, and Redis failures a few times, for at
    /// most the [`shutdown_timeout`](WriteBehindBuilder::shutdown_timeout)
    /// (default 30 s); then the flusher gives up. On Redis what is left
    /// stays in the stream, unacknowledged, for the next start (or another
    /// process) to deliver; in-process it is lost. On Redis, writes of other
    /// processes that arrive while it drains may be left for another flusher.
    ///
    /// # Errors
    ///
    /// [`CacheError::WriteBehindNotDrained`] if the flusher stopped without
    /// delivering everything: the sink still failed at the shutdown timeout,
    /// or Redis failed while draining; [`CacheError::WriteBehindStopped`] if
    /// the flusher task panicked.
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// # let cache = cache_runtime::Cache::builder().build()?;
    /// # let orders: WriteBehind<u64> = cache
    /// #     .write_behind("orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    /// #     .start()?;
    /// orders.write("order:7", &100).await?;
    /// orders.shutdown().await?;
    /// assert!(orders.write("order:8", &1).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self) -> Result<(), CacheError> {
        let control = &self.shared.control;
        control.stop();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let outcome = match task {
            Some(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(name = %self.shared.name, error = %e, "write-behind flusher failed");
                    control.set_outcome(Err(format!("the flusher task failed: {e}")));
                    return Err(self.stopped());
                }
            },
            None => {
                // Another caller is waiting for the task: wait for its end.
                // No outcome after it means the task panicked (the other
                // caller may not have recorded that yet).
                let mut cycles = control.cycles();
                while cycles.changed().await.is_ok() {}
                match control.outcome() {
                    Some(outcome) => outcome,
                    None => return Err(self.stopped()),
                }
            }
        };
        outcome.map_err(|reason| CacheError::WriteBehindNotDrained {
            name: self.shared.name.clone(),
            reason,
        })
    }

    /// The write-behind's name.
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// # let cache = cache_runtime::Cache::builder().build()?;
    /// let orders: WriteBehind<u64> = cache
    ///     .write_behind("orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .start()?;
    /// assert_eq!(orders.name(), "orders");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    async fn delivered_through(&self, target: Version) -> Result<bool, BackendError> {
        match &self.shared.log {
            Log::Queue(queue) => Ok(queue.delivered_through(target)),
            Log::Stream(stream) => {
                let engine = &*self.shared.cache.engine;
                engine.l2.stream_none_through(stream, target).await
            }
        }
    }

    fn failed(&self, key: &str, source: BackendError) -> CacheError {
        self.shared.cache.engine.counters.error();
        crate::observe::error(Operation::WriteBehind);
        CacheError::Backend {
            op: Operation::WriteBehind,
            key: key.to_owned(),
            source,
        }
    }

    fn stopped(&self) -> CacheError {
        CacheError::WriteBehindStopped {
            name: self.shared.name.clone(),
        }
    }
}

/// Settings of a write-behind, then [`start`](WriteBehindBuilder::start).
///
/// ```
/// use cache_runtime::write_behind::{Item, WriteBehind};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// let cache = cache_runtime::Cache::builder().build()?;
/// let orders: WriteBehind<u64> = cache
///     .write_behind("orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
///     .batch_size(500)                          // at most 500 changes per batch
///     .interval(Duration::from_millis(100))     // a batch at least every 100 ms
///     .ttl(Duration::from_secs(3600))           // of the cached values
///     .claim_idle(Duration::from_secs(30))      // take over a dead process's entries after 30 s
///     .max_backoff(Duration::from_secs(10))     // longest pause between retries of a failing sink
///     .shutdown_timeout(Duration::from_secs(30)) // how long shutdown retries before giving up
///     .consumer("orders-worker-1")              // this flusher's name in the consumer group
///     .start()?;
/// # orders.shutdown().await }
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct WriteBehindBuilder<T, S> {
    cache: Cache,
    name: String,
    sink: S,
    ttl: Duration,
    config: Config,
    _value: PhantomData<fn(&T)>,
}

impl<T, S> fmt::Debug for WriteBehindBuilder<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehindBuilder")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T, S> WriteBehindBuilder<T, S>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    S: Sink<T>,
{
    /// The most changes in one batch (default 500; from 1 to 100 000).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .batch_size(1000);
    /// # drop(b);
    /// ```
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// The longest a change waits for more changes to join its batch
    /// (default 100 ms); also how long [`flush`](WriteBehind::flush) may wait
    /// for a batch already being gathered. A very long interval (up to
    /// `Duration::MAX`) means never: batches go only when full, flushed, or
    /// at shutdown.
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # use std::time::Duration;
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .interval(Duration::from_millis(250));
    /// # drop(b);
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// The TTL of the values written to the cache (default: the cache's
    /// `"default"` TTL preset).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # use std::time::Duration;
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .ttl(Duration::from_secs(600));
    /// # drop(b);
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a change read by another flusher may stay unacknowledged
    /// before this one takes it over (default 30 s; Redis only). Shorter
    /// recovers sooner after a crash; shorter than a slow sink's batch takes
    /// makes a live flusher's batch be delivered twice. Zero takes over
    /// every unacknowledged change once, at start (for a one-off drain after
    /// a crash), then claims like the default (30 s): it does not keep
    /// taking live flushers' batches. A very long time (up to
    /// `Duration::MAX`) means never: this flusher takes over nothing of
    /// other consumers' (its own unacknowledged changes still come back
    /// at start).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # use std::time::Duration;
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .claim_idle(Duration::from_secs(120));
    /// # drop(b);
    /// ```
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.config.claim_idle = idle;
        self
    }

    /// The longest pause between two attempts at a batch the sink refused
    /// (default 10 s). Pauses start at 100 ms (or this, if shorter) and
    /// double.
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # use std::time::Duration;
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .max_backoff(Duration::from_secs(60));
    /// # drop(b);
    /// ```
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.config.max_backoff = max;
        self
    }

    /// How long [`shutdown`](WriteBehind::shutdown) (or dropping the last
    /// handle) keeps retrying a failing sink or Redis before giving up
    /// (default 30 s; more than zero). What is not delivered then stays
    /// unacknowledged in the stream on Redis, and is claimed later; a
    /// `shutdown` that gives up returns
    /// [`CacheError::WriteBehindNotDrained`]. A very long timeout (up to
    /// `Duration::MAX`) means no limit: a shutdown then waits
    /// for as long as the sink fails (Redis failures still end it after a
    /// few retries).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # use std::time::Duration;
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .shutdown_timeout(Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// This flusher's consumer name in the stream's consumer group (default:
    /// the process id and a random suffix). A process restarted under the
    /// same name takes its unacknowledged changes back at once instead of
    /// after [`claim_idle`](WriteBehindBuilder::claim_idle); two live
    /// flushers must not share a name.
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let b = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .consumer("worker-1");
    /// # drop(b);
    /// ```
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.config.consumer = name.into();
        self
    }

    /// Checks the settings and starts the flusher task on the current Tokio
    /// runtime. On Redis the flusher connects in the background; until Redis
    /// answers, it retries (logging the failure) and writes fail like any
    /// cache command.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] for an empty name or consumer, a batch size of
    /// zero or over 100 000, a zero interval, backoff or shutdown timeout, a
    /// TTL of zero or over 100 years, or when
    /// called outside a Tokio runtime; [`CacheError::Disabled`] when caching
    /// is turned off (the application writes to its sink itself then).
    ///
    /// ```
    /// # use cache_runtime::write_behind::{Item, WriteBehind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let cache = cache_runtime::Cache::builder().build().unwrap();
    /// let err = WriteBehind::builder(&cache, "orders", |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) })
    ///     .batch_size(0)
    ///     .start()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("batch_size"));
    /// # }
    /// ```
    pub fn start(self) -> Result<WriteBehind<T>, CacheError> {
        let WriteBehindBuilder {
            cache,
            name,
            sink,
            ttl,
            config,
            _value,
        } = self;
        if cache.is_disabled() {
            return Err(CacheError::Disabled);
        }
        let checks: [(&'static str, bool, &str); 8] = [
            ("write_behind.name", name.is_empty(), "must not be empty"),
            (
                "write_behind.consumer",
                config.consumer.is_empty(),
                "must not be empty",
            ),
            (
                "write_behind.batch_size",
                config.batch_size == 0,
                "must be at least 1",
            ),
            (
                "write_behind.interval",
                config.interval.is_zero(),
                "must be greater than zero",
            ),
            (
                "write_behind.max_backoff",
                config.max_backoff.is_zero(),
                "must be greater than zero",
            ),
            (
                "write_behind.shutdown_timeout",
                config.shutdown_timeout.is_zero(),
                "must be greater than zero",
            ),
            (
                "write_behind.ttl",
                ttl.is_zero(),
                "must be greater than zero",
            ),
            (
                "write_behind.ttl",
                ttl > crate::engine::MAX_TTL,
                "must be at most 100 years",
            ),
        ];
        if let Some((setting, _, reason)) = checks.into_iter().find(|c| c.1) {
            return Err(CacheError::config(setting, reason));
        }
        if config.batch_size > MAX_BATCH_SIZE {
            return Err(CacheError::config(
                "write_behind.batch_size",
                format!(
                    "must be at most {MAX_BATCH_SIZE}, got {}: a batch is one sink call and one \
                     acknowledgement",
                    config.batch_size
                ),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            CacheError::config(
                "write_behind",
                "start() must be called inside a Tokio runtime",
            )
        })?;
        let (control, cycles) = Control::new();
        let (log, source) = match cache.engine.l2.stream_client() {
            Some(client) => {
                let stream = key::full(&cache.engine.prefix, &format!("__wb:{name}"));
                let source = StreamSource::new(
                    client,
                    stream.clone(),
                    &config,
                    cache.engine.l2.guard().timeout(),
                );
                (
                    Log::Stream(stream),
                    flusher::Source::Stream(Box::new(source)),
                )
            }
            None => {
                let queue = Arc::new(Queue::default());
                (Log::Queue(queue.clone()), flusher::Source::Queue(queue))
            }
        };
        tracing::debug!(
            name,
            consumer = config.consumer,
            backend = cache.backend_kind(),
            "starting write-behind flusher"
        );
        let flusher = Flusher::<T, S> {
            cache: cache.clone(),
            name: name.clone(),
            sink: Arc::new(sink),
            source,
            config,
            control: control.clone(),
            cycles,
            claimed_once: false,
            _value: PhantomData,
        };
        let task = runtime.spawn(flusher.run());
        Ok(WriteBehind {
            shared: Arc::new(Shared {
                cache,
                name,
                ttl,
                log,
                control,
                last_written: Mutex::new(None),
                task: Mutex::new(Some(task)),
            }),
            _value: PhantomData,
        })
    }
}

/// Whether a failure may go away by itself: a timeout, a dropped or
/// refused connection, a server busy loading or asking to try again.
pub(crate) fn is_transient(error: &BackendError) -> bool {
    match error {
        BackendError::Timeout(_) | BackendError::CircuitOpen(_) => true,
        BackendError::Redis(e) => {
            e.is_timeout()
                || e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || matches!(
                    e.retry_method(),
                    redis::RetryMethod::WaitAndRetry | redis::RetryMethod::RetryImmediately
                )
        }
        // Fixed by a change of settings or certificates: kept for then.
        BackendError::Refused { source, .. } => source.code() != Some("NOPERM"),
        BackendError::Unsupported(_) | BackendError::Other(_) => false,
    }
}

/// `{pid}-{random}`: unique enough that two processes never share a name.
fn default_consumer() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{}-{:08x}", std::process::id(), h.finish() as u32)
}

#[cfg(test)]
mod tests;
