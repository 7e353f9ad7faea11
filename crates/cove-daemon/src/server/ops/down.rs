//! `POST /v1/down`: what should run loses the named services (all of
//! them when none are named: the project is forgotten, and a project's
//! daemon exits).

use std::time::Duration;

use cove_runtime::plan::Plan;
use hyper::StatusCode;

use crate::api::{Accepted, Names};
use crate::server::log::log;
use crate::server::offload::{blocking, set_desired};
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, accepted, error, json};
use crate::store::Desired;

pub(in crate::server) async fn down(daemon: &Daemon, key: &str, req: Names) -> Answer {
    let before = *daemon.seq.borrow();
    let Some(project) = daemon.existing(key) else {
        // Nothing was ever run here (a project's daemon then goes).
        daemon.forget(key);
        return accepted(daemon);
    };
    let mut run = project.lock_run().await;
    let Some(mut desired) = run.desired.clone() else {
        daemon.forget(key);
        return accepted(daemon);
    };
    let mut gone = req.services.clone();
    if req.remove_orphans && !gone.is_empty() {
        gone.extend(desired.orphans.iter().cloned());
    }
    desired
        .wanted
        .retain(|s| !gone.is_empty() && !gone.contains(s));
    desired.orphans.retain(|s| desired.wanted.contains(s));
    let everything = desired.wanted.is_empty();
    let stored = set_desired(&daemon.store, key, (!everything).then_some(&desired)).await;
    if let Err(e) = stored {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    let names = if everything { Vec::new() } else { gone };
    let timeout = req.timeout.map(|t| {
        run.supervisor
            .stop_timeout()
            .set(Some(Duration::from_secs(t)))
    });
    run.supervisor.remove(&names).await;
    if let Some(number) = timeout {
        run.supervisor.stop_timeout().clear(number);
    }
    daemon.flush(&project).await;
    // Its events come with the answer: the daemon may be gone right after.
    let events = match daemon.store.events_after(key, before, 10_000) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    if everything {
        crate::server::backups::stop(daemon, key).await;
        let _ = project.set_gateway(None);
        clear_leftovers(&desired, run.plan.as_ref(), &[]).await;
        // Its replicas removed their cgroups as they stopped; anything
        // still there goes with the project's.
        if let Some(dir) = daemon
            .cgroups
            .as_deref()
            .map(|tree| cove_runtime::cgroup::project(tree, key))
        {
            let _ = tokio::task::spawn_blocking(move || {
                cove_runtime::cgroup::stop(&dir, rustix::process::Signal::KILL, Duration::ZERO)
            })
            .await;
        }
        run.desired = None;
        run.plan = None;
        daemon.forget(key);
        if let Some(of) = &desired.app.x_cove.preview_of {
            // A preview: its baseline's gateway forgets its key now.
            crate::server::previews::sync(daemon, &of.base);
        }
    } else {
        run.desired = Some(desired);
    }
    json(
        StatusCode::OK,
        &Accepted {
            seq: before,
            events,
            revisions: Default::default(),
        },
    )
}

/// Removes what a project's replicas keep outside their processes: their
/// secrets files, and (when `plan` runs containers) its containers but
/// those of the services in `keep`, and the network when nothing is kept.
/// At `down`, and before a restarted daemon brings the app back.
pub(in crate::server) async fn clear_leftovers(
    desired: &Desired,
    plan: Option<&Plan>,
    keep: &[String],
) {
    let state = cove_runtime::plan::state_dir(&desired.app, &desired.project_dir);
    let secrets = cove_runtime::secrets::root(&state);
    let removed = {
        let secrets = secrets.clone();
        blocking(move || cove_runtime::secrets::remove_all(&secrets)).await
    };
    if let Err(e) = removed {
        log(&format!("cannot remove {}: {e}", secrets.display()));
    }
    if let Some(c) = plan.and_then(|p| p.services.iter().find_map(|s| s.container.as_ref())) {
        let network = keep.is_empty().then_some(c.network.as_str());
        cove_runtime::driver::remove_containers(&state, network, keep).await;
    }
}
