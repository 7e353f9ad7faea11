//! Retention in the CLI: after each backup of a service with
//! `x-cove.backup.keep`, and on `cove backup forget [SERVICE...]
//! [--dry-run]`, the service's backups its policy does not keep are
//! removed, then the data nobody uses any more is pruned
//! ([`cove_backup::retention`]). The newest verified backup and the one
//! just taken are always kept. Periods (hours, days, ...) are the host's
//! time zone's.

use cove_backup::Store;
use cove_backup::retention::{Planned, Policy};
use cove_spec::Project;
use cove_spec::xcove::Keep;

use super::{Failure, bytes, open_all, short};

/// `keep` as the store's policy.
pub(super) fn policy(keep: &Keep) -> Policy {
    match keep {
        Keep::Last(n) => Policy {
            last: Some(*n),
            ..Policy::default()
        },
        Keep::Policy(p) => Policy {
            last: p.last,
            hourly: p.hourly,
            daily: p.daily,
            weekly: p.weekly,
            monthly: p.monthly,
            yearly: p.yearly,
        },
    }
}

/// A policy in words: `last 2`, `daily 7, weekly 4`.
fn describe(p: &Policy) -> String {
    let parts: Vec<String> = [
        ("last", p.last),
        ("hourly", p.hourly),
        ("daily", p.daily),
        ("weekly", p.weekly),
        ("monthly", p.monthly),
        ("yearly", p.yearly),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|n| format!("{k} {n}")))
    .collect();
    if parts.is_empty() {
        "nothing set: all".into()
    } else {
        parts.join(", ")
    }
}

/// The `keep` of `service`, if it has one.
pub(super) fn keep_of(project: &Project, service: &str) -> Option<Keep> {
    super::method::spec(project, service)?.keep.clone()
}

fn environment(project: &Project) -> String {
    project
        .app
        .x_cove
        .env
        .clone()
        .unwrap_or_else(|| "default".into())
}

/// What `keep` decides for `service`'s backups in `store`.
fn plan(
    project: &Project,
    store: &Store,
    service: &str,
    keep: &Keep,
    just_taken: Option<&str>,
) -> Result<Vec<Planned>, Failure> {
    let tz = jiff::tz::TimeZone::system();
    Ok(store.retention(
        &project.app.name,
        &environment(project),
        service,
        &policy(keep),
        just_taken,
        &tz,
    )?)
}

/// Applies `service`'s `keep` after the backup `just_taken`: the ids
/// removed (their data stays until [`prune`]).
pub(super) fn after_backup(
    project: &Project,
    store: &Store,
    service: &str,
    just_taken: &str,
) -> Result<Vec<String>, Failure> {
    let Some(keep) = keep_of(project, service) else {
        return Ok(Vec::new());
    };
    let planned = plan(project, store, service, &keep, Some(just_taken))?;
    let gone: Vec<String> = planned
        .iter()
        .filter(|p| p.reasons.is_empty())
        .map(|p| p.backup.id.clone())
        .collect();
    if gone.is_empty() {
        return Ok(gone);
    }
    store.forget(&gone)?;
    let shown: Vec<&str> = gone.iter().map(|id| short(id)).collect();
    eprintln!(
        "cove: {service}: keep ({}) removed {} backup(s): {}",
        describe(&policy(&keep)),
        gone.len(),
        shown.join(", ")
    );
    Ok(gone)
}

/// Prunes the repository: says what it freed.
pub(super) fn prune(store: &Store) -> Result<(), Failure> {
    let p = store.prune()?;
    eprintln!(
        "cove: pruned {}: {} pack(s) removed, {} freed ({} of data left)",
        store.dir().display(),
        p.packs,
        bytes(p.bytes_before.saturating_sub(p.bytes_after)),
        bytes(p.bytes_after)
    );
    Ok(())
}

/// `cove backup forget [SERVICE...] [--dry-run]`: each service's `keep`
/// applied now; what is removed and kept, and why, on stdout; then a
/// prune (which also removes what a backup killed while storing left).
pub(super) fn forget(
    project: &Project,
    only: Option<&str>,
    services: &[String],
    dry_run: bool,
) -> Result<(), Failure> {
    let services: Vec<String> = if services.is_empty() {
        project
            .app
            .services
            .keys()
            .filter(|s| keep_of(project, s).is_some())
            .cloned()
            .collect()
    } else {
        for s in services {
            if !project.app.services.contains_key(s) {
                return Err(Failure::new(format!("no such service `{s}`"))
                    .hint(project.app.services_hint()));
            }
            if keep_of(project, s).is_none() {
                return Err(Failure::new(format!(
                    "service `{s}` has no `x-cove.backup.keep`: no policy says which of its backups to remove"
                ))
                .hint("e.g. `x-cove: {backup: {keep: 7}}` or `keep: {daily: 7, weekly: 4}`"));
            }
        }
        services.to_vec()
    };
    if services.is_empty() {
        return Err(Failure::new(
            "no service has `x-cove.backup.keep`: nothing says which backups to remove",
        )
        .hint("e.g. `x-cove: {backup: {keep: 7}}` or `keep: {daily: 7, weekly: 4}`"));
    }
    let opened = open_all(project, only)?;
    opened.tell_failed();
    for store in &opened.stores {
        let mut gone = Vec::new();
        for service in &services {
            let keep = keep_of(project, service).expect("filtered above");
            let planned = plan(project, store, service, &keep, None)?;
            let removed = planned.iter().filter(|p| p.reasons.is_empty()).count();
            println!(
                "{service} in `{}`: keep {} ({}), remove {removed}{}",
                store.name(),
                planned.len() - removed,
                describe(&policy(&keep)),
                if dry_run {
                    " (dry run: nothing removed)"
                } else {
                    ""
                }
            );
            for p in &planned {
                let why: Vec<&str> = p.reasons.iter().map(|r| r.as_str()).collect();
                println!(
                    "  {:<7} {:<10} {}  {}",
                    if why.is_empty() { "remove" } else { "keep" },
                    short(&p.backup.id),
                    p.backup.time,
                    why.join(", ")
                );
                if why.is_empty() {
                    gone.push(p.backup.id.clone());
                }
            }
        }
        if dry_run {
            continue;
        }
        if !gone.is_empty() {
            store.forget(&gone)?;
        }
        prune(store)?;
    }
    opened.result()
}
