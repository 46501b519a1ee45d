//! The Redis log: one stream per write-behind, read by a consumer group.
//!
//! Entry fields: `k`, the key relative to the prefix; `v`, the stored value
//! (envelope and codec bytes, exactly what `SET` wrote).

use super::{Body, Config, DeadLetter, Entry, Version, GROUP};
use crate::backend::cluster;
use crate::backend::millis;
use crate::backend::redis::{Conn, RedisBackend};
use crate::backend::OwnClient;
use crate::BackendError;
use bytes::Bytes;
use redis::{AsyncConnectionConfig, Value};
use std::time::Duration;

/// Stores the value and appends the change in one `MULTI`/`EXEC`, on the
/// cache's shared connection. On a cluster, where the entry and the stream
/// live in different slots, the change is appended first and the value
/// stored after: a writer killed between the two has logged its change
/// (the database gets it; the cache misses and reads it back), never the
/// other way round.
pub(crate) async fn append(
    redis: &RedisBackend,
    full: &str,
    key: &str,
    value: &[u8],
    ttl: Duration,
    stream: &str,
) -> Result<Version, BackendError> {
    let mut conn = redis.connection().await?;
    let ms = millis(ttl).max(1);
    let mut set = redis::cmd("SET");
    set.arg(full).arg(value).arg("PX").arg(ms);
    let mut xadd = redis::cmd("XADD");
    xadd.arg(stream)
        .arg("*")
        .arg("k")
        .arg(key)
        .arg("v")
        .arg(value);
    if let Conn::Cluster(_) = conn {
        let id: String = xadd.query_async(&mut conn).await?;
        set.query_async::<()>(&mut conn).await?;
        return parse_id(&id);
    }
    let (id,): (String,) = redis::pipe()
        .atomic()
        .add_command(set)
        .ignore()
        .add_command(xadd)
        .query_async(&mut conn)
        .await?;
    parse_id(&id)
}

/// Whether no entry up to `target` is left in the stream (delivered ones
/// are deleted).
pub(crate) async fn none_through(
    redis: &RedisBackend,
    stream: &str,
    target: Version,
) -> Result<bool, BackendError> {
    let mut conn = redis.connection().await?;
    let left: Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg(target.to_string())
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await?;
    Ok(match left {
        Value::Array(a) => a.is_empty(),
        _ => true,
    })
}

/// Ends a blocking read of the client `id` early (it returns nothing), on
/// the cache's shared connection.
pub(crate) async fn unblock(
    redis: &RedisBackend,
    stream: &str,
    id: i64,
) -> Result<(), BackendError> {
    let mut conn = redis.connection().await?;
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("UNBLOCK").arg(id);
    match &mut conn {
        // The blocked read is on the primary that serves the stream.
        Conn::Cluster(c) => {
            c.route_command(cmd, cluster::primary_of(stream.as_bytes()))
                .await?;
        }
        conn => cmd.query_async::<i64>(conn).await.map(drop)?,
    }
    Ok(())
}

/// A flusher's reading side, on a connection of its own: its blocking reads
/// would otherwise stall every command multiplexed behind them.
pub(crate) struct StreamSource {
    client: OwnClient,
    conn: Option<Conn>,
    /// The connection's `CLIENT ID`, for `CLIENT UNBLOCK`; `None` where
    /// Redis refuses `CLIENT ID` (some managed services): reads then block
    /// only briefly instead.
    client_id: Option<i64>,
    stream: String,
    consumer: String,
    conn_config: AsyncConnectionConfig,
    /// The same bounds, for a cluster connection.
    slack: Duration,
    read_timeout: Duration,
}

impl StreamSource {
    pub(crate) fn new(
        client: OwnClient,
        stream: String,
        config: &Config,
        command_timeout: Duration,
    ) -> Self {
        // Long enough for a blocking read (at most one interval) plus the
        // round trip; saturating: a huge interval or command timeout means
        // no practical limit (the client's timer saturates the same way).
        let slack = command_timeout.max(Duration::from_secs(5));
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(slack))
            .set_response_timeout(Some(config.interval.saturating_add(slack)));
        StreamSource {
            client,
            conn: None,
            client_id: None,
            stream,
            consumer: config.consumer.clone(),
            conn_config,
            slack,
            read_timeout: config.interval.saturating_add(slack),
        }
    }

    /// The connection, opened (and the group created) on first use and
    /// after [`reset`](StreamSource::reset).
    async fn conn(&mut self) -> Result<&mut Conn, BackendError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.open().await?,
        };
        Ok(self.conn.insert(conn))
    }

    /// A new connection, with the group created and the client id known.
    async fn open(&mut self) -> Result<Conn, BackendError> {
        let mut conn = match &self.client {
            OwnClient::Single(client) => Conn::Plain(
                client
                    .get_multiplexed_async_connection_with_config(&self.conn_config)
                    .await?,
            ),
            OwnClient::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(self.slack)
                    .set_response_timeout(self.read_timeout);
                Conn::Cluster(client.get_async_connection_with_config(config).await?)
            }
        };
        // From `0`: entries appended before the group existed belong to it.
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        // On a cluster, the id of this connection's link to the primary
        // that serves the stream, where its blocking reads wait.
        let id: redis::RedisResult<i64> = match &mut conn {
            Conn::Cluster(c) => c
                .route_command(
                    redis::cmd("CLIENT").arg("ID").clone(),
                    cluster::primary_of(self.stream.as_bytes()),
                )
                .await
                .and_then(|v| redis::from_redis_value(v).map_err(Into::into)),
            conn => redis::cmd("CLIENT").arg("ID").query_async(conn).await,
        };
        self.client_id = match id {
            Ok(id) => Some(id),
            // Refused (a managed Redis without CLIENT): not fatal.
            Err(e) if e.code().is_some() => {
                tracing::warn!(stream = %self.stream, error = %e, "write-behind: Redis refuses CLIENT ID; falling back to short blocking reads");
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(conn)
    }

    /// Connects if needed; returns the connection's client id (`None` if
    /// Redis refuses `CLIENT ID`).
    pub(crate) async fn connect(&mut self) -> Result<Option<i64>, BackendError> {
        self.conn().await?;
        Ok(self.client_id)
    }

    /// Drops the connection after an error: the next call reconnects and
    /// recreates the group if the stream was removed meanwhile.
    pub(crate) fn reset(&mut self) {
        self.conn = None;
    }

    /// Up to `count` entries this consumer read before but never acknowledged.
    pub(crate) async fn own_pending(&mut self, count: usize) -> Result<Vec<Entry>, BackendError> {
        self.read_group(count, None, "0").await
    }

    /// Up to `count` new entries, waiting up to `block` for the first one.
    pub(crate) async fn read_new(
        &mut self,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>, BackendError> {
        self.read_group(count, block, ">").await
    }

    async fn read_group(
        &mut self,
        count: usize,
        block: Option<Duration>,
        from: &str,
    ) -> Result<Vec<Entry>, BackendError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&self.consumer);
        cmd.arg("COUNT").arg(count);
        if let Some(block) = block {
            // `BLOCK 0` would wait forever.
            let ms = millis(block).max(1);
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(from);
        let reply: Value = cmd.query_async(self.conn().await?).await?;
        read_reply(reply)
    }

    /// Takes over up to `count` entries other consumers left unacknowledged
    /// for `idle`, scanning from `cursor`; returns the next cursor
    /// (`None` when the scan is complete) and the entries.
    pub(crate) async fn claim(
        &mut self,
        cursor: &str,
        count: usize,
        idle: Duration,
    ) -> Result<(Option<String>, Vec<Entry>), BackendError> {
        let idle = idle_arg(idle);
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(idle)
            .arg(cursor)
            .arg("COUNT")
            .arg(count);
        let reply: Value = cmd.query_async(self.conn().await?).await?;
        // [next cursor, entries] (Redis 6.2), plus [deleted ids] (Redis 7).
        let Value::Array(mut parts) = reply else {
            return Err(malformed("XAUTOCLAIM", &reply));
        };
        if parts.len() < 2 {
            return Err(malformed("XAUTOCLAIM", &Value::Array(parts)));
        }
        let entries = entries(parts.swap_remove(1))?;
        let next = text(&parts[0]).ok_or_else(|| malformed("XAUTOCLAIM cursor", &parts[0]))?;
        Ok(((next != "0-0").then_some(next), entries))
    }

    /// The dead-letter stream's key.
    pub(crate) fn dead_letter_key(&self) -> String {
        match self.client {
            // Acknowledged with its entries' removal in one transaction:
            // in the stream's slot.
            OwnClient::Cluster(_) => cluster::sibling(&self.stream, ":dead"),
            OwnClient::Single(_) => dead_letter_key(&self.stream),
        }
    }

    /// The stream's key.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    /// Copies `dead` to the dead-letter stream, acknowledges the entries and
    /// deletes them from the stream, in one transaction.
    pub(crate) async fn ack(
        &mut self,
        ids: &[Version],
        dead: &[DeadLetter],
    ) -> Result<(), BackendError> {
        if ids.is_empty() {
            return Ok(());
        }
        let stream = self.stream.clone();
        let dead_key = self.dead_letter_key();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for d in dead {
            let xadd = pipe.cmd("XADD").arg(&dead_key).arg("*");
            for (field, value) in &d.fields {
                xadd.arg(&field[..]).arg(&value[..]);
            }
            xadd.arg("id")
                .arg(d.version.to_string())
                .arg("error")
                .arg(&d.reason)
                .ignore();
        }
        let xack = pipe.cmd("XACK").arg(&stream).arg(GROUP);
        for id in ids {
            xack.arg(id.to_string());
        }
        xack.ignore();
        let xdel = pipe.cmd("XDEL").arg(&stream);
        for id in ids {
            xdel.arg(id.to_string());
        }
        xdel.ignore();
        pipe.query_async::<()>(self.conn().await?).await?;
        Ok(())
    }

    /// Removes the consumers other than this one that hold nothing
    /// unacknowledged and have been idle for longer than `min_idle` (those
    /// of processes that ended without a clean shutdown); returns how many.
    ///
    /// The pending check and the removal run as one script: a consumer that
    /// reads an entry between them is not removed with it.
    pub(crate) async fn remove_idle_consumers(
        &mut self,
        min_idle: Duration,
    ) -> Result<usize, BackendError> {
        let stream = self.stream.clone();
        let me = self.consumer.clone();
        let conn = self.conn().await?;
        let reply: Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&stream)
            .arg(GROUP)
            .query_async(conn)
            .await?;
        let min_idle = millis(min_idle);
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| redis::Script::new(DEL_CONSUMER_IF_IDLE));
        let mut removed = 0;
        for c in consumers(reply)? {
            if c.name == me || c.pending > 0 || c.idle_ms <= min_idle {
                continue;
            }
            let gone: i64 = script
                .key(&stream)
                .arg(GROUP)
                .arg(&c.name)
                .invoke_async(conn)
                .await?;
            removed += usize::from(gone == 1);
        }
        Ok(removed)
    }

    /// Removes this consumer from the group if it holds nothing
    /// unacknowledged (after a clean drain), so that restarts under fresh
    /// names do not pile up consumers.
    pub(crate) async fn leave_if_idle(&mut self) -> Result<(), BackendError> {
        let stream = self.stream.clone();
        let consumer = self.consumer.clone();
        let conn = self.conn().await?;
        let pending: Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&consumer)
            .query_async(conn)
            .await?;
        if matches!(&pending, Value::Array(a) if a.is_empty()) {
            redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&stream)
                .arg(GROUP)
                .arg(&consumer)
                .query_async::<()>(conn)
                .await?;
        }
        Ok(())
    }
}

/// Removes the consumer `ARGV[2]` of the group `ARGV[1]` of the stream
/// `KEYS[1]` if it has nothing pending; 1 if it did.
const DEL_CONSUMER_IF_IDLE: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// A consumer as `XINFO CONSUMERS` describes it.
#[derive(Debug, PartialEq)]
struct ConsumerInfo {
    name: String,
    pending: i64,
    idle_ms: u64,
}

/// An `XINFO CONSUMERS` reply: a list of flat `[field, value, ...]` arrays
/// (RESP2) or maps (RESP3).
fn consumers(reply: Value) -> Result<Vec<ConsumerInfo>, BackendError> {
    let Value::Array(list) = reply else {
        return Err(malformed("XINFO CONSUMERS", &reply));
    };
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        let pairs = field_pairs(c).map_err(|c| malformed("XINFO CONSUMERS entry", &c))?;
        let (mut name, mut pending, mut idle_ms) = (None, None, None);
        for (field, value) in pairs {
            match (text(&field).as_deref(), value) {
                (Some("name"), v) => name = text(&v),
                (Some("pending"), Value::Int(n)) => pending = Some(n),
                (Some("idle"), Value::Int(n)) => idle_ms = u64::try_from(n).ok(),
                _ => {}
            }
        }
        match (name, pending, idle_ms) {
            (Some(name), Some(pending), Some(idle_ms)) => out.push(ConsumerInfo {
                name,
                pending,
                idle_ms,
            }),
            _ => {
                return Err(BackendError::Other(
                    "XINFO CONSUMERS entry without name, pending or idle".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// A record's fields: a flat `[field, value, ...]` array (RESP2) or a map
/// (RESP3); anything else is handed back.
fn field_pairs(value: Value) -> Result<Vec<(Value, Value)>, Value> {
    match value {
        Value::Map(pairs) => Ok(pairs),
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            let mut pairs = Vec::with_capacity(it.len() / 2);
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                pairs.push((f, v));
            }
            Ok(pairs)
        }
        other => Err(other),
    }
}

/// Whether a field's name is `name`.
fn is_field(field: &Value, name: &str) -> bool {
    match field {
        Value::BulkString(b) => b == name.as_bytes(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => s == name,
        _ => false,
    }
}

fn malformed(what: &str, value: &Value) -> BackendError {
    BackendError::Other(format!("unexpected {what} reply from Redis: {value:?}").into())
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn parse_id(id: &str) -> Result<Version, BackendError> {
    id.parse()
        .map_err(|e: super::ParseVersionError| BackendError::Other(e.into()))
}

/// An `XREADGROUP` reply: nil (nothing within the block), or one stream's
/// entries, as an array of `[name, entries]` (RESP2) or a map (RESP3).
fn read_reply(reply: Value) -> Result<Vec<Entry>, BackendError> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(pair) = s else {
                    return Err(malformed("XREADGROUP", &s));
                };
                match <[Value; 2]>::try_from(pair) {
                    Ok([_, list]) => out.extend(entries(list)?),
                    Err(other) => return Err(malformed("XREADGROUP", &Value::Array(other))),
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, list) in streams {
                out.extend(entries(list)?);
            }
            Ok(out)
        }
        other => Err(malformed("XREADGROUP", &other)),
    }
}

/// A list of `[id, [field, value, ...] | nil]`; nil is an entry deleted
/// while pending.
fn entries(list: Value) -> Result<Vec<Entry>, BackendError> {
    let Value::Array(list) = list else {
        return match list {
            Value::Nil => Ok(Vec::new()),
            other => Err(malformed("stream entries", &other)),
        };
    };
    list.into_iter().map(entry).collect()
}

fn entry(value: Value) -> Result<Entry, BackendError> {
    let Value::Array(parts) = value else {
        return Err(malformed("stream entry", &value));
    };
    let [id, fields] = <[Value; 2]>::try_from(parts)
        .map_err(|parts| malformed("stream entry", &Value::Array(parts)))?;
    let id = text(&id).ok_or_else(|| malformed("stream entry id", &id))?;
    let version = parse_id(&id)?;
    if matches!(fields, Value::Nil) {
        return Ok(Entry {
            version,
            body: Body::Gone,
        });
    }
    let mut pairs = field_pairs(fields).map_err(|f| malformed("stream entry fields", &f))?;
    let key = pairs
        .iter()
        .find(|(f, _)| is_field(f, "k"))
        .and_then(|(_, k)| text(k));
    // The value's bytes are moved out, not copied; only with a key, so that
    // a foreign entry keeps every field.
    let bytes = key.as_ref().and_then(|_| {
        pairs.iter_mut().find_map(|(f, v)| match v {
            Value::BulkString(b) if is_field(f, "v") => Some(std::mem::take(b)),
            _ => None,
        })
    });
    let body = match (key, bytes) {
        (Some(key), Some(bytes)) => Body::Write(key, Bytes::from(bytes)),
        // Not written by this library: the flusher dead-letters it.
        _ => Body::Foreign(
            pairs
                .iter()
                .map(|(f, v)| (raw_bytes(f), raw_bytes(v)))
                .collect(),
        ),
    };
    Ok(Entry { version, body })
}

/// A field or value as bytes (non-string values by their debug form).
fn raw_bytes(value: &Value) -> Bytes {
    match value {
        Value::BulkString(b) => Bytes::from(b.clone()),
        other => Bytes::from(text(other).unwrap_or_else(|| format!("{other:?}"))),
    }
}

/// An idle time as `XAUTOCLAIM` takes it: milliseconds that fit a signed
/// 64-bit integer (Redis refuses more). A huge `claim_idle` is then idle
/// time no entry reaches: its scans claim nothing.
fn idle_arg(idle: Duration) -> u64 {
    millis(idle).min(i64::MAX.unsigned_abs())
}

/// The dead-letter stream of `stream`.
pub(crate) fn dead_letter_key(stream: &str) -> String {
    format!("{stream}:dead")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_parse_in_both_protocols_and_deleted_entries_have_no_body() {
        let e1 = Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("k"), bulk("a"), bulk("v"), bulk("xyz")]),
        ]);
        let e2 = Value::Array(vec![bulk("6-0"), Value::Nil]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![e1.clone(), e2.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(bulk("s"), Value::Array(vec![e1, e2]))]);
        for reply in [resp2, resp3] {
            let got = read_reply(reply).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].version, Version::new(5, 1));
            let Body::Write(k, v) = &got[0].body else {
                panic!("{:?}", got[0].body)
            };
            assert_eq!((k.as_str(), &v[..]), ("a", &b"xyz"[..]));
            assert_eq!(got[1].version, Version::new(6, 0));
            assert!(matches!(got[1].body, Body::Gone));
        }
        assert!(read_reply(Value::Nil).unwrap().is_empty());
        assert!(read_reply(Value::Int(3)).is_err());
    }

    #[test]
    fn the_longest_claim_idle_is_an_idle_time_redis_accepts() {
        assert_eq!(idle_arg(Duration::MAX), i64::MAX.unsigned_abs());
        assert_eq!(idle_arg(Duration::from_millis(1500)), 1500);
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for bad in [
            Value::Array(vec![Value::Array(vec![bulk("s")])]),
            Value::Array(vec![Value::Array(vec![
                bulk("s"),
                Value::Array(vec![Value::Array(vec![bulk("1-0")])]),
            ])]),
            Value::Array(vec![Value::Array(vec![
                bulk("s"),
                Value::Array(vec![Value::Array(vec![Value::Nil, Value::Nil])]),
            ])]),
        ] {
            assert!(read_reply(bad).is_err());
        }
    }

    #[test]
    fn consumer_lists_parse_in_both_protocols() {
        let flat = Value::Array(vec![
            bulk("name"),
            bulk("a"),
            bulk("pending"),
            Value::Int(2),
            bulk("idle"),
            Value::Int(900),
            bulk("inactive"),
            Value::Int(-1),
        ]);
        let map = Value::Map(vec![
            (bulk("name"), bulk("b")),
            (bulk("pending"), Value::Int(0)),
            (bulk("idle"), Value::Int(5)),
        ]);
        let got = consumers(Value::Array(vec![flat, map])).unwrap();
        assert_eq!(
            got,
            [
                ConsumerInfo {
                    name: "a".into(),
                    pending: 2,
                    idle_ms: 900
                },
                ConsumerInfo {
                    name: "b".into(),
                    pending: 0,
                    idle_ms: 5
                },
            ]
        );
        assert!(consumers(Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("c")
        ])]))
        .is_err());
    }
}
