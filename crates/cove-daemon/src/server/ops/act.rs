//! `POST /v1/kill`, `/v1/pause`, `/v1/unpause` and `GET /v1/exec`: acting
//! on running replicas (`cove kill`, `pause`, `unpause`, `exec`).
//!
//! `kill` follows Docker: SIGKILL, or the service's own stop signal, stops
//! the service (its restart policy does not bring it back; it is no
//! longer wanted, as after `cove stop`, until `cove start` or `up`);
//! any other signal is only delivered, and a replica that dies of it is
//! restarted, or not, per its restart policy.

use hyper::StatusCode;
use rustix::process::Signal;

use crate::api::{Acted, ActedReplica, ExecTarget, KillRequest, Names};
use crate::server::offload::set_desired;
use crate::server::ops::checks::{known, running_project};
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};

/// `cove kill [-s SIGNAL] [SERVICE...]`.
pub(in crate::server) async fn kill(daemon: &Daemon, key: &str, req: KillRequest) -> Answer {
    let seq = *daemon.seq.borrow();
    let Some(signal) = Signal::from_named_raw(req.signal) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("no such signal: {}", req.signal),
            Some("name one, e.g. SIGKILL, SIGTERM, SIGHUP, SIGUSR1".into()),
        );
    };
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let mut run = project.lock_run().await;
    let names = match known(&run, &req.services) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let Some(plan) = run.plan.clone() else {
        return json(
            StatusCode::OK,
            &Acted {
                seq,
                replicas: Vec::new(),
            },
        );
    };
    let mut replicas = Vec::new();
    let mut stopped = Vec::new();
    for svc in plan.services.iter().filter(|s| names.contains(&s.name)) {
        if signal == Signal::KILL || signal == svc.stop_signal {
            // Those it stops: its replicas running now.
            let states = project.states.borrow();
            for s in states.get(&svc.name).into_iter().flatten() {
                if s.state.is_up() {
                    replicas.push(ActedReplica {
                        service: svc.name.clone(),
                        replica: s.replica,
                        error: None,
                    });
                }
            }
            stopped.push(svc.name.clone());
        } else {
            for (replica, r) in run.supervisor.signal(svc, signal).await {
                replicas.push(ActedReplica {
                    service: svc.name.clone(),
                    replica,
                    error: r.err(),
                });
            }
        }
    }
    if !stopped.is_empty() {
        let mut desired = run.desired.clone().expect("checked by known");
        desired.wanted.retain(|s| !stopped.contains(s));
        if let Err(e) = set_desired(&daemon.store, key, Some(&desired)).await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
        }
        run.desired = Some(desired);
        run.supervisor.kill(&stopped, signal).await;
    }
    drop(run);
    daemon.flush(&project).await;
    json(StatusCode::OK, &Acted { seq, replicas })
}

/// `cove pause|unpause [SERVICE...]`.
pub(in crate::server) async fn pause(
    daemon: &Daemon,
    key: &str,
    req: Names,
    pause: bool,
) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let run = project.lock_run().await;
    let names = match known(&run, &req.services) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let mut replicas = Vec::new();
    if let Some(plan) = run.plan.as_ref() {
        for svc in plan.services.iter().filter(|s| names.contains(&s.name)) {
            for (replica, r) in run.supervisor.pause(svc, pause).await {
                replicas.push(ActedReplica {
                    service: svc.name.clone(),
                    replica,
                    error: r.err(),
                });
            }
        }
    }
    drop(run);
    daemon.flush(&project).await;
    json(StatusCode::OK, &Acted { seq, replicas })
}

/// `GET /v1/exec?service=S&index=N`: replica N (default 1) of S, running.
pub(in crate::server) fn exec_target(daemon: &Daemon, key: &str, query: &str) -> Answer {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    };
    let service = param("service").unwrap_or_default().to_string();
    let Ok(index) = param("index").unwrap_or("1").parse::<u32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "`index` is not a replica number",
            Some("replicas are numbered from 1, as `cove ps` lists them".into()),
        );
    };
    let up_hint = Some(format!("start it with `cove up -d {service}`"));
    let Some(project) = daemon.existing(key) else {
        return error(StatusCode::CONFLICT, "the app is not running", up_hint);
    };
    let (plan, desired) = project.view();
    if let Some(d) = &desired
        && !d.app.services.contains_key(&service)
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("no such service `{service}`"),
            Some(d.app.services_hint()),
        );
    }
    let svc = plan
        .as_ref()
        .and_then(|p| p.services.iter().find(|s| s.name == service));
    let status = {
        let states = project.states.borrow();
        let mut of_replica: Vec<_> = states
            .get(&service)
            .into_iter()
            .flatten()
            .filter(|s| s.replica == index)
            .cloned()
            .collect();
        // A new instance during a rollout before the one it replaces.
        of_replica.sort_by_key(|s| (s.retiring, std::cmp::Reverse(s.revision)));
        of_replica.into_iter().find(|s| s.state.is_up())
    };
    let (Some(svc), Some(status)) = (svc, status) else {
        return error(
            StatusCode::CONFLICT,
            format!("service `{service}` has no running replica {index}"),
            up_hint,
        );
    };
    if status.state == cove_runtime::supervisor::State::Paused {
        return error(
            StatusCode::CONFLICT,
            format!("replica {index} of `{service}` is paused"),
            Some(format!("resume it with `cove unpause {service}`")),
        );
    }
    let secret_vars: Vec<(String, std::path::PathBuf)> = svc
        .secrets
        .iter()
        .filter_map(|m| {
            let var = m.env.clone()?;
            Some((var, svc.secrets_dir(status.slot).join(&m.file)))
        })
        .collect();
    let env = svc
        .replica_env(status.replica, status.slot)
        .into_iter()
        .filter(|(k, _)| !secret_vars.iter().any(|(v, _)| v == k))
        .collect();
    json(
        StatusCode::OK,
        &ExecTarget {
            service: service.clone(),
            replica: status.replica,
            pid: status.pid,
            container: svc
                .container
                .is_some()
                .then(|| cove_runtime::driver::container_name(svc, status.slot)),
            workdir: svc.workdir.clone(),
            env,
            secret_env: secret_vars,
        },
    )
}
