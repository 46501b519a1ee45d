//! What a Redis outage costs the callers of a `#[cached]` function, against
//! a `redis-server` this tool starts on a free loopback port.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo run --release -p cache-benches --bin outage -- \
//!     [--seconds S] [--tasks N]
//! ```
//!
//! `--tasks` tasks (default 64) call a function for `--seconds` (default 3)
//! per row, on the 2-worker runtime of the other tools. The function's body
//! sleeps 1 ms and returns its argument; every call passes a new argument,
//! so every call is a miss and runs the body (a hit would hide the cost of
//! the lookup). Rows:
//!
//! 1. the body called directly: the baseline;
//! 2. the `#[cached]` function, Redis answering;
//! 3. the same, Redis stalled (`SIGSTOP`: connections stay open, nothing
//!    answers), with the default circuit breaker; the row's time includes
//!    the breaker's opening (five lookups time out at the 100 ms deadline)
//!    and its probes (one each 500 ms cool-down);
//! 4. the same stall, the breaker off (`without_breaker`): every lookup
//!    waits out the deadline.
//!
//! The target is row 3 at 0.9x row 1 or better. Then Redis is resumed
//! (`SIGCONT`) and one task calls the function for a key stored before the
//! stall, every 10 ms, until a call is an L2 hit again: that time, from the
//! resume, is the recovery (target: 1 s).

use cache_runtime::{cached, Cache};
use cache_test_support::RedisServer;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/machine.rs"]
mod machine;

const USAGE: &str =
    "usage: outage [--seconds S (default 3, 1 to 600)] [--tasks N (default 64, 1 to 10000)]";
const BODY: Duration = Duration::from_millis(1);
/// The key stored before the stall, read back after it.
const HOT: u64 = u64::MAX;
const TARGET_RATIO: f64 = 0.9;
const TARGET_RECOVERY: Duration = Duration::from_secs(1);

async fn body(id: u64) -> u64 {
    tokio::time::sleep(BODY).await;
    id
}

#[cached(ttl = 600, key = "outage:{id}")]
async fn cached_body(id: u64) -> u64 {
    body(id).await
}

/// Calls per second of `call` from `tasks` tasks over `seconds`, each call
/// with a new argument.
async fn rate<F, Fut>(tasks: usize, seconds: u64, call: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (call, next, done) = (call.clone(), next.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(call(id).await, id, "a wrong value");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn signal(server: &RedisServer, sig: &str) {
    let pid = server.pid().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

fn parse(args: &[String]) -> Result<(u64, usize), String> {
    let (mut seconds, mut tasks) = (3u64, 64usize);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = || {
            it.clone()
                .next()
                .cloned()
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--seconds" => {
                seconds = value()?
                    .parse()
                    .ok()
                    .filter(|s| (1..=600).contains(s))
                    .ok_or("--seconds: 1 to 600")?;
                it.next();
            }
            "--tasks" => {
                tasks = value()?
                    .parse()
                    .ok()
                    .filter(|t| (1..=10_000).contains(t))
                    .ok_or("--tasks: 1 to 10000")?;
                it.next();
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((seconds, tasks))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (seconds, tasks) = match parse(&args) {
        Ok(p) => p,
        Err(message) => return cli::usage_error(&message, USAGE),
    };
    let server = RedisServer::start();
    println!("# outage: {tasks} tasks, {seconds} s per row, a 1 ms body\n");
    println!("{}", machine::machine_facts(&server));
    let rt = machine::runtime();
    let with_breaker = Cache::builder().redis(server.url()).build().expect("cache");
    let without = Cache::builder()
        .redis(server.url())
        .without_breaker()
        .build()
        .expect("cache");

    let (direct, healthy, stalled, stalled_without, recovery) = rt.block_on(async {
        let direct = rate(tasks, seconds, body).await;
        let cache = with_breaker.clone();
        let healthy = rate(tasks, seconds, move |id| {
            cache.clone().scope(cached_body(id))
        })
        .await;
        // Stored while Redis answers, read back after the stall.
        with_breaker.scope(cached_body(HOT)).await;
        without.scope(cached_body(HOT)).await;

        signal(&server, "-STOP");
        let cache = with_breaker.clone();
        let stalled = rate(tasks, seconds, move |id| {
            cache.clone().scope(cached_body(id))
        })
        .await;
        let opened = with_breaker.stats().breaker_opens;
        assert!(
            opened >= 1,
            "the breaker never opened: {:?}",
            with_breaker.stats()
        );
        let cache = without.clone();
        let stalled_without = rate(tasks, seconds, move |id| {
            cache.clone().scope(cached_body(id))
        })
        .await;
        signal(&server, "-CONT");

        let resumed = Instant::now();
        let hits = with_breaker.stats().hits;
        let recovery = loop {
            assert_eq!(with_breaker.scope(cached_body(HOT)).await, HOT);
            if with_breaker.stats().hits > hits {
                break resumed.elapsed();
            }
            assert!(
                resumed.elapsed() < Duration::from_secs(30),
                "no L2 hit within 30 s of the resume"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        (direct, healthy, stalled, stalled_without, recovery)
    });

    let ratio = |r: f64| r / direct;
    println!("| row | calls/s | / direct |");
    println!("|---|---:|---:|");
    println!("| 1. body called directly | {direct:.0} | 1.00 |");
    println!(
        "| 2. #[cached], Redis answering (all misses) | {healthy:.0} | {:.2} |",
        ratio(healthy)
    );
    println!(
        "| 3. #[cached], Redis stalled, breaker on | {stalled:.0} | {:.2} |",
        ratio(stalled)
    );
    println!(
        "| 4. #[cached], Redis stalled, breaker off | {stalled_without:.0} | {:.3} |",
        ratio(stalled_without)
    );
    let stats = with_breaker.stats();
    println!(
        "\nbreaker: opened {} time(s), {} commands skipped, {} errors",
        stats.breaker_opens, stats.breaker_skips, stats.errors
    );
    println!(
        "recovery: an L2 hit {:.0} ms after the resume (target {} ms)",
        recovery.as_secs_f64() * 1e3,
        TARGET_RECOVERY.as_millis()
    );
    let met = ratio(stalled) >= TARGET_RATIO && recovery <= TARGET_RECOVERY;
    println!(
        "target: stalled/direct >= {TARGET_RATIO} and recovery <= 1 s: {}",
        if met { "met" } else { "MISSED" }
    );
    ExitCode::SUCCESS
}
