//! `cove k8s status`: every workload of the app's applyset, with its
//! replica counts, revision, images and rollout state.

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::ListParams;
use serde::Serialize;

use super::rollout::{State, deployment_state, job_state, statefulset_state};
use super::{ApplySet, Cluster, Error};

/// One workload's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `Deployment`, `StatefulSet` or `Job`.
    pub kind: String,
    pub name: String,
    /// Pods wanted (completions for a Job).
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    /// The number `cove k8s rollback --to` takes. Deployment: its
    /// `deployment.kubernetes.io/revision`; StatefulSet: the `revision` of
    /// its current ControllerRevision; Job: none.
    pub revision: Option<String>,
    pub images: Vec<String>,
    /// `rolled out: ...`, `progressing: ...` or `failed: ...`.
    pub condition: String,
}

fn images(template: Option<&PodTemplateSpec>) -> Vec<String> {
    template
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn condition(state: State) -> String {
    match state {
        State::Done(m) => format!("rolled out: {m}"),
        State::Progress(m) => format!("progressing: {m}"),
        State::Failed(m) => format!("failed: {m}"),
    }
}

/// The number of the ControllerRevision `name`.
async fn revision_number(cluster: &Cluster, name: Option<&str>) -> Result<Option<String>, Error> {
    let Some(name) = name else {
        return Ok(None);
    };
    let r = cluster
        .api::<ControllerRevision>()
        .get_opt(name)
        .await
        .map_err(|e| Error::api("reading", format!("ControllerRevision/{name}"), e))?;
    Ok(r.map(|r| r.revision.to_string()))
}

/// The workloads of `project`'s applyset, Deployments, then
/// StatefulSets, then Jobs, by name.
pub async fn status(cluster: &Cluster, project: &str) -> Result<Vec<Row>, Error> {
    let set = ApplySet::new(project, &cluster.namespace);
    let params = ListParams::default().labels(&set.selector());
    let mut rows = Vec::new();
    let deployments = cluster
        .api::<Deployment>()
        .list(&params)
        .await
        .map_err(|e| Error::api("listing", "deployments", e))?;
    for d in deployments.items {
        let s = d.status.clone().unwrap_or_default();
        rows.push(Row {
            kind: "Deployment".into(),
            name: d.metadata.name.clone().unwrap_or_default(),
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: s.ready_replicas.unwrap_or(0),
            updated: s.updated_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            revision: d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(super::rollback::REVISION))
                .cloned(),
            images: images(d.spec.as_ref().map(|s| &s.template)),
            condition: condition(deployment_state(&d)),
        });
    }
    let statefulsets = cluster
        .api::<StatefulSet>()
        .list(&params)
        .await
        .map_err(|e| Error::api("listing", "statefulsets", e))?;
    for st in statefulsets.items {
        let s = st.status.clone().unwrap_or_default();
        rows.push(Row {
            kind: "StatefulSet".into(),
            name: st.metadata.name.clone().unwrap_or_default(),
            desired: st.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: s.ready_replicas.unwrap_or(0),
            updated: s.updated_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            revision: revision_number(cluster, s.current_revision.as_deref()).await?,
            images: images(st.spec.as_ref().map(|s| &s.template)),
            condition: condition(statefulset_state(&st)),
        });
    }
    let jobs = cluster
        .api::<Job>()
        .list(&params)
        .await
        .map_err(|e| Error::api("listing", "jobs", e))?;
    for j in jobs.items {
        let s = j.status.clone().unwrap_or_default();
        let succeeded = s.succeeded.unwrap_or(0);
        rows.push(Row {
            kind: "Job".into(),
            name: j.metadata.name.clone().unwrap_or_default(),
            desired: j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1),
            ready: s.ready.unwrap_or(0),
            updated: succeeded,
            available: succeeded,
            revision: None,
            images: images(j.spec.as_ref().map(|s| &s.template)),
            condition: condition(job_state(&j)),
        });
    }
    Ok(rows)
}
