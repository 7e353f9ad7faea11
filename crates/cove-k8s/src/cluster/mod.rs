//! Rendered objects on a cluster (kube-rs): server-side apply with prune,
//! rollouts, status, diff, rollback, delete.
//!
//! One file per command: [`apply`] (server-side apply, field manager
//! `cove`, then prune), [`rollout`] (waiting for Deployments,
//! StatefulSets and Jobs, and what a failed one's pods said), [`status`],
//! [`diff`] (a server-side dry run compared with the live objects),
//! [`rollback`] (a workload back to an earlier revision) and [`delete`];
//! [`applyset`] says which objects are the app's (the applyset of
//! KEP-3659, as `kubectl apply --prune --applyset`).
//!
//! The client is the one kubectl would use ([`connect`]). Nothing here
//! prints: progress goes to a callback, results are returned.

pub mod apply;
pub mod applyset;
pub mod delete;
pub mod diff;
pub mod rollback;
pub mod rollout;
pub mod status;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use applyset::ApplySet;

/// What went wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig (nor in-cluster service account) could be loaded.
    #[error("no cluster to talk to: {0}")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("{action} {object}: {message}")]
    Api {
        /// What cove was doing (`applying`, `listing`, ...).
        action: &'static str,
        /// `Kind/name`, or the kind listed.
        object: String,
        /// The API server's message (cut at 600 characters), else the
        /// client's error.
        message: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// A rollback that cannot be done (no such workload, no such revision).
    #[error("{message}")]
    Rollback { message: String, hint: String },
}

impl Error {
    pub(crate) fn api(
        action: &'static str,
        object: impl Into<String>,
        source: kube::Error,
    ) -> Self {
        let message = match &source {
            kube::Error::Api(s) => {
                let m = s.message.trim();
                match m.char_indices().nth(600) {
                    Some((i, _)) => format!("{}... ({}, code {})", &m[..i], s.reason, s.code),
                    None => format!("{m} ({}, code {})", s.reason, s.code),
                }
            }
            e => e.to_string(),
        };
        Error::Api {
            action,
            object: object.into(),
            message,
            source: Box::new(source),
        }
    }

    /// What to do about it, when cove knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(_) => Some(
                "set KUBECONFIG, or write ~/.kube/config, or name a context with --context (as for kubectl)"
                    .into(),
            ),
            Error::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) if s.code == 404 && s.message.contains("namespaces") => {
                    Some("create the namespace first: `kubectl create namespace NS`".into())
                }
                kube::Error::Api(s) if s.code == 403 => {
                    Some("the kubeconfig's user lacks the right: ask for a Role that allows it".into())
                }
                kube::Error::Api(_) => None,
                _ => Some(
                    "is the API server reachable? (`kubectl cluster-info` with the same kubeconfig)"
                        .into(),
                ),
            },
            Error::Rollback { hint, .. } => Some(hint.clone()),
        }
    }
}

/// A client and the namespace cove works in.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
}

/// The cluster kubectl would talk to: `context` of the kubeconfig
/// (`KUBECONFIG`, a `:`-separated list of files merged, missing ones
/// skipped; else `~/.kube/config`; without `context`, the current one),
/// else, in a pod, its service account. The
/// namespace: `namespace`, else the context's, else `default`.
pub async fn connect(context: Option<&str>, namespace: Option<&str>) -> Result<Cluster, Error> {
    // Both of rustls's providers are in the workspace's tree, so one must
    // be installed; Err: one already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let in_context = |e: &dyn std::fmt::Display| match context {
        Some(c) => Error::Config(format!("context {c:?}: {e}")),
        None => Error::Config(e.to_string()),
    };
    let config = match (kubeconfig_env()?, context) {
        (Some(kubeconfig), _) => kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| in_context(&e))?,
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| in_context(&e))?,
        (None, None) => kube::Config::infer().await.map_err(|e| in_context(&e))?,
    };
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
    Ok(Cluster { client, namespace })
}

/// The files of `KUBECONFIG` merged, as kubectl merges them (the first
/// file that sets a value wins), skipping the files that do not exist as
/// kubectl does; `None` when the variable is unset or names no file.
fn kubeconfig_env() -> Result<Option<Kubeconfig>, Error> {
    let Some(var) = std::env::var_os("KUBECONFIG") else {
        return Ok(None);
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(&var).filter(|p| p.is_file()) {
        let next = Kubeconfig::read_from(&path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|e| Error::Config(e.to_string()))?,
        });
    }
    Ok(merged)
}

/// One kind cove renders: (group, version, kind, plural), as
/// [`Object::kinds`](crate::Object::kinds) lists them.
pub type Kind = (&'static str, &'static str, &'static str, &'static str);

impl Cluster {
    /// The namespaced API of one kind, untyped.
    pub(crate) fn dynamic(&self, kind: Kind) -> Api<DynamicObject> {
        let (group, version, k, plural) = kind;
        let gvk = GroupVersionKind::gvk(group, version, k);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    /// A typed namespaced API.
    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// The kind of `object` as [`Kind`].
pub(crate) fn kind_of(object: &crate::Object) -> Kind {
    crate::Object::kinds()
        .into_iter()
        .find(|k| k.2 == object.kind())
        .unwrap_or(("", "v1", "", ""))
}

/// `kind/name` in kubectl's lower case (`deployment/server`).
pub fn workload_id(kind: &str, name: &str) -> String {
    format!("{}/{name}", kind.to_ascii_lowercase())
}
