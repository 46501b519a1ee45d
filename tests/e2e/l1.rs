//! The L1 in front of Redis: hits without a round trip, and coherence
//! across instances (two caches with connections of their own, and other
//! clients, `redis-cli` among them) through Redis's client tracking.

use crate::support::*;
use cache_runtime::{cache_put, cached, Cache};
use std::future::Future;
use std::time::Duration;

/// How long an invalidation may take to reach the other instance before a
/// test fails. Measured figures are in BENCHMARKS.md; this is a liveness
/// bound, far above them.
const PATIENCE: Duration = Duration::from_secs(3);

fn l1_cache(server: &Redis) -> Cache {
    server
        .builder()
        .prefix("shop")
        .command_timeout(Duration::from_secs(2))
        .l1_capacity(1 << 20)
        .build()
        .expect("valid settings")
}

#[cached(ttl = 600, key = "name:{id}")]
async fn name(calls: &Calls, id: u64) -> String {
    calls.hit();
    format!("name {id} #{}", calls.get())
}

#[cached(ttl = 600, key = "price:{id}", l1 = false)]
async fn price(calls: &Calls, id: u64) -> u64 {
    calls.hit();
    id * 100
}

#[cached(ttl = 600, key = "stock:{id}", l1_ttl = 1)]
async fn stock(calls: &Calls, id: u64) -> u64 {
    calls.hit();
    id
}

#[cache_put(ttl = 600, key = "name:{id}")]
async fn rename(id: u64, to: String) -> String {
    let _ = id;
    to
}

/// Reads `key` on `cache` until `done` holds, for at most [`PATIENCE`].
async fn eventually<T, F>(what: &str, mut read: impl FnMut() -> F, done: impl Fn(&T) -> bool) -> T
where
    F: Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let got = read().await;
        if done(&got) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {got:?} after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads `key` through `cache` until the L1 answers it.
async fn warm(cache: &Cache, key: &str) {
    let before = cache.stats().l1_hits;
    for _ in 0..3 {
        cache.get::<String>(key).await.expect("redis is up");
    }
    assert!(
        cache.stats().l1_hits > before,
        "{key} never reached the L1: {:?}",
        cache.stats()
    );
}

async fn get(cache: &Cache, key: &str) -> Option<String> {
    cache.get::<String>(key).await.expect("redis is up")
}

async fn an_l1_hit_costs_no_round_trip(server: Redis) {
    let cache = l1_cache(&server);
    let calls = Calls::default();
    cache
        .scope(async {
            assert_eq!(name(&calls, 1).await, "name 1 #1"); // miss: stored in Redis
            assert_eq!(name(&calls, 1).await, "name 1 #1"); // Redis hit: into the L1
            let gets = |s: &Redis| commandstat(s, "get");
            let before = gets(&server);
            for _ in 0..10 {
                assert_eq!(name(&calls, 1).await, "name 1 #1");
            }
            assert_eq!(gets(&server), before, "L1 hits sent no GET");
        })
        .await;
    let stats = cache.stats();
    assert_eq!(calls.get(), 1);
    assert_eq!((stats.hits, stats.l1_hits, stats.misses), (11, 10, 1));
}

/// Calls of `cmd` the server (every master of the cluster) has counted.
fn commandstat(server: &Redis, cmd: &str) -> u64 {
    let prefix = format!("cmdstat_{cmd}:calls=");
    server
        .masters()
        .into_iter()
        .map(|node| {
            let info = node
                .cmd(&["INFO", "commandstats"])
                .as_string()
                .expect("INFO");
            info.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse::<u64>().expect("a count"))
        })
        .sum()
}

async fn l1_options_keep_a_function_out_or_cap_its_copy(server: Redis) {
    let cache = l1_cache(&server);
    let calls = Calls::default();
    cache
        .scope(async {
            for _ in 0..5 {
                assert_eq!(price(&calls, 2).await, 200);
            }
            assert_eq!(cache.stats().l1_hits, 0, "l1 = false: never from the L1");
            for _ in 0..3 {
                stock(&calls, 3).await;
            }
            assert_eq!(cache.stats().l1_hits, 1, "l1_ttl: in the L1 at first");
            tokio::time::sleep(Duration::from_millis(1100)).await;
            stock(&calls, 3).await;
            assert_eq!(
                cache.stats().l1_hits,
                1,
                "after l1_ttl the copy is gone: read from Redis"
            );
        })
        .await;
    assert_eq!(calls.get(), 2, "one body run per function");
    assert_eq!(cache.stats().misses, 2);
}

/// One change on `change`'s side; `b` holds `key` in its L1 before it, and
/// must read `expect` after it.
async fn check_other_side_sees(
    what: &str,
    server: &Redis,
    key: &str,
    change: impl Future<Output = ()>,
    expect: Option<&str>,
) {
    let b = l1_cache(server);
    warm(&b, key).await;
    change.await;
    let got = eventually(what, || get(&b, key), |v| v.as_deref() == expect).await;
    assert_eq!(got.as_deref(), expect, "{what}");
}

async fn seeded(server: &Redis) -> Cache {
    let a = l1_cache(server);
    a.set("k", "old", Duration::from_secs(600))
        .await
        .expect("redis is up");
    a
}

async fn every_change_from_another_instance_reaches_the_l1(server: Redis) {
    let ttl = Duration::from_secs(600);

    let a = seeded(&server).await;
    let change = async { a.set("k", "new", ttl).await.unwrap() };
    check_other_side_sees("set", &server, "k", change, Some("new")).await;

    let a = seeded(&server).await;
    let change = async { assert!(a.delete("k").await.unwrap()) };
    check_other_side_sees("delete", &server, "k", change, None).await;

    let a = seeded(&server).await;
    a.set_tagged("k", "old", ttl, &["t"]).await.unwrap();
    let change = async { assert_eq!(a.invalidate_tags(&["t"]).await.unwrap(), 1) };
    check_other_side_sees("invalidate_tags", &server, "k", change, None).await;

    let a = seeded(&server).await;
    let change = async { assert_eq!(a.clear_pattern("k*").await.unwrap(), 1) };
    check_other_side_sees("clear_pattern", &server, "k", change, None).await;

    let a = seeded(&server).await;
    a.set("name:5", "old", ttl).await.unwrap();
    let change = a.scope(async {
        rename(5, "new".into()).await;
    });
    check_other_side_sees("#[cache_put]", &server, "name:5", change, Some("new")).await;
}

/// `args` run by the `redis-cli` program: another process, another client.
fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(server.port().to_string())
        .args(args)
        .output()
        .expect("redis-cli is installed with redis-server");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The stored bytes of `shop:k` with the payload replaced by `json`: a value
/// another writer produced in the library's format.
fn envelope_with(server: &Redis, json: &str) -> Vec<u8> {
    let stored = server.cmd(&["GET", "shop:k"]);
    let mut bytes = stored.as_bytes().expect("a stored value")[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

async fn changes_by_other_clients_reach_the_l1(server: Redis) {
    let _a = seeded(&server).await;
    let new = envelope_with(&server, "\"from another writer\"");
    let change = async {
        let set = server.cmd_bytes(&[b"SET", b"shop:k", &new, b"PX", b"600000"]);
        assert_eq!(set.as_string().as_deref(), Some("OK"));
    };
    check_other_side_sees(
        "SET by another client",
        &server,
        "k",
        change,
        Some("from another writer"),
    )
    .await;

    let _a = seeded(&server).await;
    let node = server.node_for("shop:k");
    let change = async { assert_eq!(redis_cli(node, &["SET", "shop:k", "not ours"]), "OK") };
    // Bytes without the envelope are a miss.
    check_other_side_sees("redis-cli SET", &server, "k", change, None).await;

    let _a = seeded(&server).await;
    let change = async { assert_eq!(redis_cli(node, &["PEXPIRE", "shop:k", "1"]), "1") };
    check_other_side_sees("redis-cli PEXPIRE", &server, "k", change, None).await;

    let _a = seeded(&server).await;
    // (On a cluster, the node that holds the key.)
    let change = async { assert_eq!(redis_cli(node, &["FLUSHDB"]), "OK") };
    check_other_side_sees("redis-cli FLUSHDB", &server, "k", change, None).await;
}

// Two workers: the invalidation of the instance's own write is handled on
// another thread, and may come after the next read.
async fn the_writing_instance_reads_its_own_writes_at_once(server: Redis) {
    let a = seeded(&server).await;
    let calls = Calls::default();
    let ttl = Duration::from_secs(600);
    for round in 0..200 {
        warm(&a, "k").await;
        let value = format!("v{round}");
        a.set("k", &value, ttl).await.unwrap();
        assert_eq!(
            get(&a, "k").await.as_deref(),
            Some(&*value),
            "set, then get"
        );
    }
    warm(&a, "k").await;
    assert!(a.delete("k").await.unwrap());
    assert_eq!(get(&a, "k").await, None, "delete, then get");

    a.scope(async {
        name(&calls, 9).await;
        name(&calls, 9).await;
        name(&calls, 9).await;
        assert!(a.stats().l1_hits > 0);
        rename(9, "renamed".into()).await;
        assert_eq!(
            name(&calls, 9).await,
            "renamed",
            "#[cache_put], then the #[cached] fn"
        );
    })
    .await;
    assert_eq!(calls.get(), 1);
}

/// Waits until `cache` has flushed its L1 `n` times.
async fn flushed(cache: &Cache, n: u64) {
    eventually(
        "the L1 flush",
        || async { cache.stats().l1_flushes },
        |f| *f >= n,
    )
    .await;
}

async fn a_killed_connection_flushes_the_l1_and_tracking_resumes(server: Redis) {
    let _a = seeded(&server).await;
    let b = l1_cache(&server);
    warm(&b, "k").await;

    // (On a cluster, B's connections to every master.)
    let killed: i64 = server
        .masters()
        .iter()
        .map(|node| node.cmd(&["CLIENT", "KILL", "TYPE", "normal"]).as_int())
        .sum();
    assert!(killed >= 1, "B's connection was killed");
    flushed(&b, 1).await;
    // The change B's dead connection could not report.
    let new = envelope_with(&server, "\"after the kill\"");
    server.cmd_bytes(&[b"SET", b"shop:k", &new, b"PX", b"600000"]);
    assert_eq!(
        get(&b, "k").await.as_deref(),
        Some("after the kill"),
        "no stale read"
    );

    // Tracking is on again on the new connection: later changes arrive.
    warm(&b, "k").await;
    assert_eq!(
        redis_cli(server.node_for("shop:k"), &["DEL", "shop:k"]),
        "1"
    );
    eventually(
        "a change after reconnecting",
        || get(&b, "k"),
        Option::is_none,
    )
    .await;
}

#[tokio::test]
async fn a_redis_restart_flushes_the_l1() {
    let mut server = Redis::server();
    let _a = seeded(&server).await;
    let b = l1_cache(&server);
    warm(&b, "k").await;

    server.server_mut().restart(); // nothing persisted: the key is gone
    flushed(&b, 1).await;
    let got = eventually(
        "a read after the restart",
        || b.get::<String>("k"),
        Result::is_ok,
    )
    .await;
    assert_eq!(got.unwrap(), None, "no stale read after a restart");

    let a = seeded(&server).await;
    warm(&b, "k").await;
    a.set("k", "new", Duration::from_secs(600)).await.unwrap();
    eventually(
        "a change after the restart",
        || get(&b, "k"),
        |v| v.as_deref() == Some("new"),
    )
    .await;
}

async fn a_fill_elsewhere_costs_an_instance_nothing(server: Redis) {
    let a = l1_cache(&server);
    let b = l1_cache(&server);
    warm_keys(&b, 0..1).await; // B tracks only k0
    let calls = Calls::default();
    let before = b.stats();
    a.scope(async {
        for id in 0..200 {
            name(&calls, id).await; // A's misses and fills
        }
    })
    .await;
    assert_eq!(calls.get(), 200);
    // B read none of those keys: it is told of none of them.
    let tracked = tracking_keys(&server);
    assert!(
        tracked <= 2,
        "{tracked} keys tracked: only what someone read"
    );
    assert_eq!(b.stats().l1_flushes, before.l1_flushes);
    assert_eq!(b.stats().l1_invalidations, before.l1_invalidations);
}

#[cached(ttl = 600, key = "offer:{id}", tags = ["offers"])]
async fn offer(calls: &Calls, id: u64) -> u64 {
    calls.hit();
    id
}

async fn tagged_fills_elsewhere_cost_an_instance_nothing(server: Redis) {
    let a = l1_cache(&server);
    let b = l1_cache(&server);
    let calls = Calls::default();
    b.scope(async {
        for _ in 0..3 {
            offer(&calls, 0).await;
        }
    })
    .await;
    assert_eq!(b.stats().l1_hits, 1, "B holds offer 0 in its L1");
    // None: B is not told of its own write after its miss (NOLOOP).
    let before = b.stats().l1_invalidations;
    assert_eq!(before, 0);
    a.scope(async {
        for id in 1..100 {
            offer(&calls, id).await; // each writes the tag's set
        }
    })
    .await;
    assert_eq!(calls.get(), 100);
    // B read the tag's version with offer 0, but only the entry is tracked.
    assert_eq!(b.stats().l1_invalidations, before, "{:?}", b.stats());
    // The tag still reaches B's copy when it is invalidated.
    a.invalidate_tags(&["offers"]).await.unwrap();
    let after = eventually(
        "the tag's invalidation",
        || async { b.stats().l1_invalidations },
        |n| *n > before,
    )
    .await;
    assert_eq!(after, before + 1, "only offer 0");
}

#[tokio::test]
async fn a_silent_server_is_noticed_by_the_heartbeat() {
    let server = Redis::server();
    let _a = seeded(&server).await;
    let b = l1_cache(&server);
    warm(&b, "k").await;
    signal(server.server_only(), "-STOP"); // nothing answers, nothing is reset
    let noticed = tokio::time::timeout(PATIENCE, flushed(&b, 1)).await;
    signal(server.server_only(), "-CONT");
    noticed.expect("the heartbeat flushed the L1");
    // Tracking is on again after the server answers: the L1 fills again.
    warm(&b, "k").await;
}

async fn warm_keys(cache: &Cache, ids: std::ops::Range<u64>) {
    for id in ids {
        let key = format!("k{id}");
        cache
            .set(&key, "v", Duration::from_secs(600))
            .await
            .unwrap();
        warm(cache, &key).await;
    }
}

/// How many keys the server (every master of the cluster) tracks for its
/// clients.
fn tracking_keys(server: &Redis) -> u64 {
    server
        .masters()
        .into_iter()
        .map(|node| {
            let info = node.cmd(&["INFO", "stats"]).as_string().expect("INFO");
            info.lines()
                .find_map(|l| l.strip_prefix("tracking_total_keys:"))
                .map(|n| n.trim().parse::<u64>().expect("a count"))
                .expect("Redis 6+ reports tracking_total_keys")
        })
        .sum()
}

async fn a_copy_lives_no_longer_than_its_entry(server: Redis) {
    let a = l1_cache(&server);
    a.set("k", "short-lived", Duration::from_millis(400))
        .await
        .unwrap();
    warm(&a, "k").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = a.stats().l1_hits;
    assert_eq!(
        get(&a, "k").await,
        None,
        "expired in Redis, gone from the L1"
    );
    assert_eq!(a.stats().l1_hits, before);
}

/// A slot moved to another primary (a reshard): the copies of its keys
/// are dropped as the keys leave the old primary, and the new primary
/// reports later changes.
#[tokio::test]
async fn on_a_cluster_a_moved_slot_keeps_the_l1_coherent() {
    let server = Redis::cluster();
    let Redis::Cluster(cluster, _turn) = &server else {
        unreachable!("Redis::cluster")
    };
    let ttl = Duration::from_secs(600);
    let a = seeded(&server).await;
    let b = l1_cache(&server);
    warm(&b, "k").await;
    let flushes = b.stats().l1_flushes;
    let dropped_before = b.stats().l1_invalidations + flushes;
    let from = cluster.node_for("shop:k").port();
    let to = cluster
        .masters()
        .into_iter()
        .find(|&m| cluster.nodes()[m].port() != from)
        .expect("another primary");
    cluster.move_slot("shop:k", to);
    assert_eq!(
        cluster.node_for("shop:k").port(),
        cluster.nodes()[to].port()
    );

    // The key left the old primary: the copy is dropped, and the next read
    // (from the new primary) finds the same value.
    eventually(
        "the copy dropped as the key moved",
        || async { b.stats().l1_invalidations + b.stats().l1_flushes },
        |n| *n > dropped_before,
    )
    .await;
    assert_eq!(get(&b, "k").await.as_deref(), Some("old"));
    warm(&b, "k").await;

    // A change on the new primary reaches the L1.
    a.set("k", "moved", ttl).await.unwrap();
    let got = eventually(
        "a change on the new primary",
        || get(&b, "k"),
        |v| v.as_deref() == Some("moved"),
    )
    .await;
    assert_eq!(got.as_deref(), Some("moved"));
    println!(
        "l1 flushes during the move: {}",
        b.stats().l1_flushes - flushes
    );
}

on_server_and_cluster!(
    an_l1_hit_costs_no_round_trip,
    l1_options_keep_a_function_out_or_cap_its_copy,
    every_change_from_another_instance_reaches_the_l1,
    changes_by_other_clients_reach_the_l1,
    the_writing_instance_reads_its_own_writes_at_once [flavor = "multi_thread", worker_threads = 2],
    a_killed_connection_flushes_the_l1_and_tracking_resumes,
    a_fill_elsewhere_costs_an_instance_nothing,
    tagged_fills_elsewhere_cost_an_instance_nothing,
    a_copy_lives_no_longer_than_its_entry,
);
