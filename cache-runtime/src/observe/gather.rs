//! The metrics of the hit path, gathered per thread and handed to the
//! recorder once a second.
//!
//! A hit reports its `cache_gets_total` and, when Redis answered it, the
//! command's duration. Straight into the recorder, each would be a write
//! to memory every core shares (a counter's atomic; the Prometheus
//! recorder's one buffer of samples per series), which at a few hundred
//! nanoseconds a hit costs more than the 5% a hit may pay for its metrics.
//! Here each is one add to a counter of the calling thread's shard (a
//! duration in a log-linear bucket, 16 per power of two: within 3.2% of
//! the value), and one background thread hands each second's counts to the
//! recorder's handles (`increment`, `record_many` at the bucket's middle).
//! Counts reach the recorder within about a second.

use metrics::{Counter, Histogram};
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Shards: threads spread over them, so that two cores rarely add to the
/// same counter.
const SHARDS: usize = 4;
/// Buckets per power of two.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// The first power of two with buckets of its own (1.024 µs); below it, one
/// bucket.
const MIN_POW: u32 = 10;
/// Powers of two up to about 275 s; longer commands go in the last bucket.
const POWS: usize = 28;
const BUCKETS: usize = 1 + POWS * SUB;
/// How often the counts are handed to the recorder.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What the background thread hands over.
trait Flush: Send + Sync {
    fn flush(&self);
}

/// Everything gathered, and whether the thread runs (`false`: it could not
/// be started, and reports go straight to the recorder).
static GATHERED: Mutex<Vec<Arc<dyn Flush>>> = Mutex::new(Vec::new());

/// Adds `what` to the background thread's work, starting the thread the
/// first time; `false` if there is no thread.
fn gather(what: Arc<dyn Flush>) -> bool {
    use std::sync::OnceLock;
    static THREAD: OnceLock<bool> = OnceLock::new();
    let running = *THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("cache-metrics".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush_all();
            })
            .is_ok()
    });
    if running {
        GATHERED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what);
    }
    running
}

/// Hands everything gathered so far to the recorder (the background
/// thread's step; tests call it to read counts at once).
pub(crate) fn flush_all() {
    let all = GATHERED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for what in all {
        what.flush();
    }
}

/// The bucket of a duration of `nanos`.
fn bucket(nanos: u64) -> usize {
    if nanos < 1 << MIN_POW {
        return 0;
    }
    let pow = 63 - nanos.leading_zeros();
    let sub = ((nanos >> (pow - SUB_BITS)) as usize) & (SUB - 1);
    (1 + (pow - MIN_POW) as usize * SUB + sub).min(BUCKETS - 1)
}

/// The middle of bucket `b`, in seconds.
fn middle(b: usize) -> f64 {
    if b == 0 {
        return 0.5e-6;
    }
    let pow = (b - 1) / SUB + MIN_POW as usize;
    let sub = ((b - 1) % SUB) as u64;
    let width = 1u64 << (pow - SUB_BITS as usize);
    let low = (SUB as u64 + sub) * width;
    (low as f64 + width as f64 / 2.0) / 1e9
}

fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Relaxed) % SHARDS);
        }
        s.get()
    })
}

struct Inner {
    histograms: Vec<Histogram>,
    /// `[shard][histogram][bucket]`.
    counts: Box<[AtomicU32]>,
}

impl Flush for Inner {
    fn flush(&self) {
        let per_shard = self.histograms.len() * BUCKETS;
        for (h, histogram) in self.histograms.iter().enumerate() {
            for b in 0..BUCKETS {
                let at = h * BUCKETS + b;
                let n: u32 = (0..SHARDS)
                    .map(|s| self.counts[s * per_shard + at].swap(0, Relaxed))
                    .sum();
                if n > 0 {
                    histogram.record_many(middle(b), n as usize);
                }
            }
        }
    }
}

/// Durations for `histograms`, one per kind of command.
pub(super) struct Times {
    inner: Arc<Inner>,
    /// No background thread could be started: samples go straight through.
    direct: bool,
}

impl Times {
    pub(super) fn new(histograms: Vec<Histogram>) -> Times {
        let counts = (0..SHARDS * histograms.len() * BUCKETS)
            .map(|_| AtomicU32::new(0))
            .collect();
        let inner = Arc::new(Inner { histograms, counts });
        let direct = !gather(Arc::clone(&inner) as Arc<dyn Flush>);
        Times { inner, direct }
    }

    #[inline]
    pub(super) fn record(&self, which: usize, took: Duration) {
        if self.direct {
            self.inner.histograms[which].record(took.as_secs_f64());
            return;
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let at = (shard() * self.inner.histograms.len() + which) * BUCKETS + bucket(nanos);
        self.inner.counts[at].fetch_add(1, Relaxed);
    }
}

/// One shard's counts, on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Shard([AtomicU32; COUNTERS]);

/// The most counters a [`Counters`] gathers.
const COUNTERS: usize = 8;

struct CountersInner {
    handles: Vec<Counter>,
    shards: [Shard; SHARDS],
}

impl Flush for CountersInner {
    fn flush(&self) {
        for (i, handle) in self.handles.iter().enumerate() {
            let n: u64 = self
                .shards
                .iter()
                .map(|s| u64::from(s.0[i].swap(0, Relaxed)))
                .sum();
            if n > 0 {
                handle.increment(n);
            }
        }
    }
}

/// Up to [`COUNTERS`] counters, added to per thread.
pub(super) struct Counters {
    inner: Arc<CountersInner>,
    direct: bool,
}

impl Counters {
    pub(super) fn new(handles: Vec<Counter>) -> Counters {
        assert!(handles.len() <= COUNTERS);
        let inner = Arc::new(CountersInner {
            handles,
            shards: Default::default(),
        });
        let direct = !gather(Arc::clone(&inner) as Arc<dyn Flush>);
        Counters { inner, direct }
    }

    #[inline]
    pub(super) fn add(&self, which: usize) {
        if self.direct {
            self.inner.handles[which].increment(1);
        } else {
            self.inner.shards[shard()].0[which].fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_is_within_a_thirty_second_of_its_bucket_middle() {
        for nanos in (1_024u64..10_000_000_000)
            .step_by(7_777_777)
            .chain([1_024, 1_500, 2_047, 2_048, 999_999])
        {
            let m = middle(bucket(nanos)) * 1e9;
            let error = (m - nanos as f64).abs() / nanos as f64;
            assert!(
                error <= 1.0 / 32.0 + 1e-9,
                "{nanos} ns: middle {m}, error {error}"
            );
        }
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_023), 0);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // Buckets grow with the duration.
        let mut last = 0;
        for nanos in (1_000u64..1_000_000).step_by(997) {
            assert!(bucket(nanos) >= last);
            last = bucket(nanos);
        }
    }
}
