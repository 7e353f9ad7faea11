//! The Docker Engine side of the `docker` driver:
//! images (present, pulled, built from a context), containers (created with
//! cove's labels, started, followed line by line, waited for, stopped with
//! the service's signal and grace period, removed) and finding them again
//! by label. Talks to the Engine API over `DOCKER_HOST` (a Unix socket by
//! default; Podman's compatible API too), negotiating the API version.
//! The engine runs Compose healthchecks; cove follows its verdicts
//! ([`Engine::health_events`]).

mod act;
mod container;
mod image;
mod inspect;
mod network;

pub use act::{ExecSpec, pack_here, unpack_here};

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;

pub use inspect::{ImageInfo, Top};

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
    #[error("pushing `{image}` failed: {reason}")]
    Push { image: String, reason: String },
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
            DockerError::Push { .. } => "is the registry up and reachable from the engine? An HTTP (not HTTPS) registry other than on 127.0.0.0/8 must be in the engine's `insecure-registries`; a registry that needs a login is not supported yet (cove sends no credentials)".into(),
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
    /// Ports published on the host (`cove run -p`, `--service-ports`).
    pub ports: Vec<Published>,
}

/// A container's port published on the host: `HOST_IP:HOST_PORT` →
/// `CONTAINER_PORT/PROTOCOL` (an empty host IP: every address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
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
    /// Build without the engine's cache (`build --no-cache`).
    pub no_cache: bool,
    /// Pull the base images again (`build --pull`).
    pub pull: bool,
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

/// What is under a container's name (see [`Engine::existing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// No container.
    Absent,
    /// A running container made from the same spec: its id.
    Adoptable(String),
    /// Another container, or the engine could not say.
    Other,
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
}
