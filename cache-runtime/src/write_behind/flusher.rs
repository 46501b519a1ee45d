//! The flusher task: reads recorded changes, hands them to the sink in
//! batches, acknowledges them once the sink accepted them.

use super::queue::Queue;
use super::stream::StreamSource;
use super::{Body, Config, DeadLetter, Entry, Item, Sink, Version};
use crate::engine::deadline_after;
use crate::{envelope, BackendError, Cache};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// The first pause after a failure; it doubles up to `max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest blocking read where `CLIENT UNBLOCK` is not available.
const SHORT_BLOCK: Duration = Duration::from_millis(50);

/// How many Redis failures in a row a stopping flusher retries.
const STOP_RETRIES: u32 = 5;

/// A consumer with nothing pending, idle for this many times `claim_idle`,
/// is removed from the group.
const IDLE_CONSUMER_FACTOR: u32 = 5;

/// The shortest time between two claim scans, whatever `claim_idle` is.
const MIN_CLAIM_PERIOD: Duration = Duration::from_millis(100);

/// What the handles and the flusher share.
#[derive(Debug)]
pub(crate) struct Control {
    stopping: AtomicBool,
    /// When `stop` was first called.
    stop_at: Mutex<Option<Instant>>,
    /// Woken (all waiters) by `stop`.
    stopped: Notify,
    /// Writes that passed the stopping check and have not finished: the
    /// final drain waits for them, or a late `XADD` would be left behind.
    in_flight: AtomicUsize,
    /// Woken (all waiters) when `in_flight` drops to zero.
    writes_done: Notify,
    /// How the flusher ended: `Err` names what was left undelivered.
    outcome: Mutex<Option<Result<(), String>>>,
    /// How many `flush` calls are waiting: while any is, the flusher does
    /// not wait to fill a batch.
    urgent: AtomicUsize,
    /// Wakes the in-process flusher (a new entry, a flush, a stop).
    wake: Notify,
    /// Bumped after each flusher cycle; closed when the flusher ends.
    cycles: watch::Receiver<u64>,
}

impl Control {
    pub(crate) fn new() -> (Arc<Control>, watch::Sender<u64>) {
        let (tx, rx) = watch::channel(0);
        let control = Control {
            stopping: AtomicBool::new(false),
            stop_at: Mutex::new(None),
            stopped: Notify::new(),
            in_flight: AtomicUsize::new(0),
            writes_done: Notify::new(),
            outcome: Mutex::new(None),
            urgent: AtomicUsize::new(0),
            wake: Notify::new(),
            cycles: rx,
        };
        (Arc::new(control), tx)
    }

    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        lock(&self.stop_at).get_or_insert_with(Instant::now);
        self.stopped.notify_waiters();
        self.wake.notify_one();
    }

    /// Whether the flusher has been stopping for longer than `timeout`
    /// (never, for a timeout too long for the clock).
    fn is_expired(&self, timeout: Duration) -> bool {
        lock(&self.stop_at).is_some_and(|at| at.elapsed() >= timeout)
    }

    /// Resolves once the flusher has been stopping for `timeout`.
    async fn expired(&self, timeout: Duration) {
        loop {
            let notified = self.stopped.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let at = *lock(&self.stop_at);
            if let Some(at) = at {
                tokio::time::sleep_until(deadline_after(at, timeout)).await;
                return;
            }
            notified.await;
        }
    }

    /// Registers a write; `None` (and nothing registered) once stopping.
    ///
    /// The count goes up before the check and `stop` sets the flag before
    /// the flusher reads the count (both `SeqCst`): either the write sees
    /// the stop, or the flusher sees the write and waits for it.
    pub(crate) fn begin_write(&self) -> Option<WriteGuard<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = WriteGuard(self);
        if self.is_stopping() {
            return None; // the guard's drop takes the count back
        }
        Some(guard)
    }

    /// Waits until no write is in flight.
    async fn writes_settled(&self) {
        loop {
            let notified = self.writes_done.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// How the flusher ended, once it has.
    pub(crate) fn outcome(&self) -> Option<Result<(), String>> {
        lock(&self.outcome).clone()
    }

    pub(crate) fn set_outcome(&self, outcome: Result<(), String>) {
        lock(&self.outcome).get_or_insert(outcome);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn cycles(&self) -> watch::Receiver<u64> {
        self.cycles.clone()
    }

    /// Marks a `flush` as waiting until the guard is dropped.
    pub(crate) fn urgent(&self) -> Urgent<'_> {
        self.urgent.fetch_add(1, Ordering::SeqCst);
        self.wake();
        Urgent(self)
    }

    fn is_urgent(&self) -> bool {
        self.urgent.load(Ordering::SeqCst) > 0
    }
}

/// A write in flight, until dropped.
pub(crate) struct WriteGuard<'a>(&'a Control);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.writes_done.notify_waiters();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a flusher cycle failed.
#[derive(Debug)]
enum Failure {
    /// Redis failed: retried.
    Redis(BackendError),
    /// Stopping, and the shutdown timeout is over: the flusher gives up.
    GaveUp(String),
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Failure::Redis(e)
    }
}

pub(crate) struct Urgent<'a>(&'a Control);

impl Drop for Urgent<'_> {
    fn drop(&mut self) {
        self.0.urgent.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) enum Source {
    Stream(Box<StreamSource>),
    Queue(Arc<Queue>),
}

impl Source {
    async fn read_new(
        &mut self,
        count: usize,
        block: Option<Duration>,
        control: &Control,
        cache: &Cache,
    ) -> Result<Vec<Entry>, BackendError> {
        match self {
            Source::Stream(s) => {
                let Some(block) = block else {
                    return s.read_new(count, None).await;
                };
                let Some(id) = s.connect().await? else {
                    // No CLIENT ID, so no CLIENT UNBLOCK: short blocking
                    // reads (the caller repeats them) keep a flush or a stop
                    // from waiting long.
                    return s.read_new(count, Some(block.min(SHORT_BLOCK))).await;
                };
                let stream = s.stream().to_owned();
                let mut read = std::pin::pin!(s.read_new(count, Some(block)));
                tokio::select! {
                    got = &mut read => return got,
                    () = control.wake.notified() => {}
                }
                // A flush or a stop is waiting: end the blocking read now.
                // The first unblock may reach Redis before the read does,
                // so repeat it until the read returns.
                loop {
                    if let Err(error) = cache.engine.l2.stream_unblock(&stream, id).await {
                        tracing::debug!(%error, "CLIENT UNBLOCK failed");
                    }
                    tokio::select! {
                        got = &mut read => return got,
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            }
            Source::Queue(q) => {
                let got = q.take(count);
                if !got.is_empty() {
                    return Ok(got);
                }
                if let Some(block) = block {
                    let _ = tokio::time::timeout(block, control.wake.notified()).await;
                }
                Ok(q.take(count))
            }
        }
    }

    async fn ack(&mut self, ids: &[Version], dead: &[DeadLetter]) -> Result<(), BackendError> {
        match self {
            Source::Stream(s) => s.ack(ids, dead).await,
            Source::Queue(q) => {
                if let Some(&last) = ids.iter().max() {
                    q.delivered(last);
                }
                Ok(())
            }
        }
    }
}

pub(crate) struct Flusher<T, S> {
    pub(crate) cache: Cache,
    pub(crate) name: String,
    pub(crate) sink: Arc<S>,
    pub(crate) source: Source,
    pub(crate) config: Config,
    pub(crate) control: Arc<Control>,
    pub(crate) cycles: watch::Sender<u64>,
    /// Whether a claim scan has completed (a zero `claim_idle` claims
    /// everything only on the first).
    pub(crate) claimed_once: bool,
    pub(crate) _value: PhantomData<fn(&T)>,
}

impl<T, S> Flusher<T, S>
where
    T: DeserializeOwned + Send + 'static,
    S: Sink<T>,
{
    /// Runs until stopped; `Err` says what was left undelivered.
    pub(crate) async fn run(mut self) -> Result<(), String> {
        let outcome = self.run_until_stopped().await;
        match &outcome {
            Ok(()) => tracing::debug!(name = %self.name, "write-behind flusher stopped"),
            Err(reason) => {
                tracing::error!(name = %self.name, %reason, "write-behind flusher stopped without draining")
            }
        }
        self.control.set_outcome(outcome.clone());
        outcome
    }

    async fn run_until_stopped(&mut self) -> Result<(), String> {
        // Entries this consumer (or a dead one) read but never acknowledged
        // go first: a process killed mid-flush loses nothing.
        let mut recover = true;
        let mut last_claim = Instant::now();
        let mut failures = 0u32;
        // A cycle that found nothing while a flush was waiting: the next one
        // blocks instead of polling Redis in a tight loop.
        let mut idle = false;
        let mut writes_settled = false;
        let claim_period = self.steady_claim_idle().max(MIN_CLAIM_PERIOD);
        let shutdown_timeout = self.config.shutdown_timeout;
        loop {
            let stopping = self.control.is_stopping();
            if stopping && !writes_settled {
                // Writes that passed the stopping check finish their XADD
                // (each bounded by the command timeout) before the final reads.
                self.control.writes_settled().await;
                writes_settled = true;
            }
            let cycle = async {
                if recover {
                    self.recover().await?;
                    last_claim = Instant::now();
                    recover = false;
                } else if !stopping && last_claim.elapsed() >= claim_period {
                    self.claim_all().await?;
                    last_claim = Instant::now();
                }
                let batch = if stopping {
                    self.source
                        .read_new(self.config.batch_size, None, &self.control, &self.cache)
                        .await?
                } else {
                    // Cut short when the next claim scan is due.
                    self.gather(idle, deadline_after(last_claim, claim_period))
                        .await?
                };
                let empty = batch.is_empty();
                self.deliver(batch).await?;
                Ok::<bool, Failure>(empty)
            };
            match cycle.await {
                Ok(empty) => {
                    if failures > 0 {
                        tracing::info!(name = %self.name, "write-behind flusher reaches Redis again");
                        failures = 0;
                    }
                    idle = empty;
                    self.cycles.send_modify(|n| *n += 1);
                    if stopping && empty && self.finish().await {
                        return Ok(());
                    }
                }
                Err(Failure::GaveUp(reason)) => {
                    self.cycles.send_modify(|n| *n += 1);
                    return Err(reason);
                }
                Err(Failure::Redis(error)) => {
                    failures += 1;
                    if let Source::Stream(s) = &mut self.source {
                        s.reset();
                    }
                    recover = true;
                    self.cycles.send_modify(|n| *n += 1);
                    if stopping {
                        // A few retries, within the shutdown timeout; what is
                        // left then stays in the stream for the next start.
                        if failures >= STOP_RETRIES || self.control.is_expired(shutdown_timeout) {
                            return Err(format!(
                                "Redis failed while draining ({error}); what is left stays in the stream"
                            ));
                        }
                        let pause = backoff(failures, self.config.max_backoff);
                        tracing::warn!(name = %self.name, %error, ?pause, "write-behind flusher cannot reach Redis while draining; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = self.control.expired(shutdown_timeout) => {}
                        }
                        continue;
                    }
                    let pause = backoff(failures, self.config.max_backoff);
                    if failures == 1 {
                        tracing::warn!(name = %self.name, %error, "write-behind flusher cannot reach Redis; retrying (further failures at debug level)");
                    } else {
                        tracing::debug!(name = %self.name, %error, ?pause, "write-behind flusher still failing");
                    }
                    self.sleep_unless_stopped(pause).await;
                }
            }
        }
    }

    /// Whether the flusher may end: an in-process queue closes only once it
    /// is empty (a write may have slipped in since the last read).
    async fn finish(&mut self) -> bool {
        match &mut self.source {
            Source::Queue(q) => {
                // Under the writes' lock: a write cannot store its value and
                // then find the queue closed.
                let _order = q.order.lock().await;
                q.close_if_empty()
            }
            Source::Stream(s) => {
                if let Err(error) = s.leave_if_idle().await {
                    tracing::debug!(name = %self.name, %error, "could not remove the consumer from the group");
                }
                true
            }
        }
    }

    async fn recover(&mut self) -> Result<(), Failure> {
        let mut total = 0;
        loop {
            let Source::Stream(s) = &mut self.source else {
                return Ok(());
            };
            let entries = s.own_pending(self.config.batch_size).await?;
            if entries.is_empty() {
                break;
            }
            total += entries.len();
            self.deliver(entries).await?;
        }
        if total > 0 {
            tracing::info!(name = %self.name, count = total, "write-behind: delivered entries read but not acknowledged before");
        }
        self.claim_all().await
    }

    /// `claim_idle`, or the default for a zero one (zero claims everything
    /// once, at start: claiming live flushers' batches every scan would
    /// deliver them twice and out of order).
    fn steady_claim_idle(&self) -> Duration {
        claim_idle(self.config.claim_idle, true)
    }

    /// Takes over what other consumers left unacknowledged for `claim_idle`
    /// (anything, on the first scan of a zero `claim_idle`).
    async fn claim_all(&mut self) -> Result<(), Failure> {
        let idle = claim_idle(self.config.claim_idle, self.claimed_once);
        let mut cursor = String::from("0-0");
        let mut total = 0;
        loop {
            let Source::Stream(s) = &mut self.source else {
                return Ok(());
            };
            let (next, entries) = s.claim(&cursor, self.config.batch_size, idle).await?;
            total += entries.len();
            self.deliver(entries).await?;
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        self.claimed_once = true;
        if total > 0 {
            tracing::info!(name = %self.name, count = total, "write-behind: took over entries another flusher left unacknowledged");
        }
        // Consumers of processes that ended without a clean shutdown: gone
        // from the group once idle for several claim periods with nothing
        // pending (a live one that is removed is recreated by its next read).
        let min_idle = self
            .steady_claim_idle()
            .saturating_mul(IDLE_CONSUMER_FACTOR);
        if let Source::Stream(s) = &mut self.source {
            match s.remove_idle_consumers(min_idle).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(name = %self.name, count = n, "write-behind: removed idle consumers from the group")
                }
                Err(error) => {
                    tracing::debug!(name = %self.name, %error, "write-behind: could not list or remove idle consumers")
                }
            }
        }
        Ok(())
    }

    /// New entries until the batch is full or the interval is over (at once
    /// while a flush waits, unless the last cycle found nothing), or `until`.
    async fn gather(&mut self, idle: bool, until: Instant) -> Result<Vec<Entry>, BackendError> {
        // A huge interval: a batch only when full, flushed or stopping.
        let deadline = deadline_after(Instant::now(), self.config.interval).min(until);
        let mut batch = Vec::new();
        loop {
            let hurry = (self.control.is_urgent() && !idle) || self.control.is_stopping();
            let left = deadline.saturating_duration_since(Instant::now());
            let block = if hurry || left < Duration::from_millis(1) {
                None
            } else {
                Some(left)
            };
            let want = self.config.batch_size.saturating_sub(batch.len());
            let got = self
                .source
                .read_new(want, block, &self.control, &self.cache)
                .await?;
            batch.extend(got);
            if batch.len() >= self.config.batch_size
                || Instant::now() >= deadline
                || block.is_none()
                || (!batch.is_empty() && self.control.is_urgent())
                || self.control.is_stopping()
            {
                return Ok(batch);
            }
        }
    }

    /// Hands the batch to the sink until it accepts it, then acknowledges it
    /// (moving what cannot be decoded to the dead-letter stream).
    async fn deliver(&mut self, entries: Vec<Entry>) -> Result<(), Failure> {
        if entries.is_empty() {
            return Ok(());
        }
        let engine = &*self.cache.engine;
        let ids: Vec<Version> = entries.iter().map(|e| e.version).collect();
        // Decode everything first: a value this program cannot read
        // (another version of the type, another codec, a foreign entry)
        // would block the stream forever, so it goes to the dead-letter
        // stream instead, and only readable entries compete for their key.
        let mut values: Vec<Option<T>> = Vec::with_capacity(entries.len());
        let mut dead = Vec::new();
        for e in &entries {
            let value = match &e.body {
                Body::Gone => None,
                Body::Write(_, bytes) => {
                    match envelope::decode::<T>(bytes, &engine.codec, engine.max_value_size) {
                        Ok(value) => Some(value),
                        Err(reason) => {
                            dead.push(dead_letter(e, reason.to_string()));
                            None
                        }
                    }
                }
                Body::Foreign(_) => {
                    dead.push(dead_letter(e, "no `k` and `v` fields".to_owned()));
                    None
                }
            };
            values.push(value);
        }
        let mut readable: Vec<bool> = values.iter().map(Option::is_some).collect();
        let mut chosen = latest_readable(&entries, &readable);

        let timeout = self.config.shutdown_timeout;
        let gave_up = |count: usize| {
            Failure::GaveUp(format!(
                "the sink did not accept a batch of {count} within the shutdown timeout ({timeout:?}); it is left unacknowledged"
            ))
        };
        let mut attempt = 0u32;
        while !chosen.is_empty() {
            if self.control.is_expired(timeout) {
                return Err(gave_up(chosen.len()));
            }
            // The first attempt uses the values decoded above; a retry
            // decodes them again (the sink took the first ones). A codec or
            // a `Deserialize` may fail only then: that entry is treated as
            // if it had failed the first time, and its key's latest readable
            // entry before it (if any) takes its place.
            let items = match sink_items(engine, &entries, &chosen, &mut values) {
                Ok(items) => items,
                Err((i, reason)) => {
                    let reason = format!("{reason} (on a retry: the first decode succeeded)");
                    dead.push(dead_letter(&entries[i], reason));
                    readable[i] = false;
                    chosen = latest_readable(&entries, &readable);
                    continue;
                }
            };
            let count = items.len();
            let sink = self.sink.clone();
            // Its own task, so that a panicking sink is a failure to retry.
            let mut task = tokio::spawn(async move { sink.write(items).await });
            let outcome = tokio::select! {
                outcome = &mut task => outcome,
                () = self.control.expired(timeout) => {
                    task.abort();
                    return Err(gave_up(count));
                }
            };
            let error = match outcome {
                Ok(Ok(())) => {
                    if attempt > 0 {
                        tracing::info!(name = %self.name, attempts = attempt + 1, "write-behind sink accepted the batch");
                    }
                    tracing::trace!(name = %self.name, count, "write-behind batch delivered");
                    break;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("the sink panicked: {e}"),
            };
            attempt += 1;
            let pause = backoff(attempt, self.config.max_backoff);
            tracing::warn!(name = %self.name, count, attempt, ?pause, %error, "write-behind sink failed; retrying the same batch");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.control.expired(timeout) => {}
            }
        }
        // The sink has the batch: acknowledge it, retrying rather than
        // delivering it again.
        let mut failures = 0u32;
        loop {
            match self.source.ack(&ids, &dead).await {
                Ok(()) => break,
                Err(error) => {
                    failures += 1;
                    if failures > STOP_RETRIES || self.control.is_expired(timeout) {
                        // Left pending: delivered again later (at least once).
                        return Err(error.into());
                    }
                    if let Source::Stream(s) = &mut self.source {
                        s.reset();
                    }
                    tracing::debug!(name = %self.name, %error, "write-behind acknowledgement failed; retrying");
                    tokio::time::sleep(backoff(failures, self.config.max_backoff)).await;
                }
            }
        }
        // Only writes count in the backlog (not entries of another program's).
        let writes = entries
            .iter()
            .filter(|e| matches!(e.body, Body::Write(..)))
            .count();
        crate::observe::write_behind_pending(&self.name, -(writes as f64));
        self.report_dead(&dead);
        Ok(())
    }

    /// Counts and logs the entries that could not be decoded, once they are
    /// out of the stream (a batch whose acknowledgement failed is read, and
    /// would be counted, again).
    fn report_dead(&self, dead: &[DeadLetter]) {
        if dead.is_empty() {
            return;
        }
        crate::observe::dead_letters(&self.name, dead.len() as u64);
        let place = match &self.source {
            Source::Stream(s) => s.dead_letter_key(),
            Source::Queue(_) => "nowhere (in-process queue: dropped)".to_owned(),
        };
        for d in dead {
            self.cache.engine.counters.decode_failure();
            let key = d
                .fields
                .iter()
                .find(|(f, _)| &f[..] == b"k")
                .map(|(_, k)| String::from_utf8_lossy(k));
            tracing::error!(
                name = %self.name,
                key = key.as_deref().unwrap_or("?"),
                version = %d.version,
                reason = %d.reason,
                dead_letter = %place,
                "write-behind entry cannot be decoded; moved to the dead-letter stream"
            );
        }
    }

    async fn sleep_unless_stopped(&self, pause: Duration) {
        let _ = tokio::time::timeout(pause, async {
            while !self.control.is_stopping() {
                self.control.wake.notified().await;
            }
        })
        .await;
    }
}

/// The entry as it goes to the dead-letter stream: its original fields
/// (`k` and `v` for a write) and why it cannot be delivered.
fn dead_letter(e: &Entry, reason: String) -> DeadLetter {
    let fields = match &e.body {
        Body::Write(key, bytes) => vec![
            (Bytes::from_static(b"k"), Bytes::from(key.clone())),
            (Bytes::from_static(b"v"), bytes.clone()),
        ],
        Body::Foreign(fields) => fields.clone(),
        Body::Gone => Vec::new(),
    };
    DeadLetter {
        version: e.version,
        fields,
        reason,
    }
}

/// The indices of the latest readable write of each key, in the order of
/// the writes.
fn latest_readable(entries: &[Entry], readable: &[bool]) -> Vec<usize> {
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for (i, (e, &ok)) in entries.iter().zip(readable).enumerate() {
        if let (Body::Write(key, _), true) = (&e.body, ok) {
            latest.insert(key.as_str(), i);
        }
    }
    let mut chosen: Vec<usize> = latest.into_values().collect();
    chosen.sort_unstable();
    chosen
}

/// The sink's items for the `chosen` entries: each value as decoded before
/// (taken from `values`), or decoded again. `Err` gives the first entry
/// that does not decode now, and why.
fn sink_items<T: DeserializeOwned>(
    engine: &crate::engine::Engine,
    entries: &[Entry],
    chosen: &[usize],
    values: &mut [Option<T>],
) -> Result<Vec<Item<T>>, (usize, String)> {
    let mut items = Vec::with_capacity(chosen.len());
    for &i in chosen {
        let e = &entries[i];
        // Chosen entries are writes.
        let Body::Write(key, bytes) = &e.body else {
            continue;
        };
        let value = match values[i].take() {
            Some(value) => value,
            None => envelope::decode::<T>(bytes, &engine.codec, engine.max_value_size)
                .map_err(|reason| (i, reason.to_string()))?,
        };
        items.push(Item {
            key: key.clone(),
            value,
            version: e.version,
        });
    }
    Ok(items)
}

/// The idle time of a claim scan: the setting, except that zero (claim
/// everything) holds only for the first scan, then the default.
fn claim_idle(setting: Duration, claimed_once: bool) -> Duration {
    if setting.is_zero() && claimed_once {
        super::DEFAULT_CLAIM_IDLE
    } else {
        setting
    }
}

/// `FIRST_BACKOFF * 2^(n-1)`, at most `max`.
pub(crate) fn backoff(n: u32, max: Duration) -> Duration {
    let first = FIRST_BACKOFF.min(max);
    first
        .checked_mul(1u32 << n.saturating_sub(1).min(20))
        .map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_claim_idle_claims_everything_only_once() {
        assert_eq!(claim_idle(Duration::ZERO, false), Duration::ZERO);
        assert_eq!(
            claim_idle(Duration::ZERO, true),
            super::super::DEFAULT_CLAIM_IDLE
        );
        let s = Duration::from_secs(5);
        assert_eq!((claim_idle(s, false), claim_idle(s, true)), (s, s));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(1);
        let got: Vec<u128> = (1..=6).map(|n| backoff(n, max).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(1000, max), max);
        assert_eq!(
            backoff(1, Duration::from_millis(30)),
            Duration::from_millis(30)
        );
    }
}
