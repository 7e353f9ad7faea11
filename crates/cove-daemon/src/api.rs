//! The HTTP/JSON API between the CLI and the daemon (Unix socket, mode 0600).
//!
//! | method and path            | body          | answer                      |
//! |----------------------------|---------------|-----------------------------|
//! | `GET /v1/status`           |               | [`DaemonStatus`]            |
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
//!
//! Every call but `status` is about one project, named by the
//! [`PROJECT_HEADER`](crate::PROJECT_HEADER) header (its state directory):
//! a daemon of one host runs several. Errors answer 4xx/5xx with an
//! [`ApiError`]. `Names` with no service means every service.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Names {
    #[serde(default)]
    pub services: Vec<String>,
    /// `down`: also the running services the file no longer has.
    #[serde(default)]
    pub remove_orphans: bool,
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
    pub outcome: String,
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
    /// `waiting`, `starting`, `running`, `restarting`, `completed`, `failed`, `stopped`.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty (no health check / not running).
    pub health: String,
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
    pub state: String,
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
    pub protocol: String,
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
