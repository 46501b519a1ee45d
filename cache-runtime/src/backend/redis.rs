//! The Redis backend: a few multiplexed connections, used round-robin, each
//! connecting lazily and reconnecting by itself; to one server, or to a
//! Redis Cluster (each connection then reaches every node and follows the
//! slots).

use super::cluster::{self, every_primary};
use super::tier::{Caps, Tier, Walk};
use super::{memory::TypedValue, Condition, TaggedLookup, TaggedWrite, WriteKind};
use crate::write_behind::Version;
use crate::BackendError;
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the invalidations of Redis's client tracking go: called on the
/// connection's own task, for every push message (invalidations and the
/// library's `Disconnection`), so it must not block.
pub(crate) type PushHandler = Arc<dyn Fn(redis::PushInfo) + Send + Sync>;

/// Keys per `SCAN` step and per `UNLINK` batch in `clear_pattern`: large
/// enough to be quick, small enough that no single command blocks Redis for
/// more than about a millisecond.
const SCAN_BATCH: usize = 1000;

/// Members per `ZRANGE` read and keys per `UNLINK` when a tag is invalidated.
const TAG_BATCH: usize = 1000;

/// One shared connection: to one server, or to a cluster (one socket per
/// node behind it, commands routed by their keys' slots).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    /// A connection of its own to one server (no reconnecting: its owner
    /// opens another after an error).
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A client for connections of their own (the write-behind's blocking
/// reads, which must not stall the shared connections).
// Made once per cache, never on a command's path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum OwnClient {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// How the shared connections are made.
// Made once per cache, never on a command's path.
#[allow(clippy::large_enum_variant)]
enum Clients {
    Single {
        /// For connections of their own, on RESP2.
        own: redis::Client,
        /// For the shared connections: the same, on RESP3 when tracking.
        shared: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        own: ClusterClient,
        shared: ClusterClient,
        config: ClusterConfig,
    },
}

/// One shared connection, made on first use.
#[derive(Default)]
struct Cell {
    conn: ArcSwapOption<Conn>,
    /// Held while a cluster connection is being made, so that callers
    /// that find none wait for that one instead of each making their own.
    connecting: tokio::sync::Mutex<()>,
}

pub(crate) struct RedisBackend {
    clients: Clients,
    /// Each made on first use; replaced (emptied, to be made again) when a
    /// health check finds it silent.
    connections: Arc<[Cell]>,
    next: AtomicUsize,
    /// Where the shared connections' push messages go, when they report
    /// changes (client tracking); also told of a connection found untracked.
    push: Option<PushHandler>,
    /// `host:port/db` (the first node's, for a cluster), with no
    /// credentials, for `Debug`.
    address: String,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

/// Settings the Redis backend needs from the builder.
pub(crate) struct RedisSettings {
    pub(crate) target: Target,
    /// A CA and a client certificate for `rediss://`, read by the builder.
    pub(crate) tls: Option<crate::builder::TlsFiles>,
    pub(crate) connections: usize,
    pub(crate) connect_timeout: Duration,
    /// With a handler, the shared connections speak RESP3 and hand it every
    /// push message, for an L1 kept coherent by client tracking.
    pub(crate) push: Option<PushHandler>,
}

/// One server, or the seed nodes of a cluster (each with the same
/// credentials and TLS mode; the rest of the cluster is found from them).
// Made once per cache, never on a command's path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    Single(redis::ConnectionInfo),
    Cluster(Vec<redis::ConnectionInfo>),
}

/// A client for `info`, with the TLS files if there are any.
fn open_client(
    info: redis::ConnectionInfo,
    tls: Option<&crate::builder::TlsFiles>,
) -> Result<redis::Client, redis::RedisError> {
    #[cfg(feature = "tls")]
    {
        install_crypto_provider();
        if let Some(files) = tls {
            return redis::Client::build_with_tls(info, files.clone());
        }
    }
    #[cfg(not(feature = "tls"))]
    if let Some(never) = tls {
        match *never {}
    }
    redis::Client::open(info)
}

/// A cluster client for `nodes`, speaking `protocol`, with the TLS files
/// if there are any and `push` for the push messages of every node.
fn open_cluster_client(
    nodes: &[redis::ConnectionInfo],
    tls: Option<&crate::builder::TlsFiles>,
    protocol: redis::ProtocolVersion,
    push: Option<&PushHandler>,
) -> Result<ClusterClient, redis::RedisError> {
    let mut builder = ClusterClient::builder(nodes.iter().cloned())
        .use_protocol(protocol)
        // A redirection (`MOVED`, `ASK`) or a reconnection to a promoted
        // replica is retried at once and then briefly; the runtime's own
        // deadline bounds the whole command, as on one server.
        .retries(3)
        .min_retry_wait(5)
        .max_retry_wait(100)
        // A node that refuses three reconnections in a row (a killed
        // primary) is dropped, so that its slots' next command asks the
        // cluster where they went: without this the client would keep
        // reconnecting to it, and never learn of the promoted replica.
        .max_connection_attempts(std::num::NonZeroUsize::new(3).expect("not zero"))
        // The client's own checks (a ping before reusing a node's
        // connection while it learns the slots again) must not wait
        // forever on a node that went silent.
        .response_timeout(Duration::from_secs(1));
    #[cfg(feature = "tls")]
    {
        install_crypto_provider();
        if let Some(files) = tls {
            builder = builder.certs(files.clone());
        }
    }
    #[cfg(not(feature = "tls"))]
    if let Some(never) = tls {
        match *never {}
    }
    if let Some(push) = push {
        let push = Arc::clone(push);
        builder = builder.push_sender(move |info| {
            push(info);
            Ok::<(), redis::aio::SendError>(())
        });
    }
    builder.build()
}

/// rustls needs a process-wide crypto provider; unless the application
/// installed one, ring is (the only one this crate's features enable).
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one first; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl RedisBackend {
    /// Never touches the network: connections open on first use.
    pub(crate) fn new(settings: RedisSettings) -> Result<Self, redis::RedisError> {
        let tls = settings.tls.as_ref();
        let (clients, address) = match settings.target {
            Target::Single(info) => {
                let address = format!("{}/{}", info.addr(), info.redis_settings().db());
                let open = |info: redis::ConnectionInfo| open_client(info, tls);
                let own = open(info.clone())?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.connect_timeout))
                    // The runtime bounds every command with its own deadline (and
                    // the walks below bound each of theirs): a second timer per
                    // command in the client would only add cost to every hit.
                    .set_response_timeout(None)
                    // No retry loop inside a command: a refused connection fails at once
                    // (the call runs its body), and the next command tries again.
                    .set_number_of_retries(0)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(2));
                let shared = match settings.push.clone() {
                    Some(push) => {
                        config = config.set_push_sender(move |info| {
                            push(info);
                            Ok::<(), std::convert::Infallible>(())
                        });
                        let redis = info
                            .redis_settings()
                            .clone()
                            .set_protocol(redis::ProtocolVersion::RESP3);
                        open(info.set_redis_settings(redis))?
                    }
                    None => own.clone(),
                };
                (
                    Clients::Single {
                        own,
                        shared,
                        config,
                    },
                    address,
                )
            }
            Target::Cluster(nodes) => {
                let address = match nodes.first() {
                    Some(first) => format!("cluster {} (+{} seeds)", first.addr(), nodes.len() - 1),
                    None => "cluster".to_owned(),
                };
                let own = open_cluster_client(&nodes, tls, redis::ProtocolVersion::RESP2, None)?;
                let shared = match &settings.push {
                    Some(push) => {
                        open_cluster_client(&nodes, tls, redis::ProtocolVersion::RESP3, Some(push))?
                    }
                    None => own.clone(),
                };
                let config = ClusterConfig::new().set_connection_timeout(settings.connect_timeout);
                (
                    Clients::Cluster {
                        own,
                        shared,
                        config,
                    },
                    address,
                )
            }
        };
        let connections = (0..settings.connections.max(1))
            .map(|_| Cell::default())
            .collect();
        Ok(RedisBackend {
            clients,
            connections,
            next: AtomicUsize::new(0),
            push: settings.push,
            address,
        })
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// On a cluster: what the engine calls when a command finds the
    /// cluster unreachable or too slow. It drops every shared connection
    /// (at most once a second), so that the next command starts afresh
    /// from the seed nodes and learns where the slots are now. The
    /// client's own recovery learns that only from commands that run long
    /// enough to see a node refuse them again and again, which commands
    /// bounded by a short deadline (or held back by the breaker) never do:
    /// a killed primary's slots would stay unreachable after its replica
    /// took over.
    pub(crate) fn outage_hook(&self) -> Option<crate::engine::OutageHook> {
        if !self.is_cluster() {
            return None;
        }
        let connections = Arc::clone(&self.connections);
        let push = self.push.clone();
        let epoch = std::time::Instant::now();
        let last = std::sync::atomic::AtomicU64::new(0);
        Some(Arc::new(move || {
            let now = u64::try_from(epoch.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let before = last.load(Ordering::Relaxed);
            if before != 0 && now.saturating_sub(before) < 1000 {
                return;
            }
            if last
                .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
            tracing::debug!("the cluster failed a command: its connections start afresh");
            connections.iter().for_each(|cell| cell.conn.store(None));
            // The new connections track nothing until tracking is on again.
            if let Some(push) = &push {
                push(redis::PushInfo {
                    kind: redis::PushKind::Disconnection,
                    data: Vec::new(),
                });
            }
        }))
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.clients, Clients::Cluster { .. })
    }

    /// The next connection, round-robin. Creating the manager does no I/O;
    /// the manager connects when the first command needs it, and reconnects
    /// in the background after the connection drops.
    pub(crate) async fn connection(&self) -> Result<Conn, BackendError> {
        // With one connection (the default), no shared counter to bump.
        let cell = match &*self.connections {
            [only] => only,
            all => &all[self.next.fetch_add(1, Ordering::Relaxed) % all.len()],
        };
        self.manager(cell).await
    }

    async fn manager(&self, cell: &Cell) -> Result<Conn, BackendError> {
        if let Some(conn) = &*cell.conn.load() {
            return Ok(Conn::clone(conn));
        }
        let fresh = Arc::new(match &self.clients {
            Clients::Single { shared, config, .. } => Conn::Single(
                ConnectionManager::new_lazy_with_config(shared.clone(), config.clone())?,
            ),
            // Made here, in the caller's deadline, so that a failure to
            // reach the cluster reports its cause (a wrong password, an
            // untrusted certificate) rather than "no connections". One at
            // a time: the others wait for it and share it.
            Clients::Cluster { shared, config, .. } => {
                let _turn = cell.connecting.lock().await;
                if let Some(conn) = &*cell.conn.load() {
                    return Ok(Conn::clone(conn));
                }
                let conn = shared
                    .get_async_connection_with_config(config.clone())
                    .await?;
                let conn = Arc::new(Conn::Cluster(conn));
                cell.conn.store(Some(Arc::clone(&conn)));
                return Ok(Conn::clone(&conn));
            }
        });
        // Another caller may have made one meanwhile: use the first.
        let before = cell
            .conn
            .compare_and_swap(&None::<Arc<Conn>>, Some(fresh.clone()));
        Ok(match &*before {
            Some(existing) => Conn::clone(existing),
            None => Conn::clone(&fresh),
        })
    }

    /// Drops the connection of `slot`, to be made again on next use: it
    /// went silent without an error, which the client does not notice. A
    /// new connection reports no changes until tracking is on again, so
    /// the L1 is told, as for a dropped connection.
    fn replace(&self, cell: &Cell) {
        cell.conn.store(None);
        if let Some(push) = &self.push {
            push(redis::PushInfo {
                kind: redis::PushKind::Disconnection,
                data: Vec::new(),
            });
        }
    }

    /// Turns client tracking on for every shared connection, in `OPTIN`
    /// and `NOLOOP` mode: from here on, Redis tells this process of any change to a key
    /// it reads on them with [`opt_in`] first, until a connection drops
    /// (reported as a `Disconnection` push). On a cluster, on every
    /// primary: a replica promoted later is not tracking, which its first
    /// tracked read finds out (Redis refuses the opt-in), flushing the L1
    /// until tracking is on there too.
    pub(crate) async fn track(&self) -> Result<(), BackendError> {
        if self.push.is_none() {
            return Err(BackendError::Unsupported("invalidations"));
        }
        let mut on = redis::cmd("CLIENT");
        on.arg("TRACKING")
            .arg("ON")
            .arg("OPTIN")
            // Not told of its own changes: it forgets those itself, at
            // once (read-your-writes), and a fill's own write would
            // otherwise refuse the next read's install.
            .arg("NOLOOP");
        for cell in &*self.connections {
            match self.manager(cell).await? {
                Conn::Cluster(mut conn) => {
                    conn.route_command(on.clone(), every_primary()).await?;
                }
                mut conn => on.query_async::<()>(&mut conn).await?,
            }
        }
        Ok(())
    }

    /// A round trip on every shared connection, all at once, each ending at
    /// `deadline`: the health check. A connection that gives no reply in
    /// time is replaced (an error reply or a dropped connection the client
    /// handles itself, by reconnecting); one silent connection does not use
    /// up the others' time. On a cluster, every primary answers.
    pub(crate) async fn ping(&self, deadline: tokio::time::Instant) -> Result<(), BackendError> {
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut pings = Vec::with_capacity(self.connections.len());
        for cell in &*self.connections {
            let conn = match tokio::time::timeout_at(deadline, self.manager(cell)).await {
                Ok(conn) => conn?,
                Err(_) => return Err(BackendError::Timeout(budget)),
            };
            pings.push(tokio::spawn(async move {
                let ping = async move {
                    match conn {
                        Conn::Cluster(mut c) => c
                            .route_command(redis::cmd("PING"), every_primary())
                            .await
                            .map(drop),
                        mut c => redis::cmd("PING").query_async::<()>(&mut c).await,
                    }
                };
                tokio::time::timeout_at(deadline, ping).await
            }));
        }
        let mut result = Ok(());
        for (cell, ping) in self.connections.iter().zip(pings) {
            match ping.await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(e.into()),
                Ok(Err(_)) => {
                    tracing::debug!(address = %self.address, "a connection gave no reply to a health check; replacing it");
                    self.replace(cell);
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    result = Err(BackendError::Timeout(left));
                }
                // The runtime is shutting down.
                Err(_) => result = Err(BackendError::Unsupported("a runtime to run on")),
            }
        }
        result
    }

    /// Runs a read pipeline that starts with [`opt_in`]. Redis refuses the
    /// opt-in on a connection that is not tracking: one the client replaced
    /// without a `Disconnection` push. Then the L1 is told the connection
    /// was lost, and the read runs again untracked (`plain`).
    async fn tracked<T: redis::FromRedisValue>(
        &self,
        conn: &mut Conn,
        pipe: &redis::Pipeline,
        plain: &redis::Pipeline,
    ) -> Result<T, BackendError> {
        match pipe.query_async::<T>(conn).await {
            Err(e) if e.detail().is_some_and(|d| d.contains("CLIENT CACHING")) => {
                tracing::debug!(error = %e, "a shared connection is not tracking; L1 flushed");
                if let Some(push) = &self.push {
                    push(redis::PushInfo {
                        kind: redis::PushKind::Disconnection,
                        data: Vec::new(),
                    });
                }
                Ok(plain.query_async(conn).await?)
            }
            reply => Ok(reply?),
        }
    }
}

impl RedisBackend {
    pub(crate) async fn get(&self, key: &str, track: bool) -> Result<Option<Bytes>, BackendError> {
        if track {
            // Boxed: the pipelines would enlarge every plain read's future.
            return Box::pin(self.get_tracked(key)).await;
        }
        let mut conn = self.connection().await?;
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }

    /// A `GET` whose key Redis tracks, for the L1.
    async fn get_tracked(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let mut conn = self.connection().await?;
        self.get_tracked_on(&mut conn, key).await
    }

    /// [`get_tracked`](RedisBackend::get_tracked) on `conn`.
    async fn get_tracked_on(
        &self,
        conn: &mut Conn,
        key: &str,
    ) -> Result<Option<Bytes>, BackendError> {
        if let Conn::Cluster(c) = conn {
            return self.get_tracked_cluster(c, key).await;
        }
        let mut pipe = redis::pipe();
        opt_in(&mut pipe).cmd("GET").arg(key);
        let mut plain = redis::pipe();
        plain.cmd("GET").arg(key);
        let (value,): (Option<Bytes>,) = self.tracked(conn, &pipe, &plain).await?;
        Ok(value)
    }

    /// [`get_tracked_on`](RedisBackend::get_tracked_on) on a cluster: the
    /// client routes a pipeline by its commands' keys, and would take
    /// `CLIENT CACHING YES`'s argument for one, so the pipeline is sent to
    /// the key's primary by hand, and the opt-in's reply read as such.
    async fn get_tracked_cluster(
        &self,
        conn: &mut ClusterConnection,
        key: &str,
    ) -> Result<Option<Bytes>, BackendError> {
        let mut pipe = redis::pipe();
        pipe.cmd("CLIENT")
            .arg("CACHING")
            .arg("YES")
            .cmd("GET")
            .arg(key);
        let untracked = |detail: Option<&str>| detail.is_some_and(|d| d.contains("CLIENT CACHING"));
        // Anything but the opt-in's refusal returns here.
        match conn
            .route_pipeline(pipe, 0, 2, cluster::primary_route(key.as_bytes()))
            .await
        {
            Ok(replies) if matches!(replies.first(), Some(redis::Value::ServerError(e)) if untracked(e.details())) =>
                {}
            Ok(mut replies) => {
                let value = replies.pop().unwrap_or(redis::Value::Nil);
                return Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?);
            }
            Err(e) if untracked(e.detail()) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::debug!("a cluster node's connection is not tracking; L1 flushed");
        if let Some(push) = &self.push {
            push(redis::PushInfo {
                kind: redis::PushKind::Disconnection,
                data: Vec::new(),
            });
        }
        Ok(redis::cmd("GET").arg(key).query_async(conn).await?)
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut conn = self.connection().await?;
        let ms = super::millis(ttl).max(1);
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let ms = super::millis(ttl).max(1);
        let reply: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await?;
        Ok(reply.is_some())
    }

    /// Compare-and-set: stores `value` only over `held` (or, with `prefix`,
    /// over a value starting with it).
    pub(crate) async fn set_if_holds(
        &self,
        key: &str,
        held: &[u8],
        prefix: bool,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let ms = super::millis(ttl).max(1);
        let stored: i64 = scripts()
            .set_if_holds
            .key(key)
            .arg(held)
            .arg(value)
            .arg(ms)
            .arg(if prefix { "^" } else { "=" })
            .invoke_async(&mut conn)
            .await?;
        Ok(stored == 1)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let n: u64 = redis::cmd("UNLINK").arg(key).query_async(&mut conn).await?;
        Ok(n > 0)
    }

    /// Redis's `INFO` (its default sections), from the server or from
    /// every primary of a cluster, with each node's address.
    pub(crate) async fn server_info(&self) -> Result<Vec<crate::NodeInfo>, BackendError> {
        let node = |address: String, text: &str| crate::NodeInfo {
            address,
            info: crate::ServerInfo::parse(text),
        };
        match self.connection().await? {
            Conn::Cluster(mut cluster) => {
                let replies = cluster
                    .route_command(
                        redis::cmd("INFO"),
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                    )
                    .await?;
                let redis::Value::Map(replies) = replies else {
                    return Err(BackendError::Unsupported("a reply per node to INFO"));
                };
                let mut nodes = Vec::with_capacity(replies.len());
                for (address, reply) in replies {
                    let (Ok(address), Ok(text)) = (
                        redis::from_redis_value::<String>(address),
                        redis::from_redis_value::<String>(reply),
                    ) else {
                        return Err(BackendError::Unsupported("a text reply per node to INFO"));
                    };
                    nodes.push(node(address, &text));
                }
                nodes.sort_by(|a, b| a.address.cmp(&b.address));
                Ok(nodes)
            }
            mut conn => {
                let text: String = redis::cmd("INFO").query_async(&mut conn).await?;
                let address = self
                    .address
                    .rsplit_once('/')
                    .map_or(&*self.address, |(a, _)| a);
                Ok(vec![node(address.to_owned(), &text)])
            }
        }
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let n: u64 = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
        Ok(n > 0)
    }

    pub(crate) async fn clear_pattern(
        &self,
        pattern: &str,
        walk: &Walk<'_>,
    ) -> Result<u64, BackendError> {
        let mut conn = self.connection().await?;
        let Conn::Cluster(cluster) = &mut conn else {
            return clear_on(&mut conn, None, pattern, walk).await;
        };
        // Each primary holds its own slots' keys: every one is walked, in
        // turn. A slot that moves to another primary during the walk may
        // be missed (its keys were scanned on neither side).
        let slots: redis::Value = walk
            .step(cluster.route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
            ))
            .await?;
        let mut removed = 0;
        for (host, port) in cluster::primaries(&slots) {
            removed += clear_on(&mut conn, Some(cluster::node(&host, port)), pattern, walk).await?;
        }
        Ok(removed)
    }
}

/// `clear_pattern` on one server, or (`node`) on one primary of a cluster.
async fn clear_on(
    conn: &mut Conn,
    node: Option<RoutingInfo>,
    pattern: &str,
    walk: &Walk<'_>,
) -> Result<u64, BackendError> {
    // SCAN walks the keyspace a slice at a time and UNLINK frees values
    // off the main thread, so neither blocks Redis the way KEYS + DEL
    // would. SCAN may return a key twice; UNLINK counts it once.
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_BATCH);
        let (next, mut keys): (u64, Vec<Bytes>) = match (&node, &mut *conn) {
            (Some(node), Conn::Cluster(c)) => {
                let reply = walk.step(c.route_command(scan, node.clone())).await?;
                redis::from_redis_value(reply).map_err(redis::RedisError::from)?
            }
            (_, conn) => walk.step(scan.query_async(conn)).await?,
        };
        keys.retain(|key| walk.may_clear(key));
        for batch in keys.chunks(SCAN_BATCH) {
            removed += match (&node, &mut *conn) {
                // The keys of one primary's scan are in as many slots as
                // keys, and one command takes keys of one slot only: one
                // `UNLINK` each, pipelined to that primary (a key whose
                // slot moved meanwhile is refused, and counted as kept).
                (Some(RoutingInfo::SingleNode(route)), Conn::Cluster(c)) => {
                    let mut pipe = redis::pipe();
                    for key in batch {
                        pipe.cmd("UNLINK").arg(&key[..]);
                    }
                    let replies = walk
                        .step(c.route_pipeline(pipe, 0, batch.len(), route.clone()))
                        .await?;
                    replies
                        .iter()
                        .map(|r| match r {
                            redis::Value::Int(n) => u64::try_from(*n).unwrap_or(0),
                            _ => 0,
                        })
                        .sum()
                }
                (_, conn) => {
                    let mut unlink = redis::cmd("UNLINK");
                    for key in batch {
                        unlink.arg(&key[..]);
                    }
                    walk.step(unlink.query_async::<u64>(conn)).await?
                }
            };
            batch.iter().for_each(|key| (walk.removed)(key));
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// `CLIENT CACHING YES`, its reply ignored: the next command's keys are
/// tracked (the connections track in `OPTIN` mode, so only the reads whose
/// values may go into the L1 cost Redis a tracking entry and this process
/// an invalidation).
fn opt_in(pipe: &mut redis::Pipeline) -> &mut redis::Pipeline {
    pipe.cmd("CLIENT").arg("CACHING").arg("YES").ignore()
}

/// The member of a tag's sorted set that holds the tag's version (the rest
/// are entry keys, scored by their expiry time in ms). Its score is at least
/// 2^52, above every expiry, so pruning by score never removes it, and
/// below 2^53, so a double holds it exactly.
const VERSION_MEMBER: &str = "\0version";

/// Stores an entry and records it under its tags, atomically.
///
/// KEYS: the entry, then each tag's sorted set. ARGV: the value, the TTL in
/// ms, the condition (`0` none, `1` the entry is absent, `2` the entry holds
/// ARGV\[5\], `3` the entry starts with ARGV\[5\]), `1` to check versions,
/// the bytes for conditions `2` and `3` (else empty), then one expected
/// version per tag.
///
/// Each tag's set gets the key scored by its expiry, loses up to 64 expired
/// members (so a tag that keeps being written does not keep dead keys), and
/// lives at least as long as its longest-lived entry.
const SET_TAGGED: &str = r"
local n = #KEYS - 1
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] == '2' and redis.call('GET', KEYS[1]) ~= ARGV[5] then return 0 end
if ARGV[3] == '3' then
  local v = redis.call('GET', KEYS[1])
  if not v or string.sub(v, 1, #ARGV[5]) ~= ARGV[5] then return 0 end
end
if ARGV[4] == '1' then
  for i = 1, n do
    local v = redis.call('ZSCORE', KEYS[i + 1], '\0version') or '0'
    if tostring(v) ~= ARGV[5 + i] then return 0 end
  end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local z = KEYS[i + 1]
  redis.call('ZADD', z, now + ttl, KEYS[1])
  local dead = redis.call('ZRANGE', z, '-inf', now, 'BYSCORE', 'LIMIT', 0, 64)
  if #dead > 0 then redis.call('ZREM', z, unpack(dead)) end
  if redis.call('PTTL', z) < ttl then redis.call('PEXPIRE', z, ttl) end
end
return 1
";

/// Starts an invalidation: moves the tag's set aside (KEYS[2]) and gives
/// the tag a fresh set holding only its new version (ARGV[1]), kept for
/// ARGV[2] ms. From here on, writes that read the old version are refused,
/// and the entries to remove are exactly those in the moved set.
const BUMP_TAG: &str = r"
local moved = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  moved = 1
end
redis.call('ZADD', KEYS[1], ARGV[1], '\0version')
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return moved
";

/// Compare-and-set: stores ARGV[2] at KEYS[1] for ARGV[3] ms if it holds
/// exactly ARGV[1] (ARGV[4] `=`), or a value starting with it (`^`).
const SET_IF_HOLDS: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[4] == '^' then
  if not v or string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
elseif v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Compare-and-expire: KEYS[1] lives ARGV[2] ms from now if it holds
/// exactly ARGV[1] (ARGV[3] `=`), or a value starting with it (`^`).
const EXPIRE_IF_HOLDS: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[3] == '^' then
  if not v or string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
elseif v ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
";

/// Compare-and-delete: removes KEYS[1] if it holds exactly ARGV[1] (ARGV[2]
/// `=`), or a value starting with it (`^`).
const DELETE_IF_HOLDS: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[2] == '^' then
  if not v or string.sub(v, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
elseif v ~= ARGV[1] then return 0 end
return redis.call('UNLINK', KEYS[1])
";

/// A cluster's tagged write, step 1 (see `set_tagged_cluster`): records
/// ARGV[1] in the tag's set KEYS[1], scored by its expiry (ARGV[2] ms from
/// now), unless ARGV[3] is a version the tag no longer has; returns
/// whether it did, and the tag's version (nil: never invalidated).
/// Prunes and extends the set as `SET_TAGGED` does.
const ENLIST: &str = r"
local v = redis.call('ZSCORE', KEYS[1], '\0version')
if ARGV[3] ~= '' and tostring(v or '0') ~= ARGV[3] then return {0, v} end
local ttl = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local dead = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, 64)
if #dead > 0 then redis.call('ZREM', KEYS[1], unpack(dead)) end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, v}
";

/// The scripts, each hashed once (`EVALSHA`, loaded on first use).
struct Scripts {
    set_tagged: redis::Script,
    bump_tag: redis::Script,
    set_if_holds: redis::Script,
    expire_if_holds: redis::Script,
    delete_if_holds: redis::Script,
    enlist: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        set_tagged: redis::Script::new(SET_TAGGED),
        bump_tag: redis::Script::new(BUMP_TAG),
        set_if_holds: redis::Script::new(SET_IF_HOLDS),
        expire_if_holds: redis::Script::new(EXPIRE_IF_HOLDS),
        delete_if_holds: redis::Script::new(DELETE_IF_HOLDS),
        enlist: redis::Script::new(ENLIST),
    })
}

/// A version as Redis prints a score: an integer below 2^53 prints exactly.
fn parse_version(score: Option<String>) -> u64 {
    score
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |f| f as u64)
}

impl RedisBackend {
    pub(crate) async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        track: bool,
    ) -> Result<(Option<Bytes>, Vec<u64>), BackendError> {
        let mut conn = self.connection().await?;
        if let Conn::Cluster(_) = conn {
            // Each tag's set lives in its own slot: the entry and the
            // versions are read at once, side by side, all before the
            // body runs (which is what the versions are checked against).
            let value = async {
                let mut entry = conn.clone();
                if track {
                    self.get_tracked_on(&mut entry, key).await
                } else {
                    Ok(redis::cmd("GET").arg(key).query_async(&mut entry).await?)
                }
            };
            let (value, versions) =
                futures_util::future::try_join(value, versions(&conn, tags)).await?;
            return Ok((value, versions));
        }
        // Only the entry is tracked, never the tags' sets: every tagged
        // write changes those, and would be reported to every reader.
        let lookup = |pipe: &mut redis::Pipeline| {
            pipe.cmd("GET").arg(key);
            for tag in tags {
                pipe.cmd("ZSCORE").arg(tag).arg(VERSION_MEMBER);
            }
        };
        let mut plain = redis::pipe();
        lookup(&mut plain);
        // One reply for the GET, then one per tag.
        let replies: Vec<redis::Value> = if track {
            let mut pipe = redis::pipe();
            lookup(opt_in(&mut pipe));
            self.tracked(&mut conn, &pipe, &plain).await?
        } else {
            plain.query_async(&mut conn).await?
        };
        let mut replies = replies.into_iter();
        let value: Option<Bytes> = match replies.next() {
            Some(v) => redis::from_redis_value(v).map_err(redis::RedisError::from)?,
            None => None,
        };
        let versions: Vec<Option<String>> = replies
            .map(redis::from_redis_value)
            .collect::<Result<_, _>>()
            .map_err(redis::RedisError::from)?;
        Ok((value, versions.into_iter().map(parse_version).collect()))
    }

    pub(crate) async fn set_tagged(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        tags: &[String],
        expected: Option<&[u64]>,
        condition: Condition<'_>,
    ) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        if let Conn::Cluster(_) = conn {
            return set_tagged_cluster(&conn, key, value, ttl, tags, expected, condition).await;
        }
        let ms = super::millis(ttl).max(1);
        let mut call = scripts().set_tagged.key(key);
        for tag in tags {
            call.key(tag);
        }
        let (mode, held): (u8, &[u8]) = match condition {
            Condition::Always => (0, b""),
            Condition::Absent => (1, b""),
            Condition::Holds(bytes) => (2, bytes),
            Condition::StartsWith(bytes) => (3, bytes),
        };
        call.arg(value)
            .arg(ms)
            .arg(mode)
            .arg(u8::from(expected.is_some()))
            .arg(held);
        for v in expected.unwrap_or_default() {
            call.arg(v.to_string());
        }
        let stored: i64 = call.invoke_async(&mut conn).await?;
        Ok(stored == 1)
    }

    pub(crate) async fn invalidate_tags(
        &self,
        tags: &[String],
        walk: &Walk<'_>,
    ) -> Result<u64, BackendError> {
        let mut conn = self.connection().await?;
        let window = super::millis(super::TAG_VERSION_WINDOW);
        let mut removed = 0;
        for tag in tags {
            let version = super::new_version();
            let suffix = format!("\0invalidating:{version:x}");
            // On a cluster, the moved set must share the tag's slot.
            let aside = match conn {
                Conn::Cluster(_) => cluster::sibling(tag, &suffix),
                _ => format!("{tag}{suffix}"),
            };
            let moved: i64 = walk
                .step(
                    scripts()
                        .bump_tag
                        .key(tag)
                        .key(&aside)
                        .arg(version)
                        .arg(window)
                        .invoke_async(&mut conn),
                )
                .await?;
            if moved == 0 {
                continue;
            }
            // Bounded steps: read the moved set (nothing else writes it) by
            // rank, a batch of members at a time and without their scores,
            // unlinking each batch's entries (on a cluster, the client
            // splits each batch by slot); then unlink the set itself,
            // which Redis frees off its main thread. A crash midway leaves
            // the moved set to expire with its entries.
            let mut start = 0;
            loop {
                let members: Vec<Bytes> = walk
                    .step(
                        redis::cmd("ZRANGE")
                            .arg(&aside)
                            .arg(start)
                            .arg(start + TAG_BATCH - 1)
                            .query_async(&mut conn),
                    )
                    .await?;
                let mut unlink = redis::cmd("UNLINK");
                let entries = || {
                    members
                        .iter()
                        .filter(|m| m[..] != *VERSION_MEMBER.as_bytes())
                };
                entries().for_each(|member| {
                    unlink.arg(&member[..]);
                });
                if entries().next().is_some() {
                    removed += walk.step(unlink.query_async::<u64>(&mut conn)).await?;
                    entries().for_each(|member| (walk.removed)(member));
                }
                if members.len() < TAG_BATCH {
                    break;
                }
                start += TAG_BATCH;
            }
            walk.step(
                redis::cmd("UNLINK")
                    .arg(&aside)
                    .query_async::<u64>(&mut conn),
            )
            .await?;
        }
        Ok(removed)
    }
}

/// Each tag's version, read side by side (on a cluster, each from its slot).
async fn versions(conn: &Conn, tags: &[String]) -> Result<Vec<u64>, BackendError> {
    let reads = tags.iter().map(|tag| {
        let mut conn = conn.clone();
        async move {
            let score: Option<String> = redis::cmd("ZSCORE")
                .arg(tag)
                .arg(VERSION_MEMBER)
                .query_async(&mut conn)
                .await?;
            Ok::<_, BackendError>(parse_version(score))
        }
    });
    futures_util::future::try_join_all(reads).await
}

/// How long a tagged write on a cluster keeps its entry before the write
/// is confirmed: a writer that dies between its steps leaves, at worst, an
/// entry that lives this long.
const PROVISIONAL: Duration = Duration::from_secs(5);

/// The bytes a cluster's tagged write later recognises its value by: the
/// envelope's header (it names the write) and the start of the payload.
fn mark(value: &[u8]) -> &[u8] {
    &value[..value.len().min(256)]
}

/// A tagged write on a cluster, where the entry and each tag's set live in
/// different slots and no one script can touch them all. Each step
/// touches one slot:
///
/// 1. each tag's set records the entry, after checking the tag's version
///    against `expected` (refused: nothing is written);
/// 2. the entry is written (if `condition` holds), for [`PROVISIONAL`] at
///    first;
/// 3. each tag's version is read again: if one moved, an invalidation ran
///    between 1 and now, and may have unlinked the entry before 2 wrote
///    it; the write takes itself back (removes its own value, if still
///    there) and reports nothing stored;
/// 4. the entry gets its full TTL, if it still holds this write's value.
///
/// An invalidation after 3 finds the entry recorded (1) and removes it, so
/// a value computed before an invalidation never outlives it; a writer
/// killed between 2 and 4 leaves its entry for [`PROVISIONAL`] at most.
async fn set_tagged_cluster(
    conn: &Conn,
    key: &str,
    value: &[u8],
    ttl: Duration,
    tags: &[String],
    expected: Option<&[u64]>,
    condition: Condition<'_>,
) -> Result<bool, BackendError> {
    let ms = super::millis(ttl).max(1);
    // 1. Enlist under every tag, checking versions where asked.
    let enlist = tags.iter().enumerate().map(|(i, tag)| {
        let mut conn = conn.clone();
        let want = expected.and_then(|e| e.get(i)).map(u64::to_string);
        async move {
            let (ok, version): (i64, Option<String>) = scripts()
                .enlist
                .key(tag)
                .arg(key)
                .arg(ms)
                .arg(want.as_deref().unwrap_or(""))
                .invoke_async(&mut conn)
                .await?;
            Ok::<_, BackendError>((ok == 1, parse_version(version)))
        }
    });
    let enlisted = futures_util::future::try_join_all(enlist).await?;
    if enlisted.iter().any(|(ok, _)| !ok) {
        return Ok(false);
    }
    // 2. The entry, provisionally.
    let first = super::millis(PROVISIONAL).min(ms);
    let mut entry = conn.clone();
    let stored = match condition {
        Condition::Always | Condition::Absent => {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(value);
            if condition == Condition::Absent {
                set.arg("NX");
            }
            let reply: Option<String> = set.arg("PX").arg(first).query_async(&mut entry).await?;
            reply.is_some()
        }
        Condition::Holds(held) | Condition::StartsWith(held) => {
            let mode = if matches!(condition, Condition::StartsWith(_)) {
                "^"
            } else {
                "="
            };
            let stored: i64 = scripts()
                .set_if_holds
                .key(key)
                .arg(held)
                .arg(value)
                .arg(first)
                .arg(mode)
                .invoke_async(&mut entry)
                .await?;
            stored == 1
        }
    };
    if !stored {
        return Ok(false);
    }
    // 3. Did an invalidation run meanwhile?
    let now = versions(conn, tags).await?;
    if now
        .iter()
        .zip(&enlisted)
        .any(|(now, (_, then))| now != then)
    {
        let _: i64 = scripts()
            .delete_if_holds
            .key(key)
            .arg(mark(value))
            .arg("^")
            .invoke_async(&mut entry)
            .await?;
        return Ok(false);
    }
    // 4. Confirmed: the full TTL (unless a newer write replaced it).
    if first < ms {
        let _: i64 = scripts()
            .expire_if_holds
            .key(key)
            .arg(mark(value))
            .arg(ms)
            .arg("^")
            .invoke_async(&mut entry)
            .await?;
    }
    Ok(true)
}

impl Tier for RedisBackend {
    fn kind(&self) -> &'static str {
        if self.is_cluster() {
            "redis-cluster"
        } else {
            "redis"
        }
    }

    fn caps(&self) -> Caps {
        Caps {
            tags: true,
            atomic_if_absent: true,
            invalidations: self.push.is_some(),
            local: false,
            streams: true,
            compare_and_set: true,
        }
    }

    // Plain `fn`s where the trait method only forwards: no state machine
    // around the inherent one's.
    fn get(
        &self,
        key: &str,
        track: bool,
    ) -> impl Future<Output = Result<Option<Bytes>, BackendError>> + Send {
        RedisBackend::get(self, key, track)
    }

    async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        track: bool,
    ) -> Result<TaggedLookup, BackendError> {
        RedisBackend::get_tagged(self, key, tags, track).await
    }

    async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        _typed: Option<TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        match how.kind() {
            WriteKind::Tagged => {
                self.set_tagged(key, &bytes, ttl, how.tags, how.expected, how.condition)
                    .await
            }
            WriteKind::IfAbsent => self.set_if_absent(key, &bytes, ttl).await,
            WriteKind::IfHolds => match how.condition {
                Condition::Holds(held) => self.set_if_holds(key, held, false, &bytes, ttl).await,
                Condition::StartsWith(start) => {
                    self.set_if_holds(key, start, true, &bytes, ttl).await
                }
                _ => unreachable!("IfHolds is a Holds or StartsWith condition"),
            },
            WriteKind::Plain => self.set(key, &bytes, ttl).await.map(|()| true),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        RedisBackend::delete(self, key).await
    }

    async fn expire_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let ms = super::millis(ttl).max(1);
        let done: i64 = scripts()
            .expire_if_holds
            .key(key)
            .arg(expected)
            .arg(ms)
            .arg("=")
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let done: i64 = scripts()
            .delete_if_holds
            .key(key)
            .arg(expected)
            .arg("=")
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        RedisBackend::exists(self, key).await
    }

    async fn clear_pattern(&self, pattern: &str, walk: &Walk<'_>) -> Result<u64, BackendError> {
        RedisBackend::clear_pattern(self, pattern, walk).await
    }

    async fn invalidate_tags(&self, tags: &[String], walk: &Walk<'_>) -> Result<u64, BackendError> {
        RedisBackend::invalidate_tags(self, tags, walk).await
    }

    async fn track(&self) -> Result<(), BackendError> {
        RedisBackend::track(self).await
    }

    async fn ping(&self, deadline: tokio::time::Instant) -> Result<(), BackendError> {
        RedisBackend::ping(self, deadline).await
    }

    async fn server_info(&self) -> Result<Vec<crate::NodeInfo>, BackendError> {
        RedisBackend::server_info(self).await
    }

    fn stream_client(&self) -> Option<OwnClient> {
        Some(match &self.clients {
            Clients::Single { own, .. } => OwnClient::Single(own.clone()),
            Clients::Cluster { own, .. } => OwnClient::Cluster(own.clone()),
        })
    }

    async fn stream_append(
        &self,
        full: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        stream: &str,
    ) -> Result<Version, BackendError> {
        crate::write_behind::stream::append(self, full, key, value, ttl, stream).await
    }

    async fn stream_none_through(
        &self,
        stream: &str,
        target: Version,
    ) -> Result<bool, BackendError> {
        crate::write_behind::stream::none_through(self, stream, target).await
    }

    async fn stream_unblock(&self, stream: &str, id: i64) -> Result<(), BackendError> {
        crate::write_behind::stream::unblock(self, stream, id).await
    }
}
