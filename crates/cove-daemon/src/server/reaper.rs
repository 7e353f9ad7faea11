//! The reaper: a process of its own (`cove __reaper`) holding a pipe from
//! the daemon, that stops whatever the daemon left running when that pipe
//! closes, so no replica outlives a daemon killed with SIGKILL.

use std::path::Path;
use std::time::Duration;

use crate::Paths;
use crate::server::log::log;
use crate::store::Store;

/// Grace given to leftovers of a previous daemon before SIGKILL.
pub(super) const SWEEP_GRACE: Duration = Duration::from_secs(5);

/// Starts `cove __reaper` with a pipe from this process as its input.
pub(super) fn spawn_reaper(state_dir: &Path) -> Option<std::process::Child> {
    let exe = std::env::current_exe().ok()?;
    std::process::Command::new(exe)
        .arg("__reaper")
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| log(&format!("no reaper (replicas would outlive a crash): {e}")))
        .ok()
}

/// `cove __reaper`: waits until its input closes — the daemon that started
/// it holds the other end, so this happens when the daemon exits, however
/// it exits — then stops every process the daemon left (after a clean exit
/// there are none): its cgroup tree (read when the reaper starts: a later
/// daemon's is not its), the process groups its store recorded (read when
/// no later daemon holds the store yet), its marker. So no replica outlives
/// a daemon killed with SIGKILL.
pub fn reaper(state_dir: &Path) {
    use std::io::Read as _;
    // Out of the daemon's process group: a kill of that group is not for us.
    let _ = rustix::process::setsid();
    let cgroups: Vec<_> = cove_runtime::cgroup::recorded(state_dir)
        .into_iter()
        .collect();
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    let paths = Paths::new(state_dir);
    // Read, then let go at once: a new daemon may be waiting for it.
    let store = Store::open_waiting(&paths.store(), Duration::from_secs(2)).ok();
    let left = crate::leftovers::Leftovers::of_daemon(&paths, cgroups, store.as_ref());
    drop(store);
    let left = left.stop(rustix::process::Signal::TERM, SWEEP_GRACE);
    if !left.is_empty() {
        log(&format!(
            "the daemon is gone: stopped {} process(es) it left: {left:?}",
            left.len()
        ));
    }
}
