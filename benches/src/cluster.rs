//! Hits on a Redis Cluster: a `#[cached]` function on
//! `Cache::builder().redis_cluster(..)` against hand-written redis-rs
//! cluster `GET` + `serde_json`, in the same run, at 1 and 64 tasks.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo run --release -p cache-benches --bin cluster -- \
//!     [--seconds N] [--rounds N]
//! ```
//!
//! The tool starts a six-node cluster (three primaries, three replicas) on
//! free loopback ports, stores 100 products (~200 bytes of JSON each) under
//! both implementations' keys, and then, for each concurrency, runs the two
//! operations one after the other `--rounds` times (default 5), each for
//! `--seconds` (default 2) after a 300 ms warm-up, on one tokio runtime of
//! two workers. Keys are drawn uniformly. It prints ops/s (median of the
//! rounds, with their range), p50 and p99 over all rounds' calls, and the
//! ratio of the medians; then one caller alternating the two call by call
//! for `--rounds` x `--seconds` (both see the same thread placement), p50
//! against p50. The body of the `#[cached]` function counts its
//! runs; the tool fails if it ran while measuring (every call must be a
//! hit). Both sides use one connection (the library's default; for the
//! cluster client, one socket per node).

use cache_runtime::{cached, Cache};
use cache_test_support::RedisCluster;
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

use fixtures::{product, Product};
use histogram::Histogram;

const KEYS: u64 = 100;
const WARMUP: Duration = Duration::from_millis(300);
const USAGE: &str = "usage: cluster [--seconds N (default 2)] [--rounds N (default 5)]";

static CACHE: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 3600, key = "product:{id}", cache = CACHE.get().expect("built"))]
async fn ours(id: u64) -> Product {
    RUNS.fetch_add(1, Ordering::Relaxed);
    product(id)
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Ours,
    Raw,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Ours => "ours #[cached] on redis_cluster",
            Op::Raw => "raw redis-rs cluster GET + serde_json",
        }
    }
}

async fn call(op: Op, raw: &mut redis::cluster_async::ClusterConnection, id: u64) {
    let p = match op {
        Op::Ours => ours(id).await,
        Op::Raw => {
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg(format!("raw:product:{id}"))
                .query_async(raw)
                .await
                .expect("raw GET");
            serde_json::from_slice(&bytes).expect("raw JSON")
        }
    };
    assert_eq!(p.id, id, "wrong value");
}

/// `tasks` tasks call `op` for the warm-up and `measure`; returns the calls
/// of the measured window, timed.
async fn run(
    op: Op,
    tasks: u64,
    measure: Duration,
    raw: &redis::cluster_async::ClusterConnection,
) -> (f64, Histogram) {
    let phase = Arc::new(AtomicU8::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let phase = Arc::clone(&phase);
            let mut raw = raw.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::new();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                loop {
                    let before = phase.load(Ordering::Relaxed);
                    if before == 2 {
                        return hist;
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let start = Instant::now();
                    call(op, &mut raw, x % KEYS).await;
                    if before == 1 && phase.load(Ordering::Relaxed) == 1 {
                        hist.record(start.elapsed());
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    phase.store(1, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    phase.store(2, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut hist = Histogram::new();
    for h in handles {
        hist.merge(&h.await.expect("a task panicked"));
    }
    (hist.total as f64 / elapsed.as_secs_f64(), hist)
}

fn main() -> ExitCode {
    let mut seconds = 2.0f64;
    let mut rounds = 5usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next();
        let parsed = match (flag.as_str(), value.as_deref().map(str::parse::<f64>)) {
            ("--seconds", Some(Ok(v))) if v > 0.0 && v <= 600.0 => {
                seconds = v;
                true
            }
            ("--rounds", Some(Ok(v))) if (1.0..=20.0).contains(&v) && v.fract() == 0.0 => {
                rounds = v as usize;
                true
            }
            _ => false,
        };
        if !parsed {
            return cli::usage_error(&format!("bad option {flag}"), USAGE);
        }
    }
    let measure = Duration::from_secs_f64(seconds);
    let cluster = RedisCluster::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let cache = Cache::builder()
            .redis_cluster(cluster.urls())
            .prefix("bench")
            .build()
            .expect("valid settings");
        CACHE.set(cache).expect("set once");
        let client = redis::cluster::ClusterClient::new(cluster.urls()).expect("URLs");
        let mut raw = client.get_async_connection().await.expect("the cluster");
        for id in 0..KEYS {
            ours(id).await;
            let json = serde_json::to_vec(&product(id)).expect("JSON");
            let _: () = redis::cmd("SET")
                .arg(format!("raw:product:{id}"))
                .arg(json)
                .query_async(&mut raw)
                .await
                .expect("SET");
        }
        for id in 0..KEYS {
            ours(id).await;
        }
        let stored = RUNS.load(Ordering::Relaxed);
        assert_eq!(stored, KEYS, "one run per key, then hits");
        println!(
            "Redis Cluster hits: 6 nodes (3 primaries, 3 replicas) on loopback, {} cores, \
             2 tokio workers, {KEYS} keys uniform, {rounds} rounds x {seconds} s\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "| tasks | operation | ops/s (median, range) | p50 µs | p99 µs | ours / raw |\n|---|---|---|---|---|---|"
        );
        for tasks in [1u64, 64] {
            let mut rates = [Vec::new(), Vec::new()];
            let mut hists = [Histogram::new(), Histogram::new()];
            for round in 0..rounds {
                // Alternate which goes first: both see the same conditions.
                let order = if round % 2 == 0 {
                    [Op::Ours, Op::Raw]
                } else {
                    [Op::Raw, Op::Ours]
                };
                for op in order {
                    let i = usize::from(op == Op::Raw);
                    let (rate, hist) = run(op, tasks, measure, &raw).await;
                    rates[i].push(rate);
                    hists[i].merge(&hist);
                }
            }
            let median = |r: &mut Vec<f64>| {
                r.sort_by(f64::total_cmp);
                r[r.len() / 2]
            };
            let m = [median(&mut rates[0]), median(&mut rates[1])];
            for (i, op) in [Op::Ours, Op::Raw].into_iter().enumerate() {
                println!(
                    "| {tasks} | {} | {:.1}k ({:.1}k-{:.1}k) | {:.0} | {:.0} | {} |",
                    op.label(),
                    m[i] / 1e3,
                    rates[i][0] / 1e3,
                    rates[i][rates[i].len() - 1] / 1e3,
                    hists[i].quantile_us(0.5),
                    hists[i].quantile_us(0.99),
                    if i == 0 {
                        format!("{:.2}x", m[0] / m[1])
                    } else {
                        String::new()
                    }
                );
            }
        }
        // One caller alternating the two call by call, so that both see
        // the same thread placement: p50 against p50.
        let mut paired = [Histogram::new(), Histogram::new()];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let until = Instant::now() + measure * u32::try_from(rounds).unwrap_or(1);
        while Instant::now() < until {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % KEYS;
            for (i, op) in [Op::Ours, Op::Raw].into_iter().enumerate() {
                let start = Instant::now();
                call(op, &mut raw, id).await;
                paired[i].record(start.elapsed());
            }
        }
        let (p_ours, p_raw) = (paired[0].quantile_us(0.5), paired[1].quantile_us(0.5));
        println!(
            "\nOne caller, paired call by call ({} calls each): ours p50 {:.1} µs, raw p50 {:.1} µs, \
             ours / raw {:.3} (target <= 1.05)",
            paired[0].total,
            p_ours,
            p_raw,
            p_ours / p_raw
        );
        let ran = RUNS.load(Ordering::Relaxed) - stored;
        assert_eq!(ran, 0, "the body ran while measuring: not every call was a hit");
    });
    ExitCode::SUCCESS
}
