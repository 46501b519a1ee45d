//! The fill lock across processes: real `stampede-worker` processes (and
//! caches of their own in this one) against one Redis.

use crate::support::*;
use cache_runtime::{cached, Cache};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A `stampede-worker` process, killed on drop.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

/// What a worker printed when done: `key=value` pairs.
type Report = HashMap<String, u64>;

struct Plan<'a> {
    prefix: &'a str,
    id: u64,
    tasks: usize,
    body_ms: u64,
    lease_ms: u64,
    l1: bool,
}

impl Worker {
    fn start(server: &Redis, plan: &Plan<'_>) -> Worker {
        // A cluster: its nodes' URLs, separated by commas.
        let target = match server {
            Redis::Server(s) => s.url(),
            Redis::Cluster(c, _) => c.urls().join(","),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_stampede-worker"))
            .args([
                target,
                plan.prefix.to_owned(),
                plan.id.to_string(),
                plan.tasks.to_string(),
                plan.body_ms.to_string(),
                plan.lease_ms.to_string(),
                u8::from(plan.l1).to_string(),
                "1".to_owned(), // the fill lock on
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the stampede worker starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Worker {
            child,
            stdin,
            lines,
        }
    }

    fn line(&self, within: Duration) -> String {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no line from the worker within {within:?}: {e}"))
    }

    fn ready(&self) {
        assert_eq!(self.line(Duration::from_secs(30)), "ready");
    }

    fn go(&mut self) {
        writeln!(self.stdin, "go").expect("the worker reads its start");
        self.stdin.flush().expect("flush");
    }

    fn done(&self, within: Duration) -> Report {
        let line = self.line(within);
        let rest = line
            .strip_prefix("done ")
            .unwrap_or_else(|| panic!("not a report: {line}"));
        rest.split(' ')
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("key=value");
                (k.to_owned(), v.parse().expect("a number"))
            })
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sum(reports: &[Report], field: &str) -> u64 {
    reports.iter().map(|r| r[field]).sum()
}

fn runs(server: &Redis, prefix: &str) -> i64 {
    let reply = server.cmd(&["GET", &format!("{prefix}:runs")]);
    reply.as_string().map_or(0, |s| s.parse().expect("a count"))
}

#[test]
fn four_processes_of_250_callers_run_the_body_once() {
    four_processes(&Redis::server());
}

#[test]
fn four_processes_of_250_callers_run_the_body_once_on_the_cluster() {
    four_processes(&Redis::cluster());
}

fn four_processes(server: &Redis) {
    let plan = |l1| Plan {
        prefix: "st4",
        id: 1,
        tasks: 250,
        body_ms: 200,
        lease_ms: 3000,
        l1,
    };
    // Two with an L1 (woken by the invalidation), two without (polling).
    let mut workers: Vec<Worker> = (0..4)
        .map(|i| Worker::start(server, &plan(i % 2 == 1)))
        .collect();
    workers.iter().for_each(Worker::ready);
    workers.iter_mut().for_each(Worker::go);
    let reports: Vec<Report> = workers
        .iter()
        .map(|w| w.done(Duration::from_secs(60)))
        .collect();
    assert_eq!(runs(server, "st4"), 1, "one body run in all: {reports:?}");
    for r in &reports {
        assert_eq!(r["ok"], 250, "every caller got the value: {r:?}");
        assert_eq!((r["errors"], r["lock_timeouts"]), (0, 0), "{r:?}");
    }
    assert_eq!(sum(&reports, "misses"), 1, "{reports:?}");
    assert_eq!(sum(&reports, "hits"), 999, "{reports:?}");
    // The three other processes each waited for the holder's value once
    // (their other callers waited in the single flight).
    assert_eq!(sum(&reports, "lock_waits"), 3, "{reports:?}");
    for (i, r) in reports.iter().enumerate() {
        if i % 2 == 1 && r["lock_waits"] == 1 {
            assert!(
                r["l1_invalidations"] >= 1,
                "the holder's write reached the waiter as an invalidation: {r:?}"
            );
        }
    }
    let stored = stored_json(server, "st4:report:1").expect("stored");
    assert_eq!(stored, "report 1");
}

#[test]
fn a_holder_killed_mid_body_is_replaced_within_its_lease() {
    holder_killed(&Redis::server());
}

#[test]
fn a_holder_killed_mid_body_is_replaced_within_its_lease_on_the_cluster() {
    holder_killed(&Redis::cluster());
}

fn holder_killed(server: &Redis) {
    const LEASE_MS: u64 = 1000;
    const BODY_MS: u64 = 200;
    let mut holder = Worker::start(
        server,
        &Plan {
            prefix: "stk",
            id: 2,
            tasks: 1,
            body_ms: 600_000,
            lease_ms: LEASE_MS,
            l1: false,
        },
    );
    holder.ready();
    holder.go();
    let started = Instant::now();
    loop {
        let reply = server.cmd(&["GET", "stk:report:2"]);
        if reply.as_bytes().is_some_and(|b| b.starts_with(b"CRL")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the holder never took the lock: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut waiters: Vec<Worker> = (0..2)
        .map(|i| {
            Worker::start(
                server,
                &Plan {
                    prefix: "stk",
                    id: 2,
                    tasks: 50,
                    body_ms: BODY_MS,
                    lease_ms: LEASE_MS,
                    l1: i == 1,
                },
            )
        })
        .collect();
    waiters.iter().for_each(Worker::ready);
    waiters.iter_mut().for_each(Worker::go);
    // Both are waiting for the holder (it renews its lease meanwhile).
    std::thread::sleep(Duration::from_millis(LEASE_MS + 200));
    assert_eq!(runs(server, "stk"), 1, "only the holder's body ran so far");
    holder.child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let reports: Vec<(Report, Duration)> = waiters
        .iter()
        .map(|w| (w.done(Duration::from_secs(30)), killed.elapsed()))
        .collect();
    assert_eq!(
        runs(server, "stk"),
        2,
        "one waiter ran the body after the kill"
    );
    let only: Vec<Report> = reports.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(sum(&only, "lock_takeovers"), 1, "{only:?}");
    for (r, after_kill) in &reports {
        assert_eq!(r["ok"], 50, "{r:?}");
        assert_eq!(r["lock_timeouts"], 0, "{r:?}");
        // The liveness bound: the dead holder's lease runs out, a waiter
        // runs the body; one second of slack for a loaded machine.
        let bound = Duration::from_millis(LEASE_MS + BODY_MS + 1000);
        assert!(
            *after_kill <= bound,
            "done {after_kill:?} after the kill: {r:?}"
        );
    }
}

#[cached(ttl = 60, key = "item:{id}", tags = ["items"], cache = cache)]
async fn tagged_item(cache: &Cache, runs: Arc<AtomicUsize>, id: u64) -> Result<String, String> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(format!("item {id}"))
}

#[cached(ttl = 60, key = "feed:{id}", cache = cache, lock = false)]
async fn unlocked_feed(cache: &Cache, runs: Arc<AtomicUsize>, id: u64) -> Result<String, String> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(format!("feed {id}"))
}

/// Two caches in this process are two processes to Redis: each its own
/// connections and single flight.
fn two_caches(server: &Redis, prefix: &str) -> (Cache, Cache) {
    let make = || {
        server
            .builder()
            .prefix(prefix)
            .build()
            .expect("valid settings")
    };
    (make(), make())
}

async fn a_tagged_fill_under_the_lock_is_stored_with_its_tags(server: Redis) {
    let (a, b) = two_caches(&server, "stt");
    let runs = Arc::new(AtomicUsize::new(0));
    let (x, y) = tokio::join!(tagged_item(&a, runs.clone(), 1), async {
        tokio::time::sleep(SHORT).await;
        tagged_item(&b, runs.clone(), 1).await
    });
    assert_eq!((x.as_deref(), y.as_deref()), (Ok("item 1"), Ok("item 1")));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(b.stats().lock_waits, 1, "{:?}", b.stats());
    assert_eq!(
        stored_json(&server, "stt:item:1").expect("stored"),
        "item 1"
    );
    // Recorded under its tag: the invalidation finds it.
    assert_eq!(a.invalidate_tags(&["items"]).await.unwrap(), 1);
    assert_eq!(server.cmd(&["EXISTS", "stt:item:1"]).as_int(), 0);
}

async fn lock_false_lets_each_process_run_the_body(server: Redis) {
    let (a, b) = two_caches(&server, "stf");
    let runs = Arc::new(AtomicUsize::new(0));
    let (x, y) = tokio::join!(unlocked_feed(&a, runs.clone(), 1), async {
        tokio::time::sleep(SHORT).await;
        unlocked_feed(&b, runs.clone(), 1).await
    });
    assert_eq!((x.as_deref(), y.as_deref()), (Ok("feed 1"), Ok("feed 1")));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "no lock across the caches");
    assert_eq!(sum_waits(&[&a, &b]), 0);
}

fn sum_waits(caches: &[&Cache]) -> u64 {
    caches.iter().map(|c| c.stats().lock_waits).sum()
}

// ----- stale-while-revalidate and stale-if-error against Redis -----

/// A price service; its loads are counted, and it fails while `failing`.
#[derive(Clone, Default)]
struct Prices {
    loads: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl Prices {
    /// A method: its refresh runs the `_uncached` companion on a clone of
    /// `self`; `region` is lent from an owned copy.
    #[cached(ttl = 1, stale = 2, key = "price:{region}:{id}", cache = cache)]
    async fn price(&self, cache: &Cache, region: &str, id: u64) -> Result<String, String> {
        let n = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing.load(Ordering::SeqCst) {
            return Err(format!("load {n} failed"));
        }
        Ok(format!("{region} {id}: load {n}"))
    }
}

/// Polls `until` every 10 ms for up to 5 s.
async fn eventually(what: &str, until: impl Fn() -> bool) {
    let started = Instant::now();
    while !until() {
        assert!(started.elapsed() < Duration::from_secs(5), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stale_values_are_served_while_refreshed_and_through_failures_until_the_window_ends(
    server: Redis,
) {
    let cache = server.cache("sts");
    let prices = Prices::default();
    let call = || prices.price(&cache, "eu", 7);
    assert_eq!(call().await.as_deref(), Ok("eu 7: load 1"));
    let pttl = server.cmd(&["PTTL", "sts:price:eu:7"]).as_int();
    assert!((2000..=3000).contains(&pttl), "kept ttl + stale: {pttl} ms");

    // Past the TTL: the stale value, and a refresh in the background.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call().await.as_deref(), Ok("eu 7: load 1"));
    eventually("the refresh stored", || cache.stats().refreshes == 1).await;
    assert_eq!(call().await.as_deref(), Ok("eu 7: load 2"));
    assert_eq!(prices.loads.load(Ordering::SeqCst), 2);

    // The body fails from now on: the stale value until the window ends.
    prices.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        call().await.as_deref(),
        Ok("eu 7: load 2"),
        "stale, not the error"
    );
    eventually("the refresh failed", || cache.stats().refresh_failures >= 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        call().await.as_deref(),
        Ok("eu 7: load 2"),
        "still in the window"
    );
    // Past ttl + stale since the refresh's write: expired, the error.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = call().await.unwrap_err();
    assert!(err.ends_with("failed"), "{err}");
    assert_eq!(server.cmd(&["EXISTS", "sts:price:eu:7"]).as_int(), 0);
    assert!(
        keys(&server, "sts:__lock:*").is_empty(),
        "no refresh lock is left behind"
    );
}

#[cached(ttl = 1, early_refresh, beta = 2.0, key = "hot:{id}", cache = cache)]
async fn hot(cache: &Cache, loads: Arc<AtomicUsize>, id: u64) -> u64 {
    loads.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    id
}

async fn early_refresh_keeps_a_hot_key_from_expiring_under_steady_load(server: Redis) {
    // With an L1: its hits draw for the refresh too.
    let cache = server
        .builder()
        .prefix("ste")
        .l1_capacity(1 << 20)
        .build()
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // Three TTLs of 1 s, a call every 10 ms.
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(hot(&cache, loads.clone(), 5).await, 5);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A refresh started at the end finishes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = cache.stats();
    // Only the first call missed: every later one was a hit, none waited
    // for the body, though the value expires every second.
    assert_eq!(s.misses, 1, "{s:?}");
    assert!(s.refreshes >= 2, "refreshed ahead of each expiry: {s:?}");
    // Each load is the first call's or a refresh's (one whose write lost to
    // a newer value is not counted as a refresh).
    assert!(loads.load(Ordering::SeqCst) as u64 > s.refreshes, "{s:?}");
    assert!(s.l1_hits > 0, "{s:?}");
}

on_server_and_cluster!(
    a_tagged_fill_under_the_lock_is_stored_with_its_tags [flavor = "multi_thread", worker_threads = 2],
    lock_false_lets_each_process_run_the_body [flavor = "multi_thread", worker_threads = 2],
    stale_values_are_served_while_refreshed_and_through_failures_until_the_window_ends [flavor = "multi_thread", worker_threads = 2],
    early_refresh_keeps_a_hot_key_from_expiring_under_steady_load [flavor = "multi_thread", worker_threads = 2],
);
