//! Revisions: planning what should run with `cove scale` counts, held
//! services and revision numbers ([`plan_for`]); recording a new revision
//! once its service started or deployed ([`settle`], [`settle_later`]);
//! whether a held revision can still run what it ran ([`restorable`]).
//! Planning reads the machine (PATH, the files commands name, secrets'
//! files) and recording commits: both run off the runtime's workers
//! ([`crate::server::offload`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use cove_runtime::plan::Plan;
use cove_runtime::supervisor::{Outcome, States};
use hyper::StatusCode;

use crate::server::log::{log, millis};
use crate::server::offload::{add_revision, blocking};
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error};
use crate::store::{Desired, Revision, Store};

/// A daemon restart changes nothing that runs: each container service
/// keeps its revision's image (while the engine has it), so its running
/// containers are taken over rather than rebuilt from a context that may
/// have changed since.
pub(super) async fn keep_images(store: &Store, key: &str, plan: &mut Plan) {
    for svc in plan.services.iter_mut() {
        if svc.container.is_none() || svc.artifact.is_some() {
            continue;
        }
        let Ok(revisions) = store.revisions(key, &svc.name) else {
            continue;
        };
        let Some(rev) = revisions.iter().find(|r| r.number == svc.revision) else {
            continue;
        };
        if rev.digest.starts_with("sha256:") && cove_runtime::driver::has_image(&rev.digest).await {
            svc.artifact = Some(cove_runtime::artifact::Artifact {
                digest: rev.digest.clone(),
                program: None,
            });
        }
    }
}

/// Each service's command, to learn how it ended.
pub(super) type Waiting = Vec<(String, tokio::sync::oneshot::Receiver<Outcome>)>;

/// Revisions the plan names that the store does not have yet: service →
/// (number, config). Recorded once the service started or deployed.
pub(super) type Pending = HashMap<String, (u64, serde_json::Value)>;

/// A service's config as a revision records it: without its replica count
/// (scaling is not a new revision).
fn revision_config(svc: &cove_spec::model::Service) -> serde_json::Value {
    let mut v = serde_json::to_value(svc).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("scale");
        if let Some(d) = o.get_mut("deploy").and_then(|d| d.as_object_mut()) {
            d.remove("replicas");
            // `cove scale` of a service with no `deploy` leaves an empty
            // one: the same config (a daemon restart after a scale made a
            // new revision of it).
            if d.is_empty() {
                o.remove("deploy");
            }
        }
    }
    v
}

/// `names` without the services a preview shares with its baseline (it
/// reaches the baseline's; see `x-cove.preview_of`), nor those borrowed
/// from another environment (`x-cove.borrowed`).
pub(super) fn unshared(app: &cove_spec::App, mut names: Vec<String>) -> Vec<String> {
    if let Some(of) = &app.x_cove.preview_of {
        names.retain(|n| !of.shared.contains_key(n));
    }
    names.retain(|n| !app.x_cove.borrowed.contains_key(n));
    names
}

/// The plan of what `desired` says, with `cove scale` counts, services held
/// by `cove rollback` at their revision, and revision numbers: a service's
/// last revision when its config is the same (and it is not in
/// `deploying`), else the next number. Made on the blocking pool.
pub(super) async fn plan_for(
    store: &Arc<Store>,
    key: &str,
    desired: &Desired,
    deploying: &[String],
) -> Result<(Plan, Pending), String> {
    let (store, key, desired, deploying) = (
        store.clone(),
        key.to_string(),
        desired.clone(),
        deploying.to_vec(),
    );
    blocking(move || plan_now(&store, &key, &desired, &deploying)).await
}

/// [`plan_for`], on the calling thread.
fn plan_now(
    store: &Store,
    key: &str,
    desired: &Desired,
    deploying: &[String],
) -> Result<(Plan, Pending), String> {
    let mut app = desired.app.clone();
    let mut held: HashMap<String, Revision> = HashMap::new();
    for (name, number) in &desired.pinned {
        let Some(now) = app.services.get(name) else {
            continue;
        };
        let revs = store.revisions(key, name).map_err(|e| e.to_string())?;
        let Some(rev) = revs.into_iter().find(|r| r.number == *number) else {
            return Err(format!(
                "`{name}` is held at revision {number}, which is no longer recorded"
            ));
        };
        let mut config: cove_spec::model::Service = serde_json::from_value(rev.config.clone())
            .map_err(|e| format!("revision {number} of `{name}` cannot be read: {e}"))?;
        config.deploy.get_or_insert_with(Default::default).replicas = Some(now.replicas());
        app.services.insert(name.clone(), config);
        held.insert(name.clone(), rev);
    }
    for (name, n) in &desired.scale {
        if let Some(s) = app.services.get_mut(name) {
            s.deploy.get_or_insert_with(Default::default).replicas = Some(*n);
        }
    }
    let words = |errors: Vec<cove_runtime::plan::PlanError>| {
        errors
            .iter()
            .map(|e| format!("{e}\n  = hint: {}", e.hint))
            .collect::<Vec<_>>()
            .join("\nerror: ")
    };
    let secrets =
        cove_runtime::secrets::resolve(&app, &desired.project_dir, desired.identity.as_deref())
            .map_err(words)?;
    let mut plan = cove_runtime::preflight::checked(
        &app,
        cove_runtime::plan::plan_with(&app, &desired.project_dir, Some(&secrets)),
        cove_runtime::preflight::check(&app),
    )
    .map_err(words)?;
    // Every service planned (addresses depend on all the names); only
    // what should run (and what it depends on) kept, routes included.
    if !desired.wanted.is_empty() {
        let keep = unshared(&desired.app, plan.closure(&desired.wanted));
        plan.keep(&keep);
    }
    let mut pending = Pending::new();
    for svc in &mut plan.services {
        if let Some(rev) = held.get(&svc.name) {
            svc.revision = rev.number;
            // Its kept program, when it still is; else it is built again.
            if rev.program.as_ref().is_none_or(|p| p.is_file()) {
                svc.artifact = Some(cove_runtime::artifact::Artifact {
                    digest: rev.digest.clone(),
                    program: rev.program.clone(),
                });
            }
            continue;
        }
        let Some(service) = app.services.get(&svc.name) else {
            return Err(format!(
                "the plan names `{}`, which the app does not have",
                svc.name
            ));
        };
        let config = revision_config(service);
        let revs = store.revisions(key, &svc.name).map_err(|e| e.to_string())?;
        let number = match revs.last() {
            Some(l) if l.config == config && !deploying.contains(&svc.name) => l.number,
            Some(l) => l.number + 1,
            None => 1,
        };
        svc.revision = number;
        if revs.last().is_none_or(|l| l.number != number) {
            pending.insert(svc.name.clone(), (number, config));
        }
    }
    Ok((plan, pending))
}

/// Records the revision a service started or deployed, if it is new.
pub(super) async fn settle(
    store: &Arc<Store>,
    key: &str,
    service: &str,
    outcome: &Outcome,
    pending: &Pending,
    message: &str,
) {
    let artifact = match outcome {
        Outcome::Started { artifact } | Outcome::Deployed { artifact, .. } => artifact,
        _ => return,
    };
    let Some((number, config)) = pending.get(service) else {
        return;
    };
    let rev = Revision {
        number: *number,
        time_ms: millis(SystemTime::now()),
        message: message.to_string(),
        digest: artifact
            .as_ref()
            .map(|a| a.digest.clone())
            .unwrap_or_default(),
        program: artifact.as_ref().and_then(|a| a.program.clone()),
        config: config.clone(),
    };
    if let Err(e) = add_revision(store, key, service, rev).await {
        log(&format!(
            "{key}: revision {number} of {service} not recorded: {e}"
        ));
    }
}

/// [`settle`]s each service when its command ends, without waiting for it.
pub(super) fn settle_later(
    store: &Arc<Store>,
    key: &str,
    done: Waiting,
    pending: Pending,
    message: String,
) {
    if pending.is_empty() {
        return;
    }
    let (store, key, pending) = (store.clone(), key.to_string(), Arc::new(pending));
    for (service, rx) in done {
        let (store, key, pending, message) =
            (store.clone(), key.clone(), pending.clone(), message.clone());
        tokio::spawn(async move {
            if let Ok(outcome) = rx.await {
                settle(&store, &key, &service, &outcome, &pending, &message).await;
            }
        });
    }
}

/// The revision `service`'s replicas run (the newest when they differ).
pub(super) fn current_revision(states: &States, service: &str) -> Option<u64> {
    states
        .get(service)?
        .iter()
        .filter(|s| !s.retiring && !s.state.is_final())
        .map(|s| s.revision)
        .max()
}

/// Whether running `service` at `target` (pinned in `desired`: a
/// rollback, or a restart of a service held there) runs what `target`
/// ran: its kept program, an image, or a command that names no file of
/// the project do; files of the working tree (`python3 app.py`) do only
/// when they are as they were then (cove keeps no copy of them), else the
/// answer refuses to `what`, naming them.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
pub(super) async fn restorable(
    daemon: &Daemon,
    key: &str,
    desired: &Desired,
    service: &str,
    target: &Revision,
    what: &str,
) -> Result<(), Answer> {
    if target.digest.is_empty() || target.program.is_some() {
        return Ok(());
    }
    let Some(now) = working_tree(daemon, key, desired, service).await? else {
        return Ok(());
    };
    if now.digest == target.digest {
        return Ok(());
    }
    Err(error(
        StatusCode::CONFLICT,
        format!(
            "cannot {what}: `{service}` runs files from the working tree ({}), which cove does not keep, and they changed since revision {} ran",
            now.names, target.number
        ),
        Some(format!(
            "revert them (git) and `cove deploy {service}`, or run them as they are now with `cove deploy {service}`; nothing was changed"
        )),
    ))
}

/// The files of the working tree a native service's command names, as
/// they are now.
pub(super) struct WorkingTree {
    pub(super) digest: String,
    /// Their names (relative to the workdir), for messages.
    names: String,
}

/// What `service` of `desired` would run from the working tree now; none
/// for a container, or when it cannot be said.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
pub(super) async fn working_tree(
    daemon: &Daemon,
    key: &str,
    desired: &Desired,
    service: &str,
) -> Result<Option<WorkingTree>, Answer> {
    let (plan, _) = plan_for(&daemon.store, key, desired, &[])
        .await
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e, None))?;
    let Some(svc) = plan.services.into_iter().find(|s| s.name == service) else {
        return Ok(None);
    };
    if svc.container.is_some() {
        return Ok(None);
    }
    let (argv, workdir) = (svc.argv.clone(), svc.workdir.clone());
    let argv_text = argv.join(" ");
    let name = service.to_string();
    let now = tokio::task::spawn_blocking(move || {
        let files = cove_runtime::artifact::files_named(&argv, &workdir);
        let digest =
            cove_runtime::artifact::capture(&name, &argv, &workdir, None, &[]).map(|a| a.digest);
        (files, workdir, digest)
    })
    .await;
    let Ok((files, workdir, Ok(digest))) = now else {
        return Ok(None);
    };
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&workdir).unwrap_or(f).display().to_string())
        .collect();
    let names = if names.is_empty() {
        format!("named by `{}`, none there now", argv_text)
    } else {
        names.join(", ")
    };
    Ok(Some(WorkingTree { digest, names }))
}
