//! Throughput and latency of cache hits (and misses) under concurrency,
//! against a `redis-server` this tool starts on a free loopback port.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo run --release -p cache-benches --bin throughput -- \
//!     [--seconds N] [--warmup-ms N] [--rounds N]
//! ```
//!
//! Every scenario runs on one tokio multi-thread runtime with 2 workers: a
//! number of tasks (1 or 64) call one operation in a loop for a fixed time
//! (`--warmup-ms`, default 500, unrecorded, then `--seconds`, default 3),
//! each call timed into a per-task log-linear histogram (< 0.8% bucket
//! error). The value is a ~200-byte serde struct, one per key, 100 keys,
//! all pre-populated, so every call is a hit. Keys are drawn uniformly, or
//! with a hot-key mix: 80% of calls on 5 keys, 20% on the other 95.
//!
//! Each scenario is measured `--rounds` times (default 3), the operations
//! interleaved in a rotating order, because on a 2-core machine shared with
//! `redis-server` one run can land on a bad thread placement. The table
//! shows the median ops/s with the range over rounds, and p50/p99 over the
//! calls of all rounds (at 1 task the latency can be bimodal on a small VM,
//! so the mean is shown too). The CPU columns are the user + system time of this
//! process (all threads) and of `redis-server` during the measured windows,
//! from `/proc/<pid>/stat`, divided by the calls: they do not depend on how
//! the scheduler placed the threads, so they are the steadier measure of
//! what each implementation costs per call.
//!
//! Operations compared:
//! 1. `ours/redis`: a `#[cached(key = "product:{id}")]` function on the
//!    installed Redis cache (`Cache::builder().redis(url)`, default settings:
//!    1 multiplexed connection, 100 ms deadline). Its body counts its runs;
//!    the tool fails if it ran while measuring. A second row runs the same
//!    function shape on a cache built with `.max_connections(4)`, to show
//!    what more connections cost or gain on this machine.
//! 2. `raw redis-rs`: one `MultiplexedConnection`, `GET` of the same JSON
//!    (stored under another prefix) + `serde_json::from_slice`.
//! 3. `cached crate`: `#[cached::macros::concurrent_cached]` on an
//!    `AsyncRedisCache` (its default: one multiplexed connection,
//!    MessagePack values), pre-populated by calling it once per key.
//! 4. `ours/redis+L1`: the same function shape on a Redis cache built with
//!    `.l1_capacity(64 << 20)`, each key called before measuring until it
//!    has an L1 copy (a miss stores it, a later hit, a tracked read, copies
//!    it into the L1: see `warm_l1`), so that every measured call is an L1
//!    hit: key derivation, the L1 lookup and the clone of the decoded
//!    value, no round trip. The tool checks that every key is in the L1
//!    before measuring (`__private::l1_holds`), and fails if the body ran or
//!    a hit was not an L1 hit while measuring.
//! 5. `ours/memory` (the same `#[cached]` shape on the memory store) and
//!    `moka::future::Cache::get` of the same values (clone included), the
//!    baseline of both in-process rows.
//! 6. Misses: a `#[cached]` function on Redis whose body sleeps 1 ms, 64
//!    tasks, 1,000 distinct keys each used once; and the body alone.
//!
//! Then two single callers that alternate two operations on the same keys
//! for `--rounds` x `--seconds`, so that both see the same thread placement
//! (the separate 1-task scenarios above can land on different ones): ours
//! on Redis against raw redis-rs, call by call (p50 against p50); and L1
//! hits against moka gets, in alternating batches of 32 calls timed as one
//! (mean against mean, the inverse of ops/s: two clock reads per
//! sub-microsecond call would weigh on both).
//!
//! The tool stops by itself (the whole run is 28 scenarios x rounds x
//! (warm-up + seconds), about 5 minutes with the defaults; it prints the
//! estimate first), talks to 127.0.0.1 only, and kills its `redis-server`
//! on exit.

use cache_runtime::{cached, Cache};
use cache_test_support::RedisServer;
use redis::AsyncCommands;
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/fixtures.rs"]
mod fixtures;
#[path = "../shared/histogram.rs"]
mod histogram;
#[path = "../shared/machine.rs"]
mod machine;

use fixtures::Product;
use histogram::Histogram;
use machine::machine_facts;

/// Keys of the hit scenarios.
const KEYS: u64 = 100;
/// The hot keys of the hot-key mix, and their share of calls (percent).
const HOT_KEYS: u64 = 5;
const HOT_SHARE: u64 = 80;
/// Concurrent tasks of the hit scenarios.
const CONCURRENCY: [usize; 2] = [1, 64];
/// The miss scenario: tasks, distinct keys, and the body's sleep.
const MISS_TASKS: usize = 64;
const MISS_KEYS: u64 = 1_000;
const BODY_SLEEP: Duration = Duration::from_millis(1);
/// Each task yields to the scheduler every this many calls (outside the
/// timed section), so that tasks whose calls never suspend (memory hits)
/// still take turns.
const YIELD_EVERY: u32 = 16;
const TTL: Duration = Duration::from_secs(3600);

// ---- the functions under test -------------------------------------------

static OURS_REDIS_RUNS: AtomicU64 = AtomicU64::new(0);
static OURS_ONE_CONN_RUNS: AtomicU64 = AtomicU64::new(0);
static OURS_L1_RUNS: AtomicU64 = AtomicU64::new(0);
static OURS_MEMORY_RUNS: AtomicU64 = AtomicU64::new(0);
static CACHED_CRATE_RUNS: AtomicU64 = AtomicU64::new(0);
static MISS_RUNS: AtomicU64 = AtomicU64::new(0);

/// Row 1: on the installed (Redis) cache, as an application would use it.
#[cached(ttl = 3600, key = "product:{id}")]
async fn ours_redis_product(id: u64) -> Product {
    OURS_REDIS_RUNS.fetch_add(1, Ordering::Relaxed);
    fixtures::product(id)
}

/// Row 1 again, on a Redis cache with a single multiplexed connection.
#[cached(ttl = 3600, key = "product:{id}", cache = *ONE_CONNECTION.get().expect("cache set"))]
async fn ours_one_conn_product(id: u64) -> Product {
    OURS_ONE_CONN_RUNS.fetch_add(1, Ordering::Relaxed);
    fixtures::product(id)
}

static ONE_CONNECTION: OnceLock<Cache> = OnceLock::new();

/// Row 4: the same function on a Redis cache with an L1 in front.
#[cached(ttl = 3600, key = "product:{id}", cache = *WITH_L1.get().expect("cache set"))]
async fn ours_l1_product(id: u64) -> Product {
    OURS_L1_RUNS.fetch_add(1, Ordering::Relaxed);
    fixtures::product(id)
}

static WITH_L1: OnceLock<Cache> = OnceLock::new();
/// The L1's capacity in bytes: far above what 100 values take.
const L1_CAPACITY: u64 = 64 << 20;
/// Calls per batch of the paired in-process section (L1 hits against moka).
const PAIRED_BATCH: u32 = 32;
/// How long the tool tries to warm every key into the L1 before it gives up.
const L1_WARM_TIME: Duration = Duration::from_secs(10);

fn in_l1(id: u64) -> bool {
    let cache = WITH_L1.get().expect("cache set");
    cache_runtime::__private::l1_holds(cache, &format!("product:{id}"))
}

/// Calls `ours_l1_product` on every key without an L1 copy until all have
/// one (or [`L1_WARM_TIME`] has passed); returns the calls made. The first
/// call of a key misses and stores the value; a later one, an L2 hit (a
/// tracked read), installs the copy. Usually the second call does, but not
/// always: Redis 7 sends the invalidation of this process's own write after
/// the write's reply, and when it lands during the second call's read, that
/// read installs nothing (its ticket moved). And while the L1 is disarmed
/// (flushed after its connection seemed lost, e.g. a heartbeat late on a
/// loaded machine) nothing is installed at all, so the tool waits and tries
/// again.
async fn warm_l1() -> u64 {
    let end = Instant::now() + L1_WARM_TIME;
    let mut calls = 0;
    loop {
        let cold: Vec<u64> = (0..KEYS).filter(|&id| !in_l1(id)).collect();
        if cold.is_empty() || Instant::now() > end {
            return calls;
        }
        for id in cold {
            ours_l1_product(id).await;
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Row 5: the same function on the memory store.
#[cached(ttl = 3600, key = "product:{id}", cache = *memory_cache())]
async fn ours_memory_product(id: u64) -> Product {
    OURS_MEMORY_RUNS.fetch_add(1, Ordering::Relaxed);
    fixtures::product(id)
}

/// Row 6: a miss every time; the body stands in for a 1 ms query.
#[cached(ttl = 3600, key = "miss:{id}")]
async fn ours_miss_product(id: u64) -> Product {
    MISS_RUNS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(BODY_SLEEP).await;
    fixtures::product(id)
}

/// Row 6's body alone.
async fn body_alone(id: u64) -> Product {
    tokio::time::sleep(BODY_SLEEP).await;
    fixtures::product(id)
}

fn memory_cache() -> &'static Cache {
    static MEMORY: OnceLock<Cache> = OnceLock::new();
    MEMORY.get_or_init(|| {
        Cache::builder()
            .memory()
            .prefix("ours")
            .build()
            .expect("memory cache builds")
    })
}

/// Where the `cached` crate's store connects; set before its first call.
static CACHED_CRATE_URL: OnceLock<String> = OnceLock::new();

/// The `cached` crate's error, as its Redis store requires a `Result`.
#[derive(Debug)]
struct CachedCrateError(String);

/// Row 3: the `cached` crate's async Redis store.
#[cached::macros::concurrent_cached(
    ty = "cached::AsyncRedisCache<u64, Product>",
    create = r##"{
        cached::AsyncRedisCache::builder("product")
            .ttl(TTL)
            .connection_string(CACHED_CRATE_URL.get().expect("cached crate url set"))
            .build()
            .await
            .expect("cached crate store builds")
    }"##,
    map_error = r##"|e| CachedCrateError(format!("{e:?}"))"##
)]
async fn cached_crate_product(id: u64) -> Result<Product, CachedCrateError> {
    CACHED_CRATE_RUNS.fetch_add(1, Ordering::Relaxed);
    Ok(fixtures::product(id))
}

// ---- operations ----------------------------------------------------------

/// One call of the operation under test, with per-task state.
trait Op: Send + 'static {
    fn call(&mut self, key: u64) -> impl Future<Output = ()> + Send + '_;
}

fn check(product: &Product, key: u64) {
    assert_eq!(product.id, key, "wrong value for key {key}");
    black_box(product);
}

struct OursRedis;
impl Op for OursRedis {
    async fn call(&mut self, key: u64) {
        check(&ours_redis_product(key).await, key);
    }
}

struct OursOneConn;
impl Op for OursOneConn {
    async fn call(&mut self, key: u64) {
        check(&ours_one_conn_product(key).await, key);
    }
}

struct RawRedis(redis::aio::MultiplexedConnection);
impl Op for RawRedis {
    async fn call(&mut self, key: u64) {
        let bytes: Vec<u8> = self
            .0
            .get(format!("raw:product:{key}"))
            .await
            .expect("raw GET");
        let product: Product = serde_json::from_slice(&bytes).expect("raw JSON");
        check(&product, key);
    }
}

struct CachedCrate;
impl Op for CachedCrate {
    async fn call(&mut self, key: u64) {
        let product = cached_crate_product(key)
            .await
            .unwrap_or_else(|e| panic!("cached crate call: {}", e.0));
        check(&product, key);
    }
}

struct OursL1;
impl Op for OursL1 {
    async fn call(&mut self, key: u64) {
        check(&ours_l1_product(key).await, key);
    }
}

struct OursMemory;
impl Op for OursMemory {
    async fn call(&mut self, key: u64) {
        check(&ours_memory_product(key).await, key);
    }
}

struct Moka(moka::future::Cache<u64, Product>);
impl Op for Moka {
    async fn call(&mut self, key: u64) {
        check(&self.0.get(&key).await.expect("moka hit"), key);
    }
}

/// One task that alternates two operations on the same keys, `batch` calls
/// of one, then `batch` calls of the other, so that both see the same
/// thread placement (and, on Redis, the same round-trip mode of this
/// machine); the first of each pair alternates too. One sample is one
/// batch's time divided by `batch`: the time of one call with `batch` 1, and
/// for sub-microsecond calls a mean over the batch, on which the two clock
/// reads weigh little. Returns the samples of (a, b).
async fn paired<A: Op, B: Op>(
    mut a: A,
    mut b: B,
    batch: u32,
    measure: Duration,
) -> (Histogram, Histogram) {
    tokio::spawn(async move {
        let (mut a_hist, mut b_hist) = (Histogram::new(), Histogram::new());
        let end = Instant::now() + measure;
        let mut i = 0u64;
        while Instant::now() < end {
            let first = i * u64::from(batch);
            for turn in [i % 2, (i + 1) % 2] {
                let started = Instant::now();
                for key in first..first + u64::from(batch) {
                    if turn == 0 {
                        a.call(key % KEYS).await;
                    } else {
                        b.call(key % KEYS).await;
                    }
                }
                let per_call = started.elapsed() / batch;
                if turn == 0 {
                    a_hist.record(per_call);
                } else {
                    b_hist.record(per_call);
                }
            }
            i += 1;
        }
        (a_hist, b_hist)
    })
    .await
    .expect("paired task")
}

// ---- measurement ---------------------------------------------------------

/// splitmix64: a tiny, fast, good-enough generator for picking keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dist {
    Uniform,
    HotKey,
}

impl Dist {
    fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::HotKey => "hot-key",
        }
    }

    fn key(self, rng: &mut Rng) -> u64 {
        match self {
            Dist::Uniform => rng.below(KEYS),
            Dist::HotKey if rng.below(100) < HOT_SHARE => rng.below(HOT_KEYS),
            Dist::HotKey => HOT_KEYS + rng.below(KEYS - HOT_KEYS),
        }
    }
}

#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    measure: Duration,
}

struct Measured {
    ops: u64,
    elapsed: Duration,
    hist: Histogram,
    /// CPU time (user + system) of this process and of `redis-server` over
    /// the measured window (hit scenarios only).
    cpu: CpuTime,
}

/// CPU time of this process and of the `redis-server`, from `/proc`.
#[derive(Clone, Copy, Default)]
struct CpuTime {
    client: Duration,
    server: Duration,
}

/// The `redis-server`'s pid, for its CPU time.
static SERVER_PID: OnceLock<u32> = OnceLock::new();

impl CpuTime {
    /// Now, cumulative since each process started; zero where `/proc` is
    /// unavailable.
    fn now() -> CpuTime {
        CpuTime {
            client: proc_cpu("self"),
            server: SERVER_PID
                .get()
                .map_or(Duration::ZERO, |pid| proc_cpu(&pid.to_string())),
        }
    }

    fn since(self, start: CpuTime) -> CpuTime {
        CpuTime {
            client: self.client.saturating_sub(start.client),
            server: self.server.saturating_sub(start.server),
        }
    }

    fn add(&mut self, other: CpuTime) {
        self.client += other.client;
        self.server += other.server;
    }
}

/// utime + stime of a process (all its threads) from `/proc/<pid>/stat`,
/// in clock ticks of 10 ms (`USER_HZ` is 100 on Linux).
fn proc_cpu(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

impl Measured {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn p50(&self) -> f64 {
        self.hist.quantile_us(0.50)
    }
    fn p99(&self) -> f64 {
        self.hist.quantile_us(0.99)
    }
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Runs `tasks` copies of the operation made by `make` for the warm-up and
/// the measured time; counts and times only the calls that started and
/// ended inside the measured window.
async fn run_timed<O: Op>(
    tasks: usize,
    dist: Dist,
    timing: Timing,
    make: impl Fn() -> O,
) -> Measured {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let mut op = make();
            let phase = Arc::clone(&phase);
            tokio::spawn(async move {
                let mut rng = Rng(0x5EED ^ (t as u64).wrapping_mul(0x1000_0001));
                let mut hist = Histogram::new();
                let mut calls = 0u32;
                loop {
                    let before = phase.load(Ordering::Relaxed);
                    if before == STOP {
                        break;
                    }
                    let key = dist.key(&mut rng);
                    let start = Instant::now();
                    op.call(key).await;
                    let took = start.elapsed();
                    if before == MEASURE && phase.load(Ordering::Relaxed) == MEASURE {
                        hist.record(took);
                    }
                    calls += 1;
                    if calls.is_multiple_of(YIELD_EVERY) {
                        tokio::task::yield_now().await;
                    }
                }
                hist
            })
        })
        .collect();
    tokio::time::sleep(timing.warmup).await;
    phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_start = CpuTime::now();
    tokio::time::sleep(timing.measure).await;
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu = CpuTime::now().since(cpu_start);
    let mut hist = Histogram::new();
    for handle in handles {
        hist.merge(&handle.await.expect("a benchmark task panicked"));
    }
    Measured {
        ops: hist.total,
        elapsed,
        hist,
        cpu,
    }
}

/// Runs `tasks` tasks that share `keys` distinct keys, each called once.
async fn run_keys<F, Fut>(tasks: usize, keys: u64, call: F) -> Measured
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Product> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let next = Arc::clone(&next);
            let call = call.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::new();
                loop {
                    let key = next.fetch_add(1, Ordering::Relaxed);
                    if key >= keys {
                        break;
                    }
                    let start = Instant::now();
                    let product = call(key).await;
                    hist.record(start.elapsed());
                    check(&product, key);
                }
                hist
            })
        })
        .collect();
    let mut hist = Histogram::new();
    for handle in handles {
        hist.merge(&handle.await.expect("a benchmark task panicked"));
    }
    Measured {
        ops: hist.total,
        elapsed: started.elapsed(),
        hist,
        // Too short a run for /proc's 10 ms ticks.
        cpu: CpuTime::default(),
    }
}

// ---- the run ---------------------------------------------------------------

struct Args {
    seconds: f64,
    warmup_ms: u64,
    rounds: usize,
    /// Only this many tasks (1 or 64); both by default.
    tasks: Option<usize>,
    /// Only this key distribution; both by default.
    dist: Option<Dist>,
}

const USAGE: &str = "usage: throughput [--seconds N (default 3, at most 600)] \
                     [--warmup-ms N (default 500)] [--rounds N (default 3, at most 20)] \
                     [--tasks 1|64 (default both)] [--keys uniform|hot-key (default both)]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 3.0,
        warmup_ms: 500,
        rounds: 3,
        tasks: None,
        dist: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--seconds" => {
                args.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
                if !(args.seconds > 0.0 && args.seconds <= 600.0) {
                    return Err("--seconds must be in (0, 600]".into());
                }
            }
            "--warmup-ms" => {
                args.warmup_ms = value("--warmup-ms")?
                    .parse()
                    .map_err(|e| format!("--warmup-ms: {e}"))?;
                if args.warmup_ms > 60_000 {
                    return Err("--warmup-ms must be at most 60000".into());
                }
            }
            "--rounds" => {
                args.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?;
                if !(1..=20).contains(&args.rounds) {
                    return Err("--rounds must be in 1..=20".into());
                }
            }
            "--tasks" => {
                let tasks = value("--tasks")?;
                args.tasks = Some(
                    CONCURRENCY
                        .into_iter()
                        .find(|n| n.to_string() == tasks)
                        .ok_or_else(|| format!("--tasks must be one of {CONCURRENCY:?}"))?,
                );
            }
            "--keys" => {
                let keys = value("--keys")?;
                args.dist = Some(
                    [Dist::Uniform, Dist::HotKey]
                        .into_iter()
                        .find(|d| d.name() == keys)
                        .ok_or("--keys must be uniform or hot-key")?,
                );
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The operations of the hit scenarios, in table order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    OursRedis,
    OursOneConn,
    Raw,
    CachedCrate,
    OursL1,
    OursMemory,
    Moka,
}

impl Impl {
    const ALL: [Impl; 7] = [
        Impl::OursRedis,
        Impl::OursOneConn,
        Impl::Raw,
        Impl::CachedCrate,
        Impl::OursL1,
        Impl::OursMemory,
        Impl::Moka,
    ];

    fn backend(self) -> &'static str {
        match self {
            Impl::OursMemory | Impl::Moka => "memory",
            Impl::OursL1 => "redis+L1",
            _ => "redis",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Impl::OursRedis => "ours #[cached] (1 connection, default)",
            Impl::OursOneConn => "ours #[cached], max_connections(4)",
            Impl::Raw => "raw redis-rs GET + serde_json (1 connection)",
            Impl::CachedCrate => "cached crate AsyncRedisCache (1 connection)",
            Impl::OursL1 => "ours #[cached], l1_capacity(64 MiB): L1 hits",
            Impl::OursMemory => "ours #[cached]",
            Impl::Moka => "moka::future get (clone)",
        }
    }
}

/// What the hit scenarios compare against: handles made once.
struct Fixtures {
    raw: redis::aio::MultiplexedConnection,
    moka: moka::future::Cache<u64, Product>,
}

impl Fixtures {
    async fn run(&self, which: Impl, tasks: usize, dist: Dist, timing: Timing) -> Measured {
        match which {
            Impl::OursRedis => run_timed(tasks, dist, timing, || OursRedis).await,
            Impl::OursOneConn => run_timed(tasks, dist, timing, || OursOneConn).await,
            Impl::Raw => run_timed(tasks, dist, timing, || RawRedis(self.raw.clone())).await,
            Impl::CachedCrate => run_timed(tasks, dist, timing, || CachedCrate).await,
            Impl::OursL1 => run_timed(tasks, dist, timing, || OursL1).await,
            Impl::OursMemory => run_timed(tasks, dist, timing, || OursMemory).await,
            Impl::Moka => run_timed(tasks, dist, timing, || Moka(self.moka.clone())).await,
        }
    }
}

/// One line of the table: one operation in one scenario, over all rounds.
struct Row {
    which: Impl,
    dist: Dist,
    tasks: usize,
    /// Ops/s of each round.
    rates: Vec<f64>,
    /// Every measured call of every round.
    hist: Histogram,
    /// CPU time over every round.
    cpu: CpuTime,
}

impl Row {
    fn median_rate(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        if n % 2 == 1 {
            rates[n / 2]
        } else {
            (rates[n / 2 - 1] + rates[n / 2]) / 2.0
        }
    }

    /// Client and server CPU time per call, in µs.
    fn cpu_per_call_us(&self) -> (f64, f64) {
        let calls = self.hist.total.max(1) as f64;
        (
            self.cpu.client.as_secs_f64() * 1e6 / calls,
            self.cpu.server.as_secs_f64() * 1e6 / calls,
        )
    }

    fn range(&self) -> (f64, f64) {
        let min = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rates.iter().copied().fold(0.0, f64::max);
        (min, max)
    }
}

fn kops(rate: f64) -> String {
    format!("{:.1}k", rate / 1_000.0)
}

/// A goal for the ratio of one operation's statistic to another's in the
/// same scenario.
struct Target {
    label: String,
    ours: Impl,
    theirs: Impl,
    dist: Dist,
    tasks: usize,
    stat: fn(&Row) -> f64,
    goal: &'static str,
    threshold: f64,
    /// Whether the ratio must be at least (else at most) the threshold.
    at_least: bool,
}

fn targets() -> Vec<Target> {
    let rate: fn(&Row) -> f64 = Row::median_rate;
    let p50: fn(&Row) -> f64 = |r| r.hist.quantile_us(0.50);
    let mut targets = vec![
        Target {
            label: "redis hit, 64 tasks, uniform: ours / raw ops/s".into(),
            ours: Impl::OursRedis,
            theirs: Impl::Raw,
            dist: Dist::Uniform,
            tasks: 64,
            stat: rate,
            goal: ">= 1.0",
            threshold: 1.0,
            at_least: true,
        },
        Target {
            label: "redis hit, 64 tasks, uniform: ours / cached crate ops/s".into(),
            ours: Impl::OursRedis,
            theirs: Impl::CachedCrate,
            dist: Dist::Uniform,
            tasks: 64,
            stat: rate,
            goal: ">= 1.2",
            threshold: 1.2,
            at_least: true,
        },
        Target {
            label: "redis hit, 64 tasks, hot-key: ours / raw ops/s".into(),
            ours: Impl::OursRedis,
            theirs: Impl::Raw,
            dist: Dist::HotKey,
            tasks: 64,
            stat: rate,
            goal: "clearly > 1; read here as >= 1.1",
            threshold: 1.1,
            at_least: true,
        },
    ];
    for dist in [Dist::Uniform, Dist::HotKey] {
        targets.push(Target {
            label: format!("redis hit, 1 task, {}: ours p50 / raw p50", dist.name()),
            ours: Impl::OursRedis,
            theirs: Impl::Raw,
            dist,
            tasks: 1,
            stat: p50,
            goal: "<= 1.05",
            threshold: 1.05,
            at_least: false,
        });
    }
    for tasks in CONCURRENCY {
        targets.push(Target {
            label: format!("memory hit, {tasks} task(s), uniform: ours / moka ops/s"),
            ours: Impl::OursMemory,
            theirs: Impl::Moka,
            dist: Dist::Uniform,
            tasks,
            stat: rate,
            goal: ">= 0.5",
            threshold: 0.5,
            at_least: true,
        });
    }
    for tasks in CONCURRENCY {
        for dist in [Dist::Uniform, Dist::HotKey] {
            targets.push(Target {
                label: format!(
                    "L1 hit, {tasks} task(s), {}: ours redis+L1 / moka ops/s",
                    dist.name()
                ),
                ours: Impl::OursL1,
                theirs: Impl::Moka,
                dist,
                tasks,
                stat: rate,
                goal: ">= 0.7",
                threshold: 0.7,
                at_least: true,
            });
        }
    }
    targets
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => return cli::usage_error(&message, USAGE),
    };
    let timing = Timing {
        warmup: Duration::from_millis(args.warmup_ms),
        measure: Duration::from_secs_f64(args.seconds),
    };
    let dists: Vec<Dist> = [Dist::Uniform, Dist::HotKey]
        .into_iter()
        .filter(|d| args.dist.is_none_or(|only| only == *d))
        .collect();
    let concurrency: Vec<usize> = CONCURRENCY
        .into_iter()
        .filter(|n| args.tasks.is_none_or(|only| only == *n))
        .collect();
    let scenarios = dists.len() * concurrency.len() * Impl::ALL.len();
    let estimate =
        (timing.warmup + timing.measure).as_secs_f64() * (scenarios * args.rounds) as f64;
    eprintln!(
        "{scenarios} hit scenarios x {} rounds x {:.1} s: about {:.0} s, then the misses",
        args.rounds,
        (timing.warmup + timing.measure).as_secs_f64(),
        estimate
    );

    let server = RedisServer::start();
    if let Some(pid) = server.pid() {
        let _ = SERVER_PID.set(pid);
    }
    let url = server.url();
    println!("## Machine\n\n{}", machine_facts(&server));
    let json_len = serde_json::to_vec(&fixtures::product(0))
        .expect("json")
        .len();
    println!(
        "value: one `Product`, {json_len} bytes of JSON; {KEYS} keys; \
         {} rounds of {:.1} s measured after {} ms warm-up per scenario\n",
        args.rounds, args.seconds, args.warmup_ms
    );

    let rt = machine::runtime();

    let ours = Cache::builder()
        .redis(&url)
        .prefix("ours")
        .build()
        .expect("redis cache builds");
    ours.install().expect("first install");
    let one_conn = ONE_CONNECTION.get_or_init(|| {
        Cache::builder()
            .redis(&url)
            .prefix("ours4")
            .max_connections(4)
            .build()
            .expect("redis cache builds")
    });
    let with_l1 = WITH_L1.get_or_init(|| {
        Cache::builder()
            .redis(&url)
            .prefix("oursl1")
            .l1_capacity(L1_CAPACITY)
            .build()
            .expect("redis cache builds")
    });
    CACHED_CRATE_URL.set(url.clone()).expect("set once");

    let fixtures = rt.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("redis url");
        let mut raw = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects");
        let moka: moka::future::Cache<u64, Product> = moka::future::Cache::new(10_000);
        for id in 0..KEYS {
            ours_redis_product(id).await;
            ours_one_conn_product(id).await;
            ours_memory_product(id).await;
            if let Err(e) = cached_crate_product(id).await {
                panic!("cached crate pre-population: {}", e.0);
            }
            let json = serde_json::to_vec(&fixtures::product(id)).expect("json");
            let () = raw
                .set_ex(format!("raw:product:{id}"), json, TTL.as_secs())
                .await
                .expect("raw SET");
            moka.insert(id, fixtures::product(id)).await;
        }
        let warm_calls = warm_l1().await;
        eprintln!("L1 warmed: {warm_calls} calls for {KEYS} keys");
        Fixtures { raw, moka }
    });
    let not_in_l1: Vec<u64> = (0..KEYS).filter(|&id| !in_l1(id)).collect();
    assert!(
        not_in_l1.is_empty(),
        "ours/redis+L1: keys not in the L1 after warming for {L1_WARM_TIME:?}: {not_in_l1:?} \
         ({} L1 flushes)",
        with_l1.stats().l1_flushes
    );
    let body_runs = || {
        [
            ("ours/redis", OURS_REDIS_RUNS.load(Ordering::Relaxed)),
            (
                "ours/redis, 1 connection",
                OURS_ONE_CONN_RUNS.load(Ordering::Relaxed),
            ),
            ("ours/redis+L1", OURS_L1_RUNS.load(Ordering::Relaxed)),
            ("ours/memory", OURS_MEMORY_RUNS.load(Ordering::Relaxed)),
            ("cached crate", CACHED_CRATE_RUNS.load(Ordering::Relaxed)),
        ]
    };
    for (name, runs) in body_runs() {
        assert_eq!(
            runs, KEYS,
            "{name}: pre-population runs the body once per key"
        );
    }
    let stats_before = [ours.stats(), one_conn.stats(), with_l1.stats()];

    let mut rows = Vec::new();
    for &dist in &dists {
        for &tasks in &concurrency {
            let mut cell: Vec<Row> = Impl::ALL
                .iter()
                .map(|&which| Row {
                    which,
                    dist,
                    tasks,
                    rates: Vec::new(),
                    hist: Histogram::new(),
                    cpu: CpuTime::default(),
                })
                .collect();
            for round in 0..args.rounds {
                eprintln!(
                    "{} x{tasks}, round {}/{} ...",
                    dist.name(),
                    round + 1,
                    args.rounds
                );
                // Rotate the order so no operation always runs first or last.
                for i in 0..cell.len() {
                    let row = &mut cell[(i + round) % Impl::ALL.len()];
                    let m = rt.block_on(fixtures.run(row.which, tasks, dist, timing));
                    row.rates.push(m.ops_per_sec());
                    row.hist.merge(&m.hist);
                    row.cpu.add(m.cpu);
                }
            }
            rows.extend(cell);
        }
    }
    let runs_while_measuring: Vec<(&str, u64)> = body_runs()
        .into_iter()
        .map(|(name, runs)| (name, runs - KEYS))
        .collect();
    let stats_after = [ours.stats(), one_conn.stats(), with_l1.stats()];

    eprintln!("misses ...");
    let misses_before = ours.stats();
    let miss = rt.block_on(run_keys(MISS_TASKS, MISS_KEYS, ours_miss_product));
    let misses_after = ours.stats();
    let body = rt.block_on(run_keys(MISS_TASKS, MISS_KEYS, body_alone));
    let miss_runs = MISS_RUNS.load(Ordering::Relaxed);

    let paired_time = timing.measure * u32::try_from(args.rounds).unwrap_or(1);
    eprintln!("paired single caller ...");
    let paired_runs_before = OURS_REDIS_RUNS.load(Ordering::Relaxed);
    let (paired_ours, paired_raw) = rt.block_on(paired(
        OursRedis,
        RawRedis(fixtures.raw.clone()),
        1,
        paired_time,
    ));
    let paired_runs = OURS_REDIS_RUNS.load(Ordering::Relaxed) - paired_runs_before;

    eprintln!("paired single caller, L1 and moka ...");
    let (l1_runs_before, l1_stats_before) = (OURS_L1_RUNS.load(Ordering::Relaxed), with_l1.stats());
    let (paired_l1, paired_moka) = rt.block_on(paired(
        OursL1,
        Moka(fixtures.moka.clone()),
        PAIRED_BATCH,
        paired_time,
    ));
    let l1_paired_runs = OURS_L1_RUNS.load(Ordering::Relaxed) - l1_runs_before;
    let l1_stats_after = with_l1.stats();

    // ---- report ----
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Hits ({KEYS} keys, all pre-populated; ops/s: median of {} rounds [min-max])\n",
        args.rounds
    );
    let _ = writeln!(
        out,
        "| backend | implementation | keys | tasks | ops/s | [min-max] | mean µs | p50 µs | p99 µs | CPU µs/call: client | redis |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let (min, max) = row.range();
        let (client_cpu, server_cpu) = row.cpu_per_call_us();
        let server_cpu = if row.which.backend() != "memory" {
            format!("{server_cpu:.2}")
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}-{} | {:.1} | {:.1} | {:.1} | {client_cpu:.2} | {server_cpu} |",
            row.which.backend(),
            row.which.label(),
            row.dist.name(),
            row.tasks,
            kops(row.median_rate()),
            kops(min),
            kops(max),
            row.hist.mean_us(),
            row.hist.quantile_us(0.50),
            row.hist.quantile_us(0.99)
        );
    }
    let _ = writeln!(
        out,
        "\n## Misses ({MISS_TASKS} tasks, {MISS_KEYS} distinct keys each used once, body sleeps {} ms)\n",
        BODY_SLEEP.as_millis()
    );
    let _ = writeln!(out, "| what | calls | ops/s | p50 µs | p99 µs |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (what, r) in [
        ("ours #[cached] on redis, every call a miss", &miss),
        ("the body alone (tokio sleep 1 ms)", &body),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {:.1} | {:.1} |",
            r.ops,
            kops(r.ops_per_sec()),
            r.p50(),
            r.p99()
        );
    }

    let _ = writeln!(out, "\n## Checks\n");
    let mut failed = false;
    for (name, runs) in runs_while_measuring {
        let _ = writeln!(
            out,
            "- {name}: body runs while measuring hits: {runs} (must be 0)"
        );
        failed |= runs != 0;
    }
    for (name, before, after) in [
        ("ours/redis", stats_before[0], stats_after[0]),
        ("ours/redis, 1 connection", stats_before[1], stats_after[1]),
    ] {
        let _ = writeln!(
            out,
            "- {name} stats while measuring: {} hits, {} misses, {} errors",
            after.hits - before.hits,
            after.misses - before.misses,
            after.errors - before.errors
        );
        failed |= after.misses != before.misses || after.errors != before.errors;
    }
    let (before, after) = (stats_before[2], stats_after[2]);
    let (hits, l1_hits) = (after.hits - before.hits, after.l1_hits - before.l1_hits);
    let _ = writeln!(
        out,
        "- ours/redis+L1 stats while measuring: {hits} hits, of which {l1_hits} L1 hits \
         (must be all), {} misses, {} errors, {} L1 flushes",
        after.misses - before.misses,
        after.errors - before.errors,
        after.l1_flushes - before.l1_flushes
    );
    failed |= l1_hits != hits
        || after.misses != before.misses
        || after.errors != before.errors
        || after.l1_flushes != before.l1_flushes;
    let _ = writeln!(
        out,
        "- misses: body runs {miss_runs} (must be {MISS_KEYS}); stats {} misses, {} errors",
        misses_after.misses - misses_before.misses,
        misses_after.errors - misses_before.errors
    );
    failed |= miss_runs != MISS_KEYS || misses_after.errors != misses_before.errors;

    let find = |which: Impl, dist: Dist, tasks: usize| {
        rows.iter()
            .find(|r| r.which == which && r.dist == dist && r.tasks == tasks)
    };
    let _ = writeln!(
        out,
        "\n## One caller, paired ({} + {} calls, alternating ours and raw call by call)\n",
        paired_ours.total, paired_raw.total
    );
    let _ = writeln!(out, "| implementation | mean µs | p50 µs | p99 µs |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (name, hist) in [
        ("ours #[cached] on redis", &paired_ours),
        ("raw redis-rs GET + serde_json", &paired_raw),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.1} | {:.1} | {:.1} |",
            hist.mean_us(),
            hist.quantile_us(0.5),
            hist.quantile_us(0.99)
        );
    }
    let paired_ratio = paired_ours.quantile_us(0.5) / paired_raw.quantile_us(0.5);
    let _ = writeln!(
        out,
        "\nours p50 / raw p50, paired: {paired_ratio:.3} (target <= 1.05): {}; body runs: {paired_runs} (must be 0)",
        if paired_ratio <= 1.05 { "met" } else { "NOT met" }
    );
    failed |= paired_runs != 0;

    let _ = writeln!(
        out,
        "\n## One caller, paired in process ({} + {} batches of {PAIRED_BATCH} calls, \
         alternating a batch of L1 hits and a batch of moka gets)\n",
        paired_l1.total, paired_moka.total
    );
    let _ = writeln!(
        out,
        "| implementation | mean ns/call | p50 ns/call | p99 ns/call (batch means) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (name, hist) in [
        ("ours #[cached], L1 hits", &paired_l1),
        ("moka::future get (clone)", &paired_moka),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.0} |",
            hist.mean_us() * 1e3,
            hist.quantile_us(0.5) * 1e3,
            hist.quantile_us(0.99) * 1e3
        );
    }
    // Ops/s of one caller is the inverse of its mean time per call.
    let l1_ratio = paired_moka.mean_us() / paired_l1.mean_us();
    let l1_hits = l1_stats_after.l1_hits - l1_stats_before.l1_hits;
    let hits = l1_stats_after.hits - l1_stats_before.hits;
    let _ = writeln!(
        out,
        "\nours ops/s / moka ops/s (moka mean / ours mean), paired: {l1_ratio:.3} (target >= 0.7): {}; \
         body runs: {l1_paired_runs} (must be 0); {l1_hits} of {hits} hits from the L1 (must be all)",
        if l1_ratio >= 0.7 { "met" } else { "NOT met" }
    );
    failed |= l1_paired_runs != 0 || l1_hits != hits;

    let _ = writeln!(out, "\n## Against the targets (ours = default settings)\n");
    for t in targets() {
        let (Some(ours), Some(theirs)) = (
            find(t.ours, t.dist, t.tasks),
            find(t.theirs, t.dist, t.tasks),
        ) else {
            let _ = writeln!(out, "- {}: not measured in this run", t.label);
            continue;
        };
        let ratio = (t.stat)(ours) / (t.stat)(theirs);
        let met = if t.at_least {
            ratio >= t.threshold
        } else {
            ratio <= t.threshold
        };
        let verdict = if met { "met" } else { "NOT met" };
        let _ = writeln!(
            out,
            "- {}: {ratio:.2} (target {}): {verdict}",
            t.label, t.goal
        );
    }
    print!("{out}");
    drop(rt);
    drop(server);
    if failed {
        eprintln!("FAILED: a check above did not hold (a #[cached] body ran on a hit, a hit missed the L1, or the cache reported errors)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
