//! Counters of one route: atomics per thread, no lock on the request path. Kept by
//! the table's routes, rendered in Prometheus text by `metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, seconds.
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one route: one set per gateway thread (a thread counts in
/// its own cache line, never in another core's), summed when read.
#[derive(Debug, Default)]
pub struct RouteStats {
    shards: [Shard; SHARDS],
}

/// Sets of counters of a route; threads beyond this share them.
const SHARDS: usize = 4;

/// One thread's counters, alone in its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    /// By status class: 1xx..5xx.
    by_class: [AtomicU64; 5],
    /// Requests not above each bound of [`BUCKETS`] (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Above the last bound.
    over: AtomicU64,
    sum_micros: AtomicU64,
    upstream_errors: AtomicU64,
}

/// This thread's set of counters.
fn slot() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = Cell::new(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
    }
    SLOT.with(Cell::get)
}

impl RouteStats {
    pub fn new() -> std::sync::Arc<RouteStats> {
        Default::default()
    }

    fn here(&self) -> &Shard {
        &self.shards[slot()]
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// A request answered `status` after `took`.
    pub fn record(&self, status: u16, took: Duration) {
        let s = self.here();
        let class = (status / 100).clamp(1, 5) as usize - 1;
        s.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => s.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => s.over.fetch_add(1, Ordering::Relaxed),
        };
        s.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The upstream failed (connect, error, timeout).
    pub fn upstream_error(&self) {
        self.here().upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far with a status of `class` (1 to 5).
    pub fn requests(&self, class: usize) -> u64 {
        self.sum(|s| &s.by_class[class - 1])
    }

    /// Requests answered within the `i`th bound of [`BUCKETS`] (above the
    /// one before; `BUCKETS.len()`: above the last).
    pub fn in_bucket(&self, i: usize) -> u64 {
        match i {
            i if i < BUCKETS.len() => self.sum(|s| &s.buckets[i]),
            _ => self.sum(|s| &s.over),
        }
    }

    /// Time spent answering, in all, microseconds.
    pub(crate) fn sum_micros(&self) -> u64 {
        self.sum(|s| &s.sum_micros)
    }

    pub(crate) fn upstream_errors(&self) -> u64 {
        self.sum(|s| &s.upstream_errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_bucket_and_classes_are_counted() {
        let s = RouteStats::default();
        s.record(200, Duration::from_micros(900));
        s.record(204, Duration::from_millis(30));
        s.record(503, Duration::from_secs(11));
        s.record(99, Duration::ZERO);
        assert_eq!(s.requests(2), 2);
        assert_eq!(s.requests(5), 1);
        assert_eq!(s.requests(1), 1, "below 100 counts as 1xx");
        assert_eq!(s.in_bucket(0), 2);
        assert_eq!(s.in_bucket(5), 1, "30 ms ≤ 50 ms");
        assert_eq!(s.in_bucket(BUCKETS.len()), 1);
        // Counted by other threads: the same sums.
        std::thread::scope(|t| {
            for _ in 0..6 {
                t.spawn(|| s.record(200, Duration::from_micros(900)));
            }
        });
        assert_eq!(s.requests(2), 8);
        assert_eq!(s.in_bucket(0), 8);
    }
}
