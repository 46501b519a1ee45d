//! The L1 in front of Redis: decoded values in process memory, kept
//! coherent with Redis through its client tracking.
//!
//! # How it stays coherent
//!
//! The shared Redis connections run `CLIENT TRACKING ON OPTIN` (RESP3):
//! a read whose value may go into the L1 is preceded by `CLIENT CACHING
//! YES`, and Redis remembers its key; when that key changes (a write, a
//! delete, an expiry, a tag invalidation, a `FLUSHDB`, by any client), it
//! pushes an invalidation on that connection. Only keys this process read
//! for its L1 are reported to it (never the tags' sets, which every tagged
//! write changes): a fill elsewhere costs it nothing.
//!
//! - An entry is installed only from a read that Redis tracked (an L2 hit),
//!   never after this process's own write: Redis stops tracking a key once
//!   it has reported a change, and a write is such a change.
//! - A fill takes a [`Ticket`] (its key's generation and the L1's epoch)
//!   before its read and installs only if neither moved: an invalidation
//!   that overtook the read's reply bumps the generation, so the older value
//!   is never installed.
//! - This process's own writes and removals forget the key locally before
//!   they return (read-your-writes), and Redis does not report them back
//!   (`NOLOOP`): a walk reports each key it removes, so it is forgotten too.
//! - When a connection drops (killed, Redis restarted, failed over), the
//!   client reports it as a `Disconnection` push: the L1 is flushed and
//!   stays disarmed (no installs, so nothing to serve) until tracking is on
//!   again on the new connection. So do a connection error seen by any
//!   command (the client reconnects on it), a tracked read that Redis
//!   refuses (a connection replaced without a push), and a heartbeat that
//!   gets no reply within a second (a connection gone silent).

use crate::backend::memory::{MemoryBackend, TypedValue};
use crate::engine::l2::L2;
use bytes::Bytes;
use hashbrown::DefaultHashBuilder;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Generation slots: keys share a slot by hash; a shared slot only makes a
/// fill give up more often.
const SLOTS: usize = 1024;

/// After a failed attempt to turn tracking on, how long fills go without
/// the L1 before trying again (so a Redis that refuses `CLIENT TRACKING`
/// does not cost every miss a round trip).
const ARM_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct L1 {
    pub(crate) store: MemoryBackend,
    hasher: DefaultHashBuilder,
    /// Each slot's generation, bumped by every invalidation of a key in it.
    slots: Box<[Mutex<u64>]>,
    /// Bumped by every flush. Installs hold it shared; a flush, exclusive.
    epoch: RwLock<u64>,
    /// Whether invalidations flow: tracking is on, and no connection has
    /// dropped since.
    armed: AtomicBool,
    arming: tokio::sync::Mutex<Option<Instant>>,
    flushes: AtomicU64,
    invalidations: AtomicU64,
    /// Callers waiting for another process's fill, woken by the key's
    /// invalidation.
    pub(crate) waiters: Waiters,
}

/// Callers of this process waiting for a key that another process is
/// filling under the fill lock: their reads of the placeholder were
/// tracked, so the holder's write comes back as an invalidation, which
/// wakes them at once (the jittered poll is the fallback). At most one per
/// key per engine (the single flight), so the table stays tiny, and an
/// invalidation costs one atomic load while no one waits.
#[derive(Default)]
pub(crate) struct Waiters {
    count: std::sync::atomic::AtomicUsize,
    table: Mutex<Vec<Waiter>>,
}

/// A waiting key and how to wake its waiter.
type Waiter = (Box<[u8]>, Arc<tokio::sync::Notify>);

/// One registered waiter; unregistered on drop.
pub(crate) struct Waiting<'a> {
    waiters: &'a Waiters,
    pub(crate) notify: Arc<tokio::sync::Notify>,
}

impl Waiters {
    pub(crate) fn register(&self, key: &str) -> Waiting<'_> {
        let notify = Arc::new(tokio::sync::Notify::new());
        lock(&self.table).push((key.as_bytes().into(), notify.clone()));
        self.count.fetch_add(1, SeqCst);
        Waiting {
            waiters: self,
            notify,
        }
    }

    /// `key` changed: its waiters read it again.
    fn wake(&self, key: &[u8]) {
        if self.count.load(SeqCst) == 0 {
            return;
        }
        for (k, notify) in lock(&self.table).iter() {
            if **k == *key {
                // Stores a permit if the waiter is between two reads.
                notify.notify_one();
            }
        }
    }

    /// Anything may have changed (a flush, a lost connection).
    fn wake_all(&self) {
        if self.count.load(SeqCst) == 0 {
            return;
        }
        for (_, notify) in lock(&self.table).iter() {
            notify.notify_one();
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut table = lock(&self.waiters.table);
        if let Some(at) = table.iter().position(|(_, n)| Arc::ptr_eq(n, &self.notify)) {
            table.swap_remove(at);
        }
        self.waiters.count.fetch_sub(1, SeqCst);
    }
}

/// What a fill saw before its read; it installs only if nothing moved since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    slot: usize,
    generation: u64,
    epoch: u64,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1")
            .field("store", &self.store)
            .field("armed", &self.is_armed())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl L1 {
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        L1 {
            store: MemoryBackend::new(capacity_bytes),
            hasher: DefaultHashBuilder::default(),
            slots: (0..SLOTS).map(|_| Mutex::new(0)).collect(),
            epoch: RwLock::new(0),
            armed: AtomicBool::new(false),
            arming: tokio::sync::Mutex::new(None),
            flushes: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            waiters: Waiters::default(),
        }
    }

    fn slot(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) % SLOTS
    }

    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(SeqCst)
    }

    /// How many times the L1 was flushed (connection lost, `FLUSHDB`).
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(SeqCst)
    }

    /// How many keys Redis reported changed.
    pub(crate) fn invalidations(&self) -> u64 {
        self.invalidations.load(SeqCst)
    }

    /// Before a read that may fill the L1: `None` while invalidations do
    /// not flow (nothing may be installed).
    pub(crate) fn ticket(&self, key: &str) -> Option<Ticket> {
        let epoch = *self.epoch.read().unwrap_or_else(PoisonError::into_inner);
        if !self.is_armed() {
            return None;
        }
        let slot = self.slot(key.as_bytes());
        let generation = *lock(&self.slots[slot]);
        Some(Ticket {
            slot,
            generation,
            epoch,
        })
    }

    /// Installs what a tracked read returned, unless the key was
    /// invalidated or the L1 flushed since `ticket`; `true` if installed.
    pub(crate) fn install(
        &self,
        key: &str,
        ticket: Ticket,
        bytes: Bytes,
        typed: Option<TypedValue>,
        ttl: Duration,
    ) -> bool {
        let epoch = self.epoch.read().unwrap_or_else(PoisonError::into_inner);
        let generation = lock(&self.slots[ticket.slot]);
        if *epoch != ticket.epoch || *generation != ticket.generation || !self.is_armed() {
            return false;
        }
        self.store.set(key, bytes, typed, ttl);
        true
    }

    /// Forgets `key`, and refuses the installs of fills that read it before now.
    /// Forgets `key`; whether a copy was held.
    pub(crate) fn forget(&self, key: &[u8]) -> bool {
        let mut generation = lock(&self.slots[self.slot(key)]);
        *generation = generation.wrapping_add(1);
        match std::str::from_utf8(key) {
            Ok(key) => self.store.delete(key),
            Err(_) => false,
        }
    }

    /// Forgets everything; with `disarm`, installs nothing until tracking is
    /// on again.
    pub(crate) fn flush(&self, disarm: bool) {
        let mut epoch = self.epoch.write().unwrap_or_else(PoisonError::into_inner);
        *epoch = epoch.wrapping_add(1);
        if disarm {
            self.armed.store(false, SeqCst);
        }
        self.store.clear();
        self.flushes.fetch_add(1, SeqCst);
        crate::observe::invalidations(crate::observe::Invalidation::Flush, 1);
        self.waiters.wake_all();
    }

    /// A shared connection dropped or went silent: its invalidations may be
    /// lost, so nothing in the L1 can be trusted until tracking is on again.
    pub(crate) fn connection_lost(&self) {
        if self.is_armed() {
            tracing::info!("Redis connection lost: L1 flushed until invalidations flow again");
        }
        self.flush(true);
    }

    /// A push message from a shared connection.
    pub(crate) fn on_push(&self, info: redis::PushInfo) {
        match info.kind {
            redis::PushKind::Invalidate => match info.data.into_iter().next() {
                Some(redis::Value::Array(keys)) => {
                    for key in keys {
                        if let redis::Value::BulkString(key) = key {
                            self.invalidations.fetch_add(1, SeqCst);
                            crate::observe::invalidations(crate::observe::Invalidation::Redis, 1);
                            let _ = self.forget(&key);
                            self.waiters.wake(&key);
                        }
                    }
                }
                // A null list: the whole database was flushed.
                _ => {
                    tracing::debug!("Redis flushed the database: L1 flushed");
                    self.flush(false);
                }
            },
            redis::PushKind::Disconnection => {
                if self.is_armed() {
                    tracing::info!(
                        "Redis connection lost: L1 flushed until invalidations flow again"
                    );
                }
                self.flush(true);
            }
            _ => {}
        }
    }

    /// Turns tracking on (once for all waiting fills), within `deadline`.
    /// Not while the circuit breaker is open: its probe must be a read or
    /// a write, whose success says the store serves keys again (on a
    /// cluster, tracking asks every primary, and would fail for as long as
    /// the client still counts a killed one; nor does it make the client
    /// learn where that one's slots went, which a read does).
    pub(crate) async fn arm(&self, l2: &L2, deadline: Instant) {
        if l2.guard().breaker().is_open() {
            return;
        }
        let Ok(mut failed_at) = tokio::time::timeout_at(deadline, self.arming.lock()).await else {
            return;
        };
        if self.is_armed() || failed_at.is_some_and(|at| at.elapsed() < ARM_RETRY) {
            return;
        }
        let epoch = *self.epoch.read().unwrap_or_else(PoisonError::into_inner);
        match l2.track(deadline).await {
            Ok(()) => {
                let now = self.epoch.write().unwrap_or_else(PoisonError::into_inner);
                // A connection that dropped meanwhile may not be tracked.
                if *now == epoch {
                    self.armed.store(true, SeqCst);
                    *failed_at = None;
                    tracing::debug!("Redis client tracking on: L1 armed");
                }
            }
            Err(error) => {
                if failed_at.is_none() {
                    tracing::warn!(%error, "cannot turn on Redis client tracking; the L1 stays unused until it can");
                }
                *failed_at = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn armed() -> L1 {
        let l1 = L1::new(1 << 20);
        l1.armed.store(true, SeqCst);
        l1
    }

    fn v(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn invalidate(keys: &[&str]) -> redis::PushInfo {
        let keys = keys
            .iter()
            .map(|k| redis::Value::BulkString(k.as_bytes().to_vec()))
            .collect();
        redis::PushInfo {
            kind: redis::PushKind::Invalidate,
            data: vec![redis::Value::Array(keys)],
        }
    }

    #[test]
    fn a_fill_installs_when_nothing_moved() {
        let l1 = armed();
        let ticket = l1.ticket("k").expect("armed");
        assert!(l1.install("k", ticket, v("1"), None, TTL));
        assert_eq!(l1.store.get("k"), Some(v("1")));
    }

    #[test]
    fn an_invalidation_that_overtook_the_read_refuses_the_install() {
        let l1 = armed();
        let ticket = l1.ticket("k").unwrap();
        l1.on_push(invalidate(&["k"]));
        assert!(!l1.install("k", ticket, v("old"), None, TTL));
        assert_eq!(l1.store.get("k"), None);
        // A later read installs.
        let ticket = l1.ticket("k").unwrap();
        assert!(l1.install("k", ticket, v("new"), None, TTL));
        l1.on_push(invalidate(&["other", "k"]));
        assert_eq!(l1.store.get("k"), None, "removed by the invalidation");
    }

    #[test]
    fn a_flush_refuses_fills_that_started_before_it() {
        let l1 = armed();
        let ticket = l1.ticket("k").unwrap();
        // FLUSHDB: an invalidation with a null list of keys.
        l1.on_push(redis::PushInfo {
            kind: redis::PushKind::Invalidate,
            data: vec![redis::Value::Nil],
        });
        assert!(!l1.install("k", ticket, v("old"), None, TTL));
        assert!(l1.is_armed(), "invalidations still flow");
        assert_eq!(l1.flushes(), 1);
    }

    #[test]
    fn a_lost_connection_disarms_until_tracking_is_on_again() {
        let l1 = armed();
        let ticket = l1.ticket("a").unwrap();
        assert!(l1.install("a", ticket, v("1"), None, TTL));
        let ticket = l1.ticket("b").unwrap();
        l1.on_push(redis::PushInfo {
            kind: redis::PushKind::Disconnection,
            data: vec![],
        });
        assert_eq!(l1.store.get("a"), None, "flushed");
        assert!(!l1.install("b", ticket, v("2"), None, TTL));
        assert!(l1.ticket("b").is_none(), "no fills while disarmed");
        assert_eq!(l1.flushes(), 1);
    }

    #[tokio::test]
    async fn an_invalidation_wakes_the_keys_waiter_even_before_it_waits() {
        let l1 = armed();
        let waiting = l1.waiters.register("k");
        let other = l1.waiters.register("other");
        // Arrives between two reads: kept as a permit.
        l1.on_push(invalidate(&["k"]));
        tokio::time::timeout(Duration::from_secs(5), waiting.notify.notified())
            .await
            .expect("woken by the invalidation of its key");
        let not_woken =
            tokio::time::timeout(Duration::from_millis(20), other.notify.notified()).await;
        assert!(not_woken.is_err(), "another key's waiter sleeps on");
        drop(waiting);
        drop(other);
        assert_eq!(l1.waiters.count.load(SeqCst), 0);
        assert!(lock(&l1.waiters.table).is_empty());
    }

    #[test]
    fn a_local_forget_refuses_older_fills() {
        let l1 = armed();
        let ticket = l1.ticket("k").unwrap();
        assert!(!l1.forget(b"k"), "nothing held");
        assert!(!l1.install("k", ticket, v("old"), None, TTL));
        let ticket = l1.ticket("k").unwrap();
        assert!(l1.install("k", ticket, v("new"), None, TTL));
        assert!(l1.forget(b"k"), "a copy held, and dropped");
        assert!(!l1.forget(b"k"));
    }
}
