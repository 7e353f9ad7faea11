//! `cove k8s apply`: server-side apply of every rendered object, then
//! prune.
//!
//! The steps, as `kubectl apply --server-side --prune --applyset`:
//!
//! 1. the parent is applied listing the kinds of the members on the
//!    cluster and of the objects rendered (so that an interrupted apply
//!    still finds everything it made);
//! 2. every object is applied in order (field manager `cove`, `force`:
//!    cove's file is the truth, as `--force-conflicts`), labelled as a
//!    member;
//! 3. members no longer rendered are deleted (propagation Background), in
//!    reverse apply order, except PersistentVolumeClaims: their data is
//!    kept, as `cove down` keeps volumes (`cove k8s delete --volumes`
//!    deletes them);
//! 4. the parent is applied again, listing the kinds rendered (and of the
//!    claims kept).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};

use super::applyset::{Member, group_kind};
use super::{ApplySet, Cluster, Error, kind_of};
use crate::{FIELD_MANAGER, Object};

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `Kind/name` of every object applied, in order.
    pub applied: Vec<String>,
    /// `Kind/name` of the members deleted because they are no longer rendered.
    pub pruned: Vec<String>,
    /// `Kind/name` of the claims no longer rendered, kept with their data.
    pub kept: Vec<String>,
}

/// The objects as members of `set`: in its namespace, labelled.
pub fn adopt(set: &ApplySet, objects: &[Object]) -> Vec<Object> {
    let mut out = objects.to_vec();
    for o in &mut out {
        set.adopt(o);
    }
    out
}

/// Members on the cluster that `objects` no longer has.
pub fn stale(members: &[Member], objects: &[Object]) -> Vec<Member> {
    members
        .iter()
        .filter(|m| {
            !objects
                .iter()
                .any(|o| o.kind() == m.kind.2 && o.name() == m.name)
        })
        .cloned()
        .collect()
}

/// Applies `objects` (rendered for project `project`) and prunes what
/// they no longer have; `progress` gets one line per object.
pub async fn apply(
    cluster: &Cluster,
    project: &str,
    objects: &[Object],
    progress: &mut dyn FnMut(&str),
) -> Result<Applied, Error> {
    let set = ApplySet::new(project, &cluster.namespace);
    let objects = adopt(&set, objects);
    let members = set.members(cluster).await?;
    let mut kinds: BTreeSet<String> = objects.iter().map(|o| group_kind(kind_of(o))).collect();
    let all: BTreeSet<String> = kinds
        .iter()
        .cloned()
        .chain(members.iter().map(|m| group_kind(m.kind)))
        .collect();
    apply_parent(cluster, &set, &all).await?;

    let mut out = Applied::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for o in &objects {
        let api = cluster.dynamic(kind_of(o));
        match api
            .patch(o.name(), &params, &Patch::Apply(o.to_json()))
            .await
        {
            Ok(_) => progress(&format!("{} applied", o.id())),
            // A Job's pod template cannot change: the Job is replaced (as
            // `kubectl replace --force`), its old pods deleted with it.
            Err(kube::Error::Api(s)) if s.code == 422 && o.kind() == "Job" => {
                api.delete(o.name(), &DeleteParams::foreground())
                    .await
                    .map_err(|e| Error::api("replacing", o.id(), e))?;
                wait_gone(&api, o).await?;
                api.patch(o.name(), &params, &Patch::Apply(o.to_json()))
                    .await
                    .map_err(|e| Error::api("applying", o.id(), e))?;
                progress(&format!(
                    "{} replaced (its template changed, which a Job's cannot)",
                    o.id()
                ));
            }
            Err(e) => return Err(Error::api("applying", o.id(), e)),
        }
        out.applied.push(o.id());
    }

    let mut gone = stale(&members, &objects);
    gone.reverse();
    for m in gone {
        if m.kind.2 == "PersistentVolumeClaim" {
            progress(&format!(
                "{} is no longer rendered: kept, with its data (`cove k8s delete --volumes` deletes claims)",
                m.id()
            ));
            kinds.insert(group_kind(m.kind));
            out.kept.push(m.id());
            continue;
        }
        match cluster
            .dynamic(m.kind)
            .delete(&m.name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::api("pruning", m.id(), e)),
        }
        progress(&format!("{} pruned", m.id()));
        out.pruned.push(m.id());
    }
    apply_parent(cluster, &set, &kinds).await?;
    Ok(out)
}

/// Waits (at most 60 s) until `o` is deleted.
async fn wait_gone(api: &kube::Api<kube::api::DynamicObject>, o: &Object) -> Result<(), Error> {
    for _ in 0..240 {
        match api.get_opt(o.name()).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            Err(e) => return Err(Error::api("reading", o.id(), e)),
        }
    }
    Ok(())
}

async fn apply_parent(
    cluster: &Cluster,
    set: &ApplySet,
    kinds: &BTreeSet<String>,
) -> Result<(), Error> {
    let parent = set.parent(kinds);
    cluster
        .api::<Secret>()
        .patch(
            &set.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&parent),
        )
        .await
        .map_err(|e| Error::api("applying", format!("Secret/{}", set.name), e))?;
    Ok(())
}
