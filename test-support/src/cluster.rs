//! A Redis Cluster of real `redis-server` processes: three masters, each
//! with a replica.

use crate::server::RedisServer;
use std::process::Command;
use std::time::{Duration, Instant};

/// Nodes in a cluster: three masters and three replicas.
const NODES: usize = 6;
/// How long the cluster may take to agree on its slots after `create`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A node considers another failed after this long without an answer: short,
/// so that a test's failover is quick.
const NODE_TIMEOUT_MS: &str = "2000";

/// A Redis Cluster owned by a test: six `redis-server --cluster-enabled yes`
/// processes on free loopback ports below 55535 (each node's bus listens
/// on its port + 10000), joined with `redis-cli --cluster create ...
/// --cluster-replicas 1`, and ready (`cluster_state:ok` on every node, all
/// 16384 slots assigned, and every node seeing three replicas) when
/// [`RedisCluster::start`] returns. Dropping it
/// kills every node; a test that panics meanwhile gets each node's log on
/// stderr (as with [`RedisServer`]).
///
/// ```no_run
/// use cache_test_support::RedisCluster;
///
/// let cluster = RedisCluster::start();
/// let urls = cluster.urls(); // one `redis://127.0.0.1:<port>` per node
/// assert_eq!(urls.len(), 6);
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits until it is ready.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` is not installed, if a node does not
    /// start, if `redis-cli --cluster create` fails (its output is in the
    /// message), or if the cluster is not ready within 30 seconds.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start();
    /// let info = cluster.nodes()[0].cmd(&["CLUSTER", "INFO"]);
    /// assert!(info.as_string().unwrap().contains("cluster_state:ok"));
    /// ```
    #[track_caller]
    #[must_use = "dropping the cluster kills it immediately"]
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..NODES)
            .map(|_| {
                RedisServer::start_cluster_node(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                ])
            })
            .collect();
        let cluster = RedisCluster { nodes };
        cluster.create();
        cluster.wait_until_ready();
        cluster
    }

    #[track_caller]
    fn create(&self) {
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        command.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = match command.output() {
            Ok(output) => output,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-cli is not installed (it comes with redis-server: `apt-get install \
                 redis-tools` on Debian/Ubuntu); it creates the test cluster"
            ),
            Err(err) => panic!("cannot run redis-cli: {err}"),
        };
        if !output.status.success() {
            panic!(
                "redis-cli --cluster create failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    #[track_caller]
    fn wait_until_ready(&self) {
        let started = Instant::now();
        loop {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|n| n.cmd(&["CLUSTER", "INFO"]).as_string().unwrap_or_default())
                .collect();
            let ready = states.iter().all(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_assigned:16384")
                    && info.contains(&format!("cluster_known_nodes:{NODES}"))
            }) && self.nodes.iter().all(|n| {
                // Every node sees the replicas as replicas (`create` makes
                // them replicate after the slots are assigned).
                let view = n.cmd(&["CLUSTER", "NODES"]).as_string().unwrap_or_default();
                view.lines().filter(|l| l.contains("slave")).count() == NODES / 2
            });
            if ready {
                return;
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "the cluster was not ready within {READY_TIMEOUT:?}; CLUSTER INFO of each node:\n{}",
                    states.join("\n----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The six nodes, in the order they were started (the first three were
    /// made masters by `create`, but a failover may change that: see
    /// [`RedisCluster::masters`]).
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start();
    /// assert_eq!(cluster.nodes().len(), 6);
    /// ```
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, mutably: to kill or restart one.
    ///
    /// ```no_run
    /// let mut cluster = cache_test_support::RedisCluster::start();
    /// cluster.nodes_mut()[0].kill();
    /// ```
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// A `redis://127.0.0.1:{port}` URL per node.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start();
    /// assert!(cluster.urls()[0].starts_with("redis://127.0.0.1:"));
    /// ```
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The indexes (into [`nodes`](RedisCluster::nodes)) of the nodes that
    /// are masters now, by each running node's own `ROLE`.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start();
    /// assert_eq!(cluster.masters().len(), 3);
    /// ```
    #[must_use]
    pub fn masters(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_running())
            .filter(|(_, n)| {
                n.cmd(&["ROLE"])
                    .as_array()
                    .first()
                    .and_then(crate::Reply::as_string)
                    .as_deref()
                    == Some("master")
            })
            .map(|(i, _)| i)
            .collect()
    }
}
