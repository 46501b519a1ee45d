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
use crate::call::{Made, Policy, Typed, Want, L1 as SiteL1};
use crate::envelope;
use crate::flight::Join;
use crate::{Cache, Operation};
use bytes::Bytes;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

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

/// Whether stored bytes are past their fresh-until (unreadable headers
/// are not: they never reach a hit).
fn is_stale(bytes: &[u8]) -> bool {
    bytes.len() >= envelope::HEADER_LEN
        && bytes[..2] == *b"CR"
        && read_u64(&bytes[12..20]) < envelope::now_ms()
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
    async move {
        let body = |make: M| match make(Want::Body) {
            Made::Body(body) => body,
            Made::Refresh(_) => unreachable!("asked for the body"),
        };
        let Some(target) = target else {
            return body(make).await;
        };
        let engine = &*target.cache.engine;

        // The memory store (an L1 copy is never stale: it lives no longer
        // than its value is fresh).
        if let Some(memory) = engine.l2.local_store() {
            if let Some(bytes) = memory.get(&target.key) {
                if is_stale(&bytes) {
                    if let Ok(out) = engine.l1_lookup::<P, Out>(&target, typed) {
                        engine.counters.stale_hit();
                        engine.refresh::<P, Out, _, R>(&target, &bytes, typed, make);
                        return out;
                    }
                }
            }
        }
        let replace = match engine.l1_lookup::<P, Out>(&target, typed) {
            Ok(out) => return out,
            Err(undecodable) => undecodable,
        };
        let leader = loop {
            match engine.flights.join(&target.key) {
                Join::Follower(follower) => {
                    match Box::pin(engine.follow::<P, Out>(&target, follower)).await {
                        Ok(out) => return out,
                        Err(true) => continue,
                        Err(false) => break None,
                    }
                }
                Join::Leader(leader) => break Some(leader),
            }
        };
        let fill = match Box::pin(engine.l2_lookup::<P, Out>(&target, typed, replace)).await {
            Ok((out, bytes)) => {
                if let Some(leader) = leader {
                    leader.finish(Some(bytes.clone()));
                }
                if is_stale(&bytes) {
                    engine.counters.stale_hit();
                    engine.refresh::<P, Out, _, R>(&target, &bytes, typed, make);
                }
                return out;
            }
            Err(fill) => fill,
        };
        let body = std::pin::pin!(body(make));
        Box::pin(engine.fill::<P, Out, B>(&target, typed, fill, leader, body)).await
    }
}

/// What a background refresh needs, owned.
struct Job<Out: 'static> {
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
        if !self.refreshing.claim(&target.key) {
            return;
        }
        let Made::Refresh(future) = make(Want::Refresh) else {
            unreachable!("asked for a refresh")
        };
        let job = Job {
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
        let lock_key = engine.refresh_lock_key(key);
        // Across processes: one refresh per key (where the tier can hold
        // the lock; elsewhere, one per process).
        let held = match engine.lock {
            Some(settings) => match engine.try_lock(&lock_key, settings.lease).await {
                Ok(Some(held)) => Some((held, settings.lease)),
                Ok(None) => {
                    engine.refreshing.release(key);
                    return; // refreshing elsewhere
                }
                Err(e) => {
                    engine.fail_open(Operation::Lock, &lock_key, &e);
                    engine.refreshing.release(key);
                    return;
                }
            },
            None => None,
        };
        let stored = self.load_and_store::<P, R>(held.as_ref(), future).await;
        if let Some((held, _)) = held {
            held.release().await;
        }
        engine.refreshing.release(key);
        match stored {
            Some(true) => engine.counters.refreshed(),
            Some(false) => tracing::debug!(
                key,
                "refreshed value not stored: a newer value was written or the entry removed meanwhile"
            ),
            None => {}
        }
    }

    /// Runs the body and writes its value over the refreshed one: `None`
    /// if there was nothing to write (a failed body, an outage).
    async fn load_and_store<P: Policy<Out>, R: Future<Output = Out>>(
        &self,
        held: Option<&(super::lock::Held<'_>, Duration)>,
        future: R,
    ) -> Option<bool> {
        let engine = &*self.cache.engine;
        let key = self.key.as_str();
        // The tags' versions before the body: a value computed across an
        // invalidation of one of them is refused.
        let versions = match &self.tags {
            Some(tags) => {
                let deadline = engine.l2.guard().deadline();
                match engine.l2.get_tagged(key, tags, deadline, false).await {
                    Ok((_, versions)) => Some(versions),
                    Err(e) => {
                        engine.fail_open(Operation::Get, key, &e);
                        return None;
                    }
                }
            }
            None => None,
        };
        let future = std::pin::pin!(future);
        let out = match held {
            Some((held, lease)) => engine.holding(held, *lease, future).await,
            None => future.await,
        };
        if P::failed(&out) {
            engine.counters.refresh_failed();
            tracing::debug!(
                key,
                "refresh failed: the stale value is served until its window ends"
            );
            return None;
        }
        let ttl = match self.none_ttl {
            Some(ttl) if P::absent(&out) => ttl,
            _ => self.ttl,
        };
        let bytes = P::cacheable(&out)
            .and_then(|value| engine.encode_quiet(key, value, ttl, self.schema))?;
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
            Ok(stored) => {
                engine.recovered();
                Some(stored)
            }
            Err(e) => {
                engine.fail_open(Operation::Set, key, &e);
                None
            }
        }
    }
}
