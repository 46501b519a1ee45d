//! The fill lock: one load of a key at a time across every process that
//! shares the store, where the single flight covers one process.
//!
//! # Protocol
//!
//! Everything happens at the entry's own key, so each step is one
//! single-key command (one slot on Redis Cluster, no key beside it to keep
//! in step):
//!
//! - A caller whose lookup finds nothing writes a *placeholder* there
//!   (`SET NX` for the lease): a random token in a 19-byte envelope that
//!   no reader takes for a value ([`envelope::is_placeholder`]). It now
//!   holds the lock and runs the body, renewing the lease every third of
//!   it (compare-and-expire: only while the placeholder is still its own).
//! - It stores the value *over its own placeholder* (compare-and-set), so
//!   a holder that lost the lock (its lease ran out and a successor took
//!   it, or a write-through or an eviction replaced it) overwrites nothing.
//!   A body that fails, a value the policy does not store, a cancelled
//!   call: the placeholder is removed (compare-and-delete), and the next
//!   caller takes the lock at once.
//! - A caller whose lookup finds a placeholder waits: it reads the key
//!   again when woken, until a value is there (a hit), the key is empty (it
//!   takes the lock: the holder gave up or died and its lease ran out), or
//!   `lock_wait` has passed (it runs the body itself, counted in
//!   [`Stats::lock_timeouts`](crate::Stats::lock_timeouts)). With the L1,
//!   its reads are tracked, so the holder's write wakes it through the
//!   invalidation; without, it polls with a jittered backoff from 5 ms to
//!   50 ms. In each process one caller per key waits this way; the others
//!   wait for it in the single flight.
//!
//! A placeholder expires with its lease, so a holder killed mid-body
//! delays its waiters by at most one lease.

use super::l1::{Ticket, Waiting};
use super::Engine;
use crate::backend::{Condition, TaggedWrite};
use crate::envelope::{self, Placeholder};
use crate::{BackendError, Operation};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The default lease of a fill lock.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(3);

/// The first and the longest pause between two reads of a waiter.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(50);

/// The fill lock's settings, resolved by the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockSettings {
    /// How long a placeholder lives without renewal.
    pub(crate) lease: Duration,
    /// How long a caller waits for another process's fill.
    pub(crate) wait: Duration,
}

impl LockSettings {
    /// The waiting time that goes with a lease, unless one is set: two
    /// leases, so that a waiter outlasts a holder that died (one lease) and
    /// a successor's body shorter than a lease.
    pub(crate) fn wait_for(lease: Duration) -> Duration {
        lease.saturating_mul(2)
    }
}

/// Placeholders this process gave up without removing them yet (a call
/// cancelled mid-body, a write that failed), each until its lease would
/// have run out. A caller of this process that finds one takes the lock
/// over at once, rather than wait for the lease as for another process's.
#[derive(Default)]
pub(crate) struct Abandoned(std::sync::Mutex<Vec<(Placeholder, Instant)>>);

impl Abandoned {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Placeholder, Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, placeholder: Placeholder, until: Instant) {
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|(_, until)| *until > now);
        all.push((placeholder, until));
    }

    fn remove(&self, placeholder: &Placeholder) {
        self.lock().retain(|(p, _)| p != placeholder);
    }

    /// Whether `bytes` is a placeholder this process abandoned.
    pub(crate) fn contains(&self, bytes: &[u8]) -> bool {
        let all = self.lock();
        !all.is_empty() && all.iter().any(|(p, _)| p[..] == *bytes)
    }
}

/// A fill lock this caller holds: its placeholder at the entry's key.
/// Dropped unreleased (a cancelled call, a panic, a failed write), it is
/// marked abandoned (the next caller here takes it over) and removed from
/// a task of its own, tried again while the connection recovers, so that
/// the next caller elsewhere need not wait out the lease either.
pub(crate) struct Held<'a> {
    engine: &'a Engine,
    key: &'a str,
    placeholder: Placeholder,
    lease: Duration,
    settled: bool,
}

impl Held<'_> {
    /// The bytes the value's write must find at the key.
    pub(crate) fn condition(&self) -> Condition<'_> {
        Condition::Holds(&self.placeholder)
    }

    /// The placeholder was replaced (by this caller's value, or by someone
    /// else's): nothing to remove.
    pub(crate) fn settle(mut self) {
        self.settled = true;
    }

    /// Gives the lock up without a value, within `budget`. With `mark`
    /// (the result is one the policy does not store: a `None`), the
    /// placeholder is marked given up for a lease, and the waiting callers
    /// load for themselves, at once, as without the lock; without (the body
    /// failed), it is removed, and they take turns. If Redis does not
    /// answer in time, the lock is left to [`Drop`]: marked abandoned here
    /// and removed in the background.
    pub(crate) async fn release(mut self, budget: Duration, mark: bool) {
        let l2 = &self.engine.l2;
        let done = if mark {
            let marked = envelope::gave_up(&self.placeholder);
            let how = TaggedWrite::untagged(Condition::Holds(&self.placeholder));
            let bytes = Bytes::copy_from_slice(&marked);
            l2.write(self.key, bytes, None, self.lease, how, budget)
                .await
        } else {
            l2.delete_if_within(self.key, &self.placeholder, budget)
                .await
        };
        match done {
            Ok(held) => {
                self.settled = true;
                l2.count_release(self.engine, held);
            }
            Err(e) => self.engine.fail_open(Operation::Lock, self.key, &e),
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (Some(engine), Ok(runtime)) = (
            self.engine.me.upgrade(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return; // the lease runs out by itself
        };
        let key = self.key.to_owned();
        let placeholder = self.placeholder;
        let until = Instant::now() + self.lease;
        engine.abandoned.add(placeholder, until);
        runtime.spawn(async move {
            let mut pause = Duration::from_millis(20);
            loop {
                match engine.l2.delete_if(&key, &placeholder).await {
                    Ok(held) => {
                        engine.l2.count_release(&engine, held);
                        break;
                    }
                    Err(_) if Instant::now() + pause < until => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                    Err(_) => break, // the lease runs out by itself
                }
            }
            engine.abandoned.remove(&placeholder);
        });
    }
}

/// What a caller that found another's placeholder ends with.
pub(crate) enum Waited<'a> {
    /// The value the holder stored, and the ticket of the tracked read
    /// that found it (for the L1).
    Value(Bytes, Option<Ticket>),
    /// The key was empty: this caller holds the lock now.
    Acquired(Held<'a>),
    /// `lock_wait` passed: load without the lock.
    TimedOut,
    /// The holder had no value to store (a `None` not kept): load without
    /// the lock, as every caller would without it.
    GaveUp,
    /// The store failed (counted): load without it.
    Failed,
}

impl crate::engine::L2 {
    fn count_release(&self, engine: &Engine, held: bool) {
        engine.recovered();
        if !held {
            tracing::debug!("fill lock given up after it was lost");
        }
    }
}

impl Engine {
    /// Tries to take the lock of `key` (which a lookup just found empty).
    pub(crate) async fn try_lock<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> Result<Option<Held<'a>>, BackendError> {
        let budget = self.l2.guard().timeout();
        self.lock_over(key, lease, Condition::Absent, budget).await
    }

    /// Takes the lock of `key` over from a placeholder this process
    /// abandoned (`found`), or tries to take it if the key is empty, within
    /// `budget`.
    pub(crate) async fn lock_if<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
        found: Option<&[u8]>,
        budget: Duration,
    ) -> Result<Option<Held<'a>>, BackendError> {
        match found {
            Some(old) => {
                let old: Placeholder = old.try_into().unwrap_or_default();
                let held = self
                    .lock_over(key, lease, Condition::Holds(&old), budget)
                    .await;
                if matches!(held, Ok(Some(_))) {
                    self.abandoned.remove(&old);
                }
                held
            }
            None => self.lock_over(key, lease, Condition::Absent, budget).await,
        }
    }

    /// Writes a new placeholder at `key` if its value meets `condition`.
    async fn lock_over<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
        condition: Condition<'_>,
        budget: Duration,
    ) -> Result<Option<Held<'a>>, BackendError> {
        let placeholder = envelope::placeholder();
        let how = TaggedWrite::untagged(condition);
        let bytes = Bytes::copy_from_slice(&placeholder);
        // Made first: a write that times out may still have been applied,
        // and then the placeholder is this process's to clean up.
        let held = Held {
            engine: self,
            key,
            placeholder,
            lease,
            settled: false,
        };
        match self.l2.write(key, bytes, None, lease, how, budget).await {
            Ok(true) => Ok(Some(held)),
            Ok(false) => {
                held.settle();
                Ok(None)
            }
            // Not sent: nothing to clean up.
            Err(e @ BackendError::CircuitOpen(_)) => {
                held.settle();
                Err(e)
            }
            // Dropped unsettled: marked abandoned, removed in the background.
            Err(e) => Err(e),
        }
    }

    /// Waits for the fill of the process holding `key`'s lock. `tags`: the
    /// call's tag keys, whose versions each read refreshes into
    /// `versions` (a caller that takes the lock writes against them).
    pub(crate) async fn wait_for_fill<'a>(
        &'a self,
        key: &'a str,
        tags: Option<&[String]>,
        versions: &mut Option<Vec<u64>>,
        settings: LockSettings,
    ) -> Waited<'a> {
        let give_up = Instant::now() + settings.wait;
        let waiting: Option<Waiting<'_>> = self.l1.as_deref().map(|l1| l1.waiters.register(key));
        let mut pause = Backoff::new(key);
        loop {
            let wake = (Instant::now() + pause.next()).min(give_up);
            match &waiting {
                Some(w) => {
                    let _ = tokio::time::timeout_at(wake, w.notify.notified()).await;
                }
                None => tokio::time::sleep_until(wake).await,
            }
            if Instant::now() >= give_up {
                self.counters.lock_timeout();
                tracing::debug!(key, "waited lock_wait for another process's fill; loading");
                return Waited::TimedOut;
            }
            let deadline = self.l2.guard().deadline();
            let ticket = self.ticket(key, deadline).await;
            let found = match tags {
                Some(tags) => self
                    .l2
                    .get_tagged(key, tags, deadline, ticket.is_some())
                    .await
                    .map(|(found, v)| {
                        *versions = Some(v);
                        found
                    }),
                None => self.l2.get(key, deadline, ticket.is_some()).await,
            };
            let found = match found {
                Ok(Some(bytes)) if !envelope::is_placeholder(&bytes) => {
                    return Waited::Value(bytes, ticket)
                }
                // Its holder had no value to store: load without the lock.
                Ok(Some(bytes)) if envelope::is_gave_up(&bytes) => return Waited::GaveUp,
                // Held by a caller that may still be at work.
                Ok(Some(bytes)) if !self.abandoned.contains(&bytes) => continue,
                // Empty (the holder gave up, or died and its lease ran
                // out), or abandoned by this process: taken over at once.
                Ok(found) => found,
                Err(e) => {
                    self.fail_open(Operation::Get, key, &e);
                    return Waited::Failed;
                }
            };
            let budget = self.l2.guard().timeout();
            match self
                .lock_if(key, settings.lease, found.as_deref(), budget)
                .await
            {
                Ok(Some(held)) => {
                    self.counters.lock_takeover();
                    return Waited::Acquired(held);
                }
                // Someone else took it: wait for that one.
                Ok(None) => pause.restart(),
                Err(e) => {
                    self.fail_open(Operation::Lock, key, &e);
                    return Waited::Failed;
                }
            }
        }
    }

    /// Runs `body` while holding `held`, renewing its lease every third of
    /// it, on this task (no task of its own, so a cancelled call stops
    /// renewing with it).
    pub(crate) fn holding<'h, 'a, F: Future>(
        &self,
        held: &'h Held<'a>,
        lease: Duration,
        body: Pin<&'h mut F>,
    ) -> impl Future<Output = F::Output> + use<'h, 'a, F> {
        let every = (lease / 3).max(Duration::from_millis(1));
        Renewing {
            body,
            every,
            timer: Box::pin(tokio::time::sleep(every)),
            renewal: None,
            held,
            lease,
            lost: false,
        }
    }
}

/// A renewal under way.
type Renewal<'h> = Pin<Box<dyn Future<Output = Result<bool, BackendError>> + Send + 'h>>;

/// The body, polled together with the lease's renewals.
struct Renewing<'h, 'a, F: Future> {
    body: Pin<&'h mut F>,
    every: Duration,
    timer: Pin<Box<Sleep>>,
    renewal: Option<Renewal<'h>>,
    held: &'h Held<'a>,
    lease: Duration,
    /// The lock was lost: renewing stops (the write will be refused).
    lost: bool,
}

impl<F: Future> Future for Renewing<'_, '_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Every field is `Unpin` (the body is behind a pinned reference).
        let this = Pin::into_inner(self);
        if let Poll::Ready(out) = this.body.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        while !this.lost {
            if let Some(renewal) = &mut this.renewal {
                let Poll::Ready(result) = renewal.as_mut().poll(cx) else {
                    break;
                };
                this.renewal = None;
                let (engine, key) = (this.held.engine, this.held.key);
                match result {
                    Ok(true) => engine.recovered(),
                    Ok(false) => {
                        tracing::debug!(key, "fill lock lost while the body ran; its value will not be stored over a newer one");
                        this.lost = true;
                    }
                    // Tried again at the next renewal; the lease may still run.
                    Err(e) => engine.fail_open(Operation::Lock, key, &e),
                }
                continue;
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                break;
            }
            let next = Instant::now() + this.every;
            this.timer.as_mut().reset(next);
            let (held, lease) = (this.held, this.lease);
            this.renewal = Some(Box::pin(async move {
                held.engine
                    .l2
                    .expire_if(held.key, &held.placeholder, lease)
                    .await
            }));
        }
        Poll::Pending
    }
}

/// A waiter's pauses: doubling from [`FIRST_POLL`] to [`LONGEST_POLL`],
/// each drawn at random from its upper half, so waiters in several
/// processes do not read in step.
struct Backoff {
    step: Duration,
    state: u64,
}

impl Backoff {
    fn new(key: &str) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(key.as_bytes());
        Backoff {
            step: FIRST_POLL,
            state: h.finish() | 1,
        }
    }

    fn next(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let half = self.step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        let pause = half + Duration::from_nanos(self.state % nanos);
        self.step = (self.step * 2).min(LONGEST_POLL);
        pause
    }

    fn restart(&mut self) {
        self.step = FIRST_POLL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_bound_and_stay_jittered() {
        let mut b = Backoff::new("k");
        let pauses: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(pauses[0] >= FIRST_POLL / 2 && pauses[0] <= FIRST_POLL);
        for p in &pauses[5..] {
            assert!(*p >= LONGEST_POLL / 2 && *p <= LONGEST_POLL, "{p:?}");
        }
        let distinct: std::collections::HashSet<_> = pauses[5..].iter().collect();
        assert!(distinct.len() > 1, "jittered: {pauses:?}");
        b.restart();
        assert!(b.next() <= FIRST_POLL);
    }

    #[test]
    fn the_default_wait_outlasts_a_dead_holder() {
        assert_eq!(LockSettings::wait_for(DEFAULT_LEASE), DEFAULT_LEASE * 2);
    }
}
