//! Stampedes: many callers of one cold key, in one process and in four,
//! with the fill lock and without; and what the lock costs a single miss.
//! Against a `redis-server` this tool starts on a free loopback port.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo run --release -p cache-benches --bin stampede -- \
//!     [--rounds R] [--body-ms B] [--misses N]
//! ```
//!
//! Each stampede row runs `--rounds` rounds (default 5), each on a new
//! cold key: 1,000 callers in all, as 1 process of 1,000 tasks or 4
//! processes of 250 (this binary run again as `stampede worker ...`, the
//! worker of the stampede tests), started together; the body takes
//! `--body-ms` (default 100) and counts its runs in Redis. Printed: body
//! runs per round, and the callers' p99 and slowest latency (the median
//! round's).
//!
//! The miss rows time `--misses` sequential misses (default 2,000), each of
//! a new key with a body that returns at once, with the lock and without,
//! beside a `PING`: the lock's cost in round trips is the difference of the
//! two rows' commands per miss (from Redis's own count), and in time the
//! difference of their medians against a `PING`'s.

use cache_runtime::{cached, Cache};
use cache_test_support::RedisServer;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/machine.rs"]
mod machine;
#[path = "../../tests/bin/stampede_worker.rs"]
mod worker;

const USAGE: &str = "usage: stampede [--rounds R (default 5, 1 to 100)] [--body-ms B (default 100, 1 to 10000)] [--misses N (default 2000, 1 to 1000000)]";
const CALLERS: usize = 1000;
const LEASE_MS: u64 = 3000;

/// One stampede row: how the 1,000 callers are spread, and the lock.
struct Scenario {
    label: &'static str,
    processes: usize,
    lock: bool,
    l1: bool,
}

/// What one process reported (see the worker).
struct Report {
    ok: u64,
    max_us: u64,
    p99_us: u64,
}

fn field(line: &str, name: &str) -> u64 {
    line.split(' ')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn start_worker(args: &[String]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .arg("worker")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("a worker process");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the worker's first line");
    assert_eq!(line.trim(), "ready", "the worker did not start");
    (child, out)
}

/// One round: body runs and each process's report.
fn round(server: &RedisServer, s: &Scenario, id: u64, body_ms: u64) -> (i64, Vec<Report>) {
    let prefix = format!("stampede-{}", s.label.replace(' ', "-"));
    let mut workers: Vec<_> = (0..s.processes)
        .map(|_| {
            start_worker(&[
                server.url(),
                prefix.clone(),
                id.to_string(),
                (CALLERS / s.processes).to_string(),
                body_ms.to_string(),
                LEASE_MS.to_string(),
                u8::from(s.l1).to_string(),
                u8::from(s.lock).to_string(),
            ])
        })
        .collect();
    let before = runs(server, &prefix);
    for (child, _) in &mut workers {
        let stdin = child.stdin.as_mut().expect("piped");
        writeln!(stdin, "go").expect("go");
        stdin.flush().expect("flush");
    }
    let reports = workers
        .iter_mut()
        .map(|(child, out)| {
            let mut line = String::new();
            out.read_line(&mut line).expect("the worker's report");
            let _ = child.wait();
            Report {
                ok: field(&line, "ok"),
                max_us: field(&line, "max_us"),
                p99_us: field(&line, "p99_us"),
            }
        })
        .collect();
    (runs(server, &prefix) - before, reports)
}

fn runs(server: &RedisServer, prefix: &str) -> i64 {
    let reply = server.cmd(&["GET", &format!("{prefix}:runs")]);
    reply.as_string().map_or(0, |s| s.parse().expect("a count"))
}

#[cached(ttl = 600, key = "miss:{id}", cache = cache)]
async fn instant(cache: &Cache, id: u64) -> u64 {
    id
}

/// Calls per command, from `INFO commandstats`.
fn commands(server: &RedisServer) -> std::collections::BTreeMap<String, u64> {
    let info = server
        .cmd(&["INFO", "commandstats"])
        .as_string()
        .expect("INFO");
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// What a path sends Redis per miss: each command's calls, and the round
/// trips (the calls a script makes run inside Redis: each `EVALSHA` here
/// is the compare-and-set, one `GET` and one `SET` within it).
struct PerMiss {
    calls: Vec<(String, f64)>,
    round_trips: f64,
}

fn per_miss(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    n: u64,
) -> PerMiss {
    let delta = |name: &str| {
        (after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)) as f64
            / n as f64
    };
    let calls: Vec<(String, f64)> = after
        .keys()
        .filter(|name| *name != "info")
        .map(|name| (name.clone(), delta(name)))
        .filter(|(_, c)| *c > 0.0)
        .collect();
    let total: f64 = calls.iter().map(|(_, c)| c).sum();
    PerMiss {
        round_trips: total - 2.0 * delta("evalsha"),
        calls,
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// `n` sequential misses through a cache with the lock `lock`: latencies
/// and what each sends Redis.
async fn misses(server: &RedisServer, lock: bool, n: u64) -> (Vec<Duration>, PerMiss) {
    let cache = Cache::builder()
        .redis(server.url())
        .prefix(if lock { "miss-lock" } else { "miss-plain" })
        .fill_lock(lock)
        .build()
        .expect("valid settings");
    // Connected, and the scripts loaded, before timing.
    for id in 0..10 {
        instant(&cache, u64::MAX - id).await;
    }
    let mut took = Vec::with_capacity(n as usize);
    let before = commands(server);
    for id in 0..n {
        let started = Instant::now();
        assert_eq!(instant(&cache, id).await, id);
        took.push(started.elapsed());
    }
    let per_miss = per_miss(&before, &commands(server), n);
    took.sort();
    (took, per_miss)
}

async fn pings(server: &RedisServer, n: u64) -> Vec<Duration> {
    let client = redis::Client::open(server.url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut took = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let started = Instant::now();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .expect("PING");
        took.push(started.elapsed());
    }
    took.sort();
    took
}

/// `--rounds`, `--body-ms`, `--misses`.
fn parse(args: &[String]) -> Result<(u64, u64, u64), String> {
    let mut values = [
        ("--rounds", 5u64, 100u64),
        ("--body-ms", 100, 10_000),
        ("--misses", 2000, 1_000_000),
    ];
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if matches!(flag.as_str(), "--help" | "-h") {
            return Err(String::new());
        }
        let Some(slot) = values.iter_mut().find(|(name, _, _)| name == flag) else {
            return Err(format!("unknown argument `{flag}`"));
        };
        let max = slot.2;
        slot.1 = it
            .next()
            .and_then(|v| v.parse().ok())
            .filter(|v| (1..=max).contains(v))
            .ok_or(format!("{flag}: 1 to {max}"))?;
    }
    Ok((values[0].1, values[1].1, values[2].1))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        worker::run(&args[1..]);
        return ExitCode::SUCCESS;
    }
    let (rounds, body_ms, n) = match parse(&args) {
        Ok(p) => p,
        Err(message) => return cli::usage_error(&message, USAGE),
    };
    let server = RedisServer::start();
    println!("# stampede\n");
    println!("{}", machine::machine_facts(&server));
    let scenarios = [
        Scenario {
            label: "1x1000 lock",
            processes: 1,
            lock: true,
            l1: false,
        },
        Scenario {
            label: "4x250 no lock",
            processes: 4,
            lock: false,
            l1: false,
        },
        Scenario {
            label: "4x250 lock",
            processes: 4,
            lock: true,
            l1: false,
        },
        Scenario {
            label: "4x250 lock l1",
            processes: 4,
            lock: true,
            l1: true,
        },
    ];
    println!(
        "{CALLERS} concurrent callers of one cold key, body {body_ms} ms, {rounds} rounds, lease {LEASE_MS} ms\n"
    );
    println!(
        "| processes x callers | fill lock | L1 | body runs per round | p99 ms | slowest ms |"
    );
    println!("|---|---|---|---|---|---|");
    for s in &scenarios {
        let mut body_runs = Vec::new();
        let mut p99s = Vec::new();
        let mut maxes = Vec::new();
        for r in 0..rounds {
            let (ran, reports) = round(&server, s, r, body_ms);
            let ok: u64 = reports.iter().map(|r| r.ok).sum();
            assert_eq!(ok, CALLERS as u64, "{}: a caller got no value", s.label);
            body_runs.push(ran);
            // Over all processes: the slowest process's p99 bounds the whole's.
            p99s.push(reports.iter().map(|r| r.p99_us).max().unwrap_or(0));
            maxes.push(reports.iter().map(|r| r.max_us).max().unwrap_or(0));
        }
        p99s.sort();
        maxes.sort();
        let runs: Vec<String> = body_runs.iter().map(i64::to_string).collect();
        println!(
            "| {} x {} | {} | {} | {} | {:.1} | {:.1} |",
            s.processes,
            CALLERS / s.processes,
            if s.lock { "on" } else { "off" },
            if s.l1 { "on" } else { "off" },
            runs.join(", "),
            ms(p99s[p99s.len() / 2]),
            ms(maxes[maxes.len() / 2]),
        );
    }

    let runtime = machine::runtime();
    let (plain, plain_cmds) = runtime.block_on(misses(&server, false, n));
    let (locked, locked_cmds) = runtime.block_on(misses(&server, true, n));
    let ping = runtime.block_on(pings(&server, n));
    println!("\n{n} sequential misses, one caller, body returns at once\n");
    println!("| path | round trips per miss | Redis calls per miss | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let show = |m: &PerMiss| {
        let calls: Vec<String> = m
            .calls
            .iter()
            .map(|(name, c)| format!("{name} {c:.2}"))
            .collect();
        (format!("{:.2}", m.round_trips), calls.join(", "))
    };
    for (label, took, m) in [
        ("miss, no lock", &plain, Some(&plain_cmds)),
        ("miss, fill lock", &locked, Some(&locked_cmds)),
        ("PING", &ping, None),
    ] {
        let (trips, calls) = m.map_or(("1".to_owned(), "ping 1".to_owned()), show);
        println!(
            "| {label} | {trips} | {calls} | {:.0} | {:.0} |",
            us(quantile(took, 0.5)),
            us(quantile(took, 0.99)),
        );
    }
    let extra = us(quantile(&locked, 0.5)) - us(quantile(&plain, 0.5));
    println!(
        "\nThe lock's cost per miss: {:.2} round trips (target: at most 1), {:.0} µs at the median = {:.2} PINGs",
        locked_cmds.round_trips - plain_cmds.round_trips,
        extra,
        extra / us(quantile(&ping, 0.5)),
    );
    ExitCode::SUCCESS
}
