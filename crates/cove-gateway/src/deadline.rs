//! Coarse deadlines for requests in flight, cheaper than one timer each.
//!
//! A tokio timer per request costs a timer-wheel entry and a wake-up
//! (measured: about a quarter of the gateway's CPU per request). Upstream
//! response timeouts need no precision, so each gateway keeps a list of
//! deadlines that one task checks every [`TICK`]; an expired request is
//! woken and answered 504. A deadline fires between its time and one tick
//! later.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How often deadlines are checked.
pub const TICK: Duration = Duration::from_millis(250);

pub struct Deadlines {
    pending: Mutex<Vec<Weak<Deadline>>>,
}

pub struct Deadline {
    at: Instant,
    fired: Notify,
}

impl Deadline {
    /// Resolves when the deadline has passed (give or take a tick).
    pub async fn expired(&self) {
        self.fired.notified().await;
    }
}

impl Deadlines {
    /// The list and the task that checks it (which ends with the list).
    pub fn new() -> Arc<Deadlines> {
        let d = Arc::new(Deadlines {
            pending: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&d);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(d) = weak.upgrade() else { return };
                d.check(Instant::now());
            }
        });
        d
    }

    /// A deadline `after` from now; dropping it forgets it.
    pub fn start(&self, after: Duration) -> Arc<Deadline> {
        let d = Arc::new(Deadline {
            at: Instant::now() + after,
            fired: Notify::new(),
        });
        crate::lock(&self.pending).push(Arc::downgrade(&d));
        d
    }

    /// Fires what has expired at `now` and forgets what is done.
    pub fn check(&self, now: Instant) {
        let mut pending = crate::lock(&self.pending);
        pending.retain(|w| match w.upgrade() {
            None => false,
            Some(d) if d.at <= now => {
                // `notify_one` keeps a permit if nobody waits yet.
                d.fired.notify_one();
                false
            }
            Some(_) => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_deadlines_fire_and_dropped_ones_are_forgotten() {
        let ds = Deadlines::new();
        let soon = ds.start(Duration::from_millis(0));
        let later = ds.start(Duration::from_secs(3600));
        drop(ds.start(Duration::from_millis(0)));
        ds.check(Instant::now());
        tokio::time::timeout(Duration::from_secs(1), soon.expired())
            .await
            .expect("fired");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), later.expired())
                .await
                .is_err()
        );
        assert_eq!(ds.pending.lock().unwrap().len(), 1, "only `later` is left");
    }
}
