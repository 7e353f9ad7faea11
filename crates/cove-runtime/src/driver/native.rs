//! The native driver: a replica is a process group ([`crate::process`]),
//! probed by cove ([`crate::health`]); its artifact is the digest of the
//! files its command names, with a kept copy of its program
//! ([`crate::artifact`]).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::Signal;

use super::{BoxFuture, Driver, OnBuildLine, OnLine, Prober, Replica, Start, first_refusing};
use crate::artifact::Artifact;
use crate::health::{Health, HealthSpec, Tracker};
use crate::plan::ServicePlan;
use crate::process::{self, ProcessSpec};

/// Runs replicas as process groups on this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Native;

fn spawn(spec: &ProcessSpec, on_line: OnLine) -> Result<Box<dyn Replica>, String> {
    process::spawn(spec, move |stream, line| on_line(stream, line))
        .map(|p| Box::new(p) as Box<dyn Replica>)
        .map_err(|e| e.to_string())
}

impl Driver for Native {
    fn start<'a>(
        &'a self,
        start: Start<'a>,
        on_line: OnLine,
    ) -> BoxFuture<'a, Result<Box<dyn Replica>, String>> {
        let spec = ProcessSpec {
            argv: start.svc.argv_for(start.env),
            workdir: start.svc.workdir.clone(),
            env: start.env.to_vec(),
            cgroup: start.cgroup,
        };
        Box::pin(async move { spawn(&spec, on_line) })
    }

    fn take_over<'a>(&'a self, _: &'a ServicePlan) -> BoxFuture<'a, HashMap<u32, u32>> {
        Box::pin(async { HashMap::new() })
    }

    fn build_image<'a>(
        &'a self,
        _: &'a ServicePlan,
        _: OnBuildLine,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn start_build(
        &self,
        svc: &ServicePlan,
        argv: &[String],
        env: Vec<(String, String)>,
        on_line: OnLine,
    ) -> Result<Box<dyn Replica>, String> {
        let spec = ProcessSpec {
            argv: argv.to_vec(),
            workdir: svc.workdir.clone(),
            env,
            cgroup: None,
        };
        spawn(&spec, on_line)
    }

    fn artifact<'a>(
        &'a self,
        svc: &'a ServicePlan,
        in_use: Vec<PathBuf>,
    ) -> BoxFuture<'a, Result<Artifact, String>> {
        let (name, argv, workdir) = (svc.name.clone(), svc.argv.clone(), svc.workdir.clone());
        let keep = svc.keep_artifacts.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                crate::artifact::capture(&name, &argv, &workdir, keep.as_ref(), &in_use)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            .map_err(|e| format!("cannot keep its artifact: {e}"))
        })
    }

    fn signal<'a>(
        &'a self,
        _: &'a ServicePlan,
        _: u32,
        pid: u32,
        signal: Signal,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { signal_group(pid, signal) })
    }

    /// SIGSTOP/SIGCONT to the group (what left it for a session of its
    /// own is not paused).
    fn pause<'a>(
        &'a self,
        _: &'a ServicePlan,
        _: u32,
        pid: u32,
        pause: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        let signal = if pause { Signal::STOP } else { Signal::CONT };
        Box::pin(async move { signal_group(pid, signal) })
    }
}

/// `signal` to the process group `pgid` (a replica's leader leads it).
fn signal_group(pgid: u32, signal: Signal) -> Result<(), String> {
    let pid = rustix::process::Pid::from_raw(pgid as i32)
        .ok_or_else(|| format!("no process group {pgid}"))?;
    rustix::process::kill_process_group(pid, signal)
        .map_err(|e| format!("cannot signal process group {pgid}: {e}"))
}

impl Replica for process::Running {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn wait(&mut self) -> BoxFuture<'_, Option<i32>> {
        Box::pin(async move {
            process::Running::wait(self)
                .await
                .ok()
                .and_then(|s| s.code())
        })
    }

    fn stop(&mut self, signal: Signal, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = process::Running::stop(self, signal, grace).await;
        })
    }

    fn prober(&self, _: Option<&HealthSpec>) -> Box<dyn Prober> {
        Box::new(HostProber)
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Its group is gone already (`wait` and `stop` finish it).
        Box::pin(async {})
    }
}

/// cove probes the replica: a process's checks, a container's http and
/// tcp ones (on its address), and whether it accepts connections.
#[derive(Debug, Clone, Copy)]
pub struct HostProber;

impl Prober for HostProber {
    fn watch<'a>(
        &'a self,
        spec: &'a HealthSpec,
        workdir: &'a Path,
        env: &'a [(String, String)],
        started: tokio::time::Instant,
        on_change: &'a mut (dyn FnMut(Health) + Send),
    ) -> BoxFuture<'a, String> {
        Box::pin(async move {
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
        })
    }

    fn refusing<'a>(&'a self, addr: Ipv4Addr, ports: &'a [u16]) -> BoxFuture<'a, Option<u16>> {
        Box::pin(first_refusing(addr, ports))
    }
}
