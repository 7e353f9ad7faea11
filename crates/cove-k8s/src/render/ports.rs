//! The Service that makes a service reachable by its Compose name.

use k8s_openapi::api::core::v1::{PodSpec, Service, ServicePort, ServiceSpec};

use super::{Ctx, Rendered};

/// A Service named like the service, with one port per container port
/// (the container port, never the published host port).
pub(super) fn service(ctx: &Ctx, pod: &PodSpec, out: &mut Rendered) {
    let ports: Vec<ServicePort> = pod
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| {
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            ServicePort {
                name: Some(format!(
                    "{}-{}",
                    protocol.to_ascii_lowercase(),
                    p.container_port
                )),
                port: p.container_port,
                protocol: Some(protocol),
                ..ServicePort::default()
            }
        })
        .collect();
    if ports.is_empty() {
        return;
    }
    out.objects.push(
        Service {
            metadata: ctx.meta(&ctx.k8s_name),
            spec: Some(ServiceSpec {
                selector: Some(ctx.selector()),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            status: None,
        }
        .into(),
    );
}
