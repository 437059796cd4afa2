//! [`SyncHistogram`]: a lock-free histogram of how long the durability syncs took.
//!
//! A backend owns one and feeds it from its sync path ([`SyncHistogram::observe`], a
//! few relaxed atomic adds, never a lock: it runs inside the group commit). Readers take
//! a [`SyncHistogramSnapshot`] at any time, from any thread, without stopping writers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (a last, unbounded bucket follows): from
/// 50 µs (a fast NVMe flush) to 2.5 s (a stalled disk).
pub const SYNC_BUCKETS_SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

const BUCKETS: usize = SYNC_BUCKETS_SECONDS.len() + 1;

/// Counts of sync durations per bucket, and their sum.
#[derive(Debug)]
pub struct SyncHistogram {
    /// Non-cumulative counts: `counts[i]` holds the observations in
    /// `(bound[i - 1], bound[i]]`, the last one those above every bound.
    counts: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

/// A [`SyncHistogram`] as of one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncHistogramSnapshot {
    /// `(upper bound in seconds, observations above the previous bound and at or below
    /// this one)`, not cumulative, in [`SYNC_BUCKETS_SECONDS`] order, then
    /// `(f64::INFINITY, observations above every bound)`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their total, in seconds.
    pub sum_seconds: f64,
}

impl Default for SyncHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one sync that took `took`.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let i = SYNC_BUCKETS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS - 1);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far. Observations that race with it are either in it or not, one
    /// by one; the count is always the sum of the buckets.
    pub fn snapshot(&self) -> SyncHistogramSnapshot {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(BUCKETS);
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            let bound = SYNC_BUCKETS_SECONDS
                .get(i)
                .copied()
                .unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        SyncHistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_add_up() {
        let h = SyncHistogram::new();
        assert_eq!(h.snapshot().count, 0);
        h.observe(Duration::from_micros(50)); // on a bound: in it
        h.observe(Duration::from_micros(51)); // just above: the next one
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), SYNC_BUCKETS_SECONDS.len() + 1);
        let at = |bound: f64| {
            s.buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map(|(_, n)| *n)
                .expect("bound present")
        };
        assert_eq!(at(0.000_05), 1);
        assert_eq!(at(0.000_1), 1);
        assert_eq!(at(0.002_5), 0);
        assert_eq!(at(0.005), 1);
        assert_eq!(at(10.0), 0);
        assert_eq!(at(f64::INFINITY), 1);
        let total: u64 = s.buckets.iter().map(|b| b.1).sum();
        assert_eq!(total, s.count);
        let expected = 60.0 + 0.003 + 0.000_101;
        assert!((s.sum_seconds - expected).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn concurrent_observers_lose_nothing() {
        let h = std::sync::Arc::new(SyncHistogram::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(Duration::from_micros((i * (t + 1)) % 5_000));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("observer thread");
        }
        let s = h.snapshot();
        assert_eq!(s.count, 40_000);
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 40_000);
    }
}
