//! What the cache tells of itself: the `cache.call` span of every cached
//! call and, with the `metrics` feature, metrics on the `metrics` facade.
//!
//! Every point the engine reports goes through here, so that without the
//! feature each is an empty inline function, and with it each costs a
//! handle lookup and an atomic add: handles are registered once per site
//! (or once per process, for the engine's own) and kept, per recorder.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// How a cached call was answered: the `outcome` field of its span, and
/// what `cache_gets_total` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Outcome {
    /// No cache, or no key: the body ran, nothing was looked up.
    Uncached = 0,
    /// The L1 had it (no round trip).
    L1Hit = 1,
    /// The L2 had it: Redis, the memory store, or another caller's load of
    /// the same key, waited for (in this process, or across processes under
    /// the fill lock).
    L2Hit = 2,
    /// Nothing usable was stored: the body ran.
    Miss = 3,
    /// A value past its TTL, served while it is refreshed.
    Stale = 4,
    /// The cache could not answer (an outage, a missed deadline, the open
    /// breaker): the body ran.
    Error = 5,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Uncached => "uncached",
            Outcome::L1Hit => "l1_hit",
            Outcome::L2Hit => "l2_hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Error => "error",
        }
    }

    fn from_u8(v: u8) -> Outcome {
        match v {
            1 => Outcome::L1Hit,
            2 => Outcome::L2Hit,
            3 => Outcome::Miss,
            4 => Outcome::Stale,
            5 => Outcome::Error,
            _ => Outcome::Uncached,
        }
    }
}

/// A call's outcome as its steps decide it (they hold the call's target by
/// reference across awaits, hence an atomic, used without contention).
#[derive(Debug)]
pub(crate) struct OutcomeCell(AtomicU8);

impl OutcomeCell {
    pub(crate) fn new() -> Self {
        OutcomeCell(AtomicU8::new(Outcome::Miss as u8))
    }
    #[inline]
    pub(crate) fn set(&self, outcome: Outcome) {
        self.0.store(outcome as u8, Relaxed);
    }
    pub(crate) fn get(&self) -> Outcome {
        Outcome::from_u8(self.0.load(Relaxed))
    }
}

/// The span of one cached call: `function` now, `outcome` when it ends, the
/// key only when TRACE is on for its target, `cache_runtime::call` (keys can hold personal
/// data). DEBUG, so that a service logging at INFO pays nothing for it.
#[inline]
pub(crate) fn call_span(function: &'static str, key: Option<&str>) -> tracing::Span {
    let span = tracing::debug_span!(
        target: "cache_runtime::call",
        "cache.call",
        function,
        outcome = tracing::field::Empty,
        key = tracing::field::Empty,
    );
    if let Some(key) = key {
        if !span.is_disabled()
            && tracing::enabled!(target: "cache_runtime::call", tracing::Level::TRACE)
        {
            span.record("key", key);
        }
    }
    span
}

/// Ends a call, from inside its span (if `traced`: it has one): the span's
/// `outcome`, and `cache_gets_total`. `tiered`: the call looked in an L1
/// before the L2.
#[inline]
pub(crate) fn call_done(
    site: &'static crate::call::Site,
    traced: bool,
    outcome: Outcome,
    tiered: bool,
) {
    if traced {
        // The current span is this call's (checked all the same: a
        // caller's span is left alone).
        let span = tracing::Span::current();
        if span.metadata().is_some_and(|m| m.name() == "cache.call") {
            span.record("outcome", outcome.as_str());
        }
    }
    #[cfg(feature = "metrics")]
    site.metrics_reads(|h| h.got(outcome, tiered));
    #[cfg(not(feature = "metrics"))]
    let _ = (site, tiered);
}

#[cfg(all(test, feature = "metrics"))]
pub(crate) use gather::flush_all;
#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;
#[cfg(feature = "metrics")]
pub(crate) use on::*;

/// The kinds of eviction `cache_evictions_total` tells apart.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Evicted {
    Key,
    Tag,
    Pattern,
}

/// What a fill-lock wait ended with (`cache_lock_waits_total`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockWait {
    /// The holder's value.
    Value,
    /// No value within `lock_wait`: the caller loaded.
    Timeout,
    /// The holder gave up or died: the caller took the lock.
    Takeover,
    /// The holder had nothing to store (a result not cached): the caller loads.
    GaveUp,
    /// Redis failed during the wait: the caller loads.
    Error,
}

/// How the L1 learned that a copy was out of date (`cache_invalidations_total`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Invalidation {
    /// Redis reported the key changed (another process wrote it).
    Redis,
    /// This process changed the key itself.
    Local,
    /// The whole L1 was emptied (a flush, a lost connection).
    Flush,
}

/// The L2 commands `cache_redis_command_duration_seconds` tells apart.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(crate) enum Command {
    Get,
    GetTagged,
    Set,
    Delete,
    DeleteIf,
    ExpireIf,
    Exists,
    ClearPattern,
    InvalidateTags,
    Track,
    Ping,
    ServerInfo,
    StreamAppend,
    StreamCheck,
    StreamUnblock,
}

impl Command {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const ALL: [Command; 15] = [
        Command::Get,
        Command::GetTagged,
        Command::Set,
        Command::Delete,
        Command::DeleteIf,
        Command::ExpireIf,
        Command::Exists,
        Command::ClearPattern,
        Command::InvalidateTags,
        Command::Track,
        Command::Ping,
        Command::ServerInfo,
        Command::StreamAppend,
        Command::StreamCheck,
        Command::StreamUnblock,
    ];

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn as_str(self) -> &'static str {
        match self {
            Command::Get => "get",
            Command::GetTagged => "get_tagged",
            Command::Set => "set",
            Command::Delete => "delete",
            Command::DeleteIf => "delete_if",
            Command::ExpireIf => "expire_if",
            Command::Exists => "exists",
            Command::ClearPattern => "clear_pattern",
            Command::InvalidateTags => "invalidate_tags",
            Command::Track => "track",
            Command::Ping => "ping",
            Command::ServerInfo => "server_info",
            Command::StreamAppend => "stream_append",
            Command::StreamCheck => "stream_check",
            Command::StreamUnblock => "stream_unblock",
        }
    }
}

/// Without the feature: every report is nothing.
#[cfg(not(feature = "metrics"))]
mod off {
    use super::{Command, Evicted, Invalidation, LockWait};
    use crate::call::Site;
    use crate::Operation;
    use std::time::Duration;

    /// Whether metrics are compiled in (the L2 guard reads its clock only then).
    pub(crate) const ON: bool = false;

    #[inline(always)]
    pub(crate) fn load(_: &'static Site, _: bool, _: Duration) {}
    #[inline(always)]
    pub(crate) fn refresh(_: &'static Site, _: bool) {}
    #[inline(always)]
    pub(crate) fn put(_: &'static Site) {}
    #[inline(always)]
    pub(crate) fn evicted(_: &'static Site, _: Evicted, _: usize) {}
    #[inline(always)]
    pub(crate) fn lock_wait(_: &'static Site, _: LockWait) {}
    #[inline(always)]
    pub(crate) fn error(_: Operation) {}
    #[inline(always)]
    pub(crate) fn command(_: Command, _: Duration) {}
    #[inline(always)]
    pub(crate) fn breaker_opened() {}
    #[inline(always)]
    pub(crate) fn breaker_closed() {}
    #[inline(always)]
    pub(crate) fn l1_size_change(_: f64, _: f64) {}
    #[inline(always)]
    pub(crate) fn invalidations(_: Invalidation, _: u64) {}
    #[inline(always)]
    pub(crate) fn write_behind_pending(_: &str, _: f64) {}
    #[inline(always)]
    pub(crate) fn dead_letters(_: &str, _: u64) {}
    #[inline(always)]
    pub(crate) fn decode_failure() {}

    /// A site's handles: none.
    #[derive(Debug)]
    pub(crate) struct SiteMetrics;
    impl SiteMetrics {
        pub(crate) const fn new() -> Self {
            SiteMetrics
        }
    }
}

#[cfg(feature = "metrics")]
mod on {
    use super::{Command, Evicted, Invalidation, LockWait, Outcome};
    use crate::call::Site;
    use crate::Operation;
    use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
    use std::collections::HashMap;
    use std::sync::atomic::AtomicPtr;
    use std::sync::atomic::Ordering::{Acquire, Release};
    use std::sync::Mutex;
    use std::time::Duration;

    pub(crate) const ON: bool = true;

    const META: Metadata<'static> =
        Metadata::new("cache_runtime", Level::INFO, Some("cache_runtime"));

    /// Handles registered with one recorder, kept while it stays the one
    /// in effect; a different one (a global recorder installed after the
    /// first call, a test's local recorder) gets handles of its own, kept
    /// too. The handles in use are one atomic load away: sites and the
    /// engine's set live for the process, and so do their handles (one set
    /// per recorder the process ever used).
    pub(crate) struct Cached<T: 'static> {
        current: AtomicPtr<(RecorderId, T)>,
        all: Mutex<Vec<&'static (RecorderId, T)>>,
    }

    /// Which recorder: its address and its type's vtable (two recorders of
    /// zero size share an address; of one type, they are alike anyway).
    #[derive(Clone, Copy)]
    pub(crate) struct RecorderId(*const (dyn Recorder + 'static));

    // SAFETY: never dereferenced; only compared.
    unsafe impl Send for RecorderId {}
    // SAFETY: as above.
    unsafe impl Sync for RecorderId {}

    impl RecorderId {
        fn of(recorder: &dyn Recorder) -> RecorderId {
            let p: *const (dyn Recorder + '_) = recorder;
            // SAFETY: only the trait object's lifetime changes; the pointer
            // is never dereferenced.
            RecorderId(unsafe {
                std::mem::transmute::<*const (dyn Recorder + '_), *const (dyn Recorder + 'static)>(
                    p,
                )
            })
        }

        fn is(self, other: RecorderId) -> bool {
            std::ptr::eq(self.0, other.0)
        }
    }

    impl<T: 'static> Cached<T> {
        pub(crate) const fn new() -> Self {
            Cached {
                current: AtomicPtr::new(std::ptr::null_mut()),
                all: Mutex::new(Vec::new()),
            }
        }

        #[inline]
        pub(crate) fn with<R>(
            &self,
            make: impl FnOnce(&dyn Recorder) -> T,
            f: impl FnOnce(&T) -> R,
        ) -> R {
            metrics::with_recorder(|recorder| {
                let id = RecorderId::of(recorder);
                // SAFETY: `current` is null or points into a leaked box of `all`.
                if let Some(kept) = unsafe { self.current.load(Acquire).as_ref() } {
                    if kept.0.is(id) {
                        return f(&kept.1);
                    }
                }
                f(&self.switch(id, recorder, make).1)
            })
        }

        #[cold]
        fn switch(
            &self,
            id: RecorderId,
            recorder: &dyn Recorder,
            make: impl FnOnce(&dyn Recorder) -> T,
        ) -> &'static (RecorderId, T) {
            let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
            let kept = match all.iter().find(|k| k.0.is(id)) {
                Some(kept) => *kept,
                None => {
                    let kept: &'static (RecorderId, T) = Box::leak(Box::new((id, make(recorder))));
                    all.push(kept);
                    kept
                }
            };
            self.current.store(
                kept as *const (RecorderId, T) as *mut (RecorderId, T),
                Release,
            );
            kept
        }
    }

    impl<T> std::fmt::Debug for Cached<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Cached")
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|&(k, v)| Label::from_static_parts(k, v))
            .collect();
        Key::from_parts(name, labels)
    }

    fn counter(
        r: &dyn Recorder,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Counter {
        r.register_counter(&key(name, labels), &META)
    }

    fn gauge(
        r: &dyn Recorder,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Gauge {
        r.register_gauge(&key(name, labels), &META)
    }

    fn histogram(
        r: &dyn Recorder,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        r.register_histogram(&key(name, labels), &META)
    }

    /// A read site's handles (`#[cached]`): its gets, loads, lock waits
    /// and refreshes.
    pub(crate) struct Reads {
        /// l1 hit, l1 miss, l2 hit, l2 miss, l2 stale (see [`Reads::got`]).
        gets: super::gather::Counters,
        load_ok: Counter,
        load_err: Counter,
        load_seconds: Histogram,
        lock_value: Counter,
        lock_timeout: Counter,
        lock_takeover: Counter,
        lock_gave_up: Counter,
        lock_error: Counter,
        refresh_ok: Counter,
        refresh_err: Counter,
    }

    impl Reads {
        fn new(r: &dyn Recorder, function: &'static str) -> Reads {
            describe(r);
            let f = ("function", function);
            let get = |tier, result| {
                counter(
                    r,
                    "cache_gets_total",
                    &[f, ("tier", tier), ("result", result)],
                )
            };
            Reads {
                gets: super::gather::Counters::new(vec![
                    get("l1", "hit"),
                    get("l1", "miss"),
                    get("l2", "hit"),
                    get("l2", "miss"),
                    get("l2", "stale"),
                ]),
                load_ok: counter(r, "cache_loads_total", &[f, ("result", "ok")]),
                load_err: counter(r, "cache_loads_total", &[f, ("result", "err")]),
                load_seconds: histogram(r, "cache_load_duration_seconds", &[f]),
                lock_value: counter(r, "cache_lock_waits_total", &[f, ("result", "value")]),
                lock_timeout: counter(r, "cache_lock_waits_total", &[f, ("result", "timeout")]),
                lock_takeover: counter(r, "cache_lock_waits_total", &[f, ("result", "takeover")]),
                lock_gave_up: counter(r, "cache_lock_waits_total", &[f, ("result", "gave_up")]),
                lock_error: counter(r, "cache_lock_waits_total", &[f, ("result", "error")]),
                refresh_ok: counter(r, "cache_refreshes_total", &[f, ("result", "ok")]),
                refresh_err: counter(r, "cache_refreshes_total", &[f, ("result", "err")]),
            }
        }

        #[inline]
        pub(crate) fn got(&self, outcome: Outcome, tiered: bool) {
            const L1_HIT: usize = 0;
            const L1_MISS: usize = 1;
            let l2 = match outcome {
                Outcome::Uncached => return,
                Outcome::L1Hit => return self.gets.add(L1_HIT),
                Outcome::L2Hit => 2,
                Outcome::Miss => 3,
                Outcome::Stale => 4,
                // Counted in cache_errors_total; the L1 (if any) missed.
                Outcome::Error => {
                    if tiered {
                        self.gets.add(L1_MISS);
                    }
                    return;
                }
            };
            if tiered {
                self.gets.add(L1_MISS);
            }
            self.gets.add(l2);
        }
    }

    /// A write site's handles (`#[cache_put]`, `#[cache_evict]`).
    pub(crate) struct Writes {
        puts: Counter,
        key: Counter,
        tag: Counter,
        pattern: Counter,
    }

    impl Writes {
        fn new(r: &dyn Recorder, function: &'static str) -> Writes {
            describe(r);
            let f = ("function", function);
            let evicted = |kind| counter(r, "cache_evictions_total", &[f, ("kind", kind)]);
            Writes {
                puts: counter(r, "cache_puts_total", &[f]),
                key: evicted("key"),
                tag: evicted("tag"),
                pattern: evicted("pattern"),
            }
        }
    }

    /// A site's handles, registered on its first use of each kind.
    #[derive(Debug)]
    pub(crate) struct SiteMetrics {
        reads: Cached<Reads>,
        writes: Cached<Writes>,
    }

    impl SiteMetrics {
        pub(crate) const fn new() -> Self {
            SiteMetrics {
                reads: Cached::new(),
                writes: Cached::new(),
            }
        }
    }

    impl Site {
        pub(crate) fn metrics_reads<R>(&'static self, f: impl FnOnce(&Reads) -> R) -> R {
            self.metrics_cell()
                .reads
                .with(|r| Reads::new(r, self.name()), f)
        }
        fn metrics_writes<R>(&'static self, f: impl FnOnce(&Writes) -> R) -> R {
            self.metrics_cell()
                .writes
                .with(|r| Writes::new(r, self.name()), f)
        }
    }

    /// The engine's handles, one set per process (every cache adds into
    /// the same series: they carry no cache's name).
    struct Engine {
        errors: HashMap<&'static str, Counter>,
        commands: super::gather::Times,
        breaker_open: Gauge,
        breaker_opens: Counter,
        l1_entries: Gauge,
        l1_bytes: Gauge,
        invalidations: [Counter; 3],
        decode_failures: Counter,
    }

    static ENGINE: Cached<Engine> = Cached::new();

    const OPERATIONS: [Operation; 9] = [
        Operation::Get,
        Operation::Set,
        Operation::Delete,
        Operation::Exists,
        Operation::ClearPattern,
        Operation::InvalidateTags,
        Operation::WriteBehind,
        Operation::Lock,
        Operation::ServerInfo,
    ];

    impl Engine {
        fn new(r: &dyn Recorder) -> Engine {
            describe(r);
            let errors = OPERATIONS
                .iter()
                .map(|&op| {
                    let name = op.name();
                    (
                        name,
                        counter(r, "cache_errors_total", &[("operation", name)]),
                    )
                })
                .collect();
            let commands = super::gather::Times::new(
                Command::ALL
                    .iter()
                    .map(|c| {
                        histogram(
                            r,
                            "cache_redis_command_duration_seconds",
                            &[("command", c.as_str())],
                        )
                    })
                    .collect(),
            );
            let source = |s| counter(r, "cache_invalidations_total", &[("source", s)]);
            Engine {
                errors,
                commands,
                breaker_open: gauge(r, "cache_breaker_open", &[]),
                breaker_opens: counter(r, "cache_breaker_opens_total", &[]),
                l1_entries: gauge(r, "cache_l1_entries", &[]),
                l1_bytes: gauge(r, "cache_l1_bytes", &[]),
                invalidations: [source("redis"), source("local"), source("flush")],
                decode_failures: counter(r, "cache_decode_failures_total", &[]),
            }
        }
    }

    #[inline]
    fn engine(f: impl FnOnce(&Engine)) {
        ENGINE.with(Engine::new, f)
    }

    /// Write-behind handles, per stream (few, named by the application).
    static STREAMS: Cached<Mutex<HashMap<String, (Gauge, Counter)>>> = Cached::new();

    fn stream(name: &str, f: impl FnOnce(&(Gauge, Counter))) {
        STREAMS.with(
            |_| Mutex::new(HashMap::new()),
            |map| {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if !map.contains_key(name) {
                    let handles = metrics::with_recorder(|r| {
                        describe(r);
                        let labels = vec![Label::new("stream", name.to_owned())];
                        let pending = Key::from_parts("cache_write_behind_pending", labels.clone());
                        let dead = Key::from_parts("cache_write_behind_dead_letters_total", labels);
                        (
                            r.register_gauge(&pending, &META),
                            r.register_counter(&dead, &META),
                        )
                    });
                    map.insert(name.to_owned(), handles);
                }
                f(&map[name]);
            },
        );
    }

    /// Once per recorder: the metrics' units and help texts.
    fn describe(r: &dyn Recorder) {
        static DESCRIBED: Mutex<Vec<RecorderId>> = Mutex::new(Vec::new());
        let id = RecorderId::of(r);
        let mut done = DESCRIBED.lock().unwrap_or_else(|p| p.into_inner());
        if done.iter().any(|d| d.is(id)) {
            return;
        }
        done.push(id);
        for (name, help) in COUNTERS {
            r.describe_counter((*name).into(), Some(Unit::Count), (*help).into());
        }
        for (name, unit, help) in GAUGES {
            r.describe_gauge((*name).into(), Some(*unit), (*help).into());
        }
        for (name, help) in HISTOGRAMS {
            r.describe_histogram((*name).into(), Some(Unit::Seconds), (*help).into());
        }
    }

    const COUNTERS: &[(&str, &str)] = &[
        (
            "cache_gets_total",
            "Cached calls by tier and result (hit, miss, stale)",
        ),
        (
            "cache_loads_total",
            "Body runs of cached functions, by result",
        ),
        ("cache_puts_total", "Write-through stores (#[cache_put])"),
        (
            "cache_evictions_total",
            "Evictions (#[cache_evict]) by kind: key, tag, pattern",
        ),
        (
            "cache_errors_total",
            "Backend failures and timeouts, by operation",
        ),
        (
            "cache_invalidations_total",
            "Keys the L1 dropped, by how it learned of the change",
        ),
        (
            "cache_lock_waits_total",
            "Waits for another process's fill under the fill lock, by result",
        ),
        (
            "cache_refreshes_total",
            "Background refreshes (stale, early_refresh), by result",
        ),
        (
            "cache_breaker_opens_total",
            "Times the circuit breaker opened",
        ),
        (
            "cache_decode_failures_total",
            "Stored values that did not decode (each a miss)",
        ),
        (
            "cache_write_behind_dead_letters_total",
            "Write-behind entries moved to the dead-letter stream",
        ),
    ];

    const GAUGES: &[(&str, Unit, &str)] = &[
        (
            "cache_breaker_open",
            Unit::Count,
            "Circuit breakers open now (one per cache)",
        ),
        ("cache_l1_entries", Unit::Count, "Entries in the L1"),
        (
            "cache_l1_bytes",
            Unit::Bytes,
            "Bytes the L1's entries weigh",
        ),
        (
            "cache_write_behind_pending",
            Unit::Count,
            "Write-behind writes not yet delivered (summed over processes: the backlog)",
        ),
    ];

    const HISTOGRAMS: &[(&str, &str)] = &[
        (
            "cache_load_duration_seconds",
            "How long bodies of cached functions ran",
        ),
        (
            "cache_redis_command_duration_seconds",
            "L2 command latency, by command",
        ),
    ];

    #[inline]
    pub(crate) fn load(site: &'static Site, failed: bool, took: Duration) {
        site.metrics_reads(|h| {
            if failed { &h.load_err } else { &h.load_ok }.increment(1);
            h.load_seconds.record(took.as_secs_f64());
        });
    }

    #[inline]
    pub(crate) fn refresh(site: &'static Site, failed: bool) {
        site.metrics_reads(|h| {
            if failed {
                &h.refresh_err
            } else {
                &h.refresh_ok
            }
            .increment(1)
        });
    }

    #[inline]
    pub(crate) fn put(site: &'static Site) {
        site.metrics_writes(|h| h.puts.increment(1));
    }

    #[inline]
    pub(crate) fn evicted(site: &'static Site, kind: Evicted, n: usize) {
        if n == 0 {
            return;
        }
        site.metrics_writes(|h| {
            match kind {
                Evicted::Key => &h.key,
                Evicted::Tag => &h.tag,
                Evicted::Pattern => &h.pattern,
            }
            .increment(n as u64)
        });
    }

    #[inline]
    pub(crate) fn lock_wait(site: &'static Site, result: LockWait) {
        site.metrics_reads(|h| {
            match result {
                LockWait::Value => &h.lock_value,
                LockWait::Timeout => &h.lock_timeout,
                LockWait::Takeover => &h.lock_takeover,
                LockWait::GaveUp => &h.lock_gave_up,
                LockWait::Error => &h.lock_error,
            }
            .increment(1)
        });
    }

    #[inline]
    pub(crate) fn error(op: Operation) {
        engine(|e| {
            if let Some(c) = e.errors.get(op.name()) {
                c.increment(1);
            }
        });
    }

    #[inline]
    pub(crate) fn command(command: Command, took: Duration) {
        engine(|e| e.commands.record(command as usize, took));
    }

    /// A breaker opened: one more open (the gauge counts the process's
    /// open breakers, one per cache).
    pub(crate) fn breaker_opened() {
        engine(|e| {
            e.breaker_open.increment(1.0);
            e.breaker_opens.increment(1);
        });
    }

    /// A breaker closed (or its cache went away while it was open).
    pub(crate) fn breaker_closed() {
        engine(|e| e.breaker_open.decrement(1.0));
    }

    /// An L1 grew (or, negative, shrank) by this many entries and bytes.
    pub(crate) fn l1_size_change(entries: f64, bytes: f64) {
        engine(|e| {
            e.l1_entries.increment(entries);
            e.l1_bytes.increment(bytes);
        });
    }

    #[inline]
    pub(crate) fn invalidations(source: Invalidation, n: u64) {
        engine(|e| e.invalidations[source as usize].increment(n));
    }

    pub(crate) fn decode_failure() {
        engine(|e| e.decode_failures.increment(1));
    }

    /// `delta` writes added to (or, negative, delivered from) `stream`'s backlog.
    pub(crate) fn write_behind_pending(stream_name: &str, delta: f64) {
        stream(stream_name, |(pending, _)| pending.increment(delta));
    }

    pub(crate) fn dead_letters(stream_name: &str, n: u64) {
        stream(stream_name, |(_, dead)| dead.increment(n));
    }
}

#[cfg(feature = "metrics")]
mod gather;

#[cfg(test)]
mod tests;
