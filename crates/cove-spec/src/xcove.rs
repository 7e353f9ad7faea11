//! The `x-cove` extension: what Compose cannot say, in the same file.
//!
//! `x-cove` at the top level configures the project (gateway, previews,
//! defaults); `x-cove` inside a service says how cove runs it natively, which
//! routes of the gateway reach it, how it scales, how it is backed up, how it
//! behaves in previews and which alerts watch it. The schema is versioned by
//! the top-level `version` (currently 1) and generated from these types into
//! `schema/x-cove.schema.json` (a test fails when the committed copy is stale).
//! Fields may be added in later versions; unknown fields are errors, except
//! `x-*` ones, which the loader ignores.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gateway::{Listen, Size, Timeout};
use crate::policy::Written;
use crate::units::ComposeDuration;

/// The x-cove schema version this build understands.
pub const VERSION: u32 = 1;

/// Top-level `x-cove`: project-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[schemars(title = "x-cove (project)", extend("patternProperties" = {"^x-": {}}))]
pub struct ProjectExt {
    /// Schema version of this block. Only `1` exists today; it is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Where cove keeps state, logs and the data of native databases,
    /// relative to the project directory. Default: `.cove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// Which daemon runs the app: `project` (one per project, in its state
    /// directory, gone when the app is down; the default) or `host` (one per
    /// host, for servers: it runs every project that asks and stays up).
    /// The `COVE_DAEMON` environment variable overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonScope>,
    /// The gateway: one origin in front of every routed service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// Copies of each service's program kept for rollbacks (the newest, and
    /// any in use). Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_artifacts: Option<u32>,
    /// Preview environments per branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previews: Option<Previews>,
    /// How services run unless they say otherwise (`x-cove.driver` of a
    /// service): `native` (processes on the host; an image without a recipe
    /// is then an error; `process` says the same) or `docker` (every `image`/`build` service as containers,
    /// recipes' images too). Default: natively when cove can (a recipe, or
    /// `x-cove.run`), else as containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// The environment chosen with `--env NAME` (or `COVE_ENV`); set by
    /// cove, shown by `cove config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The encrypted secrets file that `x-cove.store` secrets come from,
    /// relative to the project directory. Default: `cove.secrets.yaml`, or
    /// `cove.secrets.NAME.yaml` with `--env NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<String>,
    /// Named environments (`--env NAME`) and the hosts each runs on:
    /// `{prod: {hosts: [ssh://deploy@web1, ssh://deploy@web2:2222]}}`.
    /// `cove deploy --env NAME` ships the app to each host over SSH and
    /// deploys it there (docs/guides/hosts.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, Environment>,
    /// Where backups are stored (`targets`, `copies`); a service's own
    /// `x-cove.backup` says when and how it is backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupTargets>,
    /// Where the alerts of the services (`x-cove.alerts`) are sent when
    /// they fire and when they resolve: any of a webhook, a command and an
    /// Alertmanager. Without it alerts are still evaluated, recorded as
    /// events and listed by `cove alerts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// Set by `cove preview up`, never read from a file (the schema has no
    /// such field): this app is a preview of another project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub preview_of: Option<PreviewOf>,
    /// Services borrowed from another environment on this host instead of
    /// run here: `{env: staging, services: [db, redis]}`. The rest of the
    /// app runs here and reaches them at that environment's addresses;
    /// writes go to its data (never forked). `cove up --borrow
    /// ENV[:SERVICE,...]` wins over it (docs/guides/borrowing.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrow: Option<Borrow>,
    /// Set by `cove up` from `borrow` (or `--borrow`), never read from a
    /// file (the schema has no such field): each borrowed service, where
    /// the other environment serves it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub borrowed: BTreeMap<String, Borrowed>,
}

/// `x-cove.borrow`: which environment lends which services.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Borrow {
    /// The environment that runs them on this host: a name given to
    /// `--env` in this project's directory (`staging`), or the directory
    /// of another checkout (a path with a `/`: `../main`), whose default
    /// environment lends them. It must be running.
    pub env: String,
    /// The services borrowed, each one the app has and the environment
    /// runs. Empty or left out: every service the environment runs but
    /// those `cove up` is asked to start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// One borrowed service (see [`ProjectExt::borrowed`]): the environment
/// that runs it and the address references to it are rewritten to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Borrowed {
    /// The environment it is borrowed from, as named (`staging`).
    pub env: String,
    /// Its address there: the other environment's
    /// `Plan::reference_address` of it.
    pub address: std::net::Ipv4Addr,
    /// Its first port there (what `cove ps` shows).
    pub port: u16,
}

/// What makes an app a preview (`cove preview up`): its name, its
/// baseline, and what it shares with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PreviewOf {
    /// The preview's name (a DNS label): its key in requests
    /// (`X-Cove-Preview`) and the first label of its hosts.
    pub name: String,
    /// The baseline's key: its state directory, canonical.
    pub base: String,
    /// The git ref it was made from, if it was (`--ref`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The services it runs: those that differ from the baseline's, and
    /// those marked `x-cove.preview: run` or `fork`.
    pub run: Vec<String>,
    /// The services it shares with the baseline, each at the address the
    /// baseline's services reach it at: references to them go there.
    pub shared: BTreeMap<String, std::net::Ipv4Addr>,
    /// When it was first made (milliseconds since the Unix epoch).
    pub created_ms: u64,
}

/// `x-cove.environments.NAME`: where an environment runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Environment {
    /// The hosts it runs on, `ssh://[USER@]HOST[:PORT]` each (as `cove
    /// --host` takes them), each with cove installed (`cove server
    /// install`). None: it runs where cove is typed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// How a deploy goes across the hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// `x-cove.environments.NAME.rollout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Rollout {
    /// Hosts deployed at once. Default: 1 (one host after the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub hosts_at_once: Option<u32>,
}

/// `ssh://[USER@]HOST[:PORT]`, as `docker -H ssh://` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAddress {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::str::FromStr for SshAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<SshAddress, String> {
        let Some(rest) = text.strip_prefix("ssh://") else {
            return Err(format!(
                "`{text}` is not an ssh:// address; write ssh://USER@HOST or ssh://USER@HOST:PORT"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', ' ']) {
            return Err(format!(
                "`{text}`: an ssh:// address has no path; write ssh://USER@HOST[:PORT]"
            ));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() && !u.contains(':') => (Some(u.to_string()), h),
            Some(_) => {
                return Err(format!(
                    "`{text}`: the user before `@` is empty or has a password; keys or the agent log in"
                ));
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: a `[` without its `]`"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(format!("`{text}` names no host"));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{text}`: the port `{p}` is not a number 1-65535"))
            })
            .transpose()?;
        Ok(SshAddress {
            user,
            host: host.to_string(),
            port,
        })
    }
}

/// `x-cove.notify`: where alert notifications go. Each is delivered with
/// retries (backoff, bounded); a delivery that failed is kept (across a
/// daemon's restart) and tried again, never sent twice once it succeeded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Notify {
    /// `POST` each notification to this URL (`http://HOST:PORT/PATH`;
    /// plain HTTP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The webhook's body: `json` (one object per notification: `status`
    /// `firing` or `resolved`, `alert`, `service`, `project`,
    /// `environment`, `condition`, `value`, `since`, `ended`; the default)
    /// or `slack` (`{"text": "..."}`, what Slack's incoming webhooks and
    /// Mattermost read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<NotifyFormat>,
    /// Run this command for each notification (a string by `sh -c`, a
    /// list as is), with the notification (the `json` object, one line) on
    /// stdin, in the project's directory; it has 30 s.
    /// A non-zero exit is a failed delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<StringOrList>,
    /// An Alertmanager (`http://HOST:PORT`): each firing alert is posted to
    /// its API v2 (`/api/v2/alerts`) with labels `alertname`, `service`,
    /// `project`, `severity` and sent again every minute while it fires;
    /// its resolution is posted with `endsAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<String>,
}

/// The body of `x-cove.notify.webhook`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// One JSON object per notification.
    #[default]
    Json,
    /// `{"text": "..."}`: Slack's (and Mattermost's) incoming webhooks.
    Slack,
}

/// A plain HTTP URL: `http://HOST[:PORT][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The host as written (a name, an IPv4 address, or `[IPv6]`).
    pub host: String,
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `url`; what is wrong with it otherwise.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!("`{url}` is not an `http://` URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "`{url}` has credentials in it, which cove does not send"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("`{url}`: `{p}` is not a port"))?;
                (h, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("`{url}` names no host"));
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// `x-cove` of a top-level secret: where its value comes from, instead of
/// `file` or `environment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[schemars(title = "x-cove (secret)", extend("patternProperties" = {"^x-": {}}))]
pub struct SecretExt {
    /// The secret's name in the project's encrypted secrets file
    /// (`cove secrets set NAME`).
    #[schemars(length(min = 1))]
    pub store: String,
}

/// `x-cove` of a service's secret (long form): how the replicas get it,
/// besides the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[schemars(title = "x-cove (service secret)", extend("patternProperties" = {"^x-": {}}))]
pub struct SecretRefExt {
    /// Also pass the value in this environment variable (only where a
    /// program cannot read a file: the value is then in the process's
    /// environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: Option<String>,
}

/// Which daemon runs an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DaemonScope {
    /// One daemon per project (laptops).
    Project,
    /// One daemon per host (servers).
    Host,
}

/// Gateway settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Gateway {
    /// Address the gateway listens on, `HOST:PORT`. Default:
    /// `127.0.0.1:2683` (2683 spells COVE on a phone keypad; few services
    /// use it, and services listen on their own addresses anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Written<Listen>>,
    /// Address of the gateway's Prometheus endpoint (`GET /metrics`),
    /// `HOST:PORT`, e.g. `127.0.0.1:9683`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Written<Listen>>,
    /// Most client connections open at once (HTTP and TCP routes together);
    /// more wait in the listen queue. Default: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// TLS listener: `HOST:PORT`, with `cert` and `key` files (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// What the access log (`cove logs gateway`) keeps of each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
}

/// The gateway's access log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct AccessLog {
    /// A request's query string: `redact` (default) keeps each parameter's
    /// name and logs `***` for its value (`?token=***&page=***`), `keep`
    /// logs it whole, `drop` logs none of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<AccessLogQuery>,
}

/// What the access log keeps of a query string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogQuery {
    // Names kept, values `***` (plain comments: the schema stays a
    // plain `enum` of names).
    #[default]
    Redact,
    Keep,
    Drop,
}

/// TLS settings of the gateway: an HTTPS listener for the same routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Tls {
    /// Address of the HTTPS listener, `HOST:PORT`, e.g. `127.0.0.1:2443`.
    pub listen: Written<Listen>,
    /// Certificate chain (PEM) of the default certificate, with `key`;
    /// relative to the project directory. Without any certificate, cove's
    /// local CA issues one for `localhost`, `*.localhost`, `127.0.0.1` and
    /// every route's host (`SERVICE.localhost` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Private key (PEM) of `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// More certificates, each served to clients asking for a name it is
    /// valid for (SNI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertFiles>,
}

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CertFiles {
    pub cert: String,
    pub key: String,
}

/// Preview environments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Previews {
    /// Host name suffix: environment `NAME` is served at `NAME.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Idle time after which a preview sleeps (duration, e.g. `15m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_after: Option<String>,
    /// Lifetime after which a preview is removed (duration, e.g. `72h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Most previews awake at once; the least recently used sleeps first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_awake: Option<u32>,
    /// Most memory the awake previews may take together (a size, e.g.
    /// `2GiB`): beyond it the least recently used sleep until the rest
    /// fit (the one a request just woke stays awake), each said in an
    /// event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// Per-service `x-cove`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[schemars(title = "x-cove (service)", extend("patternProperties" = {"^x-": {}}))]
pub struct ServiceExt {
    /// The command that runs the service natively (a string is split like a
    /// shell would, without running a shell). A service with `run` needs no
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<StringOrList>,
    /// Working directory of `run` and `build`, relative to the Compose file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// A command run once before the service starts (e.g. `cargo build -p api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<StringOrList>,
    /// How to run it: `native` (processes on the host; also `process`) or
    /// `docker` (as containers).
    /// Default: the project's `x-cove.driver`, else natively when cove can
    /// (a recipe, or `run`), else as containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// Built-in native recipe to use (`mariadb`, `mysql`, `postgres`, `redis`,
    /// `activemq`, `rabbitmq`); by default guessed from `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// A health probe cove runs itself, instead of a `healthcheck` command:
    /// `{http: /healthz}` or `{tcp: 5432}`. Timings come from the service's
    /// `healthcheck` (`interval`, `timeout`, `retries`, `start_period`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthProbe>,
    /// How long a replica without a health check must have run before it
    /// counts as ready (duration; default `1s`; `0s`: at once): one that
    /// exits sooner failed to start. It must also accept TCP connections on
    /// the service's ports (`ports`, `expose`). `up -d`, `start`, `scale`
    /// and `deploy` wait for it; the gateway sends it requests from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ready_after: Option<ComposeDuration>,
    /// Routes on the gateway that reach this service. Without this field a
    /// service with a port gets the default route (`SERVICE.localhost`);
    /// `routes: []` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// Autoscaling bounds; `deploy.replicas` is the starting point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
    /// Scheduled backups of a stateful service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// Behaviour in preview environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewMode>,
    /// Alerts on this service's metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
}

/// A probe run by cove: exactly one of `http` and `tcp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct HealthProbe {
    /// `GET` this path on the replica's address; healthy on a 2xx or 3xx answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Connect to this port on the replica's address; healthy when it accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u16>,
    /// Port of the `http` probe. Default: the replica's `PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A command as a string or a list of arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    String(String),
    List(Vec<String>),
}

/// Which driver runs a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// Native processes on the host.
    Native,
    /// The same as `native`.
    Process,
    /// Docker containers (Docker Engine API).
    Docker,
}

/// A gateway route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Route {
    /// Path prefix, e.g. `/api`. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host name to match, e.g. `api.example.test`. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Remove the matched path prefix before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
    /// The service's port to forward to (its only or first port by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `http` (default), `grpc` (HTTP/2 to the service) or `tcp` (layer 4:
    /// bytes both ways, on a port of its own, see `listen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<RouteProtocol>,
    /// For `tcp` routes (required there): the address the gateway listens
    /// on for this route, `HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Written<Listen>>,
    /// How long the service may take to answer (its response headers), a
    /// duration such as `30s`. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Written<Timeout>>,
    /// Largest request body accepted, a size such as `10m`; larger ones
    /// are answered 413. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Written<Size>>,
}

/// Protocol of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteProtocol {
    Http,
    Grpc,
    Tcp,
}

/// Autoscaling bounds and target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Autoscale {
    /// Fewest replicas (0 allows scale to zero).
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Target in-flight requests per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_concurrency: Option<f64>,
    /// Target requests per second per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
    /// How long the load must stay high before scaling up (duration;
    /// default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_after: Option<String>,
    /// How long the load must stay low before scaling down (duration;
    /// default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_after: Option<String>,
}

/// Backups of a stateful service (`cove backup`, `cove restore`, `cove
/// backup verify`); see docs/guides/backups.md.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Backup {
    /// When the daemon takes a backup: cron (5 fields, or 6 with seconds
    /// first), e.g. `0 3 * * *`, or `hourly`, `daily`, `weekly`, `monthly`.
    /// None: only on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Which backups to keep after each one: a count of the newest
    /// (`keep: 7`), or per period (`keep: {daily: 7, weekly: 4, monthly:
    /// 6}`). The newest verified backup is always kept. None: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Keep>,
    /// How the data is taken. Default: by the service's recipe
    /// (`pg_dump`, `mariadb-dump`, `redis-rdb`, ...), or `command` when
    /// `command` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<BackupMethod>,
    /// For `method: command`: a command, run in the service's environment,
    /// that writes the dump on standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<StringOrList>,
    /// For `method: command`: a command, run in the service's environment,
    /// that reads a dump on standard input and restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<StringOrList>,
    /// For `method: files`: the paths to take (relative to the service's
    /// working directory, or named volumes as `volume:NAME`). Default: the
    /// service's data directory and named volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// For `method: files`: what happens to the service while its files are
    /// read: `pause` (its processes stopped with SIGSTOP, then continued;
    /// the default) or `stop` (stopped, then started and waited for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce: Option<Quiesce>,
    /// The targets (names under the project's `x-cove.backup.targets`) each
    /// backup is stored to. Default: the project's `copies`, else the local
    /// repository in the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<String>>,
    /// Restore drills: a schedule (`weekly`, `daily`, cron), or `{schedule,
    /// command}` with a command checking the scratch instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// Which backups to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Keep {
    /// The newest N.
    Last(u32),
    /// The newest of each of the last N periods.
    Policy(KeepPolicy),
}

/// The newest backup of each of the last N hours, days, ... (restic's
/// `forget --keep-*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct KeepPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

/// How a service's data is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupMethod {
    /// `pg_dump -Fc` of the database (postgres recipe's default).
    #[serde(rename = "pg_dump")]
    PgDump,
    /// `pg_basebackup` of the whole cluster.
    #[serde(rename = "pg_basebackup")]
    PgBasebackup,
    /// `mariadb-dump --single-transaction` (mariadb recipe's default).
    #[serde(rename = "mariadb-dump")]
    MariadbDump,
    /// `mariabackup` (physical, for large data).
    #[serde(rename = "mariabackup")]
    Mariabackup,
    /// `BGSAVE` and the RDB file (redis recipe's default).
    #[serde(rename = "redis-rdb")]
    RedisRdb,
    /// RabbitMQ's definitions export (rabbitmq recipe's default).
    #[serde(rename = "rabbitmq-definitions")]
    RabbitmqDefinitions,
    /// An LMDB environment, copied by LMDB's own copy function.
    #[serde(rename = "lmdb")]
    Lmdb,
    /// The files of `paths`, with the service paused or stopped.
    #[serde(rename = "files")]
    Files,
    /// `command`'s standard output.
    #[serde(rename = "command")]
    Command,
}

/// What a service does while its files are backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quiesce {
    Pause,
    Stop,
}

/// When restore drills run, and how the restored data is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Verify {
    /// A schedule: `daily`, `weekly`, `monthly` or cron.
    Schedule(String),
    Full(VerifyFull),
}

/// `verify: {schedule, command}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct VerifyFull {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A command run against the scratch instance (its address in
    /// `COVE_VERIFY_HOST` and `COVE_VERIFY_PORT`); exit 0 means good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<StringOrList>,
}

/// Project-wide `x-cove.backup`: where backups are stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct BackupTargets {
    /// Named targets: `{url: DIR}`, `{url: sftp://USER@HOST[:PORT]/PATH}`,
    /// `{url: s3://BUCKET/PREFIX, endpoint, region}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, BackupTarget>,
    /// The targets every service's backups go to unless it says otherwise.
    /// Default: the local repository in the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<String>>,
}

/// A place backups are stored: a restic repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct BackupTarget {
    /// A directory (absolute, or relative to the project directory),
    /// `sftp://USER@HOST[:PORT]/PATH`, or `s3://BUCKET[/PREFIX]`.
    pub url: String,
    /// S3: the endpoint (e.g. `https://s3.eu-west-1.amazonaws.com`, or a
    /// compatible server's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3: the region. Default: `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// What a preview environment does with this service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreviewMode {
    /// Use the baseline's instance (default for stateful services).
    Share,
    /// Run the preview's own instance.
    Run,
    /// Run an own instance with data forked from the latest backup.
    Fork,
}

/// An alert rule: it fires when `when` has held for `for`, and resolves
/// when it no longer holds (see docs/guides/alerts.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Alert {
    /// Name shown in notifications; one per service.
    pub name: String,
    /// The condition: a fact (`backup_failed`, `verify_failed`,
    /// `unhealthy`, `deploy_failed`) or a figure compared with a number,
    /// counted over a window (`restarts[10m] > 3`, `error_rate[5m] > 0.05`,
    /// `p99_ms[5m] > 500`, `memory_mb > 512`); see docs/guides/alerts.md.
    pub when: String,
    /// How long the condition must hold before the alert fires (duration). Default: immediately.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "for")]
    pub for_: Option<String>,
}

/// The JSON schema of `x-cove`: the project block at the root, the service
/// block under `$defs/ServiceExt`.
pub fn json_schema() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let service = generator.subschema_for::<ServiceExt>();
    let secret = generator.subschema_for::<SecretExt>();
    let secret_ref = generator.subschema_for::<SecretRefExt>();
    let root = generator.into_root_schema_for::<ProjectExt>();
    let mut value = serde_json::to_value(root).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "$comment".into(),
            format!(
                "Generated by `cargo run -p cove -- schema --write` (x-cove version {VERSION}); do not edit."
            )
            .into(),
        );
        obj.insert(
            "x-service".into(),
            serde_json::to_value(service).unwrap_or_default(),
        );
        obj.insert(
            "x-secret".into(),
            serde_json::to_value(secret).unwrap_or_default(),
        );
        obj.insert(
            "x-secret-ref".into(),
            serde_json::to_value(secret_ref).unwrap_or_default(),
        );
    }
    value
}

/// The names `recipe` takes (cove's built-in recipes, and their aliases).
pub const RECIPES: [&str; 8] = [
    "redis",
    "mariadb",
    "mysql",
    "postgres",
    "postgresql",
    "activemq",
    "activemq-classic",
    "rabbitmq",
];
