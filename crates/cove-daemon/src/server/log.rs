//! The daemon's own log lines (daemon.log, its stderr), and times as its
//! records keep them.

use std::time::{SystemTime, UNIX_EPOCH};

use cove_runtime::logs;

pub(super) fn log(msg: &str) {
    eprintln!(
        "{} cove-daemon: {msg}",
        logs::format_time(SystemTime::now())
    );
}

pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
