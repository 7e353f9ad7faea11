//! The gateway's answers for a service over a window, for alerts
//! (`error_rate[W]`, `p99_ms[W]`): the route counters
//! ([`cove_gateway::metrics::RouteStats`]) only ever grow, so the evaluator
//! keeps timed samples of them ([`Samples`]) and reads the difference
//! between now and the sample at the start of the window. Pure: time is
//! given, in milliseconds.

use std::collections::VecDeque;

use cove_gateway::metrics::BUCKETS;

/// Most samples kept per service.
const MAX_SAMPLES: usize = 4096;

/// A service's answers so far, summed over its routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    /// By status class, 1xx to 5xx.
    pub classes: [u64; 5],
    /// By latency: within each bound of [`BUCKETS`], then above the last.
    pub buckets: [u64; BUCKETS.len() + 1],
}

impl Answered {
    fn total(&self) -> u64 {
        self.classes.iter().sum()
    }

    /// `self - before`, or `None` if a counter went back (the gateway's
    /// counters began again).
    fn since(&self, before: &Answered) -> Option<Answered> {
        let mut d = Answered::default();
        for (i, c) in self.classes.iter().enumerate() {
            d.classes[i] = c.checked_sub(before.classes[i])?;
        }
        for (i, b) in self.buckets.iter().enumerate() {
            d.buckets[i] = b.checked_sub(before.buckets[i])?;
        }
        Some(d)
    }
}

/// Timed samples of a service's [`Answered`], oldest first.
#[derive(Debug, Default)]
pub struct Samples(VecDeque<(u64, Answered)>);

impl Samples {
    /// Adds a sample taken at `now`; forgets those older than `keep_ms`
    /// before it (but the newest of those, the start of a window), and all
    /// of them if the counters began again.
    pub fn push(&mut self, now: u64, a: Answered, keep_ms: u64) {
        if self
            .0
            .back()
            .is_some_and(|(_, last)| a.since(last).is_none())
        {
            self.0.clear();
        }
        self.0.push_back((now, a));
        let from = now.saturating_sub(keep_ms);
        while self.0.len() > 1 && self.0.get(1).is_some_and(|(t, _)| *t <= from) {
            self.0.pop_front();
        }
        while self.0.len() > MAX_SAMPLES {
            self.0.pop_front();
        }
    }

    /// The answers within the `window_ms` before `now` (since the oldest
    /// sample when there is none that old), if there are samples.
    fn within(&self, now: u64, window_ms: u64) -> Option<Answered> {
        let (_, last) = self.0.back()?;
        let from = now.saturating_sub(window_ms);
        let base = self
            .0
            .iter()
            .rev()
            .find(|(t, _)| *t <= from)
            .or(self.0.front())
            .map(|(_, a)| a)?;
        last.since(base)
    }

    /// The share of 5xx answers in the window, and how many answers;
    /// `None` without any.
    pub fn error_rate(&self, now: u64, window_ms: u64) -> Option<(f64, u64)> {
        let d = self.within(now, window_ms)?;
        let total = d.total();
        (total > 0).then(|| (d.classes[4] as f64 / total as f64, total))
    }

    /// The 99th percentile latency in the window, in ms: the upper bound
    /// of the histogram bucket it falls in (infinite above the last);
    /// `None` without any answer.
    pub fn p99_ms(&self, now: u64, window_ms: u64) -> Option<(f64, u64)> {
        let d = self.within(now, window_ms)?;
        let total: u64 = d.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total * 99).div_ceil(100);
        let mut seen = 0;
        for (i, n) in d.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let ms = BUCKETS.get(i).map_or(f64::INFINITY, |b| b * 1000.0);
                return Some((ms, total));
            }
        }
        Some((f64::INFINITY, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn answered(ok: u64, errors: u64, fast: u64, slow: u64) -> Answered {
        let mut a = Answered::default();
        a.classes[1] = ok;
        a.classes[4] = errors;
        a.buckets[0] = fast; // ≤ 1 ms
        a.buckets[8] = slow; // ≤ 500 ms
        a
    }

    #[test]
    fn error_rate_is_the_share_of_5xx_within_the_window() {
        let mut s = Samples::default();
        assert_eq!(s.error_rate(0, 60 * S), None);
        s.push(0, answered(100, 0, 100, 0), 60 * S);
        s.push(30 * S, answered(150, 0, 150, 0), 60 * S);
        // Since the oldest sample: 50 answers, none an error.
        assert_eq!(s.error_rate(30 * S, 60 * S), Some((0.0, 50)));
        s.push(60 * S, answered(160, 40, 200, 0), 60 * S);
        assert_eq!(s.error_rate(60 * S, 60 * S), Some((0.4, 100)));
        // The window moves: only what came after the sample at 30 s.
        s.push(90 * S, answered(160, 40, 200, 0), 60 * S);
        assert_eq!(s.error_rate(90 * S, 60 * S), Some((0.8, 50)));
        s.push(150 * S, answered(160, 40, 200, 0), 60 * S);
        assert_eq!(
            s.error_rate(150 * S, 60 * S),
            None,
            "no answers in the window"
        );
    }

    #[test]
    fn p99_is_the_bound_of_its_bucket() {
        let mut s = Samples::default();
        s.push(0, Answered::default(), 60 * S);
        s.push(S, answered(100, 0, 99, 1), 60 * S);
        assert_eq!(s.p99_ms(S, 60 * S), Some((1.0, 100)));
        s.push(2 * S, answered(200, 0, 197, 3), 60 * S);
        assert_eq!(s.p99_ms(2 * S, 60 * S), Some((500.0, 200)));
        let mut over = answered(300, 0, 197, 3);
        over.buckets[BUCKETS.len()] = 100;
        s.push(3 * S, over, 60 * S);
        assert_eq!(s.p99_ms(3 * S, 60 * S).unwrap().0, f64::INFINITY);
    }

    #[test]
    fn counters_that_begin_again_start_the_samples_again() {
        let mut s = Samples::default();
        s.push(0, answered(100, 50, 150, 0), 60 * S);
        s.push(S, answered(10, 0, 10, 0), 60 * S);
        assert_eq!(s.error_rate(S, 60 * S), Some((0.0, 0)).filter(|_| false));
        s.push(2 * S, answered(20, 10, 30, 0), 60 * S);
        let (rate, n) = s.error_rate(2 * S, 60 * S).unwrap();
        assert_eq!(n, 20);
        assert!((rate - 0.5).abs() < 1e-9);
    }
}
