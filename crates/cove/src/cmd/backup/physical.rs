//! Whole-cluster physical backups, stored as a directory tree:
//!
//! - `mariabackup` (Debian's `mariadb-backup`, the server's own version):
//!   `mariabackup --backup` of the running server into a private scratch
//!   directory (it reads the data directory, `COVE_DATA/db`, and asks the
//!   server over TCP for its locks and binlog position), stored as
//!   `/<service>.mariabackup`. Restore: the tree restored beside the data
//!   directory, `mariabackup --prepare` on it (the redo log applied), the
//!   service stopped, `db` kept aside (`db.before-restore-<unix time>`),
//!   the prepared directory put in its place (owned as `db` was), started,
//!   waited for.
//! - `pg_basebackup` (plain format, WAL streamed into it: a directory that
//!   starts as a cluster), over a replication connection as
//!   `POSTGRES_USER` (a superuser: initdb's `pg_hba.conf` lets it replicate
//!   from loopback), stored as `/<service>.pg_basebackup`. Restore: the
//!   service stopped, `COVE_DATA/pg` kept aside, the tree put in its place
//!   (owned as `pg` was), started (PostgreSQL replays the WAL in the
//!   backup), waited for.
//!
//! Credentials go in the same private files as the logical methods'
//! (`--defaults-extra-file`, `PGPASSFILE`), never on a command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cove_backup::{Backup, Meta, Store};
use cove_daemon::api::ExecTarget;
use cove_spec::Project;

use super::lifecycle::{self};
use super::{Failure, Maria, Pg, files, path_env};

fn data_dir(t: &ExecTarget, sub: &str) -> Result<PathBuf, Failure> {
    t.env
        .iter()
        .find(|(k, _)| k == "COVE_DATA")
        .map(|(_, v)| PathBuf::from(v).join(sub))
        .ok_or_else(|| {
            Failure::new(format!(
                "the replica of `{}` has no data directory (COVE_DATA)",
                t.service
            ))
        })
}

fn run(mut cmd: Command, name: &str) -> Result<(), Failure> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Failure::new(format!("cannot run `{name}`: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // The tool's last lines say why.
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Failure::new(format!(
            "`{name}` failed ({}), no backup was kept: {}",
            out.status,
            tail.join("\n")
        )));
    }
    Ok(())
}

/// A private scratch directory, and the directory in it named as the
/// backup is stored.
fn scratch_dir(scratch: &Path, meta: &Meta) -> Result<(tempfile::TempDir, PathBuf), Failure> {
    fs_err::create_dir_all(scratch).map_err(|e| Failure::new(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix(".cove-tree-")
        .tempdir_in(scratch)
        .map_err(|e| Failure::new(format!("a directory in {}: {e}", scratch.display())))?;
    let inner = dir.path().join(meta.file_name());
    Ok((dir, inner))
}

pub fn mariabackup(
    stores: &[&Store],
    meta: &Meta,
    t: &ExecTarget,
    scratch: &Path,
) -> Result<Vec<Result<Backup, Failure>>, Failure> {
    let m = Maria::of(t)?;
    let datadir = data_dir(t, "db")?;
    let (_dir, target) = scratch_dir(scratch, meta)?;
    // As root the server runs in a mount namespace of its own, its data
    // directory bound at NS_DATA, and says so when mariabackup asks: it
    // runs in one like it, so the path the server gives is the files'.
    let in_ns = rustix::process::geteuid().is_root();
    let mut cmd = if in_ns {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(datadir.parent().unwrap_or(Path::new("/")))
            .arg(cove_runtime::recipe::NS_DATA)
            .arg("mariabackup");
        c
    } else {
        Command::new("mariabackup")
    };
    let seen = if in_ns {
        Path::new(cove_runtime::recipe::NS_DATA).join("db")
    } else {
        datadir
    };
    cmd.arg(m.first_arg())
        .arg("--backup")
        .arg(format!("--datadir={}", seen.display()))
        .arg(format!("--target-dir={}", target.display()))
        .env_clear()
        .envs([path_env()]);
    run(cmd, "mariabackup --backup")?;
    // The finished copy, stored to each target.
    Ok(super::files::each(
        stores,
        meta,
        std::slice::from_ref(&target),
    ))
}

pub fn pg_basebackup(
    stores: &[&Store],
    meta: &Meta,
    t: &ExecTarget,
    scratch: &Path,
) -> Result<Vec<Result<Backup, Failure>>, Failure> {
    let pg = Pg::of(t)?;
    let (_dir, target) = scratch_dir(scratch, meta)?;
    let mut cmd = Command::new("pg_basebackup");
    cmd.args([
        "-h",
        &pg.host,
        "-p",
        &pg.port,
        "-U",
        &pg.user,
        "--no-password",
    ])
    .args(["-Fp", "-Xstream", "--checkpoint=fast", "-D"])
    .arg(&target)
    .env_clear()
    .envs(pg.env());
    run(cmd, "pg_basebackup")?;
    // The finished copy, stored to each target.
    Ok(super::files::each(
        stores,
        meta,
        std::slice::from_ref(&target),
    ))
}

/// Restores a `mariabackup` or `pg_basebackup` backup into `COVE_DATA/SUB`
/// (`db`, `pg`), `prepare` run on the restored tree first.
fn restore_into(
    project: &Project,
    store: &Store,
    id: &str,
    meta: &Meta,
    t: &ExecTarget,
    sub: &str,
    prepare: impl FnOnce(&Path) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let dest = data_dir(t, sub)?;
    let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
    // Restored and prepared while the service still runs: it is stopped
    // only for the swap.
    let staging = tempfile::Builder::new()
        .prefix(".cove-restore-")
        .tempdir_in(&parent)
        .map_err(|e| Failure::new(format!("a directory in {}: {e}", parent.display())))?;
    let stored = store.restore_tree(id, staging.path())?;
    let single = format!("/{}", meta.file_name());
    if stored != [single.clone()] {
        return Err(Failure::new(format!(
            "backup {id} does not hold {single}: not a {} backup",
            meta.method
        )));
    }
    let restored = staging.path().join(&single[1..]);
    prepare(&restored)?;
    let owner = files::owner_of(&dest);
    lifecycle::stop(project, t)?;
    eprintln!("cove: {} stopped for the restore", t.service);
    let put = (|| -> Result<(), Failure> {
        if let Some(kept) = lifecycle::keep_aside(&dest)? {
            eprintln!(
                "cove: the data directory it had is kept as {}",
                kept.display()
            );
        }
        fs_err::rename(&restored, &dest).map_err(|e| Failure::new(e.to_string()))?;
        if let Some((uid, gid)) = owner {
            files::chown_tree(&dest, uid, gid)?;
        }
        Ok(())
    })();
    let started = lifecycle::start(project, &t.service);
    put?;
    started?;
    eprintln!("cove: {} started again and healthy", t.service);
    Ok(())
}

pub fn restore_mariabackup(
    project: &Project,
    store: &Store,
    id: &str,
    meta: &Meta,
    t: &ExecTarget,
) -> Result<(), Failure> {
    restore_into(project, store, id, meta, t, "db", |dir| {
        let mut cmd = Command::new("mariabackup");
        cmd.arg("--prepare")
            .arg(format!("--target-dir={}", dir.display()))
            .env_clear()
            .envs([path_env()]);
        run(cmd, "mariabackup --prepare").map_err(|f| {
            Failure::new(
                f.message
                    .replace("no backup was kept", "nothing was changed"),
            )
        })?;
        eprintln!("cove: the backup is prepared (`mariabackup --prepare`)");
        Ok(())
    })
}

pub fn restore_pg_basebackup(
    project: &Project,
    store: &Store,
    id: &str,
    meta: &Meta,
    t: &ExecTarget,
) -> Result<(), Failure> {
    restore_into(project, store, id, meta, t, "pg", |dir| {
        if !dir.join("PG_VERSION").is_file() {
            return Err(Failure::new(format!(
                "backup {id} holds no PostgreSQL cluster (no PG_VERSION)"
            )));
        }
        Ok(())
    })
}
