//! cove-daemon: one daemon per project (per state directory) runs the app.
//!
//! The CLI starts it on demand and talks to it over HTTP/JSON on a Unix
//! socket (`<state_dir>/daemon.sock`, mode 0600); see [`api`]. What should
//! run is written to the [`store`] before the daemon acts on it, so a daemon
//! killed at any point (SIGKILL included) starts again into the same desired
//! state, restart counts kept. No replica outlives it: its reaper (a child
//! holding a pipe from it, [`server::reaper`]) stops them when the pipe
//! closes, and a new daemon stops whatever is still left before it starts
//! anything (every replica carries [`MARKER`] in its environment, which finds
//! even a replica's own children).
//!
//! Invariant: the daemon only ever kills processes carrying its own state
//! directory's marker, by process group.

pub mod api;
pub mod client;
pub mod server;
pub mod store;

use std::path::{Path, PathBuf};

/// The environment variable every replica gets; its value is the state
/// directory, which names the daemon that owns it.
pub const MARKER: &str = "COVE_SUPERVISOR";

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
