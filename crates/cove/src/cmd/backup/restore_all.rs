//! `cove restore --all [--yes]`: a host that lost its data comes back with
//! one command. For every service of the app that has backups (in the
//! target), its newest backup is restored in place, services in dependency
//! order (what others depend on first); then cove waits until every
//! service of the app is ready (healthy).
//!
//! The app need not be running: when a service to restore has no running
//! replica, the app is brought up first (`cove up -d`: fresh, empty
//! databases where the data directories are gone), and then restored.
//! Every chosen backup is read back and verified before anything is
//! changed: one damaged backup refuses the whole restore, naming it.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use clap::Parser as _;
use cove_backup::Backup;
use cove_daemon::api::{DaemonStatus, Replica};
use cove_spec::Project;

use super::{Failure, RestoreArgs, find_backup, method, method_of, open_all, restore, short};
use crate::cli::{Cli, Command, ProjectArgs};
use crate::daemon;

/// How long the app may take to be ready after the restores.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// The newest backup of each service of `project` in `all` (oldest first),
/// in dependency order. Backups of services the app no longer has, or made
/// by a method the service does not restore, are left out (said so).
fn newest_per_service<'a>(
    project: &Project,
    all: &'a [Backup],
) -> Result<Vec<(String, &'a Backup)>, Failure> {
    let mut newest: BTreeMap<&str, &Backup> = BTreeMap::new();
    for b in all {
        if b.meta.project != project.app.name {
            continue;
        }
        newest.insert(b.meta.service.as_str(), b);
    }
    let mut order = project.graph.order();
    // Services the graph does not list (none today) go last.
    for s in project.app.services.keys() {
        if !order.contains(s) {
            order.push(s.clone());
        }
    }
    for s in newest.keys() {
        if !project.app.services.contains_key(*s) {
            eprintln!("cove: backups of `{s}` are left: the app has no service `{s}` now");
        }
    }
    let mut out = Vec::new();
    for service in order {
        let Some(b) = newest.get(service.as_str()) else {
            continue;
        };
        let method = method_of(project, &service)?;
        if method::from_name(&b.meta.method) != Some(method) {
            eprintln!(
                "cove: the newest backup of `{service}` ({}) was made with {}, and `{service}` restores {} backups now: left out",
                short(&b.id),
                b.meta.method,
                method::name(method)
            );
            continue;
        }
        out.push((service, *b));
    }
    Ok(out)
}

/// What the daemon runs of the app, or `None` when the app is down.
fn status(project: &Project) -> Result<Option<DaemonStatus>, Failure> {
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
    let rt = daemon::runtime().map_err(|e| Failure::new(e.to_string()))?;
    match rt.block_on(client.get::<DaemonStatus>("/v1/status")) {
        Ok(s) => Ok(Some(s)),
        Err(cove_daemon::client::ClientError::NotRunning) => Ok(None),
        Err(e) => Err(Failure::new(format!("asking the daemon: {e}"))),
    }
}

/// `cove up -d`, as if typed, with the same project arguments.
fn up(project_args: &ProjectArgs) -> Result<(), Failure> {
    let Ok(cli) = Cli::try_parse_from(["cove", "up", "-d"]) else {
        return Err(Failure::new("cannot make the arguments of `cove up -d`"));
    };
    let Command::Up(args) = cli.command else {
        return Err(Failure::new("cannot make the arguments of `cove up -d`"));
    };
    let code = super::super::up::run(project_args, &args)
        .map_err(|e| Failure::new(format!("`cove up -d` failed: {e}")))?;
    if code != std::process::ExitCode::SUCCESS {
        return Err(
            Failure::new("the app did not come up (see above), so nothing was restored")
                .hint("fix what failed, then run `cove restore --all` again"),
        );
    }
    Ok(())
}

pub(super) fn restore_all(
    project_args: &ProjectArgs,
    project: &Project,
    only: Option<&str>,
    args: &RestoreArgs,
) -> Result<(), Failure> {
    // Every target's backups: each service's newest of any.
    let opened = open_all(project, only)?;
    opened.tell_failed();
    let mut all: Vec<Backup> = Vec::new();
    for store in &opened.stores {
        all.extend(store.list()?);
    }
    all.sort_by(|a, b| a.time.cmp(&b.time));
    drop(opened);
    let chosen = newest_per_service(project, &all)?;
    if chosen.is_empty() {
        return Err(Failure::new(format!(
            "no backup of any service of `{}` in any target",
            project.app.name
        ))
        .hint("take them with `cove backup`"));
    }
    let listing: Vec<String> = chosen
        .iter()
        .map(|(s, b)| format!("{s} from {} ({})", short(&b.id), b.time))
        .collect();
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(format!(
                "restoring replaces the data of {}: cove asks first, and there is no terminal to ask on",
                listing.join(", ")
            ))
            .hint("give --yes to restore without asking"));
        }
        super::confirm(&format!("replace the data of {}?", listing.join(", ")))?;
    }
    // Every backup read back and verified before anything changes.
    let mut holders: Vec<String> = Vec::new();
    for (service, b) in &chosen {
        let (_, store) = find_backup(project, only, service, Some(&b.id))?;
        holders.push(store.name().to_string());
        store.check(&b.id).map_err(|e| {
            Failure::new(format!(
                "the newest backup of `{service}` cannot be restored, so nothing was: {e}"
            ))
            .hint(format!(
                "restore the others one by one (`cove restore SERVICE`), and `{service}` from an older backup (`cove backup ls`, `cove restore {service} --from ID`)"
            ))
        })?;
    }
    eprintln!(
        "cove: {} backup(s) read back and verified: {}",
        chosen.len(),
        listing.join(", ")
    );
    let running = status(project)?.map(|s| s.running).unwrap_or_default();
    if chosen.iter().any(|(s, _)| !running.contains(s)) {
        eprintln!("cove: the app is not running (or not all of it): `cove up -d` first");
        up(project_args)?;
    }
    for ((service, b), holder) in chosen.iter().zip(&holders) {
        let one = RestoreArgs {
            service: Some(service.clone()),
            to_new: None,
            list_new: false,
            drop: None,
            from: Some(b.id.clone()),
            yes: true,
            all: false,
            target: Some(holder.clone()),
        };
        restore(project, service, &one).map_err(|f| Failure {
            message: format!(
                "restoring `{service}` failed: {}{}",
                f.message,
                restored_before(&chosen, service)
            ),
            hint: f.hint,
        })?;
    }
    wait_healthy(project)?;
    eprintln!(
        "cove: restored {} service(s) and every service of `{}` is ready",
        chosen.len(),
        project.app.name
    );
    Ok(())
}

/// ` (restored before it: a, b)` when some were.
fn restored_before(chosen: &[(String, &Backup)], failed: &str) -> String {
    let done: Vec<&str> = chosen
        .iter()
        .map(|(s, _)| s.as_str())
        .take_while(|s| *s != failed)
        .collect();
    if done.is_empty() {
        String::new()
    } else {
        format!(" (restored before it: {})", done.join(", "))
    }
}

/// Waits (bounded) until every replica of every service the daemon runs of
/// the app is ready, failing at the first that fails or turns unhealthy.
fn wait_healthy(project: &Project) -> Result<(), Failure> {
    let Some(st) = status(project)? else {
        return Err(Failure::new("the app stopped while it was being restored"));
    };
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
    let rt = daemon::runtime().map_err(|e| Failure::new(e.to_string()))?;
    let waited: Result<Vec<Replica>, daemon::NotReady> = rt.block_on(daemon::wait_ready(
        &client,
        &st.running,
        st.seq,
        READY_TIMEOUT,
        &BTreeMap::new(),
    ));
    match waited {
        Ok(_) => Ok(()),
        Err(why) => {
            daemon::print_not_ready(&crate::output::stderr_style(), &client, &why, READY_TIMEOUT);
            Err(Failure::new(
                "the data is restored, but the app is not healthy after it (see above)",
            )
            .hint("see `cove ps` and `cove logs`"))
        }
    }
}
