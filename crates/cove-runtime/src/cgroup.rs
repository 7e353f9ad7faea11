//! A cgroup (v2) per native replica, where cove may make one: what a
//! replica cannot leave. A process group is left by `setsid`, an
//! environment marker is erased by a program that rewrites its environment
//! (redis-server does); a cgroup is kept by every descendant, however it
//! forks. Killing it (`cgroup.kill`, or freezing it and SIGKILLing each of
//! its processes on kernels before 5.14) kills them all.
//!
//! Layout: `<base>/cove/<digest of the daemon's directory>/<digest of the
//! project>/<service>.<slot>`, where `<base>` is the root of the cgroup2
//! mount (root, or a writable one), else the parent of cove's own cgroup
//! (a subtree delegated to the user). Only the leaves hold processes, and
//! no controller is enabled, so the "no internal processes" rule never
//! refuses a move. Each daemon writes where its tree is in its directory
//! ([`recorded`]), so the reaper, the next daemon and `cove down` find it
//! whatever cgroup they run in. Where no cgroup can be made (no cgroup2,
//! not writable, another user's `cove` directory), replicas run without
//! one and are found by their process groups and marker instead.
//!
//! Empty cgroups are removed (`rmdir`) once their processes are gone, and
//! their parents with them when they are empty.
//!
//! `COVE_CGROUPS=off` in the daemon's environment makes no cgroups (a host
//! whose supervisor manages them, or to see what runs without them).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name of cove's directory under the base.
const COVE: &str = "cove";

/// The file in a daemon's directory that says where its cgroups are.
pub const RECORD: &str = "cgroup";

/// The first 16 hex digits of the SHA-256 of `s`: a cgroup's name for a
/// path.
fn digest(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The mount point of the cgroup2 filesystem (`/proc/self/mountinfo`).
fn mount() -> Option<PathBuf> {
    let info = fs_err::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // `id parent major:minor root mountpoint options... - fstype ...`
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// This process's cgroup, relative to the mount (`0::/path`).
fn own() -> Option<PathBuf> {
    let text = fs_err::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(PathBuf::from(path.trim_start_matches('/')))
}

/// Whether `dir` is a directory of ours that no one else may write in.
fn ours(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs_err::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

/// Makes `dir` (a cgroup) unless it is there; true when it is there now.
fn make(dir: &Path) -> bool {
    match fs_err::create_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == ErrorKind::AlreadyExists && dir.is_dir(),
    }
}

/// Makes the cgroup tree of this run of the daemon whose directory is
/// `daemon_dir`, `cove/<digest of daemon_dir>-<pid>`, and records where it
/// is in that directory; `None` where cove cannot have cgroups (see the
/// module documentation). One tree per run: the reaper of a killed daemon
/// stops that daemon's tree, never the next one's.
pub fn make_tree(daemon_dir: &Path) -> Option<PathBuf> {
    if std::env::var_os("COVE_CGROUPS").is_some_and(|v| v == "off") {
        return None;
    }
    let mount = mount()?;
    let mut bases = vec![mount.clone()];
    if let Some(parent) = own().as_deref().and_then(Path::parent)
        && parent != Path::new("")
    {
        bases.push(mount.join(parent));
    }
    let name = format!(
        "{}-{}",
        digest(&daemon_dir.to_string_lossy()),
        std::process::id()
    );
    let tree = bases.into_iter().find_map(|base| {
        let cove = base.join(COVE);
        let tree = cove.join(&name);
        (make(&cove) && ours(&cove) && make(&tree) && ours(&tree)).then_some(tree)
    })?;
    let written = crate::private::rw_file(&daemon_dir.join(RECORD)).and_then(|mut f| {
        use std::io::Write as _;
        f.set_len(0)?;
        f.write_all(tree.to_string_lossy().as_bytes())
    });
    if written.is_err() {
        remove(&tree);
        return None;
    }
    Some(tree)
}

/// Whether `tree` is named as a tree of the daemon of `daemon_dir`
/// (`<digest>-<pid>`) and is ours, under a cgroup2 mount.
fn of_daemon(tree: &Path, daemon_dir: &Path) -> bool {
    let prefix = format!("{}-", digest(&daemon_dir.to_string_lossy()));
    let named = tree
        .file_name()
        .and_then(|n| n.to_str()?.strip_prefix(&prefix)?.parse::<u32>().ok())
        .is_some();
    let parent = tree.parent();
    named
        && parent.is_some_and(|p| p.file_name().is_some_and(|n| n == COVE) && ours(p))
        && mount().is_some_and(|m| tree.starts_with(m))
        && !tree
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        && ours(tree)
}

/// The cgroup tree the daemon of `daemon_dir` recorded last, when it is
/// still there and is that daemon's.
pub fn recorded(daemon_dir: &Path) -> Option<PathBuf> {
    let text = fs_err::read_to_string(daemon_dir.join(RECORD)).ok()?;
    let tree = PathBuf::from(text.trim());
    of_daemon(&tree, daemon_dir).then_some(tree)
}

/// Every cgroup tree earlier runs of the daemon of `daemon_dir` left,
/// next to the one it recorded last (itself included).
pub fn left(daemon_dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs_err::read_to_string(daemon_dir.join(RECORD)) else {
        return Vec::new();
    };
    let Some(cove) = Path::new(text.trim()).parent() else {
        return Vec::new();
    };
    let Ok(entries) = fs_err::read_dir(cove) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|t| of_daemon(t, daemon_dir))
        .collect()
}

/// A project's cgroups in a daemon's `tree`.
pub fn project(tree: &Path, key: &str) -> PathBuf {
    tree.join(digest(key))
}

/// The cgroup of a service's instance in `slot`, in its project's cgroups.
pub fn replica(project: &Path, service: &str, slot: u32) -> PathBuf {
    project.join(format!("{service}.{slot}"))
}

/// Makes the cgroup `leaf` and its parents up to `cove` (one of which a
/// replica stopping at the same time may just have removed: tried again).
pub fn make_leaf(leaf: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match fs_err::create_dir_all(leaf) {
            Err(e) if e.kind() == ErrorKind::NotFound && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// Opens `leaf`'s `cgroup.procs` for writing (close-on-exec), for a child
/// to move itself in before it runs its program.
pub fn procs(leaf: &Path) -> std::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let path = leaf.join("cgroup.procs");
    rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Whether any process is in `dir` or below (`populated` in
/// `cgroup.events`); false when it is gone.
pub fn populated(dir: &Path) -> bool {
    fs_err::read_to_string(dir.join("cgroup.events"))
        .is_ok_and(|t| t.lines().any(|l| l == "populated 1"))
}

/// `dir` and every cgroup below it, deepest first.
fn below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs_err::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(below(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// The processes in `dir` and below.
pub fn pids(dir: &Path) -> Vec<u32> {
    below(dir)
        .iter()
        .filter_map(|d| fs_err::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Sends `signal` to every process in `dir` and below.
pub fn signal(dir: &Path, signal: rustix::process::Signal) {
    for pid in pids(dir) {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, signal);
        }
    }
}

/// SIGKILLs every process in `dir` and below, at once: `cgroup.kill`, or
/// (before Linux 5.14) frozen, each one killed, thawed.
pub fn kill(dir: &Path) {
    match fs_err::write(dir.join("cgroup.kill"), "1") {
        Err(e) if e.kind() == ErrorKind::NotFound && dir.is_dir() => {
            let frozen = fs_err::write(dir.join("cgroup.freeze"), "1").is_ok();
            signal(dir, rustix::process::Signal::KILL);
            if frozen {
                let _ = fs_err::write(dir.join("cgroup.freeze"), "0");
            }
        }
        _ => {}
    }
}

/// Removes `dir` and the cgroups below it (empty ones: a cgroup with
/// processes stays), then its parents up to `cove` when they are empty.
pub fn remove(dir: &Path) {
    for d in below(dir) {
        let _ = fs_err::remove_dir(&d);
    }
    let mut parent = dir.parent();
    while let Some(p) = parent {
        if fs_err::remove_dir(p).is_err() || p.file_name().is_some_and(|n| n == COVE) {
            break;
        }
        parent = p.parent();
    }
}

/// Stops every process in `dir` and below: `signal` to each, up to
/// `grace` for them to exit, then [`kill`]; waits (a few seconds at most)
/// until they are gone, and [`remove`]s the cgroups. Blocking. Returns the
/// processes it found.
pub fn stop(dir: &Path, signal: rustix::process::Signal, grace: Duration) -> Vec<u32> {
    let found = pids(dir);
    if !found.is_empty() {
        self::signal(dir, signal);
        let deadline = Instant::now() + grace;
        while populated(dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(dir);
        let deadline = Instant::now() + Duration::from_secs(5);
        while populated(dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    remove(dir);
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mount_and_own_cgroup_are_read_from_proc() {
        // Wherever cgroup2 is mounted, cove's own cgroup is below it.
        if let Some(m) = super::mount() {
            assert!(m.join("cgroup.procs").exists(), "{}", m.display());
            let own = super::own().expect("a process in cgroup2 has a 0:: line");
            assert!(m.join(own).join("cgroup.procs").exists());
        }
    }

    #[test]
    fn digests_are_short_and_stable() {
        assert_eq!(super::digest("/a/.cove"), super::digest("/a/.cove"));
        assert_ne!(super::digest("/a/.cove"), super::digest("/b/.cove"));
        assert_eq!(super::digest("x").len(), 16);
    }
}
