//! End-to-end tests: `#[cached]` functions and the direct API against real
//! `redis-server` processes started by the test support crate.

mod support;

mod clear_pattern;
mod concurrency;
mod config;
mod corrupt;
mod direct_api;
mod fail_open;
mod keys;
mod methods_and_scope;
mod read_through;
mod write_behind;
