//! `POST /v1/rollback`: a recorded revision rolled out again, its service
//! held at it until the next deploy.

use hyper::StatusCode;

use crate::api::RollbackRequest;
use crate::server::ops::checks::{known, running_project};
use crate::server::ops::converge::converge_and_answer;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error};
use crate::server::revisions::{current_revision, restorable};

/// `cove rollback SERVICE [--to N]`: rolls out a recorded revision (its kept
/// program, no build) and holds the service at it until the next deploy.
pub(in crate::server) async fn rollback(
    daemon: &Daemon,
    key: &str,
    req: RollbackRequest,
) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let run = project.lock_run().await;
    let names = vec![req.service.clone()];
    if let Err(a) = known(&run, &names) {
        return a;
    }
    let mut desired = run.desired.clone().expect("checked by known");
    let revs = match daemon.store.revisions(key, &req.service) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let current = current_revision(&project.states.borrow(), &req.service);
    let target = match req.to {
        Some(n) => revs.iter().find(|r| r.number == n),
        None => revs
            .iter()
            .rev()
            .find(|r| current.is_none_or(|c| r.number < c)),
    };
    let Some(target) = target else {
        let known: Vec<String> = revs.iter().map(|r| r.number.to_string()).collect();
        return error(
            StatusCode::NOT_FOUND,
            match req.to {
                Some(n) => format!("`{}` has no revision {n}", req.service),
                None => format!(
                    "`{}` has no revision before {}",
                    req.service,
                    current.unwrap_or(0)
                ),
            },
            Some(if known.is_empty() {
                "it has no recorded revision yet".into()
            } else {
                format!(
                    "its revisions: {} (`cove history {}`)",
                    known.join(", "),
                    req.service
                )
            }),
        );
    };
    desired.pinned.insert(req.service.clone(), target.number);
    let what = format!("roll `{}` back to revision {}", req.service, target.number);
    if let Err(a) = restorable(daemon, key, &desired, &req.service, target, &what).await {
        return a;
    }
    converge_and_answer(daemon, &project, key, seq, run, desired, &names).await
}
