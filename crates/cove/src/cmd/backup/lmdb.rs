//! `lmdb`: an LMDB environment copied by LMDB's own copy function
//! (`mdb_copy` of Debian's `lmdb-utils`, to standard output) while the
//! service runs: a read transaction, so the copy is consistent and writers
//! are not stopped. (The workspace's `heed` opens environments through an
//! `unsafe` memory map, which this crate forbids.) The environment: the
//! one path of `x-cove.backup.paths` (a directory holding `data.mdb`, or
//! an environment file opened with `MDB_NOSUBDIR`), else the replica's
//! data directory.
//!
//! Restore: the service stopped, `data.mdb` kept aside as
//! `data.mdb.before-restore-<unix time>`, the copy put in its place, the
//! stale lock file removed, the service started and waited for.

use std::path::{Path, PathBuf};

use cove_backup::{Dump, Meta};
use cove_daemon::api::ExecTarget;
use cove_spec::Project;

use super::lifecycle::{self, keep_aside};
use super::{Failure, files, path_env};

/// The environment's data file and lock file, and whether it is a
/// directory environment.
fn environment(project: &Project, t: &ExecTarget) -> Result<(PathBuf, PathBuf, bool), Failure> {
    let paths = files::paths(project, t)?;
    let [path] = paths.as_slice() else {
        return Err(Failure::new(format!(
            "service `{}`: `method: lmdb` takes one environment, and `x-cove.backup.paths` lists {}",
            t.service,
            paths.len()
        ))
        .hint("give one path: the environment's directory (or its data file)"));
    };
    if path.is_dir() {
        let data = path.join("data.mdb");
        if !data.is_file() {
            return Err(Failure::new(format!(
                "service `{}`: {} holds no LMDB environment (no data.mdb)",
                t.service,
                path.display()
            ))
            .hint("set `x-cove.backup.paths` to the environment's directory"));
        }
        Ok((data, path.join("lock.mdb"), true))
    } else if path.is_file() {
        let mut lock = path.as_os_str().to_os_string();
        lock.push("-lock");
        Ok((path.clone(), PathBuf::from(lock), false))
    } else {
        Err(Failure::new(format!(
            "service `{}`: {} does not exist",
            t.service,
            path.display()
        )))
    }
}

pub fn backup(
    project: &Project,
    meta: &Meta,
    t: &ExecTarget,
    scratch: &Path,
) -> Result<Dump, Failure> {
    let (data, _, subdir) = environment(project, t)?;
    let mut argv = vec!["mdb_copy".to_string()];
    let src = if subdir {
        data.parent().unwrap_or(Path::new("/")).to_path_buf()
    } else {
        argv.push("-n".into());
        data
    };
    argv.push(src.display().to_string());
    Ok(cove_backup::dump_command(
        meta,
        &argv,
        &[path_env()],
        scratch,
    )?)
}

pub fn restore(project: &Project, t: &ExecTarget, dump: &Path) -> Result<(), Failure> {
    let (data, lock, _) = environment(project, t)?;
    lifecycle::stop(project, t)?;
    eprintln!("cove: {} stopped for the restore", t.service);
    let put = (|| -> Result<(), Failure> {
        let owner = files::owner_of(&data);
        let tmp = data.with_extension("mdb.restoring");
        fs_err::copy(dump, &tmp).map_err(|e| Failure::new(e.to_string()))?;
        if let Some(kept) = keep_aside(&data)? {
            eprintln!("cove: the data file it had is kept as {}", kept.display());
        }
        fs_err::rename(&tmp, &data).map_err(|e| Failure::new(e.to_string()))?;
        if let Some((uid, gid)) = owner {
            files::chown_tree(&data, uid, gid)?;
        }
        // Readers' slots of the stopped service: nobody holds them.
        if lock.exists() {
            fs_err::remove_file(&lock).map_err(|e| Failure::new(e.to_string()))?;
        }
        Ok(())
    })();
    let started = lifecycle::start(project, &t.service);
    put?;
    started?;
    eprintln!("cove: {} started again and healthy", t.service);
    Ok(())
}
