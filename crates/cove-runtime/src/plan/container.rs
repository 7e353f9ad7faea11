//! Services run as containers: what the engine is given, from the
//! service's Compose settings (image or build, mounts and volumes, limits,
//! capabilities, network names, …).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use cove_spec::App;
use cove_spec::model::{MountKind, Service};
use cove_spec::xcove::Driver;
use indexmap::IndexMap;

use super::{Context, PlanError, container_network, recipe_of};
use crate::recipe::Recipe;

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

/// Compose `configs` from a file: bound read-only at their target
/// (`/NAME` by default). That the file exists is
/// [`crate::preflight`]'s check.
fn config_binds(
    app: &App,
    svc: &Service,
    err: &impl Fn(String, &str) -> PlanError,
    errors: &mut Vec<PlanError>,
) -> Vec<String> {
    let mut config_binds = Vec::new();
    for c in &svc.configs {
        let def = app.configs.get(&c.source);
        let target = c.target.clone().unwrap_or_else(|| format!("/{}", c.source));
        match def.and_then(|d| d.get("file")).and_then(|f| f.as_str()) {
            Some(file) => config_binds.push(format!("{file}:{target}:ro")),
            None => errors.push(err(
                format!(
                    "config `{}` has no `file:` source (`content:`, `environment:` and `external` configs are not supported yet)",
                    c.source
                ),
                "write its content to a file and give that file as `file:` under the top-level `configs`",
            )),
        }
    }
    config_binds
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

/// Services run as containers: an image or a build, and neither a native
/// command nor a recipe (or `x-cove.driver: docker`).
pub(crate) fn containers<'a>(
    app: &'a App,
    recipes: &IndexMap<&str, Option<Recipe>>,
) -> Vec<&'a str> {
    app.services
        .iter()
        .filter(|(n, s)| {
            let native = s.x_cove.as_ref().is_some_and(|x| x.run.is_some());
            match driver_of(app, s) {
                Some(Driver::Docker) => true,
                Some(Driver::Native | Driver::Process) => false,
                None => {
                    !native
                        && recipe_of(recipes, n).is_none()
                        && (s.image.is_some() || s.build.is_some())
                }
            }
        })
        .map(|(n, _)| n.as_str())
        .collect()
}

impl Context<'_> {
    /// How service `name` runs as containers; `None` when it cannot.
    pub(super) fn container(
        &self,
        name: &str,
        svc: &Service,
        err: &impl Fn(String, &str) -> PlanError,
        errors: &mut Vec<PlanError>,
    ) -> Option<ContainerPlan> {
        let (app, net, bridge_of) = (self.app, self.net, &self.bridge_of);
        let state_dir = &self.state_dir;
        let limits = svc
            .deploy
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        let (subnet, gateway) = container_network(net);
        let build = self.build_plan(svc);
        let config_binds = config_binds(app, svc, err, errors);
        Some(ContainerPlan {
            image: match (&svc.image, &build) {
                (Some(i), _) => i.clone(),
                (None, _) => format!("cove-{}-{name}:latest", app.name),
            },
            build,
            entrypoint: svc.entrypoint.clone(),
            command: svc.command.clone(),
            user: svc.user.clone(),
            working_dir: svc.working_dir.clone(),
            network: format!("cove-{}-{net}", app.name),
            subnet,
            gateway,
            project: state_dir.display().to_string(),
            bridge: format!("cove{net}"),
            host_addresses: bridge_of.values().copied().collect(),
            binds: svc
                .volumes
                .iter()
                .filter_map(|m| {
                    let ro = if m.read_only { ":ro" } else { "" };
                    match (m.kind, &m.source) {
                        (MountKind::Bind, Some(src)) => Some(format!("{src}:{}{ro}", m.target)),
                        (MountKind::Volume, Some(name)) => Some(format!(
                            "{}:{}{ro}",
                            volume_name(&app.name, net, name),
                            m.target
                        )),
                        _ => None,
                    }
                })
                .chain(config_binds)
                .collect(),
            tmpfs: svc
                .volumes
                .iter()
                .filter(|m| m.kind == MountKind::Tmpfs)
                .map(|m| m.target.clone())
                .collect(),
            labels: svc
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            memory: limits
                .and_then(|l| l.memory)
                .and_then(|m| i64::try_from(m).ok()),
            nano_cpus: limits.and_then(|l| l.cpus).map(|c| (c * 1e9) as i64),
            pids: limits.and_then(|l| l.pids),
            ulimits: ulimits_of(svc),
            cap_add: strings(svc.other.get("cap_add")),
            cap_drop: strings(svc.other.get("cap_drop")),
            extra_hosts: match svc.other.get("extra_hosts") {
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .filter_map(|(k, v)| Some(format!("{k}:{}", v.as_str()?)))
                    .collect(),
                other => strings(other)
                    .into_iter()
                    .map(|h| h.replacen('=', ":", 1))
                    .collect(),
            },
            init: flag(svc.other.get("init")),
            privileged: flag(svc.other.get("privileged")),
            read_only: flag(svc.other.get("read_only")),
            health_disabled: svc
                .healthcheck
                .as_ref()
                .is_some_and(|h| h.disable || h.test.first().is_some_and(|t| t == "NONE")),
            aliases: svc
                .networks
                .values()
                .flat_map(|n| strings(n.get("aliases")))
                .collect(),
            hostname: svc
                .other
                .get("hostname")
                .and_then(|h| h.as_str())
                .map(str::to_string),
            sysctls: pairs(svc.other.get("sysctls")),
            shm_size: match svc.other.get("shm_size") {
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                Some(serde_json::Value::String(t)) => cove_spec::units::parse_bytes(t)
                    .ok()
                    .and_then(|b| i64::try_from(b).ok()),
                _ => None,
            },
            security_opt: strings(svc.other.get("security_opt")),
            devices: devices_of(svc.other.get("devices")),
            group_add: scalars(svc.other.get("group_add")),
            dns: scalars(svc.other.get("dns")),
            dns_search: scalars(svc.other.get("dns_search")),
        })
    }

    /// Compose `build:` (that its context is a directory is
    /// [`crate::preflight`]'s check).
    fn build_plan(&self, svc: &Service) -> Option<BuildPlan> {
        let state_dir = &self.state_dir;
        let build_labels: Vec<(String, String)> =
            match svc.build.as_ref().and_then(|b| b.other.get("labels")) {
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect(),
                other => strings(other)
                    .iter()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
        svc.build.as_ref().map(|b| BuildPlan {
            context: PathBuf::from(&b.context),
            skip: vec![state_dir.clone()],
            dockerfile: b.dockerfile.clone(),
            args: b
                .args
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .collect(),
            target: b.target.clone(),
            labels: build_labels,
        })
    }
}
