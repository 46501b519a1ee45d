//! A fixed workload for instruction-count profiling of the hit path:
//! `N` memory-store hits through a `#[cached]` function, and the same
//! number of bare `moka` gets, on a current-thread runtime.
//!
//! ```text
//! cargo build --release -p cache-benches --bin profile_hits
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/profile_hits memory 100000
//! callgrind_annotate cg.out | head -40
//! ```
//!
//! `memory` runs our hits, `moka` the bare gets; instruction counts are
//! repeatable whatever else the machine does, unlike timings.

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
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "memory".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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
            other => panic!("unknown workload {other}: use memory or moka"),
        }
    });
}
