//! The read path behind `#[cached]`: one driver, one function per step.

use super::l1::Ticket;
use super::lock::{Held, Waited};
use super::{deadline_after, Engine};
use crate::backend::memory::Entry;
use crate::backend::{Condition, TaggedWrite, TAG_VERSION_WINDOW};
use crate::call::{Policy, Site, Typed, L1 as SiteL1};
use crate::flight::{Follower, Join, Leader, Shared};
use crate::observe::{self, LockWait, Outcome, OutcomeCell};
use crate::{envelope, Cache, Operation};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument as _;

/// Where a call reads and writes: resolved cache, full key, TTL, tag keys.
pub(crate) struct Target {
    /// The function's site (its name, its metrics).
    pub(crate) site: &'static Site,
    pub(crate) cache: Cache,
    pub(crate) key: String,
    pub(crate) ttl: Duration,
    /// The TTL of a stored `None` (`none_ttl`), if not `ttl`.
    pub(crate) none_ttl: Option<Duration>,
    /// The function's L1 setting.
    pub(crate) l1: SiteL1,
    /// Whether a miss takes the fill lock (if the cache has it on).
    pub(crate) lock: bool,
    /// How long a value outlives its TTL, served stale while it is
    /// refreshed (`stale`): its Redis TTL is the two together.
    pub(crate) stale: Option<Duration>,
    /// XFetch's β, for a function refreshed before expiry (`early_refresh`).
    pub(crate) early: Option<f64>,
    /// The stored type's schema fingerprint (0: unknown).
    pub(crate) schema: u64,
    /// Boxed: most calls have no tags, and the state machine stays small.
    pub(crate) tagging: Option<Box<Tagging>>,
    /// How the call was answered, as its steps find out.
    pub(crate) outcome: OutcomeCell,
}

impl Target {
    /// Whether the call looks in an L1 before the L2.
    pub(crate) fn tiered(&self) -> bool {
        self.l1 != SiteL1::Off && self.cache.engine.l1.is_some()
    }

    /// How long a value fresh for `ttl` is kept: with `stale`, that much
    /// longer (a stale value is served while it is refreshed).
    pub(crate) fn kept_for(&self, ttl: Duration) -> Duration {
        match self.stale {
            Some(stale) => ttl.saturating_add(stale).min(super::MAX_TTL),
            None => ttl,
        }
    }

    /// The TTL to write `out` with: `none_ttl` for a stored `None`.
    pub(crate) fn ttl_for<P: Policy<Out>, Out>(&self, out: &Out) -> Duration {
        match self.none_ttl {
            Some(ttl) if P::absent(out) => ttl,
            _ => self.ttl,
        }
    }
}

/// A tagged call's tag keys.
#[derive(Default)]
pub(crate) struct Tagging {
    pub(crate) tags: Vec<String>,
}

/// What a miss carries from the L2 lookup to the store.
pub(crate) struct Fill {
    /// The lookup found bytes that do not decode: overwrite them.
    replace: bool,
    /// The lookup failed: skip the write too, so an outage costs one
    /// deadline, not two.
    store: bool,
    /// The lookup found another caller's fill lock (not yet counted).
    locked: bool,
    /// The placeholder it found.
    placeholder: Option<Bytes>,
    /// The lookup found a placeholder given up (its holder had no value to
    /// store): the call loads without the lock.
    gave_up: bool,
    /// The call followed a leader whose result was not stored: it loads
    /// without the lock.
    pub(crate) skip_lock: bool,
    started: Instant,
    /// What is left of the deadline for the write, read after the lookup
    /// so the body's time stays out of it.
    write_budget: Duration,
    /// The tags' versions as the lookup read them: the write is refused if
    /// any tag is invalidated while the body runs.
    versions: Option<Vec<u64>>,
    /// How long the body took (set after it ran): early refresh's Δ.
    load: Duration,
}

/// What the fill lock step ends with.
enum Locked<'a, Out> {
    /// Another process's value (and its bytes, for the followers here).
    Value(Out, Bytes),
    /// This caller holds the lock: it loads, and stores over its placeholder.
    Held(Held<'a>),
    /// This caller loads without the lock.
    Without,
}

/// The read-through path behind `#[cached]`, one state machine from lookup
/// to store, holding `body` once and awaiting it in one place, inside the
/// call's `cache.call` span.
///
/// `target` is `None` when there is no cache (or the key could not be
/// built): the body just runs.
// Deliberately not an `async fn`; see the comment in the body.
#[allow(clippy::manual_async_fn)]
pub(crate) fn get_or_compute<P, Out, F>(
    site: &'static Site,
    target: Option<Target>,
    typed: Option<Typed<Out>>,
    mut body: F,
) -> impl Future<Output = Out>
where
    P: Policy<Out>,
    F: Future<Output = Out>,
{
    // A plain `fn` returning an `async move` block, not an `async fn`: an
    // `async fn` would keep its arguments twice (as captured and as moved
    // into locals), and the body can be large. The span is made when the
    // call is (as `#[tracing::instrument]` makes its own).
    let span = observe::call_span(site.name(), target.as_ref().map(|t| t.key.as_str()));
    // Without a subscriber for the span, no span at all: not even a
    // disabled one's enter and exit on every poll.
    let traced = !span.is_disabled();
    let steps = async move {
        // SAFETY: `body` is captured by this future, which is pinned while it
        // runs, and is never moved again: the binding is shadowed here. Awaiting
        // through the pin (instead of `body.await`, which moves it into a second
        // slot) keeps one copy of the body in the state machine.
        let body = unsafe { std::pin::Pin::new_unchecked(&mut body) };

        // 1. Resolved already (`Call::target`): no cache, no caching.
        let Some(target) = target else {
            let out = body.await;
            observe::call_done(site, traced, Outcome::Uncached, false);
            return out;
        };
        let out = 'steps: {
            let target = &target;
            let mut body = body;
            let engine = &*target.cache.engine;

            // 2. The L1 (or the memory store, which is its own L1).
            let replace = match engine.l1_lookup::<P, Out>(target, typed) {
                Ok((out, _)) => break 'steps out,
                Err(undecodable) => undecodable,
            };

            // 3. Single flight: one load per key in this process. A follower
            // whose leader failed (an `Err`, a cancelled call) joins again: one
            // of the waiters leads the next load and the others wait for it, so
            // a failing body runs one call at a time, not once per waiter at
            // once; each caller still gets the result of a load. A follower
            // whose leader had nothing else to share (a `None` not stored)
            // loads for itself.
            let mut alone = false;
            let leader = loop {
                match engine.flights.join(&target.key) {
                    Join::Follower(follower) => {
                        // Boxed: the wait is the largest future here, and only
                        // coalesced callers pay for it.
                        match Box::pin(engine.follow::<P, Out>(target, follower)).await {
                            Ok(out) => break 'steps out,
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

            // 4. The L2. Boxed, with its deadline: a network command's future is
            // large, and inlining it would make every cached call's state
            // machine (which each L1 hit moves) that much bigger.
            let fill = match Box::pin(engine.l2_lookup::<P, Out>(target, typed, replace)).await {
                Ok((out, bytes)) => {
                    if let Some(leader) = leader {
                        leader.finish(Some(bytes));
                    }
                    break 'steps out;
                }
                Err(fill) => fill,
            };

            // 5-7. The fill lock, the body, the store.
            let mut fill = fill;
            fill.skip_lock = alone;
            break 'steps Box::pin(engine.fill::<P, Out, F>(
                target,
                typed,
                fill,
                leader,
                body.as_mut(),
            ))
            .await;
        };
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

impl Engine {
    /// Steps 5 to 7 of a miss: the fill lock across processes (the value
    /// another process loaded, or this caller's turn to load, holding the
    /// lock or not), the body (renewing the lock's lease while it runs),
    /// and the store, which also hands the value to the followers.
    pub(crate) async fn fill<P: Policy<Out>, Out, F: Future<Output = Out>>(
        &self,
        target: &Target,
        typed: Option<Typed<Out>>,
        mut fill: Fill,
        leader: Option<Leader<'_>>,
        body: std::pin::Pin<&mut F>,
    ) -> Out {
        // (Checked here, before the step's future is boxed: a failed
        // lookup, the common miss during an outage, skips it for free.)
        let lock = self.lock.is_some()
            && target.lock
            && fill.store
            && !fill.replace
            && !fill.gave_up
            && !fill.skip_lock;
        if fill.locked && fill.skip_lock {
            // A placeholder found, not waited for: a miss like any other.
            self.counters.miss();
        }
        let held = if (fill.locked && !fill.skip_lock) || lock {
            match Box::pin(self.lock_step::<P, Out>(target, typed, &mut fill)).await {
                Locked::Value(out, bytes) => {
                    if let Some(leader) = leader {
                        leader.finish(Some(bytes));
                    }
                    return out;
                }
                Locked::Held(held) => Some(held),
                Locked::Without => None,
            }
        } else {
            None
        };
        if !fill.store {
            // The lookup (or the lock) failed: the cache could not answer.
            target.outcome.set(Outcome::Error);
        }
        let started = Instant::now();
        let out = match (&held, self.lock) {
            (Some(held), Some(lock)) => self.holding(held, lock.lease, body).await,
            _ => body.await,
        };
        // The body's time goes into the envelope: early refresh's Δ.
        fill.load = started.elapsed();
        observe::load(target.site, P::failed(&out), fill.load);
        self.store::<P, Out>(target, fill, leader, held, &out, typed)
            .await;
        out
    }

    /// Step 2: an L1 hit (with its entry, whose envelope a `stale` or
    /// `early_refresh` function reads), or whether the L1 held bytes that
    /// do not decode.
    #[inline]
    pub(crate) fn l1_lookup<P: Policy<Out>, Out>(
        &self,
        target: &Target,
        typed: Option<Typed<Out>>,
    ) -> Result<(Out, Arc<Entry>), bool> {
        let (store, is_l1) = match (self.l2.local_store(), &self.l1) {
            (Some(memory), _) => (memory, false),
            (None, Some(l1)) if target.l1 != SiteL1::Off => (&l1.store, true),
            _ => return Err(false),
        };
        let key = target.key.as_str();
        let Some(entry) = store.entry(key) else {
            return Err(false);
        };
        let hit = |out, entry| {
            if is_l1 {
                self.counters.l1_hit();
                target.outcome.set(Outcome::L1Hit);
            } else {
                self.counters.hit();
                target.outcome.set(Outcome::L2Hit);
            }
            self.count_absent::<P, Out>(&out);
            Ok((out, entry))
        };
        if let (Some(t), Some(any)) = (typed, entry.typed.get()) {
            if let Some(out) = (t.from_any)(&**any) {
                return hit(out, entry);
            }
        }
        match self.decode_counted::<P::Value>(key, &entry.bytes, target.schema) {
            Some(value) => {
                let out = P::from_cached(value);
                // Written by `Cache::set`: keep a decoded copy from now on.
                if let Some(t) = typed {
                    if entry.typed.get().is_none() {
                        if let Some(copy) = (t.to_any)(&out) {
                            let _ = entry.typed.set(copy);
                        }
                    }
                }
                hit(out, entry)
            }
            None => Err(true),
        }
    }

    /// Step 3, for a caller that found a load under way: its value, or
    /// whether to join again (`true`) or load alone (`false`).
    pub(crate) async fn follow<P: Policy<Out>, Out>(
        &self,
        target: &Target,
        follower: Follower,
    ) -> Result<Out, bool> {
        let key = target.key.as_str();
        let bytes = match follower.wait(key).await {
            Shared::Value(bytes) => bytes,
            Shared::Again => return Err(true),
            Shared::Nothing => return Err(false),
        };
        let value = self
            .decode_counted::<P::Value>(key, &bytes, target.schema)
            .ok_or(false)?;
        self.counters.hit();
        target.outcome.set(Outcome::L2Hit);
        let out = P::from_cached(value);
        self.count_absent::<P, Out>(&out);
        Ok(out)
    }

    /// Counts a hit that found a stored `None`. Constant `false`, so
    /// nothing, for every policy but `SomeOrNone`.
    #[inline(always)]
    fn count_absent<P: Policy<Out>, Out>(&self, out: &Out) {
        if P::absent(out) {
            self.counters.none_hit();
        }
    }

    /// Step 4: an L2 hit (installed in the L1), or what the store needs.
    pub(crate) async fn l2_lookup<P: Policy<Out>, Out>(
        &self,
        target: &Target,
        typed: Option<Typed<Out>>,
        replace: bool,
    ) -> Result<(Out, Bytes), Fill> {
        let key = target.key.as_str();
        let started = Instant::now();
        // One deadline for the lookup and the write, read from the clock once.
        let deadline = deadline_after(started, self.l2.guard().timeout());
        let ticket = match (target.l1, &self.l1) {
            (SiteL1::Off, _) | (_, None) => None,
            _ => self.ticket(key, deadline).await,
        };
        let mut versions = None;
        let found = match &target.tagging {
            // Boxed: a pipeline's future is large, and tagged calls are the
            // fewer; the plain read's stays inline.
            Some(t) => Box::pin(self.l2.get_tagged(key, &t.tags, deadline, ticket.is_some()))
                .await
                .map(|(found, v)| {
                    versions = Some(v);
                    found
                }),
            // Boxed: only with `retry_on_timeout`, whose future is larger.
            None if self.l2.retries() => {
                Box::pin(self.l2.get_retrying(key, deadline, ticket.is_some())).await
            }
            None => self.l2.get(key, deadline, ticket.is_some()).await,
        };
        let mut fill = Fill {
            // Undecodable bytes in the memory store: counted already.
            replace,
            store: true,
            locked: false,
            placeholder: None,
            gave_up: false,
            skip_lock: false,
            started,
            write_budget: Duration::ZERO,
            versions,
            load: Duration::ZERO,
        };
        match found {
            // Another caller is filling the key (step 5 waits for it).
            Ok(Some(bytes)) if !replace && envelope::is_gave_up(&bytes) => {
                self.counters.miss();
                self.recovered();
                fill.gave_up = true;
            }
            Ok(Some(bytes)) if !replace && envelope::is_placeholder(&bytes) => {
                self.recovered();
                fill.locked = true;
                fill.placeholder = Some(bytes);
            }
            Ok(Some(bytes)) if !replace => {
                if let Some(value) = self.decode_counted::<P::Value>(key, &bytes, target.schema) {
                    self.counters.hit();
                    target.outcome.set(Outcome::L2Hit);
                    self.recovered();
                    let out = P::from_cached(value);
                    self.count_absent::<P, Out>(&out);
                    if let Some(ticket) = ticket {
                        self.install_hit(target, ticket, &bytes, typed, &out);
                    }
                    return Ok((out, bytes));
                }
                // Undecodable: a miss, overwritten below.
                self.counters.miss();
                self.recovered();
                fill.replace = true;
            }
            Ok(_) => {
                self.counters.miss();
                self.recovered();
            }
            Err(e) => {
                // Fail open: the caller gets the body's result. Counted as
                // an error, not as a miss: nothing was looked up.
                self.fail_open(Operation::Get, key, &e);
                fill.store = false;
            }
        }
        // The lookup and the write share one deadline, the body's time left
        // out: a slow Redis costs a call at most one deadline on top of its
        // body. (Read here, after a miss: a hit needs no second clock read.)
        fill.write_budget = deadline.saturating_duration_since(Instant::now());
        Err(fill)
    }

    /// Step 5: the fill lock. A caller that found the key empty takes the
    /// lock; one that found it taken (or lost the race for it) waits for
    /// the holder's value. Off for this call, or after a failed lookup or
    /// undecodable bytes (which no lock guards), it loads without.
    async fn lock_step<'a, P: Policy<Out>, Out>(
        &'a self,
        target: &'a Target,
        typed: Option<Typed<Out>>,
        fill: &mut Fill,
    ) -> Locked<'a, Out> {
        let key = target.key.as_str();
        let settings = match self.lock {
            Some(settings) if target.lock && fill.store && !fill.replace => settings,
            _ => {
                if fill.locked {
                    // Taken, but not waited for: a miss like any other.
                    self.counters.miss();
                }
                return Locked::Without;
            }
        };
        // The lookup counted a miss, unless it found the lock taken.
        let counted = !fill.locked;
        // A placeholder this process abandoned is taken over at once.
        let abandoned = fill
            .placeholder
            .as_deref()
            .filter(|p| self.abandoned.contains(p));
        if !fill.locked || abandoned.is_some() {
            // Within what is left of the lookup's deadline: a Redis that
            // stalls after the lookup costs the call one deadline in all.
            let started = Instant::now();
            let taken = self
                .lock_if(key, settings.lease, abandoned, fill.write_budget)
                .await;
            fill.write_budget = fill.write_budget.saturating_sub(started.elapsed());
            match taken {
                Ok(Some(held)) => {
                    if !counted {
                        self.counters.miss();
                        self.counters.lock_takeover();
                        observe::lock_wait(target.site, LockWait::Takeover);
                    }
                    return Locked::Held(held);
                }
                Ok(None) => {} // taken meanwhile: wait for it
                Err(e) => {
                    self.fail_open(Operation::Lock, key, &e);
                    fill.store = false;
                    return Locked::Without;
                }
            }
        }
        let tags = target.tagging.as_ref().map(|t| &t.tags[..]);
        let waited = self
            .wait_for_fill(key, tags, &mut fill.versions, settings)
            .await;
        // A fresh budget for the write: the wait is no part of the lookup's.
        fill.write_budget = self.l2.guard().timeout();
        match waited {
            Waited::Value(bytes, ticket) => {
                let Some(value) = self.decode_counted::<P::Value>(key, &bytes, target.schema)
                else {
                    if !counted {
                        self.counters.miss();
                    }
                    fill.replace = true;
                    return Locked::Without;
                };
                if counted {
                    // It lost the race for the lock: a hit after all.
                    self.counters.miss_was_hit();
                }
                self.counters.hit();
                self.counters.lock_wait();
                observe::lock_wait(target.site, LockWait::Value);
                target.outcome.set(Outcome::L2Hit);
                self.recovered();
                let out = P::from_cached(value);
                self.count_absent::<P, Out>(&out);
                if let (Some(ticket), false) = (ticket, target.l1 == SiteL1::Off) {
                    self.install_hit(target, ticket, &bytes, typed, &out);
                }
                Locked::Value(out, bytes)
            }
            Waited::Acquired(held) => {
                if !counted {
                    self.counters.miss();
                }
                observe::lock_wait(target.site, LockWait::Takeover);
                Locked::Held(held)
            }
            Waited::TimedOut => {
                if !counted {
                    self.counters.miss();
                }
                observe::lock_wait(target.site, LockWait::Timeout);
                Locked::Without
            }
            Waited::GaveUp => {
                if !counted {
                    self.counters.miss();
                }
                observe::lock_wait(target.site, LockWait::GaveUp);
                fill.gave_up = true;
                Locked::Without
            }
            Waited::Failed => {
                observe::lock_wait(target.site, LockWait::Error);
                fill.store = false;
                Locked::Without
            }
        }
    }

    /// An L2 hit goes into the L1 with a decoded copy, for the entry's
    /// remaining lifetime in Redis, capped by the function's `l1_ttl`.
    fn install_hit<Out>(
        &self,
        target: &Target,
        ticket: Ticket,
        bytes: &Bytes,
        typed: Option<Typed<Out>>,
        out: &Out,
    ) {
        let max = match target.l1 {
            SiteL1::MaxSecs(s) => Some(Duration::from_secs(s)),
            _ => None,
        };
        let copy = typed.and_then(|t| (t.to_any)(out));
        self.install(&target.key, ticket, bytes.clone(), copy, max);
    }

    /// Step 6: stores what the policy allows and ends the flight.
    ///
    /// The L1 is not filled here: Redis stops tracking a key once this
    /// process writes it, so only the next read (a tracked L2 hit) installs it.
    async fn store<P: Policy<Out>, Out>(
        &self,
        target: &Target,
        fill: Fill,
        mut leader: Option<Leader<'_>>,
        mut held: Option<Held<'_>>,
        out: &Out,
        typed: Option<Typed<Out>>,
    ) {
        let key = target.key.as_str();
        let ttl = target.ttl_for::<P, Out>(out);
        let encoded = P::cacheable(out)
            .and_then(|value| self.encode_loaded(key, value, ttl, target.schema, fill.load));
        // Fresh for `ttl` (the envelope says so), kept `stale` longer.
        let ttl = target.kept_for(ttl);
        let mut store = fill.store;
        // A version older than the window may have been forgotten, so a
        // tagged result computed over a longer time is not stored.
        if target.tagging.is_some() && fill.started.elapsed() > TAG_VERSION_WINDOW {
            tracing::debug!(key, "tagged value not cached: computing it took too long");
            store = false;
        }
        let local = self.l2.caps().local;
        // Nothing to store over the fill lock's placeholder: give it up
        // before the waiters here learn of it. After a failure it goes, so
        // that the next caller (here or elsewhere) takes the lock at once
        // and the callers take turns; for a result that is not stored (a
        // `None`), it is marked given up, and every waiting caller loads
        // for itself at once, as without the lock.
        if !store || encoded.is_none() {
            if let Some(held) = held.take() {
                let mark = !P::failed(out);
                held.release(fill.write_budget, mark).await;
            }
        }
        // A failed load: the waiting callers take turns (one of them leads
        // the next load) rather than each running the body at once.
        if P::failed(out) {
            if let Some(leader) = leader.take() {
                leader.fail();
            }
        }
        // Waiting callers get an untagged value now, without waiting for a
        // network write. A tagged one waits for its write, which is refused
        // if a tag was invalidated meanwhile: a caller that came after that
        // invalidation must not get the older value. The memory store is
        // written first, so that a caller arriving after the flight ends
        // finds the value there.
        if !local && target.tagging.is_none() {
            if let Some(leader) = leader.take() {
                leader.finish(encoded.clone());
            }
        }
        let tagged = target.tagging.is_some();
        // What the followers still waiting get: for a tagged value, only
        // one whose write went in (checked against the tags' versions).
        let mut shared = if tagged { None } else { encoded.clone() };
        if let (true, Some(bytes)) = (store, encoded) {
            let written_bytes = tagged.then(|| bytes.clone());
            // Only the memory store keeps decoded copies.
            let copy = match (local, typed) {
                (true, Some(t)) => (t.to_any)(out),
                _ => None,
            };
            // Over this caller's own placeholder, if it holds the lock;
            // else into an empty key, unless it held undecodable bytes.
            let condition = match (&held, fill.replace) {
                (Some(held), _) => held.condition(),
                // Over a placeholder given up, not over a newer one.
                (None, false) if fill.gave_up => Condition::StartsWith(envelope::GAVE_UP_PREFIX),
                (None, false) => Condition::Absent,
                (None, true) => Condition::Always,
            };
            let how = match &target.tagging {
                Some(t) => TaggedWrite {
                    tags: &t.tags,
                    expected: fill.versions.as_deref(),
                    condition,
                },
                None => TaggedWrite::untagged(condition),
            };
            let written = self
                .l2
                .write(key, bytes, copy, ttl, how, fill.write_budget)
                .await;
            // Replaced by this value; refused (the lock lost, or a tag
            // invalidated meanwhile), the placeholder is removed if it is
            // still this caller's; after an error, the lock removes it in
            // the background.
            if let (Ok(stored), Some(h)) = (&written, held.take()) {
                if *stored {
                    h.settle();
                } else {
                    h.release(fill.write_budget, false).await;
                }
            }
            match written {
                Ok(true) => {
                    self.recovered();
                    if tagged {
                        shared = written_bytes;
                    }
                }
                Ok(false) => {
                    self.recovered();
                    tracing::debug!(
                        key,
                        "value not cached: while it was computed, a newer value was written or one of its tags was invalidated"
                    );
                }
                Err(e) => self.fail_open(Operation::Set, key, &e),
            }
        }
        if let Some(leader) = leader {
            leader.finish(shared);
        }
    }
}
