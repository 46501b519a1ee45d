//! The read path behind `#[cached]`: one driver, one function per step.

use super::l1::Ticket;
use super::{deadline_after, Engine};
use crate::backend::{TaggedWrite, TAG_VERSION_WINDOW};
use crate::call::{Policy, Typed, L1 as SiteL1};
use crate::flight::{Follower, Join, Leader, Shared};
use crate::{Cache, Operation};
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Where a call reads and writes: resolved cache, full key, TTL, tag keys.
pub(crate) struct Target {
    pub(crate) cache: Cache,
    pub(crate) key: String,
    pub(crate) ttl: Duration,
    /// The TTL of a stored `None` (`none_ttl`), if not `ttl`.
    pub(crate) none_ttl: Option<Duration>,
    /// The function's L1 setting.
    pub(crate) l1: SiteL1,
    /// The stored type's schema fingerprint (0: unknown).
    pub(crate) schema: u64,
    /// Boxed: most calls have no tags, and the state machine stays small.
    pub(crate) tagging: Option<Box<Tagging>>,
}

impl Target {
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
struct Fill {
    /// The lookup found bytes that do not decode: overwrite them.
    replace: bool,
    /// The lookup failed: skip the write too, so an outage costs one
    /// deadline, not two.
    store: bool,
    started: Instant,
    /// What is left of the deadline for the write, read after the lookup
    /// so the body's time stays out of it.
    write_budget: Duration,
    /// The tags' versions as the lookup read them: the write is refused if
    /// any tag is invalidated while the body runs.
    versions: Option<Vec<u64>>,
}

/// The read-through path behind `#[cached]`, one state machine from lookup
/// to store, holding `body` once and awaiting it in one place.
///
/// `target` is `None` when there is no cache (or the key could not be
/// built): the body just runs.
// Deliberately not an `async fn`; see the comment in the body.
#[allow(clippy::manual_async_fn)]
pub(crate) fn get_or_compute<P, Out, F>(
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
    // into locals), and the body can be large.
    async move {
        // SAFETY: `body` is captured by this future, which is pinned while it
        // runs, and is never moved again: the binding is shadowed here. Awaiting
        // through the pin (instead of `body.await`, which moves it into a second
        // slot) keeps one copy of the body in the state machine.
        let mut body = unsafe { std::pin::Pin::new_unchecked(&mut body) };

        // 1. Resolved already (`Call::target`): no cache, no caching.
        let Some(target) = target else {
            return body.as_mut().await;
        };
        let engine = &*target.cache.engine;

        // 2. The L1 (or the memory store, which is its own L1).
        let replace = match engine.l1_lookup::<P, Out>(&target, typed) {
            Ok(out) => return out,
            Err(undecodable) => undecodable,
        };

        // 3. Single flight: one load per key in this process. A follower
        // whose leader failed (an `Err`, a cancelled call) joins again: one
        // of the waiters leads the next load and the others wait for it, so
        // a failing body runs one call at a time, not once per waiter at
        // once; each caller still gets the result of a load. A follower
        // whose leader had nothing else to share (a `None` not stored)
        // loads for itself.
        let leader = loop {
            match engine.flights.join(&target.key) {
                Join::Follower(follower) => {
                    // Boxed: the wait is the largest future here, and only
                    // coalesced callers pay for it.
                    match Box::pin(engine.follow::<P, Out>(&target, follower)).await {
                        Ok(out) => return out,
                        Err(true) => continue,
                        Err(false) => break None,
                    }
                }
                Join::Leader(leader) => break Some(leader),
            }
        };

        // 4. The L2. Boxed, with its deadline: a network command's future is
        // large, and inlining it would make every cached call's state
        // machine (which each L1 hit moves) that much bigger.
        let fill = match Box::pin(engine.l2_lookup::<P, Out>(&target, typed, replace)).await {
            Ok((out, bytes)) => {
                if let Some(leader) = leader {
                    leader.finish(Some(bytes));
                }
                return out;
            }
            Err(fill) => fill,
        };

        // 5. The body.
        let out = body.as_mut().await;

        // 6. Store what the policy allows, and hand it to the followers.
        Box::pin(engine.store::<P, Out>(&target, fill, leader, &out, typed)).await;
        out
    }
}

impl Engine {
    /// Step 2: an L1 hit, or whether the L1 held bytes that do not decode.
    #[inline]
    fn l1_lookup<P: Policy<Out>, Out>(
        &self,
        target: &Target,
        typed: Option<Typed<Out>>,
    ) -> Result<Out, bool> {
        let (store, is_l1) = match (self.l2.local_store(), &self.l1) {
            (Some(memory), _) => (memory, false),
            (None, Some(l1)) if target.l1 != SiteL1::Off => (&l1.store, true),
            _ => return Err(false),
        };
        let key = target.key.as_str();
        let Some(entry) = store.entry(key) else {
            return Err(false);
        };
        let hit = |out| {
            if is_l1 {
                self.counters.l1_hit();
            } else {
                self.counters.hit();
            }
            self.count_absent::<P, Out>(&out);
            Ok(out)
        };
        if let (Some(t), Some(any)) = (typed, entry.typed.get()) {
            if let Some(out) = (t.from_any)(&**any) {
                return hit(out);
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
                hit(out)
            }
            None => Err(true),
        }
    }

    /// Step 3, for a caller that found a load under way: its value, or
    /// whether to join again (`true`) or load alone (`false`).
    async fn follow<P: Policy<Out>, Out>(
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
    async fn l2_lookup<P: Policy<Out>, Out>(
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
            started,
            write_budget: Duration::ZERO,
            versions,
        };
        match found {
            Ok(Some(bytes)) if !replace => {
                if let Some(value) = self.decode_counted::<P::Value>(key, &bytes, target.schema) {
                    self.counters.hit();
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
        out: &Out,
        typed: Option<Typed<Out>>,
    ) {
        let key = target.key.as_str();
        let ttl = target.ttl_for::<P, Out>(out);
        let encoded =
            P::cacheable(out).and_then(|value| self.encode_quiet(key, value, ttl, target.schema));
        let mut store = fill.store;
        // A version older than the window may have been forgotten, so a
        // tagged result computed over a longer time is not stored.
        if target.tagging.is_some() && fill.started.elapsed() > TAG_VERSION_WINDOW {
            tracing::debug!(key, "tagged value not cached: computing it took too long");
            store = false;
        }
        let local = self.l2.caps().local;
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
            let how = match &target.tagging {
                Some(t) => TaggedWrite {
                    tags: &t.tags,
                    expected: fill.versions.as_deref(),
                    if_absent: !fill.replace,
                },
                None => TaggedWrite::untagged(!fill.replace),
            };
            let written = self
                .l2
                .write(key, bytes, copy, ttl, how, fill.write_budget)
                .await;
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
