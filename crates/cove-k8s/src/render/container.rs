//! The service's container: image, command, environment, ports.

use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar};

use super::{Ctx, RenderError};
use crate::names::dns_label;

pub(super) fn container(ctx: &Ctx) -> Result<Container, RenderError> {
    let svc = ctx.svc;
    Ok(Container {
        name: ctx.k8s_name.clone(),
        image: Some(image(ctx)?),
        // Compose's entrypoint replaces the image's ENTRYPOINT (command in
        // Kubernetes); its command replaces CMD (args).
        command: svc.entrypoint.clone(),
        args: svc.command.clone(),
        env: env(ctx),
        ports: ports(ctx),
        working_dir: svc.working_dir.clone(),
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
/// by `environment`'s, as in Compose), in the file's order.
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

/// The ports the container listens on: `ports` targets and `expose`.
pub(super) fn ports(ctx: &Ctx) -> Option<Vec<ContainerPort>> {
    let mut out: Vec<ContainerPort> = Vec::new();
    let mut add = |port: u16, protocol: &str| {
        let protocol = protocol.to_ascii_uppercase();
        if !out.iter().any(|p| {
            p.container_port == i32::from(port) && p.protocol.as_deref() == Some(&protocol)
        }) {
            out.push(ContainerPort {
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
    (!out.is_empty()).then_some(out)
}
