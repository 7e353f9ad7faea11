//! `cove cp [-a] [-L] [--index N] SERVICE:SRC DEST | SRC SERVICE:DEST`:
//! files between a running replica and this machine, as `docker compose
//! cp`. The daemon says where the replica runs (`GET /v1/exec`). In a
//! container: the engine's archive endpoint (tar streams; `-a` keeps the
//! owners). Natively the replica's files are this machine's: a plain copy,
//! `SERVICE:PATH` relative to the service's working directory (`-a` keeps
//! the owners, as root). As `cp -r`: a directory is copied whole; into a
//! destination that is a directory, else as the destination.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cove_daemon::api::ExecTarget;
use cove_runtime::docker::Engine;

use crate::cli::{CpArgs, ProjectArgs};
use crate::daemon;
use crate::output::stderr_style;

/// One side of the copy.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Here(PathBuf),
    Replica { service: String, path: String },
}

/// `SERVICE:PATH`, or a path here: one that starts with `/` or `.`, has
/// no `:`, or has a `/` before its first `:`.
fn side(text: &str) -> Side {
    match text.split_once(':') {
        Some((service, path))
            if !service.is_empty()
                && !service.contains('/')
                && !text.starts_with('.')
                && !text.starts_with('/') =>
        {
            Side::Replica {
                service: service.to_string(),
                path: path.to_string(),
            }
        }
        _ => Side::Here(PathBuf::from(text)),
    }
}

pub fn run(project_args: &ProjectArgs, args: &CpArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let fail = |what: String, hint: &str| {
        eprintln!("{}error{}: {what}", style.red, style.reset);
        eprintln!("  = {}hint{}: {hint}", style.cyan, style.reset);
        Ok(ExitCode::from(2))
    };
    let (service, from_replica, replica_path, here) = match (side(&args.src), side(&args.dest)) {
        (Side::Replica { service, path }, Side::Here(here)) => (service, true, path, here),
        (Side::Here(here), Side::Replica { service, path }) => (service, false, path, here),
        (Side::Here(_), Side::Here(_)) => {
            return fail(
                "neither path names a service".into(),
                "write one side as SERVICE:PATH, e.g. `cove cp api:/app/log.txt .`",
            );
        }
        (Side::Replica { .. }, Side::Replica { .. }) => {
            return fail(
                "both paths name a service".into(),
                "copy to this machine first, then from it",
            );
        }
    };
    if replica_path.is_empty() {
        return fail(
            format!("no path after `{service}:`"),
            "write SERVICE:PATH, e.g. `api:data/seed.sql`",
        );
    }
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let client = daemon::find(&project)?;
    daemon::runtime()?.block_on(async {
        let path = format!("/v1/exec?service={service}&index={}", args.index.max(1));
        let target: ExecTarget = match client.get(&path).await {
            Ok(t) => t,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        let done = match &target.container {
            Some(name) => in_container(name, from_replica, &replica_path, &here, args).await,
            None => {
                let there = target.workdir.join(&replica_path);
                let (src, dest) = if from_replica {
                    (there, here.clone())
                } else {
                    (here.clone(), there)
                };
                copy_here(&src, &dest, args.archive, args.follow_link)
            }
        };
        match done {
            Ok(n) => {
                eprintln!(
                    "cove: copied {n} file(s) {} {}-{}",
                    if from_replica { "from" } else { "to" },
                    target.service,
                    target.replica
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{}error{}: {e:#}", style.red, style.reset);
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// Through the engine's archive endpoint; the number of entries copied.
async fn in_container(
    name: &str,
    from_replica: bool,
    path: &str,
    here: &Path,
    args: &CpArgs,
) -> anyhow::Result<usize> {
    let engine = Engine::connect().await.map_err(daemon::engine_error)?;
    let words = daemon::engine_error;
    if from_replica {
        let tar = engine.archive(name, path).await.map_err(words)?;
        let written = cove_runtime::docker::unpack_here(&tar, here, args.archive)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", here.display()))?;
        return Ok(written.len());
    }
    let src = if args.follow_link {
        fs_err::canonicalize(here)?
    } else {
        here.to_path_buf()
    };
    let base = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow::anyhow!("{} names no file", p.display()))
    };
    // Into a directory that is there (or one written `DIR/`), else as `path`.
    let into = path.ends_with('/') || engine.is_dir(name, path).await.map_err(words)? == Some(true);
    let (dir, entry) = if into {
        (path.to_string(), base(&src)?)
    } else {
        let p = Path::new(path);
        let parent = p
            .parent()
            .map(|d| d.display().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| ".".into());
        (parent, base(p)?)
    };
    let (tar, entries) = cove_runtime::docker::pack_here(&src, &entry)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", src.display()))?;
    engine
        .unpack(name, &dir, tar, args.archive)
        .await
        .map_err(words)?;
    Ok(entries)
}

/// A plain copy on this machine, as `cp -r` (`-a`: owners kept; `-L`:
/// a link given as `src` followed); the number of files and directories
/// copied.
fn copy_here(src: &Path, dest: &Path, owners: bool, follow: bool) -> anyhow::Result<usize> {
    let meta = if follow {
        fs_err::metadata(src)?
    } else {
        fs_err::symlink_metadata(src)?
    };
    let dest = if dest.is_dir() {
        dest.join(
            src.file_name()
                .ok_or_else(|| anyhow::anyhow!("{} names no file", src.display()))?,
        )
    } else {
        dest.to_path_buf()
    };
    if dest.starts_with(src) && meta.is_dir() {
        anyhow::bail!(
            "cannot copy {} into itself ({})",
            src.display(),
            dest.display()
        );
    }
    let mut n = 0;
    copy_entry(src, &dest, &meta, owners, &mut n)?;
    Ok(n)
}

fn copy_entry(
    src: &Path,
    dest: &Path,
    meta: &std::fs::Metadata,
    owners: bool,
    n: &mut usize,
) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if meta.is_dir() {
        fs_err::create_dir_all(dest)?;
        fs_err::set_permissions(dest, meta.permissions())?;
        for entry in fs_err::read_dir(src)? {
            let entry = entry?;
            let m = fs_err::symlink_metadata(entry.path())?;
            copy_entry(&entry.path(), &dest.join(entry.file_name()), &m, owners, n)?;
        }
    } else if meta.file_type().is_symlink() {
        let to = fs_err::read_link(src)?;
        let _ = fs_err::remove_file(dest);
        fs_err::os::unix::fs::symlink(&to, dest)?;
    } else {
        fs_err::copy(src, dest)?;
    }
    if owners {
        std::os::unix::fs::lchown(dest, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| anyhow::anyhow!("cannot keep the owner of {}: {e}", dest.display()))?;
    }
    *n += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_is_a_service_unless_it_reads_as_a_path() {
        assert_eq!(
            side("api:/app/x"),
            Side::Replica {
                service: "api".into(),
                path: "/app/x".into()
            }
        );
        assert_eq!(side("./a:b"), Side::Here("./a:b".into()));
        assert_eq!(side("/tmp/a:b"), Side::Here("/tmp/a:b".into()));
        assert_eq!(side("dir/a:b"), Side::Here("dir/a:b".into()));
        assert_eq!(side("plain"), Side::Here("plain".into()));
    }
}
