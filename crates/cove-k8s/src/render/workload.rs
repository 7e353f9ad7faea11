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

use cove_spec::model::{Condition, MountKind};
use cove_spec::policy::Restart;

use super::{Ctx, RenderError, Rendered, container, probes, secrets, storage, wait};
use crate::Object;

/// The kind of workload a service becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    StatefulSet,
    Job,
}

/// Which workload `name` becomes in `app`.
pub(crate) fn kind(app: &cove_spec::App, name: &str) -> Kind {
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
    let recipe_data = cove_runtime::recipe::Recipe::detect(svc).is_some();
    let named_volume = svc
        .volumes
        .iter()
        .any(|m| m.kind == MountKind::Volume && m.source.is_some());
    if recipe_data || named_volume {
        Kind::StatefulSet
    } else {
        Kind::Deployment
    }
}

/// The service's pod: its container (with probes, mounts and secrets) and
/// the init containers that wait for its dependencies.
pub(super) fn pod(ctx: &Ctx, out: &mut Rendered) -> Result<PodSpec, RenderError> {
    let mut main = container::container(ctx)?;
    probes::apply(ctx, &mut main, out);
    let mut pod = PodSpec::default();
    storage::mounts(ctx, &mut pod, &mut main, out)?;
    secrets::mounts(ctx, &mut pod, &mut main, out)?;
    let init = wait::init_containers(ctx, &mut pod, out)?;
    if !init.is_empty() {
        pod.init_containers = Some(init);
    }
    pod.containers = vec![main];
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
