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

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cove_spec::App;
use cove_spec::model::{Condition, MountKind, Service};
use cove_spec::xcove::{Driver, StringOrList};
use indexmap::IndexMap;
use rustix::process::Signal;

use crate::health::{HealthSpec, Probe};
use crate::recipe::Recipe;

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
    /// [`ServicePlan::bridge_address`]).
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

/// `deploy.update_config` / `rollback_config`, with cove's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePolicy {
    /// Replicas replaced at once; 0: all at once.
    pub parallelism: u32,
    /// Pause between batches.
    pub delay: Duration,
    /// Start the new replica before stopping the old one (`start-first`, the
    /// default for services without data), or the other way round.
    pub start_first: bool,
    /// How long a new replica is watched after it turned healthy; failing
    /// within it fails the deploy.
    pub monitor: Duration,
    pub on_failure: FailureAction,
    /// Failed replicas tolerated, as a share of those replaced (0: none).
    pub max_failure_ratio: f64,
}

/// What a deploy does when replicas fail (`failure_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Put the previous version back (the default of `update_config`).
    Rollback,
    /// Stop where it is (the default of `rollback_config`).
    Pause,
    /// Go on with the next replicas.
    Continue,
}

impl UpdatePolicy {
    fn from_compose(
        c: Option<&cove_spec::model::UpdateConfig>,
        stateful: bool,
        fallback: &UpdatePolicy,
        default_action: FailureAction,
    ) -> Result<UpdatePolicy, String> {
        let Some(c) = c else {
            return Ok(UpdatePolicy {
                on_failure: default_action,
                ..fallback.clone()
            });
        };
        let start_first = match c.order.as_deref() {
            None => !stateful,
            Some("start-first") => true,
            Some("stop-first") => false,
            Some(o) => {
                return Err(format!(
                    "`order` is `{o}`; use `start-first` or `stop-first`"
                ));
            }
        };
        let on_failure = match c.failure_action.as_deref() {
            None => default_action,
            Some("rollback") => FailureAction::Rollback,
            Some("pause") => FailureAction::Pause,
            Some("continue") => FailureAction::Continue,
            Some(a) => {
                return Err(format!(
                    "`failure_action` is `{a}`; use `rollback`, `pause` or `continue`"
                ));
            }
        };
        let ratio = c.max_failure_ratio.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!(
                "`max_failure_ratio` is {ratio}; give a share between 0 and 1"
            ));
        }
        Ok(UpdatePolicy {
            parallelism: c
                .parallelism
                .map_or(fallback.parallelism, |p| p.min(u64::from(u32::MAX)) as u32),
            delay: c.delay.map_or(fallback.delay, |d| d.0),
            start_first,
            monitor: c.monitor.map_or(fallback.monitor, |d| d.0),
            on_failure,
            max_failure_ratio: ratio,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
}

/// When a replica that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never (`restart: "no"`, the Compose default).
    No,
    /// Always (`always`, `unless-stopped`).
    Always,
    /// After a non-zero exit, at most `max` times (`on-failure[:max]`).
    OnFailure { max: Option<u32> },
}

impl Restart {
    /// Whether to start again after exit `code` (None: killed by a signal),
    /// given the restarts so far.
    pub fn again(self, code: Option<i32>, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always => true,
            Restart::OnFailure { max } => code != Some(0) && max.is_none_or(|m| restarts < m),
        }
    }
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

    /// The command of a replica: `$VAR` and `${VAR}` naming a variable of
    /// the replica's environment (`HOST`, `PORT`, its `environment`) are
    /// replaced by its value; anything else, `$$` included, is passed as it
    /// is (a shell in the command expands the rest). In the Compose file,
    /// write `$$PORT`, since Compose interpolation runs first.
    /// The kept copy of the program runs in place of the program.
    pub fn argv_for(&self, env: &[(String, String)]) -> Vec<String> {
        let mut argv: Vec<String> = self.argv.iter().map(|a| expand_known(a, env)).collect();
        if let (Some(dir), None) = (env_value(env, "COVE_SECRETS"), &self.container) {
            for a in &mut argv {
                *a = self.secrets_rewritten(a, Path::new(dir));
            }
        }
        if let (Some(first), Some(program), None) = (
            argv.first_mut(),
            self.artifact.as_ref().and_then(|a| a.program.as_ref()),
            &self.container,
        ) {
            *first = program.display().to_string();
        }
        argv
    }

    /// The environment of replica `replica` in `slot`: the service's, plus
    /// `HOST`, `PORT` and `COVE_REPLICA`.
    pub fn replica_env(&self, replica: u32, slot: u32) -> Vec<(String, String)> {
        self.instance_env(replica, slot, &self.secrets_dir(slot))
    }

    /// [`replica_env`](Self::replica_env) with the private directory
    /// (`COVE_SECRETS`) at `private` (`cove run` has one of its own).
    pub fn instance_env(&self, replica: u32, slot: u32, private: &Path) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("HOST".into(), self.address(slot).to_string()));
        env.push(("PORT".into(), self.port().to_string()));
        env.push(("COVE_SERVICE".into(), self.name.clone()));
        env.push(("COVE_REPLICA".into(), replica.to_string()));
        if let Some(data) = self.data_dir(replica) {
            env.push(("COVE_DATA".into(), data.display().to_string()));
        }
        if self.has_private_dir() {
            // Inside a container the files are bound at their targets.
            let in_container = Path::new("/run/secrets");
            let dir = if self.container.is_some() {
                in_container
            } else {
                private
            };
            for (_, v) in env.iter_mut().filter(|_| self.container.is_none()) {
                *v = self.secrets_rewritten(v, dir);
            }
            for m in &self.secrets {
                if let (Some(var), Some(text)) = (&m.env, m.value.text()) {
                    env.push((var.clone(), text.to_string()));
                }
            }
            env.push(("COVE_SECRETS".into(), dir.display().to_string()));
        }
        env
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

    /// `s` with each secret's Compose target replaced by its file in `dir`.
    fn secrets_rewritten(&self, s: &str, dir: &Path) -> String {
        let mut out = s.to_string();
        for m in &self.secrets {
            if out.contains(&m.target) {
                out = out.replace(&m.target, &dir.join(&m.file).display().to_string());
            }
        }
        out
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

/// The value of `name` in `env`; the last one wins, as in a process's
/// environment built by pushing.
pub fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether [`expand_known`] replaces something in `s` with the value of
/// variable `name`.
pub fn names_variable(s: &str, name: &str) -> bool {
    expand_known(s, &[(name.to_string(), "\0".to_string())]) != s
}

/// Replaces `$NAME` / `${NAME}` when `NAME` is in `env`; leaves the rest.
pub fn expand_known(s: &str, env: &[(String, String)]) -> String {
    let lookup = |n: &str| env_value(env, n);
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' && chars.get(i + 1) == Some(&'$') {
            out.push_str("$$");
            i += 2;
            continue;
        }
        if chars[i] == '$' {
            let braced = chars.get(i + 1) == Some(&'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut j = start;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            let closed = !braced || chars.get(j) == Some(&'}');
            if let (Some(v), true, false) = (lookup(&name), closed, name.is_empty()) {
                out.push_str(v);
                i = if braced { j + 1 } else { j };
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Where cove keeps an app's state: `x-cove.state_dir`, default `.cove`,
/// relative to the project directory.
pub fn state_dir(app: &App, project_dir: &Path) -> PathBuf {
    project_dir.join(app.x_cove.state_dir.as_deref().unwrap_or(".cove"))
}

/// Most instances of one service at once (replicas, plus the new ones of a
/// rolling deploy): slots 1..=62 of its 64 addresses (none ends in .0 or
/// .255).
pub const MAX_INSTANCES: u32 = 62;

/// Most services of one app run natively (64 address ranges).
pub const MAX_SERVICES: usize = 64;

/// Address of global `slot` of the app whose range is `net`:
/// `127.64.0.0 + 4096·net + slot`.
pub fn address(net: u16, slot: u32) -> Ipv4Addr {
    let n = u32::from(net % (1 << 10));
    let g = slot % 4096;
    if slot & CONTAINER != 0 {
        return Ipv4Addr::from(u32::from(CONTAINER_NET) + n * 4096 + g);
    }
    Ipv4Addr::from((127u32 << 24) + (64 << 16) + n * 4096 + g)
}

/// Set on the global slots of services run as containers: their replicas'
/// addresses are in the project's container network, the same block of
/// 4,096 at the same offsets, in 10.192.0.0/10 instead of 127.64.0.0/10.
pub const CONTAINER: u32 = 1 << 16;
/// The start of the container networks' range.
pub const CONTAINER_NET: Ipv4Addr = Ipv4Addr::new(10, 192, 0, 0);

/// Whether `ip` is in the container networks' range.
pub fn is_container_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4) >> 22 == u32::from(CONTAINER_NET) >> 22,
        std::net::IpAddr::V6(_) => false,
    }
}

/// The project's container network: its subnet (a /20) and its gateway
/// (the host's side; an offset no instance takes: slot 63 of the first
/// service's range).
pub fn container_network(net: u16) -> (String, Ipv4Addr) {
    let base = address(net, CONTAINER);
    (format!("{base}/20"), address(net, CONTAINER | 63))
}

pub(crate) fn fnv(bytes: impl Iterator<Item = u8>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The app's address range: its lease (see [`crate::lease`]), else the one
/// it would try first.
pub fn net_of(app: &App, project_dir: &Path) -> u16 {
    crate::lease::recorded(&state_dir(app, project_dir))
        .unwrap_or_else(|| project_net(&app.name, project_dir))
}

/// The address range an app tries first: FNV-1a of its name and
/// directory, 10 bits.
pub fn project_net(name: &str, dir: &Path) -> u16 {
    let h = fnv(name
        .bytes()
        .chain([0])
        .chain(dir.as_os_str().as_encoded_bytes().iter().copied()));
    ((h ^ (h >> 10) ^ (h >> 20)) & 0x3ff) as u16
}

/// Each service's range index (0..64): from its name's hash, the next free
/// one on a collision, names taken in sorted order (so the result depends
/// only on the set of names). `None` with more than [`MAX_SERVICES`].
pub fn service_indexes<'a>(names: impl Iterator<Item = &'a str>) -> Option<IndexMap<&'a str, u32>> {
    let mut sorted: Vec<&str> = names.collect();
    sorted.sort_unstable();
    if sorted.len() > MAX_SERVICES {
        return None;
    }
    let mut taken = [false; MAX_SERVICES];
    let mut out = IndexMap::new();
    for name in sorted {
        let mut i = fnv(name.bytes()) as usize % MAX_SERVICES;
        while taken[i] {
            i = (i + 1) % MAX_SERVICES;
        }
        taken[i] = true;
        out.insert(name, i as u32);
    }
    Some(out)
}

/// The recipe of service `name` (looked up, never indexed: a name the map
/// lacks has none).
fn recipe_of(recipes: &IndexMap<&str, Option<Recipe>>, name: &str) -> Option<Recipe> {
    recipes.get(name).copied().flatten()
}

/// The index of service `name`. Every service of the app has one
/// ([`service_indexes`] was given all their names); looked up, never
/// indexed, a name it lacks gets 0.
fn index_of(indexes: &IndexMap<&str, u32>, name: &str) -> u32 {
    indexes.get(name).copied().unwrap_or_default()
}

/// Why a service cannot run natively.
/// `service` is empty for a problem of the project (`x-cove` at the top).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub service: String,
    pub message: String,
    pub hint: String,
    /// The field it is about, as keys (and list indexes) from the service
    /// (from the top of the file when `service` is empty), e.g. `x-cove`,
    /// `health`, `http`; empty: the service itself. Only to show where.
    pub field: Vec<String>,
    /// About this machine (a program not installed, a system user
    /// missing), not about what is written: `cove config` warns of it,
    /// `cove up` refuses.
    pub machine: bool,
    /// A value the file gets wrong (a misspelt policy, a path without its
    /// `/`, an address without a port): `cove config` refuses it as `cove
    /// up` does. Otherwise it is something cove cannot run (yet) that
    /// Compose accepts — a UDP port, a config without a file — which
    /// `cove config` only warns of.
    pub written: bool,
}

impl PlanError {
    /// The same, about `field` (keys from the service, or from the top).
    pub fn at(mut self, field: &[&str]) -> PlanError {
        self.field = field.iter().map(|k| k.to_string()).collect();
        self
    }

    /// The same, as a value the file gets wrong (see [`PlanError::written`]).
    pub fn written(mut self) -> PlanError {
        self.written = true;
        self
    }

    /// Keys from the top of a Compose file to what it is about.
    pub fn path(&self) -> Vec<String> {
        let mut path = Vec::new();
        if !self.service.is_empty() {
            path.push("services".to_string());
            path.push(self.service.clone());
        }
        path.extend(self.field.iter().cloned());
        path
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.service.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "service `{}`: {}", self.service, self.message)
        }
    }
}

impl std::error::Error for PlanError {}

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

/// The Docker volume of the app's named volume `name`.
pub fn volume_name(app: &str, net: u16, name: &str) -> String {
    format!("cove-{app}-{net}_{name}")
}

/// A list of strings of the Compose file (empty when absent).
fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A string or a list of strings and numbers (`dns`, `group_add`).
fn scalars(v: Option<&serde_json::Value>) -> Vec<String> {
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
fn pairs(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
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
fn devices_of(v: Option<&serde_json::Value>) -> Vec<String> {
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

fn flag(v: Option<&serde_json::Value>) -> bool {
    v.and_then(serde_json::Value::as_bool).unwrap_or(false)
}

/// Compose `ulimits` (`nofile: 1024` or `{soft, hard}`) as name, soft, hard.
fn ulimits_of(s: &Service) -> Vec<(String, i64, i64)> {
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
fn driver_of(app: &App, s: &Service) -> Option<Driver> {
    s.x_cove
        .as_ref()
        .and_then(|x| x.driver)
        .or(app.x_cove.driver)
}

/// Whether another service names `name` (with one of `ports`, or alone as
/// an environment value) in its environment or its `x-cove.run`.
fn named_by_others(app: &App, name: &str, ports: &[u16]) -> bool {
    let mut one = IndexMap::new();
    one.insert(name, (1u32, ports.to_vec()));
    app.services
        .iter()
        .filter(|(n, _)| *n != name)
        .any(|(_, svc)| {
            let env = svc
                .environment
                .values()
                .flatten()
                .any(|v| rewrite_value(v, &one, 0) != *v);
            let run = match svc.x_cove.as_ref().and_then(|x| x.run.as_ref()) {
                Some(StringOrList::List(l)) => rewrite_args(l, &one, 0) != *l,
                Some(StringOrList::String(s)) => rewrite_references(s, &one, 0) != *s,
                None => false,
            };
            env || run
        })
}

/// The health check: the Compose one, or for a recipe its own probe with
/// the Compose timings (or quick defaults).
fn health_of(s: &Service, recipe: Option<Recipe>) -> Option<HealthSpec> {
    if let Some(probe) = s.x_cove.as_ref().and_then(|x| x.health.as_ref()) {
        let probe = match (&probe.http, probe.tcp) {
            (Some(path), _) => Probe::Http {
                path: path.clone(),
                port: probe.port,
            },
            (None, Some(port)) => Probe::Tcp { port },
            (None, None) => return None, // reported by `plan`
        };
        return Some(HealthSpec::with_timings(probe, s.healthcheck.as_ref()));
    }
    let compose = s.healthcheck.as_ref().and_then(HealthSpec::from_compose);
    let Some(probe) = recipe.and_then(|r| r.probe(s)) else {
        return compose;
    };
    if s.healthcheck
        .as_ref()
        .is_some_and(|h| !h.is_enabled() && h.disable)
    {
        return None;
    }
    Some(match compose {
        Some(c) => HealthSpec { probe, ..c },
        None => HealthSpec {
            probe,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            retries: 30,
            // Brokers and databases may boot slowly on a busy machine:
            // failures before the first success count after 2 minutes.
            start_period: Duration::from_secs(120),
            start_interval: Duration::from_millis(500),
        },
    })
}

/// The service's ports: `ports` targets, then `expose`, without repeats.
fn service_ports(s: &Service) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    let exposed = s
        .expose
        .iter()
        .filter_map(|e| e.split(['/', '-']).next()?.parse().ok());
    for p in s.ports.iter().map(|p| p.target).chain(exposed) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Whether the service declares `port` for UDP only (`ports` with
/// `protocol: udp`, `expose: 53/udp`): nothing to connect to over TCP.
fn udp_only(s: &Service, port: u16) -> bool {
    let udp = |proto: &str| proto.eq_ignore_ascii_case("udp");
    let mut protocols: Vec<&str> = s
        .ports
        .iter()
        .filter(|p| p.target == port)
        .map(|p| p.protocol.as_str())
        .collect();
    for e in &s.expose {
        let (number, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        if number.split('-').next().and_then(|n| n.parse().ok()) == Some(port) {
            protocols.push(proto);
        }
    }
    !protocols.is_empty() && protocols.iter().all(|p| udp(p))
}

fn restart_policy(s: &Service) -> Result<Restart, String> {
    if let Some(p) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let max = p.max_attempts.map(|m| m as u32);
        return Ok(match p.condition.as_deref() {
            Some("none") => Restart::No,
            Some("on-failure") => Restart::OnFailure { max },
            _ => Restart::Always,
        });
    }
    match s.restart.as_deref().unwrap_or("no") {
        "no" | "" => Ok(Restart::No),
        "always" | "unless-stopped" => Ok(Restart::Always),
        "on-failure" => Ok(Restart::OnFailure { max: None }),
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => Ok(Restart::OnFailure { max: Some(n) }),
            _ => Err(format!("unknown `restart` policy `{other}`")),
        },
    }
}

/// An environment value: one that is just a service's name (`DB_HOST: db`)
/// becomes its first replica's address; `name:port` inside is rewritten
/// by [`rewrite_references`].
pub fn rewrite_value(v: &str, services: &IndexMap<&str, (u32, Vec<u16>)>, net: u16) -> String {
    match services.get(v) {
        Some((slot, _)) => address(net, *slot).to_string(),
        None => rewrite_references(v, services, net),
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

    /// [`rewrite_args`] over this plan's services (for `cove run`'s command).
    pub fn rewrite_args(&self, argv: &[String]) -> Vec<String> {
        let (services, net) = self.references();
        rewrite_args(argv, &services, net)
    }

    /// Each service's slot references reach, and its ports; the net.
    fn references(&self) -> (IndexMap<&str, (u32, Vec<u16>)>, u16) {
        let services: IndexMap<&str, (u32, Vec<u16>)> = self
            .services
            .iter()
            .map(|s| {
                let slot = match s.service_address {
                    Some(_) => s.base & !CONTAINER,
                    None => s.base + 1,
                };
                (s.name.as_str(), (slot, s.ports.clone()))
            })
            .collect();
        (services, self.services.first().map_or(0, |s| s.net))
    }

    /// [`rewrite_value`] over this plan's services (for `cove run -e`).
    pub fn rewrite_value(&self, v: &str) -> String {
        let (services, net) = self.references();
        rewrite_value(v, &services, net)
    }
}

/// A native command's arguments: `service:port` inside each (see
/// [`rewrite_references`]), and a service's name given as a host — the
/// argument after `-h` or `--host`, or `--host=NAME` — become the
/// service's address (`redis-cli -h cache` as in a container). Words
/// inside one argument (a `sh -c` script) are not: see
/// [`crate::habits::hosts_in_scripts`].
pub fn rewrite_args(
    argv: &[String],
    services: &IndexMap<&str, (u32, Vec<u16>)>,
    net: u16,
) -> Vec<String> {
    let addr = |n: &str| {
        services
            .get(n)
            .map(|(slot, _)| address(net, *slot).to_string())
    };
    let mut out: Vec<String> = Vec::with_capacity(argv.len());
    for (i, a) in argv.iter().enumerate() {
        let after_flag = i > 0 && matches!(argv[i - 1].as_str(), "-h" | "--host");
        let host = match a.strip_prefix("--host=") {
            Some(n) => addr(n).map(|ad| format!("--host={ad}")),
            None if after_flag => addr(a),
            None => None,
        };
        out.push(host.unwrap_or_else(|| rewrite_references(a, services, net)));
    }
    out
}

/// Rewrites `service:port` references to `address:port` (the first replica).
pub fn rewrite_references(s: &str, services: &IndexMap<&str, (u32, Vec<u16>)>, net: u16) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at_boundary = i == 0 || !is_name(chars[i - 1]);
        if at_boundary && is_name(chars[i]) {
            let mut j = i;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[i..j].iter().collect();
            if chars.get(j) == Some(&':') {
                let mut k = j + 1;
                while k < chars.len() && chars[k].is_ascii_digit() {
                    k += 1;
                }
                let port: Option<u16> = chars[j + 1..k].iter().collect::<String>().parse().ok();
                let ends = k == chars.len() || !is_name(chars[k]);
                if let (Some((index, _)), Some(port), true) =
                    (services.get(name.as_str()), port, ends)
                {
                    out.push_str(&format!("{}:{port}", address(net, *index)));
                    i = k;
                    continue;
                }
            }
            out.push_str(&name);
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_per_service_and_replica() {
        assert_eq!(address(0, 1), Ipv4Addr::new(127, 64, 0, 1));
        assert_eq!(address(0, 64 + 62), Ipv4Addr::new(127, 64, 0, 126));
        assert_eq!(address(0, 3 * 64 + 62), Ipv4Addr::new(127, 64, 0, 254));
        assert_eq!(address(0, 4 * 64 + 1), Ipv4Addr::new(127, 64, 1, 1));
        assert_eq!(
            address(1023, 63 * 64 + 62),
            Ipv4Addr::new(127, 127, 255, 254)
        );
        // Ranges of neighbouring apps do not overlap.
        assert_eq!(address(1, 1), Ipv4Addr::new(127, 64, 16, 1));
        let a = project_net("shop", Path::new("/home/a/shop"));
        assert_eq!(a, project_net("shop", Path::new("/home/a/shop")), "stable");
        assert_ne!(a, project_net("shop", Path::new("/home/b/shop")));
        assert!(a < 1 << 10);
        // Service ranges: stable, distinct, independent of the others.
        let names = ["web", "db", "cache", "worker"];
        let i = service_indexes(names.into_iter()).unwrap();
        let mut seen: Vec<u32> = i.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|x| *x < 64));
        let fewer = service_indexes(["web", "db"].into_iter()).unwrap();
        assert_eq!((fewer["web"], fewer["db"]), (i["web"], i["db"]));
        let many: Vec<String> = (0..65).map(|n| format!("s{n}")).collect();
        assert!(service_indexes(many.iter().map(String::as_str)).is_none());
        let full: Vec<String> = (0..64).map(|n| format!("s{n}")).collect();
        assert_eq!(
            service_indexes(full.iter().map(String::as_str))
                .unwrap()
                .len(),
            64
        );
    }

    #[test]
    fn references_are_rewritten_only_for_services_with_a_port() {
        let mut m = IndexMap::new();
        m.insert("db", (1, vec![3306]));
        m.insert("redis-1", (2, vec![6379]));
        assert_eq!(
            rewrite_references("mysql://app:pw@db:3306/app", &m, 0),
            "mysql://app:pw@127.64.0.1:3306/app"
        );
        assert_eq!(
            rewrite_references("redis-1:6379,redis-1:6380", &m, 0),
            "127.64.0.2:6379,127.64.0.2:6380"
        );
        assert_eq!(
            rewrite_references("mydb:3306 db:x db:99999 db", &m, 0),
            "mydb:3306 db:x db:99999 db"
        );
        assert_eq!(
            rewrite_references("http://db:3306", &m, 0),
            "http://127.64.0.1:3306"
        );
    }

    #[test]
    fn a_service_given_as_a_host_in_arguments_is_its_address() {
        let mut m = IndexMap::new();
        m.insert("cache", (1, vec![6379]));
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let r = |s: &str| rewrite_args(&words(s), &m, 0).join(" ");
        assert_eq!(r("redis-cli -h cache ping"), "redis-cli -h 127.64.0.1 ping");
        assert_eq!(r("tool --host cache"), "tool --host 127.64.0.1");
        assert_eq!(r("tool --host=cache"), "tool --host=127.64.0.1");
        assert_eq!(r("tool cache:6379"), "tool 127.64.0.1:6379");
        for kept in [
            "tool -h other",
            "tool cache -h",
            "tool --hostname cache",
            "tool -p cache",
            "sh -c redis-cli -h cache",
            "tool --host=cached",
        ] {
            let want = if kept == "sh -c redis-cli -h cache" {
                // Separate words here: rewritten.
                "sh -c redis-cli -h 127.64.0.1"
            } else {
                kept
            };
            assert_eq!(r(kept), want);
        }
        let script = vec!["sh".into(), "-c".into(), "redis-cli -h cache ping".into()];
        assert_eq!(rewrite_args(&script, &m, 0), script, "inside a script: not");
    }

    #[test]
    fn a_variable_is_named_where_it_would_be_expanded() {
        assert!(names_variable("--password=$PASS", "PASS"));
        assert!(names_variable("${PASS}", "PASS"));
        assert!(
            !names_variable("$$PASS", "PASS"),
            "`$$` is passed on as it is"
        );
        assert!(!names_variable("$PASSWORD $PAS ${PASS", "PASS"));
        assert!(!names_variable("$COVE_SECRETS/pass", "PASS"));
    }

    #[test]
    fn only_known_variables_are_expanded_in_commands() {
        let env = vec![
            ("PORT".to_string(), "80".to_string()),
            ("HOST".to_string(), "127.64.1.1".to_string()),
        ];
        assert_eq!(
            expand_known("--bind $HOST:${PORT}", &env),
            "--bind 127.64.1.1:80"
        );
        assert_eq!(
            expand_known("echo $$ $i ${X:-y} $ end$", &env),
            "echo $$ $i ${X:-y} $ end$"
        );
        assert_eq!(expand_known("$PORTS ${PORT", &env), "$PORTS ${PORT");
    }

    #[test]
    fn restart_policies() {
        assert!(!Restart::No.again(Some(1), 0));
        assert!(Restart::Always.again(Some(0), 100));
        let f = Restart::OnFailure { max: Some(2) };
        assert!(f.again(Some(1), 1) && !f.again(Some(1), 2) && !f.again(Some(0), 0));
        assert!(f.again(None, 0), "killed by a signal counts as a failure");
    }
}
