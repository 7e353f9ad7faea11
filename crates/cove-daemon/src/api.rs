//! The HTTP/JSON API between the CLI and the daemon (Unix socket, mode 0600).
//!
//! | method and path            | body          | answer                      |
//! |----------------------------|---------------|-----------------------------|
//! | `GET /v1/status`           |               | [`DaemonStatus`]            |
//! | `GET /v1/projects`         |               | `[`[`HostProject`]`]`       |
//! | `POST /v1/up`              | [`UpRequest`] | [`Accepted`]                |
//! | `POST /v1/stop`            | [`Names`]     | [`Accepted`]                |
//! | `POST /v1/start`           | [`Names`]     | [`Accepted`]                |
//! | `POST /v1/restart`         | [`Names`]     | [`Accepted`]                |
//! | `POST /v1/down`            | [`Names`]     | [`Accepted`] (the daemon exits when nothing is left) |
//! | `GET /v1/ps`               |               | `[`[`Replica`]`]`           |
//! | `GET /v1/events?after=N&wait=MS` |         | `[`[`Event`]`]` (long poll) |
//! | `GET /v1/routes`           |               | [`Routes`]                  |
//! | `POST /v1/deploy`          | [`DeployRequest`] | [`Outcomes`] (when every rollout ended) |
//! | `POST /v1/scale`           | [`ScaleRequest`]  | [`Outcomes`]            |
//! | `POST /v1/rollback`        | [`RollbackRequest`] | [`Outcomes`]          |
//! | `GET /v1/history?service=S` |              | [`History`]                 |
//! | `POST /v1/kill`            | [`KillRequest`] | [`Acted`]                 |
//! | `POST /v1/pause`           | [`Names`]     | [`Acted`]                   |
//! | `POST /v1/unpause`         | [`Names`]     | [`Acted`]                   |
//! | `GET /v1/exec?service=S&index=N` |         | [`ExecTarget`]              |
//! | `GET /v1/backups`          |               | `[`[`BackupStatus`]`]`      |
//! | `GET /v1/alerts`           |               | `[`[`AlertView`]`]`         |
//! | `GET /v1/logs?...` ([`LogsRequest`]) |     | [`LogPage`] (long poll with `cursor` and `wait`) |
//!
//! Every call but `status` and `projects` is about one project, named by the
//! [`PROJECT_HEADER`](crate::PROJECT_HEADER) header (its state directory):
//! a daemon of one host runs several. Errors answer 4xx/5xx with an
//! [`ApiError`]. `Names` with no service means every service.
//!
//! States, health, outcomes and protocols are enums written as fixed
//! words (`words.rs`; a word a newer daemon says reads as `Other`); the
//! tests below pin the JSON of each answer that carries one.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod alerts;
mod backups;
mod logs;
mod words;

pub use alerts::{AlertView, DeliveryView};
pub use backups::{BackupOutcome, BackupStatus, Run, RunKind, SCHEDULED_RUN_ENV};
pub use logs::{LogLine, LogPage, LogsRequest};
pub use words::{EventState, Health, OutcomeKind, Protocol, ReplicaState};

/// `POST /v1/up`: run `services` (with their dependencies) of `app`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpRequest {
    pub app: cove_spec::App,
    pub project_dir: PathBuf,
    /// The services to run, dependencies included, in start order.
    pub services: Vec<String>,
    /// The age identity file that opens the app's secrets.
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// Stop and forget the running services the file no longer has.
    #[serde(default)]
    pub remove_orphans: bool,
    /// Services the file has but its active profiles leave out: not
    /// orphans; one that runs keeps running.
    #[serde(default)]
    pub disabled: Vec<String>,
    /// `up --force-recreate`: the asked services that run get new
    /// replicas even when nothing changed.
    #[serde(default)]
    pub force_recreate: bool,
    /// `up --no-recreate`: the asked services that run keep their
    /// replicas (and what they run) even when their definition changed.
    #[serde(default)]
    pub no_recreate: bool,
    /// `up --build`: the asked services that run are built again and
    /// their replicas replaced with what the build made (a deploy's build).
    #[serde(default)]
    pub build: bool,
    /// `up -t`: seconds the replicas this request replaces get to stop,
    /// over their `stop_grace_period`.
    #[serde(default)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Names {
    #[serde(default)]
    pub services: Vec<String>,
    /// `down`: also the running services the file no longer has.
    #[serde(default)]
    pub remove_orphans: bool,
    /// `-t`: seconds the replicas get to stop before they are killed,
    /// over their `stop_grace_period`.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `POST /v1/deploy`: build `services` (all wanted ones when empty) of
/// `app` and roll out the new revisions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRequest {
    pub app: cove_spec::App,
    pub project_dir: PathBuf,
    #[serde(default)]
    pub services: Vec<String>,
    /// The revision's message (the CLI's `--message`, else the git commit).
    #[serde(default)]
    pub message: String,
    /// Replace every replica without a build (a watched file changed).
    #[serde(default)]
    pub restart: bool,
    /// The age identity file that opens the app's secrets.
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// Services the file has but its active profiles leave out.
    #[serde(default)]
    pub disabled: Vec<String>,
}

/// `POST /v1/scale`: replica counts by service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScaleRequest {
    pub scale: std::collections::BTreeMap<String, u32>,
}

/// `POST /v1/rollback`: back to revision `to`, or the one before the
/// current.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub service: String,
    #[serde(default)]
    pub to: Option<u64>,
}

/// How a deploy, a scaling or a rollback ended, per service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcomes {
    /// Events of these commands come after it.
    pub seq: u64,
    pub results: Vec<ServiceOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOutcome {
    pub service: String,
    /// The revision it runs now.
    pub revision: u64,
    /// `started`, `deployed`, `unchanged`, `scaled`, `failed`, `stopped`.
    pub outcome: OutcomeKind,
    /// What happened, in words (why, when it failed).
    pub message: String,
    /// Whether it did what was asked.
    pub ok: bool,
}

/// `cove history SERVICE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    pub service: String,
    /// The revision its replicas run (none when not running).
    pub current: Option<u64>,
    pub revisions: Vec<RevisionInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub number: u64,
    pub time_ms: u64,
    pub message: String,
    pub digest: String,
    /// Whether its program's copy is still kept (a rollback needs no build).
    pub kept: bool,
    /// Whether a rollback holds the service at it.
    pub pinned: bool,
}

/// A request was taken; its events come after `seq`. `down` answers with
/// them (the daemon may exit right after), others with none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// What an `up` asked for: the revision of each service it runs (with
    /// replicas), which `up -d` waits for.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub revisions: std::collections::BTreeMap<String, u64>,
}

/// A preview of a project (`GET /v1/previews`, the baseline's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewInfo {
    pub name: String,
    /// Its own key (state directory).
    pub key: String,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// The services it runs.
    pub run: Vec<String>,
    /// The services it shares with the baseline.
    pub shared: Vec<String>,
    /// `awake` or `asleep`.
    pub state: String,
    /// Memory of its replicas (cgroups' `memory.current`, else the RSS of
    /// their processes).
    pub memory_bytes: u64,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When a request last went to its replicas; `None`: never.
    #[serde(default)]
    pub last_request_ms: Option<u64>,
}

/// `POST /v1/preview/sleep` (the preview's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewSleep {
    pub asleep: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub version: String,
    pub state_dir: PathBuf,
    /// Whether it is the host's daemon (several projects; it stays up when
    /// they are down) rather than one project's.
    pub host: bool,
    /// The asking project's services being run, in start order.
    pub running: Vec<String>,
    /// Those of them asleep: scaled to zero (`autoscale.min: 0`, started
    /// by the next request; `cove scale`), or with no replica planned
    /// (`deploy.replicas: 0`): none to wait for.
    #[serde(default)]
    pub asleep: Vec<String>,
    /// The last event's sequence number.
    pub seq: u64,
    /// `GET /v1/logs` long polls (follows) in progress.
    #[serde(default)]
    pub log_follows: usize,
}

/// A project a daemon runs (`GET /v1/projects`, no project header): its
/// key and what its state directory says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProject {
    /// Its state directory on the daemon's host (the project header's
    /// value for calls about it).
    pub key: String,
    /// Its name, environment, directory and files (`project.json`; none
    /// when the state directory does not say).
    pub name: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    pub project_dir: Option<PathBuf>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
    pub replicas: Vec<Replica>,
}

/// One replica, as `cove ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub service: String,
    pub replica: u32,
    /// The revision it runs (0 when none is recorded).
    #[serde(default)]
    pub revision: u64,
    /// Being drained and stopped (replaced, or scaled away).
    #[serde(default)]
    pub retiring: bool,
    /// `waiting`, `starting`, `running`, `restarting`, `completed`,
    /// `failed`, `stopping`, `stopped`.
    pub state: ReplicaState,
    /// `healthy`, `unhealthy`, `starting`, or empty (no health check / not running).
    pub health: Health,
    /// The state in words (`failed: exited with code 3`).
    pub detail: String,
    pub pid: Option<u32>,
    /// `address:port` the replica listens on.
    pub address: String,
    /// The container's name, for a service run as containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub restarts: u32,
    /// Milliseconds since the Unix epoch when it entered its state.
    pub since_ms: u64,
    /// Whether `cove up -d` may stop waiting for it.
    pub ready: bool,
    /// Running without a health check, up `x-cove.ready_after`, but this
    /// port of it refuses connections (it is not ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusing: Option<u16>,
    /// Its service is no longer in the compose file (it runs as it was
    /// defined until `--remove-orphans`).
    #[serde(default)]
    pub orphan: bool,
    /// How it last exited, when it did: 0 when completed, the code of a
    /// failed or restarting one's exit (none when killed by a signal, or
    /// when it failed without running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// A replica changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The project's key (its state directory).
    #[serde(default)]
    pub project: String,
    pub seq: u64,
    pub time_ms: u64,
    pub service: String,
    pub replica: u32,
    /// The revision the replica runs.
    #[serde(default)]
    pub revision: u64,
    /// A replica's state, or `deploy` for a step of a deploy or scaling
    /// (replica 0, `detail` says what).
    pub state: EventState,
    pub detail: String,
    pub pid: Option<u32>,
    pub restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// `POST /v1/kill`: `signal` (its number) to the replicas of `services`
/// (all when empty). SIGKILL and a service's own stop signal stop it (as
/// `cove stop` does, with that signal); another is only delivered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KillRequest {
    #[serde(default)]
    pub services: Vec<String>,
    pub signal: i32,
}

/// What `kill`, `pause` and `unpause` did, replica by replica.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Acted {
    /// Events of this command come after it.
    pub seq: u64,
    pub replicas: Vec<ActedReplica>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActedReplica {
    pub service: String,
    pub replica: u32,
    /// Why it could not be done; none when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/exec`: where and how a running replica runs, for `cove exec`
/// to run a command beside it. Secrets' values are not in it: those set
/// as variables are named with the file that holds them, in the
/// replica's secrets directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecTarget {
    pub service: String,
    pub replica: u32,
    pub pid: Option<u32>,
    /// Its container's name, for a service run as containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Its working directory (natively).
    pub workdir: PathBuf,
    /// Its environment (natively), but the variables in `secret_env`.
    pub env: Vec<(String, String)>,
    /// Variables whose value is a secret: (name, file holding it).
    #[serde(default)]
    pub secret_env: Vec<(String, PathBuf)>,
}

/// The gateway of a project, as `cove routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// `http://ADDRESS:PORT`, the gateway's origin; empty when the app has
    /// no routes.
    pub url: String,
    /// Whether the gateway is running (the app is up).
    pub running: bool,
    /// `https://ADDRESS:PORT` of its HTTPS listener; empty without TLS.
    #[serde(default)]
    pub tls_url: String,
    /// The local CA's certificate, to trust, when it issued the HTTPS
    /// listener's certificate.
    #[serde(default)]
    pub ca: String,
    pub routes: Vec<RouteInfo>,
}

/// One route and where it leads now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// `http`, `grpc` or `tcp`.
    pub protocol: Protocol,
    /// Host it matches; empty: any.
    pub host: String,
    /// Path prefix it matches (HTTP routes).
    pub path: String,
    pub strip_prefix: bool,
    /// The address of a TCP route.
    pub listen: String,
    /// The URL to reach it at (HTTP routes).
    pub url: String,
    pub service: String,
    pub port: u16,
    /// `address:port` of the replicas it sends to now (healthy ones).
    pub targets: Vec<String>,
    /// The service's own address (others reach it by name there), not a
    /// route of the app's.
    #[serde(default)]
    pub internal: bool,
}

#[cfg(test)]
mod tests {
    //! The JSON of every answer that carries a state word, pinned as it
    //! was when those words were strings: the API and every `--format
    //! json` output (`ps`, `routes`, `deploy`) are read by scripts.

    use super::*;

    fn replica(state: &str, health: &str) -> Replica {
        Replica {
            service: "web".into(),
            replica: 2,
            revision: 3,
            retiring: false,
            state: state.into(),
            health: health.into(),
            detail: "running (pid 42)".into(),
            pid: Some(42),
            address: "127.0.0.1:8080".into(),
            container: None,
            restarts: 1,
            since_ms: 1_700_000_000_000,
            ready: true,
            refusing: None,
            orphan: false,
            exit_code: None,
        }
    }

    fn event(state: &str) -> Event {
        Event {
            project: "/p/.cove".into(),
            seq: 7,
            time_ms: 1_700_000_000_000,
            service: "web".into(),
            replica: 1,
            revision: 2,
            state: state.into(),
            detail: "stopped".into(),
            pid: None,
            restarts: 0,
        }
    }

    #[test]
    fn a_replica_is_written_as_before() {
        for (state, health) in [
            ("waiting", ""),
            ("starting", ""),
            ("running", "starting"),
            ("running", "healthy"),
            ("running", "unhealthy"),
            ("restarting", ""),
            ("completed", ""),
            ("failed", ""),
            ("stopping", ""),
            ("stopped", ""),
        ] {
            let json = serde_json::to_string(&replica(state, health)).unwrap();
            assert_eq!(
                json,
                format!(
                    r#"{{"service":"web","replica":2,"revision":3,"retiring":false,"state":"{state}","health":"{health}","detail":"running (pid 42)","pid":42,"address":"127.0.0.1:8080","restarts":1,"since_ms":1700000000000,"ready":true,"orphan":false}}"#
                )
            );
            let back: Replica = serde_json::from_str(&json).unwrap();
            assert_eq!(back, replica(state, health));
        }
        // `cove ps --format json`: pretty, as a list.
        let pretty = serde_json::to_string_pretty(&vec![replica("running", "")]).unwrap();
        assert_eq!(
            pretty,
            r#"[
  {
    "service": "web",
    "replica": 2,
    "revision": 3,
    "retiring": false,
    "state": "running",
    "health": "",
    "detail": "running (pid 42)",
    "pid": 42,
    "address": "127.0.0.1:8080",
    "restarts": 1,
    "since_ms": 1700000000000,
    "ready": true,
    "orphan": false
  }
]"#
        );
    }

    #[test]
    fn an_event_is_written_as_before() {
        for state in [
            "waiting",
            "starting",
            "running",
            "restarting",
            "completed",
            "failed",
            "stopping",
            "stopped",
            "deploy",
            "backup",
            "backup-failed",
            "verify",
            "verify-failed",
        ] {
            let json = serde_json::to_string(&event(state)).unwrap();
            assert_eq!(
                json,
                format!(
                    r#"{{"project":"/p/.cove","seq":7,"time_ms":1700000000000,"service":"web","replica":1,"revision":2,"state":"{state}","detail":"stopped","pid":null,"restarts":0}}"#
                )
            );
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, event(state));
        }
        // A scheduled backup's outcome is no replica's state.
        assert_eq!(EventState::from("backup-failed"), EventState::BackupFailed);
        assert!(
            EventState::BackupFailed.is_failure() && EventState::BackupFailed.replica().is_none()
        );
        assert!(!EventState::Backup.is_failure());
    }

    #[test]
    fn outcomes_are_written_as_before() {
        for word in [
            "started",
            "deployed",
            "unchanged",
            "scaled",
            "failed",
            "stopped",
        ] {
            let outcomes = Outcomes {
                seq: 9,
                results: vec![ServiceOutcome {
                    service: "api".into(),
                    revision: 4,
                    outcome: word.into(),
                    message: "revision 4 started".into(),
                    ok: true,
                }],
            };
            let json = serde_json::to_string(&outcomes).unwrap();
            assert_eq!(
                json,
                format!(
                    r#"{{"seq":9,"results":[{{"service":"api","revision":4,"outcome":"{word}","message":"revision 4 started","ok":true}}]}}"#
                )
            );
            let back: Outcomes = serde_json::from_str(&json).unwrap();
            assert_eq!(back.results, outcomes.results);
        }
    }

    #[test]
    fn routes_are_written_as_before() {
        for protocol in ["http", "grpc", "tcp"] {
            let routes = Routes {
                url: "http://127.0.0.1:2684".into(),
                running: true,
                tls_url: String::new(),
                ca: String::new(),
                routes: vec![RouteInfo {
                    protocol: protocol.into(),
                    host: String::new(),
                    path: "/".into(),
                    strip_prefix: false,
                    listen: String::new(),
                    url: "http://127.0.0.1:2684/".into(),
                    service: "web".into(),
                    port: 8080,
                    targets: vec!["127.0.0.2:8080".into()],
                    internal: false,
                }],
            };
            let json = serde_json::to_string(&routes).unwrap();
            assert_eq!(
                json,
                format!(
                    r#"{{"url":"http://127.0.0.1:2684","running":true,"tls_url":"","ca":"","routes":[{{"protocol":"{protocol}","host":"","path":"/","strip_prefix":false,"listen":"","url":"http://127.0.0.1:2684/","service":"web","port":8080,"targets":["127.0.0.2:8080"],"internal":false}}]}}"#
                )
            );
            let back: Routes = serde_json::from_str(&json).unwrap();
            assert_eq!(back, routes);
        }
    }
}
