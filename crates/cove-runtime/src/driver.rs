//! The driver boundary: a replica runs as a native process group or as a
//! container, and the supervisor sees one [`Replica`] either way: started
//! with its environment and a line callback, waited for (its exit code),
//! stopped with the service's signal and grace period, probed for health,
//! and finished (a container is removed; a process group is already gone).
//!
//! Containers (the `docker` driver) join the
//! project's network at their replica's address (the same offsets as the
//! native addresses, in 10.192.0.0/10), under the service's name, so
//! containers reach each other by name and native services and the
//! gateway reach them at the address references are rewritten to.

use std::collections::HashMap;
use std::time::Duration;

use rustix::process::Signal;

use futures_util::StreamExt as _;

use crate::docker::{Container, ContainerSpec, Engine, Healthcheck};
use crate::health::{Health, HealthSpec, Probe, Tracker};
use crate::plan::ServicePlan;
use crate::process::{self, ProcessSpec, Stream};

/// A running replica.
pub enum Replica {
    Process(process::Running),
    Container {
        engine: Engine,
        container: Container,
        pid: Option<u32>,
    },
}

/// Starts replica `replica` of `svc` in `slot`, with `env`; a native one
/// in `cgroup` when given.
pub async fn start(
    svc: &ServicePlan,
    replica: u32,
    slot: u32,
    env: &[(String, String)],
    cgroup: Option<std::path::PathBuf>,
    on_line: impl Fn(Stream, String) + Send + Sync + Clone + 'static,
) -> Result<Replica, String> {
    let Some(plan) = &svc.container else {
        let spec = ProcessSpec {
            argv: svc.argv_for(env),
            workdir: svc.workdir.clone(),
            env: env.to_vec(),
            cgroup,
        };
        return process::spawn(&spec, on_line)
            .map(Replica::Process)
            .map_err(|e| e.to_string());
    };
    let engine = Engine::connect().await.map_err(words)?;
    // The revision's image by id (its artifact), so that a tag moved by a
    // later build changes nothing that runs; else the tag (pulled if need be).
    let image = svc
        .artifact
        .as_ref()
        .map(|a| a.digest.clone())
        .filter(|d| d.starts_with("sha256:"))
        .unwrap_or_else(|| plan.image.clone());
    engine.ensure_image(&image).await.map_err(words)?;
    let mut labels = labels(svc, replica);
    labels.insert(crate::docker::LABEL_SLOT.into(), slot.to_string());
    labels.extend(plan.labels.iter().cloned());
    engine
        .ensure_network(
            &plan.network,
            &plan.subnet,
            plan.gateway,
            &plan.bridge,
            &labels_of_project(svc),
        )
        .await
        .map_err(words)?;
    host_addresses(&plan.bridge, &plan.host_addresses).await?;
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
            .chain(plan.aliases.iter().cloned())
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
        ulimits: plan.ulimits.clone(),
        cap_add: plan.cap_add.clone(),
        cap_drop: plan.cap_drop.clone(),
        extra_hosts: plan.extra_hosts.clone(),
        init: plan.init,
        privileged: plan.privileged,
        read_only: plan.read_only,
        healthcheck: engine_healthcheck(svc, plan.health_disabled),
        hostname: plan.hostname.clone(),
        sysctls: plan.sysctls.clone(),
        shm_size: plan.shm_size,
        security_opt: plan.security_opt.clone(),
        devices: plan.devices.clone(),
        group_add: plan.group_add.clone(),
        dns: plan.dns.clone(),
        dns_search: plan.dns_search.clone(),
        ..Default::default()
    };
    spec.labels
        .insert(crate::docker::LABEL_SPEC.into(), fingerprint(&spec));
    // A killed daemon's container, made the same way and still running,
    // is taken over; anything else of that name is replaced.
    let container = match engine
        .adopt(&spec.name, &spec.labels, on_line.clone())
        .await
    {
        Some(c) => c,
        None => engine.run(&spec, on_line).await.map_err(words)?,
    };
    let pid = engine.pid(&container).await;
    Ok(Replica::Container {
        engine,
        container,
        pid,
    })
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

/// The running containers of `svc`'s revision that a killed daemon left
/// (replica → slot), to be taken over; the service's other containers
/// (stopped, of another revision, replicas beyond the count) are removed.
/// Nothing without an engine.
pub async fn take_over(svc: &ServicePlan) -> HashMap<u32, u32> {
    let mut kept = HashMap::new();
    let (Some(plan), Ok(engine)) = (&svc.container, Engine::connect().await) else {
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

/// An engine error in words, with its hint (a replica's failure reason).
fn words(e: crate::docker::DockerError) -> String {
    format!("{e} (hint: {})", e.hint())
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

impl Replica {
    /// The host pid of its (main) process.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Replica::Process(p) => Some(p.pid),
            Replica::Container { pid, .. } => *pid,
        }
    }

    /// Waits for it to end; its exit code (`None`: killed by a signal).
    pub async fn wait(&mut self) -> Option<i32> {
        match self {
            Replica::Process(p) => p.wait().await.ok().and_then(|s| s.code()),
            Replica::Container {
                engine, container, ..
            } => match engine.wait(container).await {
                // 128 + n: killed by signal n, as a process would be.
                Ok(code) if code > 128 => None,
                Ok(code) => i32::try_from(code).ok(),
                Err(_) => None,
            },
        }
    }

    /// `signal`, `grace` to end, then SIGKILL.
    pub async fn stop(&mut self, signal: Signal, grace: Duration) {
        match self {
            Replica::Process(p) => {
                let _ = p.stop(signal, grace).await;
            }
            Replica::Container {
                engine, container, ..
            } => {
                let _ = engine
                    .stop(container, &signal.as_raw().to_string(), grace)
                    .await;
            }
        }
    }

    /// What watches its health (kept apart, so that goes on while the
    /// replica is waited for): the engine, for a container's Compose
    /// healthcheck; else cove.
    pub fn prober(&self, spec: Option<&HealthSpec>) -> Prober {
        match self {
            Replica::Container {
                engine, container, ..
            } if spec.is_some_and(|s| matches!(s.probe, Probe::Exec(_) | Probe::Shell(_))) => {
                Prober::Engine(engine.clone(), container.clone())
            }
            _ => Prober::Host,
        }
    }

    /// After it ended: a container is removed.
    pub async fn finish(self) {
        if let Replica::Container {
            engine, container, ..
        } = self
        {
            let _ = engine.remove(&container).await;
        }
    }
}

/// Watches a replica's health.
#[derive(Clone)]
pub enum Prober {
    /// cove probes it (a process's checks; a container's http/tcp ones, on
    /// its address).
    Host,
    /// The engine runs the container's Compose healthcheck; cove follows
    /// its verdicts.
    Engine(Engine, Container),
}

impl Prober {
    /// Follows the replica's health from `started`: `on_change` hears each
    /// new status; resolves with the failed check in words when it turns
    /// unhealthy (never, without a check).
    pub async fn watch(
        &self,
        spec: Option<&HealthSpec>,
        workdir: &std::path::Path,
        env: &[(String, String)],
        started: tokio::time::Instant,
        mut on_change: impl FnMut(Health),
    ) -> String {
        let Some(spec) = spec else {
            return std::future::pending().await;
        };
        if let Prober::Engine(engine, container) = self {
            return watch_engine(engine, container, spec, on_change).await;
        }
        let mut tracker = Tracker::new(spec, started);
        let mut last = Health::Starting;
        loop {
            tokio::time::sleep(tracker.next_delay()).await;
            let result = crate::health::probe(spec, workdir, env).await;
            let now = tracker.record(tokio::time::Instant::now(), result.is_ok());
            if now == last {
                continue;
            }
            if now == Health::Unhealthy {
                return format!(
                    "health check `{}` failed {} time(s), last: {}",
                    crate::health::describe(&spec.probe),
                    spec.retries,
                    result.err().unwrap_or_default()
                );
            }
            on_change(now);
            last = now;
        }
    }
}

/// The engine's verdicts on a container: its health events, and a look
/// at its state now and then (an event may come before the subscription).
async fn watch_engine(
    engine: &Engine,
    container: &Container,
    spec: &HealthSpec,
    mut on_change: impl FnMut(Health),
) -> String {
    let mut events = std::pin::pin!(engine.health_events(container, std::time::SystemTime::now()));
    let mut open = true;
    let mut last = Health::Starting;
    let every = spec
        .interval
        .clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut look = tokio::time::interval(every);
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
        }
        let Ok(Some(h)) = engine.health(container).await else {
            continue;
        };
        let now = match h.status.as_str() {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::Starting,
        };
        if now == last {
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

/// The id of `image` here, pulled first if need be. A built image is also
/// tagged with the revision (`cove-APP-SERVICE:rN`), which keeps it for
/// rollbacks when a later build takes `latest`.
pub async fn image_id(svc: &ServicePlan, image: &str) -> Result<String, String> {
    let engine = Engine::connect().await.map_err(words)?;
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

/// Whether the engine has `image` (a tag or an id).
pub async fn has_image(image: &str) -> bool {
    match Engine::connect().await {
        Ok(engine) => matches!(engine.image_id(image).await, Ok(Some(_))),
        Err(_) => false,
    }
}

/// Builds the service's image (`build:`), output line by line to
/// `on_line`; nothing to do for a process or an `image:` without a build.
pub async fn build(svc: &ServicePlan, on_line: impl FnMut(&str)) -> Result<(), String> {
    let Some(plan) = &svc.container else {
        return Ok(());
    };
    let Some(b) = &plan.build else {
        return Ok(());
    };
    let engine = Engine::connect().await.map_err(words)?;
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
    };
    engine.build(&spec, on_line).await.map(drop).map_err(words)
}

/// Removes the containers of the project whose state is in `state_dir`
/// (left by a killed daemon, or at `down`) but those of the services in
/// `keep`, then `network`. Quiet when there is no engine: then there is
/// nothing of ours.
pub async fn remove_containers(
    state_dir: &std::path::Path,
    network: Option<&str>,
    keep: &[String],
) {
    let Ok(engine) = Engine::connect().await else {
        return;
    };
    let project = state_dir.display().to_string();
    if let Ok(found) = engine
        .find(&[(crate::docker::LABEL_PROJECT, project.as_str())])
        .await
    {
        for f in found {
            if f.labels
                .get(crate::docker::LABEL_SERVICE)
                .is_some_and(|s| keep.contains(s))
            {
                continue;
            }
            let _ = engine
                .remove(&Container {
                    id: f.id,
                    name: f.name,
                })
                .await;
        }
    }
    if let Some(n) = network {
        let _ = engine.remove_network(n).await;
    }
}
