//! The smallest complete program: one cached query, called twice.
//!
//! ```text
//! cargo run --example quickstart                                   # in-process memory store
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart  # Redis
//! REDIS_URL=redis://127.0.0.1:6379 CACHE_L1_CAPACITY=1048576 cargo run --example quickstart  # an L1 in front
//! ```

use cache_runtime::{cached, Cache};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
}

/// How many times the "database" was queried.
static QUERIES: AtomicUsize = AtomicUsize::new(0);

/// The query we want cached: stands in for a database round trip.
#[cached(ttl = 60, key = "product:{id}")]
async fn get_product(id: u64) -> Result<Product, String> {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(Product {
        id,
        name: format!("Lamp #{id}"),
        price_cents: 4_999,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // REDIS_URL, CACHE_PREFIX, ... from the environment; the memory store without REDIS_URL.
    let cache = Cache::from_env()?;
    cache.install()?;
    println!(
        "cache backend: {} (prefix `{}`)",
        cache.backend_kind(),
        cache.prefix()
    );
    // Start from a clean slate so the first call is a miss on every run.
    cache.delete("product:42").await.ok();

    // With an L1, the second call reads Redis and keeps a copy in the
    // process; the third is answered from that copy.
    for attempt in ["first", "second", "third"] {
        let before = cache.stats();
        let started = Instant::now();
        let product = get_product(42).await?;
        let stats = cache.stats();
        let answer = if stats.l1_hits > before.l1_hits {
            "L1 hit"
        } else if stats.hits > before.hits {
            "hit"
        } else {
            "miss"
        };
        println!(
            "{attempt} call: {answer:<6} {:>7.2?}  {product:?}",
            started.elapsed(),
        );
    }
    let stats = cache.stats();
    println!(
        "body ran {} time(s); hits {} ({} from the L1), misses {}, errors {}, hit rate {:.0}%",
        QUERIES.load(Ordering::SeqCst),
        stats.hits,
        stats.l1_hits,
        stats.misses,
        stats.errors,
        stats.hit_rate() * 100.0
    );
    Ok(())
}
