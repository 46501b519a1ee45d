//! What the `metrics` feature costs a hit with a recorder installed: the
//! same `#[cached]` hits at 64 tasks with no recorder and with the
//! Prometheus recorder, on Redis, on an L1 in front of Redis, and on the
//! memory store, in alternating rounds.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo run --release -p cache-benches \
//!     --features metrics --bin metrics_overhead -- [--seconds N] [--rounds N]
//! ```
//!
//! The tool starts a `redis-server` on a free loopback port and two tokio
//! runtimes of two workers each: one whose worker threads have the
//! `metrics-exporter-prometheus` recorder as their default (installed as
//! each thread starts), one with none (the facade's no-op). Each runtime has
//! its own caches, connections and `#[cached]` functions, made and warmed
//! on it, so the two differ only by the recorder. For each store, `--rounds`
//! rounds (default 6) run both, alternating which goes first, each for
//! `--seconds` (default 2) after a 300 ms warm-up; 100 keys drawn
//! uniformly, every call a hit (the tool fails otherwise). It prints the
//! median ops/s of each with its range and the overhead, `off / on - 1`,
//! against the target of at most 5%; then the recorder's own count of the
//! hits, to show that it saw them.

use cache_runtime::{cached, Cache};
use cache_test_support::RedisServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/fixtures.rs"]
mod fixtures;

use fixtures::{product, Product};

const KEYS: u64 = 100;
const TASKS: u64 = 64;
const WARMUP: Duration = Duration::from_millis(300);
const USAGE: &str = "usage: metrics_overhead [--seconds N (default 2)] [--rounds N (default 6)] [--store redis|l1|memory] [--same]";

static RUNS: AtomicU64 = AtomicU64::new(0);

/// One runtime's caches: Redis alone, an L1 in front of Redis, the memory store.
struct Caches {
    redis: Cache,
    l1: Cache,
    memory: Cache,
}

static PLAIN: OnceLock<Caches> = OnceLock::new();
static RECORDED: OnceLock<Caches> = OnceLock::new();

macro_rules! hit_fns {
    ($($name:ident => $caches:ident . $store:ident),* $(,)?) => {
        $(
            #[cached(ttl = 3600, key = "product:{id}", cache = &$caches.get().expect("built").$store)]
            async fn $name(id: u64) -> Product {
                RUNS.fetch_add(1, Ordering::Relaxed);
                product(id)
            }
        )*
    };
}

hit_fns! {
    plain_redis => PLAIN.redis,
    plain_l1 => PLAIN.l1,
    plain_memory => PLAIN.memory,
    recorded_redis => RECORDED.redis,
    recorded_l1 => RECORDED.l1,
    recorded_memory => RECORDED.memory,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Redis,
    L1,
    Memory,
}

impl Store {
    fn label(self) -> &'static str {
        match self {
            Store::Redis => "Redis hit",
            Store::L1 => "L1 hit (in front of Redis)",
            Store::Memory => "memory-store hit",
        }
    }
}

async fn call(recorded: bool, store: Store, id: u64) {
    let p = match (recorded, store) {
        (false, Store::Redis) => plain_redis(id).await,
        (false, Store::L1) => plain_l1(id).await,
        (false, Store::Memory) => plain_memory(id).await,
        (true, Store::Redis) => recorded_redis(id).await,
        (true, Store::L1) => recorded_l1(id).await,
        (true, Store::Memory) => recorded_memory(id).await,
    };
    assert_eq!(p.id, id, "wrong value");
}

/// `TASKS` tasks call for the warm-up and `measure`; the measured window's calls per second.
async fn run(recorded: bool, store: Store, measure: Duration) -> f64 {
    let phase = Arc::new(AtomicU8::new(0));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let phase = Arc::clone(&phase);
            tokio::spawn(async move {
                let mut calls = 0u64;
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                loop {
                    let before = phase.load(Ordering::Relaxed);
                    if before == 2 {
                        return calls;
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    call(recorded, store, x % KEYS).await;
                    if before == 1 && phase.load(Ordering::Relaxed) == 1 {
                        calls += 1;
                    }
                    // An L1 or memory hit never waits: let the timers run.
                    if x % 16 == 0 {
                        tokio::task::yield_now().await;
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
    let mut total = 0;
    for h in handles {
        total += h.await.expect("a task panicked");
    }
    total as f64 / elapsed.as_secs_f64()
}

fn runtime(recorder: Option<&'static PrometheusRecorder>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    if let Some(recorder) = recorder {
        builder.on_thread_start(move || {
            // For the thread's life: the guard is never dropped.
            std::mem::forget(metrics::set_default_local_recorder(recorder));
        });
    }
    builder.build().expect("tokio runtime")
}

fn caches(server: &RedisServer) -> Caches {
    let redis = |b: cache_runtime::CacheBuilder| b.redis(server.url()).prefix("bench");
    Caches {
        redis: redis(Cache::builder()).build().expect("valid settings"),
        l1: redis(Cache::builder())
            .l1_capacity(64 << 20)
            .build()
            .expect("valid settings"),
        memory: Cache::builder().build().expect("valid settings"),
    }
}

fn main() -> ExitCode {
    let mut seconds = 2.0f64;
    let mut rounds = 6usize;
    let mut stores = vec![Store::Redis, Store::L1, Store::Memory];
    let mut same = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let ok = match flag.as_str() {
            "--same" => {
                same = true;
                true
            }
            "--store" => match it.next().as_deref() {
                Some("redis") => {
                    stores = vec![Store::Redis];
                    true
                }
                Some("l1") => {
                    stores = vec![Store::L1];
                    true
                }
                Some("memory") => {
                    stores = vec![Store::Memory];
                    true
                }
                _ => false,
            },
            "--seconds" => match it.next().map(|v| v.parse::<f64>()) {
                Some(Ok(v)) if v > 0.0 && v <= 600.0 => {
                    seconds = v;
                    true
                }
                _ => false,
            },
            "--rounds" => match it.next().map(|v| v.parse::<usize>()) {
                Some(Ok(v)) if (1..=20).contains(&v) => {
                    rounds = v;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return cli::usage_error(&format!("bad option {flag}"), USAGE);
        }
    }
    let measure = Duration::from_secs_f64(seconds);
    let server = RedisServer::start();
    let recorder: &'static PrometheusRecorder =
        Box::leak(Box::new(PrometheusBuilder::new().build_recorder()));
    let handle = recorder.handle();
    let plain = runtime(None);
    // `--same`: both runtimes without a recorder, to see the harness's own
    // difference between the two (an A/A run).
    let recorded = runtime((!same).then_some(recorder));
    // Each runtime's caches are made, connected and warmed on it.
    for (rt, slot, is_recorded) in [(&plain, &PLAIN, false), (&recorded, &RECORDED, true)] {
        rt.block_on(async {
            let _ = slot.set(caches(&server));
            for store in [Store::Redis, Store::L1, Store::Memory] {
                for _ in 0..3 {
                    for id in 0..KEYS {
                        tokio::spawn(call(is_recorded, store, id))
                            .await
                            .expect("warm-up");
                    }
                }
            }
        });
    }
    // Redis is shared: its keys were stored once; the memory stores once each.
    let stored = RUNS.load(Ordering::Relaxed);
    assert_eq!(
        stored,
        3 * KEYS,
        "one body run per key and store, then hits"
    );
    println!(
        "#[cached] hits, {TASKS} tasks on 2 tokio workers, {} cores, {KEYS} keys uniform, \
         {rounds} rounds x {seconds} s, alternating; recorder: metrics-exporter-prometheus \
         (the thread's default) or none (the facade's no-op)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| store | no recorder: ops/s (median, range) | Prometheus recorder: ops/s (median, range) | overhead (target <= 5%) |\n|---|---|---|---|");
    for &store in &stores {
        let mut rates = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for on in order {
                let rt = if on { &recorded } else { &plain };
                rates[usize::from(on)].push(rt.block_on(run(on, store, measure)));
            }
        }
        for r in &mut rates {
            r.sort_by(f64::total_cmp);
        }
        let median = |r: &Vec<f64>| r[r.len() / 2];
        let (off, on) = (median(&rates[0]), median(&rates[1]));
        let range = |r: &Vec<f64>| {
            format!(
                "{:.0}k ({:.0}k-{:.0}k)",
                median(r) / 1e3,
                r[0] / 1e3,
                r[r.len() - 1] / 1e3
            )
        };
        println!(
            "| {} | {} | {} | {:+.1}% |",
            store.label(),
            range(&rates[0]),
            range(&rates[1]),
            (off / on - 1.0) * 100.0
        );
    }
    let ran = RUNS.load(Ordering::Relaxed) - stored;
    assert_eq!(
        ran, 0,
        "the body ran while measuring: not every call was a hit"
    );
    let text = handle.render();
    let hits: f64 = text
        .lines()
        .filter(|l| l.starts_with("cache_gets_total{") && l.contains("result=\"hit\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!("\nThe recorder counted {hits:.0} hits (cache_gets_total, result=\"hit\").");
    if hits == 0.0 && !same {
        eprintln!("the recorder saw no hit: it was not in effect");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
