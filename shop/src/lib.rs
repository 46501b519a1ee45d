//! The sample shop: an axum 0.8 service whose queries are cached functions
//! (`services`), on SQLite embedded in the binary or on PostgreSQL (`db`),
//! with sessions in the cache (`cache-sessions`) and orders written behind.
//!
//! `cargo run -p shop` serves it on `SHOP_ADDR` (default `127.0.0.1:8080`);
//! see the README's Quick start for the endpoints and settings.

pub mod client;
pub mod db;
mod http;
pub mod model;
pub mod process;
pub mod services;

pub use http::{router, run, Config, PageEviction, Shop};

/// The shop's `main`: logs (`RUST_LOG`, default `warn`) to stderr, reads
/// [`Config::from_env`] and [`run`]s until SIGINT or SIGTERM; on an error,
/// prints it and exits with status 1 (2 for a bad setting).
pub fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shop: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run(config)) {
        eprintln!("shop: {e}");
        std::process::exit(1);
    }
}
