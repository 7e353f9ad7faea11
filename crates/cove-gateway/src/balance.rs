//! Choosing a target. Pure except for the randomness it is given, so the
//! rules are tested without a network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::table::{Policy, Pool, Target};

/// A target of `pool` for the next request, skipping draining targets,
/// ejected ones (passive health, at `now`, see [`crate::table::now_ms`]) and
/// `avoid` (one that just failed); `None` when there is none. When every
/// target is ejected, ejection is ignored: trying beats refusing. `random`
/// returns uniformly distributed numbers.
///
/// Each target is looked at once: other threads drain and eject targets
/// meanwhile, and a second look could find fewer than the first counted
/// (a request answered 503 with a target there).
pub fn pick<'p>(
    pool: &'p Pool,
    avoid: Option<SocketAddr>,
    now: u64,
    random: &mut impl FnMut() -> u64,
) -> Option<&'p Arc<Target>> {
    // The usable targets, and those of them not ejected: by index.
    let mut usable = Vec::new();
    let mut healthy = Vec::new();
    let (mut usable_bits, mut healthy_bits) = (0u64, 0u64);
    let few = pool.targets.len() <= 64;
    for (i, t) in pool.targets.iter().enumerate() {
        if t.is_draining() || Some(t.addr) == avoid {
            continue;
        }
        let ejected = t.is_ejected(now);
        if few {
            usable_bits |= 1 << i;
            if !ejected {
                healthy_bits |= 1 << i;
            }
        } else {
            usable.push(i);
            if !ejected {
                healthy.push(i);
            }
        }
    }
    let chosen = Chosen {
        bits: if healthy_bits != 0 {
            healthy_bits
        } else {
            usable_bits
        },
        list: if healthy.is_empty() { usable } else { healthy },
        few,
    };
    let n = chosen.len();
    // Borrowed, not cloned: a target's count is shared by every thread.
    let nth = |k: usize| &pool.targets[chosen.nth(k)];
    match (n, pool.policy) {
        (0, _) => None,
        (1, _) => Some(nth(0)),
        (_, Policy::RoundRobin) => Some(nth(pool.next.fetch_add(1, Ordering::Relaxed) % n)),
        (_, Policy::LeastInFlight) => {
            let a = (random() % n as u64) as usize;
            // A second, different one.
            let b = (a + 1 + (random() % (n as u64 - 1)) as usize) % n;
            let (ta, tb) = (nth(a), nth(b));
            Some(if tb.in_flight() < ta.in_flight() {
                tb
            } else {
                ta
            })
        }
    }
}

/// The targets a pick chooses among: a bit set of their indices (pools of
/// up to 64 targets: no allocation), else a list.
struct Chosen {
    bits: u64,
    list: Vec<usize>,
    few: bool,
}

impl Chosen {
    fn len(&self) -> usize {
        if self.few {
            self.bits.count_ones() as usize
        } else {
            self.list.len()
        }
    }

    /// The index of the `k`th (from 0; below [`Chosen::len`]).
    fn nth(&self, k: usize) -> usize {
        if !self.few {
            return self.list[k];
        }
        let mut bits = self.bits;
        for _ in 0..k {
            bits &= bits - 1;
        }
        bits.trailing_zeros() as usize
    }
}

/// A fast per-thread random number generator (xorshift64*), seeded from the
/// clock and the thread; good enough for choosing targets.
pub fn thread_random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            let id = std::thread::current().id();
            let salt = format!("{id:?}").bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
            (t ^ salt.rotate_left(32)) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Pool;

    fn targets(n: u16) -> Vec<Arc<Target>> {
        (1..=n)
            .map(|i| Target::new(SocketAddr::from(([127, 0, 0, 1], 9000 + i))))
            .collect()
    }

    #[test]
    fn least_in_flight_of_two_choices() {
        let ts = targets(2);
        let pool = Pool::new("p", ts.clone(), Policy::LeastInFlight);
        let _busy = ts[0].begin();
        let mut r = 0u64;
        let mut random = || {
            r += 1;
            r
        };
        for _ in 0..10 {
            assert_eq!(pick(&pool, None, 0, &mut random).unwrap().addr, ts[1].addr);
        }
        // Equal load: the random first choice.
        let _busy2 = ts[1].begin();
        let mut zero = || 0u64;
        assert_eq!(pick(&pool, None, 0, &mut zero).unwrap().addr, ts[0].addr);
    }

    #[test]
    fn draining_and_failed_targets_are_skipped() {
        let ts = targets(3);
        let pool = Pool::new("p", ts.clone(), Policy::RoundRobin);
        ts[1].drain();
        let mut random = thread_random;
        let picked: Vec<_> = (0..4)
            .map(|_| pick(&pool, None, 0, &mut random).unwrap().addr)
            .collect();
        assert_eq!(picked, [ts[0].addr, ts[2].addr, ts[0].addr, ts[2].addr]);
        for _ in 0..5 {
            assert_eq!(
                pick(&pool, Some(ts[0].addr), 0, &mut random).unwrap().addr,
                ts[2].addr
            );
        }
        ts[0].drain();
        ts[2].drain();
        assert!(pick(&pool, None, 0, &mut random).is_none());
    }

    #[test]
    fn ejected_targets_are_left_out_unless_all_are() {
        use crate::table::Outcome;
        let ts = targets(2);
        let pool = Pool::new("p", ts.clone(), Policy::RoundRobin);
        ts[0].record(Outcome::ConnectFailed, 100);
        let mut random = thread_random;
        for _ in 0..4 {
            assert_eq!(
                pick(&pool, None, 100, &mut random).unwrap().addr,
                ts[1].addr
            );
        }
        ts[1].record(Outcome::ConnectFailed, 100);
        assert!(
            pick(&pool, None, 100, &mut random).is_some(),
            "all ejected: try anyway"
        );
    }

    #[test]
    fn the_spread_is_even_at_rest() {
        let ts = targets(4);
        let pool = Pool::new("p", ts.clone(), Policy::LeastInFlight);
        let mut counts = std::collections::HashMap::new();
        let mut random = thread_random;
        for _ in 0..4000 {
            *counts
                .entry(pick(&pool, None, 0, &mut random).unwrap().addr)
                .or_insert(0) += 1;
        }
        for t in &ts {
            let c = counts[&t.addr];
            assert!((700..1300).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn pools_of_more_than_64_targets_are_picked_from_too() {
        let ts = targets(70);
        let pool = Pool::new("p", ts.clone(), Policy::RoundRobin);
        let mut random = || 0u64;
        let seen: std::collections::HashSet<_> = (0..70)
            .map(|_| pick(&pool, None, 0, &mut random).unwrap().addr)
            .collect();
        assert_eq!(seen.len(), 70, "round robin visits every target");
        for t in &ts[..69] {
            t.drain();
        }
        for _ in 0..5 {
            assert_eq!(pick(&pool, None, 0, &mut random).unwrap().addr, ts[69].addr);
        }
        assert!(pick(&pool, Some(ts[69].addr), 0, &mut random).is_none());
        let small = Pool::new("q", targets(3), Policy::LeastInFlight);
        small.targets[0].drain();
        small.targets[2].drain();
        for _ in 0..5 {
            assert_eq!(
                pick(&small, None, 0, &mut random).unwrap().addr,
                small.targets[1].addr
            );
        }
    }
}
