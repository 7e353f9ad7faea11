//! The objects cove renders: one enum over k8s-openapi's typed objects,
//! in the order they are applied (what others need first).

use k8s_openapi::Resource as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

macro_rules! objects {
    ($($variant:ident),* $(,)?) => {
        /// One rendered object. The variants are listed in apply order.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Object {
            $($variant(Box<$variant>),)*
        }

        impl Object {
            /// `apiVersion`, e.g. `apps/v1`.
            pub fn api_version(&self) -> &'static str {
                match self { $(Object::$variant(_) => $variant::API_VERSION,)* }
            }

            /// `kind`, e.g. `Deployment`.
            pub fn kind(&self) -> &'static str {
                match self { $(Object::$variant(_) => $variant::KIND,)* }
            }

            /// The API group (`""` for the core group).
            pub fn group(&self) -> &'static str {
                match self { $(Object::$variant(_) => $variant::GROUP,)* }
            }

            /// The plural resource name, e.g. `deployments`.
            pub fn plural(&self) -> &'static str {
                match self { $(Object::$variant(_) => $variant::URL_PATH_SEGMENT,)* }
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self { $(Object::$variant(o) => &o.metadata,)* }
            }

            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Object::$variant(o) => &mut o.metadata,)* }
            }

            /// The object as JSON, with `apiVersion` and `kind` first.
            pub fn to_json(&self) -> serde_json::Value {
                let body = match self {
                    $(Object::$variant(o) => serde_json::to_value(o.as_ref()),)*
                };
                // Serializing k8s-openapi's types cannot fail.
                let body = body.unwrap_or_default();
                let mut out = serde_json::Map::new();
                out.insert("apiVersion".into(), self.api_version().into());
                out.insert("kind".into(), self.kind().into());
                if let serde_json::Value::Object(m) = body {
                    for (k, v) in m {
                        if k != "apiVersion" && k != "kind" {
                            out.insert(k, v);
                        }
                    }
                }
                serde_json::Value::Object(out)
            }

            /// Rank in apply order (index of the variant).
            fn rank(&self) -> usize {
                let mut i = 0;
                $(
                    if matches!(self, Object::$variant(_)) { return i; }
                    i += 1;
                )*
                i
            }

            /// Every kind cove renders, as (group, version, kind, plural), in
            /// apply order: what a prune lists.
            pub fn kinds() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
                vec![$(($variant::GROUP, $variant::VERSION, $variant::KIND, $variant::URL_PATH_SEGMENT),)*]
            }
        }

        $(
            impl From<$variant> for Object {
                fn from(o: $variant) -> Object { Object::$variant(Box::new(o)) }
            }
        )*
    };
}

objects!(
    ServiceAccount,
    Role,
    RoleBinding,
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    Service,
    StatefulSet,
    Deployment,
    Job,
    HorizontalPodAutoscaler,
    Ingress,
    NetworkPolicy,
);

impl Object {
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// `Kind/name`, as kubectl prints it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }
}

/// Sorts objects into apply order: by kind, then by name.
pub fn sort(objects: &mut [Object]) {
    objects.sort_by(|a, b| a.rank().cmp(&b.rank()).then_with(|| a.name().cmp(b.name())));
}
