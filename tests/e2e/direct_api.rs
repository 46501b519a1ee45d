//! The direct API on Redis: the prefix applies everywhere, the same way as
//! in `#[cached]` keys.

use crate::support::*;
use cache_runtime::cached;
use std::time::Duration;

#[cached(ttl = 60, key = "product:{id}")]
async fn product(calls: &Calls, id: u64) -> String {
    calls.hit();
    format!("p{id}")
}

async fn get_set_delete_exists_share_the_macros_keys(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache.scope(product(&calls, 42)).await;
    assert_eq!(
        cache.get::<String>("product:42").await.unwrap().as_deref(),
        Some("p42")
    );
    assert!(cache.exists("product:42").await.unwrap());
    assert!(
        cache.delete("product:42").await.unwrap(),
        "delete removes what #[cached] stored"
    );
    assert!(!cache.exists("product:42").await.unwrap());
    assert!(!cache.delete("product:42").await.unwrap());
    cache.scope(product(&calls, 42)).await;
    assert_eq!(calls.get(), 2, "deleted, so the body ran again");

    // set() writes what #[cached] reads.
    cache
        .set("product:7", "preloaded", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(cache.scope(product(&calls, 7)).await, "preloaded");
    assert_eq!(calls.get(), 2);
    let pttl = server.cmd(&["PTTL", "shop:product:7"]).as_int();
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");
    assert_eq!(
        stored_json(&server, "shop:product:7"),
        Some(serde_json::json!("preloaded"))
    );

    assert!(
        cache.set("k", &1, Duration::ZERO).await.is_err(),
        "a zero TTL is refused"
    );
    assert!(
        cache.set("k", &1, Duration::MAX).await.is_err(),
        "a TTL Redis cannot hold is refused"
    );
    let s = cache.stats();
    assert!(s.hit_rate() > 0.0 && s.hit_rate() < 1.0, "{s:?}");
    assert_eq!(s.hit_rate(), s.hits as f64 / (s.hits + s.misses) as f64);
}

on_server_and_cluster!(get_set_delete_exists_share_the_macros_keys,);
