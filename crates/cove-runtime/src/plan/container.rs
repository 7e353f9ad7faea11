//! Services run as containers: what the engine is given, from the
//! service's Compose settings (image or build, mounts and volumes, limits,
//! capabilities, network names, …).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use cove_spec::App;
use cove_spec::model::Service;
use cove_spec::xcove::Driver;

/// How a service runs as containers.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    /// The image to run: `image:`, or the tag a `build:` makes.
    pub image: String,
    pub build: Option<BuildPlan>,
    /// `entrypoint:`; `None`: the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `command:`; `None`: the image's.
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// The project's network (made on first use) and its subnet.
    pub network: String,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// Labels naming the project (its state directory).
    pub project: String,
    /// The network's interface on the host (`cove<net>`), and the
    /// addresses of native services to put on it (their
    /// [`ServicePlan::bridge_address`](super::ServicePlan::bridge_address)).
    pub bridge: String,
    pub host_addresses: Vec<Ipv4Addr>,
    /// `SOURCE:TARGET[:ro]`: bind mounts (absolute sources) and named
    /// volumes (`NETWORK_NAME`, Docker volumes kept until `down --volumes`).
    pub binds: Vec<String>,
    /// `tmpfs` mounts: target → options.
    pub tmpfs: Vec<String>,
    /// The service's `labels`.
    pub labels: Vec<(String, String)>,
    /// `deploy.resources.limits`: bytes, CPUs in billionths, pids.
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
    /// `ulimits`: name, soft, hard.
    pub ulimits: Vec<(String, i64, i64)>,
    /// `cap_add`, `cap_drop`, `extra_hosts` (`NAME:ADDRESS`), `init`,
    /// `privileged`, `read_only`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub init: bool,
    pub privileged: bool,
    pub read_only: bool,
    /// `healthcheck: {disable: true}` (or `test: [NONE]`): the image's
    /// own healthcheck is turned off too.
    pub health_disabled: bool,
    /// More names on the network: the `aliases` of every network the
    /// service lists (all of them are the project's one network).
    pub aliases: Vec<String>,
    /// `hostname`, `sysctls`, `shm_size` (bytes), `security_opt`,
    /// `devices` (`HOST:CONTAINER[:PERMISSIONS]`), `group_add`, `dns`,
    /// `dns_search`: passed to the engine as they are.
    pub hostname: Option<String>,
    pub sysctls: Vec<(String, String)>,
    pub shm_size: Option<i64>,
    pub security_opt: Vec<String>,
    pub devices: Vec<String>,
    pub group_add: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
}

/// Compose `build:`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildPlan {
    pub context: PathBuf,
    /// Never sent with the context: cove's state directory (its socket,
    /// store, logs and data), wherever `x-cove.state_dir` puts it.
    pub skip: Vec<PathBuf>,
    pub dockerfile: Option<String>,
    pub args: Vec<(String, String)>,
    pub target: Option<String>,
    /// `build.labels`.
    pub labels: Vec<(String, String)>,
}

/// The Docker volume of the app's named volume `name`.
pub fn volume_name(app: &str, net: u16, name: &str) -> String {
    format!("cove-{app}-{net}_{name}")
}

/// A list of strings of the Compose file (empty when absent).
pub(super) fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A string or a list of strings and numbers (`dns`, `group_add`).
pub(super) fn scalars(v: Option<&serde_json::Value>) -> Vec<String> {
    let one = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A map, or a list of `KEY=VALUE` (`sysctls`).
pub(super) fn pairs(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    match v {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        other => strings(other)
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect(),
    }
}

/// `devices`: `HOST[:CONTAINER[:PERMISSIONS]]`, or the long form
/// (`source`, `target`, `permissions`), as `HOST:CONTAINER:PERMISSIONS`.
pub(super) fn devices_of(v: Option<&serde_json::Value>) -> Vec<String> {
    let Some(serde_json::Value::Array(a)) = v else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|d| {
            let (host, container, perms) = match d {
                serde_json::Value::String(s) => {
                    let mut parts = s.splitn(3, ':');
                    let host = parts.next()?.to_string();
                    let container = parts.next().unwrap_or(&host).to_string();
                    let perms = parts.next().unwrap_or("rwm").to_string();
                    (host, container, perms)
                }
                serde_json::Value::Object(m) => {
                    let host = m.get("source")?.as_str()?.to_string();
                    let container = m
                        .get("target")
                        .and_then(|t| t.as_str())
                        .unwrap_or(&host)
                        .to_string();
                    let perms = m
                        .get("permissions")
                        .and_then(|p| p.as_str())
                        .unwrap_or("rwm")
                        .to_string();
                    (host, container, perms)
                }
                _ => return None,
            };
            Some(format!("{host}:{container}:{perms}"))
        })
        .collect()
}

pub(super) fn flag(v: Option<&serde_json::Value>) -> bool {
    v.and_then(serde_json::Value::as_bool).unwrap_or(false)
}

/// Compose `ulimits` (`nofile: 1024` or `{soft, hard}`) as name, soft, hard.
pub(super) fn ulimits_of(s: &Service) -> Vec<(String, i64, i64)> {
    let Some(serde_json::Value::Object(map)) = s.other.get("ulimits") else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, v)| {
            let (soft, hard) = match v {
                serde_json::Value::Number(n) => (n.as_i64()?, n.as_i64()?),
                serde_json::Value::Object(o) => {
                    (o.get("soft")?.as_i64()?, o.get("hard")?.as_i64()?)
                }
                _ => return None,
            };
            Some((name.clone(), soft, hard))
        })
        .collect()
}

/// The driver a service asks for: its `x-cove.driver`, else the project's.
pub(super) fn driver_of(app: &App, s: &Service) -> Option<Driver> {
    s.x_cove
        .as_ref()
        .and_then(|x| x.driver)
        .or(app.x_cove.driver)
}
