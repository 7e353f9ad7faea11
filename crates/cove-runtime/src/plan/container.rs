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
    /// `healthcheck: {disable: true}` (or `test: [NONE]`): the image's
    /// own healthcheck is turned off too.
    pub health_disabled: bool,
    /// `cap_add`, `ulimits`, `extra_hosts`, `sysctls`, `devices`, the
    /// networks' `aliases`, ...: as the model reads them, passed to the
    /// engine as they are.
    pub options: cove_spec::container::ContainerOptions,
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
/// the preflight's check (`preflight.rs`).
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
            health_disabled: svc
                .healthcheck
                .as_ref()
                .is_some_and(|h| h.disable || h.test.first().is_some_and(|t| t == "NONE")),
            options: svc.container_options(),
        })
    }

    /// Compose `build:` (that its context is a directory is
    /// the preflight's check, `preflight.rs`).
    fn build_plan(&self, svc: &Service) -> Option<BuildPlan> {
        let state_dir = &self.state_dir;
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
            labels: b.labels(),
        })
    }
}
