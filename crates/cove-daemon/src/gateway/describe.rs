//! What `cove routes` shows of a plan's gateway.

use std::net::SocketAddr;

use cove_runtime::plan::Plan;
use cove_runtime::routes::Protocol;

use super::local_ca_dir;
use crate::api::{RouteInfo, Routes};

/// The routes of `plan`, with each one's targets when the gateway runs.
pub fn describe(plan: &Plan, targets: Option<&[Vec<SocketAddr>]>) -> Routes {
    let g = &plan.gateway;
    let routes: Vec<RouteInfo> = g
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| RouteInfo {
            protocol: r.protocol.into(),
            host: r.host.clone().unwrap_or_default(),
            path: if r.protocol == Protocol::Tcp {
                String::new()
            } else {
                r.path.clone()
            },
            strip_prefix: r.strip_prefix,
            listen: r.listen.map(|l| l.to_string()).unwrap_or_default(),
            url: match (r.listen, &r.host) {
                (Some(l), _) => format!("tcp://{l}"),
                (None, Some(h)) => format!("http://{h}:{}{}", g.listen.port(), r.path),
                (None, None) => format!("http://{}{}", g.listen, r.path),
            },
            service: r.service.clone(),
            port: r.port,
            internal: r.internal,
            targets: targets
                .and_then(|t| t.get(i))
                .map(|t| t.iter().map(SocketAddr::to_string).collect())
                .unwrap_or_default(),
        })
        .collect();
    Routes {
        url: if routes.is_empty() {
            String::new()
        } else {
            format!("http://{}", g.listen)
        },
        running: targets.is_some(),
        tls_url: g
            .tls
            .as_ref()
            .filter(|_| !routes.is_empty())
            .map(|t| format!("https://{}", t.listen))
            .unwrap_or_default(),
        ca: g
            .tls
            .as_ref()
            .filter(|t| t.certificates.is_empty())
            .map(|_| local_ca_dir().join("ca.pem").display().to_string())
            .unwrap_or_default(),
        routes,
    }
}
