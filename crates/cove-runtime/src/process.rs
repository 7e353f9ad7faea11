//! The native process driver: spawn a replica in its own process group,
//! stream its output line by line, stop the whole group.
//!
//! Stopping sends `stop_signal` to the group, waits up to the grace period,
//! then SIGKILLs the group. When the leader exits on its own, what it left
//! in its group is killed too, so no descendant outlives its replica. A
//! replica given a cgroup ([`crate::cgroup`]) moves into it before its
//! program runs, and once its leader is gone the cgroup is killed and
//! removed: descendants that left the group (`setsid`, double forks) die too.
//!
//! This module holds the workspace's one `unsafe` block outside the
//! examples: the `pre_exec` hook that moves the child into its cgroup
//! between fork and exec (see `enter`).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// What to start.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    /// Added to what the environment cove runs in passes on (see
    /// [`crate::environ`]).
    pub env: Vec<(String, String)>,
    /// The cgroup to run it in (made when missing), where cove has them.
    pub cgroup: Option<PathBuf>,
}

pub use crate::output::Stream;

/// A running replica.
#[derive(Debug)]
pub struct Running {
    pub pid: u32,
    /// Its cgroup, when it has one.
    cgroup: Option<PathBuf>,
    child: Child,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// Spawns `spec`; every output line goes to `on_line`.
pub fn spawn(
    spec: &ProcessSpec,
    on_line: impl Fn(Stream, String) + Send + Sync + Clone + 'static,
) -> std::io::Result<Running> {
    let (prog, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(prog);
    // A cleared environment: what the daemon's may pass on, then the spec's.
    cmd.args(args)
        .current_dir(&spec.workdir)
        .env_clear()
        .envs(crate::environ::with(&spec.env))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // Without its cgroup (none could be made) it still runs, as a group.
    let cgroup = spec
        .cgroup
        .as_ref()
        .filter(|leaf| crate::cgroup::make_leaf(leaf).is_ok())
        .and_then(|leaf| Some((leaf.clone(), crate::cgroup::procs(leaf).ok()?)));
    let cgroup = cgroup.map(|(leaf, procs)| {
        enter(&mut cmd, procs);
        leaf
    });
    let mut child = cmd.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot start `{prog}` in {}: {e}", spec.workdir.display()),
        )
    })?;
    let pid = child.id().unwrap_or_default();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(read_lines(
            out,
            Stream::Stdout,
            on_line.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(read_lines(err, Stream::Stderr, on_line)));
    }
    Ok(Running {
        pid,
        cgroup,
        child,
        readers,
    })
}

/// Makes the child write `0` (itself) to `procs`, its cgroup's
/// `cgroup.procs`, before it runs its program, so that it and everything
/// it starts are in the cgroup from the first instruction. A failed write
/// is not an error: the replica runs as a process group alone.
#[allow(unsafe_code)]
fn enter(cmd: &mut Command, procs: rustix::fd::OwnedFd) {
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one `write(2)` on a
    // descriptor opened before the fork (close-on-exec), allocates nothing
    // and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            let _ = rustix::io::write(&procs, b"0");
            Ok(())
        });
    }
}

async fn read_lines(r: impl AsyncRead + Unpin, stream: Stream, on_line: impl Fn(Stream, String)) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        on_line(stream, line);
    }
}

impl Running {
    fn group(&self) -> Option<Pid> {
        Pid::from_raw(self.pid as i32)
    }

    /// Sends `signal` to the replica's whole process group.
    pub fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.group() {
            let _ = kill_process_group(pgid, signal);
        }
    }

    /// Waits for the leader to exit, then kills what is left of its group and
    /// drains its output.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.finish().await;
        Ok(status)
    }

    /// Stops the replica: `signal` to the group, `grace` to exit, then SIGKILL.
    pub async fn stop(&mut self, signal: Signal, grace: Duration) -> std::io::Result<ExitStatus> {
        self.signal(signal);
        // A paused replica (`cove pause`: SIGSTOP) takes its signal only
        // once it runs again.
        self.signal(Signal::CONT);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                self.finish().await;
                Ok(status)
            }
            Err(_) => {
                self.signal(Signal::KILL);
                self.wait().await
            }
        }
    }

    /// After the leader exited: kills what is left of its group and drains
    /// its output.
    async fn finish(&mut self) {
        self.signal(Signal::KILL);
        if let Some(leaf) = self.cgroup.take() {
            crate::cgroup::kill(&leaf);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while crate::cgroup::populated(&leaf) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            crate::cgroup::remove(&leaf);
        }
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
        }
    }
}

impl Drop for Running {
    /// A replica dropped before `Running::finish` (its task aborted):
    /// its cgroup is killed now and removed once empty.
    fn drop(&mut self) {
        if let Some(leaf) = self.cgroup.take() {
            crate::cgroup::kill(&leaf);
            std::thread::spawn(move || {
                crate::cgroup::stop(&leaf, Signal::KILL, Duration::ZERO);
            });
        }
    }
}

/// Whether any process of group `pgid` is alive (zombies, already dead and
/// waiting for their new parent to reap them, do not count). Reads `/proc`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return Pid::from_raw(pgid as i32)
            .is_some_and(|p| rustix::process::test_kill_process_group(p).is_ok());
    };
    entries
        .flatten()
        .any(|e| live_group(&e.path()) == Some(pgid))
}

/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    live_group(std::path::Path::new(&format!("/proc/{pid}"))).is_some()
}

/// The process group of the process at `/proc/<pid>`, if it is alive (not
/// a zombie, not gone).
fn live_group(proc_dir: &std::path::Path) -> Option<u32> {
    let stat = fs_err::read_to_string(proc_dir.join("stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    fields.get(2)?.parse().ok()
}

/// When the process `pid` started, as `<boot id>:<clock ticks since
/// boot>` (`/proc/sys/kernel/random/boot_id`, `/proc/<pid>/stat`): with
/// its pid, it names one process for good, a recycled pid being another.
pub fn start_of(pid: u32) -> Option<String> {
    let boot = fs_err::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime cutime cstime priority nice threads
    // itrealvalue starttime ...`: starttime is the 20th after `)`.
    let ticks = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{}:{ticks}", boot.trim()))
}

/// [`start_of`] `pid` when it is a child of this process (a native
/// replica the daemon started; not a container's process, whose parent is
/// the engine's shim).
pub fn child_start(pid: u32) -> Option<String> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid: u32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    (ppid == std::process::id()).then(|| start_of(pid))?
}

/// Stops the process groups led by `leaders` (pid, [`start_of`] it when
/// it was started) whose leader is still that very process (same start)
/// and of cove's user or one of `users` (see [`marked`]): `signal` to each group, up to
/// `grace` for them to exit, then SIGKILL. A group whose leader is gone or
/// is another process now is left alone: its pid may have been recycled.
/// Blocking. Returns the leaders it found.
pub fn stop_groups(
    leaders: &[(u32, String)],
    users: &[u32],
    signal: Signal,
    grace: Duration,
) -> Vec<u32> {
    let uids = owners(users);
    let own_group = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
    let found: Vec<u32> = leaders
        .iter()
        .filter(|(pid, start)| {
            let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
            *pid != own_group
                && live_group(&dir) == Some(*pid)
                && start_of(*pid).as_ref() == Some(start)
                && real_uid(&dir).is_some_and(|u| uids.contains(&u))
        })
        .map(|(pid, _)| *pid)
        .collect();
    let kill = |sig: Signal, groups: &[u32]| {
        for g in groups.iter().filter_map(|g| Pid::from_raw(*g as i32)) {
            let _ = kill_process_group(g, sig);
        }
    };
    kill(signal, &found);
    let deadline = std::time::Instant::now() + grace;
    loop {
        let left: Vec<u32> = found.iter().copied().filter(|g| group_alive(*g)).collect();
        if left.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            kill(Signal::KILL, &left);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found
}

/// Live processes (this one excepted) whose environment holds `marker`
/// (`NAME=value`, exactly), as `(pid, process group)`. Reads `/proc`. Only
/// processes of cove's own user, or of `users` (as root, the system users
/// recipes run servers as: `recipe::service_uids`), by their real uid:
/// another user may put the marker in a process of theirs, which is not
/// cove's to stop.
pub fn marked(marker: &str, users: &[u32]) -> Vec<(u32, u32)> {
    let me = std::process::id();
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = marker.as_bytes();
    let uids = owners(users);
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            if pid == me || !real_uid(&e.path()).is_some_and(|u| uids.contains(&u)) {
                return None;
            }
            let environ = fs_err::read(e.path().join("environ")).ok()?;
            if !environ.split(|b| *b == 0).any(|v| v == marker) {
                return None;
            }
            Some((pid, live_group(&e.path())?))
        })
        .collect()
}

/// The uids whose processes cove may stop: its own, and `users`.
fn owners(users: &[u32]) -> Vec<u32> {
    let mut uids = users.to_vec();
    uids.push(rustix::process::geteuid().as_raw());
    uids
}

/// The real uid of the process at `/proc/<pid>` (`Uid:` in its status).
fn real_uid(proc_dir: &std::path::Path) -> Option<u32> {
    let status = fs_err::read_to_string(proc_dir.join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Stops every process carrying `marker` now (of cove's user or one of
/// `users`, see [`marked`]): `signal` to
/// each one's process group, up to `grace` for them to exit, then SIGKILL.
/// Processes that carry the marker later (started meanwhile by someone
/// else) are left alone. Blocking. Returns the PIDs it found.
pub fn sweep(marker: &str, users: &[u32], signal: Signal, grace: Duration) -> Vec<u32> {
    let found = marked(marker, users);
    let own_group = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
    let kill = |sig: Signal, procs: &[(u32, u32)]| {
        for &(pid, pgid) in procs {
            if pgid != own_group
                && let Some(g) = Pid::from_raw(pgid as i32)
            {
                let _ = kill_process_group(g, sig);
            }
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, sig);
            }
        }
    };
    kill(signal, &found);
    let deadline = std::time::Instant::now() + grace;
    let mut killed = false;
    loop {
        let left: Vec<(u32, u32)> = marked(marker, users)
            .into_iter()
            .filter(|p| found.contains(p))
            .collect();
        if left.is_empty() {
            break;
        }
        let now = std::time::Instant::now();
        if now >= deadline && !killed {
            kill(Signal::KILL, &left);
            killed = true;
        } else if now >= deadline + Duration::from_secs(2) {
            break; // SIGKILLed and still listed: nothing more to do
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found.into_iter().map(|(pid, _)| pid).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            workdir: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hello".into())],
            cgroup: None,
        }
    }

    #[tokio::test]
    async fn output_is_streamed_and_the_exit_code_kept() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let mut r = spawn(
            &sh("echo $GREETING; echo oops >&2; exit 3"),
            move |s, line| l.lock().unwrap().push((s, line)),
        )
        .unwrap();
        let status = r.wait().await.unwrap();
        assert_eq!(status.code(), Some(3));
        let mut got = lines.lock().unwrap().clone();
        got.sort_by_key(|(s, _)| *s == Stream::Stderr);
        assert_eq!(
            got,
            [
                (Stream::Stdout, "hello".to_string()),
                (Stream::Stderr, "oops".to_string())
            ]
        );
    }

    /// Spawns `script`, which prints `ready` once its traps are set; returns
    /// when it has (10 s at most), so no signal comes before them.
    async fn spawn_ready(script: &str) -> Running {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = spawn(&sh(script), move |_, line| {
            let _ = tx.send(line);
        })
        .unwrap();
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = rx.recv().await {
                if line == "ready" {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "`{script}` said it was ready");
        r
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group_after_the_grace_period() {
        // The shell ignores TERM and has a child that does too.
        let mut r = spawn_ready("trap '' TERM; sleep 60 & trap '' TERM; echo ready; wait").await;
        let pgid = r.pid;
        assert!(group_alive(pgid));
        let t = std::time::Instant::now();
        let status = r
            .stop(Signal::TERM, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(status.code(), None, "killed by a signal");
        assert!(!group_alive(pgid), "a descendant survived the stop");
    }

    #[tokio::test]
    async fn a_graceful_process_stops_on_its_signal() {
        let mut r =
            spawn_ready("trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done").await;
        let status = r.stop(Signal::TERM, Duration::from_secs(10)).await.unwrap();
        assert_eq!(status.code(), Some(0));
    }

    #[tokio::test]
    async fn descendants_die_with_their_leader() {
        let mut r = spawn(&sh("sleep 60 & exit 0"), |_, _| {}).unwrap();
        let pgid = r.pid;
        r.wait().await.unwrap();
        // SIGKILLed when the leader ended; gone once the kernel has run it
        // (a moment on a busy machine).
        let t = std::time::Instant::now();
        while group_alive(pgid) && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !group_alive(pgid),
            "a descendant outlived its leader by 5 s"
        );
    }

    #[tokio::test]
    async fn sweep_finds_marked_processes_and_their_children() {
        let marker = format!("COVE_TEST_MARK={}", std::process::id());
        let (name, value) = marker.split_once('=').unwrap();
        let mut spec = sh("trap '' TERM; sleep 60 & sleep 60 & wait");
        spec.env.push((name.into(), value.into()));
        let r = spawn(&spec, |_, _| {}).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while marked(&marker, &[]).len() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            marked(&marker, &[]).len(),
            3,
            "the shell and its two children"
        );
        assert!(
            marked(&format!("{marker}0"), &[]).is_empty(),
            "exact match only"
        );
        let found = sweep(&marker, &[], Signal::TERM, Duration::from_millis(300));
        assert_eq!(found.len(), 3);
        assert!(found.contains(&r.pid));
        assert!(marked(&marker, &[]).is_empty());
        drop(r);
    }

    /// Where cgroups can be made (root, a delegated subtree), a replica's
    /// descendant that left its session dies when its leader exits, and
    /// the cgroup is removed.
    #[tokio::test]
    async fn a_replica_in_a_cgroup_takes_its_escaped_descendants_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let Some(tree) = crate::cgroup::make_tree(dir.path()) else {
            eprintln!("skipped: no cgroup can be made here");
            return;
        };
        let project = crate::cgroup::project(&tree, "test");
        let leaf = crate::cgroup::replica(&project, "web", 1);
        let mut spec = sh("setsid sleep 60 & echo $!; wait");
        spec.cgroup = Some(leaf.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut r = spawn(&spec, move |_, line| {
            let _ = tx.send(line);
        })
        .unwrap();
        let escaped: u32 = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(crate::cgroup::pids(&leaf).contains(&r.pid));
        assert!(crate::cgroup::pids(&leaf).contains(&escaped));
        let _ = kill_process_group(Pid::from_raw(r.pid as i32).unwrap(), Signal::KILL);
        r.wait().await.unwrap();
        assert!(!alive(escaped), "the process in its own session survived");
        assert!(!leaf.exists() && !project.exists() && !tree.exists());
    }

    /// A recorded group is stopped only while its leader is the process
    /// that was recorded.
    #[tokio::test]
    async fn stop_groups_needs_the_leader_it_recorded() {
        let r = spawn_ready("sleep 60 & echo ready; wait").await;
        let start = child_start(r.pid).expect("a child of this process");
        assert_eq!(child_start(std::process::id()), None, "not its own child");
        let other = format!("{}:1", start.split_once(':').unwrap().0);
        let grace = Duration::from_millis(300);
        assert!(stop_groups(&[(r.pid, other)], &[], Signal::TERM, grace).is_empty());
        assert!(
            group_alive(r.pid),
            "a group whose leader started another time"
        );
        assert_eq!(
            stop_groups(&[(r.pid, start)], &[], Signal::TERM, grace),
            [r.pid]
        );
        assert!(!group_alive(r.pid));
    }

    #[test]
    fn missing_program_is_an_error_naming_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let spec = ProcessSpec {
                argv: vec!["/no/such/prog".into()],
                workdir: std::env::temp_dir(),
                env: vec![],
                cgroup: None,
            };
            let e = spawn(&spec, |_, _| {}).unwrap_err();
            assert!(e.to_string().contains("/no/such/prog"), "{e}");
        });
    }
}
