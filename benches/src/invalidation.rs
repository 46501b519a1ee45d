//! How long another instance's L1 keeps an old value after a change: the
//! invalidation latency of the L1 in front of Redis, against a
//! `redis-server` this tool starts on a free loopback port.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo run --release -p cache-benches --bin invalidation -- \
//!     [--samples N]
//! ```
//!
//! Two caches on the same Redis and prefix, each built with
//! `.l1_capacity(16 << 20)` and so each with its own tracked connection:
//! instance A, the writer, and instance B, whose L1 is watched. Both run on
//! one tokio multi-thread runtime with 2 workers, as in the throughput tool;
//! B's connection, and so the handler of its invalidation pushes, runs on
//! that runtime. For each sample (`--samples`, default 10,000, after 100
//! unrecorded ones), one task on a worker:
//!
//! 1. reads the key through `B.get` until B holds it in its L1
//!    (`__private::l1_holds`): the first hit after a change is a tracked
//!    read that installs the copy;
//! 2. writes a new value through `A.set` and takes the time when the write
//!    returns (Redis has applied it and sent B's invalidation by then);
//! 3. spins on `l1_holds(&B, key)` with `tokio::task::yield_now()` between
//!    polls, so the runtime gets to run B's connection task and its push
//!    handler, and takes the time when B's copy is gone.
//!
//! The first row is the time from the write's return to the copy's removal:
//! how long after a change has been acknowledged B can still serve the old
//! value; the target (p99 <= 5 ms) is checked on it. The second row adds
//! the write's own round trip (from the moment `A.set` is called). A sample
//! whose copy is already gone when the write returns records the time of
//! that one check. The next read through B must return the new value; the
//! tool fails if one does not, or if a copy outlives [`PATIENCE`].
//!
//! The spinning task keeps one of the runtime's workers, and so one core,
//! busy: on a 2-core machine the thread that reads the push may have to
//! wait for the kernel to preempt it. A second pass of the same samples, a
//! diagnostic, also calls `std::thread::yield_now()` (`sched_yield`) between
//! polls, handing the core to any thread waiting for it; its rows show how
//! much of the tail is the measurement's own spinning.
//!
//! The whole run takes a few seconds with the default samples; it talks to
//! 127.0.0.1 only and kills its `redis-server` on exit.

use cache_runtime::__private::l1_holds;
use cache_runtime::Cache;
use cache_test_support::RedisServer;
use std::fmt::Write as _;
use std::process::ExitCode;
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

/// The key, relative to the caches' prefix.
const KEY: &str = "product:1";
const TTL: Duration = Duration::from_secs(3600);
/// Each instance's L1 capacity in bytes.
const L1_CAPACITY: u64 = 16 << 20;
/// Unrecorded samples first (connections, allocator, caches warm).
const WARMUP_SAMPLES: u64 = 100;
/// Reads of step 1 before the tool gives up on B installing a copy.
const MAX_READS: u32 = 1_000;
/// How long a copy may outlive the write before the tool fails: a liveness
/// bound, far above the target.
const PATIENCE: Duration = Duration::from_secs(2);
/// The issue's target for p99 of the first row, in microseconds.
const TARGET_P99_US: f64 = 5_000.0;

const USAGE: &str = "usage: invalidation [--samples N (default 10000, 1 to 1000000)]";

fn parse_args() -> Result<u64, String> {
    let mut samples = 10_000;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--samples" => {
                samples = it
                    .next()
                    .ok_or("--samples needs a value")?
                    .parse()
                    .map_err(|e| format!("--samples: {e}"))?;
                if !(1..=1_000_000).contains(&samples) {
                    return Err("--samples must be in 1..=1000000".into());
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(samples)
}

fn instance(url: &str) -> Cache {
    Cache::builder()
        .redis(url)
        .prefix("inv")
        .l1_capacity(L1_CAPACITY)
        .build()
        .expect("redis cache builds")
}

/// How the measuring task waits for the copy to go.
#[derive(Clone, Copy)]
enum Spin {
    /// `tokio::task::yield_now()` between polls.
    Tokio,
    /// The same, plus `std::thread::yield_now()`.
    TokioAndOs,
}

impl Spin {
    fn name(self) -> &'static str {
        match self {
            Spin::Tokio => "tokio yield",
            Spin::TokioAndOs => "tokio + OS yield (diagnostic)",
        }
    }
}

/// What the samples found.
struct Measured {
    /// From the write's return to the copy's removal.
    after_return: Histogram,
    /// From the write's start to the copy's removal.
    after_start: Histogram,
    /// Samples whose copy was gone before the write returned.
    gone_at_return: u64,
    /// Reads of step 1 beyond the first, over all samples.
    extra_reads: u64,
}

/// Runs `warmup + samples` rounds of install, write, wait; records the last
/// `samples`. Fails on a stale read, a copy that is never installed, or one
/// that outlives [`PATIENCE`].
async fn measure(
    a: Cache,
    b: Cache,
    spin: Spin,
    warmup: u64,
    samples: u64,
) -> Result<Measured, String> {
    let mut m = Measured {
        after_return: Histogram::new(),
        after_start: Histogram::new(),
        gone_at_return: 0,
        extra_reads: 0,
    };
    let mut current = 0;
    a.set(KEY, &fixtures::product(current), TTL)
        .await
        .map_err(|e| format!("first write: {e}"))?;
    // Every read of B must see the value of the write that returned last.
    for i in 0..warmup + samples {
        // 1. B holds the current value in its L1.
        let mut reads = 0;
        while !l1_holds(&b, KEY) {
            if reads == MAX_READS {
                return Err(format!(
                    "sample {i}: B held no L1 copy after {MAX_READS} reads"
                ));
            }
            let read: Option<Product> = b
                .get(KEY)
                .await
                .map_err(|e| format!("sample {i}: B's read: {e}"))?;
            match read {
                Some(p) if p.id == current => {}
                other => {
                    return Err(format!(
                        "sample {i}: B read {:?} after the write of id {current} returned",
                        other.map(|p| p.id)
                    ))
                }
            }
            reads += 1;
        }
        // 2. A changes the key.
        current += 1;
        let started = Instant::now();
        a.set(KEY, &fixtures::product(current), TTL)
            .await
            .map_err(|e| format!("sample {i}: A's write: {e}"))?;
        let returned = Instant::now();
        let held_at_return = l1_holds(&b, KEY);
        // 3. Until B's copy is gone.
        while l1_holds(&b, KEY) {
            if returned.elapsed() > PATIENCE {
                return Err(format!(
                    "sample {i}: B's copy still there {PATIENCE:?} after the write returned"
                ));
            }
            if let Spin::TokioAndOs = spin {
                std::thread::yield_now();
            }
            tokio::task::yield_now().await;
        }
        let gone = Instant::now();
        if i >= warmup {
            m.after_return.record(gone - returned);
            m.after_start.record(gone - started);
            m.gone_at_return += u64::from(!held_at_return);
            m.extra_reads += u64::from(reads.saturating_sub(1));
        }
    }
    Ok(m)
}

fn main() -> ExitCode {
    let samples = match parse_args() {
        Ok(samples) => samples,
        Err(message) => return cli::usage_error(&message, USAGE),
    };
    let server = RedisServer::start();
    let url = server.url();
    println!("## Machine\n\n{}", machine_facts(&server));

    let rt = machine::runtime();
    let (a, b) = (instance(&url), instance(&url));
    let mut passes = Vec::new();
    for spin in [Spin::Tokio, Spin::TokioAndOs] {
        eprintln!(
            "{}: {WARMUP_SAMPLES} + {samples} invalidations ...",
            spin.name()
        );
        let started = Instant::now();
        // Spawned, so that the measuring task runs on a worker, beside B's
        // connection task.
        let result = rt.block_on(async {
            tokio::spawn(measure(a.clone(), b.clone(), spin, WARMUP_SAMPLES, samples))
                .await
                .expect("the measuring task panicked")
        });
        match result {
            Ok(m) => passes.push((spin, m, started.elapsed())),
            Err(message) => {
                eprintln!("FAILED ({}): {message}", spin.name());
                return ExitCode::FAILURE;
            }
        }
    }
    let (sa, sb) = (a.stats(), b.stats());

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Invalidation latency (instance A writes, instance B's L1 copy is removed; \
         {samples} samples per pass after {WARMUP_SAMPLES} unrecorded)\n"
    );
    let _ = writeln!(
        out,
        "| spin | measured from | samples | mean µs | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (spin, m, _) in &passes {
        for (what, h) in [
            ("the write's return (`A.set` returned)", &m.after_return),
            (
                "the write's start (its round trip included)",
                &m.after_start,
            ),
        ] {
            let _ = writeln!(
                out,
                "| {} | {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                spin.name(),
                h.total,
                h.mean_us(),
                h.quantile_us(0.50),
                h.quantile_us(0.90),
                h.quantile_us(0.99),
                h.quantile_us(0.999),
                h.max_us()
            );
        }
    }
    let p99 = passes[0].1.after_return.quantile_us(0.99);
    let _ = writeln!(
        out,
        "\np99 from the write's return ({}): {p99:.1} µs (target <= {TARGET_P99_US:.0} µs): {}",
        passes[0].0.name(),
        if p99 <= TARGET_P99_US {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = writeln!(out, "\n## Checks\n");
    let _ = writeln!(
        out,
        "- every read of B after a write returned the new value; every copy went within {PATIENCE:?}"
    );
    for (spin, m, took) in &passes {
        let _ = writeln!(
            out,
            "- {}: {:.1} s; copies already gone when the write returned: {} of {}; \
             reads of B beyond one needed to install a copy: {}",
            spin.name(),
            took.as_secs_f64(),
            m.gone_at_return,
            m.after_return.total,
            m.extra_reads
        );
    }
    let _ = writeln!(
        out,
        "- stats: A {} errors; B {} hits ({} L1 hits), {} misses, {} errors, {} L1 flushes",
        sa.errors, sb.hits, sb.l1_hits, sb.misses, sb.errors, sb.l1_flushes
    );
    print!("{out}");
    drop(rt);
    drop(server);
    if sa.errors != 0 || sb.errors != 0 || sb.l1_flushes != 0 {
        eprintln!("FAILED: a cache reported errors or flushed its L1");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
