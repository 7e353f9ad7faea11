//! What a daemon that is gone (SIGKILLed, crashed) may have left running,
//! and how it is stopped: by its reaper when it dies, by the next daemon
//! before it starts anything, by `cove down` when no daemon answers.
//!
//! Three signals, from the one a replica cannot leave to the weakest:
//! - its cgroups ([`cove_runtime::cgroup`]): every process in them,
//!   whatever it did to its session, group or environment;
//! - the process groups its store recorded, while their leader is still the
//!   process it recorded (its start time): a replica that rewrote its
//!   environment, where there are no cgroups;
//! - the marker in the environment ([`crate::MARKER`]), which finds a
//!   replica's children that left its group, where there are no cgroups.
//!
//! Each stops only what is cove's: cgroups cove made and owns, leaders of
//! cove's users that are the recorded processes, marked processes of
//! cove's users (see [`cove_runtime::process::marked`]).

use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Signal;

use crate::Paths;

/// What to stop: a whole daemon's leftovers, or one project's.
pub struct Leftovers {
    /// Cgroup trees (or a project's part of them).
    pub cgroups: Vec<PathBuf>,
    /// Recorded process groups: leader and its start.
    pub leaders: Vec<(u32, String)>,
    /// `NAME=value` every process to stop carries.
    pub marker: String,
}

impl Leftovers {
    /// Everything the daemon of `paths` left: its cgroup trees `cgroups`,
    /// the groups `store` recorded for any project, its marker.
    pub fn of_daemon(
        paths: &Paths,
        cgroups: Vec<PathBuf>,
        store: Option<&crate::store::Store>,
    ) -> Leftovers {
        Leftovers {
            cgroups,
            leaders: store.and_then(|s| s.leaders(None).ok()).unwrap_or_default(),
            marker: paths.marker(),
        }
    }

    /// What the daemon of `paths` left of project `key` (a host's daemon
    /// runs others too).
    pub fn of_project(paths: &Paths, key: &str, store: Option<&crate::store::Store>) -> Leftovers {
        Leftovers {
            cgroups: cove_runtime::cgroup::left(&paths.state_dir)
                .iter()
                .map(|tree| cove_runtime::cgroup::project(tree, key))
                .filter(|dir| dir.is_dir())
                .collect(),
            leaders: store
                .and_then(|s| s.leaders(Some(key)).ok())
                .unwrap_or_default(),
            marker: crate::project_marker(key),
        }
    }

    /// Stops them: `signal`, up to `grace` to exit, then SIGKILL; removes
    /// the cgroups. Blocking. Returns the processes it found.
    pub fn stop(&self, signal: Signal, grace: Duration) -> Vec<u32> {
        let mut found: Vec<u32> = Vec::new();
        for dir in &self.cgroups {
            found.extend(cove_runtime::cgroup::stop(dir, signal, grace));
        }
        // As root, also the system users recipes run servers as.
        let users = cove_runtime::recipe::service_uids();
        found.extend(cove_runtime::process::stop_groups(
            &self.leaders,
            &users,
            signal,
            grace,
        ));
        found.extend(cove_runtime::process::sweep(
            &self.marker,
            &users,
            signal,
            grace,
        ));
        found.sort_unstable();
        found.dedup();
        found
    }
}
