//! Failover of a Redis Cluster under load: 64 tasks call a `#[cached]`
//! function (with an L1 in front) while a replica takes over its master
//! (`CLUSTER FAILOVER`), then while a master is killed (`kill -9`) and its
//! replica is promoted. No caller sees an error or a wrong value, hits come
//! back after each promotion, and the L1 still hears of changes from the
//! new masters. The figures of each phase are printed.
//!
//! A test binary of its own: it kills nodes, so it has a cluster of its own.

use cache_runtime::{cached, Cache};
use cache_test_support::{RedisCluster, Reply};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Callers calling at once.
const TASKS: u64 = 64;
/// Keys they spread over.
const KEYS: u64 = 2000;
/// The bound of every wait: only a bug, not a slow machine, reaches it.
const LIMIT: Duration = Duration::from_secs(60);

fn expected(id: u64) -> u64 {
    id * 7 + 1
}

#[cached(ttl = 600, key = "item:{id}", cache = cache)]
async fn item(cache: &Cache, runs: &AtomicU64, id: u64) -> Result<u64, String> {
    runs.fetch_add(1, SeqCst);
    Ok(expected(id))
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
    runs: AtomicU64,
}

/// The replica of master `m` (by `m`'s `CLUSTER NODES`), as an index.
fn replica_of(cluster: &RedisCluster, m: usize) -> usize {
    let view = cluster.nodes()[m]
        .cmd(&["CLUSTER", "NODES"])
        .as_string()
        .expect("CLUSTER NODES");
    let me = view
        .lines()
        .find(|l| l.contains("myself"))
        .and_then(|l| l.split(' ').next())
        .expect("its own line")
        .to_owned();
    let port: u16 = view
        .lines()
        .find(|l| l.contains("slave") && l.split(' ').nth(3) == Some(me.as_str()))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|addr| addr.split('@').next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no replica of node {m} in:\n{view}"));
    cluster
        .nodes()
        .iter()
        .position(|n| n.port() == port)
        .expect("a node of the cluster")
}

fn is_master(cluster: &RedisCluster, i: usize) -> bool {
    let role = cluster.nodes()[i].cmd(&["ROLE"]);
    role.as_array()
        .first()
        .and_then(Reply::as_string)
        .as_deref()
        == Some("master")
}

/// Every node that runs agrees that the cluster is whole again.
fn cluster_ok(cluster: &RedisCluster) -> bool {
    cluster.nodes().iter().filter(|n| n.is_running()).all(|n| {
        n.cmd(&["CLUSTER", "INFO"])
            .as_string()
            .is_some_and(|i| i.contains("cluster_state:ok"))
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Waits until a whole second passes with hits and without a single
/// failed command; returns how long that took from now.
async fn recovered(cache: &Cache) -> Duration {
    let started = Instant::now();
    let mut window = (Instant::now(), cache.stats());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = cache.stats();
        if now.errors != window.1.errors {
            window = (Instant::now(), now);
            continue;
        }
        if window.0.elapsed() >= Duration::from_secs(1) && now.hits > window.1.hits {
            return started.elapsed() - Duration::from_secs(1);
        }
        if started.elapsed() > LIMIT {
            let mut seen = Vec::new();
            for id in 0..20 {
                if let Err(e) = cache.get::<u64>(&format!("item:{id}")).await {
                    seen.push(e.to_string());
                }
            }
            panic!(
                "no quiet second with hits; now: {:?}; errors: {seen:?}",
                cache.stats()
            );
        }
    }
}

/// A change made through another cache (no L1) reaches this one's L1.
async fn l1_hears_changes(cache: &Cache, other: &Cache, round: u32) {
    let key = format!("probe:{round}");
    let ttl = Duration::from_secs(600);
    other
        .set(&key, "old", ttl)
        .await
        .expect("the cluster is up");
    let before = cache.stats().l1_hits;
    let started = Instant::now();
    while cache.stats().l1_hits == before {
        let got: Option<String> = cache.get(&key).await.expect("the cluster is up");
        assert_eq!(got.as_deref(), Some("old"));
        assert!(started.elapsed() < LIMIT, "{key} never reached the L1");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    other
        .set(&key, "new", ttl)
        .await
        .expect("the cluster is up");
    let started = Instant::now();
    loop {
        let got: Option<String> = cache.get(&key).await.expect("the cluster is up");
        if got.as_deref() == Some("new") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the L1 still serves {got:?} for {key} 3 s after the change"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Phase {
    name: &'static str,
    calls: u64,
    hits: u64,
    l1_hits: u64,
    misses: u64,
    failed_commands: u64,
    l1_flushes: u64,
    body_runs: u64,
    promoted_after: Duration,
    recovered_after: Duration,
}

#[test]
fn failover_and_a_killed_master_under_64_tasks_cost_callers_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let mut cluster = RedisCluster::start();
    let cache = Cache::builder()
        .redis_cluster(cluster.urls())
        .prefix("fo")
        .l1_capacity(16 << 20)
        .build()
        .expect("valid settings");
    let other = Cache::builder()
        .redis_cluster(cluster.urls())
        .prefix("fo")
        .build()
        .expect("valid settings");
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (cache, tally, stop) = (cache.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(SeqCst) {
                    // Each task walks its own share of the keys.
                    let id = (t + n * TASKS) % KEYS;
                    n += 1;
                    match item(&cache, &tally.runs, id).await {
                        Ok(v) if v == expected(id) => {}
                        Ok(_) => {
                            tally.wrong.fetch_add(1, SeqCst);
                        }
                        Err(_) => {
                            tally.errors.fetch_add(1, SeqCst);
                        }
                    }
                    tally.calls.fetch_add(1, SeqCst);
                    // Yield: the two workers also serve the test's own steps.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let mut phases = Vec::new();
    let mut mark = (
        tally.calls.load(SeqCst),
        cache.stats(),
        tally.runs.load(SeqCst),
    );
    let mut close = |name, promoted_after, recovered_after, phases: &mut Vec<Phase>| {
        let (calls, stats, runs) = (
            tally.calls.load(SeqCst),
            cache.stats(),
            tally.runs.load(SeqCst),
        );
        phases.push(Phase {
            name,
            calls: calls - mark.0,
            hits: stats.hits - mark.1.hits,
            l1_hits: stats.l1_hits - mark.1.l1_hits,
            misses: stats.misses - mark.1.misses,
            failed_commands: stats.errors - mark.1.errors,
            l1_flushes: stats.l1_flushes - mark.1.l1_flushes,
            body_runs: runs - mark.2,
            promoted_after,
            recovered_after,
        });
        mark = (calls, stats, runs);
    };

    // Warm: every key once, then mostly hits.
    let warm = recovered(&cache).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    l1_hears_changes(&cache, &other, 0).await;
    close("warm", Duration::ZERO, warm, &mut phases);

    // A replica takes over its master.
    let old = cluster.masters()[0];
    let new = replica_of(&cluster, old);
    assert_eq!(
        cluster.nodes()[new].cmd(&["CLUSTER", "FAILOVER"]),
        Reply::Status("OK".into())
    );
    let promoted = wait_until("the replica's promotion", || {
        is_master(&cluster, new) && !is_master(&cluster, old)
    })
    .await;
    let back = recovered(&cache).await;
    l1_hears_changes(&cache, &other, 1).await;
    close("CLUSTER FAILOVER", promoted, back, &mut phases);

    // Another master is killed (one whose replica never served this cache:
    // the L1's entries from it lose their tracking); its replica is
    // promoted when the others notice.
    let victim = *cluster
        .masters()
        .iter()
        .find(|&&m| m != new)
        .expect("three masters");
    let heir = replica_of(&cluster, victim);
    cluster.nodes_mut()[victim].kill();
    let promoted = wait_until("the promotion after the kill", || {
        is_master(&cluster, heir) && cluster_ok(&cluster)
    })
    .await;
    let back = recovered(&cache).await;
    l1_hears_changes(&cache, &other, 2).await;
    close("kill -9 of a master", promoted, back, &mut phases);

    stop.store(true, SeqCst);
    for t in tasks {
        t.await.expect("a caller panicked");
    }
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>10} {:>10}",
        "phase",
        "calls",
        "hits",
        "l1 hits",
        "misses",
        "failed",
        "flushes",
        "runs",
        "promoted",
        "hits back"
    );
    for p in &phases {
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>8}ms {:>8}ms",
            p.name,
            p.calls,
            p.hits,
            p.l1_hits,
            p.misses,
            p.failed_commands,
            p.l1_flushes,
            p.body_runs,
            p.promoted_after.as_millis(),
            p.recovered_after.as_millis()
        );
    }
    let (errors, wrong) = (tally.errors.load(SeqCst), tally.wrong.load(SeqCst));
    println!(
        "caller-visible errors: {errors}, wrong values: {wrong}, calls: {}",
        tally.calls.load(SeqCst)
    );
    assert_eq!(errors, 0, "no caller saw an error");
    assert_eq!(wrong, 0, "no caller got a wrong value");
    for p in &phases {
        assert!(p.hits > 0, "{}: hits", p.name);
    }
    // The killed master's connection dropped: its invalidations may be
    // lost, so the L1 was flushed (and filled again, as the probe shows).
    assert!(phases[2].l1_flushes >= 1, "the kill flushed the L1");
}
