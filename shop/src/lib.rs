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

pub use http::{router, run, Config, Shop};
