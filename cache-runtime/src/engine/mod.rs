//! The engine behind a [`Cache`](crate::Cache) handle: the read path, the
//! write path and eviction, over an optional L1 and the L2 choke point.
//!
//! ```text
//! Cache (handle, direct API)
//!   └─ Engine: resolve → L1 → single-flight → L2 → body → store   (read.rs)
//!        ├─ L1: decoded values in process memory, coherent through
//!        │      Redis's invalidations (l1.rs); absent without Redis
//!        └─ L2: the tier (Redis, the memory store, a user's backend)
//!               behind one guarded choke point (l2.rs)
//! ```

mod breaker;
mod l1;
mod l2;
mod lock;
mod read;
mod refresh;

pub(crate) use breaker::BreakerSettings;
pub(crate) use l1::L1;
pub(crate) use l2::{deadline_after, Guard, OutageHook, L2};
pub(crate) use lock::{LockSettings, DEFAULT_LEASE};
pub(crate) use read::{get_or_compute, Tagging, Target};
pub(crate) use refresh::get_or_refresh;

use crate::backend::{Store, TaggedWrite, Tier as _};
use crate::codec::CodecImpl;
use crate::flight::Flights;
use crate::stats::Counters;
use crate::{envelope, key, BackendError, CacheError, Operation};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The longest TTL accepted anywhere (the macro checks the same bound): 100
/// years, so milliseconds fit Redis's signed 64-bit expiry with room to spare.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The TTLs that `ttl = "short" | "default" | "long"` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TtlPresets {
    pub(crate) short: Duration,
    pub(crate) default: Duration,
    pub(crate) long: Duration,
}

impl Default for TtlPresets {
    fn default() -> Self {
        TtlPresets {
            short: Duration::from_secs(300),
            default: Duration::from_secs(3600),
            long: Duration::from_secs(86_400),
        }
    }
}

/// What the engine is built from (checked by the builder).
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) codec: CodecImpl,
    pub(crate) ttl: TtlPresets,
    pub(crate) command_timeout: Duration,
    pub(crate) evict_timeout: Duration,
    pub(crate) max_value_size: usize,
    pub(crate) breaker: BreakerSettings,
    pub(crate) health_check_interval: Option<Duration>,
    pub(crate) retry_on_timeout: bool,
    /// Caching off ([`CacheBuilder::disabled`](crate::CacheBuilder::disabled)).
    pub(crate) disabled: bool,
    /// The fill lock, if asked for (used only on a tier with
    /// compare-and-set).
    pub(crate) lock: Option<LockSettings>,
}

pub(crate) struct Engine {
    pub(crate) prefix: String,
    pub(crate) codec: CodecImpl,
    pub(crate) ttl: TtlPresets,
    pub(crate) max_value_size: usize,
    /// The bound on one `#[cache_evict]` eviction as a whole.
    evict_timeout: Duration,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    pub(crate) l2: L2,
    /// In front of a remote L2 only.
    pub(crate) l1: Option<Arc<L1>>,
    /// Set after an L2 failure in a `#[cached]` call, cleared on the next
    /// success: only the first failure of an outage is logged as a warning.
    degraded: AtomicBool,
    /// This engine, for the L1's heartbeat task (which must not keep it alive).
    me: Weak<Engine>,
    /// Whether the background task ([`heartbeat`]) runs.
    heartbeat: AtomicBool,
    health_check_interval: Option<Duration>,
    breaker_cooldown: Duration,
    /// The fill lock, when it is on and the tier can hold it.
    pub(crate) lock: Option<LockSettings>,
    /// Caching off: calls run their bodies, the direct API says so.
    pub(crate) disabled: bool,
    /// Keys this process is refreshing in the background.
    refreshing: refresh::Refreshing,
    /// The L1's entries and bytes as last added into the process's gauges
    /// (each engine adds its change, so the gauges hold every L1's sum).
    l1_reported: std::sync::Mutex<(u64, u64)>,
    /// Fill locks this process gave up without removing them yet.
    abandoned: lock::Abandoned,
}

/// How often the L1's heartbeat checks the connections that bring its
/// invalidations, and how long each check may take: a connection that went
/// silent (a dropped flow with no reset) is noticed within about twice this.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The engine's one background task, while there is a reason for it: with
/// an armed L1, a round trip on every shared connection each [`HEARTBEAT`]
/// (a check that fails or gets no reply in time flushes the L1 and disarms
/// it); with `health_check_interval`, the same round trip at that interval,
/// and, while the circuit breaker is open, as its probe once the cool-down
/// is over, so that no caller's lookup has to be the probe. A connection
/// that gives no reply is replaced by the tier. Ends with the engine.
async fn heartbeat(me: Weak<Engine>) {
    let mut last_check = tokio::time::Instant::now();
    loop {
        let tick = match me.upgrade() {
            Some(engine) => engine.heartbeat_tick(),
            None => return,
        };
        tokio::time::sleep(tick).await;
        let Some(engine) = me.upgrade() else { return };
        engine.report_l1_size();
        let l1 = engine.l1.as_deref().filter(|l1| l1.is_armed());
        let health = engine.health_check_interval;
        let due = l1.is_some()
            || health.is_some_and(|every| last_check.elapsed() >= every)
            || (health.is_some() && engine.l2.guard().breaker().is_open());
        if !due {
            continue;
        }
        last_check = tokio::time::Instant::now();
        let deadline = deadline_after(last_check, HEARTBEAT.min(tick));
        match engine.l2.ping(deadline).await {
            Ok(()) => engine.recovered(),
            // Not sent: the breaker is open and its cool-down not over.
            Err(BackendError::CircuitOpen(_)) => {}
            Err(error) => {
                tracing::debug!(%error, "health check failed");
                if let Some(l1) = l1 {
                    l1.connection_lost();
                }
            }
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("prefix", &self.prefix)
            .field("l2", &self.l2)
            .field("l1", &self.l1)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new(
        settings: Settings,
        tier: Store,
        l1: Option<Arc<L1>>,
        me: Weak<Engine>,
    ) -> Self {
        let caps = tier.caps();
        let lock = settings
            .lock
            .filter(|_| caps.compare_and_set && !caps.local);
        Engine {
            prefix: settings.prefix,
            codec: settings.codec,
            ttl: settings.ttl,
            max_value_size: settings.max_value_size,
            evict_timeout: settings.evict_timeout,
            counters: Counters::default(),
            flights: Flights::default(),
            l2: L2::new(
                tier,
                settings.command_timeout,
                l1.clone(),
                settings.breaker,
                settings.retry_on_timeout,
            ),
            l1,
            degraded: AtomicBool::new(false),
            me,
            heartbeat: AtomicBool::new(false),
            health_check_interval: settings.health_check_interval,
            breaker_cooldown: settings.breaker.cooldown,
            lock,
            disabled: settings.disabled,
            refreshing: refresh::Refreshing::default(),
            l1_reported: std::sync::Mutex::new((0, 0)),
            abandoned: lock::Abandoned::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn health_check_interval(&self) -> Option<Duration> {
        self.health_check_interval
    }

    /// How long the background task sleeps between looks at what is due.
    fn heartbeat_tick(&self) -> Duration {
        let mut tick = HEARTBEAT;
        if let Some(every) = self.health_check_interval {
            tick = tick.min(every).min(self.breaker_cooldown);
        }
        tick.max(Duration::from_millis(1))
    }

    /// Starts the background task if the settings call for health checks
    /// (the L1 starts it when it arms). Needs a tokio runtime.
    pub(crate) fn start_health_checks(&self) {
        if self.health_check_interval.is_some()
            && !self.l2.caps().local
            && !self.heartbeat.load(Ordering::Relaxed)
            && !self.heartbeat.swap(true, Ordering::Relaxed)
        {
            tokio::spawn(heartbeat(self.me.clone()));
        }
    }

    pub(crate) fn resolve_ttl(&self, ttl: crate::call::Ttl) -> Duration {
        use crate::call::Ttl;
        match ttl {
            Ttl::Secs(s) => Duration::from_secs(s),
            Ttl::Short => self.ttl.short,
            Ttl::Default => self.ttl.default,
            Ttl::Long => self.ttl.long,
        }
    }

    /// Decodes stored bytes written for the schema fingerprint `schema`
    /// (0: any); a failure is logged, counted, and `None`.
    pub(crate) fn decode_counted<T: DeserializeOwned>(
        &self,
        key: &str,
        bytes: &[u8],
        schema: u64,
    ) -> Option<T> {
        match envelope::decode_schema(bytes, &self.codec, self.max_value_size, schema) {
            Ok(v) => Some(v),
            // A fill under way elsewhere: a miss, not a bad value.
            Err(envelope::DecodeError::Placeholder) => None,
            Err(reason) => {
                self.counters.decode_failure();
                crate::observe::decode_failure();
                tracing::debug!(key, %reason, "stored value not usable; treating it as a miss");
                None
            }
        }
    }

    /// Encodes a value for `key`, recording that it took `load` to compute
    /// (zero: unknown); a failure is logged and `None`.
    fn encode_loaded<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        schema: u64,
        load: Duration,
    ) -> Option<Bytes> {
        let encoded =
            envelope::encode_loaded(&self.codec, value, ttl, self.max_value_size, schema, load);
        match encoded {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(reason) => {
                tracing::warn!(key, %reason, "value not cached: it cannot be encoded");
                None
            }
        }
    }

    /// Forgets `key` in the L1, if there is one (this process's own change:
    /// read-your-writes without waiting for the invalidation to come back).
    pub(crate) fn forget(&self, key: &str) {
        if let Some(l1) = &self.l1 {
            let _ = l1.forget(key.as_bytes());
        }
    }

    pub(crate) fn failed(&self, op: Operation, key: &str, source: BackendError) -> CacheError {
        // A command the open breaker refused is counted by the breaker.
        if !matches!(source, BackendError::CircuitOpen(_)) {
            self.counters.error();
            crate::observe::error(op);
        }
        CacheError::Backend {
            op,
            key: key.to_owned(),
            source,
        }
    }

    pub(crate) fn fail_open(&self, op: Operation, key: &str, error: &BackendError) {
        self.start_health_checks();
        if let BackendError::CircuitOpen(_) = error {
            // Counted by the breaker, which logged its opening.
            return;
        }
        self.counters.error();
        crate::observe::error(op);
        if self.degraded.swap(true, Ordering::Relaxed) {
            tracing::debug!(%op, key, %error, "cache backend still failing; running the body uncached");
        } else {
            tracing::warn!(
                %op, key, %error, backend = self.l2.kind(),
                "cache backend failed; running the body uncached (further failures are logged at debug level until it recovers)"
            );
        }
    }

    /// Adds the L1's change in size since the last report to the gauges.
    fn report_l1_size(&self) {
        if !crate::observe::ON {
            return;
        }
        let Some(l1) = &self.l1 else { return };
        self.report_l1_as(l1.store.size());
    }

    fn report_l1_as(&self, now: (u64, u64)) {
        let mut last = self.l1_reported.lock().unwrap_or_else(|p| p.into_inner());
        let delta = |new: u64, old: u64| new as f64 - old as f64;
        crate::observe::l1_size_change(delta(now.0, last.0), delta(now.1, last.1));
        *last = now;
    }

    pub(crate) fn recovered(&self) {
        self.start_health_checks();
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(backend = self.l2.kind(), "cache backend recovered");
        }
    }
}

impl Drop for Engine {
    /// Its L1 leaves the gauges with it.
    fn drop(&mut self) {
        if crate::observe::ON && self.l1.is_some() {
            self.report_l1_as((0, 0));
        }
        if self.l2.guard().breaker().is_open() {
            crate::observe::breaker_closed();
        }
    }
}

/// See [`Engine::forgetting`].
struct Forgetting<'a> {
    engine: &'a Engine,
    key: &'a str,
}

impl Drop for Forgetting<'_> {
    fn drop(&mut self) {
        self.engine.forget(self.key);
    }
}

/// The direct API, on full keys.
impl Engine {
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        full: &str,
    ) -> Result<Option<T>, CacheError> {
        self.read(full, true).await
    }

    /// [`get`](Engine::get) without the L1, neither read nor filled.
    pub(crate) async fn get_fresh<T: DeserializeOwned>(
        &self,
        full: &str,
    ) -> Result<Option<T>, CacheError> {
        self.read(full, false).await
    }

    /// The direct API's read: the L1 first if `use_l1` (and filled from
    /// the L2's answer), else the L2 alone.
    async fn read<T: DeserializeOwned>(
        &self,
        full: &str,
        use_l1: bool,
    ) -> Result<Option<T>, CacheError> {
        let schema = crate::schema::fingerprint::<T>();
        let l1 = self.l1.as_deref().filter(|_| use_l1);
        if let Some(bytes) = l1.and_then(|l1| l1.store.get(full)) {
            // The L1 holds what Redis holds: bytes that do not decode here
            // would not decode from Redis either.
            let value = self.decode_counted(full, &bytes, schema);
            if value.is_some() {
                self.counters.l1_hit();
            } else {
                self.counters.miss();
            }
            return Ok(value);
        }
        let deadline = self.l2.guard().deadline();
        let ticket = match use_l1 {
            true => self.ticket(full, deadline).await,
            false => None,
        };
        let found = if self.l2.retries() {
            self.l2.get_retrying(full, deadline, ticket.is_some()).await
        } else {
            self.l2.get(full, deadline, ticket.is_some()).await
        };
        let found = found
            // An error, like a failed lookup of a #[cached] call, not a miss.
            .map_err(|e| self.failed(Operation::Get, full, e))?;
        let value = found.and_then(|bytes| {
            let value = self.decode_counted(full, &bytes, schema)?;
            if let Some(ticket) = ticket {
                self.install(full, ticket, bytes, None, None);
            }
            Some(value)
        });
        if value.is_some() {
            self.counters.hit();
        } else {
            self.counters.miss();
        }
        Ok(value)
    }

    /// A write into an empty key only; whether it was written.
    pub(crate) async fn put_if_absent(
        &self,
        full: &str,
        bytes: Bytes,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let absent = TaggedWrite::untagged(crate::backend::Condition::Absent);
        self.write_direct(full, bytes, ttl, absent).await
    }

    /// A write that replaces whatever is there (direct API, write-through).
    pub(crate) async fn put_bytes(
        &self,
        full: &str,
        bytes: Bytes,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), BackendError> {
        self.write_direct(full, bytes, ttl, TaggedWrite::put(tags))
            .await
            .map(drop)
    }

    /// A direct write, with the key forgotten in the L1 before and after it
    /// (this process's own change: read-your-writes); whether it was written.
    async fn write_direct(
        &self,
        full: &str,
        bytes: Bytes,
        ttl: Duration,
        how: TaggedWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.forget_counted(full.as_bytes());
        let timeout = self.l2.guard().timeout();
        let written = self.l2.write(full, bytes, None, ttl, how, timeout).await;
        self.forget(full);
        written
    }

    pub(crate) async fn delete(&self, full: &str) -> Result<bool, CacheError> {
        let _forget = self.forgetting(full);
        let removed = self.l2.delete(full).await;
        removed.map_err(|e| self.failed(Operation::Delete, full, e))
    }

    /// Forgets `key` in the L1 now and again when dropped: after a removal
    /// even when its caller gives up on it (an eviction's bound, a dropped
    /// future) once the command may have reached Redis, which does not tell
    /// this process of its own change.
    fn forgetting<'a>(&'a self, key: &'a str) -> Forgetting<'a> {
        self.forget_counted(key.as_bytes());
        Forgetting { engine: self, key }
    }

    pub(crate) async fn exists(&self, full: &str) -> Result<bool, CacheError> {
        self.l2
            .exists(full)
            .await
            .map_err(|e| self.failed(Operation::Exists, full, e))
    }

    pub(crate) async fn clear_pattern(&self, pattern: &str) -> Result<u64, BackendError> {
        let reserved = key::full(&self.prefix, key::RESERVED);
        self.l2
            .clear_pattern(pattern, &reserved, &|key| self.forget_bytes(key))
            .await
    }

    pub(crate) async fn invalidate_tags(&self, tags: &[String]) -> Result<u64, BackendError> {
        self.l2
            .invalidate_tags(tags, &|key| self.forget_bytes(key))
            .await
    }

    fn forget_bytes(&self, key: &[u8]) {
        self.forget_counted(key);
    }

    /// [`forget`](Engine::forget), counted as a local invalidation if the
    /// L1 held a copy (a write forgets twice, counted once).
    pub(crate) fn forget_counted(&self, key: &[u8]) {
        if let Some(l1) = &self.l1 {
            if l1.forget(key) {
                crate::observe::invalidations(crate::observe::Invalidation::Local, 1);
            }
        }
    }

    /// Before a read that may fill the L1: the ticket the install must
    /// show, arming the L1 first if it is not (boxed: it is rare, and its
    /// future would weigh on every read's).
    async fn ticket(&self, key: &str, deadline: tokio::time::Instant) -> Option<l1::Ticket> {
        let l1 = self.l1.as_deref()?;
        if let Some(ticket) = l1.ticket(key) {
            return Some(ticket);
        }
        Box::pin(self.arm(l1, deadline)).await;
        l1.ticket(key)
    }

    async fn arm(&self, l1: &L1, deadline: tokio::time::Instant) {
        l1.arm(&self.l2, deadline).await;
        if l1.is_armed() && !self.heartbeat.swap(true, Ordering::Relaxed) {
            tokio::spawn(heartbeat(self.me.clone()));
        }
    }

    /// Installs an L2 hit in the L1, for the entry's remaining lifetime in
    /// Redis (as its envelope records it), at most `max`.
    fn install(
        &self,
        key: &str,
        ticket: l1::Ticket,
        bytes: Bytes,
        typed: Option<crate::backend::memory::TypedValue>,
        max: Option<Duration>,
    ) {
        let Some(l1) = &self.l1 else { return };
        let Ok(header) = envelope::header(&bytes, &self.codec, self.max_value_size) else {
            return;
        };
        let left = header.fresh_until_ms.saturating_sub(envelope::now_ms());
        if left == 0 {
            return;
        }
        let mut ttl = Duration::from_millis(left);
        if let Some(max) = max {
            ttl = ttl.min(max);
        }
        l1.install(key, ticket, bytes, typed, ttl);
    }
}

/// Write-through and eviction, which fail open: failures are logged and
/// counted, never returned.
impl Engine {
    /// Write-through: stores `value` under the target's key and tags,
    /// unconditionally (it is the newest value).
    /// Whether the value was stored.
    pub(crate) async fn put<T: Serialize + ?Sized>(&self, target: &Target, value: &T) -> bool {
        let key = target.key.as_str();
        let encoded = envelope::encode_schema(
            &self.codec,
            value,
            target.ttl,
            self.max_value_size,
            target.schema,
        );
        let bytes = match encoded {
            Ok(bytes) => Bytes::from(bytes),
            Err(reason) => {
                // The old value would now be stale: remove it instead.
                tracing::warn!(key, %reason, "value not cached: it cannot be encoded; removing the old one");
                if let Err(CacheError::Backend { source, .. }) = self.delete(key).await {
                    // Counted by `delete`; logged here.
                    tracing::debug!(key, error = %source, "removing the old value failed");
                }
                return false;
            }
        };
        let tags = target.tagging.as_deref().map_or(&[][..], |t| &t.tags[..]);
        match self.put_bytes(key, bytes, target.ttl, tags).await {
            Ok(()) => {
                self.recovered();
                true
            }
            Err(e) => {
                self.fail_open(Operation::Set, key, &e);
                false
            }
        }
    }

    /// Eviction: removes `keys`, invalidates `tags`, clears `patterns` (all
    /// full), within the eviction's one bound. Each step runs even if an
    /// earlier one failed; when the bound runs out, the rest is abandoned.
    pub(crate) async fn evict(&self, keys: &[String], tags: &[String], patterns: &[String]) {
        let steps = self.evict_steps(keys, tags, patterns);
        if tokio::time::timeout(self.evict_timeout, steps)
            .await
            .is_err()
        {
            let what = keys.iter().chain(tags).chain(patterns);
            let what = what.map(String::as_str).collect::<Vec<_>>().join(", ");
            self.counters.error();
            crate::observe::error(Operation::Delete);
            tracing::warn!(
                targets = %what,
                timeout = ?self.evict_timeout,
                "eviction abandoned at its bound (evict_timeout); what it had not removed stays until its TTL"
            );
        }
    }

    async fn evict_steps(&self, keys: &[String], tags: &[String], patterns: &[String]) {
        for key in keys {
            let forget = self.forgetting(key);
            let removed = self.l2.delete(key).await;
            drop(forget);
            if let Err(e) = removed {
                self.fail_open(Operation::Delete, key, &e);
            }
        }
        if !tags.is_empty() {
            if let Err(e) = self.invalidate_tags(tags).await {
                self.fail_open(Operation::InvalidateTags, &tags.join(", "), &e);
            }
        }
        for pattern in patterns {
            if let Err(e) = self.clear_pattern(pattern).await {
                self.fail_open(Operation::ClearPattern, pattern, &e);
            }
        }
    }

    /// The full key of `key` relative to the prefix.
    pub(crate) fn full(&self, key: &str) -> String {
        key::full(&self.prefix, key)
    }
}
