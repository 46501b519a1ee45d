//! The circuit breaker at the L2 choke point.
//!
//! Closed, every command goes to the tier. After `threshold` failures in a
//! row (timeouts, dropped or refused connections, failed authentication;
//! not error replies such as `OOM`, which come from a server that answers),
//! it opens: commands fail at once with [`BackendError::CircuitOpen`], so a
//! `#[cached]` call goes straight to its L1 and its body with no wait on
//! Redis. After `cooldown`, one command goes through as a probe
//! (half-open); its success closes the breaker, its failure opens it for
//! another `cooldown`.
//!
//! The closed state costs a command one relaxed load before it runs and one
//! after (a store only when a failure streak ends).

use crate::BackendError;
use std::sync::atomic::{
    AtomicU32, AtomicU64, AtomicU8,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::time::Duration;
use tokio::time::Instant;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The breaker's settings, checked by the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerSettings {
    /// Failures in a row that open it; `None`: never opens.
    pub(crate) threshold: Option<u32>,
    /// How long it stays open before a probe.
    pub(crate) cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            threshold: Some(5),
            cooldown: Duration::from_millis(500),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Breaker {
    settings: BreakerSettings,
    state: AtomicU8,
    /// Failures in a row while closed.
    failures: AtomicU32,
    /// When it last opened, in nanoseconds after `epoch`.
    opened_at: AtomicU64,
    epoch: Instant,
    /// Closed → open transitions.
    opens: AtomicU64,
    /// Commands refused while open.
    skips: AtomicU64,
}

/// A command the breaker let through; tell it how the command went with
/// [`Pass::done`]. A probe dropped before that (its caller gave up) lets
/// the next command probe at once.
#[must_use]
pub(crate) struct Pass<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Breaker {
    pub(crate) fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            epoch: Instant::now(),
            opens: AtomicU64::new(0),
            skips: AtomicU64::new(0),
        }
    }

    /// Whether a command may go to the tier now.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Pass<'_>, BackendError> {
        if self.state.load(Relaxed) == CLOSED {
            return Ok(Pass {
                breaker: self,
                probe: false,
            });
        }
        self.admit_slow()
    }

    #[cold]
    fn admit_slow(&self) -> Result<Pass<'_>, BackendError> {
        // Acquire: the opening's time is seen with the state it set.
        let state = self.state.load(Acquire);
        if state == CLOSED {
            return Ok(Pass {
                breaker: self,
                probe: false,
            });
        }
        let since = self.since_open();
        if state == OPEN
            && since >= self.settings.cooldown
            && self
                .state
                .compare_exchange(OPEN, HALF_OPEN, Relaxed, Relaxed)
                .is_ok()
        {
            return Ok(Pass {
                breaker: self,
                probe: true,
            });
        }
        self.skips.fetch_add(1, Relaxed);
        Err(BackendError::CircuitOpen(
            self.settings.cooldown.saturating_sub(since),
        ))
    }

    fn now(&self) -> u64 {
        u64::try_from(Instant::now().duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn since_open(&self) -> Duration {
        Duration::from_nanos(self.now().saturating_sub(self.opened_at.load(Acquire)))
    }

    /// Opens it from `from`; `false` if it was not in that state (a late
    /// failure of a command let through before it opened must not push
    /// the cool-down back).
    fn open(&self, from: u8) -> bool {
        if self.state.load(Relaxed) != from {
            return false;
        }
        self.opened_at.store(self.now(), Release);
        self.state
            .compare_exchange(from, OPEN, AcqRel, Relaxed)
            .is_ok()
    }

    /// `true` if this failure opened the breaker.
    fn failed(&self, probe: bool, error: &BackendError) -> bool {
        if probe {
            self.open(HALF_OPEN);
            tracing::debug!(%error, "cache backend probe failed; the circuit breaker stays open");
            return false;
        }
        let Some(threshold) = self.settings.threshold else {
            return false;
        };
        let failures = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures >= threshold && self.open(CLOSED) {
            self.opens.fetch_add(1, Relaxed);
            crate::observe::breaker_opened();
            tracing::warn!(
                failures,
                cooldown = ?self.settings.cooldown,
                %error,
                "cache backend failing: circuit breaker open; commands skip it (calls run their bodies) and one probe goes through each cooldown"
            );
            return true;
        }
        false
    }

    fn succeeded(&self, probe: bool) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if probe
            && self
                .state
                .compare_exchange(HALF_OPEN, CLOSED, Relaxed, Relaxed)
                .is_ok()
        {
            crate::observe::breaker_closed();
            tracing::info!("cache backend answering again: circuit breaker closed");
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Relaxed) != CLOSED
    }

    pub(crate) fn opens(&self) -> u64 {
        self.opens.load(Relaxed)
    }

    pub(crate) fn skips(&self) -> u64 {
        self.skips.load(Relaxed)
    }
}

impl Pass<'_> {
    /// Records how the command went; `true` if this failure opened the
    /// breaker.
    #[inline]
    pub(crate) fn done<T>(mut self, result: &Result<T, BackendError>) -> bool {
        let probe = std::mem::take(&mut self.probe);
        match result {
            Ok(_) => {
                self.breaker.succeeded(probe);
                false
            }
            Err(error) if is_outage(error) => self.breaker.failed(probe, error),
            // An answer from a working server (an error reply): not a
            // failure of the connection, and a probe that got one succeeded.
            Err(_) => {
                self.breaker.succeeded(probe);
                false
            }
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe {
            // Cancelled: no verdict. Open, with the cool-down already over.
            let breaker = self.breaker;
            let back = breaker.now().saturating_sub(
                u64::try_from(breaker.settings.cooldown.as_nanos()).unwrap_or(u64::MAX),
            );
            breaker.opened_at.store(back, Release);
            let _ = breaker
                .state
                .compare_exchange(HALF_OPEN, OPEN, AcqRel, Relaxed);
        }
    }
}

/// Whether an error says the tier is unreachable or too slow, rather than
/// a reply from a server that works.
pub(crate) fn is_outage(error: &BackendError) -> bool {
    match error {
        BackendError::Timeout(_) => true,
        BackendError::Redis(e) => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_unrecoverable_error()
        }
        // A server that refuses every connection (authentication, TLS) is
        // as good as down; an ACL that refuses one command is an answer.
        BackendError::Refused { source, .. } => source.code() != Some("NOPERM"),
        BackendError::Other(_) => true,
        BackendError::Unsupported(_) | BackendError::CircuitOpen(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> Result<(), BackendError> {
        Err(BackendError::Timeout(Duration::from_millis(1)))
    }

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(BreakerSettings {
            threshold: Some(threshold),
            cooldown: Duration::from_secs(1),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_probes_after_the_cooldown_and_closes_on_success() {
        let b = breaker(3);
        for _ in 0..2 {
            let _ = b.admit().unwrap().done(&timeout());
        }
        // A success ends the streak.
        let _ = b.admit().unwrap().done(&Ok(()));
        for _ in 0..2 {
            let _ = b.admit().unwrap().done(&timeout());
        }
        assert!(!b.is_open());
        let _ = b.admit().unwrap().done(&timeout());
        assert!(b.is_open());
        assert_eq!(b.opens(), 1);
        let Err(BackendError::CircuitOpen(left)) = b.admit() else {
            panic!("admitted while open");
        };
        assert_eq!(left, Duration::from_secs(1));
        assert_eq!(b.skips(), 1);

        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = b.admit().unwrap();
        // One probe at a time.
        assert!(b.admit().is_err());
        let _ = probe.done(&timeout());
        assert!(b.is_open() && b.admit().is_err(), "a failed probe reopens");
        assert_eq!(b.opens(), 1, "a failed probe is not a new opening");

        tokio::time::advance(Duration::from_secs(1)).await;
        let _ = b.admit().unwrap().done(&Ok(()));
        assert!(!b.is_open());
        let _ = b.admit().unwrap().done(&Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_failure_does_not_push_the_cool_down_back() {
        let b = breaker(1);
        let late = b.admit().unwrap();
        let _ = b.admit().unwrap().done(&timeout());
        assert!(b.is_open());
        tokio::time::advance(Duration::from_millis(900)).await;
        // A command let through before the opening fails now.
        let _ = late.done(&timeout());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(
            b.admit().is_ok(),
            "the probe is due one cool-down after the opening"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_lets_the_next_command_probe() {
        let b = breaker(1);
        let _ = b.admit().unwrap().done(&timeout());
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b.admit().unwrap());
        assert!(b.is_open());
        let _ = b.admit().unwrap().done(&Ok(()));
        assert!(!b.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn error_replies_are_not_outages() {
        let b = breaker(1);
        let oom = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "OOM command not allowed",
        ));
        let _ = b
            .admit()
            .unwrap()
            .done(&Err::<(), _>(BackendError::Redis(oom)));
        assert!(!b.is_open());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let opened = b
            .admit()
            .unwrap()
            .done(&Err::<(), _>(BackendError::Redis(refused.into())));
        assert!(opened && b.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_threshold_it_never_opens() {
        let b = Breaker::new(BreakerSettings {
            threshold: None,
            cooldown: Duration::from_secs(1),
        });
        for _ in 0..100 {
            let _ = b.admit().unwrap().done(&timeout());
        }
        assert!(!b.is_open());
    }
}
