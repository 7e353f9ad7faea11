//! The Docker Engine side of the `docker` driver:
//! images (present, pulled, built from a context), containers (created with
//! cove's labels, started, followed line by line, waited for, stopped with
//! the service's signal and grace period, removed) and finding them again
//! by label. Talks to the Engine API over `DOCKER_HOST` (a Unix socket by
//! default; Podman's compatible API too), negotiating the API version.
//! The engine runs Compose healthchecks; cove follows its verdicts
//! ([`Engine::health_events`]).

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters as q;
use futures_util::StreamExt;

use crate::output::Stream;

/// The labels cove puts on what it makes, to find it again.
pub const LABEL_PROJECT: &str = "dev.cove.project";
pub const LABEL_SERVICE: &str = "dev.cove.service";
pub const LABEL_REPLICA: &str = "dev.cove.replica";
pub const LABEL_REVISION: &str = "dev.cove.revision";
/// The replica's slot (its address), and a digest of everything it was
/// made with: a container is taken over only when both still hold.
pub const LABEL_SLOT: &str = "dev.cove.slot";
pub const LABEL_SPEC: &str = "dev.cove.spec";

/// What went wrong talking to the engine, in words with a hint.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker engine at {at}: {reason}")]
    Unreachable { at: String, reason: String },
    #[error("image `{image}` is not on this machine and cannot be pulled: {reason}")]
    MissingImage { image: String, reason: String },
    #[error("building `{tag}` failed: {reason}")]
    Build { tag: String, reason: String },
    #[error("{what}: {reason}")]
    Engine { what: String, reason: String },
    #[error(
        "cannot create network `{name}`: another network of the engine has addresses in {subnet}"
    )]
    Overlap { name: String, subnet: String },
}

impl DockerError {
    pub fn hint(&self) -> String {
        match self {
            DockerError::Unreachable { .. } => {
                "start Docker (or Podman's API service), or point DOCKER_HOST at its socket".into()
            }
            DockerError::MissingImage { image, .. } => format!(
                "build it (a `build:` section, then `cove build`), or load it: `docker load -i FILE` (an image saved with `docker save {image}`)"
            ),
            DockerError::Build { .. } => "the build's last lines say why".into(),
            DockerError::Engine { .. } => "`docker info` shows the engine's state".into(),
            DockerError::Overlap { .. } => "`docker network ls` and `docker network inspect NAME` show which; remove it if it is a leftover (cove's are named cove-APP-N)".into(),
        }
    }
}

fn engine(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |e| DockerError::Engine {
        what,
        reason: e.to_string(),
    }
}

/// A connection to the engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    at: String,
}

/// A container to make: what the service's plan says, for one replica.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `None`: the image's.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub labels: HashMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `host`, `none`, a network's name; `None`: the engine's default.
    pub network_mode: Option<String>,
    /// On network `network_mode`: this address and these names.
    pub ip: Option<std::net::Ipv4Addr>,
    pub aliases: Vec<String>,
    /// `HOST:CONTAINER[:ro]` bind mounts, `VOLUME:CONTAINER[:ro]` volumes.
    pub binds: Vec<String>,
    /// Targets of tmpfs mounts.
    pub tmpfs: Vec<String>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
    /// name, soft, hard.
    pub ulimits: Vec<(String, i64, i64)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub init: bool,
    pub privileged: bool,
    pub read_only: bool,
    /// `NAME:ADDRESS` lines for the container's `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    pub hostname: Option<String>,
    pub sysctls: Vec<(String, String)>,
    pub shm_size: Option<i64>,
    pub security_opt: Vec<String>,
    /// `HOST:CONTAINER:PERMISSIONS`.
    pub devices: Vec<String>,
    pub group_add: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    /// The Compose healthcheck, run by the engine.
    pub healthcheck: Option<Healthcheck>,
    pub stop_signal: Option<String>,
}

/// An image to build (Compose `build:`).
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    /// A directory, sent as `.dockerignore` says (see [`crate::context`]).
    pub context: std::path::PathBuf,
    /// Directories of the context never sent (cove's state directory).
    pub skip: Vec<std::path::PathBuf>,
    /// Relative to the context; default `Dockerfile`.
    pub dockerfile: Option<String>,
    pub tag: String,
    pub args: HashMap<String, String>,
    pub target: Option<String>,
    pub labels: HashMap<String, String>,
}

/// A healthcheck for the engine to run (`test` as Compose writes it:
/// `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]` to turn the image's
/// off).
#[derive(Debug, Clone, Default)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    /// Sent to engines that know it (API 1.44 and later).
    pub start_interval: Duration,
}

/// What the engine says of a container's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineHealth {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failed checks in a row.
    pub streak: i64,
    /// The last check: its exit code and last line of output.
    pub last: String,
}

/// A container cove made and started.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
}

/// A container found by its labels.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    /// `running`, `exited`, ...
    pub state: String,
}

impl Engine {
    /// Connects to `DOCKER_HOST` (or the default socket) and agrees on an
    /// API version both sides speak.
    pub async fn connect() -> Result<Engine, DockerError> {
        let at =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let unreachable = |reason: String| DockerError::Unreachable {
            at: at.clone(),
            reason,
        };
        let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer in 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Engine { docker, at })
    }

    /// Where the engine is (`DOCKER_HOST`).
    pub fn at(&self) -> &str {
        &self.at
    }

    /// The engine's version (`20.10.24`, ...).
    pub async fn version(&self) -> Result<String, DockerError> {
        let v = self.docker.version().await.map_err(engine("version"))?;
        Ok(v.version.unwrap_or_default())
    }

    /// The id of `image` when it is on this machine.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine(format!("inspecting image `{image}`"))(e)),
        }
    }

    /// The id of `image`, pulled first when it is missing.
    pub async fn ensure_image(&self, image: &str) -> Result<String, DockerError> {
        if let Some(id) = self.image_id(image).await? {
            return Ok(id);
        }
        let options = q::CreateImageOptionsBuilder::new()
            .from_image(image)
            .build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                return Err(DockerError::MissingImage {
                    image: image.into(),
                    reason: e.to_string(),
                });
            }
        }
        self.image_id(image)
            .await?
            .ok_or_else(|| DockerError::MissingImage {
                image: image.into(),
                reason: "the pull ended without it".into(),
            })
    }

    /// Builds `context` (a directory, sent as a tar stream without what
    /// `.dockerignore` excludes nor cove's state directory) into
    /// `tag`; each line of the build's output goes to `on_line`. The
    /// image's id.
    pub async fn build(
        &self,
        spec: &BuildSpec,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, DockerError> {
        let (context, tag) = (spec.context.as_path(), spec.tag.as_str());
        let failed = |reason: String| DockerError::Build {
            tag: tag.into(),
            reason,
        };
        let dir = context.to_path_buf();
        let (dockerfile, skip) = (spec.dockerfile.clone(), spec.skip.clone());
        let tar = tokio::task::spawn_blocking(move || {
            crate::context::archive(&dir, dockerfile.as_deref(), &skip)
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| {
            failed(format!(
                "cannot read the context {}: {e}",
                context.display()
            ))
        })?;
        let mut options = q::BuildImageOptionsBuilder::new()
            .t(tag)
            .rm(true)
            .buildargs(&spec.args)
            .labels(&spec.labels);
        if let Some(f) = &spec.dockerfile {
            options = options.dockerfile(f);
        }
        if let Some(t) = &spec.target {
            options = options.target(t);
        }
        let mut stream = self.docker.build_image(
            options.build(),
            None,
            Some(bollard::body_full(bytes::Bytes::from(tar))),
        );
        let mut last = String::new();
        while let Some(step) = stream.next().await {
            let info = step.map_err(|e| failed(e.to_string()))?;
            if let Some(detail) = info.error_detail {
                return Err(failed(detail.message.unwrap_or_default()));
            }
            for line in info.stream.iter().flat_map(|s| s.lines()) {
                if !line.trim().is_empty() {
                    on_line(line);
                    last = line.to_string();
                }
            }
        }
        self.image_id(tag)
            .await?
            .ok_or_else(|| failed(format!("no image at the end; last line: {last}")))
    }

    /// What the engine is asked to create for `spec`.
    fn create_body(&self, spec: &ContainerSpec) -> ContainerCreateBody {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(env),
            labels: Some(spec.labels.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            stop_signal: spec.stop_signal.clone(),
            hostname: spec.hostname.clone(),
            healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some(h.test.clone()),
                interval: Some(nanos(h.interval)),
                timeout: Some(nanos(h.timeout)),
                retries: Some(i64::from(h.retries)),
                start_period: Some(nanos(h.start_period)),
                start_interval: self.knows_start_interval().then(|| nanos(h.start_interval)),
            }),
            host_config: Some(host_config(spec)),
            networking_config: networking_config(spec),
            ..Default::default()
        }
    }

    /// Creates and starts a container; its output (both streams, line by
    /// line) goes to `on_line` until it ends.
    pub async fn run(
        &self,
        spec: &ContainerSpec,
        on_line: impl FnMut(Stream, String) + Send + 'static,
    ) -> Result<Container, DockerError> {
        let body = self.create_body(spec);
        // A leftover of the same name (a killed daemon's) goes first.
        let _ = self
            .remove(&Container {
                id: spec.name.clone(),
                name: spec.name.clone(),
            })
            .await;
        let options = q::CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(engine(format!("creating container `{}`", spec.name)))?;
        let container = Container {
            id: created.id,
            name: spec.name.clone(),
        };
        // Attached before the start, so no line is missed.
        let logs = self.docker.logs(
            &container.id,
            Some(
                q::LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        if let Err(e) = self.docker.start_container(&container.id, None).await {
            let _ = self.remove(&container).await;
            return Err(engine(format!("starting container `{}`", spec.name))(e));
        }
        tokio::spawn(follow(logs, on_line));
        Ok(container)
    }

    /// Takes over the running container `name` when it carries every one
    /// of `labels` (a container a killed daemon left, made from the same
    /// spec): its output from now on goes to `on_line`.
    pub async fn adopt(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        on_line: impl FnMut(Stream, String) + Send + 'static,
    ) -> Option<Container> {
        let i = self.docker.inspect_container(name, None).await.ok()?;
        let running = i.state.as_ref().and_then(|s| s.running) == Some(true);
        let theirs = i.config.and_then(|c| c.labels).unwrap_or_default();
        if !running || labels.iter().any(|(k, v)| theirs.get(k) != Some(v)) {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
        let logs = self.docker.logs(
            name,
            Some(
                q::LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .since(now)
                    .build(),
            ),
        );
        tokio::spawn(follow(logs, on_line));
        Some(Container {
            id: i.id?,
            name: name.to_string(),
        })
    }

    /// Waits for the container to end; its exit code.
    pub async fn wait(&self, c: &Container) -> Result<i64, DockerError> {
        let mut waiting = self.docker.wait_container(&c.id, None);
        match waiting.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // A non-zero exit arrives as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(engine(format!("waiting for `{}`", c.name))(e)),
            None => Err(DockerError::Engine {
                what: format!("waiting for `{}`", c.name),
                reason: "the engine closed the stream".into(),
            }),
        }
    }

    /// Sends `signal`, then kills it after `grace` (as `docker stop`).
    pub async fn stop(
        &self,
        c: &Container,
        signal: &str,
        grace: Duration,
    ) -> Result<(), DockerError> {
        let options = q::StopContainerOptionsBuilder::new()
            .signal(signal)
            .t(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX))
            .build();
        match self.docker.stop_container(&c.id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("stopping `{}`", c.name))(e)),
        }
    }

    /// Whether the engine takes a healthcheck's `start_interval`.
    fn knows_start_interval(&self) -> bool {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version) >= (1, 44)
    }

    /// The engine's health of the container; `None` without a healthcheck.
    pub async fn health(&self, c: &Container) -> Result<Option<EngineHealth>, DockerError> {
        let i = self
            .docker
            .inspect_container(&c.id, None)
            .await
            .map_err(engine(format!("inspecting `{}`", c.name)))?;
        let Some(h) = i.state.and_then(|s| s.health) else {
            return Ok(None);
        };
        let status = h.status.map(|s| s.to_string()).unwrap_or_default();
        if status.is_empty() || status == "none" {
            return Ok(None);
        }
        let last = h
            .log
            .and_then(|l| l.into_iter().last())
            .map(|r| {
                let output = r.output.unwrap_or_default();
                let line = output.lines().rev().find(|l| !l.trim().is_empty());
                format!(
                    "exited with code {}{}",
                    r.exit_code.unwrap_or(-1),
                    line.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        Ok(Some(EngineHealth {
            status,
            streak: h.failing_streak.unwrap_or_default(),
            last,
        }))
    }

    /// The container's health changes as the engine reports them
    /// (`healthy`, `unhealthy`, ...), from `since` on (the engine sends the
    /// ones it still holds first); the stream ends with the connection.
    pub fn health_events(
        &self,
        c: &Container,
        since: std::time::SystemTime,
    ) -> impl futures_util::Stream<Item = String> + use<> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("container".to_string(), vec![c.id.clone()]),
        ]);
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let since = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
        let options = q::EventsOptionsBuilder::new()
            .filters(&filters)
            .since(&since)
            .build();
        self.docker
            .events(Some(options))
            .take_while(|e| std::future::ready(e.is_ok()))
            .filter_map(|e| {
                let action = e.ok().and_then(|e| e.action).unwrap_or_default();
                std::future::ready(
                    action
                        .strip_prefix("health_status:")
                        .map(|s| s.trim().to_string()),
                )
            })
    }

    /// Removes the container (stopping it if it still runs).
    pub async fn remove(&self, c: &Container) -> Result<(), DockerError> {
        let options = q::RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(&c.id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing `{}`", c.name))(e)),
        }
    }

    /// Makes the bridge network `name` with `subnet` and `gateway` (the
    /// host's side), unless it is there.
    pub async fn ensure_network(
        &self,
        name: &str,
        subnet: &str,
        gateway: std::net::Ipv4Addr,
        bridge: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), DockerError> {
        // One at a time in this process: replicas starting together would
        // otherwise both create it (the engine refuses the second, its
        // address pool taken, before the first is found by name).
        static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = CREATING.lock().await;
        if self.docker.inspect_network(name, None).await.is_ok() {
            return Ok(());
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.into(),
            driver: Some("bridge".into()),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some(subnet.into()),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.clone()),
            // The host's interface gets a name cove knows.
            options: Some(HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                bridge.to_string(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Made meanwhile by another process.
            Err(_) if self.docker.inspect_network(name, None).await.is_ok() => Ok(()),
            Err(e) if e.to_string().contains("overlaps") => Err(DockerError::Overlap {
                name: name.into(),
                subnet: subnet.into(),
            }),
            Err(e) => Err(engine(format!("creating network `{name}` ({subnet})"))(e)),
        }
    }

    /// Removes network `name`, if it is there.
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        match self.docker.remove_network(name).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing network `{name}`"))(e)),
        }
    }

    /// The host pid of the container's main process, while it runs.
    pub async fn pid(&self, c: &Container) -> Option<u32> {
        let i = self.docker.inspect_container(&c.id, None).await.ok()?;
        i.state?
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
    }

    /// Tags `image` (a tag or an id) as `repo:tag`.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        let options = q::TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(engine(format!("tagging `{image}` as `{repo}:{tag}`")))
    }

    /// Removes a volume, if it is there.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        match self
            .docker
            .remove_volume(name, None::<q::RemoveVolumeOptions>)
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing volume `{name}`"))(e)),
        }
    }

    /// Removes an image (by tag or id), if it is there.
    pub async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let options = q::RemoveImageOptionsBuilder::new().force(true).build();
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing image `{image}`"))(e)),
        }
    }

    /// Every container (running or not) carrying all of `labels`.
    pub async fn find(&self, labels: &[(&str, &str)]) -> Result<Vec<Found>, DockerError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = q::ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine("listing containers"))?;
        Ok(list
            .into_iter()
            .map(|c| Found {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }
}

/// The host side of a container: network, mounts, limits, privileges.
fn host_config(spec: &ContainerSpec) -> HostConfig {
    HostConfig {
        network_mode: spec.network_mode.clone(),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
        binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
        tmpfs: (!spec.tmpfs.is_empty()).then(|| {
            spec.tmpfs
                .iter()
                .map(|t| (t.clone(), String::new()))
                .collect()
        }),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
        init: spec.init.then_some(true),
        sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.iter().cloned().collect()),
        shm_size: spec.shm_size,
        security_opt: (!spec.security_opt.is_empty()).then(|| spec.security_opt.clone()),
        devices: (!spec.devices.is_empty()).then(|| {
            spec.devices
                .iter()
                .map(|d| {
                    let mut p = d.splitn(3, ':');
                    bollard::models::DeviceMapping {
                        path_on_host: p.next().map(str::to_string),
                        path_in_container: p.next().map(str::to_string),
                        cgroup_permissions: p.next().map(str::to_string),
                    }
                })
                .collect()
        }),
        group_add: (!spec.group_add.is_empty()).then(|| spec.group_add.clone()),
        dns: (!spec.dns.is_empty()).then(|| spec.dns.clone()),
        dns_search: (!spec.dns_search.is_empty()).then(|| spec.dns_search.clone()),
        privileged: spec.privileged.then_some(true),
        readonly_rootfs: spec.read_only.then_some(true),
        memory: spec.memory,
        nano_cpus: spec.nano_cpus,
        pids_limit: spec.pids,
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|(name, soft, hard)| bollard::models::ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        ..Default::default()
    }
}

/// Its address and aliases on the project's network, when it has one.
fn networking_config(spec: &ContainerSpec) -> Option<bollard::models::NetworkingConfig> {
    match (&spec.network_mode, spec.ip) {
        (Some(net), Some(ip)) => Some(bollard::models::NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net.clone(),
                bollard::models::EndpointSettings {
                    ipam_config: Some(bollard::models::EndpointIpamConfig {
                        ipv4_address: Some(ip.to_string()),
                        ..Default::default()
                    }),
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                },
            )])),
        }),
        _ => None,
    }
}

/// Splits the engine's log chunks into lines, per stream.
async fn follow(
    mut logs: impl futures_util::Stream<
        Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
    > + Unpin,
    mut on_line: impl FnMut(Stream, String),
) {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let index = |s: Stream| usize::from(s == Stream::Stderr);
    while let Some(Ok(chunk)) = logs.next().await {
        let (stream, bytes) = match chunk {
            bollard::container::LogOutput::StdErr { message } => (Stream::Stderr, message),
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => (Stream::Stdout, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        let buf = &mut pending[index(stream)];
        buf.extend_from_slice(&bytes);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            on_line(stream, text.trim_end_matches('\r').to_string());
        }
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        let rest = std::mem::take(&mut pending[index(stream)]);
        if !rest.is_empty() {
            on_line(stream, String::from_utf8_lossy(&rest).into_owned());
        }
    }
}
