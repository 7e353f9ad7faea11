//! Which objects on the cluster are the app's: an applyset (KEP-3659, the
//! scheme of `kubectl apply --prune --applyset`).
//!
//! The parent is a Secret without data, `cove-applyset-<project>`, in the
//! app's namespace. It carries:
//!
//! - the label `applyset.kubernetes.io/id`: `applyset-` + unpadded
//!   base64url of the SHA-256 of `<name>.<namespace>.Secret.` + `-v1`
//!   (the KEP's formula, so kubectl recognises it);
//! - the annotations `applyset.kubernetes.io/tooling: cove/<version>` and
//!   `applyset.kubernetes.io/contains-group-kinds` (the kinds of its
//!   members, `Kind.group` sorted and comma-separated, `Kind` for the core
//!   group), which is what a prune lists.
//!
//! Every member carries the label `applyset.kubernetes.io/part-of: <id>`.
//! A member is deleted by a later apply when it is no longer rendered.

use std::collections::BTreeSet;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;

use super::{Cluster, Error, Kind};
use crate::Object;
use crate::names::dns_label;

pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
pub const GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";

/// The applyset of one project in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySet {
    /// The parent Secret's name.
    pub name: String,
    pub namespace: String,
    /// The applyset's id (the members' `part-of` label).
    pub id: String,
}

/// An object of the applyset found on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub kind: Kind,
    pub name: String,
}

impl Member {
    /// `Kind/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.2, self.name)
    }
}

impl ApplySet {
    pub fn new(project: &str, namespace: &str) -> ApplySet {
        let name = format!("cove-applyset-{}", dns_label(project));
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{name}.{namespace}.Secret.").as_bytes(),
        );
        let id = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        );
        ApplySet {
            name,
            namespace: namespace.to_string(),
            id,
        }
    }

    /// The label selector of its members.
    pub fn selector(&self) -> String {
        format!("{PART_OF_LABEL}={}", self.id)
    }

    /// `object` as a member: in the namespace, with the part-of label.
    pub fn adopt(&self, object: &mut Object) {
        let meta = object.metadata_mut();
        meta.namespace = Some(self.namespace.clone());
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(PART_OF_LABEL.into(), self.id.clone());
    }

    /// The parent object, listing `kinds`.
    pub fn parent(&self, kinds: &BTreeSet<String>) -> Secret {
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some([(ID_LABEL.to_string(), self.id.clone())].into()),
                annotations: Some(
                    [
                        (
                            TOOLING_ANNOTATION.to_string(),
                            format!("cove/v{}", env!("CARGO_PKG_VERSION")),
                        ),
                        (GROUP_KINDS_ANNOTATION.to_string(), kinds.join(",")),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    /// Every member on the cluster, in apply order (kinds in
    /// [`Object::kinds`] order, names sorted).
    pub async fn members(&self, cluster: &Cluster) -> Result<Vec<Member>, Error> {
        let mut out = Vec::new();
        let params = ListParams::default().labels(&self.selector());
        for kind in Object::kinds() {
            let list = cluster
                .dynamic(kind)
                .list_metadata(&params)
                .await
                .map_err(|e| Error::api("listing", kind.3, e))?;
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect();
            names.sort();
            out.extend(names.into_iter().map(|name| Member { kind, name }));
        }
        Ok(out)
    }
}

/// `Kind.group` (`Kind` for the core group), as the KEP writes group kinds.
pub fn group_kind(kind: Kind) -> String {
    if kind.0.is_empty() {
        kind.2.to_string()
    } else {
        format!("{}.{}", kind.2, kind.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_the_one_kubectl_computes() {
        // The label `KUBECTL_APPLYSET=true kubectl apply -n default
        // --server-side --prune --applyset=secret/cove-applyset-buffs`
        // (v1.32) put on the parent it made.
        let set = ApplySet::new("buffs", "default");
        assert_eq!(set.name, "cove-applyset-buffs");
        assert_eq!(
            set.id,
            "applyset-7oKbZk7MvnfvvX8f4YpM2Usv7dvEqp3JkWu3V0qNHmw-v1"
        );
        assert_ne!(set.id, ApplySet::new("buffs", "other").id);
    }

    #[test]
    fn group_kinds_name_the_group_except_core() {
        assert_eq!(
            group_kind(("apps", "v1", "Deployment", "deployments")),
            "Deployment.apps"
        );
        assert_eq!(group_kind(("", "v1", "Service", "services")), "Service");
    }
}
