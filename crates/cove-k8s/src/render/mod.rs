//! App model → Kubernetes objects.
//!
//! [`render`] walks the services in the model's order and asks each part
//! of the translation for its objects; one file per part:
//!
//! - [`workload`] which workload a service becomes (Deployment,
//!   StatefulSet for services with data, Job for one-shots), its replicas
//!   and update strategy, and the pod template;
//! - [`container`] the service's container: image, command, environment,
//!   resources, working directory;
//! - [`ports`] the Service that makes it reachable by its Compose name on
//!   every port it listens on;
//! - [`probes`] healthchecks → readiness/liveness probes;
//! - [`wait`] `depends_on` → init containers that wait;
//! - [`storage`] bind mounts → ConfigMaps, named volumes → claims;
//! - [`secrets`] secrets → Secret objects mounted as files;
//! - [`autoscale`] `x-cove.autoscale` → HorizontalPodAutoscaler;
//! - [`ingress`] `x-cove.routes` → Ingress;
//! - [`recipes`] what a recipe's image needs: its ports, its data directory;
//! - [`network`] networks → NetworkPolicies; `network_mode: service:x` → one pod.
//!
//! Rendering is pure: the same model and options give the same objects.

mod autoscale;
mod container;
mod ingress;
mod network;
mod ports;
mod probes;
pub mod recipes;
mod secrets;
mod storage;
mod wait;
mod workload;

#[cfg(test)]
mod testing;

pub use wait::{COVE_BINARY, default_cove_image};

use std::collections::BTreeMap;

use cove_spec::App;
use cove_spec::model::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names::dns_label;
use crate::object::{self, Object};
use crate::{PROJECT_LABEL, SERVICE_LABEL};

/// What `render` needs besides the app.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `metadata.namespace` of every object (`--namespace`); none: the
    /// namespace of the context they are applied in.
    pub namespace: Option<String>,
    /// Where built images are pushed (`--registry HOST/PREFIX`).
    pub registry: Option<String>,
    /// Images pushed by `cove build --push`, by service: names with digests.
    pub pushed: BTreeMap<String, String>,
    /// The secrets' values (from cove's encrypted store), by secret name;
    /// rendered into Secret objects. Empty: Secrets are rendered without
    /// data (`apply` fills them through the API).
    pub secret_values: BTreeMap<String, Vec<u8>>,
    /// The image of cove itself, for the init containers that wait.
    pub cove_image: Option<String>,
}

/// The objects, in apply order, and what the translation could not keep.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub objects: Vec<Object>,
    /// What did not translate, said once each (`service: field: why`).
    pub warnings: Vec<String>,
    /// Where services name each other, built once per render (`ports`).
    pub(crate) references: Option<ports::References>,
}

/// A service that cannot be rendered, and what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("service {service:?}: {field}: {message}\n  hint: {hint}")]
pub struct RenderError {
    pub service: String,
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl RenderError {
    pub(crate) fn new(
        service: &str,
        field: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        RenderError {
            service: service.to_string(),
            field: field.to_string(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// What every part of the translation of one service shares.
pub(crate) struct Ctx<'a> {
    pub app: &'a App,
    pub opts: &'a Options,
    /// The Compose name.
    pub name: &'a str,
    pub svc: &'a Service,
    /// The Kubernetes name of its objects ([`dns_label`] of `name`).
    pub k8s_name: String,
}

impl<'a> Ctx<'a> {
    /// The context of service `name` of `app` (which has it).
    pub fn new(app: &'a App, opts: &'a Options, name: &'a str) -> Ctx<'a> {
        Ctx {
            app,
            opts,
            name,
            svc: &app.services[name],
            k8s_name: dns_label(name),
        }
    }

    /// The labels that select this service's pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        selector(self.app, self.name)
    }

    /// Metadata of an object of this service named `name`.
    pub fn meta(&self, name: &str) -> ObjectMeta {
        let mut labels = self.selector();
        labels.insert("app.kubernetes.io/managed-by".into(), "cove".into());
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: self.opts.namespace.clone(),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }
}

/// The labels that select the pods of service `name`.
pub(crate) fn selector(app: &App, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PROJECT_LABEL.to_string(), dns_label(&app.name)),
        (SERVICE_LABEL.to_string(), dns_label(name)),
    ])
}

/// The app's objects, sorted into apply order.
pub fn render(app: &App, opts: &Options) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    let mut problems = Vec::new();
    for name in app.services.keys() {
        // Its container runs in another service's pod (`network_mode`).
        if network::pod_owner(app, name) != name {
            continue;
        }
        let ctx = Ctx::new(app, opts, name);
        match service(&ctx, &mut out) {
            Ok(()) => {}
            Err(e) => problems.push(e),
        }
    }
    if let Some(first) = problems.into_iter().next() {
        return Err(first);
    }
    secrets::project(app, opts, &mut out)?;
    storage::project(app, &mut out);
    network::project(app, opts, &mut out);
    object::sort(&mut out.objects);
    Ok(out)
}

/// One service's objects.
fn service(ctx: &Ctx, out: &mut Rendered) -> Result<(), RenderError> {
    let mut pod = workload::pod(ctx, out)?;
    ports::service(ctx, &pod, out);
    workload::set_headless(ctx, out);
    let workload = workload::workload(ctx, &mut pod, out)?;
    autoscale::service(ctx, &workload, out)?;
    ingress::service(ctx, out)?;
    out.objects.push(workload);
    Ok(())
}
