//! Which workload a service becomes, and its pod template.
//!
//! - a one-shot (`restart: "no"`, or another service waits for its
//!   completion) → Job;
//! - a service with data (a recipe that keeps data, or a named volume) →
//!   StatefulSet;
//! - everything else → Deployment.
//!
//! Jobs: `restart: "no"` (or unset) → backoffLimit 0 and pods that are
//! not restarted (`Never`); `on-failure[:N]` → backoffLimit N (6, the
//! Kubernetes default, without a maximum) and `OnFailure`; `always` and
//! `unless-stopped` cannot hold for a run-to-completion pod: `OnFailure`
//! with the default backoff, and a warning.
//!
//! Deployments: `deploy.update_config` → a RollingUpdate strategy
//! (`start-first`: maxSurge = parallelism, maxUnavailable = 0;
//! `stop-first`, Compose's default: maxSurge = 0, maxUnavailable =
//! parallelism; parallelism 0, "all at once", is 100%). With
//! `x-cove.autoscale` the workload's `replicas` is left out: the
//! HorizontalPodAutoscaler owns it, and a later apply must not reset it.
//!
//! Every workload: the service's `labels` on the object and its pods
//! (where they are valid label keys and values; the rest as
//! annotations), `stop_grace_period` → terminationGracePeriodSeconds
//! (whole seconds, rounded up); `stop_signal` other than SIGTERM cannot
//! be set (the kubelet sends SIGTERM): a warning.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use cove_spec::model::Condition;
use cove_spec::policy::{Order, Restart, StopSignal};

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
        // Every service's few dependencies compared, not looked up (a
        // hash per service): this runs for every service, several times.
        || app.services.values().any(|other| {
            other.depends_on.iter().any(|(dep, d)| {
                d.condition == Condition::ServiceCompletedSuccessfully && dep == name
            })
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
    let mut main = container::container(ctx, out)?;
    recipes::apply(
        ctx.svc,
        &mut main,
        storage::recipe_data_on_claim(ctx.app, ctx.name),
    );
    probes::apply(ctx, &mut main, out)?;
    let mut pod = PodSpec::default();
    if let Some(grace) = ctx.svc.stop_grace_period {
        let whole = grace.0.as_secs() + u64::from(grace.0.subsec_nanos() > 0);
        pod.termination_grace_period_seconds = Some(i64::try_from(whole).unwrap_or(i64::MAX));
    }
    if let Some(signal) = &ctx.svc.stop_signal
        && *signal.value() != StopSignal::Term
    {
        out.warnings.push(format!(
            "{}: stop_signal: `{}` cannot be set in Kubernetes (the kubelet sends SIGTERM, then SIGKILL after terminationGracePeriodSeconds): make the process stop on SIGTERM, or set STOPSIGNAL in its image",
            ctx.name,
            signal.text()
        ));
    }
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
    out: &mut Rendered,
) -> Result<Object, RenderError> {
    let mut pod_meta = ObjectMeta {
        labels: Some(ctx.selector()),
        ..ObjectMeta::default()
    };
    add_user_labels(ctx, &mut pod_meta);
    let mut template = PodTemplateSpec {
        metadata: Some(pod_meta),
        spec: Some(std::mem::take(pod)),
    };
    let mut metadata = ctx.meta(&ctx.k8s_name);
    add_user_labels(ctx, &mut metadata);
    for k in ctx.svc.labels.keys().filter(|k| !is_label_key(k)) {
        out.warnings.push(format!(
            "{}: labels.{k}: not a Kubernetes label or annotation key ([PREFIX/]NAME, NAME at most 63 of [A-Za-z0-9._-]); left out",
            ctx.name
        ));
    }
    let selector = LabelSelector {
        match_labels: Some(ctx.selector()),
        ..LabelSelector::default()
    };
    warn_untranslated_deploy(ctx, out);
    let autoscaled = ctx
        .svc
        .x_cove
        .as_ref()
        .is_some_and(|x| x.autoscale.is_some());
    let replicas = (!autoscaled).then(|| i32::try_from(ctx.svc.replicas()).unwrap_or(i32::MAX));
    Ok(match kind(ctx.app, ctx.name) {
        Kind::Deployment => Deployment {
            metadata,
            spec: Some(DeploymentSpec {
                replicas,
                selector,
                template,
                strategy: strategy(ctx),
                ..DeploymentSpec::default()
            }),
            status: None,
        }
        .into(),
        Kind::StatefulSet => StatefulSet {
            metadata,
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
            let (policy, backoff) = job_restart(ctx, out);
            if let Some(spec) = template.spec.as_mut() {
                spec.restart_policy = Some(policy.into());
            }
            Job {
                metadata,
                spec: Some(JobSpec {
                    template,
                    backoff_limit: Some(backoff),
                    ..JobSpec::default()
                }),
                status: None,
            }
            .into()
        }
    })
}

/// The Kubernetes default of a Job's backoffLimit.
const DEFAULT_BACKOFF: i32 = 6;

/// A Job's pods' restartPolicy and its backoffLimit, from `restart`.
fn job_restart(ctx: &Ctx, out: &mut Rendered) -> (&'static str, i32) {
    match ctx.svc.restart.as_ref().map(|r| (r.value(), r.text())) {
        None | Some((Restart::No, _)) => ("Never", 0),
        Some((Restart::OnFailure { max }, _)) => (
            "OnFailure",
            max.map_or(DEFAULT_BACKOFF, |m| i32::try_from(m).unwrap_or(i32::MAX)),
        ),
        Some((Restart::Always | Restart::UnlessStopped, text)) => {
            out.warnings.push(format!(
                "{}: restart: `{text}` on a service that runs to completion (a Job, since another service waits for it to complete): it is retried on failure only, at most {DEFAULT_BACKOFF} times",
                ctx.name
            ));
            ("OnFailure", DEFAULT_BACKOFF)
        }
    }
}

/// The `deploy` fields with no Kubernetes form: one warning naming them.
fn warn_untranslated_deploy(ctx: &Ctx, out: &mut Rendered) {
    let Some(deploy) = &ctx.svc.deploy else {
        return;
    };
    let mut fields = Vec::new();
    if deploy.restart_policy.is_some() {
        fields.push("restart_policy");
    }
    if deploy.rollback_config.is_some() {
        fields.push("rollback_config");
    }
    if let Some(u) = &deploy.update_config {
        for (set, field) in [
            (u.delay.is_some(), "update_config.delay"),
            (u.failure_action.is_some(), "update_config.failure_action"),
            (u.monitor.is_some(), "update_config.monitor"),
            (
                u.max_failure_ratio.is_some(),
                "update_config.max_failure_ratio",
            ),
        ] {
            if set {
                fields.push(field);
            }
        }
    }
    if !fields.is_empty() {
        out.warnings.push(format!(
            "{}: deploy: {} not translated (a Deployment rolls out at its own pace and `cove k8s rollback` undoes a rollout; `restart` sets a Job's backoff)",
            ctx.name,
            fields.join(", ")
        ));
    }
}

/// `deploy.update_config` → a RollingUpdate strategy.
fn strategy(ctx: &Ctx) -> Option<DeploymentStrategy> {
    let update = ctx.svc.deploy.as_ref()?.update_config.as_ref()?;
    let step = match update.parallelism.unwrap_or(1) {
        0 => IntOrString::String("100%".into()),
        n => IntOrString::Int(i32::try_from(n).unwrap_or(i32::MAX)),
    };
    let zero = IntOrString::Int(0);
    let (surge, unavailable) = match update.order.as_ref().map(|o| *o.value()) {
        Some(Order::StartFirst) => (step, zero),
        None | Some(Order::StopFirst) => (zero, step),
    };
    Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    })
}

/// The service's `labels` added to `meta`: as labels where Kubernetes
/// accepts them as label keys and values, else as annotations; and its
/// `annotations` as annotations. cove's own labels (the selector) are
/// never overwritten.
pub(super) fn add_user_labels(ctx: &Ctx, meta: &mut ObjectMeta) {
    let mut annotations: BTreeMap<String, String> = meta.annotations.take().unwrap_or_default();
    // The loader gives `annotations` (a map or a `KEY=VALUE` list) as a map.
    if let Some(serde_json::Value::Object(given)) = ctx.svc.other.get("annotations") {
        for (k, v) in given {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if is_label_key(k) {
                annotations.entry(k.clone()).or_insert(v);
            }
        }
    }
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in &ctx.svc.labels {
        if labels.contains_key(k) {
            continue;
        }
        if is_label_key(k) && is_label_value(v) {
            labels.insert(k.clone(), v.clone());
        } else if is_label_key(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
}

/// A label name or value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at
/// both ends.
fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A label value: empty, or a label name.
fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// A label (and annotation) key: `[PREFIX/]NAME`, PREFIX a DNS subdomain.
fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    prefix_ok && is_label_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

    #[test]
    fn one_shots_are_jobs_with_the_backoff_of_their_restart() {
        let r = rendered(
            r#"
services:
  once:
    image: a
    restart: "no"
  retried:
    image: a
    restart: on-failure:4
  retried-default:
    image: a
    restart: on-failure
  seed:
    image: a
  always:
    image: a
    restart: always
  web:
    image: w
    depends_on:
      seed: { condition: service_completed_successfully }
      retried: { condition: service_completed_successfully }
      retried-default: { condition: service_completed_successfully }
      always: { condition: service_completed_successfully }
"#,
        );
        let backoff = |name: &str| {
            let spec = job(&r, name).spec.as_ref().unwrap();
            (
                spec.backoff_limit,
                spec.template
                    .spec
                    .as_ref()
                    .unwrap()
                    .restart_policy
                    .clone()
                    .unwrap(),
            )
        };
        assert_eq!(backoff("once"), (Some(0), "Never".into()));
        assert_eq!(backoff("retried"), (Some(4), "OnFailure".into()));
        assert_eq!(backoff("retried-default"), (Some(6), "OnFailure".into()));
        assert_eq!(backoff("seed"), (Some(0), "Never".into()));
        assert_eq!(backoff("always"), (Some(6), "OnFailure".into()));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("always: restart: `always`")),
            "{:?}",
            r.warnings
        );
        assert!(has(&r, "Deployment", "web"));
        assert!(!names(&r).iter().any(|n| n.starts_with("Pod/")));
    }

    #[test]
    fn deploy_becomes_replicas_resources_and_strategy() {
        let r = rendered(
            r#"
services:
  start:
    image: a
    deploy:
      replicas: 4
      resources:
        limits: { cpus: "1.5", memory: 512M, pids: 100 }
        reservations: { cpus: "2", memory: "1000" }
      update_config: { parallelism: 2, order: start-first }
  stop:
    image: a
    deploy:
      update_config: { parallelism: 3, delay: 10s }
  plain:
    image: a
"#,
        );
        let spec = deployment(&r, "start").spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(4));
        let ru = spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::Int(2)));
        assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
        let res = main(&r, "start").resources.clone().unwrap();
        let q = |m: &Option<
            BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
                 k: &str| m.as_ref().unwrap()[k].0.clone();
        assert_eq!(q(&res.limits, "cpu"), "1500m");
        assert_eq!(q(&res.limits, "memory"), "512Mi");
        assert_eq!(q(&res.requests, "cpu"), "2");
        assert_eq!(q(&res.requests, "memory"), "1000");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("start: deploy.resources.limits.pids")),
            "{:?}",
            r.warnings
        );

        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("stop: deploy: update_config.delay not translated")),
            "{:?}",
            r.warnings
        );
        let ru = deployment(&r, "stop")
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .clone()
            .unwrap();
        let ru = ru.rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::Int(0)));
        assert_eq!(ru.max_unavailable, Some(IntOrString::Int(3)));

        let spec = deployment(&r, "plain").spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.strategy, None);
        assert_eq!(main(&r, "plain").resources, None);
    }

    #[test]
    fn labels_grace_user_and_stop_signal() {
        let r = rendered(
            r#"
services:
  a:
    image: a
    labels:
      com.example.team: payments
      com.example.description: "Pays the bills"
      "bad key!": x
      cove.dev/service: not-this
    annotations:
      com.example/owner: alice
      note: two words
    stop_grace_period: 1500ms
    user: "1000:2000"
    stop_signal: SIGINT
  b:
    image: b
    user: postgres
    stop_signal: SIGTERM
"#,
        );
        let d = deployment(&r, "a");
        let labels = d.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["com.example.team"], "payments");
        assert_eq!(
            labels[crate::SERVICE_LABEL],
            "a",
            "cove's selector label is kept"
        );
        let annotations = d.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["com.example.description"], "Pays the bills");
        // Compose's `annotations` stay annotations, on the pods too.
        assert_eq!(annotations["com.example/owner"], "alice");
        assert_eq!(annotations["note"], "two words");
        let template = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
        assert_eq!(
            template.labels.as_ref().unwrap()["com.example.team"],
            "payments"
        );
        assert_eq!(template.annotations.as_ref().unwrap()["note"], "two words");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("a: labels.bad key!")),
            "{:?}",
            r.warnings
        );

        let spec = crate::render::testing::pod(&r, "a");
        assert_eq!(spec.termination_grace_period_seconds, Some(2));
        let sc = main(&r, "a").security_context.clone().unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(1000), Some(2000)));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("a: stop_signal: `SIGINT`"))
        );

        assert_eq!(main(&r, "b").security_context, None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("b: user: `postgres` is a name"))
        );
        assert!(!r.warnings.iter().any(|w| w.starts_with("b: stop_signal")));
    }
}
