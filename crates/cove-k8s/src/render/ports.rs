//! The Service that makes a service reachable by its Compose name.
//!
//! One Service per Compose service that listens on a port, named
//! [`dns_label`](crate::names::dns_label) of its name, with one port per container port: the
//! container port (never the published host port), named `tcp-N` /
//! `udp-N`, so that TCP and UDP on one name stay one Service. Container
//! ports come from `ports` targets, `expose`, the recipe's port, and the
//! ports other services name it with ([`referenced_ports`]).
//!
//! A service other services name (in their environment or command) but
//! that listens on no known port gets no Service, and a warning saying to
//! add `expose`. A Compose name that is not a DNS-1123 label (`front_end`)
//! gets a Service under another name (`front-end-…`); the environment
//! values that name it are not rewritten (cove cannot tell a host name
//! from other text): a warning names each such variable.

use k8s_openapi::api::core::v1::{PodSpec, Service, ServicePort, ServiceSpec};

use std::collections::HashMap;

use super::{Ctx, Rendered, workload};

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
    warn_names(ctx, out);
    if ports.is_empty() {
        if let Some((other, var)) = mentions_by_others(ctx, out).into_iter().next() {
            out.warnings.push(format!(
                "{}: named by service {other:?} ({var}) but listens on no known port, so it gets no Service: add `expose: [PORT]` to it",
                ctx.name
            ));
        }
        return;
    }
    let mut metadata = ctx.meta(&ctx.k8s_name);
    workload::add_user_labels(ctx, &mut metadata);
    out.objects.push(
        Service {
            metadata,
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

/// Where the app's services name hosts (in environment values, commands
/// and entrypoints), by host name: built once per render (kept in
/// [`Rendered`]), so that finding who names a service is a lookup, not a
/// scan of every other service (500 services: 250 000 scans).
#[derive(Debug, Clone, Default)]
pub(crate) struct References(HashMap<String, Vec<Mention>>);

#[derive(Debug, Clone)]
struct Mention {
    /// The service whose text it is.
    service: String,
    /// `environment.VAR`, `command` or `entrypoint`.
    field: String,
    port: Option<u16>,
}

impl References {
    fn of(app: &cove_spec::App) -> References {
        let mut by_host: HashMap<String, Vec<Mention>> = HashMap::new();
        for (name, svc) in &app.services {
            let env = svc
                .environment
                .iter()
                .filter_map(|(k, v)| Some((format!("environment.{k}"), v.as_deref()?)));
            let args = [("command", &svc.command), ("entrypoint", &svc.entrypoint)]
                .into_iter()
                .flat_map(|(f, a)| a.iter().flatten().map(move |t| (f.to_string(), t.as_str())));
            for (field, text) in env.chain(args) {
                for (host, port) in hosts(text) {
                    let list = by_host.entry(host.to_string()).or_default();
                    // One entry per field and port is enough.
                    if !list
                        .iter()
                        .any(|m| m.service == *name && m.field == field && m.port == port)
                    {
                        list.push(Mention {
                            service: name.clone(),
                            field: field.clone(),
                            port,
                        });
                    }
                }
            }
        }
        References(by_host)
    }
}

/// Who names `ctx`'s service, from the render's [`References`].
fn named_by(ctx: &Ctx, out: &mut Rendered) -> Vec<Mention> {
    let refs = out
        .references
        .get_or_insert_with(|| References::of(ctx.app));
    refs.0
        .get(ctx.name)
        .into_iter()
        .flatten()
        .filter(|m| m.service != ctx.name)
        .cloned()
        .collect()
}

/// The ports other services name this one with: `NAME:PORT` in their
/// environment values, command or entrypoint (`db:5432`,
/// `mysql://u@mysql:3306/db`, `redis-node-0:6379,redis-node-1:6379`).
pub(super) fn referenced_ports(ctx: &Ctx, out: &mut Rendered) -> Vec<u16> {
    let mut ports = Vec::new();
    for port in named_by(ctx, out).into_iter().filter_map(|m| m.port) {
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// Where other services name this one: (service, `environment.VAR`,
/// `command` or `entrypoint`), once each.
fn mentions_by_others(ctx: &Ctx, out: &mut Rendered) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for m in named_by(ctx, out) {
        if !found.iter().any(|(s, f)| *s == m.service && *f == m.field) {
            found.push((m.service, m.field));
        }
    }
    found
}

/// A warning per environment variable of another service that names this
/// service when its Kubernetes name differs from its Compose name.
fn warn_names(ctx: &Ctx, out: &mut Rendered) {
    if ctx.k8s_name == ctx.name {
        return;
    }
    for (other, field) in mentions_by_others(ctx, out) {
        out.warnings.push(format!(
            "{other}: {field} names service {:?}, whose Kubernetes name is {:?} ({:?} is not a DNS-1123 label); the value is not rewritten: rename the service, or write {:?} there",
            ctx.name, ctx.k8s_name, ctx.name, ctx.k8s_name
        ));
    }
}

/// The host names in `text`: every maximal run of host-name characters
/// (`[A-Za-z0-9._-]`) that is not a URL scheme (`mysql://`), with the port
/// written after it (`name:PORT`), if any.
fn hosts(text: &str) -> impl Iterator<Item = (&str, Option<u16>)> {
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    text.split(move |c: char| !host_char(c))
        .filter(|run| !run.is_empty())
        .filter_map(move |run| {
            // `split` gives subslices of `text`: the run's offset.
            let end = run.as_ptr() as usize - text.as_ptr() as usize + run.len();
            let after = &text[end..];
            if after.starts_with("://") {
                return None;
            }
            let port = after.strip_prefix(':').and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let next = rest[digits.len()..].chars().next();
                // `name:5432x` is not a port.
                if next.is_some_and(|c| c.is_ascii_alphabetic()) {
                    return None;
                }
                digits.parse::<u16>().ok().filter(|p| *p != 0)
            });
            Some((run, port))
        })
}

/// Each place `text` names host `name` as a whole host name (not part of
/// a longer one), with the port written after it, if any.
#[cfg(test)]
fn mentions(text: &str, name: &str) -> Vec<Option<u16>> {
    hosts(text)
        .filter(|(h, _)| *h == name)
        .map(|(_, p)| p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::{self, has, main, names, pod, rendered};

    #[test]
    fn mentions_finds_whole_host_names_and_ports() {
        assert_eq!(mentions("db:5432", "db"), vec![Some(5432)]);
        assert_eq!(
            mentions("mysql://u@mysql:3306/db", "mysql"),
            vec![Some(3306)]
        );
        assert_eq!(
            mentions("redis-node-0:6379,redis-node-1:6379", "redis-node-0"),
            vec![Some(6379)]
        );
        assert_eq!(mentions("redis-node-01:6379", "redis-node-0"), vec![]);
        assert_eq!(mentions("http://api/x", "api"), vec![None]);
        assert_eq!(mentions("mydb:1", "db"), vec![]);
        assert_eq!(mentions("db.example.com:1", "db"), vec![]);
    }

    #[test]
    fn services_for_expose_recipes_and_names_in_other_services() {
        let r = rendered(
            r#"
services:
  web:
    image: web
    ports: ["8080:80", "53:53/udp", "53:53/tcp"]
    environment:
      DB: postgres://u:p@db:5432/x
      CACHE: cache
      NODES: redis-node-0:6379,redis-node-1:7000
  api:
    image: api
    expose: ["9000"]
  db:
    image: example/db
  cache:
    image: redis:7
  cache-init:
    image: redis:7
    restart: "no"
  redis-node-0:
    image: example/r
  redis-node-1:
    image: example/r
  lonely:
    image: lonely
    # Naming itself is no reason for a Service.
    environment: { SELF: "lonely:9999" }
"#,
        );
        let ports = |name: &str| -> Vec<(String, i32, String)> {
            testing::service(&r, name)
                .spec
                .as_ref()
                .unwrap()
                .ports
                .clone()
                .unwrap()
                .into_iter()
                .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
                .collect()
        };
        // The container port, not the published one; TCP and UDP of one
        // name in one Service.
        assert_eq!(
            ports("web"),
            vec![
                ("tcp-80".into(), 80, "TCP".into()),
                ("udp-53".into(), 53, "UDP".into()),
                ("tcp-53".into(), 53, "TCP".into()),
            ]
        );
        assert_eq!(ports("api"), vec![("tcp-9000".into(), 9000, "TCP".into())]);
        assert_eq!(ports("db"), vec![("tcp-5432".into(), 5432, "TCP".into())]);
        assert_eq!(
            ports("cache"),
            vec![("tcp-6379".into(), 6379, "TCP".into())]
        );
        assert_eq!(
            ports("redis-node-1"),
            vec![("tcp-7000".into(), 7000, "TCP".into())]
        );
        assert!(!has(&r, "Service", "lonely"), "{:?}", names(&r));
        // A one-shot of a recipe's image serves nothing.
        assert!(!has(&r, "Service", "cache-init"), "{:?}", names(&r));
        // No hostPort anywhere.
        for name in ["web", "api", "db"] {
            for p in main(&r, name).ports.iter().flatten() {
                assert_eq!(p.host_port, None, "{name}");
            }
        }
    }

    #[test]
    fn a_named_service_without_ports_is_a_warning() {
        let r = rendered(
            r#"
services:
  web:
    image: web
    environment: { WORKER: "http://worker/x" }
  worker:
    image: worker
"#,
        );
        assert!(!has(&r, "Service", "worker"));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("worker: named by service \"web\" (environment.WORKER)")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn names_that_are_not_labels_are_mapped_everywhere_and_warned_about() {
        let r = rendered(
            r#"
services:
  front_end:
    image: fe
    expose: ["80"]
    x-cove:
      routes: [{ host: fe.example.test }]
      autoscale: { min: 1, max: 2 }
  web:
    image: web
    environment: { FRONT: "front_end:80" }
    depends_on: [front_end]
"#,
        );
        let fe = crate::names::dns_label("front_end");
        assert_ne!(fe, "front_end");
        let svc = testing::service(&r, &fe);
        assert_eq!(
            svc.spec.as_ref().unwrap().selector.as_ref().unwrap()[crate::SERVICE_LABEL],
            fe
        );
        assert!(has(&r, "Deployment", &fe));
        let ingress = testing::ingress(&r, &fe);
        let rules = ingress.spec.as_ref().unwrap().rules.as_ref().unwrap();
        let backend = rules[0].http.as_ref().unwrap().paths[0]
            .backend
            .service
            .as_ref();
        assert_eq!(backend.unwrap().name, fe);
        let hpa = testing::hpa(&r, &fe);
        assert_eq!(hpa.spec.as_ref().unwrap().scale_target_ref.name, fe);
        // The wait targets the Service's name.
        let init = pod(&r, "web").init_containers.clone().unwrap();
        assert!(
            init[0]
                .command
                .as_ref()
                .unwrap()
                .contains(&format!("{fe}:80")),
            "{:?}",
            init[0].command
        );
        // The value is kept, and said.
        let env = main(&r, "web").env.clone().unwrap();
        assert_eq!(env[0].value.as_deref(), Some("front_end:80"));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("web: environment.FRONT names service \"front_end\"")),
            "{:?}",
            r.warnings
        );
    }
}
