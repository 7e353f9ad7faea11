//! No orphans, whatever a replica does to its environment: redis-server
//! and postgres rewrite theirs (the marker is gone from
//! `/proc/PID/environ`), and a program may clear its environment and
//! double-fork into a session of its own. None of them outlives a
//! SIGKILLed daemon or `cove down`, and no cgroup of cove's is left.
//! Real servers (Debian's redis-server and PostgreSQL), real processes;
//! every wait is bounded, and every process a test saw is killed if it
//! fails.

use std::path::{Path, PathBuf};

use crate::daemon::{App, daemon_pid_in, eventually, kill9};
use crate::recipes::require;
use crate::up::alive;

const APP: &str = r#"
services:
  cache:
    image: redis:7
  pg:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: "pw-7d1e-long-enough"
  escapee:
    x-cove:
      run: [python3, escape.py]
"#;

/// Leaves its environment behind and its session: the child makes a
/// session of its own, its child execs `sleep` with an empty environment
/// and writes its pid; the leader waits.
const ESCAPE: &str = r#"
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("escaped.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("escaped.tmp", "escaped")
        os.execve("/bin/sleep", ["sleep", "600"], {})
    os._exit(0)
time.sleep(600)
"#;

/// Kills (SIGKILL) every process it holds when dropped: what a failed
/// test would otherwise leave running.
struct Seen(Vec<u32>);

impl Drop for Seen {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|p| alive(**p)) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn start() -> App {
    start_with(App::new(APP))
}

fn start_with(app: App) -> App {
    require(&["redis-server", "python3"]);
    fs_err::write(app.dir().join("escape.py"), ESCAPE).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    app
}

/// Field `n` (0: the state) after the command of `/proc/<pid>/stat`.
fn stat_field(pid: u32, n: usize) -> Option<u32> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(n)?
        .parse()
        .ok()
}

/// Whether live process `pid` descends from one of `leaders` (or is one).
fn descends(pid: u32, leaders: &[u32]) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if leaders.contains(&p) {
            return true;
        }
        match stat_field(p, 1) {
            Some(parent) if parent > 1 => p = parent,
            _ => return false,
        }
    }
    false
}

/// Every process of the app: its replicas (`ps` names them) and what they
/// started (postgres's workers are in sessions of their own), and the
/// escaped `sleep`, whose parent is gone.
/// The replicas' main processes, from `ps`.
fn leaders(app: &App) -> Vec<u32> {
    app.ps()
        .iter()
        .filter_map(|r| r["pid"].as_u64())
        .map(|p| p as u32)
        .collect()
}

fn processes(app: &App) -> Vec<u32> {
    let escaped: u32 = {
        let file = app.dir().join("escaped");
        eventually(30, "the escapee's grandchild wrote its pid", || {
            file.exists()
        });
        fs_err::read_to_string(file).unwrap().parse().unwrap()
    };
    let leaders = leaders(app);
    assert_eq!(leaders.len(), 3, "a process per service: {leaders:?}");
    let mut all: Vec<u32> = fs_err::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|p| alive(*p) && descends(*p, &leaders))
        .collect();
    assert!(alive(escaped), "the escaped sleep runs");
    assert!(
        !descends(escaped, &leaders)
            && stat_field(escaped, 3)
                .is_some_and(|s| leaders.iter().all(|l| stat_field(*l, 3) != Some(s))),
        "the escaped sleep left its replica's tree, and its session"
    );
    all.push(escaped);
    // redis-server, postgres and its workers, python, sleep.
    assert!(all.len() >= 6, "{all:?}");
    all
}

/// The cgroups the app's processes are in, when the daemon said it runs
/// replicas in cgroups (it must, as root where cgroup2 is mounted
/// read-write).
fn cgroups(app: &App, pids: &[u32]) -> Vec<PathBuf> {
    let log = fs_err::read_to_string(app.dir().join(".cove/daemon.log")).unwrap();
    let in_use = log.contains("replicas run in cgroups under");
    let mountinfo = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
    // Mounted read-write (a container may see it read-only).
    let writable = mountinfo.lines().any(|l| {
        l.split_once(" - ").is_some_and(|(left, right)| {
            right.starts_with("cgroup2 ")
                && left
                    .split_whitespace()
                    .nth(5)
                    .is_some_and(|o| o.split(',').any(|o| o == "rw"))
        })
    });
    if rustix::process::geteuid().is_root() && writable {
        assert!(
            in_use,
            "as root, with cgroup2 mounted read-write, cove uses it: {log}"
        );
    }
    if !in_use {
        return Vec::new();
    }
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split_whitespace().nth(4))?
        })
        .map(PathBuf::from)
        .unwrap();
    let mut dirs: Vec<PathBuf> = pids
        .iter()
        .filter_map(|p| fs_err::read_to_string(format!("/proc/{p}/cgroup")).ok())
        .filter_map(|t| {
            let rel = t.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            Some(mount.join(rel.trim_start_matches('/')))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), 3, "a cgroup per replica: {dirs:?}");
    assert!(dirs.iter().all(|d| d.to_string_lossy().contains("/cove/")));
    dirs
}

/// A replica's cgroup and its parents up to `cove/` (the project's and
/// the daemon's): none may be left.
fn chain(leaf: &Path) -> Vec<PathBuf> {
    leaf.ancestors()
        .take_while(|d| d.file_name().is_some_and(|n| n != "cove"))
        .map(Path::to_path_buf)
        .collect()
}

#[test]
fn a_sigkilled_daemon_leaves_no_server_nor_escaped_process() {
    let app = start();
    let pids = Seen(processes(&app));
    let dirs = cgroups(&app, &pids.0);
    kill9(daemon_pid_in(app.dir()).expect("a daemon runs"));
    // The reaper stops them (5 s of grace for SIGTERM, then SIGKILL).
    eventually(
        60,
        "every process of the killed daemon's app stopped",
        || pids.0.iter().all(|p| !alive(*p)),
    );
    eventually(30, "its cgroups removed", || {
        dirs.iter().flat_map(|d| chain(d)).all(|d| !d.exists())
    });
    // The same addresses are free: the app comes back.
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("Address already in use"), "{out}");
    let again = Seen(processes(&app));
    assert!(again.0.iter().all(|p| !pids.0.contains(p)));
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn down_leaves_no_server_nor_escaped_process_nor_cgroup() {
    let app = start();
    let pids = Seen(processes(&app));
    let dirs = cgroups(&app, &pids.0);
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    eventually(30, "every process of the app stopped by `down`", || {
        pids.0.iter().all(|p| !alive(*p))
    });
    let left: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| chain(d))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups left after `down`: {left:?}");
}

/// Without cgroups (`COVE_CGROUPS=off`), redis-server and postgres, whose
/// environment no longer shows the marker, are found by the process
/// groups the store recorded. (A process that left its group and its
/// environment, as the escapee's, can only be found by a cgroup.)
#[test]
fn without_cgroups_a_sigkilled_daemon_leaves_no_server() {
    let yaml = APP.split("  escapee:").next().unwrap();
    let app = start_with(App::with_env(yaml, &[("COVE_CGROUPS", Path::new("off"))]));
    let leaders = leaders(&app);
    assert_eq!(leaders.len(), 2, "{leaders:?}");
    let pids = Seen(
        fs_err::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|p| alive(*p) && descends(*p, &leaders))
            .collect(),
    );
    assert!(pids.0.len() >= 3, "{:?}", pids.0);
    let log = fs_err::read_to_string(app.dir().join(".cove/daemon.log")).unwrap();
    assert!(log.contains("no cgroup can be made here"), "{log}");
    kill9(daemon_pid_in(app.dir()).expect("a daemon runs"));
    eventually(
        60,
        "redis and postgres of the killed daemon stopped",
        || pids.0.iter().all(|p| !alive(*p)),
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("Address already in use"), "{out}");
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}
