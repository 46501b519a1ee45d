//! Bytes the cache cannot decode are a miss, then overwritten.

use crate::support::*;
use cache_runtime::cached;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    total_cents: u64,
}

#[cached(ttl = 60, key = "order:{id}")]
async fn order(calls: &Calls, id: u64) -> Order {
    calls.hit();
    Order {
        id,
        total_cents: 1234,
    }
}

#[tokio::test]
async fn corrupt_foreign_and_reshaped_values_are_misses() {
    let (server, cache) = redis_cache("c");
    let calls = Calls::default();
    // A valid envelope around a payload of the wrong shape.
    let mut reshaped = b"CR\x01j".to_vec();
    reshaped.extend_from_slice(&[0; 16]);
    reshaped.extend_from_slice(br#"{"id":"three"}"#);
    let garbage: [&[u8]; 4] = [b"\xff\xfe\x00garbage", b"{\"id\":1}", b"", &reshaped];
    for (n, bytes) in garbage.iter().enumerate() {
        server.cmd_bytes(&[b"SET", b"c:order:3", bytes]);
        let got = cache.scope(order(&calls, 3)).await;
        assert_eq!(
            got,
            Order {
                id: 3,
                total_cents: 1234
            }
        );
        assert_eq!(calls.get(), n + 1, "undecodable value #{n} is a miss");
        assert_eq!(
            stored_json(&server, "c:order:3"),
            Some(serde_json::json!({"id": 3, "total_cents": 1234})),
            "overwritten with a good value"
        );
        // And now it is a hit.
        cache.scope(order(&calls, 3)).await;
        assert_eq!(calls.get(), n + 1);
    }
    assert_eq!(cache.stats().decode_failures, 4);
    // The direct API also treats it as a miss, not an error.
    server.cmd_bytes(&[b"SET", b"c:order:3", b"junk"]);
    assert_eq!(cache.get::<Order>("order:3").await.unwrap(), None);
}

#[tokio::test]
async fn a_value_of_another_type_under_the_same_key_is_a_miss() {
    let (server, cache) = redis_cache("c");
    cache
        .set("order:4", &"not an order", SHORT * 1000)
        .await
        .unwrap();
    let calls = Calls::default();
    assert_eq!(cache.scope(order(&calls, 4)).await.id, 4);
    assert_eq!(calls.get(), 1);
    assert_eq!(server.cmd(&["EXISTS", "c:order:4"]).as_int(), 1);
}
