//! Shared helpers: a server plus a cache on it, and where a test that runs
//! on both one server and a cluster runs ([`Redis`], [`on_server_and_cluster`]).

use cache_runtime::{Cache, CacheBuilder};
pub use cache_test_support::{RedisCluster, RedisServer, Reply};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Runs each named `async fn(Redis)` of the calling module twice, as the
/// tests `on_server::<name>` (a server of its own) and `on_cluster::<name>`
/// (the binary's shared cluster). A bracketed list after a name is passed
/// to `#[tokio::test]`: `name [flavor = "multi_thread"]`.
macro_rules! on_server_and_cluster {
    ($($name:ident $([$($flavor:tt)*])?),* $(,)?) => {
        mod on_server {
            $(
                #[tokio::test $(($($flavor)*))?]
                async fn $name() {
                    super::$name($crate::support::Redis::server()).await
                }
            )*
        }
        mod on_cluster {
            $(
                #[tokio::test $(($($flavor)*))?]
                async fn $name() {
                    super::$name($crate::support::Redis::cluster()).await
                }
            )*
        }
    };
}

/// Where a parametrized test runs: a server of its own, or the shared
/// cluster, which one test at a time uses, emptied first (so tests keep
/// their keys and prefixes as on a server of their own).
#[allow(clippy::large_enum_variant)] // one per test
pub enum Redis {
    Server(RedisServer),
    /// The cluster, and this test's turn on it.
    Cluster(
        &'static RedisCluster,
        #[allow(dead_code)] MutexGuard<'static, ()>,
    ),
}

/// Taken by the test that uses the shared cluster.
static CLUSTER_TURN: Mutex<()> = Mutex::new(());

impl Redis {
    /// A fresh server.
    pub fn server() -> Redis {
        Redis::Server(RedisServer::start())
    }

    /// The shared cluster, empty, for this test alone.
    pub fn cluster() -> Redis {
        let cluster = RedisCluster::shared();
        let turn = CLUSTER_TURN.lock().unwrap_or_else(PoisonError::into_inner);
        for m in cluster.masters() {
            cluster.nodes()[m].cmd(&["FLUSHALL"]);
        }
        Redis::Cluster(cluster, turn)
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Redis::Cluster(..))
    }

    /// A builder pointed at this server or cluster.
    pub fn builder(&self) -> CacheBuilder {
        match self {
            Redis::Server(s) => Cache::builder().redis(s.url()),
            Redis::Cluster(c, _) => Cache::builder().redis_cluster(c.urls()),
        }
    }

    /// A cache on it with `prefix`.
    pub fn cache(&self, prefix: &str) -> Cache {
        self.builder()
            .prefix(prefix)
            .build()
            .expect("valid settings")
    }

    /// One command, to the node that serves its key.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        match self {
            Redis::Server(s) => s.cmd(args),
            Redis::Cluster(c, _) => c.cmd(args),
        }
    }

    /// [`Redis::cmd`] with binary arguments.
    pub fn cmd_bytes(&self, args: &[&[u8]]) -> Reply {
        match self {
            Redis::Server(s) => s.cmd_bytes(args),
            Redis::Cluster(c, _) => c.cmd_bytes(args),
        }
    }

    /// The server, mutably (panics on the cluster).
    #[track_caller]
    pub fn server_mut(&mut self) -> &mut RedisServer {
        match self {
            Redis::Server(s) => s,
            Redis::Cluster(..) => panic!("this step needs a single server"),
        }
    }

    /// The server (panics on the cluster: for steps only a server has).
    #[track_caller]
    pub fn server_only(&self) -> &RedisServer {
        match self {
            Redis::Server(s) => s,
            Redis::Cluster(..) => panic!("this step needs a single server"),
        }
    }
}

impl Redis {
    /// Stores every `(key, value)` pair (in batches).
    pub fn set_many(&self, pairs: &[(&str, &str)]) {
        match self {
            Redis::Server(s) => {
                for chunk in pairs.chunks(1000) {
                    let mut mset = vec!["MSET"];
                    chunk.iter().for_each(|(k, v)| mset.extend([*k, *v]));
                    assert_eq!(s.cmd(&mset), Reply::Status("OK".into()));
                }
            }
            Redis::Cluster(c, _) => c.set_many(pairs),
        }
    }

    /// The server, or the cluster's masters.
    pub fn masters(&self) -> Vec<&RedisServer> {
        match self {
            Redis::Server(s) => vec![s],
            Redis::Cluster(c, _) => c.masters().into_iter().map(|i| &c.nodes()[i]).collect(),
        }
    }

    /// The server, or the cluster node that serves `key`.
    pub fn node_for(&self, key: &str) -> &RedisServer {
        match self {
            Redis::Server(s) => s,
            Redis::Cluster(c, _) => c.node_for(key),
        }
    }

    /// How many keys it holds (every master's, on the cluster).
    pub fn dbsize(&self) -> i64 {
        match self {
            Redis::Server(s) => s.cmd(&["DBSIZE"]).as_int(),
            Redis::Cluster(c, _) => c.dbsize(),
        }
    }
}

/// What the helpers below read Redis through: a server, the cluster, or
/// either.
pub trait Inspect {
    fn send(&self, args: &[&[u8]]) -> Reply;
    /// Keys matching `pattern` (on every master of a cluster), sorted.
    fn matching(&self, pattern: &str) -> Vec<String>;
}

impl Inspect for RedisServer {
    fn send(&self, args: &[&[u8]]) -> Reply {
        self.cmd_bytes(args)
    }
    fn matching(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .cmd(&["KEYS", pattern])
            .as_array()
            .iter()
            .map(|r| r.as_string().expect("key"))
            .collect();
        keys.sort();
        keys
    }
}

impl Inspect for Redis {
    fn send(&self, args: &[&[u8]]) -> Reply {
        self.cmd_bytes(args)
    }
    fn matching(&self, pattern: &str) -> Vec<String> {
        match self {
            Redis::Server(s) => s.matching(pattern),
            Redis::Cluster(c, _) => c.keys(pattern),
        }
    }
}

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
pub fn stored_json(server: &impl Inspect, key: &str) -> Option<serde_json::Value> {
    let reply = server.send(&[b"GET", key.as_bytes()]);
    let bytes = reply.as_bytes()?;
    assert!(
        bytes.len() > HEADER_LEN,
        "stored value shorter than the envelope: {bytes:?}"
    );
    assert_eq!(&bytes[..2], b"CR", "envelope magic");
    Some(serde_json::from_slice(&bytes[HEADER_LEN..]).expect("the payload is plain JSON"))
}

/// All keys on the server (tests only: KEYS is fine on a tiny keyspace).
pub fn keys(server: &impl Inspect, pattern: &str) -> Vec<String> {
    server.matching(pattern)
}

/// The keys on the server that hold a value: a fill lock's placeholder (a
/// 19-byte `CRL`/`CRN` marker, left for a lease when a result is not
/// stored) is no value.
pub fn value_keys(server: &impl Inspect, pattern: &str) -> Vec<String> {
    keys(server, pattern)
        .into_iter()
        .filter(|k| !holds_no_value(server, k))
        .collect()
}

/// Whether `key` is absent or holds only a fill lock's placeholder.
pub fn holds_no_value(server: &impl Inspect, key: &str) -> bool {
    let reply = server.send(&[b"GET", key.as_bytes()]);
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
