//! Restart pacing: exponential backoff, capped, reset after a stable run
//! (10 s, as Docker's restart policy does) or a run that passed its health
//! check (it was not crash-looping at start-up).
//!
//! Pure: the caller says how long the replica ran; the policy answers how
//! long to wait before the next start. No clock inside, so tests need no
//! sleeping.

use std::time::Duration;

/// Exponential backoff with a cap, forgotten after a stable period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// A run at least this long resets the backoff.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
        }
    }
}

/// Restart bookkeeping of one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restarts {
    /// Restarts since the last stable run.
    pub streak: u32,
    /// Restarts in total.
    pub total: u32,
}

impl Backoff {
    /// Records that a replica stopped after running for `ran` (`served`:
    /// it had passed its health check), and returns the delay before
    /// starting it again.
    pub fn next(&self, restarts: &mut Restarts, ran: Duration, served: bool) -> Duration {
        if served || ran >= self.reset_after {
            restarts.streak = 0;
        }
        let exp = restarts.streak.min(20);
        restarts.streak += 1;
        restarts.total += 1;
        let delay = self.base.saturating_mul(1u32 << exp);
        delay.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            reset_after: Duration::from_secs(10),
        };
        let mut r = Restarts::default();
        let quick = Duration::from_millis(50);
        let delays: Vec<u128> = (0..6)
            .map(|_| b.next(&mut r, quick, false).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(r.total, 6);
        // A stable run forgets the streak, not the total.
        assert_eq!(
            b.next(&mut r, Duration::from_secs(11), false).as_millis(),
            100
        );
        assert_eq!((r.streak, r.total), (1, 7));
        // So does a run that passed its health check, however short.
        b.next(&mut r, quick, false);
        assert_eq!(b.next(&mut r, quick, true).as_millis(), 100);
    }

    /// The defaults the guide states (docs/guides/up.md): 100 ms doubling,
    /// at most 30 s, forgotten after 10 s of running.
    #[test]
    fn the_defaults_are_100ms_doubling_to_30s_reset_after_10s() {
        let b = Backoff::default();
        let mut r = Restarts::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..12)
            .map(|_| b.next(&mut r, quick, false).as_millis())
            .collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        // Just short of 10 s is still a crash loop; 10 s is a stable run.
        let almost = Duration::from_secs(10) - Duration::from_millis(1);
        assert_eq!(b.next(&mut r, almost, false).as_millis(), 30000);
        assert_eq!(
            b.next(&mut r, Duration::from_secs(10), false).as_millis(),
            100
        );
        assert_eq!(b.next(&mut r, quick, false).as_millis(), 200);
    }

    #[test]
    fn never_overflows() {
        let b = Backoff::default();
        let mut r = Restarts::default();
        for _ in 0..100 {
            assert!(b.next(&mut r, Duration::ZERO, false) <= b.max);
        }
    }
}
