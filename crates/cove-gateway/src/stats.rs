//! Counters of one route: atomics, no lock on the request path. Kept by
//! the table's routes, rendered in Prometheus text by `metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, seconds.
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one route.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// By status class: 1xx..5xx.
    by_class: [AtomicU64; 5],
    /// Requests not above each bound of [`BUCKETS`] (not cumulative).
    pub(crate) buckets: [AtomicU64; BUCKETS.len()],
    /// Above the last bound.
    pub(crate) over: AtomicU64,
    pub(crate) sum_micros: AtomicU64,
    pub(crate) upstream_errors: AtomicU64,
}

impl RouteStats {
    pub fn new() -> std::sync::Arc<RouteStats> {
        Default::default()
    }

    /// A request answered `status` after `took`.
    pub fn record(&self, status: u16, took: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The upstream failed (connect, error, timeout).
    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far with a status of `class` (1 to 5).
    pub fn requests(&self, class: usize) -> u64 {
        self.by_class[class - 1].load(Ordering::Relaxed)
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
        assert_eq!(s.buckets[0].load(Ordering::Relaxed), 2);
        assert_eq!(s.buckets[5].load(Ordering::Relaxed), 1, "30 ms ≤ 50 ms");
        assert_eq!(s.over.load(Ordering::Relaxed), 1);
    }
}
