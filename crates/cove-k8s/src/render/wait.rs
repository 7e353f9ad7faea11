//! `depends_on` → init containers that wait.
//!
//! One init container per dependency, running cove itself
//! (`cove k8s wait-for`, image [`Options::cove_image`](super::Options),
//! default [`default_cove_image`]):
//!
//! - `service_started` and `service_healthy` → `--tcp SERVICE:PORT` for
//!   each TCP port of the dependency's Service: a connection through a
//!   Service reaches only ready endpoints (readiness probes are the
//!   healthcheck), so it succeeds once a pod of the dependency is ready;
//! - `service_completed_successfully` → `--job NAME`: the dependency is a
//!   Job (see `workload::kind`); the waiting pod reads it through the API,
//!   so the app gets a ServiceAccount, a Role that may `get` those Jobs
//!   and a RoleBinding, and the pod runs as that ServiceAccount.
//!
//! A dependency with no TCP port cannot be waited for by connecting: a
//! warning says it is not waited for (add `expose`). A dependency that
//! is not in the app (disabled by a profile, `required: false`) is not
//! waited for either.

use k8s_openapi::api::core::v1::{Container, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use cove_spec::model::Condition;

use super::{Ctx, RenderError, Rendered, container};
use crate::names::dns_label;
use crate::{Object, PROJECT_LABEL};

/// Where the image of cove keeps the binary the init containers run.
pub const COVE_BINARY: &str = "/cove";

/// The image of cove the init containers run when `--cove-image` is not
/// given: this version's.
pub fn default_cove_image() -> String {
    format!("ghcr.io/cove-dev/cove:{}", env!("CARGO_PKG_VERSION"))
}

pub(super) fn init_containers(
    ctx: &Ctx,
    pod: &mut PodSpec,
    out: &mut Rendered,
) -> Result<Vec<Container>, RenderError> {
    let image = ctx
        .opts
        .cove_image
        .clone()
        .unwrap_or_else(default_cove_image);
    let mut init = Vec::new();
    for (dep, d) in &ctx.svc.depends_on {
        if !ctx.app.services.contains_key(dep) {
            continue;
        }
        let target = dns_label(dep);
        let mut args: Vec<String> = vec![COVE_BINARY.into(), "k8s".into(), "wait-for".into()];
        match d.condition {
            Condition::ServiceCompletedSuccessfully => {
                args.extend(["--job".into(), target.clone()]);
                pod.service_account_name = Some(rbac(ctx, out));
            }
            Condition::ServiceStarted | Condition::ServiceHealthy => {
                let dep_ctx = Ctx::new(ctx.app, ctx.opts, dep);
                let ports: Vec<i32> = container::ports(&dep_ctx, out)
                    .into_iter()
                    .flatten()
                    .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                    .map(|p| p.container_port)
                    .collect();
                if ports.is_empty() {
                    out.warnings.push(format!(
                        "{}: depends_on.{dep}: {dep:?} listens on no TCP port, so the pod cannot wait for it and starts at once: add `expose: [PORT]` to {dep:?}",
                        ctx.name
                    ));
                    continue;
                }
                for port in ports {
                    args.extend(["--tcp".into(), format!("{target}:{port}")]);
                }
            }
        }
        init.push(Container {
            name: dns_label(&format!("wait-{target}")),
            image: Some(image.clone()),
            command: Some(args),
            ..Container::default()
        });
    }
    Ok(init)
}

/// The ServiceAccount of the pods that wait for Jobs (rendered once per
/// app, with its Role and RoleBinding); its name.
fn rbac(ctx: &Ctx, out: &mut Rendered) -> String {
    let name = dns_label(&format!("{}-wait-for-jobs", dns_label(&ctx.app.name)));
    let exists = out.objects.iter().any(|o| {
        matches!(o, Object::ServiceAccount(_)) && o.metadata().name.as_ref() == Some(&name)
    });
    if exists {
        return name;
    }
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: ctx.opts.namespace.clone(),
        labels: Some(
            [
                (PROJECT_LABEL.to_string(), dns_label(&ctx.app.name)),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "cove".to_string(),
                ),
            ]
            .into(),
        ),
        ..ObjectMeta::default()
    };
    // The Jobs anything in the app waits for, in the file's order.
    let jobs: Vec<String> = ctx
        .app
        .services
        .keys()
        .filter(|job| {
            ctx.app.services.values().any(|s| {
                s.depends_on
                    .get(*job)
                    .is_some_and(|d| d.condition == Condition::ServiceCompletedSuccessfully)
            })
        })
        .map(|job| dns_label(job))
        .collect();
    out.objects.push(
        ServiceAccount {
            metadata: meta.clone(),
            ..ServiceAccount::default()
        }
        .into(),
    );
    out.objects.push(
        Role {
            metadata: meta.clone(),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec!["batch".into()]),
                resources: Some(vec!["jobs".into()]),
                resource_names: Some(jobs),
                verbs: vec!["get".into()],
                ..PolicyRule::default()
            }]),
        }
        .into(),
    );
    out.objects.push(
        RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: name.clone(),
                namespace: ctx.opts.namespace.clone(),
                ..Subject::default()
            }]),
        }
        .into(),
    );
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

    #[test]
    fn depends_on_becomes_init_containers_that_wait() {
        let r = rendered(
            r#"
services:
  web:
    image: web
    depends_on:
      db: { condition: service_healthy }
      cache: { condition: service_started }
      migrate: { condition: service_completed_successfully }
      worker: { condition: service_started }
  db:
    image: postgres:16
  cache:
    image: example/cache
    expose: ["6379", "6380", "53/udp"]
  migrate:
    image: example/migrate
  worker:
    image: example/worker
"#,
        );
        let pod = pod(&r, "web");
        let init = pod.init_containers.clone().unwrap();
        let commands: Vec<Vec<String>> = init.iter().map(|c| c.command.clone().unwrap()).collect();
        let wait = |rest: &[&str]| -> Vec<String> {
            ["/cove", "k8s", "wait-for"]
                .iter()
                .chain(rest)
                .map(|s| s.to_string())
                .collect()
        };
        assert_eq!(
            commands,
            vec![
                wait(&["--tcp", "db:5432"]),
                wait(&["--tcp", "cache:6379", "--tcp", "cache:6380"]),
                wait(&["--job", "migrate"]),
            ]
        );
        assert_eq!(init[0].name, "wait-db");
        assert_eq!(
            init[0].image.as_deref(),
            Some(default_cove_image().as_str())
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("web: depends_on.worker: \"worker\" listens on no TCP port")),
            "{:?}",
            r.warnings
        );
        // The Job it waits for, and the API access to read it.
        assert!(has(&r, "Job", "migrate"), "{:?}", names(&r));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("app-wait-for-jobs")
        );
        let role = r
            .objects
            .iter()
            .find_map(|o| match o {
                Object::Role(r) => Some(r),
                _ => None,
            })
            .unwrap();
        let rule = &role.rules.as_ref().unwrap()[0];
        assert_eq!(rule.verbs, ["get"]);
        assert_eq!(rule.resources.as_deref(), Some(&["jobs".to_string()][..]));
        assert_eq!(
            rule.resource_names.as_deref(),
            Some(&["migrate".to_string()][..])
        );
        assert!(has(&r, "RoleBinding", "app-wait-for-jobs"));
        assert!(has(&r, "ServiceAccount", "app-wait-for-jobs"));
        // Services that wait for nothing have no init containers.
        assert_eq!(super::super::testing::pod(&r, "db").init_containers, None);
    }

    #[test]
    fn the_cove_image_is_an_option() {
        let app = load_with(
            "services:\n  a:\n    image: a\n    depends_on: [b]\n  b:\n    image: b\n    expose: [\"1\"]\n",
            &[],
        );
        let opts = crate::Options {
            cove_image: Some("reg.test/cove@sha256:abc".into()),
            ..crate::Options::default()
        };
        let r = crate::render(&app, &opts).unwrap();
        let init = pod(&r, "a").init_containers.clone().unwrap();
        assert_eq!(init[0].image.as_deref(), Some("reg.test/cove@sha256:abc"));
    }
}
