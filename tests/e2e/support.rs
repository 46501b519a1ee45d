//! Shared helpers: a server plus a cache on it.

use cache_runtime::Cache;
pub use cache_test_support::RedisServer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The envelope header in front of every stored value.
pub const HEADER_LEN: usize = 32;

/// A fresh server and a cache on it with `prefix`.
pub fn redis_cache(prefix: &str) -> (RedisServer, Cache) {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .prefix(prefix)
        .build()
        .expect("valid settings");
    (server, cache)
}

/// Counts how often a function body ran.
#[derive(Default, Debug)]
pub struct Calls(AtomicUsize);

impl Calls {
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The value stored at `key`, without its envelope, as JSON.
pub fn stored_json(server: &RedisServer, key: &str) -> Option<serde_json::Value> {
    let reply = server.cmd(&["GET", key]);
    let bytes = reply.as_bytes()?;
    assert!(
        bytes.len() > HEADER_LEN,
        "stored value shorter than the envelope: {bytes:?}"
    );
    assert_eq!(&bytes[..2], b"CR", "envelope magic");
    Some(serde_json::from_slice(&bytes[HEADER_LEN..]).expect("the payload is plain JSON"))
}

/// All keys on the server (tests only: KEYS is fine on a tiny keyspace).
pub fn keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = server
        .cmd(&["KEYS", pattern])
        .as_array()
        .iter()
        .map(|r| r.as_string().expect("key"))
        .collect();
    keys.sort();
    keys
}

/// The keys on the server that hold a value: a fill lock's placeholder (a
/// 19-byte `CRL`/`CRN` marker, left for a lease when a result is not
/// stored) is no value.
pub fn value_keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    keys(server, pattern)
        .into_iter()
        .filter(|k| !holds_no_value(server, k))
        .collect()
}

/// Whether `key` is absent or holds only a fill lock's placeholder.
pub fn holds_no_value(server: &RedisServer, key: &str) -> bool {
    let reply = server.cmd(&["GET", key]);
    match reply.as_bytes() {
        None => true,
        Some(b) => b.len() == 19 && (b.starts_with(b"CRL") || b.starts_with(b"CRN")),
    }
}

pub const SHORT: Duration = Duration::from_millis(10);

/// An example program: `cargo test` builds the examples next to the test
/// binaries.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --example {name}` first)",
        path.display()
    );
    path
}

/// Sends `sig` (`"-STOP"`, `"-CONT"`, ...) to the server process.
pub fn signal(server: &RedisServer, sig: &str) {
    let pid = server.pid().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}
