//! A Redis Cluster of real `redis-server` processes: three masters, each
//! with a replica.

use crate::server::{RedisServer, TempDir};
use crate::tls::{ClientAuth, TlsFiles};
use crate::Reply;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
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
/// [`RedisCluster::start`] returns, each replica synced with its master.
/// Dropping it
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
    /// Each node's id (`CLUSTER MYID`), by index: what `CLUSTER SLOTS`
    /// names a node by whatever port it reports.
    ids: Vec<String>,
    /// The certificates every node of a TLS cluster shares, and whom the
    /// nodes ask for one.
    tls: Option<(ClientAuth, TlsFiles)>,
    /// Where those certificates live; removed after the nodes.
    certs: Option<TempDir>,
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
        RedisCluster::launch(None)
    }

    /// Like [`RedisCluster::start`], with nodes that speak only TLS, to
    /// clients, to each other (`--tls-cluster yes`) and to their replicas
    /// (`--tls-replication yes`), all with certificates of one test CA
    /// ([`RedisCluster::ca_file`]); clients need not present a
    /// certificate. [`RedisCluster::urls`] are then `rediss://` URLs, and
    /// [`RedisCluster::cmd`] still works (through each node's Unix socket,
    /// as for [`RedisServer::start_tls`]).
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`] and [`RedisServer::start_tls`].
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start_tls();
    /// assert!(cluster.urls()[0].starts_with("rediss://127.0.0.1:"));
    /// let _ca = cluster.ca_file(); // hand it to the client under test
    /// ```
    #[track_caller]
    #[must_use = "dropping the cluster kills it immediately"]
    pub fn start_tls() -> RedisCluster {
        RedisCluster::start_tls_with(ClientAuth::No)
    }

    /// Like [`RedisCluster::start_tls`], asking clients for certificates
    /// as `client_auth` says ([`RedisCluster::client_cert_file`] is one
    /// the nodes trust).
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start_tls`].
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisCluster};
    ///
    /// let cluster = RedisCluster::start_tls_with(ClientAuth::Required);
    /// let (_cert, _key) = (cluster.client_cert_file(), cluster.client_key_file());
    /// ```
    #[track_caller]
    #[must_use = "dropping the cluster kills it immediately"]
    pub fn start_tls_with(client_auth: ClientAuth) -> RedisCluster {
        let certs = TempDir::create();
        let files = TlsFiles::generate(certs.path());
        RedisCluster::launch(Some((client_auth, files, certs)))
    }

    #[track_caller]
    fn launch(tls: Option<(ClientAuth, TlsFiles, TempDir)>) -> RedisCluster {
        let (tls, certs) = match tls {
            Some((auth, files, dir)) => (Some((auth, files)), Some(dir)),
            None => (None, None),
        };
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            NODE_TIMEOUT_MS,
            // Replicas sync at once, not 5 s after they ask: one
            // that never synced cannot take over its master.
            "--repl-diskless-sync-delay",
            "0",
        ];
        if tls.is_some() {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        let nodes: Vec<RedisServer> = (0..NODES)
            .map(|_| RedisServer::start_cluster_node(&args, tls.as_ref().map(|(a, f)| (*a, f))))
            .collect();
        let ids = nodes
            .iter()
            .map(|n| match n.cmd(&["CLUSTER", "MYID"]).as_string() {
                Some(id) => id,
                None => panic!("node on port {} has no cluster id", n.port()),
            })
            .collect();
        let cluster = RedisCluster {
            nodes,
            ids,
            tls,
            certs,
        };
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
        if let Some((_, files)) = &self.tls {
            command
                .arg("--tls")
                .arg("--cacert")
                .arg(&files.ca)
                .arg("--cert")
                .arg(&files.client_cert)
                .arg("--key")
                .arg(&files.client_key);
        }
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
            }) && self.nodes.iter().all(|n| {
                // Every replica has synced with its master.
                let info = n
                    .cmd(&["INFO", "replication"])
                    .as_string()
                    .unwrap_or_default();
                info.contains("role:master") || info.contains("master_link_status:up")
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

    /// One cluster for the whole test binary, started by the first caller
    /// and shared by every test after it (tests keep apart by key prefix).
    /// It is never dropped: a watchdog process kills its nodes and removes
    /// their directories once this process has exited.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`].
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// assert!(std::ptr::eq(cluster, cache_test_support::RedisCluster::shared()));
    /// ```
    #[track_caller]
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = RedisCluster::start();
            cluster.reap_after_exit();
            cluster
        })
    }

    /// Starts `sh`, which waits for this process to end, then kills the
    /// nodes and removes their directories.
    fn reap_after_exit(&self) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.pid().map(|p| p.to_string()))
            .collect();
        let dirs: Vec<String> = self
            .nodes
            .iter()
            .map(RedisServer::dir)
            .chain(self.certs.as_ref().map(TempDir::path))
            .map(|dir| format!("'{}'", dir.display()))
            .collect();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.2; done; kill -9 {pids} 2>/dev/null; rm -rf {dirs}",
            me = std::process::id(),
            pids = pids.join(" "),
            dirs = dirs.join(" "),
        );
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(err) = spawned {
            panic!("cannot start the watchdog that ends the shared cluster: {err}");
        }
    }

    /// Sends one command to the master that serves its key (the second
    /// argument, if any), following `MOVED` and `ASK` redirections, and
    /// returns the reply; a keyless command goes to the first running
    /// master.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::cmd`], or if redirections do not settle after a
    /// few tries.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// cluster.cmd(&["SET", "k", "v"]);
    /// assert_eq!(cluster.cmd(&["GET", "k"]).as_string().as_deref(), Some("v"));
    /// ```
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bytes(&args)
    }

    /// Like [`RedisCluster::cmd`], with binary arguments.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::cmd`].
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// cluster.cmd_bytes(&[b"SET", b"k", b"\x00"]);
    /// ```
    #[track_caller]
    pub fn cmd_bytes(&self, args: &[&[u8]]) -> Reply {
        let mut node = self
            .masters()
            .first()
            .copied()
            .expect("the cluster has a running master");
        let mut asking = false;
        for _ in 0..8 {
            let reply = if asking {
                let mut replies = self.nodes[node].cmd_pipeline_bytes(&[&[b"ASKING"], args]);
                replies.pop().expect("two replies")
            } else {
                self.nodes[node].cmd_bytes(args)
            };
            let Reply::Error(e) = &reply else {
                return reply;
            };
            let redirect = e
                .strip_prefix("MOVED ")
                .map(|r| (r, false))
                .or_else(|| e.strip_prefix("ASK ").map(|r| (r, true)));
            let Some((rest, ask)) = redirect else {
                return reply;
            };
            // `<slot> <host>:<port>`. A node of a TLS cluster names its
            // plain port (none: 0) to a plain connection such as this
            // one, so a move is followed by the slot's owner; an ASK
            // (a slot being migrated) by the port.
            let (slot, port) = rest
                .split_once(' ')
                .and_then(|(slot, addr)| {
                    let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
                    Some((slot.parse::<usize>().ok()?, port))
                })
                .unwrap_or_else(|| panic!("unreadable redirection `{e}`"));
            node = if ask {
                self.nodes
                    .iter()
                    .position(|n| n.port() == port)
                    .unwrap_or_else(|| panic!("asked to port {port}, no node of this cluster"))
            } else {
                self.slot_owners()[slot]
            };
            asking = ask;
        }
        panic!(
            "redirections did not settle for {:?}",
            String::from_utf8_lossy(args[0])
        );
    }

    /// Stores each `(key, value)` pair, pipelined to the master of each
    /// key's slot: for filling a cluster with many keys at once (`MSET`
    /// refuses keys of different slots).
    ///
    /// # Panics
    ///
    /// If a node refuses a write (its error is in the message).
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// cluster.set_many(&[("a", "1"), ("b", "2")]);
    /// assert_eq!(cluster.dbsize(), 2);
    /// ```
    #[track_caller]
    pub fn set_many(&self, pairs: &[(&str, &str)]) {
        let owners = self.slot_owners();
        let mut by_node: Vec<Vec<[&str; 3]>> = vec![Vec::new(); self.nodes.len()];
        for &(key, value) in pairs {
            let node = owners[usize::from(slot(key.as_bytes()))];
            by_node[node].push(["SET", key, value]);
        }
        for (node, sets) in by_node.iter().enumerate() {
            for chunk in sets.chunks(1000) {
                let commands: Vec<&[&str]> = chunk.iter().map(|c| &c[..]).collect();
                for reply in self.nodes[node].cmd_pipeline(&commands) {
                    assert_eq!(reply, Reply::Status("OK".into()), "a SET was refused");
                }
            }
        }
    }

    /// The node that serves `key`'s slot now.
    ///
    /// # Panics
    ///
    /// If no running master answers `CLUSTER SLOTS`.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// let node = cluster.node_for("product:42");
    /// node.cmd(&["SET", "product:42", "v"]); // no redirection
    /// ```
    #[track_caller]
    #[must_use]
    pub fn node_for(&self, key: &str) -> &RedisServer {
        &self.nodes[self.slot_owners()[usize::from(slot(key.as_bytes()))]]
    }

    /// Moves the slot of `key`, with its keys, to the master `to` (an
    /// index into [`nodes`](RedisCluster::nodes)), as `redis-cli --cluster
    /// reshard` does: `SETSLOT IMPORTING` / `MIGRATING`, `MIGRATE` of every
    /// key in it, then `SETSLOT NODE` on every master. Returns when every
    /// master names `to` as the slot's owner.
    ///
    /// # Panics
    ///
    /// If `to` is not a master, already serves the slot, or a step is
    /// refused (its reply is in the message).
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start();
    /// let to = cluster.masters()[0];
    /// if !std::ptr::eq(cluster.node_for("k"), &cluster.nodes()[to]) {
    ///     cluster.move_slot("k", to);
    /// }
    /// assert!(std::ptr::eq(cluster.node_for("k"), &cluster.nodes()[to]));
    /// ```
    #[track_caller]
    pub fn move_slot(&self, key: &str, to: usize) {
        let masters = self.masters();
        assert!(masters.contains(&to), "node {to} is not a master");
        let slot = slot(key.as_bytes());
        let from = self.slot_owners()[usize::from(slot)];
        assert_ne!(from, to, "node {to} already serves the slot of {key:?}");
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        let slot_arg = slot.to_string();
        let ok = |reply: Reply, step: &str| {
            assert_eq!(reply, Reply::Status("OK".into()), "{step} of slot {slot}");
        };
        ok(
            target.cmd(&[
                "CLUSTER",
                "SETSLOT",
                &slot_arg,
                "IMPORTING",
                &self.ids[from],
            ]),
            "SETSLOT IMPORTING",
        );
        ok(
            source.cmd(&["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &self.ids[to]]),
            "SETSLOT MIGRATING",
        );
        let port = target.port().to_string();
        loop {
            let keys = source.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot_arg, "1000"]);
            let keys: Vec<String> = keys
                .as_array()
                .iter()
                .filter_map(Reply::as_string)
                .collect();
            if keys.is_empty() {
                break;
            }
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            migrate.extend(keys.iter().map(String::as_str));
            ok(source.cmd(&migrate), "MIGRATE");
        }
        // The target first, then the source, then the others (the order
        // `redis-cli` uses).
        let mut order = vec![to, from];
        order.extend(masters.iter().filter(|m| **m != to && **m != from));
        for m in order {
            ok(
                self.nodes[m].cmd(&["CLUSTER", "SETSLOT", &slot_arg, "NODE", &self.ids[to]]),
                "SETSLOT NODE",
            );
        }
        let started = Instant::now();
        while !masters.iter().all(|&m| self.owner_by(m, slot) == Some(to)) {
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "the masters do not agree that node {to} serves slot {slot}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node that serves `slot`, by `node`'s `CLUSTER SLOTS`.
    fn owner_by(&self, node: usize, slot: u16) -> Option<usize> {
        let reply = self.nodes[node].cmd(&["CLUSTER", "SLOTS"]);
        reply.as_array().iter().find_map(|range| {
            let parts = range.as_array();
            let (start, end) = (parts[0].as_int(), parts[1].as_int());
            if !(start..=end).contains(&i64::from(slot)) {
                return None;
            }
            let id = parts[2].as_array()[2].as_string();
            self.ids.iter().position(|known| Some(known) == id.as_ref())
        })
    }

    /// How many keys the masters hold together.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// let _ = cluster.dbsize();
    /// ```
    #[must_use]
    pub fn dbsize(&self) -> i64 {
        self.masters()
            .into_iter()
            .map(|i| self.nodes[i].cmd(&["DBSIZE"]).as_int())
            .sum()
    }

    /// For each slot, the index of the node that serves it (by the first
    /// master's `CLUSTER SLOTS`).
    #[track_caller]
    fn slot_owners(&self) -> Vec<usize> {
        let first = *self.masters().first().expect("a running master");
        let reply = self.nodes[first].cmd(&["CLUSTER", "SLOTS"]);
        let mut owners = vec![usize::MAX; 16384];
        for range in reply.as_array() {
            let parts = range.as_array();
            let (start, end) = (parts[0].as_int(), parts[1].as_int());
            // By id: a TLS node reports port 0 to this plain connection.
            let id = parts[2].as_array()[2].as_string();
            let node = self
                .ids
                .iter()
                .position(|known| Some(known) == id.as_ref())
                .expect("a node of this cluster");
            for s in start..=end {
                owners[usize::try_from(s).expect("slot")] = node;
            }
        }
        assert!(!owners.contains(&usize::MAX), "every slot is served");
        owners
    }

    /// The keys matching `pattern` on every master, sorted (tests only:
    /// `KEYS` is fine on a tiny keyspace).
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::shared();
    /// assert!(cluster.keys("no-such-prefix:*").is_empty());
    /// ```
    #[must_use]
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .masters()
            .into_iter()
            .flat_map(|i| {
                self.nodes[i]
                    .cmd(&["KEYS", pattern])
                    .as_array()
                    .iter()
                    .filter_map(Reply::as_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
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

    /// A `redis://127.0.0.1:{port}` URL per node (`rediss://` for a TLS
    /// cluster).
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start();
    /// assert!(cluster.urls()[0].starts_with("redis://127.0.0.1:"));
    /// ```
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.nodes
            .iter()
            .map(|n| format!("{scheme}://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The test CA of a TLS cluster (PEM), which signed every node's
    /// certificate and [`RedisCluster::client_cert_file`].
    ///
    /// # Panics
    ///
    /// If the cluster does not speak TLS.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start_tls();
    /// assert!(cluster.ca_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.tls_files().ca
    }

    /// A client certificate (PEM) the nodes of a TLS cluster trust.
    ///
    /// # Panics
    ///
    /// If the cluster does not speak TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisCluster};
    ///
    /// let cluster = RedisCluster::start_tls_with(ClientAuth::Required);
    /// assert!(cluster.client_cert_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn client_cert_file(&self) -> &Path {
        &self.tls_files().client_cert
    }

    /// The key (PEM) of [`RedisCluster::client_cert_file`].
    ///
    /// # Panics
    ///
    /// If the cluster does not speak TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisCluster};
    ///
    /// let cluster = RedisCluster::start_tls_with(ClientAuth::Required);
    /// assert!(cluster.client_key_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn client_key_file(&self) -> &Path {
        &self.tls_files().client_key
    }

    /// A CA (PEM) that signed nothing the nodes present: for tests of an
    /// untrusted server.
    ///
    /// # Panics
    ///
    /// If the cluster does not speak TLS.
    ///
    /// ```no_run
    /// let cluster = cache_test_support::RedisCluster::start_tls();
    /// assert_ne!(cluster.other_ca_file(), cluster.ca_file());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn other_ca_file(&self) -> &Path {
        &self.tls_files().other_ca
    }

    #[track_caller]
    fn tls_files(&self) -> &TlsFiles {
        match &self.tls {
            Some((_, files)) => files,
            None => panic!(
                "this cluster does not speak TLS: start it with RedisCluster::start_tls \
                 to get certificate files"
            ),
        }
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

/// The slot of `key` (`CLUSTER KEYSLOT`): CRC16 of its hash tag (the text
/// between the first `{` and the next `}`, if not empty) or of the key.
fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&len| len > 0)
            .map(|len| &rest[..len])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}
