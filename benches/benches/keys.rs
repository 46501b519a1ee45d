//! Key derivation: what it costs to turn a call's arguments into its cache key.
//!
//! - `keys/hashed_key/*`: [`Cache::hashed_key`] for five argument shapes. This
//!   is the key of a `#[cached]` function without a `key` template:
//!   `{prefix}:{name}:{sha256 hex}` over a canonical encoding of the
//!   arguments (the macro passes the same tuple, type-erased).
//! - `keys/sha256/*`: SHA-256 of 2 KiB, the size of the 1 KiB byte vector's
//!   canonical encoding (a tag and a byte per element), fed in one `update`
//!   and in 2,048 one-byte `update`s: how much of the byte vector's cost is
//!   hashing and how much is feeding the hasher element by element.
//! - `keys/template/format_only`: a bare `format!` of `{prefix}:product:{id}`,
//!   the floor for a templated key.
//! - `keys/memory_hit/*`: a full hit through a `#[cached]` function on the
//!   in-process memory store, once with `key = "product:{id}"` and once with a
//!   hashed key, each entry written by a first call. This includes resolving
//!   the cache, the lookup and handing back the stored ~200-byte value, so it
//!   is not a key cost alone; the difference between the two is the price of
//!   hashing over templating.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench -p cache-benches --bench keys`

use cache_runtime::{cached, Cache};
use criterion::{criterion_group, criterion_main, Criterion};
use sha2::{Digest as _, Sha256};
use std::hint::black_box;
use std::sync::OnceLock;

#[path = "../shared/fixtures.rs"]
mod fixtures;

use fixtures::Product;

/// The memory-store cache both `#[cached]` functions below use.
fn memory() -> &'static Cache {
    static MEMORY: OnceLock<Cache> = OnceLock::new();
    MEMORY.get_or_init(|| {
        Cache::builder()
            .memory()
            .prefix("bench")
            .build()
            .expect("memory cache builds")
    })
}

/// Templated key: `bench:product:{id}`.
#[cached(ttl = 3600, key = "product:{id}", cache = *memory())]
async fn product_by_template(id: u64) -> Product {
    fixtures::product(id)
}

/// Hashed key: `bench:bench::product_by_hash:{sha256}`.
#[cached(ttl = 3600, name = "bench::product_by_hash", cache = *memory())]
async fn product_by_hash(id: u64) -> Product {
    fixtures::product(id)
}

fn hashed_key(c: &mut Criterion) {
    let cache = memory();
    let request = fixtures::search_request();
    let quantities = fixtures::quantities();
    let blob = fixtures::blob();

    let mut group = c.benchmark_group("keys/hashed_key");
    group.bench_function("u64", |b| {
        b.iter(|| cache.hashed_key("bench::f", black_box(&(42u64,))))
    });
    group.bench_function("u64_str", |b| {
        b.iter(|| cache.hashed_key("bench::f", black_box(&(42u64, "electronics"))))
    });
    group.bench_function("struct_10_fields", |b| {
        b.iter(|| cache.hashed_key("bench::f", black_box(&(&request,))))
    });
    group.bench_function("hashmap_20_entries", |b| {
        b.iter(|| cache.hashed_key("bench::f", black_box(&(&quantities,))))
    });
    group.bench_function("vec_u8_1KiB", |b| {
        b.iter(|| cache.hashed_key("bench::f", black_box(&(&blob,))))
    });
    group.finish();

    let bytes = vec![0x5Au8; 2048];
    let mut group = c.benchmark_group("keys/sha256");
    group.bench_function("2KiB_one_update", |b| {
        b.iter(|| Sha256::digest(black_box(&bytes)))
    });
    group.bench_function("2KiB_byte_updates", |b| {
        b.iter(|| {
            let mut hasher = Sha256::new();
            for byte in black_box(&bytes) {
                hasher.update([*byte]);
            }
            hasher.finalize()
        })
    });
    group.finish();
}

fn template_and_hits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Populate both keys (one miss each) so every measured call is a hit.
    rt.block_on(async {
        product_by_template(42).await;
        product_by_hash(42).await;
    });
    let before = memory().stats();

    let mut group = c.benchmark_group("keys/template");
    group.bench_function("format_only", |b| {
        let prefix = memory().prefix();
        b.iter(|| format!("{}:product:{}", prefix, black_box(42u64)))
    });
    group.finish();

    let mut group = c.benchmark_group("keys/memory_hit");
    group.bench_function("template_product_id", |b| {
        b.to_async(&rt)
            .iter(|| async { product_by_template(black_box(42)).await })
    });
    group.bench_function("hashed_u64", |b| {
        b.to_async(&rt)
            .iter(|| async { product_by_hash(black_box(42)).await })
    });
    group.finish();

    let after = memory().stats();
    assert_eq!(
        after.misses, before.misses,
        "every measured call must be a hit"
    );
}

criterion_group!(benches, hashed_key, template_and_hits);
criterion_main!(benches);
