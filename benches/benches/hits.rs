//! One cache hit, end to end, for a ~200-byte value (one product), on a
//! current-thread tokio runtime (one caller; see the `throughput` tool for
//! concurrency).
//!
//! - `hits/memory/cached_fn`: a `#[cached(key = "product:{id}")]` function on
//!   the in-process memory store, its entry written by an earlier call of the
//!   function (the usual way; the store then keeps a decoded copy).
//! - `hits/memory/cached_fn_after_cache_set`: the same function on an entry
//!   written with `Cache::set`, which stores bytes only: every hit decodes.
//! - `hits/memory/cache_get`: `Cache::get` of that key: envelope and JSON
//!   decode without the macro's call path.
//! - `hits/memory/moka_get`: `moka::future::Cache::<u64, Product>::get` of the
//!   same value, clone included: the floor for an in-process hit.
//! - `hits/redis/cached_fn`, `hits/redis/cache_get`: the same on a Redis
//!   backend (a `redis-server` started for the bench on a free loopback port).
//! - `hits/redis/raw_get_json`: redis-rs `MultiplexedConnection` `GET` of the
//!   product's JSON plus `serde_json::from_slice`: the floor for a Redis hit.
//!
//! Every value is pre-populated; the run asserts that no measured call
//! missed.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench -p cache-benches --bench hits`

use cache_runtime::{cached, Cache};
use cache_test_support::RedisServer;
use criterion::{criterion_group, criterion_main, Criterion};
use redis::AsyncCommands;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[path = "../shared/fixtures.rs"]
mod fixtures;

use fixtures::Product;

/// Written by a first call of the `#[cached]` function.
const ID: u64 = 42;
/// Written with `Cache::set`.
const SET_ID: u64 = 43;
const TTL: Duration = Duration::from_secs(3600);

static MEMORY: OnceLock<Cache> = OnceLock::new();
static REDIS: OnceLock<Cache> = OnceLock::new();
/// Runs of the bodies below: must not move while measuring.
static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 3600, key = "product:{id}", cache = *MEMORY.get().expect("memory cache set"))]
async fn memory_product(id: u64) -> Product {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    fixtures::product(id)
}

#[cached(ttl = 3600, key = "product:{id}", cache = *REDIS.get().expect("redis cache set"))]
async fn redis_product(id: u64) -> Product {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    fixtures::product(id)
}

fn hits(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let memory = MEMORY.get_or_init(|| {
        Cache::builder()
            .memory()
            .prefix("bench")
            .build()
            .expect("memory cache builds")
    });
    let redis_cache = REDIS.get_or_init(|| {
        Cache::builder()
            .redis(server.url())
            .prefix("bench")
            .build()
            .expect("redis cache builds")
    });
    let value = fixtures::product(ID);
    let json = serde_json::to_vec(&value).expect("json");
    let moka: moka::future::Cache<u64, Product> = moka::future::Cache::new(10_000);
    let raw_key = format!("raw:product:{ID}");
    let raw = rt.block_on(async {
        memory_product(ID).await;
        redis_product(ID).await;
        let set_key = format!("product:{SET_ID}");
        let set_value = fixtures::product(SET_ID);
        memory
            .set(&set_key, &set_value, TTL)
            .await
            .expect("memory set");
        redis_cache
            .set(&set_key, &set_value, TTL)
            .await
            .expect("redis set");
        moka.insert(ID, value.clone()).await;
        let client = redis::Client::open(server.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects");
        let () = conn.set(&raw_key, &json).await.expect("raw set");
        conn
    });

    // The two pre-population calls above ran the bodies; nothing may after.
    let body_runs = BODY_RUNS.load(Ordering::Relaxed);
    let stats_before = [memory.stats(), redis_cache.stats()];

    let moka = &moka;
    let mut group = c.benchmark_group("hits/memory");
    group.bench_function("cached_fn", |b| {
        b.to_async(&rt)
            .iter(|| async { memory_product(black_box(ID)).await })
    });
    group.bench_function("cached_fn_after_cache_set", |b| {
        b.to_async(&rt)
            .iter(|| async { memory_product(black_box(SET_ID)).await })
    });
    group.bench_function("cache_get", |b| {
        b.to_async(&rt).iter(|| async move {
            let p: Option<Product> = memory.get(black_box("product:43")).await.expect("get");
            p.expect("hit")
        })
    });
    group.bench_function("moka_get", |b| {
        b.to_async(&rt)
            .iter(|| async move { moka.get(black_box(&ID)).await.expect("hit") })
    });
    group.finish();

    let mut group = c.benchmark_group("hits/redis");
    group.bench_function("cached_fn", |b| {
        b.to_async(&rt)
            .iter(|| async { redis_product(black_box(ID)).await })
    });
    group.bench_function("cache_get", |b| {
        b.to_async(&rt).iter(|| async move {
            let p: Option<Product> = redis_cache.get(black_box("product:42")).await.expect("get");
            p.expect("hit")
        })
    });
    group.bench_function("raw_get_json", |b| {
        // One connection handle for the whole batch, as an application
        // would hold it: no per-call clone.
        b.to_async(&rt).iter_custom(|iters| {
            let mut conn = raw.clone();
            let key = raw_key.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let bytes: Vec<u8> = conn.get(black_box(key.as_str())).await.expect("raw get");
                    black_box(serde_json::from_slice::<Product>(&bytes).expect("json"));
                }
                start.elapsed()
            }
        })
    });
    group.finish();

    assert_eq!(
        BODY_RUNS.load(Ordering::Relaxed),
        body_runs,
        "a #[cached] body ran while measuring: a miss"
    );
    for ((name, cache), before) in [("memory", memory), ("redis", redis_cache)]
        .into_iter()
        .zip(stats_before)
    {
        let after = cache.stats();
        assert_eq!(
            (after.misses, after.errors),
            (before.misses, before.errors),
            "{name}: every measured lookup must be a hit: {after:?}"
        );
    }
    drop(server);
}

criterion_group!(benches, hits);
criterion_main!(benches);
