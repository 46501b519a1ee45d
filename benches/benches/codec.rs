//! Value encoding: the envelope plus the codec, measured through the public
//! API, next to the bare serde cost of the same value.
//!
//! For a ~200-byte value (`small`, one product) and a ~20 KB value (`large`,
//! a page of 96 products), with JSON and with `BincodeCodec`:
//!
//! - `serde/encode`, `serde/decode`: `serde_json::to_vec` / `from_slice`, or
//!   bincode 2 `encode_to_vec` / `decode_from_slice` in the standard
//!   configuration (cache-runtime's, minus its decode size limit): the floor.
//! - `null_backend/set`, `null_backend/get`: `Cache::set` / `Cache::get`
//!   against a backend that keeps nothing but one stored value: envelope,
//!   codec and the API's own work (prefixing the key, the stats), no store.
//! - `memory/set`, `memory/get`: `Cache::set` / `Cache::get` on the
//!   in-process memory store (moka): what an application sees.
//!
//! `null_backend - serde` is the envelope and API overhead; `memory -
//! null_backend` is the store's. Encoded sizes are printed first.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench -p cache-benches --bench codec`

use bytes::Bytes;
use cache_runtime::{Backend, BackendError, BincodeCodec, BoxFuture, Cache, JsonCodec};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

#[path = "../shared/fixtures.rs"]
mod fixtures;

const TTL: Duration = Duration::from_secs(3600);

/// Keeps the first value written and returns it for every key: a backend
/// with no storage cost, so `Cache::get` measures envelope + codec + API.
#[derive(Debug, Default)]
struct NullBackend {
    value: OnceLock<Bytes>,
}

impl Backend for NullBackend {
    fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        Box::pin(std::future::ready(Ok(self.value.get().cloned())))
    }
    fn set<'a>(
        &'a self,
        _key: &'a str,
        value: Bytes,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let _ = self.value.set(value);
        Box::pin(std::future::ready(Ok(())))
    }
    fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(std::future::ready(Ok(false)))
    }
    fn exists<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(std::future::ready(Ok(self.value.get().is_some())))
    }
    fn clear_pattern<'a>(&'a self, _pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
    fn kind(&self) -> &'static str {
        "null"
    }
    fn is_local(&self) -> bool {
        true
    }
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Bincode,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Bincode => "bincode",
        }
    }

    fn builder(self) -> cache_runtime::CacheBuilder {
        let builder = Cache::builder().prefix("bench");
        match self {
            Format::Json => builder.codec(JsonCodec),
            Format::Bincode => builder.codec(BincodeCodec),
        }
    }

    fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            Format::Json => serde_json::to_vec(value).expect("json encodes"),
            Format::Bincode => bincode::serde::encode_to_vec(value, bincode::config::standard())
                .expect("bincode encodes"),
        }
    }

    fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> T {
        match self {
            Format::Json => serde_json::from_slice(bytes).expect("json decodes"),
            Format::Bincode => {
                bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                    .expect("bincode decodes")
                    .0
            }
        }
    }
}

fn bench_value<T>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    format: Format,
    value: &T,
) where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let f = format.name();
    let encoded = format.encode(value);
    assert_eq!(&format.decode::<T>(&encoded), value, "{f} round trip");

    group.bench_function(format!("{f}/serde/encode"), |b| {
        b.iter(|| format.encode(black_box(value)))
    });
    group.bench_function(format!("{f}/serde/decode"), |b| {
        b.iter(|| format.decode::<T>(black_box(&encoded)))
    });

    for (store, cache) in [
        (
            "null_backend",
            format.builder().backend(NullBackend::default()).build(),
        ),
        ("memory", format.builder().memory().build()),
    ] {
        let cache = &cache.expect("cache builds");
        rt.block_on(async {
            cache.set("value", value, TTL).await.expect("set");
            let back: Option<T> = cache.get("value").await.expect("get");
            assert_eq!(back.as_ref(), Some(value), "{f}/{store} round trip");
        });
        group.bench_function(format!("{f}/{store}/set"), |b| {
            b.to_async(rt).iter(|| async move {
                cache
                    .set("value", black_box(value), TTL)
                    .await
                    .expect("set")
            })
        });
        group.bench_function(format!("{f}/{store}/get"), |b| {
            b.to_async(rt).iter(|| async move {
                let v: Option<T> = cache.get(black_box("value")).await.expect("get");
                v.expect("a hit")
            })
        });
    }
}

fn codec(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let small = fixtures::product(42);
    let large = fixtures::catalog();
    for format in [Format::Json, Format::Bincode] {
        println!(
            "encoded sizes, {}: small {} B, large {} B (+ 20 B envelope in the cache)",
            format.name(),
            format.encode(&small).len(),
            format.encode(&large).len()
        );
    }

    let mut group = c.benchmark_group("codec/small_200B");
    for format in [Format::Json, Format::Bincode] {
        bench_value(&mut group, &rt, format, &small);
    }
    group.finish();

    let mut group = c.benchmark_group("codec/large_20KB");
    for format in [Format::Json, Format::Bincode] {
        bench_value(&mut group, &rt, format, &large);
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
