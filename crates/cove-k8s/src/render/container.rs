//! The service's container: image, command, environment, ports,
//! resources, user.
//!
//! - `entrypoint` → `command`, `command` → `args` (Compose's entrypoint
//!   replaces the image's ENTRYPOINT, its command the CMD);
//! - `environment` (already holding `env_file`'s variables, overridden by
//!   `environment`'s, and interpolated from `.env`) → `env`, in order;
//! - the ports it listens on → `ports` (see [`ports`]);
//! - `deploy.resources` limits/reservations → limits/requests (`cpus`,
//!   `memory`; `pids` has no Kubernetes field: a warning);
//! - a numeric `user` (`UID[:GID]`) → `securityContext.runAsUser/Group`;
//!   a user name cannot be: a warning.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use cove_spec::model::ResourceSet;

use super::{Ctx, RenderError, Rendered};
use crate::names::dns_label;

pub(super) fn container(ctx: &Ctx, out: &mut Rendered) -> Result<Container, RenderError> {
    let svc = ctx.svc;
    Ok(Container {
        name: ctx.k8s_name.clone(),
        image: Some(image(ctx)?),
        command: svc.entrypoint.clone(),
        args: svc.command.clone(),
        env: env(ctx),
        ports: ports(ctx, out),
        working_dir: svc.working_dir.clone(),
        resources: resources(ctx, out),
        security_context: security_context(ctx, out),
        ..Container::default()
    })
}

/// The image a cluster pulls: the file's `image`, else the pushed build.
pub(super) fn image(ctx: &Ctx) -> Result<String, RenderError> {
    if let Some(pushed) = ctx.opts.pushed.get(ctx.name) {
        return Ok(pushed.clone());
    }
    if let Some(image) = &ctx.svc.image {
        return Ok(image.clone());
    }
    if ctx.svc.build.is_some() {
        let Some(registry) = &ctx.opts.registry else {
            return Err(RenderError::new(
                ctx.name,
                "build",
                "the service is built from source, and a cluster needs an image it can pull",
                "name a registry: `cove k8s render --registry HOST/PREFIX` (after `cove build --push --registry HOST/PREFIX`)",
            ));
        };
        return Ok(format!(
            "{}/{}-{}:latest",
            registry.trim_end_matches('/'),
            dns_label(&ctx.app.name),
            ctx.k8s_name
        ));
    }
    Err(RenderError::new(
        ctx.name,
        "x-cove.run",
        "the service runs natively (no `image`, no `build`), and a cluster runs images",
        "add `build:` (a Dockerfile) or `image:` to the service",
    ))
}

/// `environment` (which already holds `env_file`'s variables, overridden
/// by `environment`'s, as in Compose), in the file's order. A variable
/// without a value (`- NAME`, unset in cove's environment) is left out, as
/// Compose leaves it out of the container.
fn env(ctx: &Ctx) -> Option<Vec<EnvVar>> {
    let vars: Vec<EnvVar> = ctx
        .svc
        .environment
        .iter()
        .filter_map(|(k, v)| {
            Some(EnvVar {
                name: k.clone(),
                value: Some(v.clone()?),
                value_from: None,
            })
        })
        .collect();
    (!vars.is_empty()).then_some(vars)
}

/// The ports the container listens on: `ports` targets, `expose`, the
/// recipe's port, and the ports other services name it with
/// (`NAME:PORT` in their environment or command). Published host ports
/// are not here: nothing on the pod publishes a port on its node (no
/// `hostPort`); Services (and Ingress for routes) are the way in.
pub(super) fn ports(ctx: &Ctx, out: &mut Rendered) -> Option<Vec<ContainerPort>> {
    let referenced = super::ports::referenced_ports(ctx, out);
    let mut list: Vec<ContainerPort> = Vec::new();
    let mut add = |port: u16, protocol: &str| {
        let protocol = protocol.to_ascii_uppercase();
        if !list.iter().any(|p| {
            p.container_port == i32::from(port) && p.protocol.as_deref() == Some(&protocol)
        }) {
            list.push(ContainerPort {
                container_port: i32::from(port),
                protocol: Some(protocol),
                ..ContainerPort::default()
            });
        }
    };
    for p in &ctx.svc.ports {
        add(p.target, &p.protocol);
    }
    for e in &ctx.svc.expose {
        let (range, protocol) = e.split_once('/').unwrap_or((e, "tcp"));
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
            for port in lo..=hi.max(lo) {
                add(port, protocol);
            }
        }
    }
    for (port, protocol) in recipe_ports(ctx) {
        add(port, protocol);
    }
    for port in referenced {
        add(port, "tcp");
    }
    (!list.is_empty()).then_some(list)
}

/// The ports a recipe's image listens on ([`super::recipes::ports`]);
/// none for a one-shot (a Job runs a client of the image, as buffs'
/// `redis-cluster-init` runs redis-cli, and serves nothing).
pub(super) fn recipe_ports(ctx: &Ctx) -> Vec<(u16, &'static str)> {
    if super::workload::kind(ctx.app, ctx.name) == super::workload::Kind::Job {
        return Vec::new();
    }
    super::recipes::ports(ctx.svc)
}

/// `deploy.resources`: limits → limits, reservations → requests.
fn resources(ctx: &Ctx, out: &mut Rendered) -> Option<ResourceRequirements> {
    let res = ctx.svc.deploy.as_ref()?.resources.as_ref()?;
    let mut quantities = |set: &Option<ResourceSet>, field: &str| {
        let set = set.as_ref()?;
        if set.pids.is_some() {
            out.warnings.push(format!(
                "{}: deploy.resources.{field}.pids: Kubernetes has no per-container process limit (the kubelet's podPidsLimit is node-wide); left out",
                ctx.name
            ));
        }
        let mut q = BTreeMap::new();
        if let Some(cpus) = set.cpus {
            q.insert("cpu".to_string(), Quantity(cpu_quantity(cpus)));
        }
        if let Some(memory) = set.memory {
            q.insert("memory".to_string(), Quantity(memory_quantity(memory)));
        }
        (!q.is_empty()).then_some(q)
    };
    let limits = quantities(&res.limits, "limits");
    let requests = quantities(&res.reservations, "reservations");
    (limits.is_some() || requests.is_some()).then(|| ResourceRequirements {
        limits,
        requests,
        ..ResourceRequirements::default()
    })
}

/// CPUs as a Kubernetes quantity: whole CPUs, else millicores (at least 1m).
pub(super) fn cpu_quantity(cpus: f64) -> String {
    let milli = (cpus * 1000.0).round().max(1.0) as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes as a Kubernetes quantity, in the largest binary unit that keeps
/// it exact.
pub(super) fn memory_quantity(bytes: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// `user: UID[:GID]` → runAsUser/runAsGroup. A name cannot be: the
/// cluster does not read the image's /etc/passwd for it.
fn security_context(ctx: &Ctx, out: &mut Rendered) -> Option<SecurityContext> {
    let user = ctx.svc.user.as_deref()?;
    let (uid, gid) = user.split_once(':').unwrap_or((user, ""));
    let Ok(uid) = uid.parse::<i64>() else {
        out.warnings.push(format!(
            "{}: user: `{user}` is a name; Kubernetes takes numeric ids only (runAsUser); the image's default user runs it: write `user: UID[:GID]`",
            ctx.name
        ));
        return None;
    };
    let gid = if gid.is_empty() {
        None
    } else if let Ok(g) = gid.parse::<i64>() {
        Some(g)
    } else {
        out.warnings.push(format!(
            "{}: user: group `{gid}` is a name; Kubernetes takes numeric ids only (runAsGroup); left out",
            ctx.name
        ));
        None
    };
    Some(SecurityContext {
        run_as_user: Some(uid),
        run_as_group: gid,
        ..SecurityContext::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

    fn env_of(r: &Rendered, name: &str) -> Vec<(String, String)> {
        main(r, name)
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn environment_overrides_env_file_and_dot_env_is_interpolated() {
        let compose = r#"
services:
  web:
    image: "web:${TAG}"
    env_file: [web.env]
    environment:
      B: from-environment
      C: "${GREETING:-none}"
    command: ["serve", "--port", "${PORT}"]
"#;
        let app = load_with(
            compose,
            &[
                ("web.env", "A=from-file\nB=from-file\n"),
                (".env", "TAG=1.2.3\nGREETING=hello\nPORT=8080\n"),
            ],
        );
        let r = crate::render(&app, &crate::Options::default()).unwrap();
        let env = env_of(&r, "web");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("A").as_deref(), Some("from-file"));
        assert_eq!(get("B").as_deref(), Some("from-environment"));
        assert_eq!(get("C").as_deref(), Some("hello"));
        assert_eq!(env.iter().filter(|(n, _)| n == "B").count(), 1);
        let c = main(&r, "web");
        assert_eq!(c.image.as_deref(), Some("web:1.2.3"));
        assert_eq!(
            c.args.as_deref(),
            Some(&["serve".to_string(), "--port".into(), "8080".into()][..])
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(cpu_quantity(2.0), "2");
        assert_eq!(cpu_quantity(0.0001), "1m");
        assert_eq!(memory_quantity(64 << 20), "64Mi");
        assert_eq!(memory_quantity(3 << 30), "3Gi");
        assert_eq!(memory_quantity(1000), "1000");
    }
}
