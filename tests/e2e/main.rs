//! End-to-end tests: `#[cached]` functions and the direct API against real
//! `redis-server` processes started by the test support crate.

#[macro_use]
mod support;

mod clear_pattern;
mod concurrency;
mod config;
mod corrupt;
mod direct_api;
mod fail_open;
mod faults;
mod keys;
mod l1;
mod methods_and_scope;
mod negative;
mod observability;
mod put_evict;
mod races;
mod read_through;
mod schema;
mod security;
mod stampede;
mod tags;
mod write_behind;
