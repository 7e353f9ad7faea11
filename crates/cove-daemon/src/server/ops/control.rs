//! `POST /v1/stop`, `/v1/start`, `/v1/restart`.

use std::collections::HashMap;

use hyper::StatusCode;

use crate::api::Names;
use crate::server::offload::set_desired;
use crate::server::ops::checks::{known, running_project};
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, accepted, error};
use crate::server::revisions::{Pending, plan_for, restorable, settle_later};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::server) enum Verb {
    Stop,
    Start,
    Restart,
}

/// `stop`, `start`, `restart`: what should run changes first (stopped
/// services are no longer wanted; started ones are again), then the
/// supervisor acts.
pub(in crate::server) async fn control(
    daemon: &Daemon,
    key: &str,
    req: Names,
    verb: Verb,
) -> Answer {
    let answer = accepted(daemon);
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let mut run = project.lock_run().await;
    let names = match known(&run, &req.services) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let mut desired = run.desired.clone().expect("checked by known");
    // A service held at a revision (a rollback, a failed deploy) starts
    // at it, or not at all: never the working tree's changed files under
    // its number.
    if verb != Verb::Stop {
        for name in &names {
            let Some(number) = desired.pinned.get(name).copied() else {
                continue;
            };
            let revs = match daemon.store.revisions(key, name) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
            };
            let Some(rev) = revs.iter().find(|r| r.number == number) else {
                continue;
            };
            if verb == Verb::Start && desired.wanted.contains(name) {
                continue; // running: nothing starts
            }
            let word = if verb == Verb::Start {
                "start"
            } else {
                "restart"
            };
            let what = format!("{word} `{name}` at revision {number}, where it is held");
            if let Err(a) = restorable(daemon, key, &desired, name, rev, &what).await {
                return a;
            }
        }
    }
    if verb == Verb::Stop {
        desired.wanted.retain(|s| !names.contains(s));
    } else {
        let app_order: Vec<String> = desired.app.services.keys().cloned().collect();
        desired.wanted = app_order
            .into_iter()
            .filter(|s| desired.wanted.contains(s) || names.contains(s))
            .collect();
    }
    // A service the running plan lacks (never started, or stopped before
    // the last `up`): planned with what it depends on, and routed, as
    // `up` does; those dependencies start too.
    let mut start = names.clone();
    let mut pending = Pending::new();
    let planned = |n: &String| {
        run.plan
            .as_ref()
            .is_some_and(|p| p.services.iter().any(|s| &s.name == n))
    };
    if verb != Verb::Stop && !names.iter().all(planned) {
        let (plan, new) = match plan_for(&daemon.store, key, &desired, &[]).await {
            Ok(p) => p,
            Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
        };
        if let Err(e) = project.set_gateway(Some(&plan)) {
            return error(StatusCode::CONFLICT, e, None);
        }
        desired.wanted = plan.services.iter().map(|s| s.name.clone()).collect();
        start.extend(
            desired
                .wanted
                .iter()
                .filter(|s| !planned(s) && !names.contains(s))
                .cloned(),
        );
        run.plan = Some(plan);
        pending = new;
    }
    if let Err(e) = set_desired(&daemon.store, key, Some(&desired)).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    run.desired = Some(desired);
    if verb != Verb::Start {
        let timeout = req.timeout.map(|t| {
            let grace = std::time::Duration::from_secs(t);
            run.supervisor.stop_timeout().set(Some(grace))
        });
        run.supervisor.stop(&names).await;
        if let Some(number) = timeout {
            run.supervisor.stop_timeout().clear(number);
        }
    }
    if verb != Verb::Stop
        && let Some(plan) = run.plan.clone()
    {
        let done = run.supervisor.apply(&plan, &start, &HashMap::new()).await;
        settle_later(&daemon.store, key, done, pending, String::new());
    }
    daemon.flush(&project).await;
    answer
}
