//! Autoscaling decisions (`x-cove.autoscale`), pure: fed a figure of the
//! gateway every tick, [`Scaler::observe`] says when a service should run
//! another number of replicas.
//!
//! Each observation recommends `ceil(figure / target)` replicas, within
//! `min..=max`. It scales up to the lowest recommendation of the last
//! `scale_up_after` (default 0 s: at once) when that is above the current
//! count, and down to the highest of the last `scale_down_after` (default
//! 5 min) when that is below — as Kubernetes' HPA stabilisation windows
//! do. Only windows fully observed count; after a decision it observes
//! afresh. With `min: 0` an idle service goes to sleep (no replica); the
//! gateway holds the next request and wakes it (the daemon starts one
//! replica).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the target is per replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// Requests in flight.
    Concurrency(f64),
    /// Requests per second.
    Rps(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: u32,
    pub max: u32,
    pub target: Figure,
    pub up_after: Duration,
    pub down_after: Duration,
}

impl Policy {
    /// From `x-cove.autoscale`; the problem in words when it cannot work.
    pub fn from_spec(a: &cove_spec::xcove::Autoscale) -> Result<Policy, String> {
        let target = match (a.target_concurrency, a.target_rps) {
            (Some(c), None) if c > 0.0 => Figure::Concurrency(c),
            (None, Some(r)) if r > 0.0 => Figure::Rps(r),
            (None, None) => {
                return Err("needs `target_concurrency` or `target_rps`".into());
            }
            (Some(_), Some(_)) => {
                return Err("takes one of `target_concurrency` and `target_rps`, not both".into());
            }
            _ => return Err("its target must be above 0".into()),
        };
        if a.min > a.max {
            return Err(format!("`min` ({}) is above `max` ({})", a.min, a.max));
        }
        let window = |v: &Option<String>, default: Duration, name: &str| match v {
            None => Ok(default),
            Some(s) => {
                cove_spec::units::parse_duration(s).map_err(|e| format!("`{name}` is `{s}`: {e}"))
            }
        };
        Ok(Policy {
            min: a.min,
            max: a.max,
            target,
            up_after: window(&a.scale_up_after, Duration::ZERO, "scale_up_after")?,
            down_after: window(
                &a.scale_down_after,
                Duration::from_secs(300),
                "scale_down_after",
            )?,
        })
    }

    /// Replicas the figure asks for.
    pub fn recommend(&self, figure: f64) -> u32 {
        let per = match self.target {
            Figure::Concurrency(t) | Figure::Rps(t) => t,
        };
        ((figure / per).ceil().max(0.0) as u32).clamp(self.min, self.max)
    }
}

#[derive(Debug)]
pub struct Scaler {
    pub policy: Policy,
    since: Option<Instant>,
    recs: VecDeque<(Instant, u32)>,
}

impl Scaler {
    pub fn new(policy: Policy) -> Scaler {
        Scaler {
            policy,
            since: None,
            recs: VecDeque::new(),
        }
    }

    /// Records `figure` (all replicas together) at `now` with `current`
    /// replicas; the new count when it should change.
    pub fn observe(&mut self, now: Instant, current: u32, figure: f64) -> Option<u32> {
        let (min, max) = (self.policy.min, self.policy.max);
        if current < min || current > max {
            self.reset();
            return Some(current.clamp(min, max));
        }
        let p = &self.policy;
        let since = *self.since.get_or_insert(now);
        self.recs.push_back((now, p.recommend(figure)));
        let keep = p.up_after.max(p.down_after);
        while self
            .recs
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > keep)
        {
            self.recs.pop_front();
        }
        let within = |w: Duration| {
            self.recs
                .iter()
                .filter(move |(t, _)| now.duration_since(*t) <= w)
                .map(|(_, r)| *r)
        };
        let seen = now.duration_since(since);
        let decision = if seen >= p.up_after
            && let Some(low) = within(p.up_after).min()
            && low > current
        {
            Some(low)
        } else if seen >= p.down_after
            && let Some(high) = within(p.down_after).max()
            && high < current
        {
            Some(high)
        } else {
            None
        };
        if decision.is_some() {
            self.reset();
        }
        decision
    }

    fn reset(&mut self) {
        self.since = None;
        self.recs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(up: u64, down: u64) -> Policy {
        Policy {
            min: 2,
            max: 5,
            target: Figure::Concurrency(10.0),
            up_after: Duration::from_secs(up),
            down_after: Duration::from_secs(down),
        }
    }

    #[test]
    fn scales_up_at_once_and_down_after_the_window() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Scaler::new(policy(0, 10));
        assert_eq!(
            s.observe(at(0), 2, 15.0),
            None,
            "15 in flight: 2 replicas are enough"
        );
        assert_eq!(s.observe(at(1), 2, 41.0), Some(5), "41 asks for 5");
        assert_eq!(s.observe(at(2), 5, 400.0), None, "never above max");
        // Low load must last the whole window.
        for k in 3..13 {
            assert_eq!(s.observe(at(k), 5, 5.0), None, "t={k}");
        }
        assert_eq!(s.observe(at(13), 5, 5.0), Some(2), "never below min");
        // A burst inside the window holds the count: the burst at t=8 asks
        // for 5 until it leaves the 10 s window (t=19); then down to min.
        let mut s = Scaler::new(policy(0, 10));
        for k in 0..20 {
            let figure = if k == 8 { 45.0 } else { 1.0 };
            let expected = if k == 19 { Some(2) } else { None };
            assert_eq!(s.observe(at(k), 5, figure), expected, "t={k}");
        }
    }

    #[test]
    fn scale_up_window_needs_a_lasting_load() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Scaler::new(policy(3, 300));
        assert_eq!(s.observe(at(0), 2, 50.0), None);
        assert_eq!(s.observe(at(1), 2, 31.0), None);
        assert_eq!(s.observe(at(2), 2, 50.0), None);
        assert_eq!(
            s.observe(at(3), 2, 50.0),
            Some(4),
            "lowest over 3 s: 31 → 4"
        );
        // Outside the bounds: brought back at once.
        assert_eq!(s.observe(at(4), 9, 0.0), Some(5));
    }

    #[test]
    fn bad_specs_are_explained() {
        let spec = |min, max, c: Option<f64>, r: Option<f64>| cove_spec::xcove::Autoscale {
            min,
            max,
            target_concurrency: c,
            target_rps: r,
            ..Default::default()
        };
        assert!(Policy::from_spec(&spec(1, 3, Some(4.0), None)).is_ok());
        assert!(
            Policy::from_spec(&spec(0, 3, Some(4.0), None)).is_ok(),
            "scale to zero"
        );
        for (bad, why) in [
            (spec(1, 3, None, None), "needs"),
            (spec(1, 3, Some(1.0), Some(1.0)), "not both"),
            (spec(4, 3, Some(1.0), None), "above `max`"),
            (spec(1, 3, Some(0.0), None), "above 0"),
        ] {
            let e = Policy::from_spec(&bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
