//! The driver boundary: what the supervisor asks of whatever runs its
//! replicas. A replica runs as a native process group ([`Native`]) or as
//! a container ([`Docker`], one shared engine client), and the supervisor
//! sees one [`Replica`] either way: started (or taken over) with its
//! environment and a line callback, waited for (its exit code), stopped
//! with the service's signal and grace period, watched by a [`Prober`]
//! (its health check, or whether it accepts connections), and finished
//! (a container is removed; a process group is already gone). A
//! [`Driver`] also builds a service (`x-cove.build`'s command, or an
//! image) and names its artifact. [`Host`] sends each service to the
//! driver its plan names; the fake (`fake.rs`, tests only) runs
//! scripted replicas in memory, so rollouts are tested in paused time.
//!
//! Containers (the `docker` driver) join the
//! project's network at their replica's address (the same offsets as the
//! native addresses, in 10.192.0.0/10), under the service's name, so
//! containers reach each other by name and native services and the
//! gateway reach them at the address references are rewritten to.
//!
//! The free functions at the end are for the daemon and the CLI (a
//! build, images kept for rollbacks, `down`'s removal of containers).

mod container;
#[cfg(test)]
pub(crate) mod fake;
mod native;

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;

use crate::artifact::Artifact;
use crate::docker::{Container, Engine};
use crate::health::{Health, HealthSpec};
use crate::output::Stream;
use crate::plan::ServicePlan;

pub use container::{Docker, container_name};
pub use native::{HostProber, Native};

/// A boxed future, as the driver traits return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hears each line a replica (or a build) prints.
pub type OnLine = Arc<dyn Fn(Stream, String) + Send + Sync>;

/// Hears each line of an image build.
pub type OnBuildLine = Box<dyn FnMut(&str) + Send>;

/// One replica to start.
pub struct Start<'a> {
    pub svc: &'a ServicePlan,
    /// Its replica number and address slot.
    pub replica: u32,
    pub slot: u32,
    /// Its whole environment.
    pub env: &'a [(String, String)],
    /// A native replica's cgroup, when cove makes them.
    pub cgroup: Option<PathBuf>,
}

/// What runs replicas; see the module documentation.
pub trait Driver: Send + Sync + 'static {
    /// Starts a replica, or takes over the one a killed daemon left
    /// running made the same way; the failure in words.
    fn start<'a>(
        &'a self,
        start: Start<'a>,
        on_line: OnLine,
    ) -> BoxFuture<'a, Result<Box<dyn Replica>, String>>;

    /// The replicas of `svc`'s revision a killed daemon left running
    /// (replica → slot), to be taken over by [`Driver::start`]; the
    /// service's others are removed. Nothing for processes (the daemon
    /// sweeps those at its start).
    fn take_over<'a>(&'a self, svc: &'a ServicePlan) -> BoxFuture<'a, HashMap<u32, u32>>;

    /// Builds the service's image (`build:`); nothing to do but for a
    /// container with a build.
    fn build_image<'a>(
        &'a self,
        svc: &'a ServicePlan,
        on_line: OnBuildLine,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Starts the service's `x-cove.build` command (`argv`) with `env`:
    /// waited for, and stopped when the build is cut short, as a replica is.
    fn start_build(
        &self,
        svc: &ServicePlan,
        argv: &[String],
        env: Vec<(String, String)>,
        on_line: OnLine,
    ) -> Result<Box<dyn Replica>, String>;

    /// What `svc` runs, once built: a container's image id, a process's
    /// digest and kept program (not `in_use`'s programs, which replicas
    /// run).
    fn artifact<'a>(
        &'a self,
        svc: &'a ServicePlan,
        in_use: Vec<PathBuf>,
    ) -> BoxFuture<'a, Result<Artifact, String>>;

    /// Sends `signal` to the running replica of `svc` in `slot` (main
    /// process `pid`): its process group, or the engine's kill of its
    /// container (`cove kill`). The failure in words.
    fn signal<'a>(
        &'a self,
        svc: &'a ServicePlan,
        slot: u32,
        pid: u32,
        signal: Signal,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = (svc, slot, pid, signal);
        Box::pin(async { Err("this driver cannot signal its replicas".to_string()) })
    }

    /// Pauses (`true`) or resumes the running replica of `svc` in `slot`:
    /// SIGSTOP/SIGCONT to its process group, or the engine's
    /// pause/unpause of its container (`cove pause`, `cove unpause`).
    fn pause<'a>(
        &'a self,
        svc: &'a ServicePlan,
        slot: u32,
        pid: u32,
        pause: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = (svc, slot, pid, pause);
        Box::pin(async { Err("this driver cannot pause its replicas".to_string()) })
    }
}

/// A running replica.
pub trait Replica: Send {
    /// The host pid of its (main) process.
    fn pid(&self) -> Option<u32>;

    /// Waits for it to end; its exit code (`None`: killed by a signal).
    fn wait(&mut self) -> BoxFuture<'_, Option<i32>>;

    /// `signal`, `grace` to end, then SIGKILL.
    fn stop(&mut self, signal: Signal, grace: Duration) -> BoxFuture<'_, ()>;

    /// What watches its health (kept apart, so that goes on while the
    /// replica is waited for).
    fn prober(&self, spec: Option<&HealthSpec>) -> Box<dyn Prober>;

    /// After it ended: a container is removed.
    fn finish(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Watches a replica: its health check, or whether it accepts connections.
pub trait Prober: Send + Sync {
    /// Follows the replica's health from `started`: `on_change` hears each
    /// new status; resolves with the failed check in words when it turns
    /// unhealthy.
    fn watch<'a>(
        &'a self,
        spec: &'a HealthSpec,
        workdir: &'a Path,
        env: &'a [(String, String)],
        started: tokio::time::Instant,
        on_change: &'a mut (dyn FnMut(Health) + Send),
    ) -> BoxFuture<'a, String>;

    /// The first of `ports` on `addr` that does not accept a TCP
    /// connection, if any.
    fn refusing<'a>(&'a self, addr: Ipv4Addr, ports: &'a [u16]) -> BoxFuture<'a, Option<u16>>;
}

/// The first of `ports` on `addr` that does not accept a TCP connection
/// (within a second).
pub async fn first_refusing(addr: Ipv4Addr, ports: &[u16]) -> Option<u16> {
    for &port in ports {
        let connect = tokio::net::TcpStream::connect(SocketAddr::from((addr, port)));
        match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(_)) => {}
            _ => return Some(port),
        }
    }
    None
}

/// This machine: containers go to [`Docker`], everything else to [`Native`].
#[derive(Default)]
pub struct Host {
    native: Native,
    docker: Docker,
}

impl Host {
    fn of(&self, svc: &ServicePlan) -> &dyn Driver {
        if svc.container.is_some() {
            &self.docker
        } else {
            &self.native
        }
    }
}

impl Driver for Host {
    fn start<'a>(
        &'a self,
        start: Start<'a>,
        on_line: OnLine,
    ) -> BoxFuture<'a, Result<Box<dyn Replica>, String>> {
        self.of(start.svc).start(start, on_line)
    }

    fn take_over<'a>(&'a self, svc: &'a ServicePlan) -> BoxFuture<'a, HashMap<u32, u32>> {
        self.of(svc).take_over(svc)
    }

    fn build_image<'a>(
        &'a self,
        svc: &'a ServicePlan,
        on_line: OnBuildLine,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.of(svc).build_image(svc, on_line)
    }

    fn start_build(
        &self,
        svc: &ServicePlan,
        argv: &[String],
        env: Vec<(String, String)>,
        on_line: OnLine,
    ) -> Result<Box<dyn Replica>, String> {
        // `x-cove.build` runs on the host, for containers too.
        self.native.start_build(svc, argv, env, on_line)
    }

    fn artifact<'a>(
        &'a self,
        svc: &'a ServicePlan,
        in_use: Vec<PathBuf>,
    ) -> BoxFuture<'a, Result<Artifact, String>> {
        self.of(svc).artifact(svc, in_use)
    }

    fn signal<'a>(
        &'a self,
        svc: &'a ServicePlan,
        slot: u32,
        pid: u32,
        signal: Signal,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.of(svc).signal(svc, slot, pid, signal)
    }

    fn pause<'a>(
        &'a self,
        svc: &'a ServicePlan,
        slot: u32,
        pid: u32,
        pause: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.of(svc).pause(svc, slot, pid, pause)
    }
}

/// An engine error in words, with its hint (a replica's failure reason).
fn words(e: crate::docker::DockerError) -> String {
    format!("{e} (hint: {})", e.hint())
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
pub async fn build(
    svc: &ServicePlan,
    options: BuildOptions,
    on_line: impl FnMut(&str),
) -> Result<(), String> {
    if svc.container.as_ref().is_none_or(|c| c.build.is_none()) {
        return Ok(());
    }
    let engine = Engine::connect().await.map_err(words)?;
    container::build_with(&engine, svc, options, on_line).await
}

/// How `cove build` builds an image (`up` builds with the defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Without the engine's cache.
    pub no_cache: bool,
    /// Pulling the base images again.
    pub pull: bool,
}

pub use container::{OneOff, one_off};

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
