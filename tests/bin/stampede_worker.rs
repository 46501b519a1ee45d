//! One process of the stampede tests (`tests/e2e/stampede.rs`) and of the
//! stampede benchmark: many tasks call one cold `#[cached]` key at once.
//!
//! ```text
//! stampede-worker <redis url> <prefix> <id> <tasks> <body ms> <lease ms> <l1: 0|1> <lock: 0|1>
//! ```
//!
//! A first argument of several URLs separated by commas names a Redis
//! Cluster's nodes.
//!
//! The benchmark includes this file as a module and runs [`run`] in a
//! child process of its own.
//!
//! It prints `ready` once its cache is built, waits for a line on standard
//! input (so that every process starts at once), runs the tasks, and
//! prints one line, `done key=value ...`: the calls that got the value,
//! the slowest and the 99th-percentile call in µs, and its cache's
//! counters. Each body run is counted in Redis (`INCR {prefix}:runs`).

use cache_runtime::{cached, Cache};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// The stampeded function: counts its run in Redis, then takes `body_ms`.
#[cached(ttl = 600, key = "report:{id}", cache = cache)]
async fn report(cache: &Cache, counter: Counter, id: u64, body_ms: u64) -> Result<String, String> {
    let mut incr = redis::cmd("INCR");
    incr.arg(format!("{}:runs", cache.prefix()));
    let runs: Result<u64, _> = match counter {
        Counter::Server(mut c) => incr.query_async(&mut c).await,
        Counter::Cluster(mut c) => incr.query_async(&mut c).await,
    };
    runs.map_err(|e| format!("counting the run: {e}"))?;
    tokio::time::sleep(Duration::from_millis(body_ms)).await;
    Ok(format!("report {id}"))
}

/// Where body runs are counted: the server, or the cluster.
#[derive(Clone)]
enum Counter {
    Server(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

fn arg<T: std::str::FromStr>(args: &[String], at: usize, what: &str) -> T {
    args.get(at)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {at} ({what}) is missing or malformed: {args:?}"))
}

#[allow(dead_code)] // in the benchmark, which has a `main` of its own
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    run(&args);
}

/// One worker, from its arguments (the program's name left out).
pub fn run(args: &[String]) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(work(args));
}

async fn work(args: &[String]) {
    let url: String = arg(args, 0, "redis url");
    let prefix: String = arg(args, 1, "prefix");
    let id: u64 = arg(args, 2, "id");
    let tasks: usize = arg(args, 3, "tasks");
    let body_ms: u64 = arg(args, 4, "body ms");
    let lease_ms: u64 = arg(args, 5, "lease ms");
    let l1: u8 = arg(args, 6, "l1");
    let lock: u8 = arg(args, 7, "lock");
    let nodes: Vec<&str> = url.split(',').collect();
    let builder = match nodes.len() {
        1 => Cache::builder().redis(url.as_str()),
        _ => Cache::builder().redis_cluster(nodes.iter().copied()),
    };
    let mut builder = builder
        .prefix(prefix)
        .fill_lock(lock == 1)
        .lock_lease(Duration::from_millis(lease_ms))
        // Generous: the tests check that no caller needs it.
        .lock_wait(Duration::from_secs(30));
    if l1 == 1 {
        builder = builder.l1_capacity(1 << 20);
    }
    let cache = builder.build().expect("valid settings");
    let counter = match nodes.len() {
        1 => Counter::Server(
            redis::Client::open(url.as_str())
                .expect("a Redis URL")
                .get_multiplexed_async_connection()
                .await
                .expect("Redis for the run counter"),
        ),
        _ => Counter::Cluster(
            redis::cluster::ClusterClient::new(nodes)
                .expect("Redis URLs")
                .get_async_connection()
                .await
                .expect("the cluster for the run counter"),
        ),
    };
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go).expect("stdin");

    let calls: Vec<_> = (0..tasks)
        .map(|_| {
            let (cache, counter) = (cache.clone(), counter.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let out = report(&cache, counter, id, body_ms).await;
                (out, started.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    let mut took = Vec::with_capacity(tasks);
    for call in calls {
        let (out, elapsed) = call.await.expect("a call panicked");
        if out.as_deref() == Ok(format!("report {id}").as_str()) {
            ok += 1;
        }
        took.push(elapsed);
    }
    took.sort();
    let micros = |d: Option<&Duration>| d.map_or(0, |d| d.as_micros());
    let p99 = took.get((took.len() * 99).div_ceil(100).saturating_sub(1));
    let s = cache.stats();
    println!(
        "done ok={ok} max_us={} p99_us={} hits={} misses={} errors={} lock_waits={} lock_takeovers={} lock_timeouts={} l1_invalidations={}",
        micros(took.last()),
        micros(p99),
        s.hits,
        s.misses,
        s.errors,
        s.lock_waits,
        s.lock_takeovers,
        s.lock_timeouts,
        s.l1_invalidations,
    );
}
