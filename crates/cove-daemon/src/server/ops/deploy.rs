//! `POST /v1/deploy`: build and roll out new revisions; a failed one
//! leaves its service held at the revision it ran before.

use std::collections::HashMap;

use cove_runtime::supervisor::Mode;
use hyper::StatusCode;

use crate::api::{DeployRequest, OutcomeKind, ServiceOutcome};
use crate::server::log::log;
use crate::server::offload::set_desired;
use crate::server::ops::checks::running_project;
use crate::server::ops::converge::{act, outcomes};
use crate::server::ops::up::with_orphans;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};
use crate::server::revisions::{current_revision, plan_for};
use crate::store::Desired;

/// `cove deploy`: the new app becomes what should run; the named services
/// (all wanted ones when none) are built and rolled out; the answer comes
/// when every rollout ended. A service whose deploy failed is held at the
/// revision it ran before.
pub(in crate::server) async fn deploy(daemon: &Daemon, key: &str, req: DeployRequest) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let mut run = project.lock_run().await;
    let Some(before) = run.desired.clone() else {
        return error(
            StatusCode::CONFLICT,
            "the app is not running",
            Some("start it with `cove up -d`, then deploy".into()),
        );
    };
    // Still wanted: what was, if the new app still has it (as `up` does).
    let wanted: Vec<String> = before
        .wanted
        .iter()
        .filter(|s| req.app.services.contains_key(*s))
        .cloned()
        .collect();
    let names: Vec<String> = if req.services.is_empty() {
        wanted.clone()
    } else {
        req.services.clone()
    };
    if let Some(unknown) = names.iter().find(|s| !req.app.services.contains_key(*s)) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no such service `{unknown}` in the app"),
            None,
        );
    }
    if let Some(idle) = names.iter().find(|s| !before.wanted.contains(s)) {
        return error(
            StatusCode::CONFLICT,
            format!("`{idle}` is not running; a deploy replaces running replicas"),
            Some(format!("start it first: `cove up -d {idle}`")),
        );
    }
    let (app, orphans, _) = with_orphans(req.app, Some(&before), false, &req.disabled);
    let mut desired = Desired {
        app,
        project_dir: req.project_dir,
        wanted: before.wanted.clone(),
        orphans,
        scale: before.scale.clone(),
        pinned: before.pinned.clone(),
        identity: req.identity.or_else(|| before.identity.clone()),
    };
    desired.pinned.retain(|s, _| !names.contains(s));
    let mode = if req.restart {
        Mode::Restart
    } else {
        Mode::Deploy
    };
    let previous: HashMap<String, u64> = names
        .iter()
        .filter_map(|n| Some((n.clone(), current_revision(&project.states.borrow(), n)?)))
        .collect();
    let (done, pending) = match act(
        daemon, &project, key, &mut run, desired, &names, &names, mode,
    )
    .await
    {
        Ok(d) => d,
        Err(a) => return a,
    };
    drop(run);
    let answer = outcomes(daemon, &project, key, seq, done, &pending, &req.message).await;
    // How each deploy ended, as an event (`deployed`, `deploy-failed`):
    // what a `deploy_failed` alert reads.
    for r in &answer.results {
        let ok = match r.outcome {
            OutcomeKind::Deployed | OutcomeKind::Started => true,
            OutcomeKind::Failed => false,
            _ => continue,
        };
        let _ = project
            .reports
            .send(cove_runtime::supervisor::Report::Deployed {
                service: r.service.clone(),
                ok,
                message: r.message.clone(),
            });
    }
    // Failed (rolled back, or paused with some replicas replaced): held
    // at the revision that ran before, across daemon restarts, so that
    // nothing rolls the failed one out again.
    let failed: Vec<&ServiceOutcome> = answer
        .results
        .iter()
        .filter(|r| r.outcome == OutcomeKind::Failed && previous.contains_key(&r.service))
        .collect();
    if !failed.is_empty() {
        let mut run = project.lock_run().await;
        if let Some(d) = run.desired.as_mut() {
            for r in &failed {
                if let Some(&number) = previous.get(&r.service) {
                    d.pinned.insert(r.service.clone(), number);
                }
            }
            if let Err(e) = set_desired(&daemon.store, key, Some(d)).await {
                log(&format!("{key}: {e}"));
            }
        }
        // The plan kept for what acts on it later (`restart`, `start`)
        // runs the held revision, not the failed one.
        if let Some(d) = run.desired.clone() {
            match plan_for(&daemon.store, key, &d, &[]).await {
                Ok((plan, _)) => run.plan = Some(plan),
                Err(e) => log(&format!("{key}: {e}")),
            }
        }
    }
    json(StatusCode::OK, &answer)
}
