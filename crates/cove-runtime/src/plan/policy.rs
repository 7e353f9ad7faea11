//! Policies from Compose: how a new version replaces the running one
//! (`deploy.update_config`, `rollback_config`) and when an exited replica
//! starts again (`restart`, `deploy.restart_policy`); how it is stopped
//! (`stop_signal`).

use std::time::Duration;

use cove_spec::model::{self as compose, Order, RestartCondition, Service, StopSignal};
use rustix::process::Signal;

/// `deploy.update_config` / `rollback_config`, with cove's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePolicy {
    /// Replicas replaced at once; 0: all at once.
    pub parallelism: u32,
    /// Pause between batches.
    pub delay: Duration,
    /// Start the new replica before stopping the old one (`start-first`, the
    /// default for services without data), or the other way round.
    pub start_first: bool,
    /// How long a new replica is watched after it turned healthy; failing
    /// within it fails the deploy.
    pub monitor: Duration,
    pub on_failure: FailureAction,
    /// Failed replicas tolerated, as a share of those replaced (0: none).
    pub max_failure_ratio: f64,
}

pub use cove_spec::model::FailureAction;

impl UpdatePolicy {
    /// The policy `c` (typed and checked by the loader) says, over
    /// `fallback`.
    pub(super) fn from_compose(
        c: Option<&cove_spec::model::UpdateConfig>,
        stateful: bool,
        fallback: &UpdatePolicy,
        default_action: FailureAction,
    ) -> UpdatePolicy {
        let Some(c) = c else {
            return UpdatePolicy {
                on_failure: default_action,
                ..fallback.clone()
            };
        };
        UpdatePolicy {
            parallelism: c
                .parallelism
                .map_or(fallback.parallelism, |p| p.min(u64::from(u32::MAX)) as u32),
            delay: c.delay.map_or(fallback.delay, |d| d.0),
            start_first: c
                .order
                .as_deref()
                .map_or(!stateful, |o| *o == Order::StartFirst),
            monitor: c.monitor.map_or(fallback.monitor, |d| d.0),
            on_failure: c
                .failure_action
                .as_deref()
                .copied()
                .unwrap_or(default_action),
            max_failure_ratio: c.max_failure_ratio.unwrap_or(0.0),
        }
    }
}

/// When a replica that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never (`restart: "no"`, the Compose default).
    No,
    /// Always (`always`, `unless-stopped`).
    Always,
    /// After a non-zero exit, at most `max` times (`on-failure[:max]`).
    OnFailure { max: Option<u32> },
}

impl Restart {
    /// Whether to start again after exit `code` (None: killed by a signal),
    /// given the restarts so far.
    pub fn again(self, code: Option<i32>, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always => true,
            Restart::OnFailure { max } => code != Some(0) && max.is_none_or(|m| restarts < m),
        }
    }
}

/// The restart policy: `deploy.restart_policy`, else `restart`.
pub(super) fn restart_of(s: &Service) -> Restart {
    if let Some(p) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let max = p.max_attempts.map(|m| m as u32);
        return match p.condition.as_deref() {
            Some(RestartCondition::None) => Restart::No,
            Some(RestartCondition::OnFailure) => Restart::OnFailure { max },
            Some(RestartCondition::Any) | None => Restart::Always,
        };
    }
    match s.restart.as_deref() {
        None | Some(compose::Restart::No) => Restart::No,
        Some(compose::Restart::Always | compose::Restart::UnlessStopped) => Restart::Always,
        Some(compose::Restart::OnFailure { max }) => Restart::OnFailure { max: *max },
    }
}

/// `stop_signal`, SIGTERM by default.
pub(super) fn stop_signal_of(svc: &Service) -> Signal {
    match svc.stop_signal.as_deref() {
        None | Some(StopSignal::Term) => Signal::TERM,
        Some(StopSignal::Int) => Signal::INT,
        Some(StopSignal::Quit) => Signal::QUIT,
        Some(StopSignal::Hup) => Signal::HUP,
        Some(StopSignal::Kill) => Signal::KILL,
        Some(StopSignal::Usr1) => Signal::USR1,
        Some(StopSignal::Usr2) => Signal::USR2,
        Some(StopSignal::Winch) => Signal::WINCH,
    }
}

/// `deploy.update_config` and `rollback_config`, with cove's defaults.
pub(super) fn update_policies(svc: &Service, stateful: bool) -> (UpdatePolicy, UpdatePolicy) {
    let default = UpdatePolicy {
        parallelism: 1,
        delay: Duration::ZERO,
        start_first: !stateful,
        monitor: Duration::ZERO,
        on_failure: FailureAction::Rollback,
        max_failure_ratio: 0.0,
    };
    let deploy = svc.deploy.as_ref();
    let update = UpdatePolicy::from_compose(
        deploy.and_then(|d| d.update_config.as_ref()),
        stateful,
        &default,
        FailureAction::Rollback,
    );
    let rollback = UpdatePolicy::from_compose(
        deploy.and_then(|d| d.rollback_config.as_ref()),
        stateful,
        &update,
        FailureAction::Pause,
    );
    (update, rollback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(!Restart::No.again(Some(1), 0));
        assert!(Restart::Always.again(Some(0), 100));
        let f = Restart::OnFailure { max: Some(2) };
        assert!(f.again(Some(1), 1) && !f.again(Some(1), 2) && !f.again(Some(0), 0));
        assert!(f.again(None, 0), "killed by a signal counts as a failure");
    }

    fn service(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn policies_read_the_typed_fields() {
        let s = service(
            serde_json::json!({"image": "x", "restart": "on-failure:3", "stop_signal": "quit"}),
        );
        assert_eq!(restart_of(&s), Restart::OnFailure { max: Some(3) });
        assert_eq!(stop_signal_of(&s), Signal::QUIT);
        let s = service(
            serde_json::json!({"image": "x", "restart": "unless-stopped",
            "deploy": {"restart_policy": {"condition": "none"}}}),
        );
        assert_eq!(restart_of(&s), Restart::No, "deploy.restart_policy wins");
        let s = service(serde_json::json!({"image": "x"}));
        assert_eq!(
            (restart_of(&s), stop_signal_of(&s)),
            (Restart::No, Signal::TERM)
        );
        let (update, rollback) = update_policies(&s, true);
        assert!(
            !update.start_first && !rollback.start_first,
            "stateful: stop-first"
        );
        assert_eq!(
            (update.on_failure, rollback.on_failure),
            (FailureAction::Rollback, FailureAction::Pause)
        );
        let s = service(serde_json::json!({"image": "x", "deploy": {
            "update_config": {"order": "start-first", "failure_action": "continue", "parallelism": 2},
            "rollback_config": {"failure_action": "rollback"}
        }}));
        let (update, rollback) = update_policies(&s, true);
        assert!(update.start_first, "as asked");
        assert!(
            !rollback.start_first,
            "its own `order`, by default the service's"
        );
        assert_eq!(update.on_failure, FailureAction::Continue);
        assert_eq!(
            (update.parallelism, rollback.parallelism),
            (2, 2),
            "rollback falls back on update"
        );
        assert_eq!(rollback.on_failure, FailureAction::Rollback);
    }
}
