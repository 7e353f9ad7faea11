//! `cove k8s delete`: every member of the app's applyset (reverse apply
//! order, propagation Background), then the parent. PersistentVolumeClaims
//! are kept, as `cove down` keeps volumes, unless `volumes`: then they
//! go too, with the claims StatefulSets made from their templates (the
//! project's label selects them).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{DeleteParams, ListParams};

use super::{ApplySet, Cluster, Error};
use crate::PROJECT_LABEL;
use crate::names::dns_label;

/// What a delete did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// `Kind/name`, in the order deleted.
    pub deleted: Vec<String>,
    /// The claims kept.
    pub kept: Vec<String>,
}

fn gone<T>(r: Result<T, kube::Error>, id: &str) -> Result<bool, Error> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(Error::api("deleting", id.to_string(), e)),
    }
}

/// Deletes the app `project`'s objects.
pub async fn delete(cluster: &Cluster, project: &str, volumes: bool) -> Result<Deleted, Error> {
    let set = ApplySet::new(project, &cluster.namespace);
    let mut members = set.members(cluster).await?;
    members.reverse();
    let mut out = Deleted::default();
    let params = DeleteParams::background();
    for m in members {
        if m.kind.2 == "PersistentVolumeClaim" && !volumes {
            out.kept.push(m.id());
            continue;
        }
        if gone(
            cluster.dynamic(m.kind).delete(&m.name, &params).await,
            &m.id(),
        )? {
            out.deleted.push(m.id());
        }
    }
    if volumes {
        let claims = cluster
            .api::<PersistentVolumeClaim>()
            .list(&ListParams::default().labels(&format!("{PROJECT_LABEL}={}", dns_label(project))))
            .await
            .map_err(|e| Error::api("listing", "persistentvolumeclaims", e))?;
        for c in claims.items {
            let name = c.metadata.name.unwrap_or_default();
            let id = format!("PersistentVolumeClaim/{name}");
            if gone(
                cluster
                    .api::<PersistentVolumeClaim>()
                    .delete(&name, &params)
                    .await,
                &id,
            )? {
                out.deleted.push(id);
            }
        }
    }
    let id = format!("Secret/{}", set.name);
    if gone(
        cluster.api::<Secret>().delete(&set.name, &params).await,
        &id,
    )? {
        out.deleted.push(id);
    }
    Ok(out)
}
