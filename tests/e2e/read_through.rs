//! The basic read-through path: misses, hits, TTLs, what is stored.

use crate::support::*;
use cache_runtime::cached;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
}

#[cached(ttl = 600, key = "product:{id}")]
async fn get_product(calls: &Calls, id: u64) -> Result<Product, String> {
    calls.hit();
    Ok(Product {
        id,
        name: format!("product {id}"),
    })
}

async fn miss_then_hit_runs_the_body_once(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache
        .scope(async {
            let first = get_product(&calls, 42).await.unwrap();
            let second = get_product(&calls, 42).await.unwrap();
            assert_eq!(first, second);
            assert_eq!(calls.get(), 1, "second call must be a hit");
            get_product(&calls, 43).await.unwrap();
            assert_eq!(calls.get(), 2, "another id is another key");
        })
        .await;
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (1, 2, 0));
    assert_eq!(keys(&server, "*"), ["shop:product:42", "shop:product:43"]);
}

async fn ttl_is_set_and_value_is_plain_json(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache.scope(get_product(&calls, 7)).await.unwrap();
    let pttl = server.cmd(&["PTTL", "shop:product:7"]).as_int();
    assert!(pttl > 595_000 && pttl <= 600_000, "PTTL {pttl}");
    assert_eq!(
        stored_json(&server, "shop:product:7"),
        Some(serde_json::json!({"id": 7, "name": "product 7"}))
    );
}

#[cached(ttl = "short", skip(calls))]
async fn preset_short(calls: &Calls) -> u32 {
    calls.hit();
    1
}

#[cached(ttl = "1h30m", key = "compound")]
async fn compound_ttl(calls: &Calls) -> u32 {
    calls.hit();
    2
}

async fn ttl_presets_and_durations(server: Redis) {
    let cache = server
        .builder()
        .ttl_presets(
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(90),
        )
        .build()
        .unwrap();
    let calls = Calls::default();
    cache.scope(preset_short(&calls)).await;
    cache.scope(compound_ttl(&calls)).await;
    let short_key = keys(&server, "cache:*preset_short*");
    assert_eq!(short_key.len(), 1, "{short_key:?}");
    let pttl = server.cmd(&["PTTL", &short_key[0]]).as_int();
    assert!(pttl > 25_000 && pttl <= 30_000, "short preset: {pttl}");
    let pttl = server.cmd(&["PTTL", "cache:compound"]).as_int();
    assert!(pttl > 5_395_000 && pttl <= 5_400_000, "1h30m: {pttl}");
}

#[cached(ttl = 60, key = "maybe:{id}")]
async fn maybe(calls: &Calls, id: u64) -> Option<String> {
    calls.hit();
    id.is_multiple_of(2).then(|| format!("even {id}"))
}

#[cached(ttl = 60, key = "maybe-none:{id}", cache_none)]
async fn maybe_cache_none(calls: &Calls, id: u64) -> Option<String> {
    calls.hit();
    id.is_multiple_of(2).then(|| format!("even {id}"))
}

#[cached(ttl = 60, key = "fallible:{id}")]
async fn fallible(calls: &Calls, id: u64) -> Result<u64, std::io::Error> {
    calls.hit();
    if id == 0 {
        Err(std::io::Error::other("no zero"))
    } else {
        Ok(id * 10)
    }
}

async fn err_and_none_are_not_stored(server: Redis) {
    let cache = server.cache("c");
    let calls = Calls::default();
    cache
        .scope(async {
            assert!(fallible(&calls, 0).await.is_err());
            assert!(fallible(&calls, 0).await.is_err());
            assert_eq!(calls.get(), 2, "Err is never cached");
            assert_eq!(fallible(&calls, 3).await.unwrap(), 30);
            assert_eq!(fallible(&calls, 3).await.unwrap(), 30);
            assert_eq!(calls.get(), 3, "Ok is cached");

            assert_eq!(maybe(&calls, 1).await, None);
            assert_eq!(maybe(&calls, 1).await, None);
            assert_eq!(calls.get(), 5, "None is not cached by default");
            assert_eq!(maybe(&calls, 2).await.as_deref(), Some("even 2"));
            assert_eq!(maybe(&calls, 2).await.as_deref(), Some("even 2"));
            assert_eq!(calls.get(), 6, "Some is cached");
        })
        .await;
    // (A `None` not stored leaves the fill lock's given-up marker, no value.)
    assert_eq!(value_keys(&server, "*"), ["c:fallible:3", "c:maybe:2"]);
}

async fn cache_none_stores_none(server: Redis) {
    let cache = server.cache("c");
    let calls = Calls::default();
    cache
        .scope(async {
            assert_eq!(maybe_cache_none(&calls, 1).await, None);
            assert_eq!(maybe_cache_none(&calls, 1).await, None);
            assert_eq!(calls.get(), 1, "None is cached with cache_none");
        })
        .await;
    assert_eq!(
        stored_json(&server, "c:maybe-none:1"),
        Some(serde_json::Value::Null)
    );
}

async fn binary_codec_round_trips_and_a_json_cache_treats_it_as_a_miss(server: Redis) {
    let binary = server
        .builder()
        .codec(cache_runtime::BincodeCodec)
        .build()
        .unwrap();
    let json = server.builder().build().unwrap();
    let calls = Calls::default();
    let p = binary.scope(get_product(&calls, 5)).await.unwrap();
    let again = binary.scope(get_product(&calls, 5)).await.unwrap();
    assert_eq!((p.clone(), calls.get()), (again, 1));
    let raw = server.cmd(&["GET", "cache:product:5"]);
    assert_eq!(raw.as_bytes().unwrap()[3], b'b', "codec id in the envelope");

    // Another codec's value is a miss for the JSON cache, then overwritten.
    assert_eq!(json.scope(get_product(&calls, 5)).await.unwrap(), p);
    assert_eq!(calls.get(), 2);
    assert_eq!(json.stats().decode_failures, 1);
    assert!(
        stored_json(&server, "cache:product:5").is_some(),
        "overwritten with JSON"
    );
}

async fn values_above_the_maximum_size_are_not_stored(server: Redis) {
    let cache = server.builder().max_value_size(64).build().unwrap();
    let calls = Calls::default();
    let small = cache.scope(get_product(&calls, 1)).await.unwrap();
    assert_eq!(small.id, 1);
    assert!(
        server.cmd(&["EXISTS", "cache:product:1"]).as_int() == 1,
        "small value stored"
    );

    #[cached(key = "big")]
    async fn big(calls: &Calls) -> String {
        calls.hit();
        "x".repeat(1000)
    }
    assert_eq!(cache.scope(big(&calls)).await.len(), 1000);
    assert_eq!(cache.scope(big(&calls)).await.len(), 1000);
    assert_eq!(
        calls.get(),
        3,
        "too large to store: the body runs every time"
    );
    assert!(holds_no_value(&server, "cache:big"));
    let err = cache
        .set("big", &"x".repeat(1000), SHORT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("maximum value size"), "{err}");
}

mod aliases {
    /// A crate's own `Result` alias, like `anyhow::Result<T>` or `io::Result<T>`.
    pub type Result<T> = std::result::Result<T, String>;
}

#[cached(ttl = 60, key = "alias:{id}")]
async fn via_alias(calls: &Calls, id: u64) -> aliases::Result<u64> {
    calls.hit();
    if id == 0 {
        Err("zero".into())
    } else {
        Ok(id)
    }
}

#[cached(ttl = 60, key = "io:{id}")]
async fn via_io(calls: &Calls, id: u64) -> std::io::Result<u64> {
    calls.hit();
    if id == 0 {
        Err(std::io::Error::other("zero"))
    } else {
        Ok(id)
    }
}

/// Return types passed through `macro_rules!` arrive wrapped in an invisible
/// group: `Result`/`Option` must still be recognised.
macro_rules! cached_getter {
    ($name:ident => $ret:ty, $body:expr) => {
        #[cached(ttl = 60, skip(calls))]
        async fn $name(calls: &Calls, id: u64) -> $ret {
            calls.hit();
            ($body)(id)
        }
    };
}

cached_getter!(macro_result => Result<u64, String>, |id: u64| if id == 0 { Err("zero".to_string()) } else { Ok(id) });
cached_getter!(macro_option => Option<u64>, |id: u64| (id != 0).then_some(id));

async fn result_aliases_and_macro_types_store_only_ok_and_some(server: Redis) {
    let cache = server.cache("c");
    let calls = Calls::default();
    cache
        .scope(async {
            for _ in 0..2 {
                assert!(via_alias(&calls, 0).await.is_err());
                assert!(via_io(&calls, 0).await.is_err());
                assert!(macro_result(&calls, 0).await.is_err());
                assert_eq!(macro_option(&calls, 0).await, None);
            }
            assert_eq!(calls.get(), 8, "Err and None are never stored");
            for _ in 0..2 {
                via_alias(&calls, 1).await.unwrap();
                via_io(&calls, 1).await.unwrap();
                macro_result(&calls, 1).await.unwrap();
                macro_option(&calls, 1).await.unwrap();
            }
            assert_eq!(calls.get(), 12, "Ok and Some are stored");
        })
        .await;
    assert_eq!(value_keys(&server, "c:alias:*"), ["c:alias:1"]);
    assert_eq!(value_keys(&server, "c:io:*"), ["c:io:1"]);
    assert_eq!(
        value_keys(&server, "c:e2e::read_through::macro_result:*").len(),
        1
    );
    assert_eq!(
        value_keys(&server, "c:e2e::read_through::macro_option:*").len(),
        1
    );
    assert_eq!(value_keys(&server, "*").len(), 4);
}

on_server_and_cluster!(
    miss_then_hit_runs_the_body_once,
    ttl_is_set_and_value_is_plain_json,
    ttl_presets_and_durations,
    err_and_none_are_not_stored,
    cache_none_stores_none,
    binary_codec_round_trips_and_a_json_cache_treats_it_as_a_miss,
    values_above_the_maximum_size_are_not_stored,
    result_aliases_and_macro_types_store_only_ok_and_some,
);
