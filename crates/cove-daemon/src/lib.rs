//! cove-daemon: the daemon that runs apps.
//!
//! On a laptop there is one per project, in the project's state directory,
//! and it exits when the app is down. On a server (`COVE_DAEMON=host`, or
//! `x-cove: {daemon: host}`) there is one per host, in [`host_dir`], running
//! every project that asks and staying up. The CLI starts it on demand and
//! talks to it over HTTP/JSON on a Unix socket (`<dir>/daemon.sock`, mode
//! 0600); see [`api`]. What should
//! run is written to the [`store`] before the daemon acts on it, so a daemon
//! killed at any point (SIGKILL included) starts again into the same desired
//! state, restart counts kept. No replica outlives it: its reaper (a child
//! holding a pipe from it, [`server::reaper`]) stops them when the pipe
//! closes, and a new daemon stops whatever is still left before it starts
//! anything ([`leftovers`]: each replica's cgroup where cove may make one,
//! which holds even a replica's double-forked children; else the process
//! groups its store recorded; and [`MARKER`], which every replica carries
//! in its environment).
//!
//! Alerts (`x-cove.alerts`): each rule's state machine ([`alert`]) is
//! stepped by the daemon's evaluator over the store's events, the
//! supervisor's states, the gateway's counters ([`traffic`]) and the
//! replicas' memory ([`memory`]); its state is kept in the [`store`] too,
//! saved before it is announced, so an alert is neither lost nor
//! announced twice across a restart.
//!
//! Invariant: the daemon only ever kills what is its own: processes in the
//! cgroups it made (under `cove/`, owned by its user), process groups whose
//! leader is the very process it recorded, processes carrying its own state
//! directory's marker; of the last two only those of its own user (as
//! root, also of the system users recipes run servers as): another user's
//! process that carries the marker is not its to stop. Only its own
//! user and root may talk to it (the socket is 0600 in a 0700 directory,
//! and `SO_PEERCRED` is checked).

pub mod about;
pub mod alert;
pub mod api;
pub mod autoscale;
pub mod client;
pub mod gateway;
mod holder;
pub mod leftovers;
pub mod listeners;
pub mod memory;
pub mod remote;
pub mod server;
pub mod store;
pub mod traffic;

use std::path::{Path, PathBuf};

/// The environment variable every replica gets; its value is the daemon's
/// directory, which names the daemon that owns it.
pub const MARKER: &str = "COVE_SUPERVISOR";

/// The environment variable every replica gets; its value is its project's
/// key (the project's state directory), so one project's replicas can be
/// found when its daemon is gone.
pub const PROJECT_MARKER: &str = "COVE_PROJECT";

/// Locks `m`, going on with its state when a panic poisoned it: what the
/// daemon keeps behind these locks (its projects, a project's gateway,
/// scalers, woken services) is whole between any two statements, so a
/// panic elsewhere while it was held must not make every later request
/// panic in turn (a wedged daemon).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The API header that names the project a call is about.
pub const PROJECT_HEADER: &str = "cove-project";

/// The directory of the host's daemon: `COVE_HOST_DIR`, else
/// `/var/lib/cove` for root, else `$XDG_STATE_HOME/cove` (default
/// `~/.local/state/cove`).
pub fn host_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COVE_HOST_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/cove");
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".local/state")
        });
    state.join("cove")
}

/// A project key as a header value: bytes outside visible ASCII, and `%`,
/// as `%XX`.
pub fn encode_header(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_graphic() && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The inverse of [`encode_header`].
pub fn decode_header(value: &str) -> Option<String> {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn project_keys_survive_the_header() {
        for key in ["/srv/app/.cove", "/home/josé/my app/.cove", "/a%b"] {
            let v = super::encode_header(key);
            assert!(v.bytes().all(|b| b.is_ascii_graphic()), "{v}");
            assert_eq!(super::decode_header(&v).as_deref(), Some(key));
        }
    }
}

/// `COVE_PROJECT=<project state dir>`, as found in a replica's environment.
pub fn project_marker(project: &str) -> String {
    format!("{PROJECT_MARKER}={project}")
}

/// Where a project's daemon keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub state_dir: PathBuf,
}

impl Paths {
    pub fn new(state_dir: &Path) -> Paths {
        Paths {
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("daemon.sock")
    }

    pub fn pidfile(&self) -> PathBuf {
        self.state_dir.join("daemon.pid")
    }

    pub fn store(&self) -> PathBuf {
        self.state_dir.join("state.redb")
    }

    pub fn log(&self) -> PathBuf {
        self.state_dir.join("daemon.log")
    }

    /// `COVE_SUPERVISOR=<state_dir>`, as found in a replica's environment.
    pub fn marker(&self) -> String {
        format!("{MARKER}={}", self.state_dir.display())
    }
}
