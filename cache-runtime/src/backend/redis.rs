//! The Redis backend: a few multiplexed connections, used round-robin, each
//! connecting lazily and reconnecting by itself.

use crate::BackendError;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Keys per `SCAN` step and per `UNLINK` batch in `clear_pattern`: large
/// enough to be quick, small enough that no single command blocks Redis for
/// more than about a millisecond.
const SCAN_BATCH: usize = 1000;

pub(crate) struct RedisBackend {
    client: redis::Client,
    config: ConnectionManagerConfig,
    connections: Box<[OnceCell<ConnectionManager>]>,
    next: AtomicUsize,
    /// `host:port/db`, with no credentials, for `Debug`.
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
    pub(crate) info: redis::ConnectionInfo,
    pub(crate) connections: usize,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl RedisBackend {
    /// Never touches the network: connections open on first use.
    pub(crate) fn new(settings: RedisSettings) -> Result<Self, redis::RedisError> {
        let address = format!(
            "{}/{}",
            settings.info.addr(),
            settings.info.redis_settings().db()
        );
        let client = redis::Client::open(settings.info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            // No retry loop inside a command: a refused connection fails at once
            // (the call runs its body), and the next command tries again.
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let connections = (0..settings.connections.max(1))
            .map(|_| OnceCell::new())
            .collect();
        Ok(RedisBackend {
            client,
            config,
            connections,
            next: AtomicUsize::new(0),
            address,
        })
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The next connection, round-robin. Creating the manager does no I/O;
    /// the manager connects when the first command needs it, and reconnects
    /// in the background after the connection drops.
    async fn connection(&self) -> Result<ConnectionManager, BackendError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let cell = &self.connections[slot];
        if let Some(conn) = cell.get() {
            return Ok(conn.clone());
        }
        let conn = cell
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
            })
            .await?;
        Ok(conn.clone())
    }
}

impl RedisBackend {
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let mut conn = self.connection().await?;
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut conn = self.connection().await?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let n: u64 = redis::cmd("UNLINK").arg(key).query_async(&mut conn).await?;
        Ok(n > 0)
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let n: u64 = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
        Ok(n > 0)
    }

    pub(crate) async fn clear_pattern(&self, pattern: &str) -> Result<u64, BackendError> {
        // SCAN walks the keyspace a slice at a time and UNLINK frees values
        // off the main thread, so neither blocks Redis the way KEYS + DEL
        // would. SCAN may return a key twice; UNLINK counts it once.
        let mut conn = self.connection().await?;
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<Bytes>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut conn)
                .await?;
            for batch in keys.chunks(SCAN_BATCH) {
                let mut unlink = redis::cmd("UNLINK");
                for key in batch {
                    unlink.arg(&key[..]);
                }
                removed += unlink.query_async::<u64>(&mut conn).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}
