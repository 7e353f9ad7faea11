//! A service's artifact: what its command runs, identified by a digest, and
//! kept so a rollback never needs a rebuild.
//!
//! The digest covers every argument of the command that is a relative path
//! to a regular file (from the service's working directory): the binary of
//! `target/release/api`, the script of `python3 app.py` — the project's own
//! files, not installed programs (`/usr/bin/redis-server`, found by
//! absolute path or on the `PATH`, which may load files beside them). When
//! the program itself (the first argument) is such a file, a copy is kept under
//! `<dir>/<service>/<digest>/` and replicas run the copy: a rebuild in
//! place does not change what runs, and a rollback runs the old copy. The
//! last `keep` copies of a service are kept (and any in use; `x-cove:
//! {keep_artifacts: N}`, default [`KEEP`]).

use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};

/// Copies kept per service by default.
pub const KEEP: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `sha256:` and 16 hex digits of the files the command names; empty
    /// when it names none.
    pub digest: String,
    /// The kept copy of the program, when the program is a file.
    pub program: Option<PathBuf>,
}

fn file_of(arg: &str, workdir: &Path) -> Option<PathBuf> {
    if arg.starts_with('-') || arg.is_empty() || Path::new(arg).is_absolute() {
        return None;
    }
    let path = workdir.join(arg);
    path.is_file().then_some(path)
}

/// The files of the project `argv` names (relative paths to regular files
/// from `workdir`): what its digest covers.
pub fn files_named(argv: &[String], workdir: &Path) -> Vec<PathBuf> {
    argv.iter().filter_map(|a| file_of(a, workdir)).collect()
}

/// Where and how many copies of programs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub dir: PathBuf,
    pub copies: usize,
}

/// The digest of what `argv` runs from `workdir`, and (with `keep`) a kept
/// copy of the program under `<keep.dir>/<service>/`.
pub fn capture(
    service: &str,
    argv: &[String],
    workdir: &Path,
    keep: Option<&Keep>,
    in_use: &[PathBuf],
) -> Result<Artifact, String> {
    let files = files_named(argv, workdir);
    if files.is_empty() {
        return Ok(Artifact {
            digest: String::new(),
            program: None,
        });
    }
    let mut ctx = Context::new(&SHA256);
    for f in &files {
        let bytes = fs_err::read(f).map_err(|e| e.to_string())?;
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(&bytes);
    }
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let digest = format!("sha256:{hex}");
    let program = match (keep, argv.first().and_then(|a| file_of(a, workdir))) {
        (Some(keep), Some(program)) => {
            let dir = keep.dir.join(service).join(&hex);
            let name = program.file_name().unwrap_or_default();
            let copy = dir.join(name);
            if !copy.is_file() {
                fs_err::create_dir_all(&dir).map_err(|e| e.to_string())?;
                // Copied beside, then renamed: never a half-written program.
                let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
                fs_err::copy(&program, &partial).map_err(|e| e.to_string())?;
                fs_err::rename(&partial, &copy).map_err(|e| e.to_string())?;
            }
            // Touch it: the newest are kept.
            let _ = fs_err::File::open(&copy)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            prune(&keep.dir.join(service), &dir, in_use, keep.copies.max(1));
            Some(copy)
        }
        _ => None,
    };
    Ok(Artifact { digest, program })
}

/// Keeps the newest `copies` of a service, `current` and those in use.
fn prune(service_dir: &Path, current: &Path, in_use: &[PathBuf], copies: usize) {
    let Ok(entries) = fs_err::read_dir(service_dir) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let newest = fs_err::read_dir(e.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|f| f.metadata().ok()?.modified().ok())
                .max()
                .unwrap_or(std::time::UNIX_EPOCH);
            (newest, e.path())
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    for (_, dir) in dirs.into_iter().skip(copies) {
        if dir == current || in_use.iter().any(|p| p.starts_with(&dir)) {
            continue;
        }
        let _ = fs_err::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_the_files_and_copies_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        fs_err::create_dir_all(work.join("bin")).unwrap();
        fs_err::write(work.join("bin/app"), b"v1").unwrap();
        let keep = Keep {
            dir: dir.path().join("keep"),
            copies: 3,
        };
        let argv = vec!["bin/app".to_string(), "--port".into(), "80".into()];
        let a = capture("api", &argv, &work, Some(&keep), &[]).unwrap();
        assert!(
            a.digest.starts_with("sha256:") && a.digest.len() == 23,
            "{a:?}"
        );
        let copy = a.program.clone().unwrap();
        assert_eq!(fs_err::read(&copy).unwrap(), b"v1");
        fs_err::write(work.join("bin/app"), b"v2").unwrap();
        let b = capture("api", &argv, &work, Some(&keep), &[]).unwrap();
        assert_ne!(a.digest, b.digest);
        assert_eq!(fs_err::read(&copy).unwrap(), b"v1", "the old copy stays");
        // Scripts count; commands on the PATH do not.
        fs_err::write(work.join("app.py"), b"print(1)").unwrap();
        let py = vec!["python3".to_string(), "app.py".into()];
        let c = capture("py", &py, &work, Some(&keep), &[]).unwrap();
        assert!(!c.digest.is_empty() && c.program.is_none());
        let none = capture("x", &["sleep".into(), "9".into()], &work, Some(&keep), &[]).unwrap();
        assert_eq!(none.digest, "");
        let abs = work.join("bin/app").display().to_string();
        let installed = capture("x", &[abs], &work, Some(&keep), &[]).unwrap();
        assert_eq!(
            installed.digest, "",
            "absolute paths are installed programs"
        );
        // Only the newest KEEP copies stay, and those in use.
        for v in 3..12 {
            fs_err::write(work.join("bin/app"), format!("v{v}")).unwrap();
            capture(
                "api",
                &argv,
                &work,
                Some(&keep),
                std::slice::from_ref(&copy),
            )
            .unwrap();
        }
        let left = fs_err::read_dir(keep.dir.join("api")).unwrap().count();
        assert_eq!(left, 3 + 1, "the 3 newest plus the one in use");
        assert!(copy.is_file());
    }
}
