//! `x-cove.routes` → Ingress.
//!
//! Only explicit routes become Ingress rules: a service without `routes`
//! (whose default route on cove's gateway is `SERVICE.localhost`) and one
//! with `routes: []` get none, since a `.localhost` host means nothing to
//! a cluster's ingress; write the routes it should have. Published ports
//! become nothing either (no hostPort): the Service is the way in inside
//! the cluster, an Ingress from outside.
//!
//! A route → a rule: `host` (none: any host), `path` (default `/`) as a
//! Prefix path, to the Service's `port` (default: its first port). What
//! Ingress itself cannot say is said with annotations of ingress-nginx
//! (the `nginx.ingress.kubernetes.io/` prefix; other controllers ignore
//! them): `strip_prefix` → a regex path with `rewrite-target: /$2`;
//! `protocol: grpc` → `backend-protocol: GRPC`; `timeout` →
//! `proxy-read-timeout`; `max_body` → `proxy-body-size`. Annotations hold
//! for a whole Ingress, so routes that differ in them get an Ingress each
//! (`NAME`, `NAME-2`, … in the routes' order). `protocol: tcp` routes have
//! no Ingress form (Ingress is HTTP only): a warning, left out.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};

use cove_spec::xcove::{Route, RouteProtocol};

use super::{Ctx, RenderError, Rendered, container};
use crate::names::dns_label;

/// The prefix of ingress-nginx's annotations.
pub const NGINX: &str = "nginx.ingress.kubernetes.io";

pub(super) fn service(ctx: &Ctx, out: &mut Rendered) -> Result<(), RenderError> {
    let Some(routes) = ctx.svc.x_cove.as_ref().and_then(|x| x.routes.as_ref()) else {
        return Ok(());
    };
    let first_port = container::ports(ctx, out).and_then(|p| p.first().map(|p| p.container_port));
    // Ingresses by their annotations, in the order of their first route.
    let mut groups: Vec<(BTreeMap<String, String>, Vec<IngressRule>)> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        if route.protocol == Some(RouteProtocol::Tcp) {
            out.warnings.push(format!(
                "{}: x-cove.routes[{i}]: a tcp route has no Ingress form (Ingress is HTTP only); left out: expose it with a Service of type LoadBalancer or NodePort",
                ctx.name
            ));
            continue;
        }
        let Some(port) = route.port.map(i32::from).or(first_port) else {
            return Err(RenderError::new(
                ctx.name,
                &format!("x-cove.routes[{i}]"),
                "the route has no port: the service listens on none",
                "add `port: N` to the route, or `expose: [N]` to the service",
            ));
        };
        let (annotations, path) = route_form(route);
        let path = HTTPIngressPath {
            path: Some(path.0),
            path_type: path.1.into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: ctx.k8s_name.clone(),
                    port: Some(ServiceBackendPort {
                        number: Some(port),
                        ..ServiceBackendPort::default()
                    }),
                }),
                ..IngressBackend::default()
            },
        };
        let rules = match groups.iter_mut().find(|(a, _)| *a == annotations) {
            Some((_, rules)) => rules,
            None => {
                groups.push((annotations, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        match rules.iter_mut().find(|r| r.host == route.host) {
            Some(rule) => {
                if let Some(http) = rule.http.as_mut() {
                    http.paths.push(path);
                }
            }
            None => rules.push(IngressRule {
                host: route.host.clone(),
                http: Some(HTTPIngressRuleValue { paths: vec![path] }),
            }),
        }
    }
    for (n, (annotations, rules)) in groups.into_iter().enumerate() {
        let name = if n == 0 {
            ctx.k8s_name.clone()
        } else {
            dns_label(&format!("{}-{}", ctx.k8s_name, n + 1))
        };
        let mut metadata = ctx.meta(&name);
        if !annotations.is_empty() {
            metadata.annotations = Some(annotations);
        }
        out.objects.push(
            Ingress {
                metadata,
                spec: Some(IngressSpec {
                    rules: Some(rules),
                    ..IngressSpec::default()
                }),
                status: None,
            }
            .into(),
        );
    }
    Ok(())
}

/// A route's annotations and its path (path, pathType).
fn route_form(route: &Route) -> (BTreeMap<String, String>, (String, &'static str)) {
    let mut a = BTreeMap::new();
    let path = route.path.clone().unwrap_or_else(|| "/".into());
    let prefix = path.trim_end_matches('/');
    let path = if route.strip_prefix == Some(true) && !prefix.is_empty() {
        a.insert(format!("{NGINX}/use-regex"), "true".into());
        a.insert(format!("{NGINX}/rewrite-target"), "/$2".into());
        (format!("{prefix}(/|$)(.*)"), "ImplementationSpecific")
    } else {
        (path, "Prefix")
    };
    if route.protocol == Some(RouteProtocol::Grpc) {
        a.insert(format!("{NGINX}/backend-protocol"), "GRPC".into());
    }
    if let Some(t) = &route.timeout {
        let d = t.value().0;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        a.insert(format!("{NGINX}/proxy-read-timeout"), secs.to_string());
    }
    if let Some(size) = &route.max_body {
        a.insert(
            format!("{NGINX}/proxy-body-size"),
            size.value().0.to_string(),
        );
    }
    (a, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

    fn paths(i: &Ingress) -> Vec<(Option<String>, String, String, i32)> {
        i.spec
            .as_ref()
            .unwrap()
            .rules
            .iter()
            .flatten()
            .flat_map(|r| {
                r.http.as_ref().unwrap().paths.iter().map(|p| {
                    let svc = p.backend.service.as_ref().unwrap();
                    (
                        r.host.clone(),
                        p.path.clone().unwrap(),
                        svc.name.clone(),
                        svc.port.as_ref().unwrap().number.unwrap(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn routes_become_ingress_rules() {
        let r = rendered(
            r#"
services:
  web:
    image: web
    ports: ["8080:80"]
    x-cove:
      routes:
        - { host: app.example.test }
        - { host: app.example.test, path: /static, port: 81 }
        - { host: api.example.test, path: /api/, strip_prefix: true }
        - { host: grpc.example.test, protocol: grpc }
        - { protocol: tcp, listen: "127.0.0.1:9000" }
  default:
    image: d
    ports: ["80:80"]
  none:
    image: n
    ports: ["81:80"]
    x-cove: { routes: [] }
"#,
        );
        let web = ingress(&r, "web");
        assert_eq!(web.metadata.annotations, None);
        assert_eq!(
            paths(web),
            vec![
                (
                    Some("app.example.test".into()),
                    "/".into(),
                    "web".into(),
                    80
                ),
                (
                    Some("app.example.test".into()),
                    "/static".into(),
                    "web".into(),
                    81
                ),
            ]
        );
        assert_eq!(
            web.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
                .http
                .as_ref()
                .unwrap()
                .paths[0]
                .path_type,
            "Prefix"
        );
        let strip = ingress(&r, "web-2");
        assert_eq!(paths(strip)[0].1, "/api(/|$)(.*)");
        let a = strip.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[&format!("{NGINX}/rewrite-target")], "/$2");
        let grpc = ingress(&r, "web-3");
        assert_eq!(
            grpc.metadata.annotations.as_ref().unwrap()[&format!("{NGINX}/backend-protocol")],
            "GRPC"
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("web: x-cove.routes[4]: a tcp route"))
        );
        assert!(!names(&r).iter().any(|n| n.starts_with("Ingress/web-4")));
        // No routes key, or routes: [] → no Ingress.
        assert!(!has(&r, "Ingress", "default"));
        assert!(!has(&r, "Ingress", "none"));
    }
}
