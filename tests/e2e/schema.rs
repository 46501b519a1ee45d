//! Schema fingerprints: a value written for one shape of a type is never
//! read as another shape, with either codec.
//!
//! The two versions of each type have one serde name, as the old and the
//! new binary's type would: only the shape tells them apart.

use crate::support::*;
use cache_runtime::{cached, BincodeCodec, Cache};
use serde::{Deserialize, Serialize};

/// The type as the old binary had it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Product")]
struct ProductV1 {
    a: u32,
    b: Option<u32>,
}

/// The type as the new binary has it: `b` removed, `c` added with a
/// default, so the old JSON would still deserialize (as `c = 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Product")]
struct ProductV2 {
    a: u32,
    #[serde(default)]
    c: u32,
}

#[cached(ttl = 600, key = "product:{id}", cache = cache)]
async fn old_binary(cache: &Cache, calls: &Calls, id: u32) -> ProductV1 {
    calls.hit();
    ProductV1 { a: id, b: Some(7) }
}

#[cached(ttl = 600, key = "product:{id}", cache = cache)]
async fn new_binary(cache: &Cache, calls: &Calls, id: u32) -> ProductV2 {
    calls.hit();
    ProductV2 { a: id, c: 42 }
}

async fn a_reshaped_type_reads_no_old_value(cache: Cache) {
    let (old, new) = (Calls::default(), Calls::default());
    assert_eq!(
        old_binary(&cache, &old, 1).await,
        ProductV1 { a: 1, b: Some(7) }
    );
    assert_eq!(
        old_binary(&cache, &old, 1).await.b,
        Some(7),
        "a hit for the old type"
    );
    assert_eq!(old.get(), 1);

    // The new binary's first read is a miss: its body runs, and it overwrites.
    assert_eq!(new_binary(&cache, &new, 1).await, ProductV2 { a: 1, c: 42 });
    assert_eq!(new.get(), 1, "the old value was not read as the new type");
    assert_eq!(new_binary(&cache, &new, 1).await.c, 42);
    assert_eq!(new.get(), 1, "then a hit");
    assert_eq!(cache.stats().decode_failures, 1);
    // The value in Redis is the new type's now, even through the direct API.
    assert_eq!(
        cache.get::<ProductV2>("product:1").await.unwrap(),
        Some(ProductV2 { a: 1, c: 42 })
    );
    assert_eq!(cache.get::<ProductV1>("product:1").await.unwrap(), None);
}

#[tokio::test]
async fn json_values_of_another_shape_are_misses() {
    let (_server, cache) = redis_cache("schema");
    a_reshaped_type_reads_no_old_value(cache).await;
}

/// For bincode, a renamed field: the same bytes, so the old value would be
/// read as the new type with the old field's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Price")]
struct PriceV1 {
    cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Price")]
struct PriceV2 {
    tax_cents: u64,
}

#[cached(ttl = 600, key = "price:{id}", cache = cache)]
async fn old_price(cache: &Cache, calls: &Calls, id: u64) -> PriceV1 {
    calls.hit();
    PriceV1 { cents: id * 100 }
}

#[cached(ttl = 600, key = "price:{id}", cache = cache)]
async fn new_price(cache: &Cache, calls: &Calls, id: u64) -> PriceV2 {
    calls.hit();
    PriceV2 { tax_cents: id }
}

#[tokio::test]
async fn bincode_values_of_another_shape_are_misses() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .prefix("schema")
        .codec(BincodeCodec)
        .build()
        .unwrap();
    a_reshaped_type_reads_no_old_value(cache.clone()).await;
    let (old, new) = (Calls::default(), Calls::default());
    assert_eq!(old_price(&cache, &old, 5).await.cents, 500);
    assert_eq!(new_price(&cache, &new, 5).await, PriceV2 { tax_cents: 5 });
    assert_eq!(new.get(), 1, "not read as tax_cents = 500");
}

#[tokio::test]
async fn the_memory_store_checks_the_shape_too() {
    a_reshaped_type_reads_no_old_value(Cache::builder().memory().build().unwrap()).await;
}

/// A recursive enum whose first variant recurses: the tracer cannot follow
/// it (it takes the first variant of an enum it meets again), so its values
/// get no fingerprint, and a call must neither abort nor panic on tracing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Expr {
    Add(Box<Expr>, Box<Expr>),
    Lit(u32),
}

#[cached(ttl = 600, key = "expr:{id}", cache = cache)]
async fn expr(cache: &Cache, calls: &Calls, id: u32) -> Expr {
    calls.hit();
    Expr::Add(
        Box::new(Expr::Lit(id)),
        Box::new(Expr::Add(Box::new(Expr::Lit(2)), Box::new(Expr::Lit(3)))),
    )
}

async fn a_recursive_type_round_trips(cache: Cache) {
    let calls = Calls::default();
    let first = expr(&cache, &calls, 1).await;
    assert_eq!(expr(&cache, &calls, 1).await, first, "read back as written");
    assert_eq!(calls.get(), 1, "the second call was a hit");
    assert_eq!(cache.get::<Expr>("expr:1").await.unwrap(), Some(first));
    assert_eq!(cache.stats().decode_failures, 0);
}

#[tokio::test]
async fn a_recursive_type_is_cached_with_either_codec() {
    let (server, cache) = redis_cache("schema");
    a_recursive_type_round_trips(cache).await;
    let cache = Cache::builder()
        .redis(server.url())
        .prefix("schema-bincode")
        .codec(BincodeCodec)
        .build()
        .unwrap();
    a_recursive_type_round_trips(cache).await;
    a_recursive_type_round_trips(Cache::builder().memory().build().unwrap()).await;
}
