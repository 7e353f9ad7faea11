//! What to run: the App turned into native processes, with their addresses.
//!
//! Addresses: every replica listens on its own loopback address, on the
//! service's own ports — as each container has its own IP in Docker. The
//! app owns 4,096 consecutive addresses of 127.64.0.0/10 (16 /24 blocks),
//! chosen by a 10-bit number `n` derived from its name and directory (so
//! two apps running at once seldom collide). Each service owns 64 of them,
//! at an index 0..64 derived from its name (so adding a service moves no
//! other); its instances take slots 1..=62 of those ([`MAX_INSTANCES`]):
//! global slot `g = 64·index + slot` is the address `127.64.0.0 + 4096·n + g`.
//! Replicas start on slots 1..=N; a rolling deploy's new instances take
//! free slots beside the old ones.
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so no set-up is
//! needed. Each replica gets `HOST` (its address) and `PORT` (the service's
//! first port, else 8080). References to other services written as
//! `name:port` in `environment` values and in `x-cove.run` (for example
//! `mysql://u:p@db:3306/app`), and `environment` values that are just a
//! service's name (`DB_HOST: db`), are rewritten to the first replica's
//! address, so dependents reach a service by its Compose name and port.

mod address;
mod container;
mod env;
mod error;
mod native;
mod policy;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cove_spec::App;
use cove_spec::model::{Condition, MountKind};
use cove_spec::xcove::{Driver, StringOrList};
use indexmap::IndexMap;
use rustix::process::Signal;

use crate::health::{HealthSpec, Probe};
use crate::recipe::Recipe;

pub(crate) use address::fnv;
pub use address::{
    CONTAINER, CONTAINER_NET, MAX_INSTANCES, MAX_SERVICES, address, container_network,
    is_container_address, net_of, project_net, service_indexes,
};
use address::{index_of, service_ports, udp_only};
pub use container::{BuildPlan, ContainerPlan, volume_name};
use container::{devices_of, driver_of, flag, pairs, scalars, strings, ulimits_of};
use env::named_by_others;
pub use env::{
    env_value, expand_known, names_variable, rewrite_args, rewrite_references, rewrite_value,
};
pub use error::PlanError;
use native::{health_of, recipe_of};
use policy::restart_policy;
pub use policy::{FailureAction, Restart, UpdatePolicy};

/// Default `PORT` of a service that declares none.
pub const DEFAULT_PORT: u16 = 8080;

/// Default `x-cove.ready_after`: a replica without a health check that
/// exits within its first second did not start.
pub const READY_AFTER: Duration = Duration::from_secs(1);

/// Everything to run, services in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    /// The gateway in front of them (see [`crate::routes`]).
    pub gateway: crate::routes::GatewayPlan,
}

/// How one service runs natively.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub name: String,
    pub replicas: u32,
    /// The command, already split into arguments.
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    /// The service's environment (before `HOST`/`PORT`), references rewritten.
    pub env: Vec<(String, String)>,
    /// Runs once before the first start (`x-cove.build`).
    pub build: Option<Vec<String>>,
    pub health: Option<HealthSpec>,
    pub restart: Restart,
    pub stop_signal: Signal,
    pub stop_grace: Duration,
    pub depends_on: Vec<Dependency>,
    /// Ports the service listens on (first one is `PORT`).
    pub ports: Vec<u16>,
    /// Those of [`ServicePlan::ports`] it listens on over TCP: without a
    /// health check, a replica is ready once it accepts connections on
    /// each of them (see [`crate::supervisor`]).
    pub tcp_ports: Vec<u16>,
    /// How long a replica without a health check must have run before it
    /// is ready (`x-cove.ready_after`, default [`READY_AFTER`]); one that
    /// exits sooner failed to start.
    pub ready_after: Duration,
    /// The project's address block (see [`address`]).
    pub net: u16,
    /// The service's address range: its instance in slot `s` (1..=62) has
    /// global slot `base + s`.
    pub base: u32,
    /// Built-in recipe the service runs with, if any.
    pub recipe: Option<Recipe>,
    /// Where replicas keep data (`<state_dir>/data`), for recipes with data.
    pub data_root: Option<PathBuf>,
    /// How a new version replaces the running one (`deploy.update_config`).
    pub update: UpdatePolicy,
    /// How a failed deploy is undone (`deploy.rollback_config`).
    pub rollback: UpdatePolicy,
    /// The revision this plan is (set by whoever keeps the history; 0
    /// when none does). Not part of what makes two plans differ.
    pub revision: u64,
    /// What it runs, once built (see [`crate::artifact`]); `None` in a plan
    /// made from the app.
    pub artifact: Option<crate::artifact::Artifact>,
    /// Where kept copies of its program go (`<state_dir>/artifacts`), and
    /// how many.
    pub keep_artifacts: Option<crate::artifact::Keep>,
    /// The address other services reach it at, on its ports, when its
    /// replicas move (a stateless service others name): the gateway
    /// forwards connections there to its healthy replicas. `None`: others
    /// reach replica 1 directly.
    pub service_address: Option<Ipv4Addr>,
    /// Its secrets (see [`crate::secrets`]); values are empty in a plan
    /// made without them ([`plan`]).
    pub secrets: Vec<crate::secrets::Mount>,
    /// Where its replicas' secrets directories go (`ROOT/SERVICE-SLOT`).
    pub secrets_root: PathBuf,
    /// Scrubs every secret of the app out of what its replicas print. Not
    /// part of what makes two plans differ.
    pub redactor: crate::secrets::Redactor,
    /// Run as containers (the `docker` driver) rather than processes.
    pub container: Option<ContainerPlan>,
    /// A native service in an app with containers: the address on the
    /// containers' network where the gateway forwards its ports to its
    /// replicas, so containers reach it (by the name rewritten to it).
    pub bridge_address: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
}

impl ServicePlan {
    /// Whether `other` runs the same thing: equal but for the replica
    /// count, the update policies and the revision number, and with the
    /// same artifact digest when both know theirs.
    pub fn same_run(&self, other: &ServicePlan) -> bool {
        if let (Some(a), Some(b)) = (&self.artifact, &other.artifact)
            && a.digest != b.digest
        {
            return false;
        }
        let neutral = UpdatePolicy {
            parallelism: 0,
            delay: Duration::ZERO,
            start_first: false,
            monitor: Duration::ZERO,
            on_failure: FailureAction::Pause,
            max_failure_ratio: 0.0,
        };
        let strip = |p: &ServicePlan| ServicePlan {
            replicas: 0,
            revision: 0,
            update: neutral.clone(),
            rollback: neutral.clone(),
            artifact: None,
            redactor: Default::default(),
            ..p.clone()
        };
        strip(self) == strip(other)
    }

    /// Address of the instance in `slot` (1..=[`MAX_INSTANCES`]); replica
    /// `r` starts in slot `r`.
    pub fn address(&self, slot: u32) -> Ipv4Addr {
        address(self.net, self.base + slot.clamp(1, MAX_INSTANCES))
    }

    /// `PORT` of every replica.
    pub fn port(&self) -> u16 {
        self.ports.first().copied().unwrap_or(DEFAULT_PORT)
    }

    /// Whether its instances get a private directory (`COVE_SECRETS`): for
    /// their secrets, or for a recipe's files that hold passwords.
    pub fn has_private_dir(&self) -> bool {
        !self.secrets.is_empty() || self.recipe.is_some()
    }

    /// The secrets directory of the instance in `slot`.
    pub fn secrets_dir(&self, slot: u32) -> PathBuf {
        self.secrets_root.join(format!("{}-{slot}", self.name))
    }

    /// The data directory of a replica of a recipe service.
    pub fn data_dir(&self, replica: u32) -> Option<PathBuf> {
        Some(
            self.data_root
                .as_ref()?
                .join(format!("{}-{replica}", self.name)),
        )
    }
}

impl Plan {
    /// `roots` and every service they depend on, directly or not, in the
    /// plan's (start) order; names the plan does not have are left out.
    pub fn closure(&self, roots: &[String]) -> Vec<String> {
        let mut keep: Vec<&str> = Vec::new();
        let mut todo: Vec<&str> = roots.iter().map(String::as_str).collect();
        while let Some(name) = todo.pop() {
            if keep.contains(&name) {
                continue;
            }
            let Some(svc) = self.services.iter().find(|s| s.name == name) else {
                continue;
            };
            keep.push(name);
            todo.extend(svc.depends_on.iter().map(|d| d.service.as_str()));
        }
        self.services
            .iter()
            .filter(|s| keep.contains(&s.name.as_str()))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Only the services in `names`, and the gateway's routes to them.
    /// Addresses do not change: they were given with every service known.
    pub fn keep(&mut self, names: &[String]) {
        self.services.retain(|s| names.contains(&s.name));
        self.gateway.routes.retain(|r| names.contains(&r.service));
    }
}

/// Where cove keeps an app's state: `x-cove.state_dir`, default `.cove`,
/// relative to the project directory.
pub fn state_dir(app: &App, project_dir: &Path) -> PathBuf {
    project_dir.join(app.x_cove.state_dir.as_deref().unwrap_or(".cove"))
}

/// Plans `app` (already cut down to what should run), without reading its
/// secrets (their values are empty): to show what would run. All problems
/// at once.
pub fn plan(app: &App, project_dir: &Path) -> Result<Plan, Vec<PlanError>> {
    plan_with(app, project_dir, None)
}

/// Plans `app` with its secrets (read by [`crate::secrets::resolve`]).
pub fn plan_with(
    app: &App,
    project_dir: &Path,
    secrets: Option<&crate::secrets::Resolved>,
) -> Result<Plan, Vec<PlanError>> {
    let redactor = secrets.map(|s| s.redactor()).unwrap_or_default();
    let secrets_root = crate::secrets::root(&state_dir(app, project_dir));
    let mut errors = Vec::new();
    let mut services = Vec::new();
    let recipes: IndexMap<&str, Option<Recipe>> = app
        .services
        .iter()
        .map(|(n, s)| {
            let native = s.x_cove.as_ref().is_some_and(|x| x.run.is_some());
            (
                n.as_str(),
                if native || driver_of(app, s) == Some(Driver::Docker) {
                    None
                } else {
                    Recipe::detect(s)
                },
            )
        })
        .collect();
    // Services run as containers: an image or a build, and neither a
    // native command nor a recipe (or `x-cove.driver: docker`).
    let containers: Vec<&str> = app
        .services
        .iter()
        .filter(|(n, s)| {
            let native = s.x_cove.as_ref().is_some_and(|x| x.run.is_some());
            match driver_of(app, s) {
                Some(Driver::Docker) => true,
                Some(Driver::Native | Driver::Process) => false,
                None => {
                    !native
                        && recipe_of(&recipes, n).is_none()
                        && (s.image.is_some() || s.build.is_some())
                }
            }
        })
        .map(|(n, _)| n.as_str())
        .collect();
    let ports: IndexMap<&str, Vec<u16>> = app
        .services
        .iter()
        .map(|(n, s)| {
            let mut p = service_ports(s);
            if let (true, Some(r)) = (p.is_empty(), recipe_of(&recipes, n)) {
                p.push(r.default_port());
            }
            (n.as_str(), p)
        })
        .collect();
    let healths: IndexMap<&str, Option<HealthSpec>> = app
        .services
        .iter()
        .map(|(n, s)| (n.as_str(), health_of(s, recipe_of(&recipes, n))))
        .collect();
    let state_dir = state_dir(app, project_dir);
    let net = net_of(app, project_dir);
    let indexes = match service_indexes(app.services.keys().map(String::as_str)) {
        Some(i) => i,
        None => {
            return Err(vec![PlanError {
                service: String::new(),
                message: format!(
                    "has {} services; natively an app can run at most {MAX_SERVICES}",
                    app.services.len()
                ),
                hint: "split the app, or run a part of it (`cove up SERVICE`)".into(),
                field: Vec::new(),
                machine: false,
                written: false,
            }]);
        }
    };
    // Services with an address of their own: stateless ones (replaced
    // start-first) with ports that others name. Their replicas move on
    // every deploy; the gateway keeps this one (slot 0 of their range, on
    // loopback, for containers too: native services reach them there).
    let own_address: Vec<&str> = app
        .services
        .iter()
        .filter(|(n, svc)| {
            let stateful =
                recipe_of(&recipes, n).is_some_and(|r| r.has_data(svc)) || !svc.volumes.is_empty();
            let order = svc
                .deploy
                .as_ref()
                .and_then(|d| d.update_config.as_ref())
                .and_then(|u| u.order.as_deref());
            let start_first = order.map_or(!stateful, |o| o == "start-first");
            start_first
                && ports
                    .get(n.as_str())
                    .is_some_and(|p| !p.is_empty() && named_by_others(app, n, p))
        })
        .map(|(n, _)| n.as_str())
        .collect();
    // Service name → (global slot references reach, ports).
    let addresses: IndexMap<&str, (u32, Vec<u16>)> = ports
        .iter()
        .map(|(n, p)| {
            let mut slot = index_of(&indexes, n) * 64 + u32::from(!own_address.contains(n));
            if containers.contains(n) && !own_address.contains(n) {
                slot |= CONTAINER;
            }
            (*n, (slot, p.clone()))
        })
        .collect();
    // Native services with ports, reached from containers at an address
    // of the containers' network (slot 0 of their range there).
    let bridge_of: IndexMap<&str, Ipv4Addr> = if containers.is_empty() {
        IndexMap::new()
    } else {
        ports
            .iter()
            .filter(|(n, p)| !containers.contains(*n) && !p.is_empty())
            .map(|(n, _)| (*n, address(net, CONTAINER | (index_of(&indexes, n) * 64))))
            .collect()
    };
    // What references in containers' settings are rewritten to: native
    // services' addresses on the bridge. Containers' names stay as they
    // are: the network's DNS knows them, wherever their replicas are.
    let addresses_in_containers: IndexMap<&str, (u32, Vec<u16>)> = addresses
        .iter()
        .filter(|(n, _)| !containers.contains(*n))
        .map(|(n, (slot, p))| match bridge_of.contains_key(n) {
            true => (*n, (CONTAINER | (index_of(&indexes, n) * 64), p.clone())),
            false => (*n, (*slot, p.clone())),
        })
        .collect();
    for (name, svc) in &app.services {
        let autoscale_max = svc
            .x_cove
            .as_ref()
            .and_then(|x| x.autoscale.as_ref())
            .map_or(0, |a| a.max);
        let most = autoscale_max.max(svc.replicas());
        // Where it is asked for: `autoscale.max`, `deploy.replicas` or `scale`.
        let field: Vec<String> = if autoscale_max == most {
            vec!["x-cove".into(), "autoscale".into(), "max".into()]
        } else if svc.deploy.as_ref().and_then(|d| d.replicas).is_some() {
            vec!["deploy".into(), "replicas".into()]
        } else {
            vec!["scale".into()]
        };
        if most > MAX_INSTANCES / 2 {
            errors.push(PlanError {
                service: name.clone(),
                message: format!(
                    "asks for {most} replicas; natively a service runs at most {}",
                    MAX_INSTANCES / 2
                ),
                hint:
                    "run fewer replicas (a rolling deploy needs room for new ones beside the old)"
                        .into(),
                field,
                machine: false,
                written: false,
            });
        }
    }
    for (name, svc) in app.services.iter() {
        let err = |message: String, hint: &str| PlanError {
            service: name.clone(),
            message,
            hint: hint.to_string(),
            field: Vec::new(),
            machine: false,
            written: false,
        };
        let x = svc.x_cove.clone().unwrap_or_default();
        if let Some(r) = &x.recipe
            && !crate::recipe::NAMES.contains(&r.as_str())
        {
            let names = crate::recipe::NAMES.join(", ");
            let hint = match cove_spec::diag::suggest(r, crate::recipe::NAMES) {
                Some(s) => format!("did you mean `{s}`? cove's recipes are {names}"),
                None => format!(
                    "cove's recipes are {names}; leave `recipe` out to run the image as a container"
                ),
            };
            errors.push(
                err(
                    format!("`x-cove.recipe` is `{r}`, which is not one of cove's recipes"),
                    &hint,
                )
                .at(&["x-cove", "recipe"])
                .written(),
            );
        }
        if let Some(h) = &x.health {
            match (&h.http, h.tcp) {
                (Some(_), Some(_)) | (None, None) => errors.push(
                    err(
                        "`x-cove.health` needs exactly one of `http` and `tcp`".into(),
                        "write `health: {http: /healthz}` or `health: {tcp: 5432}`",
                    )
                    .at(&["x-cove", "health"])
                    .written(),
                ),
                (Some(path), None) if !path.starts_with('/') => errors.push(
                    err(
                        format!("`x-cove.health.http` is `{path}`, not a path"),
                        "start it with `/`, e.g. `/healthz`",
                    )
                    .at(&["x-cove", "health", "http"])
                    .written(),
                ),
                _ => {}
            }
        }
        let is_container = containers.contains(&name.as_str());
        let limits = svc
            .deploy
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        let container = if is_container {
            let (subnet, gateway) = container_network(net);
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
            let build =
                match &svc.build {
                    Some(b) if !Path::new(&b.context).is_dir() => {
                        errors.push(err(
                        format!("`build.context` {} is not a directory", b.context),
                        "cove builds from a local directory (a Git URL is not supported yet)",
                    ).at(&["build"]));
                        continue;
                    }
                    Some(b) => Some(BuildPlan {
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
                    }),
                    None => None,
                };
            // Compose `configs` from a file: bound read-only at their
            // target (`/NAME` by default).
            let mut config_binds = Vec::new();
            for c in &svc.configs {
                let def = app.configs.get(&c.source);
                let target = c.target.clone().unwrap_or_else(|| format!("/{}", c.source));
                match def.and_then(|d| d.get("file")).and_then(|f| f.as_str()) {
                    Some(file) if !Path::new(file).is_file() => errors.push(err(
                        format!("config `{}`: {file} is not a file", c.source),
                        "create it, or fix the `file:` of the top-level config (relative to the Compose file)",
                    )),
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
        } else {
            None
        };
        let argv = match &x.run {
            _ if is_container => svc.command.clone().unwrap_or_default(),
            Some(StringOrList::List(l)) => l.clone(),
            Some(StringOrList::String(s)) => match cove_spec::shell_words::split(s) {
                Ok(w) => w,
                Err(e) => {
                    errors.push(
                        err(
                            format!("`x-cove.run` cannot be split: {e}"),
                            "close the quote, or write a list",
                        )
                        .at(&["x-cove", "run"]),
                    );
                    continue;
                }
            },
            None if recipe_of(&recipes, name).is_some() => {
                let recipe = recipe_of(&recipes, name).unwrap_or(Recipe::Redis);
                if let Some((bin, package)) = recipe.missing() {
                    errors.push(PlanError {
                        machine: true,
                        written: false,
                        ..err(
                            format!("runs natively with `{bin}`, which is not installed"),
                            &format!(
                                "install the Debian package `{package}` (apt-get install {package})"
                            ),
                        )
                        .at(&["image"])
                    });
                    continue;
                }
                if let Err((what, hint)) = recipe.check(svc) {
                    let field: &[&str] = if what.starts_with("publishes port") {
                        &["ports"]
                    } else if what.contains("RABBITMQ_DEFAULT") || what.contains("`guest`") {
                        &["environment"]
                    } else {
                        &["image"]
                    };
                    let machine = what.contains("which does not exist");
                    errors.push(PlanError {
                        machine,
                        written: false,
                        ..err(what, &hint).at(field)
                    });
                    continue;
                }
                recipe.command(svc)
            }
            None => {
                let what = svc
                    .image
                    .as_deref()
                    .map(|i| format!("image `{i}`"))
                    .unwrap_or_else(|| "its build".into());
                errors.push(err(
                    format!("has no native command to run ({what} runs as a container, and its `x-cove.driver` is `native`)"),
                    "add `x-cove: {run: ...}` with the command that runs it on this machine, or let it run as a container (`driver: docker`)",
                ));
                continue;
            }
        };
        if argv.is_empty() && !is_container {
            errors.push(
                err("`x-cove.run` is empty".into(), "give the command to run")
                    .at(&["x-cove", "run"]),
            );
            continue;
        }
        let build = match &x.build {
            Some(StringOrList::List(l)) => Some(l.clone()),
            Some(StringOrList::String(s)) => cove_spec::shell_words::split(s).ok(),
            None => None,
        };
        let stop_signal = match svc.stop_signal.as_deref() {
            None => Signal::TERM,
            Some(s) => match crate::signal::parse(s) {
                Some(sig) => sig,
                None => {
                    errors.push(
                        err(
                            format!("unknown `stop_signal` `{s}`"),
                            "use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or SIGUSR2",
                        )
                        .at(&["stop_signal"]),
                    );
                    continue;
                }
            },
        };
        let restart = match restart_policy(svc) {
            Ok(r) => r,
            Err(m) => {
                let policies = ["no", "always", "unless-stopped", "on-failure"];
                let written = svc.restart.as_deref().unwrap_or_default();
                let hint = match cove_spec::diag::suggest(written, policies) {
                    Some(p) => format!(
                        "did you mean `{p}`? use `no`, `always`, `unless-stopped` or `on-failure[:N]`"
                    ),
                    None => "use `no`, `always`, `unless-stopped` or `on-failure[:N]`".into(),
                };
                errors.push(err(m, &hint).at(&["restart"]).written());
                continue;
            }
        };
        let health = healths.get(name.as_str()).cloned().flatten();
        let mut depends_on = Vec::new();
        for (dep, d) in &svc.depends_on {
            let Some(dep_health) = healths.get(dep.as_str()) else {
                continue; // `required: false` and not selected
            };
            if d.condition == Condition::ServiceHealthy && dep_health.is_none() {
                errors.push(err(
                    format!("waits for `{dep}` to be healthy, but `{dep}` has no health check"),
                    "add a `healthcheck` to the dependency, or use `condition: service_started`",
                ).at(&["depends_on", dep]));
            }
            depends_on.push(Dependency {
                service: dep.clone(),
                condition: d.condition,
            });
        }
        let stateful =
            recipe_of(&recipes, name).is_some_and(|r| r.has_data(svc)) || !svc.volumes.is_empty();
        let default = UpdatePolicy {
            parallelism: 1,
            delay: Duration::ZERO,
            start_first: !stateful,
            monitor: Duration::ZERO,
            on_failure: FailureAction::Rollback,
            max_failure_ratio: 0.0,
        };
        let deploy = svc.deploy.as_ref();
        let policies = UpdatePolicy::from_compose(
            deploy.and_then(|d| d.update_config.as_ref()),
            stateful,
            &default,
            FailureAction::Rollback,
        )
        .and_then(|update| {
            let rollback = UpdatePolicy::from_compose(
                deploy.and_then(|d| d.rollback_config.as_ref()),
                stateful,
                &update,
                FailureAction::Pause,
            )?;
            Ok((update, rollback))
        });
        let (update, rollback) =
            match policies {
                Ok(p) => p,
                Err(m) => {
                    errors.push(err(
                    format!("`deploy`: {m}"),
                    "see https://docs.docker.com/reference/compose-file/deploy/#update_config",
                ).at(&["deploy"]));
                    continue;
                }
            };
        let mut mounts = Vec::new();
        for r in &svc.secrets {
            let target = r
                .target
                .clone()
                .unwrap_or_else(|| format!("/run/secrets/{}", r.source));
            let Some(file) = crate::secrets::file_in_dir(&target) else {
                errors.push(err(
                    format!(
                        "secret `{}`: target `{target}` is not a file path",
                        r.source
                    ),
                    "give a file name, or a path without `..`",
                ));
                continue;
            };
            let mode = match crate::secrets::mode_of(r.mode.as_ref()) {
                Ok(m) => m,
                Err(m) => {
                    errors.push(err(
                        format!("secret `{}`: {m}", r.source),
                        "write it in octal, e.g. `mode: 0440`",
                    ));
                    continue;
                }
            };
            let value = secrets
                .and_then(|s| s.values.get(&r.source).cloned())
                .unwrap_or_else(|| crate::secrets::Value::new(Vec::new()));
            let env = r.x_cove.as_ref().and_then(|x| x.env.clone());
            if env.is_some() && value.text().is_none() {
                errors.push(err(
                    format!(
                        "secret `{}` is not text, so it cannot be an environment variable",
                        r.source
                    ),
                    "read it from its file (`COVE_SECRETS`, or its target) instead",
                ));
            }
            mounts.push(crate::secrets::Mount {
                name: r.source.clone(),
                target,
                file,
                mode,
                env,
                value,
            });
        }
        // A secret in a variable stays out of command lines: cove expands
        // `$VAR` in the command (and in an exec health check), and
        // /proc/PID/cmdline is readable by every local user.
        let field = match (&x.run, is_container) {
            (Some(_), false) => "`x-cove.run`",
            _ => "`command`",
        };
        let mut commands: Vec<(&str, &[String])> = vec![(field, &argv)];
        if let (Some(Probe::Exec(test)), false) = (
            healths
                .get(name.as_str())
                .and_then(|h| h.as_ref())
                .map(|h| &h.probe),
            is_container,
        ) {
            commands.push(("`healthcheck.test`", test));
        }
        for (field, words) in commands {
            for m in &mounts {
                let Some(var) = &m.env else { continue };
                if words.iter().any(|w| names_variable(w, var)) {
                    errors.push(err(
                        format!(
                            "{field} names `${var}`, which holds secret `{}` (its `x-cove: {{env: {var}}}`): cove would put the value on the command line, which every local user can read (/proc/PID/cmdline)",
                            m.name
                        ),
                        &format!(
                            "read `{var}` in the program instead, or its file: `{}` (`$COVE_SECRETS/{}` natively)",
                            m.target, m.file.display()
                        ),
                    ));
                }
            }
        }
        let seen_from = if is_container {
            &addresses_in_containers
        } else {
            &addresses
        };
        let rewrite = |s: &str| rewrite_references(s, seen_from, net);
        let env = svc
            .environment
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), rewrite_value(v.as_ref()?, seen_from, net))))
            .collect();
        services.push(ServicePlan {
            name: name.clone(),
            replicas: svc.replicas(),
            // Natively, `-h db` / `--host db` name a host too.
            argv: if is_container {
                argv.iter().map(|a| rewrite(a)).collect()
            } else {
                rewrite_args(&argv, seen_from, net)
            },
            workdir: x
                .workdir
                .map(PathBuf::from)
                .unwrap_or_else(|| project_dir.to_path_buf()),
            env,
            build,
            health,
            restart,
            stop_signal,
            stop_grace: svc
                .stop_grace_period
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(10)),
            depends_on,
            ports: ports.get(name.as_str()).cloned().unwrap_or_default(),
            tcp_ports: ports
                .get(name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| !udp_only(svc, *p))
                .collect(),
            ready_after: x
                .ready_after
                .as_deref()
                .and_then(|d| cove_spec::units::parse_duration(d).ok())
                .unwrap_or(READY_AFTER),
            net,
            base: (index_of(&indexes, name) * 64) | if is_container { CONTAINER } else { 0 },
            recipe: recipe_of(&recipes, name),
            data_root: recipe_of(&recipes, name)
                .filter(|r| r.has_data(svc))
                .map(|_| state_dir.join("data")),
            update,
            rollback,
            revision: 0,
            artifact: None,
            keep_artifacts: Some(crate::artifact::Keep {
                dir: state_dir.join("artifacts"),
                copies: app
                    .x_cove
                    .keep_artifacts
                    .map_or(crate::artifact::KEEP, |n| n as usize),
            }),
            service_address: own_address
                .contains(&name.as_str())
                .then(|| address(net, index_of(&indexes, name) * 64)),
            secrets: mounts,
            secrets_root: secrets_root.clone(),
            redactor: redactor.clone(),
            container,
            bridge_address: bridge_of.get(name.as_str()).copied(),
        });
    }
    let gateway = match crate::routes::gateway(app, &services, project_dir) {
        Ok(g) => Some(g),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    match gateway {
        Some(gateway) if errors.is_empty() => Ok(Plan { services, gateway }),
        _ => Err(errors),
    }
}
