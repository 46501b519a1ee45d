//! A fixed workload for instruction-count profiling of the hit path, on a
//! current-thread runtime: `N` hits through a `#[cached]` function, against
//! the same number of the bare operation it competes with.
//!
//! ```text
//! cargo build --release -p cache-benches --bin profile_hits
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/profile_hits memory 100000
//! callgrind_annotate cg.out | head -40
//! ```
//!
//! - `memory`: our hits on the memory store; `moka`: bare `moka` gets with
//!   the same clone and a `format!`ed key;
//! - `l1`: our hits on the L1 in front of a `redis-server` this tool starts
//!   (`.l1_capacity(64 << 20)`, every key warmed into the L1 first, every
//!   counted call an L1 hit), against the same `moka` baseline;
//! - `redis`: our hits on a `redis-server` this tool starts; `raw`: redis-rs
//!   `GET` of the same JSON on one `MultiplexedConnection`, then
//!   `serde_json::from_slice`.
//!
//! With `--features metrics` and `PROFILE_RECORDER=1` in the environment,
//! the Prometheus recorder is installed first (the metrics' cost per hit).
//!
//! Instruction counts are repeatable whatever else the machine does, unlike
//! timings; the client's count is what the two compare (the server is
//! another process, which callgrind does not follow).

use cache_runtime::{cached, Cache};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
    tags: Vec<String>,
}

fn product(id: u64) -> Product {
    Product {
        id,
        name: format!("product {id}"),
        price_cents: 1999,
        tags: vec!["lamp".into(), "desk".into()],
    }
}

#[cached(ttl = 3600, key = "product:{id}")]
async fn get_product(id: u64) -> Product {
    product(id)
}

fn main() {
    // Built with `--features metrics`, `PROFILE_RECORDER=1` installs the
    // Prometheus recorder first: the instructions a hit pays for metrics.
    #[cfg(feature = "metrics")]
    if std::env::var_os("PROFILE_RECORDER").is_some() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).expect("the first recorder");
    }
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "memory".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    // A third argument `mt` runs on a 2-worker runtime (as the throughput
    // tool does), for counting system calls and wake-ups with `strace -f -c`
    // or `perf stat`.
    let rt = match args.next().as_deref() {
        Some("mt") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    };
    rt.block_on(async move {
        // Spawned, so that on `mt` the calls run on a worker like a server's.
        tokio::spawn(run(what, n)).await.unwrap();
    });
}

async fn run(what: String, n: u64) {
    {
        match what.as_str() {
            "memory" => {
                let cache = Cache::builder().memory().build().unwrap();
                cache
                    .scope(async {
                        for id in 0..100 {
                            get_product(id).await;
                        }
                        for i in 0..n {
                            black_box(get_product(black_box(i % 100)).await);
                        }
                    })
                    .await;
                assert_eq!(cache.stats().hits, n);
            }
            "moka" => {
                let moka: moka::future::Cache<String, Product> = moka::future::Cache::new(10_000);
                for id in 0..100 {
                    moka.insert(format!("product:{id}"), product(id)).await;
                }
                for i in 0..n {
                    let key = format!("product:{}", black_box(i % 100));
                    black_box(moka.get(&key).await);
                }
            }
            "redis" | "l1" => {
                let l1 = what == "l1";
                let server = cache_test_support::RedisServer::start();
                // Installed, as an application (and the throughput tool) does.
                let mut builder = Cache::builder().redis(server.url());
                if l1 {
                    builder = builder.l1_capacity(64 << 20);
                }
                let cache = builder.build().unwrap();
                cache.install().unwrap();
                for id in 0..100 {
                    get_product(id).await;
                    // A later hit (a tracked read) installs the L1 copy.
                    let key = format!("product:{id}");
                    while l1 && !cache_runtime::__private::l1_holds(&cache, &key) {
                        get_product(id).await;
                    }
                }
                let before = cache.stats();
                for i in 0..n {
                    black_box(get_product(black_box(i % 100)).await);
                }
                let after = cache.stats();
                assert_eq!(after.hits - before.hits, n);
                if l1 {
                    assert_eq!(after.l1_hits - before.l1_hits, n, "every hit from the L1");
                }
            }
            "raw" => {
                use redis::AsyncCommands;
                let server = cache_test_support::RedisServer::start();
                let client = redis::Client::open(server.url()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                for id in 0..100 {
                    let json = serde_json::to_vec(&product(id)).unwrap();
                    let () = conn.set(format!("product:{id}"), json).await.unwrap();
                }
                for i in 0..n {
                    let key = format!("product:{}", black_box(i % 100));
                    let bytes: Vec<u8> = conn.get(&key).await.unwrap();
                    black_box(serde_json::from_slice::<Product>(&bytes).unwrap());
                }
            }
            other => panic!("unknown workload {other}: use memory, moka, l1, redis or raw"),
        }
    }
}
