//! Prints the hashed key of one `#[cached]` call, and whether it was a hit.
//!
//! Run twice (two processes, two random hash seeds) with the map's entries
//! inserted in opposite orders: the second run hits the first run's key.
//!
//! ```text
//! cargo run --example hashed_key -- redis://127.0.0.1:6379 forward
//! cargo run --example hashed_key -- redis://127.0.0.1:6379 reverse
//! ```

use cache_runtime::{cached, Cache};
use std::collections::HashMap;

#[cached(ttl = 600, name = "examples::price_list")]
async fn price_list(region: String, quantities: HashMap<String, u32>) -> u64 {
    quantities.values().map(|&q| u64::from(q)).sum::<u64>() + region.len() as u64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let reverse = args.next().as_deref() == Some("reverse");
    let cache = Cache::builder().redis(url).build()?;

    let mut items: Vec<(String, u32)> = (0..20).map(|i| (format!("sku-{i}"), i)).collect();
    if reverse {
        items.reverse();
    }
    let quantities: HashMap<String, u32> = items.into_iter().collect();
    let total = cache
        .scope(price_list("eu".into(), quantities.clone()))
        .await;

    let stats = cache.stats();
    let outcome = if stats.hits == 1 { "hit" } else { "miss" };
    // The key #[cached] used: prefix, name, digest of the (non-skipped) arguments.
    let key = cache.hashed_key("examples::price_list", &("eu", &quantities))?;
    println!("{outcome} total={total} key={key}");
    if stats.errors > 0 {
        return Err("the cache reported errors".into());
    }
    Ok(())
}
