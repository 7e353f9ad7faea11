//! Which workload a service becomes, and its pod template.
//!
//! - a one-shot (`restart: "no"`, or another service waits for its
//!   completion) → Job;
//! - a service with data (a recipe that keeps data, or a named volume) →
//!   StatefulSet;
//! - everything else → Deployment.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use cove_spec::model::Condition;
use cove_spec::policy::Restart;

use super::{
    Ctx, RenderError, Rendered, container, network, probes, recipes, secrets, storage, wait,
};
use crate::Object;

/// The kind of workload a service becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    StatefulSet,
    Job,
}

/// Which workload `name` becomes in `app`. A service that joins another's
/// network namespace (`network_mode: service:x`) runs in x's pod: its
/// kind is x's. A StatefulSet when the pod's services keep data (a
/// recipe's server, a named volume).
pub(crate) fn kind(app: &cove_spec::App, name: &str) -> Kind {
    let name = network::pod_owner(app, name);
    let svc = &app.services[name];
    let one_shot = svc
        .restart
        .as_ref()
        .is_some_and(|r| matches!(r.value(), Restart::No))
        || app.services.values().any(|other| {
            other
                .depends_on
                .get(name)
                .is_some_and(|d| d.condition == Condition::ServiceCompletedSuccessfully)
        });
    if one_shot {
        return Kind::Job;
    }
    if storage::keeps_data(app, name) {
        Kind::StatefulSet
    } else {
        Kind::Deployment
    }
}

/// Whether the Service of `name` is headless (`clusterIP: None`): the
/// governing Service of a StatefulSet, so that its pods have stable names
/// (`NAME-0.NAME`) and the service's name resolves to the pods themselves
/// (what a Redis cluster's nodes need: clients follow the addresses the
/// nodes announce).
pub fn headless(app: &cove_spec::App, name: &str) -> bool {
    app.services.contains_key(name) && kind(app, name) == Kind::StatefulSet
}

/// Makes the Service of `ctx`'s service headless when [`headless`] says.
pub(super) fn set_headless(ctx: &Ctx, out: &mut Rendered) {
    if !headless(ctx.app, ctx.name) {
        return;
    }
    // The Service was just rendered: look from the end.
    for o in out.objects.iter_mut().rev() {
        if let Object::Service(s) = o
            && s.metadata.name.as_deref() == Some(ctx.k8s_name.as_str())
            && let Some(spec) = s.spec.as_mut()
        {
            spec.cluster_ip = Some("None".into());
            return;
        }
    }
}

/// The service's pod: its container (with probes, mounts and secrets) and
/// the init containers that wait for its dependencies.
pub(super) fn pod(ctx: &Ctx, out: &mut Rendered) -> Result<PodSpec, RenderError> {
    let mut main = container::container(ctx)?;
    recipes::apply(
        ctx.svc,
        &mut main,
        storage::recipe_data_on_claim(ctx.app, ctx.name),
    );
    probes::apply(ctx, &mut main, out);
    let mut pod = PodSpec::default();
    storage::mounts(ctx, &mut pod, &mut main, out)?;
    secrets::mounts(ctx, &mut pod, &mut main, out)?;
    let init = wait::init_containers(ctx, &mut pod, out)?;
    if !init.is_empty() {
        pod.init_containers = Some(init);
    }
    pod.containers = vec![main];
    network::sidecars(ctx, &mut pod, out)?;
    Ok(pod)
}

/// The workload that runs `pod`.
pub(super) fn workload(
    ctx: &Ctx,
    pod: &mut PodSpec,
    _out: &mut Rendered,
) -> Result<Object, RenderError> {
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(ctx.selector()),
            ..ObjectMeta::default()
        }),
        spec: Some(std::mem::take(pod)),
    };
    let selector = LabelSelector {
        match_labels: Some(ctx.selector()),
        ..LabelSelector::default()
    };
    let replicas = Some(i32::try_from(ctx.svc.replicas()).unwrap_or(i32::MAX));
    Ok(match kind(ctx.app, ctx.name) {
        Kind::Deployment => Deployment {
            metadata: ctx.meta(&ctx.k8s_name),
            spec: Some(DeploymentSpec {
                replicas,
                selector,
                template,
                ..DeploymentSpec::default()
            }),
            status: None,
        }
        .into(),
        Kind::StatefulSet => StatefulSet {
            metadata: ctx.meta(&ctx.k8s_name),
            spec: Some(StatefulSetSpec {
                replicas,
                selector,
                service_name: Some(ctx.k8s_name.clone()),
                template,
                volume_claim_templates: Some(storage::claim_templates(
                    ctx.app, ctx.opts, ctx.name,
                )?)
                .filter(|t| !t.is_empty()),
                ..StatefulSetSpec::default()
            }),
            status: None,
        }
        .into(),
        Kind::Job => {
            let mut template = template;
            if let Some(spec) = template.spec.as_mut() {
                spec.restart_policy = Some("Never".into());
            }
            Job {
                metadata: ctx.meta(&ctx.k8s_name),
                spec: Some(JobSpec {
                    template,
                    ..JobSpec::default()
                }),
                status: None,
            }
            .into()
        }
    })
}
