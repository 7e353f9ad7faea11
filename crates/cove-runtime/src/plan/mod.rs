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
//! address (or the service's own address, when it has one), so dependents
//! reach a service by its Compose name and port.
//!
//! A service the placement says is served elsewhere
//! ([`Placement::external`]: a preview's services shared with its
//! baseline) is not planned to run: references to it are rewritten to the
//! address given ([`Plan::external`]), the gateway has no route to it, and
//! a dependency on it never waits ([`Dependency::external`]).

mod address;
mod container;
mod env;
mod native;
mod policy;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cove_spec::App;
use cove_spec::model::{Condition, Order, Service};
use cove_spec::xcove::StringOrList;
use indexmap::IndexMap;
use rustix::process::Signal;

use crate::health::HealthSpec;
use crate::recipe::Recipe;

pub use crate::plan_error::PlanError;
pub use crate::vars::{env_value, expand_known, names_variable};
pub use address::{
    CONTAINER, CONTAINER_NET, MAX_INSTANCES, MAX_SERVICES, address, container_network,
    is_container_address, net_of, project_net, service_indexes,
};
use address::{index_of, replica_limits, service_ports, udp_only};
pub(crate) use container::containers;
pub use container::{BuildPlan, ContainerPlan, volume_name};
use env::{named_by_others, secrets_in_commands};
pub use env::{rewrite_args, rewrite_references, rewrite_value};
use native::health_of;
pub(crate) use native::recipes;
pub use policy::{FailureAction, Restart, UpdatePolicy};
use policy::{restart_of, stop_signal_of, update_policies};

/// Default `PORT` of a service that declares none.
pub const DEFAULT_PORT: u16 = 8080;

/// Default `x-cove.ready_after`: a replica without a health check that
/// exits within its first second did not start.
pub const READY_AFTER: Duration = Duration::from_secs(1);

/// What references to each service are rewritten to: the address others
/// reach it at (its ports are its own).
pub type Addresses<'a> = IndexMap<&'a str, Ipv4Addr>;

/// Everything to run, services in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    /// The gateway in front of them (see [`crate::routes`]).
    pub gateway: crate::routes::GatewayPlan,
    /// Services of the app served elsewhere, not run by this plan, and
    /// the address references to them reach (the placement's
    /// [`Placement::external`], for the app's services only).
    pub external: BTreeMap<String, Ipv4Addr>,
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
    /// each of them (see the supervisor, `supervisor.rs`).
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
    /// Served elsewhere ([`Plan::external`]): nothing here to wait for.
    pub external: bool,
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

    /// What the gateway's routes need of it.
    pub fn upstream(&self) -> crate::routes::Upstream<'_> {
        crate::routes::Upstream {
            name: &self.name,
            recipe: self.recipe.is_some(),
            ports: &self.ports,
            port: self.port(),
            service_address: self.service_address,
            bridge_address: self.bridge_address,
        }
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

/// What planning needs to know beyond the app: given, never looked up,
/// so that a plan is a function of the app and its placement alone (the
/// machine is checked apart, by the preflight, `preflight.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The project's directory: the default working directory of native
    /// commands, and where the state directory is.
    pub project_dir: PathBuf,
    /// The project's block of addresses: its lease (see [`crate::lease`]).
    pub net: u16,
    /// Where its replicas' secrets directories go (see
    /// [`crate::secrets::root`]).
    pub secrets_root: PathBuf,
    /// What recipes' commands name of the machine (their programs' paths,
    /// as root their system users).
    pub host: crate::recipe::Host,
    /// Services served elsewhere, by the address others reach them at
    /// (on the same ports): not planned here; references to them
    /// (`svc:port`, `DB_HOST: svc`, `-h svc`, `cove run -e`) are rewritten
    /// to that address. A preview's services shared with its baseline, at
    /// the baseline's [`Plan::reference_address`]; services borrowed
    /// from another environment (`x-cove.borrowed`), at its. Empty:
    /// everything runs here.
    pub external: BTreeMap<String, Ipv4Addr>,
    /// Whether the project has entry routes: the gateway's listen address,
    /// its HTTP and gRPC routes, published ports, TLS and metrics. `false`
    /// for a preview (reached through its baseline's gateway): its gateway
    /// plan has only the services' own addresses (see
    /// [`crate::routes::GatewayPlan::entry`]).
    pub entry: bool,
}

impl Placement {
    /// The placement on this machine: the lease recorded in the state
    /// directory (else the block the project would try first) and the
    /// secrets root the machine offers, the recipes' programs and users.
    /// Reads them.
    pub fn here(app: &App, project_dir: &Path) -> Placement {
        Placement {
            project_dir: project_dir.to_path_buf(),
            net: net_of(app, project_dir),
            secrets_root: crate::secrets::root(&state_dir(app, project_dir)),
            host: crate::recipe::Host::here(),
            // A preview (`cove preview up`): what it shares with its
            // baseline is reached there, and its baseline's gateway is
            // its entry.
            // Borrowed from another environment (`cove up --borrow`):
            // reached where it serves them, never started here.
            external: app
                .x_cove
                .preview_of
                .as_ref()
                .map(|p| p.shared.clone())
                .unwrap_or_default()
                .into_iter()
                .chain(
                    app.x_cove
                        .borrowed
                        .iter()
                        .map(|(name, b)| (name.clone(), b.address)),
                )
                .collect(),
            entry: app.x_cove.preview_of.is_none(),
        }
    }
}

/// Plans `app` (already cut down to what should run) as placed on this
/// machine ([`Placement::here`]), without reading its secrets (their
/// values are empty): to show what would run. All problems at once. The
/// machine's checks are the preflight's (`preflight::check`).
pub fn plan(app: &App, project_dir: &Path) -> Result<Plan, Vec<PlanError>> {
    plan_at(app, &Placement::here(app, project_dir), None)
}

/// [`plan`] with its secrets (read by [`crate::secrets::resolve`]).
pub fn plan_with(
    app: &App,
    project_dir: &Path,
    secrets: Option<&crate::secrets::Resolved>,
) -> Result<Plan, Vec<PlanError>> {
    plan_at(app, &Placement::here(app, project_dir), secrets)
}

/// Plans `app` at `placement`, with its secrets if given: a pure function
/// of its arguments (no file, `PATH` or engine is looked at).
pub fn plan_at(
    app: &App,
    placement: &Placement,
    secrets: Option<&crate::secrets::Resolved>,
) -> Result<Plan, Vec<PlanError>> {
    let project_dir = placement.project_dir.as_path();
    let cx = Context::new(app, placement, secrets)?;
    let mut errors = replica_limits(app);
    let mut services = Vec::new();
    for (name, svc) in app.services.iter() {
        if cx.external.contains_key(name) {
            continue;
        }
        if let Some(s) = cx.service(name, svc, &mut errors) {
            services.push(s);
        }
    }
    let upstreams: Vec<_> = services.iter().map(ServicePlan::upstream).collect();
    let gateway = match crate::routes::gateway(app, &upstreams, project_dir, placement.entry) {
        Ok(g) => Some(g),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    match gateway {
        Some(gateway) if errors.is_empty() => Ok(Plan {
            services,
            gateway,
            external: cx.external,
        }),
        _ => Err(errors),
    }
}

/// What planning one service needs to know of the app: every service's
/// recipe, driver, ports, health check and addresses (all of them, so that
/// addresses do not depend on what runs).
struct Context<'a> {
    app: &'a App,
    placement: &'a Placement,
    project_dir: &'a Path,
    secrets: Option<&'a crate::secrets::Resolved>,
    redactor: crate::secrets::Redactor,
    secrets_root: PathBuf,
    recipes: IndexMap<&'a str, Option<Recipe>>,
    /// Services run as containers.
    containers: Vec<&'a str>,
    ports: IndexMap<&'a str, Vec<u16>>,
    healths: IndexMap<&'a str, Option<HealthSpec>>,
    state_dir: PathBuf,
    net: u16,
    indexes: IndexMap<&'a str, u32>,
    /// Services with an address of their own (see [`own_addresses`]).
    own_address: Vec<&'a str>,
    /// What references in native commands are rewritten to.
    addresses: Addresses<'a>,
    /// Native services reached from containers, and their address there.
    bridge_of: IndexMap<&'a str, Ipv4Addr>,
    /// What references in containers' settings are rewritten to.
    addresses_in_containers: Addresses<'a>,
    /// The app's services served elsewhere (the placement's, for the
    /// app's services only).
    external: BTreeMap<String, Ipv4Addr>,
}

impl<'a> Context<'a> {
    /// The app's layout; an error when it has too many services.
    fn new(
        app: &'a App,
        placement: &'a Placement,
        secrets: Option<&'a crate::secrets::Resolved>,
    ) -> Result<Context<'a>, Vec<PlanError>> {
        let project_dir = placement.project_dir.as_path();
        let redactor = secrets.map(|s| s.redactor()).unwrap_or_default();
        let secrets_root = placement.secrets_root.clone();
        let recipes = recipes(app);
        let containers = containers(app, &recipes);
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
            .map(|(n, s)| {
                let health = health_of(s, recipe_of(&recipes, n), &placement.host);
                (n.as_str(), health)
            })
            .collect();
        let state_dir = state_dir(app, project_dir);
        let net = placement.net;
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
        let external: BTreeMap<String, Ipv4Addr> = placement
            .external
            .iter()
            .filter(|(n, _)| app.services.contains_key(*n))
            .map(|(n, ip)| (n.clone(), *ip))
            .collect();
        let here = |n: &str| !external.contains_key(n);
        let own_address: Vec<&str> = own_addresses(app, &recipes, &ports)
            .into_iter()
            .filter(|n| here(n))
            .collect();
        // Service name → the address references reach: one given for a
        // service served elsewhere, else its own address, else its first
        // replica's.
        let addresses: Addresses = ports
            .keys()
            .map(|n| match external.get(*n) {
                Some(ip) => (*n, *ip),
                None => {
                    let mut slot = index_of(&indexes, n) * 64 + u32::from(!own_address.contains(n));
                    if containers.contains(n) && !own_address.contains(n) {
                        slot |= CONTAINER;
                    }
                    (*n, address(net, slot))
                }
            })
            .collect();
        // Native services with ports run here, reached from containers at
        // an address of the containers' network (slot 0 of their range
        // there).
        let bridge_of: IndexMap<&str, Ipv4Addr> = if containers.is_empty() {
            IndexMap::new()
        } else {
            ports
                .iter()
                .filter(|(n, p)| !containers.contains(*n) && !p.is_empty() && here(n))
                .map(|(n, _)| (*n, address(net, CONTAINER | (index_of(&indexes, n) * 64))))
                .collect()
        };
        // What references in containers' settings are rewritten to: native
        // services' addresses on the bridge (a service served elsewhere:
        // the address given). Containers' names stay as they are: the
        // network's DNS knows them, wherever their replicas are.
        let addresses_in_containers: Addresses = addresses
            .iter()
            .filter(|(n, _)| !containers.contains(*n) || !here(n))
            .map(|(n, ip)| (*n, bridge_of.get(n).copied().unwrap_or(*ip)))
            .collect();
        Ok(Context {
            app,
            placement,
            project_dir,
            secrets,
            redactor,
            secrets_root,
            recipes,
            containers,
            ports,
            healths,
            state_dir,
            net,
            indexes,
            own_address,
            addresses,
            bridge_of,
            addresses_in_containers,
            external,
        })
    }

    /// Plans service `name`; `None` when it cannot run (its problems are
    /// in `errors`).
    fn service(
        &self,
        name: &str,
        svc: &Service,
        errors: &mut Vec<PlanError>,
    ) -> Option<ServicePlan> {
        let Context {
            recipes,
            ports,
            healths,
            state_dir,
            net,
            indexes,
            ..
        } = self;
        let net = *net;
        let err = |message: String, hint: &str| PlanError {
            service: name.to_string(),
            message,
            hint: hint.to_string(),
            field: Vec::new(),
            machine: false,
            written: false,
        };
        let x = svc.x_cove.clone().unwrap_or_default();
        let is_container = self.containers.contains(&name);
        let container = if is_container {
            Some(self.container(name, svc, &err, errors)?)
        } else {
            None
        };
        let argv = self.command(name, svc, &x, is_container, &err, errors)?;
        let build = match &x.build {
            Some(StringOrList::List(l)) => Some(l.clone()),
            Some(StringOrList::String(s)) => cove_spec::shell_words::split(s).ok(),
            None => None,
        };
        let stop_signal = stop_signal_of(svc);
        let restart = restart_of(svc);
        let health = healths.get(name).cloned().flatten();
        let depends_on = self.dependencies(svc, &err, errors);
        let stateful =
            recipe_of(recipes, name).is_some_and(|r| r.has_data(svc)) || !svc.volumes.is_empty();
        let (update, rollback) = update_policies(svc, stateful);
        let mounts = self.secret_mounts(svc, &err, errors);
        secrets_in_commands(
            &x,
            is_container,
            &argv,
            health.as_ref(),
            &mounts,
            &err,
            errors,
        );
        let (argv, env) = self.rewritten(svc, &argv, is_container);
        Some(ServicePlan {
            name: name.to_string(),
            replicas: svc.replicas(),
            argv,
            workdir: x
                .workdir
                .map(PathBuf::from)
                .unwrap_or_else(|| self.project_dir.to_path_buf()),
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
            ports: ports.get(name).cloned().unwrap_or_default(),
            tcp_ports: ports
                .get(name)
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| !udp_only(svc, *p))
                .collect(),
            ready_after: x.ready_after.map_or(READY_AFTER, |d| d.0),
            net,
            base: (index_of(indexes, name) * 64) | if is_container { CONTAINER } else { 0 },
            recipe: recipe_of(recipes, name),
            data_root: recipe_of(recipes, name)
                .filter(|r| r.has_data(svc))
                .map(|_| state_dir.join("data")),
            update,
            rollback,
            revision: 0,
            artifact: None,
            keep_artifacts: Some(crate::artifact::Keep {
                dir: state_dir.join("artifacts"),
                copies: self
                    .app
                    .x_cove
                    .keep_artifacts
                    .map_or(crate::artifact::KEEP, |n| n as usize),
            }),
            service_address: self
                .own_address
                .contains(&name)
                .then(|| address(net, index_of(indexes, name) * 64)),
            secrets: mounts,
            secrets_root: self.secrets_root.clone(),
            redactor: self.redactor.clone(),
            container,
            bridge_address: self.bridge_of.get(name).copied(),
        })
    }

    /// What `svc` depends on; waiting for one to be healthy that has no
    /// health check is an error.
    fn dependencies(
        &self,
        svc: &Service,
        err: &impl Fn(String, &str) -> PlanError,
        errors: &mut Vec<PlanError>,
    ) -> Vec<Dependency> {
        let healths = &self.healths;
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
                external: self.external.contains_key(dep),
            });
        }
        depends_on
    }
}

/// The recipe of service `name` (looked up, never indexed: a name the map
/// lacks has none).
fn recipe_of(recipes: &IndexMap<&str, Option<Recipe>>, name: &str) -> Option<Recipe> {
    recipes.get(name).copied().flatten()
}

/// Services with an address of their own: stateless ones (replaced
/// start-first) with ports that others name. Their replicas move on every
/// deploy; the gateway keeps this one (slot 0 of their range, on loopback,
/// for containers too: native services reach them there).
fn own_addresses<'a>(
    app: &'a App,
    recipes: &IndexMap<&str, Option<Recipe>>,
    ports: &IndexMap<&str, Vec<u16>>,
) -> Vec<&'a str> {
    app.services
        .iter()
        .filter(|(n, svc)| {
            let stateful =
                recipe_of(recipes, n).is_some_and(|r| r.has_data(svc)) || !svc.volumes.is_empty();
            let order = svc
                .deploy
                .as_ref()
                .and_then(|d| d.update_config.as_ref())
                .and_then(|u| u.order.as_deref());
            let start_first = order.map_or(!stateful, |o| *o == Order::StartFirst);
            start_first
                && ports
                    .get(n.as_str())
                    .is_some_and(|p| !p.is_empty() && named_by_others(app, n))
        })
        .map(|(n, _)| n.as_str())
        .collect()
}
