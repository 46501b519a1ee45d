//! The one internal interface of a store behind the engine: the memory
//! store, Redis and a user's [`Backend`] all go through [`Tier`].

use super::memory::{MemoryBackend, TypedValue};
use super::redis::RedisBackend;
use super::{Backend, TaggedLookup, TaggedWrite, WriteKind};
use crate::engine::Guard;
use crate::write_behind::Version;
use crate::BackendError;
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a tier can do. The builder refuses a configuration that needs
/// something its tier lacks, and the engine asks nothing of a tier that it
/// does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Tagged reads, writes and invalidations.
    pub(crate) tags: bool,
    /// A set-if-absent in one atomic step.
    pub(crate) atomic_if_absent: bool,
    /// Tells this process of every change to a key it has read (Redis's
    /// client tracking), so that an L1 in front stays coherent.
    pub(crate) invalidations: bool,
    /// Every command completes in-process: no deadline timer is armed.
    pub(crate) local: bool,
    /// Durable streams read by consumer groups: the write-behind's log
    /// survives the process.
    pub(crate) streams: bool,
    /// Atomic compare-and-set, -expire and -delete: the fill lock can live
    /// here.
    pub(crate) compare_and_set: bool,
}

/// The context of a walk (a pattern clear, a tag invalidation), which is
/// many commands: each step passes the engine's choke point, and each key
/// the walk removes is reported, so that an L1 in front forgets it.
pub(crate) struct Walk<'a> {
    pub(crate) guard: &'a Guard,
    /// What the walk's steps count as, in the command duration metric.
    pub(crate) command: crate::observe::Command,
    pub(crate) removed: &'a (dyn Fn(&[u8]) + Sync),
    /// `{prefix}:__`: the library's own keys (tags, write-behind logs),
    /// which a pattern clear leaves alone whatever its pattern matches.
    pub(crate) reserved: &'a [u8],
}

impl Walk<'_> {
    /// Whether a pattern clear may remove `key`.
    pub(crate) fn may_clear(&self, key: &[u8]) -> bool {
        !key.starts_with(self.reserved)
    }
}

impl Walk<'_> {
    /// One command of the walk, under the choke point.
    pub(crate) async fn step<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackendError> {
        self.guard
            .command(self.command, async {
                command.await.map_err(BackendError::from)
            })
            .await
    }
}

/// A store of encoded values under full keys. The engine reaches a tier
/// only through its choke point ([`Guard`]), which bounds every command.
pub(crate) trait Tier: Send + Sync {
    fn kind(&self) -> &'static str;
    fn caps(&self) -> Caps;
    /// The value at `key`; with `track`, the tier reports later changes to
    /// it (only with [`Caps::invalidations`]).
    fn get(
        &self,
        key: &str,
        track: bool,
    ) -> impl Future<Output = Result<Option<Bytes>, BackendError>> + Send;
    /// The value and each tag's version, read at one moment; `track` as in
    /// [`get`](Tier::get), for the value only.
    fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        track: bool,
    ) -> impl Future<Output = Result<TaggedLookup, BackendError>> + Send;
    /// A write as `how` says; `true` if stored. `typed` is a decoded copy,
    /// kept only by an in-process store.
    fn write(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// A new `ttl` for `key` if it holds exactly `expected` (only with
    /// [`Caps::compare_and_set`]).
    fn expire_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        let _ = (key, expected, ttl);
        std::future::ready(Err(BackendError::Unsupported("compare-and-set")))
    }
    /// Removes `key` if it holds exactly `expected` (only with
    /// [`Caps::compare_and_set`]).
    fn delete_if(
        &self,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        let _ = (key, expected);
        std::future::ready(Err(BackendError::Unsupported("compare-and-set")))
    }
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, BackendError>> + Send;
    fn clear_pattern(
        &self,
        pattern: &str,
        walk: &Walk<'_>,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;
    fn invalidate_tags(
        &self,
        tags: &[String],
        walk: &Walk<'_>,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;
    /// Asks to be told of changes to the keys read from now on (only with
    /// [`Caps::invalidations`]).
    fn track(&self) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// A round trip on every connection, each ending at `deadline` (the
    /// health check); a connection that does not answer in time is
    /// replaced.
    fn ping(
        &self,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = deadline;
        std::future::ready(Ok(()))
    }
    /// The server's own figures (`INFO`), one entry per node asked.
    fn server_info(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::NodeInfo>, BackendError>> + Send {
        std::future::ready(Err(BackendError::Unsupported("server figures (INFO)")))
    }

    // The write-behind's durable log (only with [`Caps::streams`]).

    /// A client for connections of the log's own (its blocking reads must
    /// not stall the shared connections).
    fn stream_client(&self) -> Option<super::OwnClient> {
        None
    }
    /// Stores `value` at `full` and appends the change to `stream`, in one step.
    fn stream_append(
        &self,
        full: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        stream: &str,
    ) -> impl Future<Output = Result<Version, BackendError>> + Send {
        let _ = (full, key, value, ttl, stream);
        std::future::ready(Err(BackendError::Unsupported("streams")))
    }
    /// Whether no entry up to `target` is left in `stream`.
    fn stream_none_through(
        &self,
        stream: &str,
        target: Version,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        let _ = (stream, target);
        std::future::ready(Err(BackendError::Unsupported("streams")))
    }
    /// Ends the blocking read of the log's connection `id` (reading
    /// `stream`) early.
    fn stream_unblock(
        &self,
        stream: &str,
        id: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = (stream, id);
        std::future::ready(Err(BackendError::Unsupported("streams")))
    }
}

/// A user's backend behind the tier interface.
pub(crate) struct Custom(pub(crate) Arc<dyn Backend>);

impl Tier for Custom {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn caps(&self) -> Caps {
        let declared = self.0.capabilities();
        Caps {
            tags: declared.tags,
            atomic_if_absent: declared.atomic_set_if_absent,
            invalidations: false,
            local: self.0.is_local(),
            streams: false,
            compare_and_set: declared.compare_and_set,
        }
    }

    async fn get(&self, key: &str, _track: bool) -> Result<Option<Bytes>, BackendError> {
        self.0.get(key).await
    }

    async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        _track: bool,
    ) -> Result<TaggedLookup, BackendError> {
        self.0.get_tagged(key, tags).await
    }

    async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        _typed: Option<TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        let b = &self.0;
        match how.kind() {
            WriteKind::Tagged => {
                b.set_tagged(key, bytes, ttl, how.tags, how.expected, how.condition)
                    .await
            }
            WriteKind::IfAbsent => b.set_if_absent(key, bytes, ttl).await,
            WriteKind::IfHolds => b.set_if(key, bytes, ttl, how.condition).await,
            WriteKind::Plain => b.set(key, bytes, ttl).await.map(|()| true),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.0.delete(key).await
    }

    async fn expire_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.0.expire_if(key, expected, ttl).await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, BackendError> {
        self.0.delete_if(key, expected).await
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        self.0.exists(key).await
    }

    async fn clear_pattern(&self, pattern: &str, walk: &Walk<'_>) -> Result<u64, BackendError> {
        // One call to the user's backend: bounded as one command.
        walk.guard
            .command(walk.command, self.0.clear_pattern(pattern))
            .await
    }

    async fn invalidate_tags(&self, tags: &[String], walk: &Walk<'_>) -> Result<u64, BackendError> {
        walk.guard
            .command(walk.command, self.0.invalidate_tags(tags))
            .await
    }

    async fn track(&self) -> Result<(), BackendError> {
        Err(BackendError::Unsupported("invalidations"))
    }
}

impl Tier for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn caps(&self) -> Caps {
        Caps {
            tags: true,
            atomic_if_absent: true,
            invalidations: false,
            local: true,
            streams: false,
            // One process: its single flight is the lock.
            compare_and_set: false,
        }
    }

    async fn get(&self, key: &str, _track: bool) -> Result<Option<Bytes>, BackendError> {
        Ok(MemoryBackend::get(self, key))
    }

    async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        _track: bool,
    ) -> Result<TaggedLookup, BackendError> {
        Ok(MemoryBackend::get_tagged(self, key, tags))
    }

    async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        Ok(MemoryBackend::write(self, key, bytes, typed, ttl, how))
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        Ok(MemoryBackend::delete(self, key))
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        Ok(MemoryBackend::exists(self, key))
    }

    async fn clear_pattern(&self, pattern: &str, _walk: &Walk<'_>) -> Result<u64, BackendError> {
        Ok(MemoryBackend::clear_pattern(self, pattern))
    }

    async fn invalidate_tags(
        &self,
        tags: &[String],
        _walk: &Walk<'_>,
    ) -> Result<u64, BackendError> {
        Ok(MemoryBackend::invalidate_tags(self, tags))
    }

    async fn track(&self) -> Result<(), BackendError> {
        Err(BackendError::Unsupported("invalidations"))
    }
}

/// The store behind a cache: the built-in tiers dispatched statically (no
/// boxed future per command), a user's backend through its trait.
pub(crate) enum Store {
    Memory(MemoryBackend),
    Redis(Box<RedisBackend>),
    Custom(Custom),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Memory(m) => m.fmt(f),
            Store::Redis(r) => r.fmt(f),
            Store::Custom(c) => c.0.fmt(f),
        }
    }
}

/// Forwards a [`Tier`] method to the store's variant.
macro_rules! each {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            Store::Memory($t) => $e,
            Store::Redis($t) => {
                let $t: &RedisBackend = $t;
                $e
            }
            Store::Custom($t) => $e,
        }
    };
}

impl Store {
    /// The in-process memory store, when that is the tier: it also answers
    /// the engine's L1 step.
    pub(crate) fn as_memory(&self) -> Option<&MemoryBackend> {
        match self {
            Store::Memory(m) => Some(m),
            _ => None,
        }
    }
}

impl Tier for Store {
    fn kind(&self) -> &'static str {
        each!(self, t => Tier::kind(t))
    }

    fn caps(&self) -> Caps {
        each!(self, t => Tier::caps(t))
    }

    async fn get(&self, key: &str, track: bool) -> Result<Option<Bytes>, BackendError> {
        each!(self, t => Tier::get(t, key, track).await)
    }

    async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        track: bool,
    ) -> Result<TaggedLookup, BackendError> {
        each!(self, t => Tier::get_tagged(t, key, tags, track).await)
    }

    async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        each!(self, t => Tier::write(t, key, bytes, typed, ttl, how).await)
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        each!(self, t => Tier::delete(t, key).await)
    }

    async fn expire_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        each!(self, t => Tier::expire_if(t, key, expected, ttl).await)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, BackendError> {
        each!(self, t => Tier::delete_if(t, key, expected).await)
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        each!(self, t => Tier::exists(t, key).await)
    }

    async fn clear_pattern(&self, pattern: &str, walk: &Walk<'_>) -> Result<u64, BackendError> {
        each!(self, t => Tier::clear_pattern(t, pattern, walk).await)
    }

    async fn invalidate_tags(&self, tags: &[String], walk: &Walk<'_>) -> Result<u64, BackendError> {
        each!(self, t => Tier::invalidate_tags(t, tags, walk).await)
    }

    async fn track(&self) -> Result<(), BackendError> {
        each!(self, t => Tier::track(t).await)
    }

    async fn ping(&self, deadline: tokio::time::Instant) -> Result<(), BackendError> {
        each!(self, t => Tier::ping(t, deadline).await)
    }

    async fn server_info(&self) -> Result<Vec<crate::NodeInfo>, BackendError> {
        each!(self, t => Tier::server_info(t).await)
    }

    fn stream_client(&self) -> Option<super::OwnClient> {
        each!(self, t => Tier::stream_client(t))
    }

    async fn stream_append(
        &self,
        full: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        stream: &str,
    ) -> Result<Version, BackendError> {
        each!(self, t => Tier::stream_append(t, full, key, value, ttl, stream).await)
    }

    async fn stream_none_through(
        &self,
        stream: &str,
        target: Version,
    ) -> Result<bool, BackendError> {
        each!(self, t => Tier::stream_none_through(t, stream, target).await)
    }

    async fn stream_unblock(&self, stream: &str, id: i64) -> Result<(), BackendError> {
        each!(self, t => Tier::stream_unblock(t, stream, id).await)
    }
}
