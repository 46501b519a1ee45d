//! Fail-open: whatever happens to Redis, `#[cached]` callers get the body's
//! result, within the command deadline plus the body's own time.

use crate::support::*;
use cache_runtime::{cached, Cache};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_millis(100);
const BODY: Duration = Duration::from_millis(5);
/// Scheduling slack for a loaded CI machine. The bound this checks is "one
/// deadline, not several, and never hanging"; speed itself is benchmarked.
const SLACK: Duration = Duration::from_millis(150);

#[cached(ttl = 60, key = "item:{id}")]
async fn item(calls: &Calls, id: u64) -> Result<u64, String> {
    calls.hit();
    tokio::time::sleep(BODY).await;
    Ok(id * 2)
}

fn cache_at(url: String) -> Cache {
    Cache::builder()
        .redis(url)
        .command_timeout(DEADLINE)
        .connect_timeout(Duration::from_millis(200))
        .build()
        .expect("build never connects, so it cannot fail here")
}

/// Lookups that went without Redis: failed, or skipped by the open breaker.
fn without_redis(cache: &Cache) -> u64 {
    let stats = cache.stats();
    stats.errors + stats.breaker_skips
}

/// Calls `item(id)` and checks the result and the time it took.
async fn call_bounded(cache: &Cache, calls: &Calls, id: u64) {
    let started = Instant::now();
    let got = cache.scope(item(calls, id)).await;
    let took = started.elapsed();
    assert_eq!(got, Ok(id * 2));
    assert!(took <= DEADLINE + BODY + SLACK, "call took {took:?}");
}

/// Calls `item(id)` until `stored` says its value reached Redis (10 s at
/// most), then once more: a hit.
async fn caching_resumes(cache: &Cache, calls: &Calls, id: u64, stored: impl Fn() -> bool) {
    let started = Instant::now();
    loop {
        call_bounded(cache, calls, id).await;
        if stored() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing cached within 10 s: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = calls.get();
    call_bounded(cache, calls, id).await;
    assert_eq!(calls.get(), before, "a hit again");
}

#[tokio::test]
async fn nothing_listening_every_call_succeeds() {
    let cache = cache_at(cache_test_support::unused_url());
    let calls = Calls::default();
    for id in 0..20 {
        call_bounded(&cache, &calls, id % 3).await;
    }
    assert_eq!(
        calls.get(),
        20,
        "nothing can be cached, so every call runs the body"
    );
    assert!(without_redis(&cache) >= 20, "{:?}", cache.stats());
    // Five refused connections in a row opened the breaker: the other
    // lookups did not try (but a probe after each 500 ms cool-down).
    let stats = cache.stats();
    assert!(stats.breaker_open && stats.breaker_opens == 1, "{stats:?}");
    assert!((5..20).contains(&stats.errors), "{stats:?}");
    // The direct API reports the failure instead.
    let err = cache.get::<u64>("item:1").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cache get of `cache:item:1` failed"),
        "{err}"
    );
    assert!(err.is_circuit_open(), "{err}");
}

#[tokio::test]
async fn server_killed_mid_test_then_restarted() {
    let mut server = RedisServer::start();
    let cache = cache_at(server.url());
    let calls = Calls::default();
    call_bounded(&cache, &calls, 1).await;
    call_bounded(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 1, "cached while Redis is up");

    server.kill();
    for _ in 0..10 {
        call_bounded(&cache, &calls, 1).await;
    }
    assert_eq!(calls.get(), 11, "Redis down: the body runs every time");
    assert!(without_redis(&cache) >= 10, "{:?}", cache.stats());

    // Once Redis is back (empty: it keeps nothing), caching resumes.
    server.restart();
    caching_resumes(&cache, &calls, 1, || {
        server.cmd(&["EXISTS", "cache:item:1"]).as_int() == 1
    })
    .await;
}

#[tokio::test]
async fn a_hung_server_costs_one_deadline() {
    // SIGSTOP: the kernel still accepts connections, but nothing answers.
    let server = RedisServer::start();
    let cache = cache_at(server.url());
    let calls = Calls::default();
    call_bounded(&cache, &calls, 5).await; // connect and store while healthy
    signal(&server, "-STOP");
    for id in 0..5 {
        call_bounded(&cache, &calls, id).await;
    }
    signal(&server, "-CONT");
    assert_eq!(
        calls.get(),
        6,
        "every lookup timed out, so every call ran the body"
    );
    assert!(without_redis(&cache) >= 5, "{:?}", cache.stats());
}

#[tokio::test]
async fn redis_down_at_start_is_survived() {
    // The server exists only after the cache was built and first used.
    let mut server = RedisServer::start();
    server.kill();
    let cache = cache_at(server.url());
    let calls = Calls::default();
    call_bounded(&cache, &calls, 8).await;
    assert_eq!(calls.get(), 1);
    server.restart();
    let started = Instant::now();
    while server.cmd(&["EXISTS", "cache:item:8"]).as_int() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never connected after Redis came up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        call_bounded(&cache, &calls, 8).await;
    }
}

#[tokio::test]
async fn walks_over_a_hung_server_fail_instead_of_hanging() {
    let server = RedisServer::start();
    let cache = cache_at(server.url());
    cache
        .set_tagged("product:1", &1, Duration::from_secs(60), &["products"])
        .await
        .unwrap();
    signal(&server, "-STOP");
    // Each command of a walk has the command deadline; the outer bound
    // only turns a hang into a failure of this test.
    let bound = Duration::from_secs(20);
    let cleared = tokio::time::timeout(bound, cache.clear_pattern("product:*")).await;
    let invalidated = tokio::time::timeout(bound, cache.invalidate_tags(&["products"])).await;
    signal(&server, "-CONT");
    let cleared = cleared.expect("clear_pattern returned");
    assert!(
        cleared.as_ref().is_err_and(|e| e.is_timeout()),
        "{cleared:?}"
    );
    let invalidated = invalidated.expect("invalidate_tags returned");
    assert!(
        invalidated.as_ref().is_err_and(|e| e.is_timeout()),
        "{invalidated:?}"
    );
    assert_eq!(
        cache.get::<u32>("product:1").await.unwrap(),
        Some(1),
        "answers again"
    );
}

/// Polls `done` every 10 ms for up to `patience`.
async fn eventually(what: &str, patience: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < patience,
            "{what}: not within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn health_checks_replace_a_silent_connection_and_drive_the_breaker_with_no_caller() {
    let server = RedisServer::start();
    let proxy = cache_test_support::FaultProxy::start(server.addr());
    let cache = Cache::builder()
        .redis(proxy.url())
        .command_timeout(DEADLINE)
        .health_check_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let calls = Calls::default();
    call_bounded(&cache, &calls, 1).await;
    assert_eq!(proxy.accepted_connections(), 1);

    // The path goes silent: no caller from here on. The checks' PINGs get
    // no reply; each silent connection is replaced by a new one, and the
    // failures open the breaker.
    proxy.blackhole();
    eventually("a replacement connection", Duration::from_secs(5), || {
        proxy.accepted_connections() >= 2
    })
    .await;
    eventually("the breaker opened", Duration::from_secs(5), || {
        cache.stats().breaker_open
    })
    .await;
    // The checks' failures open it; they are no caller's errors.
    assert_eq!(cache.stats().errors, 0, "{:?}", cache.stats());

    // The path is back: a check is the probe, and closes the breaker
    // before any caller comes.
    proxy.pass();
    eventually("the breaker closed", Duration::from_secs(5), || {
        !cache.stats().breaker_open
    })
    .await;
    let before = cache.stats();
    call_bounded(&cache, &calls, 1).await;
    let after = cache.stats();
    assert_eq!(after.hits, before.hits + 1, "an L2 hit at once: {after:?}");
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opening_flushes_the_l1() {
    let server = RedisServer::start();
    let proxy = cache_test_support::FaultProxy::start(server.addr());
    let cache = Cache::builder()
        .redis(proxy.url())
        .command_timeout(DEADLINE)
        .l1_capacity(1 << 20)
        .build()
        .unwrap();
    let calls = Calls::default();
    // Filled into the L1: the third call is answered from it.
    for _ in 0..3 {
        call_bounded(&cache, &calls, 1).await;
    }
    assert_eq!(cache.stats().l1_hits, 1, "{:?}", cache.stats());
    let flushes = cache.stats().l1_flushes;

    // Five lookups of other keys time out together (one deadline): the
    // breaker opens and empties the L1, long before the heartbeat (a round
    // trip a second, a second to answer) could notice the silence.
    proxy.blackhole();
    let lookups: Vec<_> = (10..15)
        .map(|id| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.scope(item(&Calls::default(), id)).await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap() % 2, 0);
    }
    let stats = cache.stats();
    assert!(stats.breaker_open, "{stats:?}");
    assert!(
        stats.l1_flushes > flushes,
        "the opening flushed the L1: {stats:?}"
    );
    // The copy is gone: the next call runs the body.
    call_bounded(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 2);
    assert_eq!(cache.stats().l1_hits, 1);
    proxy.pass();
}

/// A cache on `urls` (a cluster), with this file's deadlines.
fn cluster_cache_at(urls: Vec<String>) -> Cache {
    Cache::builder()
        .redis_cluster(urls)
        .command_timeout(DEADLINE)
        .connect_timeout(Duration::from_millis(200))
        .build()
        .expect("build never connects, so it cannot fail here")
}

#[tokio::test]
async fn no_cluster_node_listening_every_call_succeeds() {
    let urls = (0..3)
        .map(|_| cache_test_support::unused_url().replace("/0", ""))
        .collect();
    let cache = cluster_cache_at(urls);
    let calls = Calls::default();
    for id in 0..20 {
        call_bounded(&cache, &calls, id % 3).await;
    }
    assert_eq!(calls.get(), 20, "nothing can be cached");
    let stats = cache.stats();
    assert!(stats.breaker_open && stats.breaker_opens == 1, "{stats:?}");
    assert!((5..20).contains(&stats.errors), "{stats:?}");
    let err = cache.get::<u64>("item:1").await.unwrap_err();
    assert!(err.is_circuit_open(), "{err}");
}

#[tokio::test]
async fn a_hung_cluster_costs_one_deadline_and_caching_resumes() {
    let redis = Redis::cluster();
    let Redis::Cluster(cluster, _turn) = &redis else {
        unreachable!("Redis::cluster")
    };
    let cache = cluster_cache_at(cluster.urls());
    let calls = Calls::default();
    call_bounded(&cache, &calls, 1).await;
    call_bounded(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 1, "cached while the cluster is up");
    // Every node stopped: connections stay open, nothing answers. (For
    // well under the cluster's node timeout, so no node is failed over.)
    for node in cluster.nodes() {
        signal(node, "-STOP");
    }
    for id in 0..5 {
        call_bounded(&cache, &calls, id).await;
    }
    for node in cluster.nodes() {
        signal(node, "-CONT");
    }
    assert_eq!(calls.get(), 6, "every lookup timed out: the body ran");
    assert!(without_redis(&cache) >= 5, "{:?}", cache.stats());

    // Answering again: caching resumes (after the breaker's cool-down).
    caching_resumes(&cache, &calls, 2, || {
        cluster.cmd(&["EXISTS", "cache:item:2"]).as_int() == 1
    })
    .await;
    assert!(!cache.stats().breaker_open, "{:?}", cache.stats());
}
