//! Stale-while-revalidate: the read path of a function with a stale
//! window, and the background refresh a stale hit starts.
//!
//! A value of such a function is written fresh for its TTL (the envelope's
//! fresh-until) and kept in the store `stale` longer. A hit past the TTL
//! returns the value at once and starts one refresh in the background: one
//! per key in this process (a set of keys being refreshed), and one per key
//! across processes (a fill lock at `{prefix}:__lock:{key}`, leased and
//! renewed like the fill lock, so no two processes refresh a key at once).
//! The refresh runs the body from an owned copy of the arguments and writes
//! its value only over the value it refreshes (a compare-and-set on the
//! envelope's header): a value written meanwhile (a write-through, another
//! refresh) stays, and so does an eviction. A refresh whose body fails
//! writes nothing: the stale value is served until its window ends
//! (stale-if-error), then the key expires and the next caller runs the
//! body itself, getting its error if it fails again.

use super::read::Target;
use super::Engine;
use crate::backend::{Condition, TaggedWrite};
use crate::call::{Made, Policy, Site, Typed, Want, L1 as SiteL1};
use crate::envelope;
use crate::flight::Join;
use crate::observe::{self, Outcome};
use crate::{Cache, Operation};
use bytes::Bytes;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tracing::Instrument as _;

/// Keys this process is refreshing.
#[derive(Default)]
pub(crate) struct Refreshing(Mutex<HashSet<String>>);

impl Refreshing {
    /// Claims `key`; `false` if a refresh of it is under way here.
    fn claim(&self, key: &str) -> bool {
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(key.to_owned())
    }

    fn release(&self, key: &str) {
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(key);
    }
}

/// Whether a hit starts a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    No,
    /// Past its TTL (`stale`).
    Stale,
    /// Still fresh, drawn for an early refresh (`early_refresh`).
    Early,
}

/// Whether the hit of `bytes` (a value's envelope: fresh-until at 12, the
/// computing time at 28 in version 3) starts a refresh.
fn due(target: &Target, bytes: &[u8]) -> Due {
    if bytes.len() < 20 || bytes[..2] != *b"CR" {
        return Due::No;
    }
    let fresh_until = read_u64(&bytes[12..20]);
    let now = envelope::now_ms();
    if now >= fresh_until {
        // Past it: stale if there is a window (without one, the store let
        // the value go with its TTL, and this is a last read of it).
        return if target.stale.is_some() {
            Due::Stale
        } else {
            Due::No
        };
    }
    let Some(beta) = target.early else {
        return Due::No;
    };
    let load_ms = match bytes.get(2..32) {
        Some(h) if h[0] == 3 => u32::from_be_bytes([h[26], h[27], h[28], h[29]]),
        _ => 0,
    };
    if xfetch(now, fresh_until, load_ms, beta, uniform()) {
        Due::Early
    } else {
        Due::No
    }
}

/// The XFetch rule (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh
/// when `now − Δ·β·ln(u) ≥ fresh_until`, for `u` uniform in (0, 1]. The
/// closer the expiry, and the longer the value takes to compute, the more
/// likely; with `Δ = 0`, never before the expiry.
fn xfetch(now_ms: u64, fresh_until_ms: u64, load_ms: u32, beta: f64, u: f64) -> bool {
    let ahead = -(f64::from(load_ms)) * beta * u.ln();
    now_ms as f64 + ahead >= fresh_until_ms as f64
}

/// A draw uniform in (0, 1], from a per-thread xorshift.
fn uniform() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(0);
            h.finish() | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // 53 random bits, shifted into (0, 1].
        ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
    })
}

fn read_u64(b: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(b);
    u64::from_be_bytes(word)
}

/// The read-through path of a `#[cached(stale = ...)]` function: the
/// plain path's steps, with `make` called at most once, for the body on a
/// miss or for a refresh after a stale hit. Not an `async fn`, for the
/// reason `get_or_compute` gives.
#[allow(clippy::manual_async_fn)]
pub(crate) fn get_or_refresh<P, Out, M, B, R>(
    site: &'static Site,
    target: Option<Target>,
    typed: Option<Typed<Out>>,
    make: M,
) -> impl Future<Output = Out>
where
    P: Policy<Out> + Send + 'static,
    Out: Send + 'static,
    M: FnOnce(Want) -> Made<B, R>,
    B: Future<Output = Out>,
    R: Future<Output = Out> + Send + 'static,
{
    let span = observe::call_span(site.name(), target.as_ref().map(|t| t.key.as_str()));
    // Without a subscriber for the span, no span at all: not even a
    // disabled one's enter and exit on every poll.
    let traced = !span.is_disabled();
    let steps = async move {
        let Some(target) = target else {
            let out = body_of(make).await;
            observe::call_done(site, traced, Outcome::Uncached, false);
            return out;
        };
        let out = refresh_steps::<P, Out, M, B, R>(&target, typed, make).await;
        let outcome = target.outcome.get();
        observe::call_done(site, traced, outcome, target.tiered());
        out
    };
    if traced {
        futures_util::future::Either::Right(steps.instrument(span))
    } else {
        futures_util::future::Either::Left(steps)
    }
}

/// The body, from the function's `make`.
fn body_of<Out, M, B, R>(make: M) -> B
where
    M: FnOnce(Want) -> Made<B, R>,
    B: Future<Output = Out>,
{
    match make(Want::Body) {
        Made::Body(body) => body,
        Made::Refresh(_) => unreachable!("asked for the body"),
    }
}

/// The steps of [`get_or_refresh`] after resolving, each setting the
/// call's outcome.
async fn refresh_steps<P, Out, M, B, R>(target: &Target, typed: Option<Typed<Out>>, make: M) -> Out
where
    P: Policy<Out> + Send + 'static,
    Out: Send + 'static,
    M: FnOnce(Want) -> Made<B, R>,
    B: Future<Output = Out>,
    R: Future<Output = Out> + Send + 'static,
{
    let engine = &*target.cache.engine;

    // The memory store or the L1, in one lookup. An L1 copy is never
    // stale (it lives no longer than its value is fresh), but may be due
    // for an early refresh.
    let replace = match engine.l1_lookup::<P, Out>(target, typed) {
        Ok((out, entry)) => {
            let due = due(target, &entry.bytes);
            if due != Due::No {
                engine.refresh_due::<P, Out, _, R>(target, &entry.bytes, typed, make, due);
            }
            return out;
        }
        Err(undecodable) => undecodable,
    };
    let mut alone = false;
    let leader = loop {
        match engine.flights.join(&target.key) {
            Join::Follower(follower) => {
                match Box::pin(engine.follow::<P, Out>(target, follower)).await {
                    Ok(out) => return out,
                    Err(true) => continue,
                    // Its leader's result is not stored: load at once, without
                    // the fill lock, as every caller would without it.
                    Err(false) => {
                        alone = true;
                        break None;
                    }
                }
            }
            Join::Leader(leader) => break Some(leader),
        }
    };
    let fill = match Box::pin(engine.l2_lookup::<P, Out>(target, typed, replace)).await {
        Ok((out, bytes)) => {
            if let Some(leader) = leader {
                leader.finish(Some(bytes.clone()));
            }
            let due = due(target, &bytes);
            if due != Due::No {
                engine.refresh_due::<P, Out, _, R>(target, &bytes, typed, make, due);
            }
            return out;
        }
        Err(fill) => fill,
    };
    let mut fill = fill;
    fill.skip_lock = alone;
    let body = std::pin::pin!(body_of(make));
    Box::pin(engine.fill::<P, Out, B>(target, typed, fill, leader, body)).await
}

/// How long a process waits after a failed refresh of a key before the next
/// hit may start another.
const FAILED_REFRESH_PAUSE: Duration = Duration::from_secs(1);

/// How a refresh ended.
enum Refreshed {
    Stored,
    /// A newer value was written, or the entry removed, meanwhile.
    Refused,
    /// The body failed.
    Failed,
    /// Nothing to do or nothing written (already refreshed, not storable,
    /// the store failing).
    Nothing,
}

/// A key claimed in [`Refreshing`], released on drop.
struct Claim<'a> {
    engine: &'a Engine,
    key: &'a str,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.engine.refreshing.release(self.key);
    }
}

/// What a background refresh needs, owned.
struct Job<Out: 'static> {
    site: &'static Site,
    cache: Cache,
    key: String,
    ttl: Duration,
    none_ttl: Option<Duration>,
    stale: Option<Duration>,
    schema: u64,
    tags: Option<Vec<String>>,
    typed: Option<Typed<Out>>,
    /// The refreshed value's header: the write replaces only that value.
    header: Bytes,
}

impl Engine {
    /// The lock key of `key`'s refresh, in the reserved namespace.
    fn refresh_lock_key(&self, key: &str) -> String {
        let rest = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix(':'))
            .unwrap_or(key);
        format!("{}:__lock:{rest}", self.prefix)
    }

    /// Counts a hit that is due, and starts its refresh.
    fn refresh_due<P, Out, B, R>(
        &self,
        target: &Target,
        read: &Bytes,
        typed: Option<Typed<Out>>,
        make: impl FnOnce(Want) -> Made<B, R>,
        due: Due,
    ) where
        P: Policy<Out> + Send + 'static,
        Out: Send + 'static,
        R: Future<Output = Out> + Send + 'static,
    {
        if due == Due::Stale {
            self.counters.stale_hit();
            target.outcome.set(Outcome::Stale);
        }
        self.refresh::<P, Out, B, R>(target, read, typed, make);
    }

    /// Starts the refresh of `target` (whose stored bytes are `read`), unless
    /// one is under way in this process or there is no runtime to run it.
    fn refresh<P, Out, B, R>(
        &self,
        target: &Target,
        read: &Bytes,
        typed: Option<Typed<Out>>,
        make: impl FnOnce(Want) -> Made<B, R>,
    ) where
        P: Policy<Out> + Send + 'static,
        Out: Send + 'static,
        R: Future<Output = Out> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The refresh writes with a compare-and-set: a backend without one
        // serves the value until its window ends, unrefreshed.
        let caps = self.l2.caps();
        if !caps.compare_and_set && !caps.local {
            return;
        }
        if !self.refreshing.claim(&target.key) {
            return;
        }
        let Made::Refresh(future) = make(Want::Refresh) else {
            unreachable!("asked for a refresh")
        };
        let job = Job {
            site: target.site,
            cache: target.cache.clone(),
            key: target.key.clone(),
            ttl: target.ttl,
            none_ttl: target.none_ttl,
            stale: target.stale,
            schema: target.schema,
            tags: target.tagging.as_ref().map(|t| t.tags.clone()),
            typed: match target.l1 {
                SiteL1::Off => None,
                _ => typed,
            },
            header: read.slice(..envelope::HEADER_LEN.min(read.len())),
        };
        runtime.spawn(job.run::<P, R>(future));
    }
}

impl<Out: Send + 'static> Job<Out> {
    async fn run<P: Policy<Out>, R: Future<Output = Out>>(self, future: R) {
        let engine = &*self.cache.engine;
        let key = self.key.as_str();
        // The key is released however the task ends, a panicking body
        // included (tokio drops the task's future): it is refreshed again.
        let _claim = Claim { engine, key };
        let lock_key = engine.refresh_lock_key(key);
        // Across processes: one refresh per key (where the tier can hold
        // the lock; elsewhere, one per process).
        let held = match engine.lock {
            Some(settings) => match engine.try_lock(&lock_key, settings.lease).await {
                Ok(Some(held)) => Some((held, settings.lease)),
                Ok(None) => {
                    // Refreshing elsewhere: this process does not ask again
                    // on every hit meanwhile.
                    tokio::time::sleep(settings.lease / 3).await;
                    return;
                }
                Err(e) => {
                    engine.fail_open(Operation::Lock, &lock_key, &e);
                    return;
                }
            },
            None => None,
        };
        let stored = self.load_and_store::<P, R>(held.as_ref(), future).await;
        if let Some((held, _)) = held {
            held.release(engine.l2.guard().timeout(), false).await;
        }
        match stored {
            Refreshed::Stored => engine.counters.refreshed(),
            Refreshed::Refused => tracing::debug!(
                key,
                "refreshed value not stored: a newer value was written or the entry removed meanwhile"
            ),
            // A failing database is asked again after a pause, not on the
            // next hit.
            Refreshed::Failed => tokio::time::sleep(FAILED_REFRESH_PAUSE).await,
            Refreshed::Nothing => {}
        }
    }

    /// Runs the body and writes its value over the refreshed one.
    async fn load_and_store<P: Policy<Out>, R: Future<Output = Out>>(
        &self,
        held: Option<&(super::lock::Held<'_>, Duration)>,
        future: R,
    ) -> Refreshed {
        let engine = &*self.cache.engine;
        let key = self.key.as_str();
        // Still the value read (another process may have refreshed it just
        // before this one took the lock), and the tags' versions before the
        // body: a value computed across an invalidation of one is refused.
        let deadline = engine.l2.guard().deadline();
        let read = match &self.tags {
            Some(tags) => engine
                .l2
                .get_tagged(key, tags, deadline, false)
                .await
                .map(|(found, versions)| (found, Some(versions))),
            None => engine.l2.get(key, deadline, false).await.map(|f| (f, None)),
        };
        let versions = match read {
            Ok((Some(found), versions)) if found.starts_with(&self.header) => versions,
            Ok(_) => return Refreshed::Nothing,
            Err(e) => {
                engine.fail_open(Operation::Get, key, &e);
                return Refreshed::Nothing;
            }
        };
        let future = std::pin::pin!(future);
        let started = tokio::time::Instant::now();
        let out = match held {
            Some((held, lease)) => engine.holding(held, *lease, future).await,
            None => future.await,
        };
        let load = started.elapsed();
        observe::load(self.site, P::failed(&out), load);
        observe::refresh(self.site, P::failed(&out));
        if P::failed(&out) {
            engine.counters.refresh_failed();
            tracing::debug!(
                key,
                "refresh failed: the stale value is served until its window ends"
            );
            return Refreshed::Failed;
        }
        let ttl = match self.none_ttl {
            Some(ttl) if P::absent(&out) => ttl,
            _ => self.ttl,
        };
        let Some(bytes) = P::cacheable(&out)
            .and_then(|value| engine.encode_loaded(key, value, ttl, self.schema, load))
        else {
            return Refreshed::Nothing;
        };
        let kept = match self.stale {
            Some(stale) => ttl.saturating_add(stale).min(super::MAX_TTL),
            None => ttl,
        };
        let copy = match (engine.l2.caps().local, self.typed) {
            (true, Some(t)) => (t.to_any)(&out),
            _ => None,
        };
        let how = TaggedWrite {
            tags: self.tags.as_deref().unwrap_or_default(),
            expected: versions.as_deref(),
            condition: Condition::StartsWith(&self.header),
        };
        let _forget = engine.forgetting(key);
        let budget = engine.l2.guard().timeout();
        match engine.l2.write(key, bytes, copy, kept, how, budget).await {
            Ok(true) => {
                engine.recovered();
                Refreshed::Stored
            }
            Ok(false) => {
                engine.recovered();
                Refreshed::Refused
            }
            Err(e) => {
                engine.fail_open(Operation::Set, key, &e);
                Refreshed::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfetch_fires_with_probability_e_to_the_minus_gap_over_delta_beta() {
        // P(−Δ·β·ln u ≥ gap) = e^(−gap / (Δ·β)) for u uniform: counted
        // over a fine grid of u, so the test is exact, not sampled.
        let grid = 100_000;
        let share = |gap_ms: u64, load_ms: u32, beta: f64| {
            let fresh_until = 1_000_000;
            let hits = (1..=grid)
                .filter(|&i| {
                    let u = f64::from(i) / f64::from(grid);
                    xfetch(fresh_until - gap_ms, fresh_until, load_ms, beta, u)
                })
                .count();
            hits as f64 / f64::from(grid)
        };
        for (gap, load, beta) in [
            (100, 100, 1.0),
            (200, 100, 1.0),
            (100, 100, 2.0),
            (50, 200, 0.5),
        ] {
            let expected = (-(gap as f64) / (f64::from(load) * beta)).exp();
            let got = share(gap, load, beta);
            assert!(
                (got - expected).abs() < 1e-3,
                "gap {gap} Δ {load} β {beta}: {got} vs {expected}"
            );
        }
        // No computing time recorded: never before the expiry; at it, always.
        assert_eq!(share(1, 0, 1.0), 0.0);
        assert_eq!(share(0, 0, 1.0), 1.0);
    }

    #[test]
    fn draws_are_uniform_in_the_open_unit_interval() {
        let draws: Vec<f64> = (0..100_000).map(|_| uniform()).collect();
        assert!(draws.iter().all(|&u| u > 0.0 && u <= 1.0));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let low = draws.iter().filter(|&&u| u < 0.1).count();
        assert!((9_000..11_000).contains(&low), "{low} below 0.1");
    }
}
