//! `POST /v1/scale`: replica counts that hold until changed again.

use hyper::StatusCode;

use crate::api::ScaleRequest;
use crate::server::ops::checks::{known, running_project};
use crate::server::ops::converge::converge_and_answer;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error};

/// `cove scale SERVICE=N…`: the counts hold until changed again (a `cove
/// up` keeps them).
pub(in crate::server) async fn scale(daemon: &Daemon, key: &str, req: ScaleRequest) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let run = project.lock_run().await;
    let names: Vec<String> = req.scale.keys().cloned().collect();
    if let Err(a) = known(&run, &names) {
        return a;
    }
    let mut desired = run.desired.clone().expect("checked by known");
    if let Some(idle) = names.iter().find(|s| !desired.wanted.contains(s)) {
        return error(
            StatusCode::CONFLICT,
            format!("`{idle}` is not running"),
            Some(format!("start it first: `cove up -d {idle}`")),
        );
    }
    let most = cove_runtime::plan::MAX_INSTANCES / 2;
    if let Some((name, n)) = req.scale.iter().find(|(_, n)| **n > most) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{name}` cannot run {n} replicas; natively a service runs at most {most}"),
            None,
        );
    }
    desired.scale.extend(req.scale.clone());
    converge_and_answer(daemon, &project, key, seq, run, desired, &names).await
}
