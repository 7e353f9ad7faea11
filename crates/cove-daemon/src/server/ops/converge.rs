//! What deploys, scaling and rollbacks share: [`act`] makes a desired
//! state what should run and sends the services their plan; [`outcomes`]
//! waits for each and words the answer.

use hyper::StatusCode;

use cove_runtime::supervisor::{Mode, Outcome};

use crate::api::{OutcomeKind, Outcomes, ServiceOutcome};
use crate::server::offload::set_desired;
use crate::server::registry::{Daemon, Project, RunGuard, Running};
use crate::server::reply::{Answer, error, json};
use crate::server::revisions::{Pending, Waiting, current_revision, plan_for, settle};
use crate::store::Desired;

fn outcome_row(service: &str, revision: u64, outcome: &Outcome) -> ServiceOutcome {
    let (word, message, ok) = match outcome {
        Outcome::Unchanged => (
            OutcomeKind::Unchanged,
            format!("revision {revision} is already running; nothing to do"),
            true,
        ),
        Outcome::Started { .. } => (
            OutcomeKind::Started,
            format!("revision {revision} started"),
            true,
        ),
        Outcome::Scaled { from, to } => (
            OutcomeKind::Scaled,
            format!("scaled from {from} to {to}"),
            true,
        ),
        Outcome::Deployed {
            replaced, failed, ..
        } if failed.is_empty() => (
            OutcomeKind::Deployed,
            format!("revision {revision} runs on every replica ({replaced} replaced)"),
            true,
        ),
        // Failures its `update_config` tolerates.
        Outcome::Deployed {
            replaced, failed, ..
        } => (
            OutcomeKind::Deployed,
            format!(
                "revision {revision} runs on {replaced} of {} replicas; the others kept their previous revision: {}",
                *replaced as usize + failed.len(),
                failed.join("; ")
            ),
            true,
        ),
        Outcome::Failed { reason, undone } => (
            OutcomeKind::Failed,
            if *undone {
                format!("{reason}; the previous revision runs again")
            } else {
                reason.clone()
            },
            false,
        ),
        Outcome::Stopped => (OutcomeKind::Stopped, "stopped while it ran".into(), false),
    };
    ServiceOutcome {
        service: service.to_string(),
        revision,
        outcome: word,
        message,
        ok,
    }
}

/// Waits for each service's command and answers with every outcome;
/// records new revisions.
pub(super) async fn outcomes(
    daemon: &Daemon,
    project: &Project,
    key: &str,
    seq: u64,
    done: Waiting,
    pending: &Pending,
    message: &str,
) -> Outcomes {
    let mut results = Vec::new();
    for (service, rx) in done {
        let outcome = rx.await.unwrap_or(Outcome::Stopped);
        settle(&daemon.store, key, &service, &outcome, pending, message).await;
        let revision = current_revision(&project.states.borrow(), &service).unwrap_or_default();
        results.push(outcome_row(&service, revision, &outcome));
    }
    daemon.flush(project).await;
    Outcomes { seq, results }
}

/// Makes `desired` what should run (stored before it is acted on), with
/// `deploying` at new revision numbers, and sends each of `names` its plan
/// in `mode`: their outcomes to wait for, and the revisions to record.
#[allow(clippy::result_large_err, clippy::too_many_arguments)] // an HTTP answer, built once per request
pub(super) async fn act(
    daemon: &Daemon,
    project: &Project,
    key: &str,
    run: &mut Running,
    desired: Desired,
    names: &[String],
    deploying: &[String],
    mode: Mode,
) -> Result<(Waiting, Pending), Answer> {
    let (plan, pending) = plan_for(&daemon.store, key, &desired, deploying)
        .await
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e, None))?;
    project
        .set_gateway(Some(&plan))
        .map_err(|e| error(StatusCode::CONFLICT, e, None))?;
    set_desired(&daemon.store, key, Some(&desired))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    let done = names
        .iter()
        .filter_map(|n| Some((n.clone(), run.supervisor.converge(&plan, n, mode)?)))
        .collect();
    // What the supervisor was told: the services not converged keep the
    // plan they run by (a deploy of one service stores the whole file,
    // but another service that changed in it still runs as before, and
    // a later `up` must see that it changed).
    let mut told = plan;
    if let Some(before) = run.plan.as_ref() {
        for svc in told
            .services
            .iter_mut()
            .filter(|s| !names.contains(&s.name))
        {
            if let Some(old) = before.services.iter().find(|o| o.name == svc.name) {
                *svc = old.clone();
            }
        }
    }
    run.plan = Some(told);
    run.desired = Some(desired);
    Ok((done, pending))
}

/// [`act`] for `names` (scaling, a rollback), then the answer once each
/// is done (the project is let go meanwhile).
pub(super) async fn converge_and_answer(
    daemon: &Daemon,
    project: &Project,
    key: &str,
    seq: u64,
    mut run: RunGuard<'_>,
    desired: Desired,
    names: &[String],
) -> Answer {
    let (done, pending) = match act(
        daemon,
        project,
        key,
        &mut run,
        desired,
        names,
        &[],
        Mode::Converge,
    )
    .await
    {
        Ok(d) => d,
        Err(a) => return a,
    };
    drop(run);
    json(
        StatusCode::OK,
        &outcomes(daemon, project, key, seq, done, &pending, "").await,
    )
}
