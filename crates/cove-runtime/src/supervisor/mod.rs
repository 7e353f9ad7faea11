//! The supervisor: runs the services it is given, in dependency order,
//! honours `depends_on` conditions, restarts what fails, stops services on
//! request (dependents first), replaces a changed service replica by
//! replica without dropping a request, scales.
//!
//! One controller task per service owns its instances and takes its
//! commands one at a time ([`Supervisor::apply`] sends them): a first
//! start (its `x-cove.build`, then replicas 1..=N in slots 1..=N, or in
//! the slots of the containers a killed daemon left running, which the
//! driver takes over); the same
//! plan with another replica count scales (a new replica takes the lowest
//! free slot; the highest replicas go first, drained through the gateway
//! before they stop); a changed plan is rolled out per its
//! [`UpdatePolicy`](crate::plan::UpdatePolicy): build first, then batch by batch — `start-first`
//! starts the new instance in a free slot beside the old one, waits until
//! it is healthy, then drains and stops the old; `stop-first` drains and
//! stops the old first and starts the new one in its slot. A new instance
//! that fails (exits, turns unhealthy, is not healthy in time, or fails
//! during `monitor`) counts against `max_failure_ratio`; past it the
//! `failure_action` applies (`rollback`: the replaced replicas are rolled
//! back with the `rollback_config`).
//!
//! One task per instance runs its state machine:
//!
//! ```text
//! Waiting ─deps ok→ Starting ─spawned→ Running ─probe ok→ Healthy ⇄ Unhealthy
//!    ↑                                    │ exit / unhealthy            │
//!    └──── Restarting (backoff) ←─────────┴── restart policy says again ┘
//!                                         └─ otherwise → Completed (exit 0) | Failed
//! without a health check:
//!   Running ─up ready_after, its TCP ports accept→ Ready
//!   Running ─up ready_after (at least 1 s), a port refuses→ Refusing ─it accepts→ Ready
//! stop requested (any state) → Stopped
//! ```
//!
//! Readiness is one verdict for everyone: `cove up -d` (and `start`,
//! `scale`), a deploy's batches and the gateway's table all wait for a
//! replica to be [`Status::ready`] — healthy when it has a health check;
//! otherwise up for `x-cove.ready_after` (default 1 s; one that exits
//! sooner failed to start) and accepting connections on each TCP port the
//! service declares. A replica that runs on without accepting is
//! `Refusing`: the gateway then answers at once why, instead of holding
//! requests for a target that may never come.
//!
//! A dependent waits for its dependencies before every start, not only the
//! first, so it waits through a dependency's restart. Unhealthy replicas are
//! restarted (Compose never does this). Shutdown stops dependents before
//! their dependencies.
//!
//! Its parts: `state.rs` what it says of each instance ([`State`],
//! [`Status`], [`States`]); `controller.rs` a service's controller (its
//! commands, first start, scaling, retiring through the [`Drain`] hook);
//! `build.rs` builds and artifacts; `rollout.rs` rolling deploys;
//! `instance.rs` an instance's state machine. Every replica is started,
//! waited for, stopped and probed through a [`Driver`] (this machine's by
//! default); `tests.rs` drives rollouts with the fake one in paused time.

mod act;
mod build;
mod controller;
mod instance;
mod rollout;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::artifact::Artifact;
use crate::backoff::Backoff;
use crate::driver::{Driver, Host};
use crate::plan::{Plan, ServicePlan};
use crate::process::Stream;

use controller::{Ctl, controller};
pub use instance::REFUSING_AFTER;
pub use state::{State, States, Status};

/// What the supervisor tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Log {
        service: String,
        replica: u32,
        stream: Stream,
        line: String,
    },
    State {
        service: String,
        replica: u32,
        slot: u32,
        revision: u64,
        state: State,
        pid: Option<u32>,
        restarts: u32,
    },
    /// `x-cove.build` output.
    Build { service: String, line: String },
    /// A step of a deploy or a scaling, in words.
    Deploy { service: String, message: String },
    /// Never sent by the supervisor: whoever shares its channel sends one to
    /// learn when everything sent before it has been handled.
    Flush(u64),
    /// Never sent by the supervisor: how a backup the daemon ran on its
    /// schedule ended (`drill`: a restore drill, `cove backup verify`).
    Backup {
        service: String,
        drill: bool,
        ok: bool,
        message: String,
    },
    /// Never sent by the supervisor: how a deploy of the service ended
    /// (`ok`: its new revision runs; else it failed), in words.
    Deployed {
        service: String,
        ok: bool,
        message: String,
    },
    /// Never sent by the supervisor: an alert rule of the service fired
    /// (`firing`) or resolved; `message` says which and why.
    Alert {
        service: String,
        firing: bool,
        message: String,
    },
}

/// Called with a retiring instance's addresses (one per port); resolves
/// when no request is in flight to them any more (the caller bounds it).
pub type Drain =
    Arc<dyn Fn(Vec<SocketAddr>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How a command to a service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plan was already running.
    Unchanged,
    /// Started from nothing (or again, after it had finished).
    Started { artifact: Option<Artifact> },
    /// Same plan, another replica count.
    Scaled { from: u32, to: u32 },
    /// Every replica runs the new plan, but those in `failed` (why each
    /// failed): failures `failure_action: continue` or `max_failure_ratio`
    /// tolerates; those replicas keep the revision they ran.
    Deployed {
        replaced: u32,
        failed: Vec<String>,
        artifact: Option<Artifact>,
    },
    /// The new plan did not take; `undone`: the previous one runs again.
    Failed { reason: String, undone: bool },
    /// Stopped while it ran.
    Stopped,
}

/// What a command to a service's controller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the plan: roll out only when it changed (`cove up`).
    Converge,
    /// Build it, and roll it out when its plan or its artifact changed.
    Deploy,
    /// Replace every replica with the plan as it is, without a build (a
    /// watched file changed).
    Restart,
}

/// Runs services; see the module documentation.
pub struct Supervisor {
    /// What it gives each service's tasks.
    ctx: Ctx,
    running: IndexMap<String, Controller>,
    /// Start order of the last plan applied.
    order: Vec<String>,
}

struct Controller {
    cmds: mpsc::UnboundedSender<Cmd>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Cmd {
    plan: Arc<ServicePlan>,
    mode: Mode,
    done: Option<oneshot::Sender<Outcome>>,
}

impl Supervisor {
    pub fn new(
        backoff: Backoff,
        reports: mpsc::UnboundedSender<Report>,
        extra_env: Vec<(String, String)>,
    ) -> Supervisor {
        Supervisor {
            ctx: Ctx {
                states: Arc::new(watch::channel(States::new()).0),
                reports,
                backoff,
                extra_env,
                cgroups: None,
                drain: Arc::new(|_| Box::pin(async {})),
                driver: Arc::new(Host::default()),
                paused: Arc::default(),
                stop_signals: Arc::default(),
                grace: StopTimeout::default(),
            },
            running: IndexMap::new(),
            order: Vec::new(),
        }
    }

    /// How retiring instances are drained (by default they are not).
    pub fn with_drain(mut self, drain: Drain) -> Supervisor {
        self.ctx.drain = drain;
        self
    }

    /// Runs its replicas with `driver` (by default, this machine's:
    /// processes and containers).
    pub fn with_driver(mut self, driver: Arc<dyn Driver>) -> Supervisor {
        self.ctx.driver = driver;
        self
    }

    /// Runs each native replica in a cgroup of its own in `dir` (a
    /// project's, [`crate::cgroup::project`]); by default none.
    pub fn with_cgroups(mut self, dir: Option<std::path::PathBuf>) -> Supervisor {
        self.ctx.cgroups = dir;
        self
    }

    /// The replicas' states, updated as they change.
    pub fn states(&self) -> watch::Receiver<States> {
        self.ctx.states.subscribe()
    }

    /// Runs `services` of `plan` (the caller includes their dependencies):
    /// each service's controller converges to its plan (see the module
    /// documentation); returns at once, with a receiver per service that
    /// tells how it ended. `restarts` carries restart counts over (a daemon
    /// restart), keyed by `(service, replica)`.
    pub async fn apply(
        &mut self,
        plan: &Plan,
        services: &[String],
        restarts: &HashMap<(String, u32), u32>,
    ) -> Vec<(String, oneshot::Receiver<Outcome>)> {
        let mut out = Vec::new();
        for svc in &plan.services {
            if services.contains(&svc.name) {
                out.push((
                    svc.name.clone(),
                    self.send(plan, svc, restarts, Mode::Converge),
                ));
            }
        }
        out
    }

    /// Sends `service`'s plan to its controller; the receiver tells how it
    /// ended.
    pub fn converge(
        &mut self,
        plan: &Plan,
        service: &str,
        mode: Mode,
    ) -> Option<oneshot::Receiver<Outcome>> {
        let svc = plan.services.iter().find(|s| s.name == service)?;
        Some(self.send(plan, svc, &HashMap::new(), mode))
    }

    fn send(
        &mut self,
        plan: &Plan,
        svc: &ServicePlan,
        restarts: &HashMap<(String, u32), u32>,
        mode: Mode,
    ) -> oneshot::Receiver<Outcome> {
        self.order = plan.services.iter().map(|s| s.name.clone()).collect();
        let (done, rx) = oneshot::channel();
        let cmd = Cmd {
            plan: Arc::new(svc.clone()),
            mode,
            done: Some(done),
        };
        if let Some(c) = self.running.get(&svc.name)
            && !c.task.is_finished()
        {
            let _ = c.cmds.send(cmd);
            return rx;
        }
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let _ = cmds.send(cmd);
        let (stop, stop_rx) = watch::channel(false);
        let ctl = Ctl {
            ctx: self.ctx.clone(),
            name: svc.name.clone(),
            order: self.order.clone(),
            instances: Vec::new(),
            stop: stop_rx,
            restarts: restarts
                .iter()
                .filter(|((s, _), _)| *s == svc.name)
                .map(|((_, r), n)| (*r, *n))
                .collect(),
        };
        let task = tokio::spawn(controller(ctl, cmd_rx));
        self.running
            .insert(svc.name.clone(), Controller { cmds, stop, task });
        rx
    }

    /// Stops `services` (all when empty), dependents before their
    /// dependencies; their replicas stay listed as stopped.
    pub async fn stop(&mut self, services: &[String]) {
        let mut names: Vec<String> = self
            .running
            .keys()
            .filter(|n| services.is_empty() || services.contains(n))
            .cloned()
            .collect();
        let order = &self.order;
        names.sort_by_key(|n| std::cmp::Reverse(order.iter().position(|o| o == n)));
        for name in names {
            if let Some(c) = self.running.shift_remove(&name) {
                let _ = c.stop.send(true);
                let _ = c.task.await;
            }
        }
    }

    /// Stops `services` (all when empty) and forgets them.
    pub async fn remove(&mut self, services: &[String]) {
        self.stop(services).await;
        self.ctx
            .states
            .send_modify(|s| s.retain(|name, _| !services.is_empty() && !services.contains(name)));
    }

    /// How long replicas stopped get before they are killed, over each
    /// service's `stop_grace_period` (`-t` of `up`, `down`, `stop`,
    /// `restart`): set by a request, cleared once what it started is done.
    pub fn stop_timeout(&self) -> StopTimeout {
        self.ctx.grace.clone()
    }

    /// Names of the services it runs (not stopped), in start order.
    pub fn running(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }
}

/// What every task of a service shares.
#[derive(Clone)]
struct Ctx {
    states: Arc<watch::Sender<States>>,
    reports: mpsc::UnboundedSender<Report>,
    backoff: Backoff,
    /// Added to the environment of every process it starts (not to
    /// containers').
    extra_env: Vec<(String, String)>,
    /// Where its native replicas' cgroups go (see [`crate::cgroup`]).
    cgroups: Option<std::path::PathBuf>,
    drain: Drain,
    /// What runs its replicas.
    driver: Arc<dyn Driver>,
    /// The paused instances (service, slot), with the state each will
    /// show again once resumed (see `act.rs`).
    paused: act::Paused,
    /// The signal a stop sends instead of the service's (`cove kill`).
    stop_signals: Arc<std::sync::Mutex<HashMap<String, rustix::process::Signal>>>,
    /// The stop timeout given for the request at hand, over the services'
    /// `stop_grace_period` ([`Supervisor::stop_timeout`]).
    grace: StopTimeout,
}

/// A request's stop timeout (`-t`), over the services' `stop_grace_period`
/// while it is set. Each setting has a number: a request clears only its
/// own (a later request's stays).
#[derive(Clone, Default)]
pub struct StopTimeout(Arc<std::sync::Mutex<(u64, Option<Duration>)>>);

impl StopTimeout {
    /// Sets it (`None`: the services' own); the setting's number.
    pub fn set(&self, grace: Option<Duration>) -> u64 {
        match self.0.lock() {
            Ok(mut g) => {
                g.0 += 1;
                g.1 = grace;
                g.0
            }
            Err(_) => 0,
        }
    }

    /// Back to the services' own, unless set again since setting `number`.
    pub fn clear(&self, number: u64) {
        if let Ok(mut g) = self.0.lock()
            && g.0 == number
        {
            g.1 = None;
        }
    }

    fn get(&self) -> Option<Duration> {
        self.0.lock().ok().and_then(|g| g.1)
    }
}

impl Ctx {
    /// How long `svc`'s replicas get to stop now.
    fn stop_grace(&self, svc: &ServicePlan) -> Duration {
        self.grace.get().unwrap_or(svc.stop_grace)
    }

    fn set(&self, svc: &ServicePlan, slot: u32, state: State, pid: Option<u32>, restarts: u32) {
        // A paused instance stays listed as paused while it runs.
        let mut paused = act::lock(&self.paused);
        if act::keep_paused(&mut paused, &svc.name, slot, &state) {
            return;
        }
        let now = SystemTime::now();
        // The report is queued while the new state is being published (the
        // watch's lock held): a task woken by the new state (a dependent
        // that starts now) reports after it, on any number of threads.
        self.states.send_modify(|s| {
            let Some(st) = s
                .get_mut(&svc.name)
                .and_then(|v| v.iter_mut().find(|st| st.slot == slot))
            else {
                return; // no longer listed
            };
            // `since` is the start for as long as the process lives.
            let same_run = st.state.is_up() && state.is_up();
            st.state = state.clone();
            st.pid = pid;
            st.restarts = restarts;
            if !same_run {
                st.since = now;
            }
            let _ = self.reports.send(Report::State {
                service: svc.name.clone(),
                replica: st.replica,
                slot,
                revision: svc.revision,
                state,
                pid,
                restarts,
            });
        });
    }

    fn say(&self, service: &str, message: String) {
        let _ = self.reports.send(Report::Deploy {
            service: service.to_string(),
            message,
        });
    }
}
