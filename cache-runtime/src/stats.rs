//! Hit, miss and error counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// Every lookup counts once, as a hit, a miss, an error or a breaker skip: lookups through
/// `#[cached]` functions and through [`Cache::get`](crate::Cache::get). A
/// lookup that failed (the backend down, a missed deadline) is an error
/// only, so an outage does not lower the hit rate. A caller that waited for
/// another caller's load of the same key counts as a hit.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use std::time::Duration;
/// let cache = cache_runtime::Cache::builder().build()?;
/// cache.set("k", &1, Duration::from_secs(9)).await?;
/// for _ in 0..3 {
///     cache.get::<u32>("k").await?; // hit
/// }
/// cache.get::<u32>("absent").await?; // miss
/// let s = cache.stats();
/// assert_eq!((s.hits, s.misses), (3, 1));
/// assert_eq!(s.hit_rate(), 0.75);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Of [`hits`](Stats::hits), those answered by the L1 in front of Redis
    /// (see [`CacheBuilder::l1_capacity`](crate::CacheBuilder::l1_capacity))
    /// without a round trip. Always 0 without an L1; the memory store's hits
    /// count only in `hits`.
    pub l1_hits: u64,
    /// Times the L1 was emptied at once: its invalidations stopped (the
    /// connection dropped, Redis restarted) or Redis flushed the database.
    pub l1_flushes: u64,
    /// Keys Redis reported changed to the L1 (each removes a copy if there
    /// is one): a measure of the invalidation traffic this process receives.
    pub l1_invalidations: u64,
    /// Of [`hits`](Stats::hits), those that found a stored `None`: a
    /// `#[cached(cache_none)]` or `#[cached(none_ttl = "30s")]` function
    /// whose body returned `None` for these arguments before. A stored
    /// `None` is a hit, not a miss: the body does not run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// #[cache_runtime::cached(ttl = "1h", none_ttl = "30s")]
    /// async fn find(id: u64) -> Option<String> {
    ///     None
    /// }
    /// let cache = cache_runtime::Cache::builder().build().unwrap();
    /// cache.scope(find(1)).await; // a miss: the body runs, `None` is stored
    /// cache.scope(find(1)).await; // a hit of the stored `None`
    /// let s = cache.stats();
    /// assert_eq!((s.misses, s.hits, s.none_hits), (1, 1, 1));
    /// # }
    /// ```
    pub none_hits: u64,
    /// Lookups that found nothing usable (absent, expired or undecodable).
    pub misses: u64,
    /// Backend failures and timeouts, on any operation.
    pub errors: u64,
    /// Stored values that could not be decoded (each also counts as a miss).
    pub decode_failures: u64,
    /// Whether the circuit breaker in front of the backend is open now
    /// (see [`CacheBuilder::breaker_threshold`](crate::CacheBuilder::breaker_threshold)).
    pub breaker_open: bool,
    /// Times the circuit breaker opened.
    pub breaker_opens: u64,
    /// Commands the open breaker refused without a round trip: lookups,
    /// writes and evictions that went without the backend. A lookup the
    /// breaker refused is in neither [`misses`](Stats::misses) nor
    /// [`errors`](Stats::errors).
    pub breaker_skips: u64,
    /// Lookups that found another process filling the key under the fill
    /// lock (see [`CacheBuilder::fill_lock`](crate::CacheBuilder::fill_lock))
    /// and got its value: each is also a hit, and ran no body.
    pub lock_waits: u64,
    /// Lookups that waited [`lock_wait`](crate::CacheBuilder::lock_wait) for
    /// another process's fill without a value, and ran the body themselves.
    pub lock_timeouts: u64,
    /// Lookups that waited for another process's fill and then took the
    /// lock themselves: the holder gave up, or died and its lease ran out.
    pub lock_takeovers: u64,
    /// Of [`hits`](Stats::hits), those that returned a value past its TTL
    /// (`#[cached(stale = "1h")]`); each starts a refresh of the key unless
    /// one is under way.
    pub stale_hits: u64,
    /// Background refreshes that stored a new value.
    pub refreshes: u64,
    /// Background refreshes whose body failed: the stale value stays until
    /// its window ends.
    pub refresh_failures: u64,
}

impl Stats {
    /// `hits / (hits + misses)`: the share of the lookups the backend
    /// answered that found a value (failed lookups, counted in
    /// [`errors`](Stats::errors), are left out), or 0 before the first.
    ///
    /// ```
    /// assert_eq!(cache_runtime::Stats::default().hit_rate(), 0.0);
    /// ```
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        hit_rate(self.hits, self.misses)
    }
}

/// `hits / (hits + misses)`, or 0 when both are 0.
pub(crate) fn hit_rate(hits: u64, misses: u64) -> f64 {
    match hits + misses {
        0 => 0.0,
        total => hits as f64 / total as f64,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Hits answered by the L2 (or the memory store): an L1 hit bumps only
    /// `l1_hits`, one atomic per hit; the snapshot adds them up.
    hits: AtomicU64,
    l1_hits: AtomicU64,
    none_hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    decode_failures: AtomicU64,
    lock_waits: AtomicU64,
    lock_timeouts: AtomicU64,
    lock_takeovers: AtomicU64,
    stale_hits: AtomicU64,
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn l1_hit(&self) {
        self.l1_hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn none_hit(&self) {
        self.none_hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }
    /// A lookup counted as a miss got a value after all (another process's
    /// fill, waited for).
    pub(crate) fn miss_was_hit(&self) {
        self.misses.fetch_sub(1, Relaxed);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn decode_failure(&self) {
        self.decode_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn lock_wait(&self) {
        self.lock_waits.fetch_add(1, Relaxed);
    }
    pub(crate) fn lock_timeout(&self) {
        self.lock_timeouts.fetch_add(1, Relaxed);
    }
    pub(crate) fn lock_takeover(&self) {
        self.lock_takeovers.fetch_add(1, Relaxed);
    }
    pub(crate) fn stale_hit(&self) {
        self.stale_hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn refreshed(&self) {
        self.refreshes.fetch_add(1, Relaxed);
    }
    pub(crate) fn refresh_failed(&self) {
        self.refresh_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(Relaxed) + self.l1_hits.load(Relaxed),
            l1_hits: self.l1_hits.load(Relaxed),
            l1_flushes: 0,
            l1_invalidations: 0,
            none_hits: self.none_hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            decode_failures: self.decode_failures.load(Relaxed),
            breaker_open: false,
            breaker_opens: 0,
            breaker_skips: 0,
            lock_waits: self.lock_waits.load(Relaxed),
            lock_timeouts: self.lock_timeouts.load(Relaxed),
            lock_takeovers: self.lock_takeovers.load(Relaxed),
            stale_hits: self.stale_hits.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            refresh_failures: self.refresh_failures.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_is_hits_over_lookups() {
        let s = Stats {
            hits: 1,
            misses: 3,
            ..Stats::default()
        };
        assert_eq!(s.hit_rate(), 0.25);
        let s = Stats {
            hits: 5,
            misses: 0,
            ..Stats::default()
        };
        assert_eq!(s.hit_rate(), 1.0);
    }
}
