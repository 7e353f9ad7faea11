//! Policies from Compose: how a new version replaces the running one
//! (`deploy.update_config`, `rollback_config`) and when an exited replica
//! starts again (`restart`, `deploy.restart_policy`); how it is stopped
//! (`stop_signal`).

use std::time::Duration;

use cove_spec::model::Service;
use rustix::process::Signal;

use super::PlanError;

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

/// What a deploy does when replicas fail (`failure_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Put the previous version back (the default of `update_config`).
    Rollback,
    /// Stop where it is (the default of `rollback_config`).
    Pause,
    /// Go on with the next replicas.
    Continue,
}

impl UpdatePolicy {
    pub(super) fn from_compose(
        c: Option<&cove_spec::model::UpdateConfig>,
        stateful: bool,
        fallback: &UpdatePolicy,
        default_action: FailureAction,
    ) -> Result<UpdatePolicy, String> {
        let Some(c) = c else {
            return Ok(UpdatePolicy {
                on_failure: default_action,
                ..fallback.clone()
            });
        };
        let start_first = match c.order.as_deref() {
            None => !stateful,
            Some("start-first") => true,
            Some("stop-first") => false,
            Some(o) => {
                return Err(format!(
                    "`order` is `{o}`; use `start-first` or `stop-first`"
                ));
            }
        };
        let on_failure = match c.failure_action.as_deref() {
            None => default_action,
            Some("rollback") => FailureAction::Rollback,
            Some("pause") => FailureAction::Pause,
            Some("continue") => FailureAction::Continue,
            Some(a) => {
                return Err(format!(
                    "`failure_action` is `{a}`; use `rollback`, `pause` or `continue`"
                ));
            }
        };
        let ratio = c.max_failure_ratio.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!(
                "`max_failure_ratio` is {ratio}; give a share between 0 and 1"
            ));
        }
        Ok(UpdatePolicy {
            parallelism: c
                .parallelism
                .map_or(fallback.parallelism, |p| p.min(u64::from(u32::MAX)) as u32),
            delay: c.delay.map_or(fallback.delay, |d| d.0),
            start_first,
            monitor: c.monitor.map_or(fallback.monitor, |d| d.0),
            on_failure,
            max_failure_ratio: ratio,
        })
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

pub(super) fn restart_policy(s: &Service) -> Result<Restart, String> {
    if let Some(p) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let max = p.max_attempts.map(|m| m as u32);
        return Ok(match p.condition.as_deref() {
            Some("none") => Restart::No,
            Some("on-failure") => Restart::OnFailure { max },
            _ => Restart::Always,
        });
    }
    match s.restart.as_deref().unwrap_or("no") {
        "no" | "" => Ok(Restart::No),
        "always" | "unless-stopped" => Ok(Restart::Always),
        "on-failure" => Ok(Restart::OnFailure { max: None }),
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => Ok(Restart::OnFailure { max: Some(n) }),
            _ => Err(format!("unknown `restart` policy `{other}`")),
        },
    }
}

/// `stop_signal`, SIGTERM by default.
pub(super) fn stop_signal_of(
    svc: &Service,
    err: &impl Fn(String, &str) -> PlanError,
    errors: &mut Vec<PlanError>,
) -> Option<Signal> {
    let stop_signal = match svc.stop_signal.as_deref() {
        None => Signal::TERM,
        Some(s) => match crate::signal::parse(s) {
            Some(sig) => sig,
            None => {
                errors.push(
                    err(
                        format!("unknown `stop_signal` `{s}`"),
                        "use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or SIGUSR2",
                    )
                    .at(&["stop_signal"]),
                );
                return None;
            }
        },
    };
    Some(stop_signal)
}

/// The restart policy, with a hint when it is misspelt.
pub(super) fn restart_of(
    svc: &Service,
    err: &impl Fn(String, &str) -> PlanError,
    errors: &mut Vec<PlanError>,
) -> Option<Restart> {
    let restart = match restart_policy(svc) {
        Ok(r) => r,
        Err(m) => {
            let policies = ["no", "always", "unless-stopped", "on-failure"];
            let written = svc.restart.as_deref().unwrap_or_default();
            let hint = match cove_spec::diag::suggest(written, policies) {
                Some(p) => format!(
                    "did you mean `{p}`? use `no`, `always`, `unless-stopped` or `on-failure[:N]`"
                ),
                None => "use `no`, `always`, `unless-stopped` or `on-failure[:N]`".into(),
            };
            errors.push(err(m, &hint).at(&["restart"]).written());
            return None;
        }
    };
    Some(restart)
}

/// `deploy.update_config` and `rollback_config`, with cove's defaults.
pub(super) fn update_policies(
    svc: &Service,
    stateful: bool,
    err: &impl Fn(String, &str) -> PlanError,
    errors: &mut Vec<PlanError>,
) -> Option<(UpdatePolicy, UpdatePolicy)> {
    let default = UpdatePolicy {
        parallelism: 1,
        delay: Duration::ZERO,
        start_first: !stateful,
        monitor: Duration::ZERO,
        on_failure: FailureAction::Rollback,
        max_failure_ratio: 0.0,
    };
    let deploy = svc.deploy.as_ref();
    let policies = UpdatePolicy::from_compose(
        deploy.and_then(|d| d.update_config.as_ref()),
        stateful,
        &default,
        FailureAction::Rollback,
    )
    .and_then(|update| {
        let rollback = UpdatePolicy::from_compose(
            deploy.and_then(|d| d.rollback_config.as_ref()),
            stateful,
            &update,
            FailureAction::Pause,
        )?;
        Ok((update, rollback))
    });
    let (update, rollback) = match policies {
        Ok(p) => p,
        Err(m) => {
            errors.push(
                err(
                    format!("`deploy`: {m}"),
                    "see https://docs.docker.com/reference/compose-file/deploy/#update_config",
                )
                .at(&["deploy"]),
            );
            return None;
        }
    };
    Some((update, rollback))
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
}
