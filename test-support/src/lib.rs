//! Test support for the caching library: real `redis-server` processes on
//! free loopback ports, plus a tiny synchronous RESP2 client for assertions,
//! and a [`FaultProxy`] to put between a client and a server to make the
//! network go silent, drop connections or slow down.
//!
//! Every [`RedisServer`] runs in its own temporary directory with persistence
//! switched off, listens on `127.0.0.1` only, and is killed (and its directory
//! removed) when the value is dropped. If a test panics while a server is
//! alive, the server's log is printed to stderr so it shows up in the test
//! output.
//!
//! `redis-server` must be installed: a missing binary makes
//! [`RedisServer::start`] panic with installation instructions instead of
//! silently skipping the test. Set `REDIS_SERVER_BIN` to use a binary that is
//! not on `PATH`.
//!
//! [`RedisCluster::start`] starts a Redis Cluster of six such servers
//! (three masters, three replicas); [`RedisCluster::start_tls`] one that
//! speaks only TLS, its nodes sharing one test CA.
//!
//! [`RedisServer::start_tls`] starts a server that speaks only TLS, with a
//! test CA and server and client certificates generated for it (and an
//! unrelated CA, for tests of untrusted certificates);
//! [`RedisServer::start_tls_with`] asks clients for certificates too.
//!
//! ```no_run
//! use cache_test_support::{RedisServer, Reply};
//!
//! let server = RedisServer::start();
//! assert_eq!(server.cmd(&["SET", "k", "v", "PX", "60000"]), Reply::Status("OK".into()));
//! assert_eq!(server.cmd(&["GET", "k"]).as_string().as_deref(), Some("v"));
//! assert!(server.cmd(&["PTTL", "k"]).as_int() > 0);
//! // Hand `server.url()` to the code under test.
//! ```

#![warn(missing_docs, missing_debug_implementations)]

mod cluster;
mod proxy;
mod resp;
mod server;
mod tls;

pub use cluster::RedisCluster;
pub use proxy::{FaultProxy, ProxyMode};
pub use resp::Reply;
pub use server::{free_port, unused_url, RedisServer};
pub use tls::ClientAuth;
