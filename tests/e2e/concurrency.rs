//! Single-flight: concurrent callers of one cold key share one body run.

use crate::support::*;
use cache_runtime::cached;
use std::sync::Arc;
use std::time::Duration;

#[cached(ttl = 60, key = "slow:{id}")]
async fn slow(calls: Arc<Calls>, id: u64) -> Result<String, String> {
    calls.hit();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(format!("value {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_one_body_run() {
    let (server, cache) = redis_cache("c");
    let calls = Arc::new(Calls::default());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move { cache.scope(slow(calls, 1)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().as_deref(), Ok("value 1"));
    }
    assert_eq!(
        calls.get(),
        1,
        "the body ran once for 200 concurrent callers"
    );
    let stats = cache.stats();
    assert_eq!(stats.hits + stats.misses, 200);
    assert_eq!(stats.misses, 1);
    assert_eq!(server.cmd(&["EXISTS", "c:slow:1"]).as_int(), 1);
}

#[cached(ttl = 60, key = "flaky:{id}")]
async fn flaky(calls: Arc<Runs>, id: u64) -> Result<u64, String> {
    calls.enter();
    tokio::time::sleep(Duration::from_millis(20)).await;
    calls.leave();
    Err(format!("failed {id}"))
}

/// Body runs: how many in all, and the most at one time.
#[derive(Default)]
struct Runs {
    total: std::sync::atomic::AtomicUsize,
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl Runs {
    fn enter(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.total.fetch_add(1, SeqCst);
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_load_runs_one_caller_at_a_time_each_getting_its_own_err() {
    use std::sync::atomic::Ordering::SeqCst;
    let (server, cache) = redis_cache("c");
    let calls = Arc::new(Runs::default());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move { cache.scope(flaky(calls, 2)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            Err("failed 2".to_string()),
            "every caller sees an Err of its own load"
        );
    }
    // An Err is not shared, and not a stampede: the waiters take turns,
    // one body run at a time.
    assert_eq!(calls.peak.load(SeqCst), 1, "one body run at a time");
    assert_eq!(
        calls.total.load(SeqCst),
        10,
        "each caller loads once, for itself"
    );
    assert_eq!(server.cmd(&["EXISTS", "c:flaky:2"]).as_int(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_does_not_strand_followers() {
    let (_server, cache) = redis_cache("c");
    let calls = Arc::new(Calls::default());
    let leader = {
        let (cache, calls) = (cache.clone(), calls.clone());
        tokio::spawn(async move { cache.scope(slow(calls, 3)).await })
    };
    // Wait until the leader is inside its (100 ms) body.
    while calls.get() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let follower = {
        let (cache, calls) = (cache.clone(), calls.clone());
        tokio::spawn(async move { cache.scope(slow(calls, 3)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower finished")
        .unwrap();
    assert_eq!(got.as_deref(), Ok("value 3"));
    assert_eq!(
        calls.get(),
        2,
        "the follower loaded for itself after the leader went away"
    );
}
