//! The `docker` driver: a replica is a container of the project's
//! network (see [`crate::docker`] for the engine's side), made with
//! cove's labels and a digest of its spec, so a killed daemon's
//! containers are taken over when they still match; the engine runs a
//! Compose healthcheck that runs in the container, and cove follows its
//! verdicts (running the check itself until the engine's first one, so a
//! replica is ready as soon as its check passes). One engine client,
//! connected at first use, serves every replica of a supervisor.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt as _;
use rustix::process::Signal;
use tokio::sync::OnceCell;

use super::native::HostProber;
use super::{BoxFuture, Driver, OnBuildLine, OnLine, Prober, Replica, Start, words};
use crate::artifact::Artifact;
use crate::docker::{Container, ContainerSpec, DockerError, Engine, Existing, Healthcheck};
use crate::health::{Health, HealthSpec, Probe};
use crate::output::Stream;
use crate::plan::ServicePlan;

/// Runs replicas as containers, through one engine client.
#[derive(Default)]
pub struct Docker {
    engine: OnceCell<Engine>,
}

impl Docker {
    /// The engine, connected at first use (a failed attempt is tried
    /// again next time).
    async fn engine(&self) -> Result<&Engine, DockerError> {
        self.engine.get_or_try_init(Engine::connect).await
    }

    async fn start_container(
        &self,
        start: Start<'_>,
        on_line: OnLine,
    ) -> Result<Box<dyn Replica>, String> {
        let Start {
            svc,
            replica,
            slot,
            env,
            ..
        } = start;
        let plan = svc
            .container
            .as_ref()
            .ok_or_else(|| format!("`{}` does not run as a container", svc.name))?;
        let engine = self.engine().await.map_err(words)?;
        // The revision's image by id (its artifact), so that a tag moved by a
        // later build changes nothing that runs; else the tag (pulled if need be).
        let image = svc
            .artifact
            .as_ref()
            .map(|a| a.digest.clone())
            .filter(|d| d.starts_with("sha256:"))
            .unwrap_or_else(|| plan.image.clone());
        let spec = container_spec(svc, replica, slot, env, image.clone());
        // The image, the network and what has the container's name are
        // independent: asked at once (each is an engine round trip, on the
        // way to every start).
        let network = async {
            project_network(engine, svc, plan).await?;
            host_addresses(&plan.bridge, &plan.host_addresses).await
        };
        let (pulled, network, there) = tokio::join!(
            engine.ensure_image(&image),
            network,
            engine.existing(&spec.name, &spec.labels)
        );
        pulled.map_err(words)?;
        network?;
        let on_line = move |stream, line| on_line(stream, line);
        // A killed daemon's container, made the same way and still running,
        // is taken over; anything else of that name is replaced.
        let container = match there {
            Existing::Adoptable(id) => engine.follow_from_now(id, &spec.name, on_line),
            there => engine
                .run_in_place_of(&spec, there, on_line)
                .await
                .map_err(words)?,
        };
        let pid = engine.pid(&container).await;
        Ok(Box::new(Running {
            engine: engine.clone(),
            container,
            pid,
        }))
    }

    async fn take_over_of(&self, svc: &ServicePlan) -> HashMap<u32, u32> {
        let mut kept = HashMap::new();
        let Some(plan) = &svc.container else {
            return kept;
        };
        let Ok(engine) = self.engine().await else {
            return kept;
        };
        let wanted = [
            (crate::docker::LABEL_PROJECT, plan.project.as_str()),
            (crate::docker::LABEL_SERVICE, svc.name.as_str()),
        ];
        let Ok(found) = engine.find(&wanted).await else {
            return kept;
        };
        let revision = svc.revision.to_string();
        for f in found {
            let number = |label: &str| f.labels.get(label).and_then(|v| v.parse::<u32>().ok());
            let keep = match (
                number(crate::docker::LABEL_REPLICA),
                number(crate::docker::LABEL_SLOT),
            ) {
                (Some(r), Some(slot)) => {
                    f.state == "running"
                        && f.labels.get(crate::docker::LABEL_REVISION) == Some(&revision)
                        && (1..=svc.replicas).contains(&r)
                        && f.name == container_name(svc, slot)
                        && !kept.contains_key(&r)
                        && !kept.values().any(|s| *s == slot)
                        && kept.insert(r, slot).is_none()
                }
                _ => false,
            };
            if !keep {
                let _ = engine
                    .remove(&Container {
                        id: f.id,
                        name: f.name,
                    })
                    .await;
            }
        }
        kept
    }
}

impl Driver for Docker {
    fn start<'a>(
        &'a self,
        start: Start<'a>,
        on_line: OnLine,
    ) -> BoxFuture<'a, Result<Box<dyn Replica>, String>> {
        Box::pin(self.start_container(start, on_line))
    }

    fn take_over<'a>(&'a self, svc: &'a ServicePlan) -> BoxFuture<'a, HashMap<u32, u32>> {
        Box::pin(self.take_over_of(svc))
    }

    fn build_image<'a>(
        &'a self,
        svc: &'a ServicePlan,
        on_line: OnBuildLine,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if svc.container.as_ref().is_none_or(|c| c.build.is_none()) {
                return Ok(());
            }
            let engine = self.engine().await.map_err(words)?;
            build_with(engine, svc, super::BuildOptions::default(), on_line).await
        })
    }

    fn start_build(
        &self,
        svc: &ServicePlan,
        _: &[String],
        _: Vec<(String, String)>,
        _: OnLine,
    ) -> Result<Box<dyn Replica>, String> {
        Err(format!(
            "`{}`: the docker driver runs no build command (`x-cove.build` runs natively)",
            svc.name
        ))
    }

    /// A container's artifact is its image: the id the tag names now.
    fn artifact<'a>(
        &'a self,
        svc: &'a ServicePlan,
        _: Vec<PathBuf>,
    ) -> BoxFuture<'a, Result<Artifact, String>> {
        Box::pin(async move {
            let image = svc
                .container
                .as_ref()
                .map(|c| c.image.clone())
                .unwrap_or_default();
            let engine = self.engine().await.map_err(words)?;
            let digest = image_id(engine, svc, &image).await?;
            Ok(Artifact {
                digest,
                program: None,
            })
        })
    }

    fn signal<'a>(
        &'a self,
        svc: &'a ServicePlan,
        slot: u32,
        _: u32,
        signal: Signal,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let engine = self.engine().await.map_err(words)?;
            (engine.kill(&container_name(svc, slot), &signal.as_raw().to_string()))
                .await
                .map_err(words)
        })
    }

    fn pause<'a>(
        &'a self,
        svc: &'a ServicePlan,
        slot: u32,
        _: u32,
        pause: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let engine = self.engine().await.map_err(words)?;
            (engine.pause(&container_name(svc, slot), pause))
                .await
                .map_err(words)
        })
    }
}

/// What the engine is given for replica `replica` of `svc` in `slot`.
fn container_spec(
    svc: &ServicePlan,
    replica: u32,
    slot: u32,
    env: &[(String, String)],
    image: String,
) -> ContainerSpec {
    let Some(plan) = &svc.container else {
        return ContainerSpec::default();
    };
    let mut labels = labels(svc, replica);
    labels.insert(crate::docker::LABEL_SLOT.into(), slot.to_string());
    labels.extend(plan.labels.iter().cloned());
    let argv = svc.argv_for(env);
    let dir = svc.secrets_dir(slot);
    let mut spec = ContainerSpec {
        name: container_name(svc, slot),
        image,
        entrypoint: plan.entrypoint.clone(),
        cmd: (!argv.is_empty()).then_some(argv),
        env: env.to_vec(),
        labels,
        working_dir: plan.working_dir.clone(),
        user: plan.user.clone(),
        network_mode: Some(plan.network.clone()),
        ip: Some(svc.address(slot)),
        aliases: std::iter::once(svc.name.clone())
            .chain(plan.options.aliases.iter().cloned())
            .collect(),
        binds: plan
            .binds
            .iter()
            .cloned()
            .chain(
                svc.secrets
                    .iter()
                    .map(|m| format!("{}:{}:ro", dir.join(&m.file).display(), m.target)),
            )
            .collect(),
        tmpfs: plan.tmpfs.clone(),
        memory: plan.memory,
        nano_cpus: plan.nano_cpus,
        pids: plan.pids,
        ulimits: plan.options.ulimits.clone(),
        cap_add: plan.options.cap_add.clone(),
        cap_drop: plan.options.cap_drop.clone(),
        extra_hosts: plan.options.extra_hosts.clone(),
        init: plan.options.init,
        privileged: plan.options.privileged,
        read_only: plan.options.read_only,
        healthcheck: engine_healthcheck(svc, plan.health_disabled),
        hostname: plan.options.hostname.clone(),
        sysctls: plan.options.sysctls.clone(),
        shm_size: plan.options.shm_size,
        security_opt: plan.options.security_opt.clone(),
        devices: plan.options.devices.clone(),
        group_add: plan.options.group_add.clone(),
        dns: plan.options.dns.clone(),
        dns_search: plan.options.dns_search.clone(),
        ..Default::default()
    };
    spec.labels
        .insert(crate::docker::LABEL_SPEC.into(), fingerprint(&spec));
    spec
}

/// A digest of what makes the container (its labels aside, which hold it).
fn fingerprint(spec: &ContainerSpec) -> String {
    let mut bare = spec.clone();
    bare.labels.clear();
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{bare:?}").as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Puts the native services' addresses on the network's interface, so
/// the gateway's forwarders there are reached from the containers.
/// Needs CAP_NET_ADMIN (root, as a rootful engine does).
async fn host_addresses(bridge: &str, addresses: &[std::net::Ipv4Addr]) -> Result<(), String> {
    for a in addresses {
        let out = tokio::process::Command::new("ip")
            .args(["addr", "replace", &format!("{a}/32"), "dev", bridge])
            .output()
            .await
            .map_err(|e| {
                format!("cannot run `ip` (iproute2) to reach native services from containers: {e}")
            })?;
        if !out.status.success() {
            return Err(format!(
                "cannot put {a} on {bridge}, where containers reach a native service: {} (hint: run cove as root, or with CAP_NET_ADMIN)",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The name of the container in `slot`: unique per project.
pub fn container_name(svc: &ServicePlan, slot: u32) -> String {
    let network = svc
        .container
        .as_ref()
        .map_or("cove", |c| c.network.as_str());
    format!("{network}-{}-{slot}", svc.name)
}

fn labels_of_project(svc: &ServicePlan) -> HashMap<String, String> {
    let project = svc
        .container
        .as_ref()
        .map(|c| c.project.clone())
        .unwrap_or_default();
    HashMap::from([(crate::docker::LABEL_PROJECT.to_string(), project)])
}

fn labels(svc: &ServicePlan, replica: u32) -> HashMap<String, String> {
    let mut l = labels_of_project(svc);
    l.insert(crate::docker::LABEL_SERVICE.into(), svc.name.clone());
    l.insert(
        crate::docker::LABEL_REVISION.into(),
        svc.revision.to_string(),
    );
    l.insert(crate::docker::LABEL_REPLICA.into(), replica.to_string());
    l
}

/// A running container.
struct Running {
    engine: Engine,
    container: Container,
    pid: Option<u32>,
}

impl Replica for Running {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn wait(&mut self) -> BoxFuture<'_, Option<i32>> {
        Box::pin(async move {
            match self.engine.wait(&self.container).await {
                // 128 + n: killed by signal n, as a process would be.
                Ok(code) if code > 128 => None,
                Ok(code) => i32::try_from(code).ok(),
                Err(_) => None,
            }
        })
    }

    fn stop(&mut self, signal: Signal, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self
                .engine
                .stop(&self.container, &signal.as_raw().to_string(), grace)
                .await;
        })
    }

    /// The engine runs a Compose healthcheck that runs in the container;
    /// cove probes the others (http, tcp) on its address.
    fn prober(&self, spec: Option<&HealthSpec>) -> Box<dyn Prober> {
        if spec.is_some_and(|s| matches!(s.probe, Probe::Exec(_) | Probe::Shell(_))) {
            Box::new(EngineProber(self.engine.clone(), self.container.clone()))
        } else {
            Box::new(HostProber)
        }
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.engine.remove(&self.container).await;
        })
    }
}

/// The engine runs the container's Compose healthcheck; cove follows its
/// verdicts (and runs the check itself until the first, see
/// [`first_success`]).
struct EngineProber(Engine, Container);

impl Prober for EngineProber {
    fn watch<'a>(
        &'a self,
        spec: &'a HealthSpec,
        _: &'a Path,
        _: &'a [(String, String)],
        _: tokio::time::Instant,
        on_change: &'a mut (dyn FnMut(Health) + Send),
    ) -> BoxFuture<'a, String> {
        Box::pin(watch_engine(&self.0, &self.1, spec, on_change))
    }

    fn refusing<'a>(&'a self, addr: Ipv4Addr, ports: &'a [u16]) -> BoxFuture<'a, Option<u16>> {
        Box::pin(super::first_refusing(addr, ports))
    }
}

/// The engine's verdicts on a container: its health events, and a look
/// at its state now and then (an event may come before the subscription).
/// Until the engine's first verdict, cove also runs the check itself (see
/// [`first_success`]): its first success makes the replica healthy, and
/// the engine's `starting` that follows is not taken as a step back; only
/// the engine's `unhealthy` makes it unhealthy.
async fn watch_engine(
    engine: &Engine,
    container: &Container,
    spec: &HealthSpec,
    on_change: &mut (dyn FnMut(Health) + Send),
) -> String {
    let mut events = std::pin::pin!(engine.health_events(container, std::time::SystemTime::now()));
    let mut open = true;
    let mut last = Health::Starting;
    let every = spec
        .interval
        .clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut look = tokio::time::interval(every);
    let mut early = std::pin::pin!(first_success(engine, container, spec));
    let mut probing = true;
    loop {
        tokio::select! {
            e = events.next(), if open => {
                // Any news: the state says which (with the last check's output).
                if e.is_none() {
                    open = false;
                    continue;
                }
            }
            _ = look.tick() => {}
            () = &mut early, if probing => {
                probing = false;
                if last == Health::Starting {
                    on_change(Health::Healthy);
                    last = Health::Healthy;
                }
                continue;
            }
        }
        let Ok(Some(h)) = engine.health(container).await else {
            continue;
        };
        let now = match h.status.as_str() {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::Starting,
        };
        // The engine's first verdict: its checks take over from cove's.
        probing &= now == Health::Starting;
        // `starting` after cove's own probe succeeded: the engine has not
        // run its first check yet.
        if now == last || (now, last) == (Health::Starting, Health::Healthy) {
            continue;
        }
        if now == Health::Unhealthy {
            return format!(
                "health check `{}` failed {} time(s) (run by the engine), last: {}",
                crate::health::describe(&spec.probe),
                h.streak,
                h.last
            );
        }
        on_change(now);
        last = now;
    }
}

/// How often, at most, cove runs a starting container's check itself.
const EARLY_EVERY: Duration = Duration::from_millis(250);

/// Resolves at the first success of the container's check run by cove
/// through the engine's exec API: at once, then after `start_interval` or
/// [`EARLY_EVERY`] (the shorter; cove's default `start_interval`, 1 s,
/// cannot be told from a given one), each wait half as long again as the
/// last, up to the check's `interval` (a check that cannot pass is not
/// run four times a second until the engine gives up on it); each run cut
/// at `timeout`.
///
/// Why: the engine runs its first check one `interval` after the start
/// (engines before API 1.44 have no `start_interval`), so a service that
/// is ready in milliseconds would be waited for a whole `interval` (30 s
/// by default), and its dependents with it. Docker's own `start_interval`
/// makes the same trade: frequent checks until the first success. A
/// failure here counts for nothing (a slow start is not unhealthy); only
/// the engine's verdicts do.
async fn first_success(engine: &Engine, container: &Container, spec: &HealthSpec) {
    let cmd = match &spec.probe {
        Probe::Exec(argv) => argv.clone(),
        Probe::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        Probe::Http { .. } | Probe::Tcp { .. } => return std::future::pending().await,
    };
    let first = spec.start_interval.min(EARLY_EVERY);
    let mut every = first;
    loop {
        let tried = tokio::time::Instant::now();
        let run = engine.exec_status(&container.id, &cmd);
        if let Ok(Ok(0)) = tokio::time::timeout(spec.timeout, run).await {
            return;
        }
        tokio::time::sleep_until(tried + every).await;
        every = (every * 3 / 2).min(spec.interval.max(first));
    }
}

/// The engine's form of a Compose healthcheck that runs in the container
/// (`CMD`, `CMD-SHELL`); `["NONE"]` when the Compose file turns it off.
fn engine_healthcheck(svc: &ServicePlan, disabled: bool) -> Option<Healthcheck> {
    if disabled {
        return Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    }
    let h = svc.health.as_ref()?;
    let test = match &h.probe {
        Probe::Exec(argv) => std::iter::once("CMD".to_string())
            .chain(argv.iter().cloned())
            .collect(),
        Probe::Shell(script) => vec!["CMD-SHELL".into(), script.clone()],
        Probe::Http { .. } | Probe::Tcp { .. } => return None,
    };
    Some(Healthcheck {
        test,
        interval: h.interval,
        timeout: h.timeout,
        retries: h.retries,
        start_period: h.start_period,
        start_interval: h.start_interval,
    })
}

/// The project's network, made when missing (a replica's and a one-off's).
async fn project_network(
    engine: &Engine,
    svc: &ServicePlan,
    plan: &crate::plan::ContainerPlan,
) -> Result<(), String> {
    engine
        .ensure_network(
            &plan.network,
            &plan.subnet,
            plan.gateway,
            &plan.bridge,
            &labels_of_project(svc),
        )
        .await
        .map_err(words)
}

/// The id of `image` here, pulled first if need be. A built image is also
/// tagged with the revision (`cove-APP-SERVICE:rN`), which keeps it for
/// rollbacks when a later build takes `latest`.
async fn image_id(engine: &Engine, svc: &ServicePlan, image: &str) -> Result<String, String> {
    let id = engine.ensure_image(image).await.map_err(words)?;
    let built = svc.container.as_ref().is_some_and(|c| c.build.is_some());
    if let (true, Some((repo, _))) = (built && svc.revision > 0, image.rsplit_once(':')) {
        engine
            .tag(&id, repo, &format!("r{}", svc.revision))
            .await
            .map_err(words)?;
    }
    Ok(id)
}

/// Builds the service's image (`build:`) with `engine`, output line by
/// line to `on_line`.
pub(super) async fn build_with(
    engine: &Engine,
    svc: &ServicePlan,
    options: super::BuildOptions,
    on_line: impl FnMut(&str),
) -> Result<(), String> {
    let (Some(plan), Some(b)) = (
        &svc.container,
        svc.container.as_ref().and_then(|c| c.build.as_ref()),
    ) else {
        return Ok(());
    };
    let spec = crate::docker::BuildSpec {
        context: b.context.clone(),
        skip: b.skip.clone(),
        dockerfile: b.dockerfile.clone(),
        tag: plan.image.clone(),
        args: b.args.iter().cloned().collect(),
        target: b.target.clone(),
        // No revision among them: the same context builds the same image.
        labels: {
            let mut l = labels_of_project(svc);
            l.insert(crate::docker::LABEL_SERVICE.into(), svc.name.clone());
            l.extend(b.labels.iter().cloned());
            l
        },
        no_cache: options.no_cache,
        pull: options.pull,
    };
    engine.build(&spec, on_line).await.map(drop).map_err(words)
}

/// A one-off command in a container of a service (`cove run`): the
/// service's container (image, environment, mounts, network, limits) with
/// its own name, command and settings; no address of a replica's, no
/// service alias, no health check.
#[derive(Debug, Clone, Default)]
pub struct OneOff {
    /// The container's name.
    pub name: String,
    /// The command; `None`: the service's.
    pub cmd: Option<Vec<String>>,
    /// The entrypoint; `None`: the service's (an empty one: none).
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<(String, String)>,
    pub ports: Vec<crate::docker::Published>,
}

/// Starts `run` of `svc` in a container (its image built or pulled first
/// when missing, the project's network made when missing); its output,
/// line by line, to `on_line` until it ends. The engine and the container,
/// to wait for and remove.
pub async fn one_off(
    svc: &ServicePlan,
    run: &OneOff,
    on_line: impl FnMut(Stream, String) + Send + 'static,
) -> Result<(Engine, Container), String> {
    let plan = svc
        .container
        .as_ref()
        .ok_or_else(|| format!("`{}` does not run as a container", svc.name))?;
    let engine = Engine::connect().await.map_err(words)?;
    if plan.build.is_some() && engine.image_id(&plan.image).await.ok().flatten().is_none() {
        build_with(&engine, svc, super::BuildOptions::default(), |_| {}).await?;
    }
    engine.ensure_image(&plan.image).await.map_err(words)?;
    project_network(&engine, svc, plan).await?;
    let mut spec = container_spec(svc, 1, 1, &run.env, plan.image.clone());
    spec.name = run.name.clone();
    // The engine picks its address; only replicas answer to the service's name.
    spec.ip = None;
    spec.aliases.clear();
    spec.healthcheck = None;
    if let Some(cmd) = &run.cmd {
        spec.cmd = Some(cmd.clone());
    }
    if let Some(e) = &run.entrypoint {
        spec.entrypoint = Some(e.clone());
    }
    if run.workdir.is_some() {
        spec.working_dir = run.workdir.clone();
    }
    if run.user.is_some() {
        spec.user = run.user.clone();
    }
    // The project's label (`down` removes what is left), no service's:
    // a replica's take-over never mistakes it for one of its own.
    spec.labels = labels_of_project(svc);
    spec.labels
        .insert("dev.cove.oneoff".into(), svc.name.clone());
    spec.labels.extend(run.labels.iter().cloned());
    spec.ports = run.ports.clone();
    let container = engine.run(&spec, on_line).await.map_err(words)?;
    Ok((engine, container))
}
