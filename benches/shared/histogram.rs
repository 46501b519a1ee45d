//! The latency histogram of the throughput and invalidation tools. Included
//! with `#[path]` into each (the package has no library), so not every tool
//! uses every item.

#![allow(dead_code)]

use std::time::Duration;

/// A log-linear histogram of durations in nanoseconds, HDR-style: exact
/// below 128 ns, then 128 linear buckets per power of two.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
    /// The largest duration recorded, exactly.
    max_ns: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 7;
    const SUB: usize = 1 << Self::SUB_BITS;
    const LEN: usize = Self::SUB * (64 - Self::SUB_BITS as usize + 1);

    pub fn new() -> Self {
        Histogram {
            counts: vec![0; Self::LEN],
            total: 0,
            max_ns: 0,
        }
    }

    fn index(ns: u64) -> usize {
        if ns < Self::SUB as u64 {
            return ns as usize;
        }
        let shift = 63 - ns.leading_zeros() - Self::SUB_BITS;
        let sub = (ns >> shift) as usize - Self::SUB;
        Self::SUB + shift as usize * Self::SUB + sub
    }

    /// The middle of bucket `index`, in nanoseconds.
    fn value(index: usize) -> f64 {
        if index < Self::SUB {
            return index as f64;
        }
        let shift = (index - Self::SUB) / Self::SUB;
        let sub = (index - Self::SUB) % Self::SUB;
        let low = ((Self::SUB + sub) as u64) << shift;
        low as f64 + (1u64 << shift) as f64 / 2.0
    }

    pub fn record(&mut self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The mean in microseconds (bucket middles).
    pub fn mean_us(&self) -> f64 {
        let sum: f64 = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, &n)| Self::value(i) * n as f64)
            .sum();
        sum / self.total.max(1) as f64 / 1_000.0
    }

    /// The `q` quantile (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(i) / 1_000.0;
            }
        }
        f64::NAN
    }

    /// The largest recorded duration in microseconds (exact, not a bucket).
    pub fn max_us(&self) -> f64 {
        self.max_ns as f64 / 1_000.0
    }
}
