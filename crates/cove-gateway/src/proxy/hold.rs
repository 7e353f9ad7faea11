//! Holding a request (or a TCP connection) while its pool's targets are on
//! their way, and waiting for a newer table after every target failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Gateway, Routed};
use crate::balance;
use crate::table;

/// How long a request every target failed waits for a newer table (its
/// replicas' deaths seen by the daemon) before it is answered 502.
const AFTER_FAILURES: Duration = Duration::from_secs(2);

/// Where a held request or connection is: see [`Gateway::hold`].
#[derive(Default)]
pub(crate) struct Hold {
    until: Option<Instant>,
    changes: Option<watch::Receiver<u64>>,
}
impl Gateway {
    /// A pool whose targets are on their way (replicas starting) or asleep
    /// (woken, once) holds a request or connection a while: `true` when
    /// the caller should look at the table again (a new one came, or the
    /// watch on new ones just began); `false` when it goes on with what it
    /// has (a target is there, none is coming, or the hold is over).
    /// After every target of the pool a request went to (by its route and
    /// preview key, `at`) failed to take it and none of them got it (no
    /// connection): the same route's pool for the same key (its own, or a
    /// preview's) in a newer table, once the daemon has seen its replicas
    /// die (within a moment),
    /// held while its replicas are on their way as a request that finds
    /// none is. `None`: no newer table came, or the route is gone, or
    /// this is the third round.
    pub(super) async fn after_failures(
        &self,
        at: &Routed<'_>,
        hold: &mut Hold,
        rounds: u32,
    ) -> Option<Arc<table::Pool>> {
        let table = at.table;
        if rounds > 3 {
            return None;
        }
        let mut changes = self.changed.subscribe();
        if Arc::ptr_eq(table, &self.table()) {
            tokio::time::timeout(AFTER_FAILURES, changes.changed())
                .await
                .ok()?
                .ok()?;
        }
        loop {
            let newer = self.table();
            let index = newer.same_route(table, at.index)?;
            let pool = newer.route_at(index).pool_for(at.key).clone();
            if !self.hold(&pool, hold).await {
                return Some(pool);
            }
        }
    }

    /// Whether a request for `pool` may be held at all (its targets are
    /// on their way, or it sleeps): a check without awaiting.
    #[inline]
    pub(crate) fn may_hold(pool: &table::Pool) -> bool {
        // Replicas that run but refuse connections: no hold, say why.
        pool.unavailable.is_none() && (pool.pending || pool.wake.is_some())
    }

    pub(crate) async fn hold(&self, pool: &table::Pool, hold: &mut Hold) -> bool {
        if !Self::may_hold(pool) {
            return false;
        }
        // A request for a sleeping pool is a use of it (what keeps it awake).
        let now = table::now_ms();
        pool.usage.touch(now);
        if balance::pick(pool, None, now, &mut balance::thread_random).is_some() {
            return false;
        }
        let until = *hold.until.get_or_insert_with(|| {
            if let Some(wake) = &pool.wake {
                (wake.0)();
            }
            Instant::now() + self.limits.hold
        });
        if Instant::now() >= until {
            return false;
        }
        match hold.changes.as_mut() {
            // Watch first, then look again: no new table is missed.
            None => hold.changes = Some(self.changed.subscribe()),
            Some(rx) => {
                let _ = tokio::time::timeout_at(until.into(), rx.changed()).await;
            }
        }
        true
    }
}
