//! Acting on running replicas from outside their state machine:
//! [`Supervisor::signal`] (`cove kill -s` with a signal that is not a
//! stop), [`Supervisor::kill`] (a stop with another signal: SIGKILL, or
//! the service's own stop signal, as Docker treats them: the restart
//! policy does not bring them back), and [`Supervisor::pause`] (`cove
//! pause`/`unpause`).
//!
//! A paused instance is listed [`State::Paused`]; the state its task
//! sets meanwhile (healthy, ready, ...) is kept aside and shown again
//! once it resumes. While paused it is neither served (the gateway sends
//! only to ready ones) nor restarted for failing its health check (its
//! task watches its health again once it resumes). When it ends or is
//! stopped, it is no longer paused (a native replica is sent SIGCONT
//! after its stop signal; the engine thaws a container it stops).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::process::Signal;

use super::{Ctx, Report, State, Supervisor};
use crate::plan::ServicePlan;

/// Paused instances by (service, slot), with the state to show again.
pub(super) type Paused = Arc<Mutex<HashMap<(String, u32), State>>>;

/// The map is whole between any two statements: a poisoned one is used as
/// it is.
pub(super) fn lock(paused: &Paused) -> MutexGuard<'_, HashMap<(String, u32), State>> {
    paused
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `state`, set by a paused instance's task, is kept aside (it
/// still runs) rather than shown; one that is not up ends the pause.
pub(super) fn keep_paused(
    paused: &mut HashMap<(String, u32), State>,
    service: &str,
    slot: u32,
    state: &State,
) -> bool {
    let key = (service.to_string(), slot);
    let Some(before) = paused.get_mut(&key) else {
        return false;
    };
    if state.is_up() {
        *before = state.clone();
        return true;
    }
    paused.remove(&key);
    false
}

/// What happened to each replica acted on: its number and the failure in
/// words, if any.
pub type Acted = Vec<(u32, Result<(), String>)>;

impl Supervisor {
    /// Sends `signal` to every running (or paused) replica of `svc`; what
    /// happens next is the replica's: one that dies of it is restarted
    /// (or not) per its restart policy.
    pub async fn signal(&self, svc: &ServicePlan, signal: Signal) -> Acted {
        let targets = self.targets(&svc.name, |s| s.is_up());
        let mut out = Vec::new();
        for (replica, slot, pid) in targets {
            let r = self.ctx.driver.signal(svc, slot, pid, signal).await;
            out.push((replica, r));
        }
        out
    }

    /// Stops `services` as [`Supervisor::stop`] does, but with `signal`
    /// instead of their stop signal (then their grace period, then
    /// SIGKILL).
    pub async fn kill(&mut self, services: &[String], signal: Signal) {
        {
            let mut signals = self
                .ctx
                .stop_signals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for s in services {
                signals.insert(s.clone(), signal);
            }
        }
        self.stop(services).await;
        let mut signals = self
            .ctx
            .stop_signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        signals.retain(|s, _| !services.contains(s));
    }

    /// Pauses (`true`) the running replicas of `svc`, or resumes its
    /// paused ones; each is listed paused, or as it was, once the driver
    /// did it.
    pub async fn pause(&self, svc: &ServicePlan, pause: bool) -> Acted {
        let targets = if pause {
            self.targets(&svc.name, |s| s.is_up() && *s != State::Paused)
        } else {
            self.targets(&svc.name, |s| *s == State::Paused)
        };
        let mut out = Vec::new();
        for (replica, slot, pid) in targets {
            let r = self.ctx.driver.pause(svc, slot, pid, pause).await;
            if r.is_ok() {
                self.ctx.mark_paused(svc, slot, pause);
            }
            out.push((replica, r));
        }
        out
    }

    /// (replica, slot, pid) of `service`'s instances whose state `which`
    /// takes.
    fn targets(&self, service: &str, which: impl Fn(&State) -> bool) -> Vec<(u32, u32, u32)> {
        let states = self.ctx.states.borrow();
        let Some(list) = states.get(service) else {
            return Vec::new();
        };
        list.iter()
            .filter(|s| which(&s.state))
            .filter_map(|s| Some((s.replica, s.slot, s.pid?)))
            .collect()
    }
}

impl Ctx {
    /// Lists the instance in `slot` as paused (keeping its state aside),
    /// or as it was before.
    fn mark_paused(&self, svc: &ServicePlan, slot: u32, pause: bool) {
        let mut paused = lock(&self.paused);
        let key = (svc.name.clone(), slot);
        self.states.send_modify(|s| {
            let Some(st) = s
                .get_mut(&svc.name)
                .and_then(|v| v.iter_mut().find(|st| st.slot == slot))
            else {
                return;
            };
            if pause {
                if !st.state.is_up() || st.state == State::Paused {
                    return;
                }
                paused.insert(key, std::mem::replace(&mut st.state, State::Paused));
            } else {
                let Some(before) = paused.remove(&key) else {
                    return;
                };
                if st.state != State::Paused {
                    return;
                }
                st.state = before;
            }
            let _ = self.reports.send(Report::State {
                service: svc.name.clone(),
                replica: st.replica,
                slot,
                revision: st.revision,
                state: st.state.clone(),
                pid: st.pid,
                restarts: st.restarts,
            });
        });
    }

    /// Whether the instance in `slot` is paused.
    pub(super) fn is_paused(&self, service: &str, slot: u32) -> bool {
        lock(&self.paused).contains_key(&(service.to_string(), slot))
    }

    /// Resolves once the instance in `slot` is no longer paused.
    pub(super) async fn resumed(&self, service: &str, slot: u32) {
        let mut states = self.states.subscribe();
        while self.is_paused(service, slot) {
            if states.changed().await.is_err() {
                return;
            }
        }
    }

    /// The signal that stops `svc`'s replicas now: `cove kill`'s, else
    /// the service's own.
    pub(super) fn stop_signal(&self, svc: &ServicePlan) -> Signal {
        self.stop_signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&svc.name)
            .copied()
            .unwrap_or(svc.stop_signal)
    }
}
