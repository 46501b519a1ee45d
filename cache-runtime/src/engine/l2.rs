//! The L2 and its one choke point: every command to the tier behind the
//! L1 (Redis, the memory store, a user's backend), walks included, goes
//! through [`L2`], whose [`Guard`] bounds it with the deadline.

use super::breaker::{Breaker, BreakerSettings};
use super::L1;
use crate::backend::memory::{MemoryBackend, TypedValue};
use crate::backend::{Caps, Store, TaggedLookup, TaggedWrite, Tier, Walk};
use crate::observe::{self, Command};
use crate::write_behind::Version;
use crate::BackendError;
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A deadline too far to matter, for a `command_timeout` that overflows the clock.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `timeout` after `start`, or [`FAR_FUTURE`] after it if that overflows.
#[inline]
pub(crate) fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + FAR_FUTURE)
}

/// The bound on every L2 command: the circuit breaker, then the deadline
/// (the command metrics join them here). It also tells the L1 when a
/// command finds the connection gone: the client reconnects on such an
/// error, and the new connection does not report changes until tracking is
/// on again; and when the breaker opens, since invalidations may be lost
/// while the tier does not answer.
pub(crate) struct Guard {
    timeout: Duration,
    /// In-process tiers cannot stall: no timer is armed for them, and no
    /// breaker stands in front of them.
    local: bool,
    l1: Option<Arc<L1>>,
    breaker: Breaker,
    /// Told of every command that found the tier unreachable or too slow
    /// (a cluster starts its connections afresh, at most once a second).
    on_outage: Option<OutageHook>,
}

/// See [`Guard`]'s `on_outage`.
pub(crate) type OutageHook = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("timeout", &self.timeout)
            .field("local", &self.local)
            .field("breaker", &self.breaker)
            .field("on_outage", &self.on_outage.is_some())
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub(crate) fn new(
        timeout: Duration,
        local: bool,
        l1: Option<Arc<L1>>,
        breaker: BreakerSettings,
    ) -> Self {
        Guard {
            timeout,
            local,
            l1,
            breaker: Breaker::new(breaker),
            on_outage: None,
        }
    }

    pub(crate) fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The command timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A command's deadline, if it started now.
    pub(crate) fn deadline(&self) -> Instant {
        deadline_after(Instant::now(), self.timeout)
    }

    /// One command, ending at `deadline`.
    pub(crate) async fn until<T>(
        &self,
        name: Command,
        deadline: Instant,
        command: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        if self.local {
            return command.await;
        }
        let pass = self.breaker.admit()?;
        // The clock is read for the duration metric only when it is built in.
        let started = observe::ON.then(Instant::now);
        let result = match tokio::time::timeout_at(deadline, command).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Timeout(self.timeout)),
        };
        if let Some(started) = started {
            observe::command(name, started.elapsed());
        }
        let opened = pass.done(&result);
        if let (Err(e), Some(hook)) = (&result, &self.on_outage) {
            if super::breaker::is_outage(e) {
                hook();
            }
        }
        if let (Err(e), Some(l1)) = (&result, &self.l1) {
            let lost = match e {
                BackendError::Redis(e) | BackendError::Refused { source: e, .. } => {
                    e.is_io_error() || e.is_unrecoverable_error()
                }
                _ => false,
            };
            if lost || opened {
                l1.connection_lost();
            }
        }
        result
    }

    /// One command, with `budget` left of its deadline.
    pub(crate) async fn within<T>(
        &self,
        name: Command,
        budget: Duration,
        command: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        if self.local {
            return command.await;
        }
        if budget.is_zero() {
            return Err(BackendError::Timeout(self.timeout));
        }
        self.until(name, deadline_after(Instant::now(), budget), command)
            .await
    }

    /// One command, with a deadline of its own.
    pub(crate) async fn command<T>(
        &self,
        name: Command,
        command: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.within(name, self.timeout, command).await
    }
}

/// The tier behind its guard. Nothing else in the engine holds the tier.
#[derive(Debug)]
pub(crate) struct L2 {
    tier: Store,
    guard: Guard,
    caps: Caps,
    /// `retry_on_timeout`: reads get a second try within their deadline.
    retry: bool,
}

impl L2 {
    pub(crate) fn new(
        tier: Store,
        timeout: Duration,
        l1: Option<Arc<L1>>,
        breaker: BreakerSettings,
        retry: bool,
    ) -> Self {
        let caps = tier.caps();
        let mut guard = Guard::new(timeout, caps.local, l1, breaker);
        if let Store::Redis(redis) = &tier {
            guard.on_outage = redis.outage_hook();
        }
        L2 {
            guard,
            caps,
            tier,
            retry: retry && !caps.local,
        }
    }

    /// Whether reads get a second try ([`L2::read_retrying`]).
    pub(crate) fn retries(&self) -> bool {
        self.retry
    }

    /// A read (safe to repeat) with a second try: the first gets half the
    /// time left before `deadline`; if it times out or finds its connection
    /// dropped, and time is left, the read runs again (on the next
    /// connection, round-robin) until `deadline`. Never past it.
    pub(crate) async fn read_retrying<T, F, Fut>(
        &self,
        name: Command,
        deadline: Instant,
        read: F,
    ) -> Result<T, BackendError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let now = Instant::now();
        let half = now + deadline.saturating_duration_since(now) / 2;
        match self.guard.until(name, half, read()).await {
            Err(e) if super::breaker::is_outage(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "read failed; trying once more within its deadline");
                self.guard.until(name, deadline, read()).await
            }
            other => other,
        }
    }

    /// [`get`](L2::get), with a second try under `retry_on_timeout`.
    pub(crate) async fn get_retrying(
        &self,
        key: &str,
        deadline: Instant,
        track: bool,
    ) -> Result<Option<Bytes>, BackendError> {
        self.read_retrying(Command::Get, deadline, || self.tier.get(key, track))
            .await
    }

    pub(crate) fn guard(&self) -> &Guard {
        &self.guard
    }

    pub(crate) fn caps(&self) -> Caps {
        self.caps
    }

    pub(crate) fn kind(&self) -> &'static str {
        self.tier.kind()
    }

    /// The memory store, when it is the tier: in-process, it also answers
    /// the L1 step of a read (there is no L1 in front of it).
    pub(crate) fn local_store(&self) -> Option<&MemoryBackend> {
        self.tier.as_memory()
    }

    /// A client for the write-behind log's own connections, where the tier
    /// keeps durable streams ([`Caps::streams`]).
    pub(crate) fn stream_client(&self) -> Option<crate::backend::OwnClient> {
        self.tier.stream_client()
    }

    pub(crate) async fn stream_append(
        &self,
        full: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        stream: &str,
    ) -> Result<Version, BackendError> {
        self.guard
            .command(
                Command::StreamAppend,
                self.tier.stream_append(full, key, value, ttl, stream),
            )
            .await
    }

    pub(crate) async fn stream_none_through(
        &self,
        stream: &str,
        target: Version,
    ) -> Result<bool, BackendError> {
        self.guard
            .command(
                Command::StreamCheck,
                self.tier.stream_none_through(stream, target),
            )
            .await
    }

    pub(crate) async fn stream_unblock(&self, stream: &str, id: i64) -> Result<(), BackendError> {
        self.guard
            .command(Command::StreamUnblock, self.tier.stream_unblock(stream, id))
            .await
    }

    /// A read; with `track`, one whose value may go into the L1, so the
    /// tier is asked to report changes to the key.
    ///
    /// A plain `fn`: one state machine less on every read (each layer of
    /// `async fn` costs a copy of the future below it).
    pub(crate) fn get<'a>(
        &'a self,
        key: &'a str,
        deadline: Instant,
        track: bool,
    ) -> impl Future<Output = Result<Option<Bytes>, BackendError>> + Send + 'a {
        self.guard
            .until(Command::Get, deadline, self.tier.get(key, track))
    }

    pub(crate) async fn get_tagged(
        &self,
        key: &str,
        tags: &[String],
        deadline: Instant,
        track: bool,
    ) -> Result<TaggedLookup, BackendError> {
        if !self.caps.tags {
            return Err(BackendError::Unsupported("tags"));
        }
        if self.retry {
            return self
                .read_retrying(Command::GetTagged, deadline, || {
                    self.tier.get_tagged(key, tags, track)
                })
                .await;
        }
        self.guard
            .until(
                Command::GetTagged,
                deadline,
                self.tier.get_tagged(key, tags, track),
            )
            .await
    }

    /// A write as `how` says, within `budget`; `true` if stored.
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
        how: TaggedWrite<'_>,
        budget: Duration,
    ) -> Result<bool, BackendError> {
        if !how.tags.is_empty() && !self.caps.tags {
            return Err(BackendError::Unsupported("tags"));
        }
        self.guard
            .within(
                Command::Set,
                budget,
                self.tier.write(key, bytes, typed, ttl, how),
            )
            .await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.guard
            .command(Command::Delete, self.tier.delete(key))
            .await
    }

    /// Compare-and-delete (the fill lock's release).
    pub(crate) async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, BackendError> {
        self.guard
            .command(Command::DeleteIf, self.tier.delete_if(key, expected))
            .await
    }

    /// [`delete_if`](L2::delete_if) within `budget`.
    pub(crate) async fn delete_if_within(
        &self,
        key: &str,
        expected: &[u8],
        budget: Duration,
    ) -> Result<bool, BackendError> {
        self.guard
            .within(
                Command::DeleteIf,
                budget,
                self.tier.delete_if(key, expected),
            )
            .await
    }

    /// Compare-and-expire (the fill lock's renewal).
    pub(crate) async fn expire_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.guard
            .command(Command::ExpireIf, self.tier.expire_if(key, expected, ttl))
            .await
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        if self.retry {
            let deadline = self.guard.deadline();
            return self
                .read_retrying(Command::Exists, deadline, || self.tier.exists(key))
                .await;
        }
        self.guard
            .command(Command::Exists, self.tier.exists(key))
            .await
    }

    /// A pattern clear: each step bounded, each removed key reported.
    pub(crate) async fn clear_pattern(
        &self,
        pattern: &str,
        reserved: &str,
        removed: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<u64, BackendError> {
        let walk = Walk {
            guard: &self.guard,
            command: Command::ClearPattern,
            removed,
            reserved: reserved.as_bytes(),
        };
        self.tier.clear_pattern(pattern, &walk).await
    }

    /// A tag invalidation: each step bounded, each removed key reported.
    pub(crate) async fn invalidate_tags(
        &self,
        tags: &[String],
        removed: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<u64, BackendError> {
        if !self.caps.tags {
            return Err(BackendError::Unsupported("tags"));
        }
        let walk = Walk {
            guard: &self.guard,
            command: Command::InvalidateTags,
            removed,
            reserved: &[],
        };
        self.tier.invalidate_tags(tags, &walk).await
    }

    /// Turns on the invalidations of the keys read from now on.
    pub(crate) async fn track(&self, deadline: Instant) -> Result<(), BackendError> {
        self.guard
            .until(Command::Track, deadline, self.tier.track())
            .await
    }

    /// A round trip on every connection, each within `deadline` (the
    /// tier replaces one that gives no reply in time, so the guard's own
    /// bound comes a little later).
    /// The server's own figures, per node, within one deadline.
    /// A store that is not Redis has none: refused at once, without a
    /// command (which would count as the breaker's verdict on the store).
    pub(crate) async fn server_info(&self) -> Result<Vec<crate::NodeInfo>, BackendError> {
        if !matches!(self.tier, Store::Redis(_)) {
            return Err(BackendError::Unsupported("server figures (INFO)"));
        }
        self.guard
            .command(Command::ServerInfo, self.tier.server_info())
            .await
    }

    pub(crate) async fn ping(&self, deadline: Instant) -> Result<(), BackendError> {
        let outer = deadline_after(deadline, Duration::from_millis(50));
        self.guard
            .until(Command::Ping, outer, self.tier.ping(deadline))
            .await
    }
}
