//! The scratch directory where dumps wait to be stored: each backup's is a
//! private directory `.cove-dump-PID-RANDOM` (PID: the process storing it),
//! removed once stored or failed. A process killed meanwhile (SIGKILL, a
//! crash, the host's power) leaves its directory, and the dump in it, behind:
//! the next backup removes every one whose process is gone. One whose
//! process still runs (another backup, now) is left alone.

use std::path::{Path, PathBuf};

const PREFIX: &str = ".cove-dump-";

/// The prefix of this process's dump directories.
pub(crate) fn prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// The process a dump directory's name says made it.
fn owner(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split_once('-')?.0.parse().ok()
}

/// Removes the dump directories in `scratch` whose process is gone; the
/// paths removed. What cannot be read or removed is left (said by the
/// caller's next failure, if it matters).
pub fn remove_leftovers(scratch: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs_err::read_dir(scratch) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if fs_err::remove_dir_all(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_read_from_the_name() {
        assert_eq!(owner(".cove-dump-4242-AbC123"), Some(4242));
        assert_eq!(owner(".cove-dump-AbC123"), None);
        assert_eq!(owner("other"), None);
    }

    #[test]
    fn a_dead_processs_dump_goes_and_a_live_ones_stays() {
        let scratch = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (reuse within this
        // test is not a concern: the directory would merely stay).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let gone = scratch.path().join(format!("{PREFIX}{dead}-xyz"));
        fs_err::create_dir(&gone).unwrap();
        fs_err::write(gone.join("db.pg_dump"), b"partial").unwrap();
        let live = scratch.path().join(format!("{}abc", prefix()));
        fs_err::create_dir(&live).unwrap();
        let other = scratch.path().join(format!("{PREFIX}old"));
        fs_err::create_dir(&other).unwrap();
        let removed = remove_leftovers(scratch.path());
        assert_eq!(removed, vec![gone.clone()]);
        assert!(!gone.exists() && live.exists() && other.exists());
    }
}
