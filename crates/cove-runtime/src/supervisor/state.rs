//! What the supervisor says of each instance: its [`State`] (the state
//! machine of the module documentation), its [`Status`] as listed, and
//! whether a dependent may start ([`dependencies_ready`]).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use cove_spec::model::Condition;
use indexmap::IndexMap;

use crate::plan::ServicePlan;

/// A replica's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Waiting for its dependencies.
    Waiting,
    /// Spawning.
    Starting,
    /// Running; no health check, or none passed yet; without a health
    /// check, not up `ready_after` yet or not probed yet.
    Running,
    Healthy,
    /// No health check: up `ready_after`, and accepting connections on
    /// its TCP ports.
    Ready,
    /// No health check: up `ready_after` (at least [`REFUSING_AFTER`](super::REFUSING_AFTER)),
    /// but `port` refuses connections.
    Refusing {
        port: u16,
    },
    /// Its health check failed `retries` times; it is being restarted.
    Unhealthy {
        check: String,
    },
    /// Exited; starting again after a delay.
    Restarting {
        code: Option<i32>,
        delay: Duration,
    },
    /// Exited 0 and is not restarted.
    Completed,
    /// Will not run again: a non-zero exit, a failed start, a failed dependency.
    Failed {
        reason: String,
    },
    /// Stopping on request: signalled, within its grace period.
    Stopping,
    /// Stopped on request.
    Stopped,
    /// Running but frozen on request (`cove pause`: SIGSTOP to its
    /// group, or the engine's pause): not served, not probed, until
    /// `cove unpause` gives back the state it had.
    Paused,
}

impl State {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            State::Completed | State::Failed { .. } | State::Stopped
        )
    }

    pub fn is_up(&self) -> bool {
        matches!(
            self,
            State::Running
                | State::Healthy
                | State::Ready
                | State::Refusing { .. }
                | State::Unhealthy { .. }
                | State::Paused
        )
    }

    /// One word: `waiting`, `starting`, `running`, `restarting`,
    /// `completed`, `failed`, `stopping`, `stopped`, `paused` (health is
    /// separate).
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running
            | State::Healthy
            | State::Ready
            | State::Refusing { .. }
            | State::Unhealthy { .. } => "running",
            State::Restarting { .. } => "restarting",
            State::Completed => "completed",
            State::Failed { .. } => "failed",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Paused => "paused",
        }
    }

    /// What happened, in words: `healthy`, `failed: exited with code 3`.
    pub fn describe(&self, pid: Option<u32>) -> String {
        match self {
            State::Waiting => "waiting for its dependencies".to_string(),
            State::Starting => "starting".to_string(),
            State::Running => format!("running (pid {})", pid.unwrap_or_default()),
            State::Healthy => "healthy".to_string(),
            State::Ready => format!("ready (pid {})", pid.unwrap_or_default()),
            State::Refusing { port } => format!(
                "running (pid {}) but not accepting connections on :{port}",
                pid.unwrap_or_default()
            ),
            State::Unhealthy { check } => format!("unhealthy: restarting it ({check})"),
            State::Restarting { code, delay } => format!(
                "exited ({}); restarting in {delay:?}",
                code.map_or("killed by a signal".to_string(), |c| format!("code {c}"))
            ),
            State::Completed => "completed".to_string(),
            State::Failed { reason } => format!("failed: {reason}"),
            State::Stopping => format!("stopping (pid {})", pid.unwrap_or_default()),
            State::Stopped => "stopped".to_string(),
            State::Paused => format!("paused (pid {})", pid.unwrap_or_default()),
        }
    }
}

/// One instance of a service as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its replica number (1..=N); during a rolling deploy an old and a new
    /// instance share one.
    pub replica: u32,
    /// Its address slot (1..=62), unique among the service's instances.
    pub slot: u32,
    /// The revision of the plan it runs.
    pub revision: u64,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Being replaced or scaled away: drained, then stopped.
    pub retiring: bool,
    pub state: State,
    pub pid: Option<u32>,
    /// Restarts so far (crashes and failed health checks).
    pub restarts: u32,
    /// When it entered its current state (`running` since its start).
    pub since: SystemTime,
    /// Whether the service has a health check.
    pub checked: bool,
}

impl Status {
    /// `healthy`, `unhealthy`, `starting` (checked, no verdict yet), or
    /// empty (no health check, or not running).
    pub fn health(&self) -> &'static str {
        match &self.state {
            State::Healthy => "healthy",
            State::Unhealthy { .. } => "unhealthy",
            State::Running if self.checked => "starting",
            _ => "",
        }
    }

    /// Whether the gateway may send it requests: ready (healthy, or
    /// without a health check up `ready_after` and accepting connections),
    /// and not retiring.
    pub fn serves(&self) -> bool {
        !self.retiring && matches!(self.state, State::Healthy | State::Ready)
    }

    /// Whether `cove up -d` may stop waiting for it: healthy, ready
    /// (without a health check: up `ready_after` and accepting
    /// connections), or completed.
    pub fn ready(&self) -> bool {
        matches!(self.state, State::Healthy | State::Ready | State::Completed)
    }
}

/// Every service's instances (by replica, then slot), services in start
/// order.
pub type States = IndexMap<String, Vec<Status>>;

/// Whether the dependencies hold (`Ok(true)`), may still (`Ok(false)`), or
/// never will (`Err`). Retiring instances do not count; a dependency
/// served elsewhere (a preview's service shared with its baseline) is
/// not waited for.
pub(super) fn dependencies_ready(svc: &ServicePlan, states: &States) -> Result<bool, String> {
    let mut ready = true;
    for dep in svc.depends_on.iter().filter(|d| !d.external) {
        let Some(reps) = states.get(&dep.service) else {
            continue;
        };
        for s in reps.iter().filter(|s| !s.retiring).map(|s| &s.state) {
            let ok = match dep.condition {
                Condition::ServiceStarted => s.is_up() || *s == State::Completed,
                Condition::ServiceHealthy => *s == State::Healthy,
                Condition::ServiceCompletedSuccessfully => *s == State::Completed,
            };
            let never = matches!(
                (dep.condition, s),
                (_, State::Failed { .. }) | (Condition::ServiceHealthy, State::Completed)
            );
            if never {
                return Err(format!("dependency `{}` failed", dep.service));
            }
            ready &= ok;
        }
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `web`, planned with `db` served elsewhere (a preview's shared
    /// service) or here.
    fn web(db_elsewhere: bool) -> ServicePlan {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        fs_err::write(
            &file,
            "services:\n  web:\n    x-cove: {run: sleep 1000}\n    depends_on: {db: {condition: service_healthy}}\n  db: {image: \"postgres:16\"}\n",
        )
        .unwrap();
        let app = cove_spec::project::load(&cove_spec::project::Options {
            files: vec![file],
            project_name: Some("deps".into()),
            ..Default::default()
        })
        .unwrap_or_else(|f| panic!("{}", f.render(&Default::default())))
        .app;
        let mut placement = crate::plan::Placement {
            project_dir: dir.path().to_path_buf(),
            net: 3,
            secrets_root: "/nowhere".into(),
            host: Default::default(),
            external: Default::default(),
            entry: true,
        };
        if db_elsewhere {
            placement
                .external
                .insert("db".into(), Ipv4Addr::new(127, 64, 9, 9));
        }
        let plan = crate::plan::plan_at(&app, &placement, None).unwrap();
        plan.services.into_iter().find(|s| s.name == "web").unwrap()
    }

    #[test]
    fn a_dependency_served_elsewhere_is_not_waited_for() {
        let db = |state: State| -> States {
            let s = Status {
                replica: 1,
                slot: 1,
                revision: 1,
                addr: Ipv4Addr::LOCALHOST,
                retiring: false,
                state,
                pid: Some(1),
                restarts: 0,
                since: SystemTime::now(),
                checked: true,
            };
            IndexMap::from([("db".to_string(), vec![s])])
        };
        let here = web(false);
        assert_eq!(dependencies_ready(&here, &db(State::Starting)), Ok(false));
        assert_eq!(dependencies_ready(&here, &db(State::Healthy)), Ok(true));
        assert!(dependencies_ready(&here, &db(State::Failed { reason: "x".into() })).is_err());
        // Served elsewhere: whatever a replica of that name here says.
        let there = web(true);
        assert!(there.depends_on.iter().all(|d| d.external));
        for state in [State::Starting, State::Failed { reason: "x".into() }] {
            assert_eq!(dependencies_ready(&there, &db(state)), Ok(true));
        }
        assert_eq!(dependencies_ready(&there, &States::new()), Ok(true));
    }

    #[test]
    fn readiness_needs_ready_or_healthy_and_serving_needs_not_retiring() {
        let status = |state: State, checked: bool, retiring: bool| Status {
            replica: 1,
            slot: 1,
            revision: 1,
            addr: Ipv4Addr::LOCALHOST,
            retiring,
            state,
            pid: Some(1),
            restarts: 0,
            since: SystemTime::now(),
            checked,
        };
        // Running alone is no longer ready, with or without a check.
        assert!(!status(State::Running, false, false).ready());
        assert!(!status(State::Running, false, false).serves());
        assert!(!status(State::Refusing { port: 8000 }, false, false).ready());
        assert!(!status(State::Refusing { port: 8000 }, false, false).serves());
        assert!(status(State::Ready, false, false).ready());
        assert!(status(State::Ready, false, false).serves());
        assert!(!status(State::Ready, false, true).serves());
        assert!(status(State::Healthy, true, false).serves());
        assert_eq!(State::Refusing { port: 8000 }.name(), "running");
        assert!(
            State::Refusing { port: 8000 }
                .describe(Some(7))
                .contains("not accepting connections on :8000")
        );
    }
}
