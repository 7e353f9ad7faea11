//! The scratch directory's dumps: each backup writes its dump into a
//! private directory named after the process writing it
//! (`.cove-dump-PID.START-XXXXXX`, START being the process's start time in
//! clock ticks since boot, so a reused pid is not taken for it). A backup
//! killed before it removed its directory leaves it behind;
//! [`clean`] (run at the start of every backup) removes those whose
//! process is gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The prefix of this process's dump directories.
pub(crate) fn prefix() -> String {
    let pid = std::process::id();
    format!(".cove-dump-{pid}.{}-", start_of(pid).unwrap_or(0))
}

/// A process's start time (`/proc/PID/stat`'s 22nd field), if it runs.
fn start_of(pid: u32) -> Option<u64> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (2nd field) may hold spaces: count after its `)`.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Dumps older than this, of a cove that did not name its directories
/// after itself (before this module), are taken as left behind.
const UNNAMED_AGE: Duration = Duration::from_secs(24 * 3600);

/// Removes the dump directories in `scratch` whose process is gone; the
/// ones removed.
pub fn clean(scratch: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs_err::read_dir(scratch) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(".cove-dump-") else {
            continue;
        };
        let owner = rest.split_once('-').and_then(|(owner, _)| {
            let (pid, start) = owner.split_once('.')?;
            Some((pid.parse::<u32>().ok()?, start.parse::<u64>().ok()?))
        });
        let gone = match owner {
            Some((pid, start)) => start_of(pid) != Some(start),
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > UNNAMED_AGE),
        };
        if gone && fs_err::remove_dir_all(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_of_a_process_that_is_gone_is_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(format!("{}abc123", prefix()));
        fs_err::create_dir_all(&mine).unwrap();
        // A process that ran and exited: its pid is free (or another's,
        // with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_of(pid).unwrap_or(1);
        child.wait().unwrap();
        let dead = dir.path().join(format!(".cove-dump-{pid}.{start}-xyz789"));
        fs_err::create_dir_all(&dead).unwrap();
        fs_err::write(dead.join("db.pg_dump"), b"half a dump").unwrap();
        // Ours, with a start time that is not ours: a recycled pid.
        let recycled = dir
            .path()
            .join(format!(".cove-dump-{}.1-qqq", std::process::id()));
        fs_err::create_dir_all(&recycled).unwrap();
        let other = dir.path().join("unrelated");
        fs_err::create_dir_all(&other).unwrap();
        let mut removed = clean(dir.path());
        removed.sort();
        let mut expected = vec![dead.clone(), recycled.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(mine.is_dir() && other.is_dir());
        assert!(!dead.exists() && !recycled.exists());
    }
}
