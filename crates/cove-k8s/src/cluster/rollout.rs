//! Waiting for rollouts: every Deployment and StatefulSet until its new
//! pods are all available, every Job until it completes — the checks of
//! `kubectl rollout status` (and `kubectl wait --for=condition=complete`
//! for Jobs).
//!
//! - Deployment: the controller has seen the spec
//!   (`observedGeneration`), then `updatedReplicas` reaches `replicas`, no
//!   old pod is left and `availableReplicas` reaches `updatedReplicas`;
//!   the `Progressing` condition with reason `ProgressDeadlineExceeded`
//!   fails it.
//! - StatefulSet (RollingUpdate): `readyReplicas` reaches `replicas` and
//!   `currentRevision` is `updateRevision`; OnDelete ones are not waited
//!   for (nothing rolls them).
//! - Job: the `Complete` condition; `Failed` fails it.
//!
//! The workloads are read every half second until each is done or failed,
//! or the timeout passes (then every one still rolling fails, with its
//! last state). A failure names the workload, the reason, and the last
//! events of it and its pods (what `kubectl describe` would show).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;

use super::{Cluster, Error, workload_id};
use crate::Object;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Still rolling: what it waits for.
    Progress(String),
    /// Rolled out.
    Done(String),
    /// Will not roll out by itself: why.
    Failed(String),
}

/// A workload that did not roll out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `deployment/name`.
    pub workload: String,
    pub reason: String,
    /// The last events of the workload and its pods, oldest first
    /// (`Pod/name: Warning FailedScheduling: ...`).
    pub events: Vec<String>,
}

/// The state of a Deployment, as `kubectl rollout status` judges it.
pub fn deployment_state(d: &Deployment) -> State {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < generation {
        return State::Progress("waiting for the controller to see the new spec".into());
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if let Some(c) = progressing
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return State::Failed(format!(
            "exceeded its progress deadline: {}",
            c.message.as_deref().unwrap_or("")
        ));
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired || total > updated || available < updated {
        let old = if total > updated {
            format!(", {} old pending termination", total - updated)
        } else {
            String::new()
        };
        return State::Progress(format!(
            "{updated}/{desired} updated, {available} available{old}"
        ));
    }
    State::Done(format!("{available}/{desired} available"))
}

/// The state of a StatefulSet, as `kubectl rollout status` judges it.
pub fn statefulset_state(s: &StatefulSet) -> State {
    let spec = s.spec.clone().unwrap_or_default();
    let on_delete = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete");
    if on_delete {
        return State::Done("updateStrategy OnDelete: not waited for".into());
    }
    let generation = s.metadata.generation.unwrap_or(0);
    let status = s.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || observed < generation {
        return State::Progress("waiting for the controller to see the new spec".into());
    }
    let desired = spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if ready < desired || status.update_revision != status.current_revision {
        return State::Progress(format!("{updated}/{desired} updated, {ready} ready"));
    }
    State::Done(format!("{ready}/{desired} ready"))
}

/// The state of a Job.
pub fn job_state(j: &Job) -> State {
    let status = j.status.clone().unwrap_or_default();
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return State::Done("complete".into()),
            "Failed" => {
                return State::Failed(format!(
                    "failed: {}: {}",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or("")
                ));
            }
            _ => {}
        }
    }
    let completions = j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    State::Progress(format!(
        "{}/{completions} succeeded, {} active, {} failed",
        status.succeeded.unwrap_or(0),
        status.active.unwrap_or(0),
        status.failed.unwrap_or(0)
    ))
}

/// A workload to wait for.
struct Workload {
    kind: &'static str,
    name: String,
    last: Option<State>,
}

async fn state(cluster: &Cluster, w: &Workload) -> Result<(State, Option<LabelSelector>), Error> {
    let id = workload_id(w.kind, &w.name);
    let err = |e| Error::api("reading", id.clone(), e);
    Ok(match w.kind {
        "Deployment" => {
            let d = cluster
                .api::<Deployment>()
                .get(&w.name)
                .await
                .map_err(err)?;
            let sel = d.spec.as_ref().map(|s| s.selector.clone());
            (deployment_state(&d), sel)
        }
        "StatefulSet" => {
            let s = cluster
                .api::<StatefulSet>()
                .get(&w.name)
                .await
                .map_err(err)?;
            let sel = s.spec.as_ref().map(|s| s.selector.clone());
            (statefulset_state(&s), sel)
        }
        _ => {
            let j = cluster.api::<Job>().get(&w.name).await.map_err(err)?;
            let sel = j.spec.as_ref().and_then(|s| s.selector.clone());
            (job_state(&j), sel)
        }
    })
}

/// Waits (at most `timeout`) for every workload of `objects`; `progress`
/// gets a line each time one's state changes. The failures, in order.
pub async fn wait(
    cluster: &Cluster,
    objects: &[Object],
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Failure>, Error> {
    let mut pending: Vec<Workload> = objects
        .iter()
        .filter(|o| matches!(o.kind(), "Deployment" | "StatefulSet" | "Job"))
        .map(|o| Workload {
            kind: o.kind(),
            name: o.name().to_string(),
            last: None,
        })
        .collect();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut failures = Vec::new();
    loop {
        let mut still = Vec::new();
        for mut w in pending {
            let id = workload_id(w.kind, &w.name);
            let (now, selector) = state(cluster, &w).await?;
            if w.last.as_ref() != Some(&now) {
                let text = match &now {
                    State::Progress(m) => m.clone(),
                    State::Done(m) => format!("rolled out ({m})"),
                    State::Failed(m) => m.clone(),
                };
                progress(&format!("{id}: {text}"));
            }
            match &now {
                State::Done(_) => {}
                State::Failed(reason) => failures.push(Failure {
                    workload: id,
                    reason: reason.clone(),
                    events: events(cluster, &w.name, selector.as_ref()).await?,
                }),
                State::Progress(_) => {
                    w.last = Some(now);
                    still.push(w);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for w in pending {
                let (_, selector) = state(cluster, &w).await?;
                let last = match w.last {
                    Some(State::Progress(m)) => m,
                    _ => String::new(),
                };
                failures.push(Failure {
                    workload: workload_id(w.kind, &w.name),
                    reason: format!(
                        "not rolled out after {}s (timeout): {last}",
                        timeout.as_secs()
                    ),
                    events: events(cluster, &w.name, selector.as_ref()).await?,
                });
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(failures)
}

/// How many events a failure shows.
const EVENTS: usize = 10;

/// The last events of workload `name` and of its pods (those `selector`
/// selects), oldest first.
pub async fn events(
    cluster: &Cluster,
    name: &str,
    selector: Option<&LabelSelector>,
) -> Result<Vec<String>, Error> {
    let mut names = vec![name.to_string()];
    if let Some(labels) = selector.and_then(|s| s.match_labels.as_ref()) {
        let sel: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let pods = cluster
            .api::<Pod>()
            .list(&ListParams::default().labels(&sel.join(",")))
            .await
            .map_err(|e| Error::api("listing", "pods", e))?;
        names.extend(pods.items.into_iter().filter_map(|p| p.metadata.name));
    }
    let api = cluster.api::<Event>();
    let mut all: Vec<Event> = Vec::new();
    for n in &names {
        let list = api
            .list(&ListParams::default().fields(&format!("involvedObject.name={n}")))
            .await
            .map_err(|e| Error::api("listing", "events", e))?;
        all.extend(list.items);
    }
    all.sort_by(|a, b| {
        let t = |e: &Event| {
            e.last_timestamp
                .clone()
                .or_else(|| e.metadata.creation_timestamp.clone())
        };
        t(a).cmp(&t(b))
    });
    let skip = all.len().saturating_sub(EVENTS);
    Ok(all
        .into_iter()
        .skip(skip)
        .map(|e| {
            format!(
                "{}/{}: {} {}: {}",
                e.involved_object.kind.as_deref().unwrap_or("?"),
                e.involved_object.name.as_deref().unwrap_or("?"),
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(status),
        }
    }

    #[test]
    fn a_deployment_is_rolled_out_when_every_new_pod_is_available_and_no_old_one_is_left() {
        let seen = |updated, total, available| DeploymentStatus {
            observed_generation: Some(2),
            updated_replicas: Some(updated),
            replicas: Some(total),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        };
        assert_eq!(
            deployment_state(&deployment(2, seen(1, 1, 1))),
            State::Progress("1/2 updated, 1 available".into())
        );
        assert_eq!(
            deployment_state(&deployment(2, seen(2, 3, 2))),
            State::Progress("2/2 updated, 2 available, 1 old pending termination".into())
        );
        assert_eq!(
            deployment_state(&deployment(2, seen(2, 2, 2))),
            State::Done("2/2 available".into())
        );
        let unseen = DeploymentStatus {
            observed_generation: Some(1),
            ..seen(2, 2, 2)
        };
        assert!(matches!(
            deployment_state(&deployment(2, unseen)),
            State::Progress(_)
        ));
        let stuck = DeploymentStatus {
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"x\" has timed out progressing.".into()),
                ..DeploymentCondition::default()
            }]),
            ..seen(1, 2, 1)
        };
        assert!(matches!(
            deployment_state(&deployment(2, stuck)),
            State::Failed(m) if m.contains("progress deadline")
        ));
    }
}
