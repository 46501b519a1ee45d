//! `none_ttl`: a `None` stored for its own, shorter TTL, and a hit when read.

use crate::support::{redis_cache, stored_json, Calls};
use cache_runtime::cached;

#[cached(ttl = "1h", none_ttl = "30s", key = "user:{id}")]
async fn find_user(calls: &Calls, id: u64) -> Option<String> {
    calls.hit();
    (id != 0).then(|| format!("user {id}"))
}

#[tokio::test]
async fn none_is_stored_for_none_ttl_and_some_for_ttl() {
    let (server, cache) = redis_cache("neg");
    let (absent, present) = (Calls::default(), Calls::default());
    cache
        .scope(async {
            for _ in 0..3 {
                assert_eq!(find_user(&absent, 0).await, None);
                assert_eq!(find_user(&present, 7).await.as_deref(), Some("user 7"));
            }
        })
        .await;
    assert_eq!((absent.get(), present.get()), (1, 1), "each body ran once");

    assert_eq!(
        stored_json(&server, "neg:user:0"),
        Some(serde_json::Value::Null)
    );
    let pttl = server.cmd(&["PTTL", "neg:user:0"]).as_int();
    assert!(pttl > 25_000 && pttl <= 30_000, "None's TTL: {pttl} ms");
    let pttl = server.cmd(&["PTTL", "neg:user:7"]).as_int();
    assert!(
        pttl > 3_595_000 && pttl <= 3_600_000,
        "Some's TTL: {pttl} ms"
    );

    let s = cache.stats();
    assert_eq!(s.misses, 2, "{s:?}");
    assert_eq!(s.hits, 4, "{s:?}");
    assert_eq!(
        s.none_hits, 2,
        "the stored None's two hits, not Some's: {s:?}"
    );
}
