//! `GET /v1/ps`: the replicas' rows, from the supervisor's states and the
//! last plan (never waiting for a command in progress).

use cove_runtime::plan::Plan;
use cove_runtime::supervisor::{State, States};

use hyper::StatusCode;

use crate::api::{Replica, ReplicaState};
use crate::server::log::millis;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, json};

fn rows(states: &States, plan: Option<&Plan>, orphans: &[String]) -> Vec<Replica> {
    let mut rows = Vec::new();
    for (name, replicas) in states {
        let svc = plan.and_then(|p| p.services.iter().find(|s| &s.name == name));
        for s in replicas {
            rows.push(Replica {
                service: name.clone(),
                replica: s.replica,
                revision: s.revision,
                retiring: s.retiring,
                state: ReplicaState::from(&s.state),
                health: s.health().into(),
                detail: s.state.describe(s.pid),
                pid: s.pid,
                address: svc.map_or(String::new(), |svc| format!("{}:{}", s.addr, svc.port())),
                container: svc
                    .filter(|svc| svc.container.is_some())
                    .map(|svc| cove_runtime::driver::container_name(svc, s.slot)),
                restarts: s.restarts,
                since_ms: millis(s.since),
                ready: s.ready(),
                refusing: match s.state {
                    State::Refusing { port } => Some(port),
                    _ => None,
                },
                orphan: orphans.contains(name),
                exit_code: exit_code(&s.state),
            });
        }
    }
    rows
}

/// One row per service borrowed from another environment (`cove up
/// --borrow`): state `borrowed`, ready (it is served there), at its
/// address there, no revision or process here.
fn borrowed(app: &cove_spec::App) -> Vec<Replica> {
    app.x_cove
        .borrowed
        .iter()
        .map(|(name, b)| Replica {
            service: name.clone(),
            replica: 1,
            revision: 0,
            retiring: false,
            state: ReplicaState::Other("borrowed".into()),
            health: crate::api::Health::Unchecked,
            detail: format!("borrowed from {}", b.env),
            pid: None,
            address: format!("{}:{}", b.address, b.port),
            container: None,
            restarts: 0,
            since_ms: 0,
            ready: true,
            refusing: None,
            orphan: false,
            exit_code: None,
        })
        .collect()
}

/// How a replica last exited, when its state says: `completed` is 0; a
/// restart or a failure carries the code of the exit (the supervisor's
/// reason reads `exited with code N`); a start, a dependency or a signal
/// that ended it carries none.
fn exit_code(state: &State) -> Option<i32> {
    match state {
        State::Completed => Some(0),
        State::Restarting { code, .. } => *code,
        State::Failed { reason } => reason
            .strip_prefix("exited with code ")
            .map(|rest| {
                rest.split(|c: char| !c.is_ascii_digit() && c != '-')
                    .next()
                    .unwrap_or("")
            })
            .and_then(|n| n.parse().ok()),
        _ => None,
    }
}

/// The replicas of `key`, as the last command left its plan.
pub(in crate::server) fn ps(daemon: &Daemon, key: &str) -> Answer {
    match daemon.existing(key) {
        Some(p) => {
            // Never waits for a command in progress.
            let (plan, desired) = p.view();
            let mut all = rows(
                &p.states.borrow(),
                plan.as_deref(),
                desired.as_ref().map_or(&[][..], |d| &d.orphans),
            );
            if let Some(d) = &desired {
                all.extend(borrowed(&d.app));
            }
            json(StatusCode::OK, &all)
        }
        None => json(StatusCode::OK, &Vec::<Replica>::new()),
    }
}

/// `GET /v1/projects`: every project the daemon runs, with what its
/// state directory says of it and its replicas, by name (what a CLI on
/// another host names it by: `cove --host ... ps`, `ls`).
pub(in crate::server) fn projects(daemon: &Daemon) -> Answer {
    let mut all: Vec<crate::api::HostProject> = daemon
        .all()
        .iter()
        .map(|p| {
            let about = crate::about::About::read(std::path::Path::new(&*p.key));
            let (plan, desired) = p.view();
            crate::api::HostProject {
                key: p.key.to_string(),
                name: about.as_ref().map(|a| a.name.clone()),
                env: about.as_ref().and_then(|a| a.env.clone()),
                project_dir: about.as_ref().map(|a| a.project_dir.clone()),
                files: about.map(|a| a.files).unwrap_or_default(),
                replicas: rows(
                    &p.states.borrow(),
                    plan.as_deref(),
                    desired.as_ref().map_or(&[][..], |d| &d.orphans),
                ),
            }
        })
        .collect();
    all.sort_by(|a, b| (&a.name, &a.env, &a.key).cmp(&(&b.name, &b.env, &b.key)));
    json(StatusCode::OK, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_read_from_the_state() {
        let failed = |reason: &str| State::Failed {
            reason: reason.into(),
        };
        assert_eq!(exit_code(&State::Completed), Some(0));
        assert_eq!(exit_code(&failed("exited with code 3")), Some(3));
        assert_eq!(
            exit_code(&failed("exited with code 42: not ready")),
            Some(42)
        );
        assert_eq!(exit_code(&failed("killed by a signal")), None);
        assert_eq!(exit_code(&failed("dependency `db` failed")), None);
        assert_eq!(
            exit_code(&State::Restarting {
                code: Some(7),
                delay: std::time::Duration::from_secs(1)
            }),
            Some(7)
        );
        assert_eq!(exit_code(&State::Running), None);
        assert_eq!(exit_code(&State::Stopped), None);
    }
}
