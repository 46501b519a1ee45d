//! Writes racing invalidations and write-throughs, on Redis: a value
//! computed from data older than an invalidation never survives it, and a
//! write-through is never overwritten by a slower read-through.

use crate::support::*;
use cache_runtime::{cache_evict, cache_put, cached, Cache};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// Holds a body until the test lets it go.
struct Gate {
    entered: Notify,
    release: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            entered: Notify::new(),
            release: Semaphore::new(0),
        }
    }
}

impl Gate {
    async fn pass(&self) {
        self.entered.notify_one();
        let _permit = self.release.acquire().await.expect("open");
    }
}

#[cached(ttl = 60, key = "product:{id}", tags = ["products"], cache = cache)]
async fn product_read_slowly(cache: &Cache, id: u64, gate: Arc<Gate>) -> String {
    gate.pass().await;
    format!("price read before the update of {id}")
}

async fn a_read_that_started_before_an_invalidation_is_not_stored(server: Redis) {
    let cache = server.cache("race");
    let gate = Arc::new(Gate::default());
    let read = tokio::spawn({
        let (cache, gate) = (cache.clone(), gate.clone());
        async move { product_read_slowly(&cache, 1, gate).await }
    });
    gate.entered.notified().await;
    // The price changes; its tag is invalidated while the read is in its body.
    assert_eq!(cache.invalidate_tags(&["products"]).await.unwrap(), 0);
    gate.release.add_permits(1);
    assert_eq!(read.await.unwrap(), "price read before the update of 1");
    assert_eq!(
        server.cmd(&["EXISTS", "race:product:1"]).as_int(),
        0,
        "the stale value was refused"
    );

    // A read that starts after the invalidation is stored as usual.
    gate.release.add_permits(1);
    product_read_slowly(&cache, 1, gate.clone()).await;
    assert_eq!(server.cmd(&["EXISTS", "race:product:1"]).as_int(), 1);
}

static INVALIDATING: AtomicBool = AtomicBool::new(false);

/// Stores whether its body began before the invalidation started.
#[cached(ttl = 60, key = "item:{i}", tags = ["items"], cache = cache)]
async fn item(cache: &Cache, i: u64) -> bool {
    let began_before = !INVALIDATING.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(i % 7)).await;
    began_before
}

async fn nothing_computed_before_an_invalidation_survives_it(server: Redis) {
    let cache = server.cache("race");
    // Writers keep storing tagged entries while the tag is invalidated.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for i in (w..2_000).step_by(4) {
                    item(&cache, i).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    INVALIDATING.store(true, Ordering::SeqCst);
    let removed = cache.invalidate_tags(&["items"]).await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert!(removed > 0, "entries were stored before the invalidation");

    let mut survivors = 0;
    for i in 0..2_000u64 {
        if let Some(before) = cache.get::<bool>(&format!("item:{i}")).await.unwrap() {
            survivors += 1;
            assert!(
                !before,
                "item:{i} was computed before the invalidation and survived it"
            );
        }
    }
    assert!(survivors > 0, "entries computed afterwards are stored");
    assert_eq!(
        server.cmd(&["ZCARD", "race:__tag:items"]).as_int(),
        survivors + 1,
        "the tag records the survivors (and its version)"
    );
}

#[cached(ttl = 60, key = "stock:{id}", cache = cache)]
async fn stock_read_slowly(cache: &Cache, id: u64, gate: Arc<Gate>) -> u32 {
    gate.pass().await;
    let _ = id;
    10 // the old count
}

#[cache_put(ttl = 60, key = "stock:{id}", cache = cache)]
async fn save_stock(cache: &Cache, id: u64, count: u32) -> Result<u32, String> {
    let _ = id;
    Ok(count)
}

async fn a_write_through_is_not_overwritten_by_a_slower_read(_server: Redis) {
    let (_server, cache) = redis_cache("race");
    let gate = Arc::new(Gate::default());
    let read = tokio::spawn({
        let (cache, gate) = (cache.clone(), gate.clone());
        async move { stock_read_slowly(&cache, 5, gate).await }
    });
    gate.entered.notified().await;
    assert_eq!(save_stock(&cache, 5, 3).await, Ok(3));
    gate.release.add_permits(1);
    assert_eq!(read.await.unwrap(), 10);
    assert_eq!(
        cache.get::<u32>("stock:5").await.unwrap(),
        Some(3),
        "the newer value stays"
    );
}

#[cache_evict(pattern = "products:list:*", cache = cache)]
async fn reprice_all(cache: &Cache) -> Result<(), String> {
    Ok(())
}

async fn pattern_eviction_of_ten_thousand_keys_stays_inside_the_prefix(server: Redis) {
    let cache = server.builder().prefix("sh*p").build().unwrap();
    let mut keys_set: Vec<String> = (0..10_000)
        .map(|i| format!("sh*p:products:list:{i}"))
        .collect();
    keys_set.extend(
        [
            "shop:products:list:1",
            "products:list:1",
            "sh*p:products:item:1",
            "other:sh*p:products:list:1",
        ]
        .map(str::to_owned),
    );
    let pairs: Vec<(&str, &str)> = keys_set.iter().map(|k| (k.as_str(), "v")).collect();
    server.set_many(&pairs);
    assert_eq!(server.dbsize(), 10_004);

    reprice_all(&cache).await.unwrap();
    assert_eq!(
        server.dbsize(),
        4,
        "only the matching keys under the prefix went"
    );
    assert_eq!(keys(&server, "*products:list:*").len(), 3);
}

#[cached(ttl = 60, key = "offer:{id}", tags = ["offers"], cache = cache)]
async fn offer(cache: &Cache, id: u64, calls: Arc<Calls>, gate: Arc<Gate>) -> String {
    calls.hit();
    let run = calls.get();
    if run == 1 {
        gate.pass().await;
    }
    format!("offer {id} from run {run}")
}

/// A caller that joins a flight after the flight's tag was invalidated must
/// not get the flight's value, which was computed before the invalidation
/// (and refused by Redis).
async fn a_refused_value_is_not_handed_to_callers_after_the_invalidation(server: Redis) {
    let cache = server.cache("race");
    let (calls, gate) = (Arc::new(Calls::default()), Arc::new(Gate::default()));
    let spawn = || {
        let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
        tokio::spawn(async move { offer(&cache, 1, calls, gate).await })
    };
    let leader = spawn();
    gate.entered.notified().await;
    assert_eq!(cache.invalidate_tags(&["offers"]).await.unwrap(), 0);
    // Arrives after the invalidation returned, while the leader's body runs.
    let late = spawn();
    tokio::time::sleep(Duration::from_millis(50)).await; // let it join the flight
    gate.release.add_permits(1);
    assert_eq!(leader.await.unwrap(), "offer 1 from run 1");
    assert_eq!(
        late.await.unwrap(),
        "offer 1 from run 2",
        "the late caller ran its own body"
    );
    assert_eq!(calls.get(), 2);
    let stored = stored_json(&server, "race:offer:1");
    assert_eq!(stored, Some(serde_json::json!("offer 1 from run 2")));
}

on_server_and_cluster!(
    a_read_that_started_before_an_invalidation_is_not_stored,
    nothing_computed_before_an_invalidation_survives_it [flavor = "multi_thread", worker_threads = 2],
    a_write_through_is_not_overwritten_by_a_slower_read,
    pattern_eviction_of_ten_thousand_keys_stays_inside_the_prefix,
    a_refused_value_is_not_handed_to_callers_after_the_invalidation [flavor = "multi_thread", worker_threads = 2],
);
