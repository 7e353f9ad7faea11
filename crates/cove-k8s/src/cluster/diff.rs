//! `cove k8s diff`: what `apply` would change, as `kubectl diff`.
//!
//! Each rendered object (labelled as a member of the applyset) is applied
//! with a server-side dry run (field manager `cove`, force): the API server
//! merges it with the live object, defaults and admits it, and stores
//! nothing. The result is compared with the live object, both without
//! what the server alone writes (`managedFields`, `resourceVersion`,
//! `generation`, `uid`, `creationTimestamp`, `status`). The members that
//! apply would prune are listed after. Secrets' values are never printed:
//! they show as `***`, `*** (before)` / `*** (after)` when they differ
//! (as `kubectl diff` masks them).

use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::apply::{adopt, stale};
use super::{ApplySet, Cluster, Error, kind_of};
use crate::{FIELD_MANAGER, Object};

/// One object that would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not on the cluster: would be created (its YAML).
    Create { id: String, yaml: String },
    /// Would be changed: a unified diff of live → applied.
    Update { id: String, diff: String },
    /// No longer rendered: would be pruned (claims are kept, and said so).
    Prune { id: String, kept: bool },
}

/// Removes what only the server writes.
pub fn normalise(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
            ] {
                m.remove(k);
            }
        }
    }
    v
}

/// Masks the values of a Secret's `data` and `stringData` in `live` and
/// `applied`, keeping whether each differs.
pub fn mask_secrets(live: &mut Value, applied: &mut Value) {
    for field in ["data", "stringData"] {
        let before = live.get(field).cloned().unwrap_or(Value::Null);
        let after = applied.get(field).cloned().unwrap_or(Value::Null);
        let mask = |v: &mut Value, other: &Value, tag: &str| {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for (k, val) in m.iter_mut() {
                    let same = other.get(k) == Some(&*val);
                    *val = Value::String(if same {
                        "***".into()
                    } else {
                        format!("*** ({tag})")
                    });
                }
            }
        };
        mask(live, &after, "before");
        mask(applied, &before, "after");
    }
}

/// A unified diff of two YAML texts (three lines of context).
pub fn unified(id: &str, live: &str, applied: &str) -> String {
    similar::TextDiff::from_lines(live, applied)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{id}"), &format!("cove/{id}"))
        .to_string()
}

/// What applying `objects` of `project` would change; empty: nothing.
pub async fn diff(
    cluster: &Cluster,
    project: &str,
    objects: &[Object],
) -> Result<Vec<Change>, Error> {
    let set = ApplySet::new(project, &cluster.namespace);
    let objects = adopt(&set, objects);
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let mut out = Vec::new();
    for o in &objects {
        let api = cluster.dynamic(kind_of(o));
        let live = api
            .get_opt(o.name())
            .await
            .map_err(|e| Error::api("reading", o.id(), e))?;
        let applied = api
            .patch(o.name(), &params, &Patch::Apply(o.to_json()))
            .await
            .map_err(|e| Error::api("dry-run applying", o.id(), e))?;
        let value = |obj: &kube::api::DynamicObject| {
            normalise(serde_json::to_value(obj).unwrap_or_default())
        };
        let yaml = cove_spec::yaml_out::to_yaml;
        let mut after = value(&applied);
        let mut before = live.as_ref().map(value);
        if o.kind() == "Secret" {
            let mut none = Value::Null;
            mask_secrets(before.as_mut().unwrap_or(&mut none), &mut after);
        }
        let after = yaml(&after);
        match before {
            None => out.push(Change::Create {
                id: o.id(),
                yaml: after,
            }),
            Some(before) => {
                let before = yaml(&before);
                if before != after {
                    out.push(Change::Update {
                        id: o.id(),
                        diff: unified(&o.id(), &before, &after),
                    });
                }
            }
        }
    }
    let members = set.members(cluster).await?;
    for m in stale(&members, &objects) {
        out.push(Change::Prune {
            kept: m.kind.2 == "PersistentVolumeClaim",
            id: m.id(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_server_writes_is_not_a_difference() {
        let live = serde_json::json!({
            "metadata": {"name": "a", "resourceVersion": "7", "generation": 3, "uid": "u",
                         "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": []},
            "spec": {"replicas": 2},
            "status": {"replicas": 2}
        });
        assert_eq!(
            normalise(live),
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}})
        );
    }

    #[test]
    fn secret_values_are_masked_but_their_change_shown() {
        let mut live = serde_json::json!({"data": {"a": "b2xk", "same": "eA=="}});
        let mut applied = serde_json::json!({"data": {"a": "bmV3", "same": "eA=="}});
        mask_secrets(&mut live, &mut applied);
        assert_eq!(
            live,
            serde_json::json!({"data": {"a": "*** (before)", "same": "***"}})
        );
        assert_eq!(
            applied,
            serde_json::json!({"data": {"a": "*** (after)", "same": "***"}})
        );
    }

    #[test]
    fn the_diff_shows_the_changed_line() {
        let d = unified(
            "Deployment/a",
            "image: a:1\nreplicas: 2\n",
            "image: a:2\nreplicas: 2\n",
        );
        assert!(
            d.contains("-image: a:1") && d.contains("+image: a:2"),
            "{d}"
        );
        assert!(d.contains("--- live/Deployment/a"), "{d}");
    }
}
