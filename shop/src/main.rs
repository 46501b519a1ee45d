//! The shop: `cargo run -p shop`. Settings come from the environment:
//! `SHOP_ADDR`, `DATABASE_URL`, `SHOP_FLUSH_MS`, and the cache's own
//! (`REDIS_URL`, `REDIS_CLUSTER_NODES`, `CACHE_L1_CAPACITY`, `CACHE_DISABLED`).

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match shop::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shop: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = shop::run(config).await {
        eprintln!("shop: {e}");
        std::process::exit(1);
    }
}
