//! `GET /v1/backups`: the daemon's backup schedules of a project, per
//! service ([`BackupStatus`]): what `cove backup status` shows.
//! `POST /v1/backups/outcome`: how a backup or a drill run by hand ended
//! ([`BackupOutcome`]), recorded as a scheduled one's is (an event, a log
//! line, and so its alerts).

use serde::{Deserialize, Serialize};

/// What the daemon runs on a schedule for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// `cove backup SERVICE` (then its `keep`).
    Backup,
    /// A restore drill: `cove backup verify --latest SERVICE`.
    Verify,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Verify => "verify",
        }
    }
}

/// One run the daemon made: when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// RFC 3339, with the host's offset.
    pub started: String,
    pub ended: String,
    pub ok: bool,
    /// Its last line (`backed up db (pg_dump): 1f0c9a2e ...`, or the error).
    pub message: String,
}

/// A service with `x-cove.backup`, as the daemon schedules it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    pub service: String,
    /// `x-cove.backup.schedule`, as written; none: on demand only.
    pub schedule: Option<String>,
    /// When the next backup runs (RFC 3339, host's offset).
    pub next_backup: Option<String>,
    pub last_backup: Option<Run>,
    /// The restore drill's schedule (`x-cove.backup.verify`).
    pub verify: Option<String>,
    pub next_verify: Option<String>,
    pub last_verify: Option<Run>,
    /// What runs now, if anything.
    pub running: Option<RunKind>,
    /// Why a schedule is not acted on (it cannot be read), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// How a backup or a restore drill of a service run outside the daemon
/// (`cove backup`, `cove backup verify` typed by hand) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOutcome {
    pub service: String,
    /// A restore drill (`verify`), not a backup.
    #[serde(default)]
    pub drill: bool,
    pub ok: bool,
    /// Its last line, or the error (never a secret).
    pub message: String,
}

/// Set in the environment of a backup or drill the daemon starts: the run
/// does not send its [`BackupOutcome`] (the daemon records it itself).
pub const SCHEDULED_RUN_ENV: &str = "COVE_SCHEDULED_RUN";
