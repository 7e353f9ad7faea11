//! `cove k8s rollback SERVICE [--to N]`: a workload back to an earlier
//! revision, as `kubectl rollout undo [--to-revision N]`.
//!
//! - Deployment: its ReplicaSets (those it owns) carry the revision in
//!   the annotation `deployment.kubernetes.io/revision`; the Deployment's
//!   pod template is replaced by the template of revision N (without the
//!   `pod-template-hash` label the controller adds), or of the highest
//!   revision below the current one. The controller then makes that
//!   ReplicaSet the newest, with the next revision number.
//! - StatefulSet: its ControllerRevisions (`revision`, `data`: a patch of
//!   the template); the chosen one's data is applied as a strategic merge
//!   patch.
//! - Job: no revisions; apply the file again instead.
//!
//! The next `cove k8s apply` applies the file's template again: a rollback
//! is for the time it takes to fix the file.

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams, PostParams};

use super::{Cluster, Error};

/// The annotation holding a Deployment's (and its ReplicaSets') revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The field manager of rollbacks (as kubectl's `kubectl-rollout`).
pub const ROLLBACK_MANAGER: &str = "cove-rollback";

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// `deployment/name`.
    pub workload: String,
    pub from: i64,
    pub to: i64,
}

fn not_found(name: &str) -> Error {
    Error::Rollback {
        message: format!("no Deployment or StatefulSet named {name:?} in this namespace"),
        hint: "name a service of the file that `cove k8s apply` applied (`cove k8s status` lists them)"
            .into(),
    }
}

/// The revision to go to: `to`, else the highest below `current`.
fn target(revisions: &[i64], current: i64, to: Option<i64>, id: &str) -> Result<i64, Error> {
    match to {
        Some(n) if n == current => Err(Error::Rollback {
            message: format!("{id} is at revision {n} already"),
            hint: "name another revision with --to N (`cove k8s status` shows the current one)"
                .into(),
        }),
        Some(n) if revisions.contains(&n) => Ok(n),
        Some(n) => Err(Error::Rollback {
            message: format!("{id} has no revision {n}"),
            hint: format!("its revisions: {revisions:?}"),
        }),
        None => revisions
            .iter()
            .copied()
            .filter(|r| *r < current)
            .max()
            .ok_or_else(|| Error::Rollback {
                message: format!("{id} has no revision before {current}"),
                hint: "a workload has a previous revision once its pod template has changed".into(),
            }),
    }
}

/// Rolls the workload `name` (a Kubernetes name) back.
pub async fn rollback(cluster: &Cluster, name: &str, to: Option<i64>) -> Result<RolledBack, Error> {
    let deployments = cluster.api::<Deployment>();
    if let Some(d) = deployments
        .get_opt(name)
        .await
        .map_err(|e| Error::api("reading", format!("Deployment/{name}"), e))?
    {
        return deployment(cluster, d, to).await;
    }
    if let Some(s) = cluster
        .api::<StatefulSet>()
        .get_opt(name)
        .await
        .map_err(|e| Error::api("reading", format!("StatefulSet/{name}"), e))?
    {
        return statefulset(cluster, s, to).await;
    }
    if cluster
        .api::<Job>()
        .get_opt(name)
        .await
        .map_err(|e| Error::api("reading", format!("Job/{name}"), e))?
        .is_some()
    {
        return Err(Error::Rollback {
            message: format!("job/{name} is a Job: Jobs have no revisions to go back to"),
            hint: "change the file back and `cove k8s apply` (which replaces a Job whose template changed)".into(),
        });
    }
    Err(not_found(name))
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

fn selector_of(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    sel.match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn deployment(
    cluster: &Cluster,
    mut d: Deployment,
    to: Option<i64>,
) -> Result<RolledBack, Error> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let id = format!("deployment/{name}");
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let selector = d
        .spec
        .as_ref()
        .map(|s| selector_of(&s.selector))
        .unwrap_or_default();
    let sets = cluster
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api("listing", "replicasets", e))?;
    let revision = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .and_then(|r| r.parse::<i64>().ok())
    };
    let owned: Vec<(i64, ReplicaSet)> = sets
        .items
        .into_iter()
        .filter(|rs| owned_by(&rs.metadata, &uid))
        .filter_map(|rs| Some((revision(&rs.metadata)?, rs)))
        .collect();
    let current = revision(&d.metadata).unwrap_or(0);
    let revisions: Vec<i64> = owned.iter().map(|(r, _)| *r).collect();
    let to = target(&revisions, current, to, &id)?;
    let Some((_, rs)) = owned.into_iter().find(|(r, _)| *r == to) else {
        return Err(not_found(&name));
    };
    let mut template = rs.spec.and_then(|s| s.template).unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    if let Some(spec) = d.spec.as_mut() {
        spec.template = template;
    }
    d.status = None;
    d.metadata.managed_fields = None;
    let params = PostParams {
        field_manager: Some(ROLLBACK_MANAGER.into()),
        ..PostParams::default()
    };
    cluster
        .api::<Deployment>()
        .replace(&name, &params, &d)
        .await
        .map_err(|e| Error::api("rolling back", id.clone(), e))?;
    Ok(RolledBack {
        workload: id,
        from: current,
        to,
    })
}

async fn statefulset(
    cluster: &Cluster,
    s: StatefulSet,
    to: Option<i64>,
) -> Result<RolledBack, Error> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let id = format!("statefulset/{name}");
    let uid = s.metadata.uid.clone().unwrap_or_default();
    let selector = s
        .spec
        .as_ref()
        .map(|s| selector_of(&s.selector))
        .unwrap_or_default();
    let revisions = cluster
        .api::<ControllerRevision>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api("listing", "controllerrevisions", e))?;
    let owned: Vec<ControllerRevision> = revisions
        .items
        .into_iter()
        .filter(|r| owned_by(&r.metadata, &uid))
        .collect();
    let current_name = s
        .status
        .as_ref()
        .and_then(|st| st.update_revision.clone())
        .unwrap_or_default();
    let current = owned
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(current_name.as_str()))
        .map_or(0, |r| r.revision);
    let numbers: Vec<i64> = owned.iter().map(|r| r.revision).collect();
    let to = target(&numbers, current, to, &id)?;
    let Some(data) = owned
        .into_iter()
        .find(|r| r.revision == to)
        .and_then(|r| r.data)
    else {
        return Err(Error::Rollback {
            message: format!("{id}: revision {to} holds no template"),
            hint: "roll back to another revision with --to N".into(),
        });
    };
    let params = PatchParams {
        field_manager: Some(ROLLBACK_MANAGER.into()),
        ..PatchParams::default()
    };
    cluster
        .api::<StatefulSet>()
        .patch(&name, &params, &Patch::Strategic(data.0))
        .await
        .map_err(|e| Error::api("rolling back", id.clone(), e))?;
    Ok(RolledBack {
        workload: id,
        from: current,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_revision_is_the_highest_below_the_current_one() {
        assert_eq!(target(&[1, 2, 4], 4, None, "d").unwrap(), 2);
        assert_eq!(target(&[1, 2, 4], 4, Some(1), "d").unwrap(), 1);
        assert!(target(&[4], 4, None, "d").is_err());
        assert!(target(&[1, 4], 4, Some(3), "d").is_err());
        assert!(target(&[1, 4], 4, Some(4), "d").is_err());
    }
}
