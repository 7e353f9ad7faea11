//! `x-cove.autoscale` → HorizontalPodAutoscaler (autoscaling/v2).
//!
//! `min`/`max` → minReplicas/maxReplicas; `min: 0` is refused (an HPA
//! cannot scale to zero: minReplicas 0 needs the alpha HPAScaleToZero
//! gate). `scale_up_after`/`scale_down_after` → the stabilization
//! windows of `behavior.scaleUp`/`scaleDown`.
//!
//! The metric: cove's gateway scales on in-flight requests
//! (`target_concurrency`) or requests per second (`target_rps`); a
//! cluster has no such built-in metric (it would need a custom metrics
//! adapter serving one, which most clusters lack, and an HPA whose metric
//! is missing never scales). So the HPA targets 80% CPU utilisation of
//! the pods' CPU requests (`deploy.resources.reservations.cpus`), and
//! says so in a warning when the file set a request target; a warning
//! too when the service reserves no CPU (utilisation is then unknown).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

use super::{Ctx, RenderError, Rendered};
use crate::Object;

/// The CPU utilisation (% of the request) the HPA keeps pods at.
pub const CPU_TARGET_PERCENT: i32 = 80;

pub(super) fn service(ctx: &Ctx, workload: &Object, out: &mut Rendered) -> Result<(), RenderError> {
    let Some(auto) = ctx.svc.x_cove.as_ref().and_then(|x| x.autoscale.as_ref()) else {
        return Ok(());
    };
    if auto.min == 0 {
        return Err(RenderError::new(
            ctx.name,
            "x-cove.autoscale.min",
            "is 0: a HorizontalPodAutoscaler cannot scale to zero",
            "set `min: 1` (or more); scale to zero is cove's gateway's, not Kubernetes'",
        ));
    }
    if auto.max < auto.min {
        return Err(RenderError::new(
            ctx.name,
            "x-cove.autoscale.max",
            format!("is {}, below `min` ({})", auto.max, auto.min),
            "make `max` at least `min`",
        ));
    }
    if !matches!(workload, Object::Deployment(_) | Object::StatefulSet(_)) {
        out.warnings.push(format!(
            "{}: x-cove.autoscale: a {} does not scale; left out",
            ctx.name,
            workload.kind()
        ));
        return Ok(());
    }
    let lost: Vec<String> = [
        auto.target_concurrency
            .map(|v| format!("target_concurrency: {v}")),
        auto.target_rps.map(|v| format!("target_rps: {v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !lost.is_empty() {
        out.warnings.push(format!(
            "{}: x-cove.autoscale: {} has no built-in Kubernetes metric; the HorizontalPodAutoscaler targets {CPU_TARGET_PERCENT}% CPU utilisation instead",
            ctx.name,
            lost.join(", ")
        ));
    }
    let reserves_cpu = ctx
        .svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref()?.reservations.as_ref()?.cpus)
        .is_some();
    if !reserves_cpu {
        out.warnings.push(format!(
            "{}: x-cove.autoscale: the service reserves no CPU (deploy.resources.reservations.cpus), so its CPU utilisation is unknown and the autoscaler does not scale it",
            ctx.name
        ));
    }
    let window = |field: &str, text: &Option<String>| -> Result<Option<i32>, RenderError> {
        let Some(text) = text else { return Ok(None) };
        let d = cove_spec::units::parse_duration(text).map_err(|e| {
            RenderError::new(ctx.name, field, e, "write a duration such as `30s` or `5m`")
        })?;
        let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        // The API's maximum: one hour.
        Ok(Some(whole.min(3600) as i32))
    };
    let up = window("x-cove.autoscale.scale_up_after", &auto.scale_up_after)?;
    let down = window("x-cove.autoscale.scale_down_after", &auto.scale_down_after)?;
    let rules = |w: Option<i32>| {
        w.map(|s| HPAScalingRules {
            stabilization_window_seconds: Some(s),
            ..HPAScalingRules::default()
        })
    };
    let behavior = (up.is_some() || down.is_some()).then(|| HorizontalPodAutoscalerBehavior {
        scale_up: rules(up),
        scale_down: rules(down),
    });
    out.objects.push(
        HorizontalPodAutoscaler {
            metadata: ctx.meta(&ctx.k8s_name),
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some(workload.api_version().into()),
                    kind: workload.kind().into(),
                    name: ctx.k8s_name.clone(),
                },
                min_replicas: Some(i32::try_from(auto.min).unwrap_or(i32::MAX)),
                max_replicas: i32::try_from(auto.max).unwrap_or(i32::MAX),
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".into(),
                        target: MetricTarget {
                            type_: "Utilization".into(),
                            average_utilization: Some(CPU_TARGET_PERCENT),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                }]),
                behavior,
            }),
            status: None,
        }
        .into(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

    #[test]
    fn autoscale_becomes_an_hpa() {
        let r = rendered(
            r#"
services:
  api:
    image: api
    deploy:
      replicas: 3
      resources:
        reservations: { cpus: "0.25", memory: 64M }
    x-cove:
      autoscale: { min: 2, max: 5, target_concurrency: 10, scale_down_after: 2m }
"#,
        );
        let hpa = hpa(&r, "api");
        let spec = hpa.spec.as_ref().unwrap();
        assert_eq!(spec.min_replicas, Some(2));
        assert_eq!(spec.max_replicas, 5);
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "api");
        assert_eq!(
            spec.scale_target_ref.api_version.as_deref(),
            Some("apps/v1")
        );
        let m = &spec.metrics.as_ref().unwrap()[0];
        assert_eq!(
            m.resource.as_ref().unwrap().target.average_utilization,
            Some(CPU_TARGET_PERCENT)
        );
        let behavior = spec.behavior.as_ref().unwrap();
        assert_eq!(
            behavior
                .scale_down
                .as_ref()
                .unwrap()
                .stabilization_window_seconds,
            Some(120)
        );
        assert_eq!(behavior.scale_up, None);
        // The HPA owns replicas.
        assert_eq!(deployment(&r, "api").spec.as_ref().unwrap().replicas, None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("target_concurrency: 10 has no built-in Kubernetes metric")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn min_zero_is_refused_with_a_hint() {
        let e = try_render(
            "services:\n  api:\n    image: api\n    x-cove: { autoscale: { min: 0, max: 3 } }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.service, "api");
        assert_eq!(e.field, "x-cove.autoscale.min");
        assert!(e.hint.contains("min: 1"), "{e}");
    }
}
