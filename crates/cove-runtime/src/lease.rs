//! Address leases: which of the 1,024 blocks of 4,096 addresses (in
//! 127.64.0.0/10 natively, 10.192.0.0/10 for containers; see
//! `plan::address`) a project's replicas take.
//!
//! A project's block is its own for as long as its state directory lives:
//! the daemon takes one at its first `up` ([`acquire`]) and writes it down
//! in the state directory (`lease`); planning reads it back ([`recorded`]).
//! Blocks are given out host-wide through a directory every user of the
//! host shares ([`dir`], sticky and writable by all, as /tmp is): one file
//! per block taken, created exclusively under a lock, naming the state
//! directory that holds it. A block whose holder's state directory no
//! longer records it (the directory is gone: a deleted checkout, a test's
//! temporary app) is free again, and every such lease is removed at the
//! next acquisition (by whoever may remove it). So two projects never
//! share addresses or a container network, whatever their names hash to,
//! and a project keeps its block (and the names of its container network
//! and volumes) across restarts and `down`.
//!
//! Before its first `up`, a project's planned addresses are the block its
//! name and directory hash to, the one [`acquire`] tries first.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// How many blocks there are.
pub const BLOCKS: u16 = 1024;

/// The file in a state directory that records its project's block.
pub const RECORD: &str = "lease";

/// The host-wide directory of leases: `COVE_LEASES`, else
/// `/var/tmp/cove-leases` (kept across reboots; a lease is touched at
/// every `up`, so an ageing cleaner of /var/tmp leaves it).
pub fn dir() -> PathBuf {
    std::env::var_os("COVE_LEASES")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp/cove-leases"), PathBuf::from)
}

/// The block recorded in `state_dir`, if its project has one.
pub fn recorded(state_dir: &Path) -> Option<u16> {
    let text = fs_err::read_to_string(state_dir.join(RECORD)).ok()?;
    text.trim().parse().ok().filter(|n| *n < BLOCKS)
}

/// The block of the project whose state directory is `state_dir`: the one
/// it recorded, else a free one (`preferred` first, then the next ones),
/// taken in the host-wide directory [`dir`] and recorded. Refused, with
/// the holder named, when another live project holds the recorded block.
pub fn acquire(state_dir: &Path, preferred: u16) -> io::Result<u16> {
    acquire_in(&dir(), state_dir, preferred)
}

/// [`acquire`] with the leases in `leases`.
pub fn acquire_in(leases: &Path, state_dir: &Path, preferred: u16) -> io::Result<u16> {
    crate::private::make_dir(state_dir)?;
    let holder = std::path::absolute(state_dir)?;
    open_dir(leases)?;
    let _lock = Lock::take(leases)?;
    if let Some(n) = recorded(state_dir) {
        return match holder_of(leases, n) {
            Some(h) if h == holder => {
                touch(&leases.join(name(n)));
                Ok(n)
            }
            Some(h) if is_live(&h, n) => Err(io::Error::other(format!(
                "the addresses of this project (block {n}) are leased to another project too, whose state is in {}; \
                 hint: stop one of them (`cove down` there), or remove {} here to take new addresses \
                 (its containers' network and volumes are named after the block)",
                h.display(),
                state_dir.join(RECORD).display()
            ))),
            _ => {
                take(leases, n, &holder)?;
                Ok(n)
            }
        };
    }
    sweep(leases);
    for i in 0..BLOCKS {
        let n = (preferred % BLOCKS + i) % BLOCKS;
        if let Some(h) = holder_of(leases, n)
            && (is_live(&h, n) || !remove(leases, n))
        {
            continue;
        }
        match take(leases, n, &holder) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        crate::private::write_atomically(&state_dir.join(RECORD), format!("{n}\n").as_bytes())?;
        return Ok(n);
    }
    Err(io::Error::other(format!(
        "all {BLOCKS} address blocks of this host are leased (in {}); \
         hint: `cove down --volumes` projects you no longer use, or remove their state directories",
        leases.display()
    )))
}

/// Removes every lease whose holder is gone (its state directory no longer
/// records the block) and that this user may remove. Without it, stale
/// leases (deleted checkouts, tests' temporary apps) would pile up until
/// every block had a file: this user would then still free them one at a
/// time, but another user, who may not remove them (the directory is
/// sticky) and cannot always tell a gone holder from a private one, would
/// find the host full.
fn sweep(leases: &Path) {
    for n in 0..BLOCKS {
        if let Some(h) = holder_of(leases, n)
            && !is_live(&h, n)
        {
            remove(leases, n);
        }
    }
}

/// The state directories of the projects that hold a block of this host
/// (in [`dir`]) and that this user can see (others' state is private),
/// in block order.
pub fn holders() -> Vec<PathBuf> {
    holders_in(&dir())
}

/// [`holders`] with the leases in `leases`.
pub fn holders_in(leases: &Path) -> Vec<PathBuf> {
    (0..BLOCKS)
        .filter_map(|n| {
            let h = holder_of(leases, n)?;
            (recorded(&h) == Some(n)).then_some(h)
        })
        .collect()
}

fn name(n: u16) -> String {
    format!("{n:04}")
}

/// The state directory that holds block `n`, if a lease names one.
fn holder_of(leases: &Path, n: u16) -> Option<PathBuf> {
    let mut text = String::new();
    let f = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(leases.join(name(n)));
    match f {
        Ok(mut f) => {
            f.read_to_string(&mut text).ok()?;
            Some(PathBuf::from(text.trim_end_matches('\n')))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        // Unreadable (another user's, or a link): held.
        Err(_) => Some(PathBuf::from("/")),
    }
}

/// Whether the project whose state is in `holder` still records block
/// `n`. A state directory this user cannot read is taken as live.
fn is_live(holder: &Path, n: u16) -> bool {
    match fs_err::read_to_string(holder.join(RECORD)) {
        Ok(text) => text.trim().parse::<u16>().ok() == Some(n),
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Removes a stale lease; false when it cannot (another user's file in a
/// sticky directory).
fn remove(leases: &Path, n: u16) -> bool {
    fs_err::remove_file(leases.join(name(n))).is_ok()
}

/// Creates the lease of block `n` for `holder`, exclusively.
fn take(leases: &Path, n: u16, holder: &Path) -> io::Result<()> {
    let path = leases.join(name(n));
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)?;
    let mut text = holder.as_os_str().as_encoded_bytes().to_vec();
    text.push(b'\n');
    f.write_all(&text)
}

fn touch(path: &Path) {
    if let Ok(f) = fs_err::OpenOptions::new().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Makes the leases' directory, sticky and writable by every user (as
/// /tmp), or checks the one that is there: a directory, not a link, and
/// sticky when others may write to it (else they could remove this user's
/// leases).
fn open_dir(leases: &Path) -> io::Result<()> {
    match rustix::fs::mkdir(leases, rustix::fs::Mode::from_raw_mode(0o1777)) {
        // As /tmp, whatever the umask.
        Ok(()) => fs_err::set_permissions(leases, std::fs::Permissions::from_mode(0o1777))?,
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(with_path(leases, e.into())),
    }
    let meta = fs_err::symlink_metadata(leases).map_err(|e| with_path(leases, e))?;
    let mode = meta.permissions().mode();
    let problem = if !meta.is_dir() {
        Some("is not a directory")
    } else if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        Some("is writable by every user but not sticky")
    } else {
        None
    };
    match problem {
        Some(p) => Err(io::Error::other(format!(
            "{} {p}, so it cannot hold this host's address leases; \
             hint: remove it (cove makes it again), or set COVE_LEASES to another directory",
            leases.display()
        ))),
        None => Ok(()),
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// An exclusive lock on the leases' directory (`flock` of its `.lock`).
struct Lock {
    _held: fs_err::File,
}

impl Lock {
    fn take(leases: &Path) -> io::Result<Lock> {
        let path = leases.join(".lock");
        let f = match fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        {
            Ok(f) => f,
            // Another user's: a lock needs only a read handle.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => fs_err::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)
                .map_err(|e| with_path(&path, e))?,
            Err(e) => return Err(with_path(&path, e)),
        };
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| with_path(&path, e.into()))?;
        Ok(Lock { _held: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(root: &Path, name: &str) -> PathBuf {
        root.join(name).join(".cove")
    }

    #[test]
    fn blocks_are_not_shared_and_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        let (a, b) = (state(tmp.path(), "a"), state(tmp.path(), "b"));
        // Both prefer block 7: the second gets the next one.
        let na = acquire_in(&leases, &a, 7).unwrap();
        let nb = acquire_in(&leases, &b, 7).unwrap();
        assert_eq!((na, nb), (7, 8));
        assert_eq!(recorded(&a), Some(7));
        assert_eq!(recorded(&b), Some(8));
        // Kept, whatever is preferred next time.
        assert_eq!(acquire_in(&leases, &b, 100).unwrap(), 8);
        // The last block wraps to the first.
        let c = state(tmp.path(), "c");
        assert_eq!(acquire_in(&leases, &c, BLOCKS + 1023).unwrap(), 1023);
        let d = state(tmp.path(), "d");
        assert_eq!(acquire_in(&leases, &d, 1023).unwrap(), 0);
        let mode = fs_err::metadata(&leases).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
    }

    #[test]
    fn a_gone_project_frees_its_block_and_a_clash_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        let a = state(tmp.path(), "a");
        assert_eq!(acquire_in(&leases, &a, 3).unwrap(), 3);
        fs_err::remove_dir_all(tmp.path().join("a")).unwrap();
        let b = state(tmp.path(), "b");
        assert_eq!(acquire_in(&leases, &b, 3).unwrap(), 3, "a's block is free");
        // A copied state directory records b's block: refused, b named.
        let c = state(tmp.path(), "c");
        crate::private::make_dir(&c).unwrap();
        fs_err::copy(b.join(RECORD), c.join(RECORD)).unwrap();
        let e = acquire_in(&leases, &c, 3).unwrap_err().to_string();
        assert!(e.contains(&b.display().to_string()), "{e}");
        assert!(e.contains("hint:"), "{e}");
        // A lease file lost (a cleaner) is taken again by its holder.
        fs_err::remove_file(leases.join("0003")).unwrap();
        assert_eq!(acquire_in(&leases, &b, 9).unwrap(), 3);
        assert!(leases.join("0003").is_file());
    }

    #[test]
    fn stale_leases_are_swept_at_the_next_acquire() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        let live = state(tmp.path(), "live");
        assert_eq!(acquire_in(&leases, &live, 0).unwrap(), 0);
        // Every other block held by a project that is gone.
        for n in 1..BLOCKS {
            let gone = state(tmp.path(), &format!("gone{n}"));
            take(&leases, n, &std::path::absolute(gone).unwrap()).unwrap();
        }
        let files = || {
            fs_err::read_dir(&leases)
                .unwrap()
                .filter(|e| {
                    !e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count()
        };
        assert_eq!(files(), usize::from(BLOCKS));
        let new = state(tmp.path(), "new");
        assert_eq!(acquire_in(&leases, &new, 500).unwrap(), 500);
        assert_eq!(files(), 2, "only the live leases are left");
        assert!(leases.join("0000").is_file() && leases.join("0500").is_file());
    }

    #[test]
    fn holders_are_the_live_projects() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        let (a, b) = (state(tmp.path(), "a"), state(tmp.path(), "b"));
        acquire_in(&leases, &a, 5).unwrap();
        acquire_in(&leases, &b, 2).unwrap();
        let abs = |p: &Path| std::path::absolute(p).unwrap();
        assert_eq!(holders_in(&leases), [abs(&b), abs(&a)]);
        fs_err::remove_dir_all(tmp.path().join("b")).unwrap();
        assert_eq!(
            holders_in(&leases),
            [abs(&a)],
            "a gone project is not listed"
        );
    }

    #[test]
    fn a_leases_directory_others_could_empty_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        fs_err::create_dir(&leases).unwrap();
        fs_err::set_permissions(&leases, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = acquire_in(&leases, &state(tmp.path(), "a"), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not sticky"), "{e}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        let e = acquire_in(&link, &state(tmp.path(), "a"), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn concurrent_projects_get_distinct_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        let got: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let (leases, st) = (&leases, state(tmp.path(), &format!("p{i}")));
                    s.spawn(move || acquire_in(leases, &st, 500).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16, "{got:?}");
        assert_eq!(sorted, (500..516).collect::<Vec<_>>());
    }
}
