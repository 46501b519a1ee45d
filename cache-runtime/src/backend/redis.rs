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

/// Members per `ZRANGE` read and keys per `UNLINK` when a tag is invalidated.
const TAG_BATCH: usize = 1000;

pub(crate) struct RedisBackend {
    client: redis::Client,
    config: ConnectionManagerConfig,
    connections: Box<[OnceCell<ConnectionManager>]>,
    next: AtomicUsize,
    /// Bounds each command of the multi-command walks.
    command_timeout: Duration,
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
            // The runtime bounds every command with its own deadline (and
            // the walks below bound each of theirs): a second timer per
            // command in the client would only add cost to every hit.
            .set_response_timeout(None)
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
            command_timeout: settings.command_timeout,
            address,
        })
    }

    /// The client, for a dedicated connection (blocking stream reads must
    /// not stall the shared multiplexed ones).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// One command of a walk, under the command deadline.
    async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.command_timeout, command).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(BackendError::Timeout(self.command_timeout)),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The next connection, round-robin. Creating the manager does no I/O;
    /// the manager connects when the first command needs it, and reconnects
    /// in the background after the connection drops.
    pub(crate) async fn connection(&self) -> Result<ConnectionManager, BackendError> {
        // With one connection (the default), no shared counter to bump.
        let cell = match &*self.connections {
            [only] => only,
            all => &all[self.next.fetch_add(1, Ordering::Relaxed) % all.len()],
        };
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
            let (next, keys): (u64, Vec<Bytes>) = self
                .bounded(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            for batch in keys.chunks(SCAN_BATCH) {
                let mut unlink = redis::cmd("UNLINK");
                for key in batch {
                    unlink.arg(&key[..]);
                }
                removed += self.bounded(unlink.query_async::<u64>(&mut conn)).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// The member of a tag's sorted set that holds the tag's version (the rest
/// are entry keys, scored by their expiry time in ms). Its score is at least
/// 2^52, above every expiry, so pruning by score never removes it, and
/// below 2^53, so a double holds it exactly.
const VERSION_MEMBER: &str = "\0version";

/// Stores an entry and records it under its tags, atomically.
///
/// KEYS: the entry, then each tag's sorted set. ARGV: the value, the TTL in
/// ms, `1` to store only if the entry is absent, `1` to check versions
/// (then one expected version per tag).
///
/// Each tag's set gets the key scored by its expiry, loses up to 64 expired
/// members (so a tag that keeps being written does not keep dead keys), and
/// lives at least as long as its longest-lived entry.
const SET_TAGGED: &str = r"
local n = #KEYS - 1
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[4] == '1' then
  for i = 1, n do
    local v = redis.call('ZSCORE', KEYS[i + 1], '\0version') or '0'
    if tostring(v) ~= ARGV[4 + i] then return 0 end
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

fn scripts() -> &'static (redis::Script, redis::Script) {
    static SCRIPTS: std::sync::OnceLock<(redis::Script, redis::Script)> =
        std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| (redis::Script::new(SET_TAGGED), redis::Script::new(BUMP_TAG)))
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
    ) -> Result<(Option<Bytes>, Vec<u64>), BackendError> {
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key);
        for tag in tags {
            pipe.cmd("ZSCORE").arg(tag).arg(VERSION_MEMBER);
        }
        // One reply for the GET, then one per tag.
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
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
        if_absent: bool,
    ) -> Result<bool, BackendError> {
        let mut conn = self.connection().await?;
        let ms = super::millis(ttl).max(1);
        let mut call = scripts().0.key(key);
        for tag in tags {
            call.key(tag);
        }
        call.arg(value).arg(ms).arg(u8::from(if_absent));
        match expected {
            Some(versions) => {
                call.arg(1);
                for v in versions {
                    call.arg(v.to_string());
                }
            }
            None => {
                call.arg(0);
            }
        }
        let stored: i64 = call.invoke_async(&mut conn).await?;
        Ok(stored == 1)
    }

    pub(crate) async fn invalidate_tags(&self, tags: &[String]) -> Result<u64, BackendError> {
        let mut conn = self.connection().await?;
        let window = super::millis(super::TAG_VERSION_WINDOW);
        let mut removed = 0;
        for tag in tags {
            let version = super::new_version();
            let aside = format!("{tag}\0invalidating:{version:x}");
            let moved: i64 = self
                .bounded(
                    scripts()
                        .1
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
            // unlinking each batch's entries; then unlink the set itself,
            // which Redis frees off its main thread. A crash midway leaves
            // the moved set to expire with its entries.
            let mut start = 0;
            loop {
                let members: Vec<Bytes> = self
                    .bounded(
                        redis::cmd("ZRANGE")
                            .arg(&aside)
                            .arg(start)
                            .arg(start + TAG_BATCH - 1)
                            .query_async(&mut conn),
                    )
                    .await?;
                let mut unlink = redis::cmd("UNLINK");
                let mut any = false;
                for member in &members {
                    if member[..] != *VERSION_MEMBER.as_bytes() {
                        unlink.arg(&member[..]);
                        any = true;
                    }
                }
                if any {
                    removed += self.bounded(unlink.query_async::<u64>(&mut conn)).await?;
                }
                if members.len() < TAG_BATCH {
                    break;
                }
                start += TAG_BATCH;
            }
            self.bounded(
                redis::cmd("UNLINK")
                    .arg(&aside)
                    .query_async::<u64>(&mut conn),
            )
            .await?;
        }
        Ok(removed)
    }
}
