//! The shop: `cargo run -p shop`. Settings come from the environment:
//! `SHOP_ADDR`, `DATABASE_URL`, `SHOP_FLUSH_MS`, and the cache's own
//! (`REDIS_URL`, `REDIS_CLUSTER_NODES`, `CACHE_L1_CAPACITY`, `CACHE_DISABLED`).

fn main() {
    shop::main()
}
