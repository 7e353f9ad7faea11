//! `files`: the service's files stored as a tree in the snapshot (so
//! `restic restore` gives them back as files), read while the service is
//! paused (SIGSTOP to its replicas' process groups through the daemon, as
//! `cove pause`; SIGCONT after) or stopped (`quiesce: stop`; started again
//! and waited for until healthy). Which paths: `x-cove.backup.paths`
//! (relative to the working directory; `volume:NAME` is the replica's data
//! directory, where natively a named volume lives), else the replica's data
//! directory (`COVE_DATA`). Replica 1's.
//!
//! Restore: the service stopped, the backup's tree restored beside each
//! path (same file system: renames), each path kept aside as
//! `<path>.before-restore-<unix time>` and the restored one put in its
//! place, the service started and waited for.

use std::path::{Path, PathBuf};

use cove_backup::{Backup, Meta, Store};
use cove_daemon::api::ExecTarget;
use cove_spec::Project;
use cove_spec::xcove::Quiesce;

use super::lifecycle::{self, keep_aside};
use super::{Failure, method};

/// The paths a `files` (or `lmdb`) backup of `t`'s service takes.
pub fn paths(project: &Project, t: &ExecTarget) -> Result<Vec<PathBuf>, Failure> {
    let service = &t.service;
    let data = t
        .env
        .iter()
        .find(|(k, _)| k == "COVE_DATA")
        .map(|(_, v)| PathBuf::from(v));
    let given = method::spec(project, service).and_then(|b| b.paths.clone());
    let Some(given) = given else {
        return data.map(|d| vec![d]).ok_or_else(|| {
            Failure::new(format!(
                "service `{service}` has no data directory of cove's (only a recipe's replicas have one) and no `x-cove.backup.paths`"
            ))
            .hint("list what to take in `x-cove.backup.paths` (relative to its working directory)")
        });
    };
    if given.is_empty() {
        return Err(Failure::new(format!(
            "service `{service}`: `x-cove.backup.paths` is empty"
        ))
        .hint("list at least one path, or drop `paths` to take its data directory"));
    }
    let svc = project.app.services.get(service);
    given
        .iter()
        .map(|p| match p.strip_prefix("volume:") {
            Some(name) => {
                let mounted = svc.is_some_and(|s| {
                    s.volumes
                        .iter()
                        .any(|m| m.source.as_deref() == Some(name))
                });
                if !mounted {
                    return Err(Failure::new(format!(
                        "service `{service}`: `x-cove.backup.paths` names `volume:{name}`, which it does not mount"
                    ))
                    .hint("name one of its `volumes:` (its source)"));
                }
                data.clone().ok_or_else(|| {
                    Failure::new(format!(
                        "service `{service}`: natively, `volume:{name}` is a recipe's data directory, and `{service}` runs no recipe"
                    ))
                })
            }
            None => Ok(t.workdir.join(p)),
        })
        .collect()
}

/// Backs up `t`'s service's files with it paused or stopped.
pub fn backup(
    project: &Project,
    stores: &[&Store],
    meta: &Meta,
    t: &ExecTarget,
) -> Result<Vec<Result<Backup, Failure>>, Failure> {
    let paths = paths(project, t)?;
    let service = &t.service;
    match method::quiesce(project, service) {
        Quiesce::Pause => {
            let paused = lifecycle::pause(project, service)?;
            eprintln!("cove: {service} paused (SIGSTOP) while its files are read");
            let b = each(stores, meta, &paths);
            paused.end()?;
            eprintln!("cove: {service} resumed (SIGCONT)");
            Ok(b)
        }
        Quiesce::Stop => {
            lifecycle::stop(project, t)?;
            eprintln!("cove: {service} stopped while its files are read (`quiesce: stop`)");
            let b = each(stores, meta, &paths);
            lifecycle::start(project, service)?;
            eprintln!("cove: {service} started again and healthy");
            Ok(b)
        }
    }
}

/// A tree (`paths`) stored to each target in turn: for `files`, the
/// service quiet meanwhile; for the physical methods, their finished copy.
pub(super) fn each(
    stores: &[&Store],
    meta: &Meta,
    paths: &[PathBuf],
) -> Vec<Result<Backup, Failure>> {
    stores
        .iter()
        .map(|s| s.backup_tree(meta, paths).map_err(Failure::from))
        .collect()
}

/// Restores backup `id` (a tree) over `dests`: the whole tree is restored
/// first (into a directory beside the first destination), then, with the
/// service stopped by the caller, each destination is kept aside and
/// replaced. `dests` are where the snapshot's paths go: for a snapshot of
/// one directory (`/<service>.<method>`), `dests[0]`; otherwise each path
/// to itself.
pub fn put_back(store: &Store, id: &str, meta: &Meta, dests: &[PathBuf]) -> Result<(), Failure> {
    let first = dests
        .first()
        .ok_or_else(|| Failure::new("no path to restore to"))?;
    let parent = first.parent().unwrap_or(Path::new("/"));
    fs_err::create_dir_all(parent).map_err(|e| Failure::new(e.to_string()))?;
    let staging = tempfile::Builder::new()
        .prefix(".cove-restore-")
        .tempdir_in(parent)
        .map_err(|e| Failure::new(format!("a directory in {}: {e}", parent.display())))?;
    let stored = store.restore_tree(id, staging.path())?;
    let single = format!("/{}", meta.file_name());
    let moves: Vec<(PathBuf, PathBuf)> = if stored == [single.clone()] {
        if dests.len() != 1 {
            return Err(Failure::new(format!(
                "the backup is of one directory, and `{}` now lists {} paths",
                meta.service,
                dests.len()
            ))
            .hint("restore with the `x-cove.backup.paths` the backup was made with"));
        }
        vec![(staging.path().join(&single[1..]), first.clone())]
    } else {
        stored
            .iter()
            .map(|p| {
                (
                    staging.path().join(p.trim_start_matches('/')),
                    PathBuf::from(p),
                )
            })
            .collect()
    };
    for (from, to) in &moves {
        let owner = owner_of(to);
        if let Some(kept) = keep_aside(to)? {
            eprintln!(
                "cove: what {} held is kept as {}",
                to.display(),
                kept.display()
            );
        }
        fs_err::rename(from, to).map_err(|e| {
            Failure::new(format!("cannot put the restored files in place: {e}"))
                .hint("the restored tree is beside it; a path on another file system than its parent is not supported")
        })?;
        if let Some((uid, gid)) = owner {
            chown_tree(to, uid, gid)?;
        }
    }
    Ok(())
}

/// The owner of `path`, when it exists and cove runs as root (so the
/// restored tree goes back to the server's user).
pub fn owner_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let m = fs_err::symlink_metadata(path).ok()?;
    Some((m.uid(), m.gid()))
}

/// `chown -R UID:GID path` (symlinks themselves, not what they point at).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Failure> {
    let err = |e: std::io::Error| Failure::new(format!("chown {}: {e}", path.display()));
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(err)?;
    if fs_err::symlink_metadata(path).map_err(err)?.is_dir() {
        for e in fs_err::read_dir(path).map_err(err)? {
            chown_tree(&e.map_err(err)?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Restores a `files` backup of `t`'s service.
pub fn restore(
    project: &Project,
    store: &Store,
    id: &str,
    meta: &Meta,
    t: &ExecTarget,
) -> Result<(), Failure> {
    let dests = paths(project, t)?;
    lifecycle::stop(project, t)?;
    eprintln!("cove: {} stopped for the restore", t.service);
    let put = put_back(store, id, meta, &dests);
    let started = lifecycle::start(project, &t.service);
    put?;
    started?;
    eprintln!("cove: {} started again and healthy", t.service);
    Ok(())
}
