//! `POST /v1/up`: the app as the file has it now becomes what should run
//! (only ever adding to what runs; orphans kept), planned with revision
//! numbers and started.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cove_runtime::plan::Plan;
use cove_runtime::supervisor::{Mode, Outcome, States, StopTimeout};
use tokio::sync::oneshot;

use hyper::StatusCode;

use crate::api::{Accepted, UpRequest};
use crate::server::log::log;
use crate::server::offload::{blocking, set_desired};
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};
use crate::server::revisions::{current_revision, plan_for, settle_later, working_tree};
use crate::store::Desired;

pub(in crate::server) async fn up(daemon: &Daemon, key: &str, req: UpRequest) -> Answer {
    // Planning and the machine's checks (PATH, the files commands name).
    let planned = {
        let (app, dir) = (req.app.clone(), req.project_dir.clone());
        blocking(move || {
            let planned = cove_runtime::plan::plan(&app, &dir);
            let problems = cove_runtime::preflight::check(&app);
            cove_runtime::preflight::checked(&app, planned, problems).map(drop)
        })
        .await
    };
    if let Err(a) = plan_errors(planned) {
        return a;
    }
    if let Err(a) = check(&req) {
        return a;
    }
    if let Err(a) = lease(&req).await {
        return a;
    }
    let seq = *daemon.seq.borrow();
    let project = daemon.project(key);
    let mut run = project.lock_run().await;
    // `cove scale` and `cove rollback` hold until the next deploy.
    let (scale, pinned) = run
        .desired
        .as_ref()
        .map(|d| (d.scale.clone(), d.pinned.clone()))
        .unwrap_or_default();
    let (app, orphans, mut removed) = with_orphans(
        req.app.clone(),
        run.desired.as_ref(),
        req.remove_orphans,
        &req.disabled,
    );
    let before: Vec<String> = run
        .desired
        .as_ref()
        .map(|d| d.wanted.clone())
        .unwrap_or_default();
    // Borrowed now (`cove up --borrow`): what ran of them here stops.
    removed.extend(
        before
            .iter()
            .filter(|s| app.x_cove.borrowed.contains_key(*s) && !removed.contains(s))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut candidate = Desired {
        app,
        project_dir: req.project_dir.clone(),
        wanted: Vec::new(),
        orphans,
        scale,
        pinned,
        identity: req.identity.clone(),
    };
    let renewed = renew_changed(daemon, key, &mut candidate).await;
    // Every service of the file planned (their addresses depend on all the
    // names), then only what should run kept: what ran, if the file (or
    // an orphan) still has it, what is asked, and what those depend on.
    // `up SERVICE` and `run` add to what runs; they never stop or unroute
    // anything else.
    // `--force-recreate`, `--build`: what runs and is asked gets a new
    // revision, which its replicas are replaced with.
    let mut deploying = renewed.clone();
    if req.force_recreate || req.build {
        deploying.extend(
            req.services
                .iter()
                .filter(|s| before.contains(s) && !renewed.contains(s))
                .cloned(),
        );
    }
    let (mut plan, pending) = match plan_for(&daemon.store, key, &candidate, &deploying).await {
        Ok(p) => p,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
    };
    let seeds: Vec<String> = before
        .iter()
        .chain(&req.services)
        .filter(|s| !removed.contains(s))
        .cloned()
        .collect();
    let wanted = crate::server::revisions::unshared(&candidate.app, plan.closure(&seeds));
    plan.keep(&wanted);
    let running: Vec<String> = {
        let states = project.states.borrow();
        wanted
            .iter()
            .filter(|s| current_revision(&states, s).is_some())
            .cloned()
            .collect()
    };
    if req.no_recreate {
        // `--no-recreate`: what runs goes on running as it was planned.
        keep_running(&mut plan, run.plan.as_ref(), &running);
    }
    // Its addresses first: when one is taken, nothing changes.
    if let Err(e) = project.set_gateway(Some(&plan)) {
        if run.desired.is_none() {
            drop(run);
            daemon.forget(key);
        }
        return error(
            StatusCode::CONFLICT,
            e,
            Some(
                "set `x-cove.gateway.listen` (or the route's `listen`) to a free address, e.g. 127.0.0.1:2684, or stop what uses it"
                    .into(),
            ),
        );
    }
    // Started (or converged): what is asked, and what it newly depends on.
    let start: Vec<String> = wanted
        .iter()
        .filter(|s| req.services.contains(s) || !before.contains(s))
        .cloned()
        .collect();
    let desired = Desired {
        wanted,
        ..candidate
    };
    // Written before it is acted on.
    if let Err(e) = set_desired(&daemon.store, key, Some(&desired)).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    if !removed.is_empty() {
        run.supervisor.remove(&removed).await;
    }
    let mut revisions = asked_revisions(&project.states.borrow(), run.plan.as_ref(), &plan);
    if req.force_recreate {
        // Replaced whatever changed: `up -d` waits for the new revision.
        for svc in plan.services.iter().filter(|s| deploying.contains(&s.name)) {
            revisions.insert(svc.name.clone(), svc.revision);
        }
    }
    // `-t`: in force from before the supervisor acts until every service
    // it was sent is done (see `with_stop_timeout`).
    let timeout = req.timeout.map(|t| {
        run.supervisor
            .stop_timeout()
            .set(Some(Duration::from_secs(t)))
    });
    let done = if req.force_recreate || req.build {
        // `--force-recreate`: new replicas for what runs, as it is;
        // `--build`: built again, and replaced with what the build made.
        let mode = if req.force_recreate {
            Mode::Restart
        } else {
            Mode::Deploy
        };
        let (again, fresh): (Vec<String>, Vec<String>) =
            start.iter().cloned().partition(|s| running.contains(s));
        let mut done = run.supervisor.apply(&plan, &fresh, &HashMap::new()).await;
        for name in again {
            if let Some(rx) = run.supervisor.converge(&plan, &name, mode) {
                done.push((name, rx));
            }
        }
        done
    } else {
        run.supervisor.apply(&plan, &start, &HashMap::new()).await
    };
    let done = match timeout {
        Some(number) => cleared_when_done(run.supervisor.stop_timeout(), number, done),
        None => done,
    };
    settle_later(&daemon.store, key, done, pending, String::new());
    let preview_of = desired.app.x_cove.preview_of.clone();
    run.plan = Some(plan);
    run.desired = Some(desired);
    drop(run);
    if let Some(of) = preview_of {
        // The baseline's gateway routes its key from now on.
        crate::server::previews::sync(daemon, &of.base);
    }
    json(
        StatusCode::OK,
        &Accepted {
            seq,
            events: Vec::new(),
            revisions,
        },
    )
}

/// `done` passed on as it comes; once every service is done, the stop
/// timeout set as `number` is cleared (unless set again since).
fn cleared_when_done(
    timeout: StopTimeout,
    number: u64,
    done: Vec<(String, oneshot::Receiver<Outcome>)>,
) -> Vec<(String, oneshot::Receiver<Outcome>)> {
    let mut out = Vec::new();
    let mut waits = tokio::task::JoinSet::new();
    for (name, rx) in done {
        let (tx, passed) = oneshot::channel();
        out.push((name, passed));
        waits.spawn(async move {
            if let Ok(outcome) = rx.await {
                let _ = tx.send(outcome);
            }
        });
    }
    tokio::spawn(async move {
        while waits.join_next().await.is_some() {}
        timeout.clear(number);
    });
    out
}

/// `plan` with the services of `running` as `before` planned them (what
/// their replicas run), so that converging leaves them as they are.
fn keep_running(plan: &mut Plan, before: Option<&Plan>, running: &[String]) {
    let Some(before) = before else {
        return;
    };
    for svc in plan.services.iter_mut() {
        if !running.contains(&svc.name) {
            continue;
        }
        if let Some(old) = before.services.iter().find(|o| o.name == svc.name) {
            *svc = old.clone();
        }
    }
}

/// Refuses an app that does not plan.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
fn plan_errors(planned: Result<(), Vec<cove_runtime::plan::PlanError>>) -> Result<(), Answer> {
    if let Err(errors) = planned {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            errors.first().map(|e| e.hint.clone()),
        ));
    }
    Ok(())
}

/// Refuses an autoscale policy that cannot be read, a service the app
/// does not have.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
fn check(req: &UpRequest) -> Result<(), Answer> {
    for (name, svc) in &req.app.services {
        if let Some(a) = svc.x_cove.as_ref().and_then(|x| x.autoscale.as_ref())
            && let Err(e) = crate::autoscale::Policy::from_spec(a)
        {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("service `{name}`: `x-cove.autoscale` {e}"),
                Some("e.g. `autoscale: {min: 2, max: 5, target_concurrency: 32}`".into()),
            ));
        }
    }
    if let Some(unknown) = req
        .services
        .iter()
        .find(|s| !req.app.services.contains_key(*s))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("no such service `{unknown}` in the app"),
            None,
        ));
    }
    Ok(())
}

/// Takes the project's lease of addresses (at its first `up`; kept after).
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
async fn lease(req: &UpRequest) -> Result<(), Answer> {
    // The project's addresses: its lease, taken at its first `up`.
    let state = cove_runtime::plan::state_dir(&req.app, &req.project_dir);
    let preferred = cove_runtime::plan::project_net(&req.app.name, &req.project_dir);
    let leased =
        tokio::task::spawn_blocking(move || cove_runtime::lease::acquire(&state, preferred)).await;
    match leased {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let text = e.to_string();
            let (message, hint) = text.split_once("; hint: ").unwrap_or((&text, ""));
            return Err(error(
                StatusCode::CONFLICT,
                format!("cannot lease this project's addresses: {message}"),
                (!hint.is_empty()).then(|| hint.to_string()),
            ));
        }
        Err(e) => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
                None,
            ));
        }
    }
    Ok(())
}

/// Lets go of each hold whose working-tree files changed since its
/// revision ran; the services let go of, to be planned as new revisions.
async fn renew_changed(daemon: &Daemon, key: &str, candidate: &mut Desired) -> Vec<String> {
    // A service held at a revision whose working-tree files changed since
    // (cove keeps no copy of them) runs them as a new revision, as a
    // deploy would: never under the held revision's number.
    // (Files as a later, failed revision had them keep the hold.)
    let held: Vec<(String, u64)> = candidate.pinned.clone().into_iter().collect();
    let mut renewed = Vec::new();
    for (name, number) in held {
        let revs = daemon.store.revisions(key, &name).unwrap_or_default();
        let Some(rev) = revs.iter().find(|r| r.number == number) else {
            continue;
        };
        if rev.digest.is_empty() || rev.program.is_some() {
            continue;
        }
        let Ok(Some(now)) = working_tree(daemon, key, candidate, &name).await else {
            continue;
        };
        if revs
            .iter()
            .all(|r| r.digest != now.digest || r.number < number)
        {
            log(&format!(
                "`{name}` was held at revision {number}; its files changed since, so `up` runs them as a new revision"
            ));
            candidate.pinned.remove(&name);
            renewed.push(name);
        }
    }
    renewed
}

/// The revisions this request asked for, which `up -d` waits for: the
/// plan's, or, for a service whose change does not touch what runs
/// (its replicas stay, with their revision), the one its replicas run.
fn asked_revisions(states: &States, before: Option<&Plan>, plan: &Plan) -> BTreeMap<String, u64> {
    plan.services
        .iter()
        .filter(|s| s.replicas > 0)
        .map(|s| {
            let stays = before.is_some_and(|p| {
                p.services
                    .iter()
                    .any(|before| before.name == s.name && before.same_run(s))
            });
            let running = stays.then(|| current_revision(states, &s.name)).flatten();
            (s.name.clone(), running.unwrap_or(s.revision))
        })
        .collect()
}

/// `app` (the compose file as it is now) with the services that ran
/// before (`desired`) but that the file no longer has: kept as they were
/// defined (orphans, as Compose calls them), or, with `remove`, listed to
/// be stopped. The app, the orphans, the removed.
pub(super) fn with_orphans(
    mut app: cove_spec::App,
    desired: Option<&Desired>,
    remove: bool,
    disabled: &[String],
) -> (cove_spec::App, Vec<String>, Vec<String>) {
    let (mut orphans, mut removed) = (Vec::new(), Vec::new());
    for name in desired.map_or(&[][..], |d| &d.wanted) {
        if app.services.contains_key(name) {
            continue;
        }
        if disabled.contains(name) {
            // In the file, left out by the profiles of this command: it
            // runs on as it was (Compose does not call it an orphan).
            if let Some(def) = desired.and_then(|d| d.app.services.get(name)) {
                app.services.insert(name.clone(), def.clone());
            }
        } else if remove {
            removed.push(name.clone());
        } else if let Some(def) = desired.and_then(|d| d.app.services.get(name)) {
            app.services.insert(name.clone(), def.clone());
            orphans.push(name.clone());
        }
    }
    (app, orphans, removed)
}
