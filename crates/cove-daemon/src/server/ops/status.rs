//! `GET /v1/status`: the daemon (pid, version, directory, kind, last
//! event) and, for the project named, its running and sleeping services;
//! never waiting for a command in progress.

use hyper::StatusCode;

use crate::api::DaemonStatus;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, json};

/// The daemon's status, with `key`'s services when it names a project.
pub(in crate::server) fn status(daemon: &Daemon, key: Option<&str>) -> Answer {
    let (running, asleep) = match key.and_then(|k| daemon.existing(k)) {
        Some(p) => {
            let (plan, desired) = p.view();
            // Scaled to zero, or planned with no replica at all
            // (`deploy.replicas: 0`): nothing of theirs to wait for.
            let mut asleep: Vec<String> = desired
                .as_ref()
                .map(|d| {
                    d.scale
                        .iter()
                        .filter(|(_, n)| **n == 0)
                        .map(|(s, _)| s.clone())
                        .collect()
                })
                .unwrap_or_default();
            for svc in plan.iter().flat_map(|p| &p.services) {
                if svc.replicas == 0 && !asleep.contains(&svc.name) {
                    asleep.push(svc.name.clone());
                }
            }
            // The supervisor's services, or, while a command holds
            // it, those with a replica not yet ended.
            let running = match p.run.try_lock() {
                Ok(run) => run.supervisor.running(),
                Err(_) => p
                    .states
                    .borrow()
                    .iter()
                    .filter(|(_, r)| r.iter().any(|s| !s.state.is_final()))
                    .map(|(n, _)| n.clone())
                    .collect(),
            };
            (running, asleep)
        }
        None => (Vec::new(), Vec::new()),
    };
    json(
        StatusCode::OK,
        &DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            state_dir: daemon.paths.state_dir.clone(),
            host: daemon.host,
            running,
            asleep,
            seq: *daemon.seq.borrow(),
            log_follows: daemon.log_follows.load(std::sync::atomic::Ordering::SeqCst),
        },
    )
}
