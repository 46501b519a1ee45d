//! `#[cache_put]`, `#[cache_evict]`, tags and the `_uncached` and
//! `_invalidate` companions against a real server.

use crate::support::*;
use cache_runtime::{cache_evict, cache_put, cached, Cache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
}

fn lamp(id: u64, name: &str) -> Product {
    Product {
        id,
        name: name.into(),
    }
}

#[cached(ttl = 60, key = "product:{id}")]
async fn product(calls: &Calls, id: u64) -> Result<Product, String> {
    calls.hit();
    Ok(lamp(id, "from the database"))
}

#[cache_put(ttl = 600, key = "product:{product.id}")]
async fn save_product(product: Product, fail: bool) -> Result<Product, String> {
    if fail {
        Err("the update failed".into())
    } else {
        Ok(product)
    }
}

#[cache_evict(key = "product:{id}")]
async fn delete_product(id: u64, fail: bool) -> Result<(), String> {
    let _ = id;
    if fail {
        Err("the delete failed".into())
    } else {
        Ok(())
    }
}

/// Fails after checking that the entry is already gone: `before` evicts
/// first.
#[cache_evict(key = "product:{id}", before)]
async fn purge_product(id: u64) -> Result<(), String> {
    let cache = Cache::current().expect("run in a scope");
    let present = cache.exists(&format!("product:{id}")).await.unwrap();
    Err(format!("the body saw the entry present: {present}"))
}

async fn put_then_get_is_a_hit_with_the_new_value(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache
        .scope(async {
            assert_eq!(product(&calls, 1).await.unwrap().name, "from the database");
            let renamed = lamp(1, "renamed");
            assert_eq!(
                save_product(renamed.clone(), false).await,
                Ok(renamed.clone())
            );
            assert_eq!(product(&calls, 1).await, Ok(renamed.clone()));
            assert_eq!(calls.get(), 1, "the read after the put is a hit");

            // A failed update stores nothing: the last value stays.
            assert!(save_product(lamp(1, "never stored"), true).await.is_err());
            assert_eq!(product(&calls, 1).await, Ok(renamed));
            assert_eq!(calls.get(), 1);
        })
        .await;
    assert_eq!(
        stored_json(&server, "shop:product:1"),
        Some(serde_json::json!({"id": 1, "name": "renamed"}))
    );
    let pttl = server.cmd(&["PTTL", "shop:product:1"]).as_int();
    assert!(pttl > 595_000 && pttl <= 600_000, "the put's TTL: {pttl}");
}

async fn evicts_after_success_and_not_after_an_error(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache
        .scope(async {
            product(&calls, 2).await.unwrap();
            assert!(delete_product(2, true).await.is_err());
            assert!(cache.exists("product:2").await.unwrap(), "kept after Err");
            assert!(delete_product(2, false).await.is_ok());
            assert!(
                !cache.exists("product:2").await.unwrap(),
                "evicted after Ok"
            );
            product(&calls, 2).await.unwrap();
            assert_eq!(calls.get(), 2, "the read after the eviction is a miss");
        })
        .await;
    assert_eq!(keys(&server, "*"), ["shop:product:2"]);
}

async fn before_evicts_even_when_the_body_fails(_server: Redis) {
    let (_server, cache) = redis_cache("shop");
    let calls = Calls::default();
    cache
        .scope(async {
            product(&calls, 3).await.unwrap();
            assert_eq!(
                purge_product(3).await,
                Err("the body saw the entry present: false".into())
            );
            assert!(!cache.exists("product:3").await.unwrap());
        })
        .await;
    assert_eq!(cache.stats().errors, 0);
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sku {
    code: String,
    warehouse: u32,
}

#[cached(ttl = 60, key = "stock:{sku.code}:{sku.warehouse}")]
async fn stock(calls: &Calls, sku: &Sku) -> u32 {
    calls.hit();
    sku.warehouse * 10
}

/// The same template over other parameters of the same values.
#[cache_evict(key = "stock:{sku.code}:{sku.warehouse}")]
async fn stock_changed(sku: Sku) {
    let _ = sku;
}

async fn a_cached_template_and_its_evict_counterpart_name_one_key(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    // Characters a key may hold, glob characters and braces included.
    let sku = Sku {
        code: "a*b c{1}?".into(),
        warehouse: 7,
    };
    let other = Sku {
        code: "a*b c{1}?".into(),
        warehouse: 8,
    };
    cache
        .scope(async {
            stock(&calls, &sku).await;
            stock(&calls, &other).await;
        })
        .await;
    assert_eq!(
        keys(&server, "*"),
        ["shop:stock:a*b c{1}?:7", "shop:stock:a*b c{1}?:8"]
    );
    cache.scope(stock_changed(sku.clone())).await;
    assert_eq!(keys(&server, "*"), ["shop:stock:a*b c{1}?:8"]);
    cache.scope(stock(&calls, &sku)).await;
    assert_eq!(calls.get(), 3, "a miss after the eviction");
}

async fn uncached_never_touches_the_cache(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache
        .scope(async {
            product(&calls, 4).await.unwrap();
            save_product(lamp(4, "stored"), false).await.unwrap();
            let fresh = product_uncached(&calls, 4).await.unwrap();
            assert_eq!(fresh.name, "from the database", "no lookup");
            product_uncached(&calls, 5).await.unwrap();
            assert_eq!(calls.get(), 3);
        })
        .await;
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 1),
        "only the cached call looked up"
    );
    assert_eq!(
        keys(&server, "*"),
        ["shop:product:4"],
        "nothing stored for 5"
    );
    assert_eq!(
        stored_json(&server, "shop:product:4"),
        Some(serde_json::json!({"id": 4, "name": "stored"})),
        "the put's value was not overwritten"
    );
}

#[cached(ttl = 60, skip(calls))]
async fn search(calls: &Calls, query: String, page: u32) -> Vec<String> {
    calls.hit();
    vec![format!("{query}:{page}")]
}

async fn invalidate_removes_a_hashed_key_entry(server: Redis) {
    let cache = server.cache("shop");
    let calls = Calls::default();
    cache
        .scope(async {
            search(&calls, "lamp".into(), 1).await;
            search(&calls, "lamp".into(), 2).await;
            assert_eq!(keys(&server, "shop:*").len(), 2);

            // Skipped parameters are taken, and ignored.
            assert!(search_invalidate(&calls, "lamp".into(), 1).await.unwrap());
            assert_eq!(keys(&server, "shop:*").len(), 1);
            assert!(!search_invalidate(&calls, "lamp".into(), 1).await.unwrap());

            search(&calls, "lamp".into(), 1).await;
            assert_eq!(calls.get(), 3, "page 1 is a miss again");
            search(&calls, "lamp".into(), 2).await;
            assert_eq!(calls.get(), 3, "page 2 is still a hit");
        })
        .await;
    // Without a cache there is nothing to remove.
    assert!(!search_invalidate(&calls, "lamp".into(), 1).await.unwrap());
}

#[cached(ttl = 60, key = "products:list:{category}:{page}")]
async fn list(category: &str, page: u32) -> String {
    format!("{category}:{page}")
}

#[cache_evict(pattern = "products:list:{category}:*")]
async fn reprice(category: &str) -> Result<(), String> {
    let _ = category;
    Ok(())
}

async fn pattern_eviction_removes_only_matching_keys_under_the_prefix(server: Redis) {
    let cache = server.cache("shop");
    cache
        .scope(async {
            list("lamps", 1).await;
            list("lamps", 2).await;
            list("l*", 1).await;
            list("desks", 1).await;
        })
        .await;
    // The same suffix outside the prefix, and without a prefix.
    server.cmd(&["SET", "other:products:list:lamps:1", "x"]);
    server.cmd(&["SET", "products:list:lamps:1", "x"]);

    // `*` in the value matches itself only, not every category.
    cache.scope(reprice("l*")).await.unwrap();
    assert_eq!(
        keys(&server, "*"),
        [
            "other:products:list:lamps:1",
            "products:list:lamps:1",
            "shop:products:list:desks:1",
            "shop:products:list:lamps:1",
            "shop:products:list:lamps:2",
        ]
    );
    cache.scope(reprice("lamps")).await.unwrap();
    assert_eq!(
        keys(&server, "*"),
        [
            "other:products:list:lamps:1",
            "products:list:lamps:1",
            "shop:products:list:desks:1",
        ]
    );
}

#[cached(ttl = 60, key = "item:{id}", tags = ["items", "category:{category}"])]
async fn item(id: u64, category: &str) -> String {
    format!("{category}:{id}")
}

#[cache_put(ttl = 60, key = "item:{id}", tags = ["items", "category:{category}"])]
async fn save_item(id: u64, category: &str) -> String {
    format!("{category}:{id}:saved")
}

#[cache_evict(tags = ["category:{category}"])]
async fn category_changed(category: &str) -> Result<(), String> {
    let _ = category;
    Ok(())
}

async fn tags_of_cached_and_put_are_evicted_by_tag(_server: Redis) {
    let (_server, cache) = redis_cache("shop");
    cache
        .scope(async {
            item(1, "lamps").await;
            save_item(2, "lamps").await;
            item(3, "desks").await;
            category_changed("lamps").await.unwrap();
        })
        .await;
    assert!(!cache.exists("item:1").await.unwrap());
    assert!(!cache.exists("item:2").await.unwrap(), "the put's tags");
    assert!(cache.exists("item:3").await.unwrap(), "another category");
    assert_eq!(cache.invalidate_tags(&["items"]).await.unwrap(), 1);
    assert!(!cache.exists("item:3").await.unwrap());
}

on_server_and_cluster!(
    put_then_get_is_a_hit_with_the_new_value,
    evicts_after_success_and_not_after_an_error,
    before_evicts_even_when_the_body_fails,
    a_cached_template_and_its_evict_counterpart_name_one_key,
    uncached_never_touches_the_cache,
    invalidate_removes_a_hashed_key_entry,
    pattern_eviction_removes_only_matching_keys_under_the_prefix,
    tags_of_cached_and_put_are_evicted_by_tag,
);
