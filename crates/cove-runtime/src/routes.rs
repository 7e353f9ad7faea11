//! The gateway's part of the plan: where it listens and which routes reach
//! which service port. Pure: the daemon turns it, with the replicas' states,
//! into the gateway's table.
//!
//! Routes come from each service's `x-cove.routes`. A service without
//! routes that declares a port (`ports`, `expose`) or an `x-cove.health`
//! HTTP probe, and is not a built-in recipe (databases, brokers), gets the
//! default route: host `SERVICE.localhost`, any path, its first port;
//! `routes: []` turns that off.
//! Browsers and curl resolve `*.localhost` to the loopback address, so
//! `http://SERVICE.localhost:2683/` works without set-up.
//!
//! A service's own address (see `ServicePlan::service_address`) forwards
//! each of its ports at layer 4, except in an app that declares
//! `x-cove.previews`: there a port that carries one of the service's HTTP
//! routes is served as HTTP (any host, any path), so that the gateway can
//! send a request carrying a preview's key (`X-Cove-Preview`) to that
//! preview's replicas. Other ports (databases, brokers, gRPC) stay TCP.
//! A project without entry routes (a preview, reached through its
//! baseline's gateway) has only those addresses: see [`GatewayPlan::entry`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cove_spec::App;
use cove_spec::xcove::RouteProtocol;

use crate::plan_error::PlanError;

/// Where the gateway listens unless `x-cove.gateway.listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2683";
/// Client connections open at once unless `x-cove.gateway.max_connections`
/// says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// The gateway of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayPlan {
    pub listen: SocketAddr,
    /// `listen` is the default, not the file's: when it is taken, the next
    /// free port above it will do.
    pub default_listen: bool,
    pub max_connections: u32,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The HTTPS listener, if any.
    pub tls: Option<TlsPlan>,
    /// What the access log keeps of query strings
    /// (`x-cove.gateway.access_log.query`, default `redact`).
    pub access_query: cove_spec::xcove::AccessLogQuery,
    /// HTTP and gRPC routes, then TCP ones, in the app's order.
    pub routes: Vec<RoutePlan>,
    /// Whether the project has entry routes. `false` (a preview): `routes`
    /// are only `internal` ones (its services' own addresses), there is no
    /// TLS listener and no metrics endpoint, and `listen` is
    /// `127.0.0.1:0` (nothing is routed there: a gateway need not bind it).
    pub entry: bool,
}

/// One route: requests matching `host` and `path` (HTTP), or connections
/// to `listen` (TCP), go to `port` of `service`'s healthy replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    pub service: String,
    /// Lower case; `None`: any host.
    pub host: Option<String>,
    /// Starts with `/`.
    pub path: String,
    pub strip_prefix: bool,
    pub port: u16,
    pub protocol: Protocol,
    /// Set for TCP routes, and for HTTP ones on a service's own address
    /// (`internal`, in an app with `x-cove.previews`).
    pub listen: Option<SocketAddr>,
    /// Upstream response timeout; `None`: the gateway's default.
    pub timeout: Option<Duration>,
    /// Largest request body; `None`: no limit.
    pub max_body: Option<u64>,
    /// A service's own address (see `ServicePlan::service_address`), not
    /// a route of the app's.
    pub internal: bool,
}

/// The gateway's HTTPS listener: the same HTTP routes, over TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    pub listen: SocketAddr,
    /// Certificate and key files (absolute), the default first; none: the
    /// local CA issues one for `local_names`.
    pub certificates: Vec<(PathBuf, PathBuf)>,
    /// `localhost`, `*.localhost`, `127.0.0.1` and each route's host.
    pub local_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
    Tcp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
    }
}

/// What the gateway's plan needs of a planned service (the plan gives
/// it: `ServicePlan::upstream`).
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    pub name: &'a str,
    /// It runs a built-in recipe: a database or a broker gets no default
    /// route.
    pub recipe: bool,
    /// Its ports (`ports`, `expose`, or its recipe's).
    pub ports: &'a [u16],
    /// Its `PORT`: the first of them, else the default.
    pub port: u16,
    /// Its own address and its address on the containers' network, if
    /// any: the gateway forwards connections there to its replicas.
    pub service_address: Option<Ipv4Addr>,
    pub bridge_address: Option<Ipv4Addr>,
}

/// The host of a service's default route: `SERVICE.localhost`, and in
/// an environment (`--env NAME`) `SERVICE.NAME.localhost`, so that the
/// environments of an app are apart on one gateway (the host's daemon
/// serves them on one listener).
pub fn default_host(service: &str, env: Option<&str>) -> String {
    let service = service.to_ascii_lowercase();
    match env {
        Some(env) => format!("{service}.{}.localhost", env.to_ascii_lowercase()),
        None => format!("{service}.localhost"),
    }
}

/// Where a gateway without entry routes listens: nothing is routed there.
const NO_ENTRY_LISTEN: &str = "127.0.0.1:0";

/// The gateway plan of `app`, whose services are planned as `services`;
/// without entry routes when `entry` is false (see [`GatewayPlan::entry`]).
/// Every problem at once (the app's routes are checked either way).
pub fn gateway(
    app: &App,
    services: &[Upstream],
    project_dir: &Path,
    entry: bool,
) -> Result<GatewayPlan, Vec<PlanError>> {
    let mut errors = Vec::new();
    let settings = app.x_cove.gateway.clone().unwrap_or_default();
    let listen = match (entry, settings.listen.as_deref()) {
        (false, _) => NO_ENTRY_LISTEN.parse().expect("a valid address"),
        (true, Some(l)) => l.0,
        (true, None) => DEFAULT_LISTEN.parse().expect("a valid address"),
    };
    let metrics = settings.metrics.as_deref().map(|l| l.0).filter(|_| entry);
    let max_connections = settings.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let previews = app.x_cove.previews.is_some();
    let mut routes = Vec::new();
    let mut own = Vec::new();
    for svc in services {
        let Some(compose) = app.services.get(svc.name) else {
            continue;
        };
        let theirs = service_routes(svc, compose, app.x_cove.env.as_deref(), &mut errors);
        // Ports that carry one of its HTTP routes: HTTP on its own
        // address too, when previews route by key.
        let http_ports: Vec<u16> = theirs
            .iter()
            .filter(|r| previews && r.protocol == Protocol::Http)
            .map(|r| r.port)
            .collect();
        own.extend(own_address_routes(svc, &http_ports));
        routes.extend(theirs);
    }
    routes.extend(own);
    for svc in services {
        if let Some(compose) = app.services.get(svc.name) {
            routes.extend(published_routes(svc, compose, &mut errors));
        }
    }
    if !entry {
        routes.retain(|r| r.internal);
    }
    let tls = settings
        .tls
        .as_ref()
        .filter(|_| entry)
        .and_then(|t| tls_plan(t, listen, &routes, project_dir, &mut errors));
    clashes(&routes, listen, &mut errors);
    if errors.is_empty() {
        Ok(GatewayPlan {
            listen,
            default_listen: entry && settings.listen.is_none(),
            max_connections,
            metrics,
            tls,
            access_query: settings
                .access_log
                .as_ref()
                .and_then(|a| a.query)
                .unwrap_or_default(),
            routes,
            entry,
        })
    } else {
        Err(errors)
    }
}

/// A problem of the project's `x-cove.gateway.tls`, about its field
/// `key`: a field only cove reads, so wrong as written (`cove config`
/// refuses it as `cove up` does).
fn tls_err(key: &str, message: String, hint: &str) -> PlanError {
    PlanError {
        service: String::new(),
        message,
        hint: hint.to_string(),
        field: Vec::new(),
        machine: false,
        written: false,
    }
    .at(&["x-cove", "gateway", "tls", key])
    .written()
}

/// The routes of `svc`: its `x-cove.routes` (values checked by the
/// loader; here, how they fit the service), else its default route (its
/// host: [`default_host`] in environment `env`).
fn service_routes(
    svc: &Upstream,
    compose: &cove_spec::model::Service,
    env: Option<&str>,
    errors: &mut Vec<PlanError>,
) -> Vec<RoutePlan> {
    let mut routes = Vec::new();
    let x = compose.x_cove.clone().unwrap_or_default();
    // Fields only cove reads: wrong as written, so `cove config` refuses
    // them as `cove up` does. `key`: the route's field it is about.
    let err = |i: usize, key: Option<&str>, message: String, hint: &str| {
        let i_s = i.to_string();
        let mut field = vec!["x-cove", "routes", i_s.as_str()];
        field.extend(key);
        PlanError {
            service: svc.name.to_string(),
            message: format!("`x-cove.routes[{i}]`: {message}"),
            hint: hint.to_string(),
            field: Vec::new(),
            machine: false,
            written: false,
        }
        .at(&field)
        .written()
    };
    let Some(own) = &x.routes else {
        let http_probe = x.health.as_ref().is_some_and(|h| h.http.is_some());
        if !svc.recipe && (!svc.ports.is_empty() || http_probe) {
            routes.push(RoutePlan {
                service: svc.name.to_string(),
                host: Some(default_host(svc.name, env)),
                path: "/".into(),
                strip_prefix: false,
                port: svc.port,
                protocol: Protocol::Http,
                listen: None,
                timeout: None,
                max_body: None,
                internal: false,
            });
        }
        return routes;
    };
    for (i, r) in own.iter().enumerate() {
        let protocol = match r.protocol {
            None | Some(RouteProtocol::Http) => Protocol::Http,
            Some(RouteProtocol::Grpc) => Protocol::Grpc,
            Some(RouteProtocol::Tcp) => Protocol::Tcp,
        };
        let port = r.port.unwrap_or(svc.port);
        if !svc.ports.is_empty() && !svc.ports.contains(&port) {
            errors.push(err(
                i,
                r.port.is_some().then_some("port"),
                format!(
                    "port {port} is not one of the service's ports ({})",
                    svc.ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "name one of its `ports` or `expose` entries, or add the port there",
            ));
        }
        // `path`, `host` and the values below were checked by the loader.
        let path = r.path.clone().unwrap_or_else(|| "/".into());
        let host = r.host.as_ref().map(|h| h.to_ascii_lowercase());
        let listen = match (protocol, r.listen.as_deref()) {
            (Protocol::Tcp, None) => {
                errors.push(err(
                    i,
                    None,
                    "a `tcp` route needs `listen`, the address it is reached on".into(),
                    "add e.g. `listen: 127.0.0.1:16379`",
                ));
                None
            }
            (Protocol::Tcp, Some(l)) => Some(l.0),
            (_, Some(_)) => {
                errors.push(err(
                    i,
                    Some("listen"),
                    "`listen` is only for `tcp` routes; HTTP routes share the gateway's address"
                        .into(),
                    "remove `listen`, or set `protocol: tcp`",
                ));
                None
            }
            (_, None) => None,
        };
        if protocol == Protocol::Tcp && (r.host.is_some() || r.path.is_some()) {
            errors.push(err(
                i,
                Some(if r.host.is_some() { "host" } else { "path" }),
                "a `tcp` route matches no host or path: it has a port of its own".into(),
                "remove `host` and `path`",
            ));
        }
        let timeout = r.timeout.as_deref().map(|t| t.0);
        let max_body = r.max_body.as_deref().map(|b| b.0);
        routes.push(RoutePlan {
            service: svc.name.to_string(),
            host,
            path,
            strip_prefix: r.strip_prefix.unwrap_or(false),
            port,
            protocol,
            listen,
            timeout,
            max_body,
            internal: false,
        });
    }
    routes
}

/// A service's own address (and a native service's address on the
/// containers' network): connections there go to its healthy replicas,
/// forwarded at layer 4, but for `http_ports`: requests there are
/// forwarded as HTTP (any host, any path, nothing stripped).
fn own_address_routes(svc: &Upstream, http_ports: &[u16]) -> Vec<RoutePlan> {
    let mut routes = Vec::new();
    for a in [svc.service_address, svc.bridge_address]
        .into_iter()
        .flatten()
    {
        for &port in svc.ports {
            routes.push(RoutePlan {
                service: svc.name.to_string(),
                host: None,
                path: "/".into(),
                strip_prefix: false,
                port,
                protocol: match http_ports.contains(&port) {
                    true => Protocol::Http,
                    false => Protocol::Tcp,
                },
                listen: Some(SocketAddr::from((a, port))),
                timeout: None,
                max_body: None,
                internal: true,
            });
        }
    }
    routes
}

/// Compose `ports` with a `published` host port: a TCP route on the
/// host's address (`host_ip`, default all), as `docker compose` binds it.
fn published_routes(
    svc: &Upstream,
    compose: &cove_spec::model::Service,
    errors: &mut Vec<PlanError>,
) -> Vec<RoutePlan> {
    let mut routes = Vec::new();
    for p in &compose.ports {
        let Some(published) = p.published.as_deref() else {
            continue;
        };
        let err = |message: String, hint: &str| PlanError {
            service: svc.name.to_string(),
            message: format!("`ports` {published}:{}: {message}", p.target),
            hint: hint.to_string(),
            field: vec!["ports".into()],
            machine: false,
            written: false,
        };
        if p.protocol != "tcp" {
            errors.push(err(
                format!("protocol `{}`: the gateway forwards TCP only", p.protocol),
                "publish it over TCP, or leave `published` out (others reach it at its address)",
            ));
            continue;
        }
        let Ok(host_port) = published.parse::<u16>() else {
            errors.push(err(
                "a range of host ports is not supported".into(),
                "publish one host port per target port, e.g. `8080:80`",
            ));
            continue;
        };
        let ip = p.host_ip.as_deref().unwrap_or("0.0.0.0");
        let Ok(ip) = ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>() else {
            errors.push(err(
                format!("`host_ip` `{ip}` is not an address"),
                "write an address such as `127.0.0.1`, or leave it out (all addresses)",
            ));
            continue;
        };
        routes.push(RoutePlan {
            service: svc.name.to_string(),
            host: None,
            path: "/".into(),
            strip_prefix: false,
            port: p.target,
            protocol: Protocol::Tcp,
            listen: Some(SocketAddr::new(ip, host_port)),
            timeout: None,
            max_body: None,
            internal: false,
        });
    }
    routes
}

/// The HTTPS listener `t`, beside the gateway's own `listen`; its names
/// are the local ones and each route's host.
fn tls_plan(
    t: &cove_spec::xcove::Tls,
    listen: SocketAddr,
    routes: &[RoutePlan],
    project_dir: &Path,
    errors: &mut Vec<PlanError>,
) -> Option<TlsPlan> {
    let tls_listen = t.listen.0;
    if tls_listen == listen && listen.port() != 0 {
        errors.push(tls_err(
            "listen",
            format!(
                "`x-cove.gateway.tls.listen` is {tls_listen}, the gateway's plain HTTP address too"
            ),
            "give HTTPS a port of its own, e.g. 2443",
        ));
    }
    let mut certificates = Vec::new();
    match (&t.cert, &t.key) {
        (Some(c), Some(k)) => {
            certificates.push((project_dir.join(c), project_dir.join(k)));
        }
        (None, None) => {}
        (c, _) => errors.push(tls_err(
            if c.is_some() { "cert" } else { "key" },
            "`x-cove.gateway.tls` needs both `cert` and `key`, or neither".into(),
            "name the key file with the certificate, or leave both out to use cove's local CA",
        )),
    }
    certificates.extend(
        t.certificates
            .iter()
            .map(|c| (project_dir.join(&c.cert), project_dir.join(&c.key))),
    );
    let mut local_names: Vec<String> =
        vec!["localhost".into(), "*.localhost".into(), "127.0.0.1".into()];
    // Each route's host by name too: OpenSSL and browsers refuse
    // a wildcard right above a top-level name (`*.localhost`).
    for r in routes {
        if let Some(h) = &r.host
            && !local_names.contains(h)
        {
            local_names.push(h.clone());
        }
    }
    Some(TlsPlan {
        listen: tls_listen,
        certificates,
        local_names,
    })
}

/// Two routes for the same requests, or the same address twice (or the
/// gateway's own).
fn clashes(routes: &[RoutePlan], listen: SocketAddr, errors: &mut Vec<PlanError>) {
    for (j, b) in routes.iter().enumerate() {
        for a in &routes[..j] {
            let clash = match (a.listen, b.listen) {
                // Port 0: each gets a port of its own.
                (Some(x), Some(y)) => x == y && x.port() != 0,
                (None, None) => a.host == b.host && same_prefix(&a.path, &b.path),
                _ => false,
            };
            if clash {
                let what = match b.listen {
                    Some(l) => format!("listens on {l}"),
                    None => format!(
                        "routes {}{}",
                        b.host.as_deref().unwrap_or("any host "),
                        b.path
                    ),
                };
                errors.push(PlanError {
                    service: b.service.clone(),
                    message: format!("a route {what}, as one of `{}` does", a.service),
                    hint: "give one of them another `host`, `path` or `listen`".into(),
                    field: vec!["x-cove".into(), "routes".into()],
                    machine: false,
                    written: false,
                });
            }
        }
        if b.listen.is_some_and(|l| l == listen && l.port() != 0) {
            errors.push(PlanError {
                service: b.service.clone(),
                message: format!("a `tcp` route listens on {listen}, the gateway's own address"),
                hint: "give it another `listen`, or move the gateway (`x-cove.gateway.listen`)"
                    .into(),
                field: vec!["x-cove".into(), "routes".into()],
                machine: false,
                written: false,
            });
        }
    }
}

/// A warning (as a [`PlanError`]) when `x-cove.gateway.metrics` listens
/// on an address other than loopback: the endpoint has no
/// authentication, and its series name every route, service and
/// replica address. `cove up` and `cove config` print it.
pub fn metrics_warning(app: &App) -> Option<PlanError> {
    let addr = app.x_cove.gateway.as_ref()?.metrics.as_deref()?.0;
    if addr.ip().is_loopback() {
        return None;
    }
    Some(PlanError {
        service: String::new(),
        message: format!(
            "`x-cove.gateway.metrics` listens on {addr}, not a loopback address: the endpoint has no authentication, and anyone who reaches it reads every route, service and replica address"
        ),
        hint: format!(
            "listen on `127.0.0.1:{}` and scrape it from this machine (or through a proxy that authenticates)",
            addr.port()
        ),
        field: vec!["x-cove".into(), "gateway".into(), "metrics".into()],
        machine: false,
        written: false,
    })
}

/// A warning (as a [`PlanError`]) naming every `ports:` entry published
/// on all of the host's addresses (no `host_ip`, or `0.0.0.0`/`::`), as
/// Compose does: anyone who reaches the machine connects, and cove adds
/// no authentication in front of a service. `cove up` prints it once.
/// A port published on a chosen address (`127.0.0.1:5432:5432`, or a
/// LAN address) is not named.
pub fn published_warning(gateway: &GatewayPlan) -> Option<PlanError> {
    let open: Vec<String> = gateway
        .routes
        .iter()
        .filter(|r| r.protocol == Protocol::Tcp && !r.internal)
        .filter_map(|r| {
            let l = r.listen?;
            l.ip()
                .is_unspecified()
                .then(|| format!("`{}` on {l}", r.service))
        })
        .collect();
    if open.is_empty() {
        return None;
    }
    let example = gateway
        .routes
        .iter()
        .find(|r| r.listen.is_some_and(|l| l.ip().is_unspecified()) && !r.internal)
        .map_or("127.0.0.1:5432:5432".to_string(), |r| {
            format!("127.0.0.1:{}:{}", r.listen.map_or(0, |l| l.port()), r.port)
        });
    Some(PlanError {
        service: String::new(),
        message: format!(
            "`ports` published on every address of this host, as in Compose: {}; anyone who can reach this machine can connect, and cove adds no authentication of its own",
            open.join(", ")
        ),
        hint: format!(
            "to keep a port to this machine, give its address: `{example}` (`127.0.0.1:HOST:CONTAINER`)"
        ),
        field: Vec::new(),
        machine: false,
        written: false,
    })
}

fn same_prefix(a: &str, b: &str) -> bool {
    let trim = |p: &str| p.trim_end_matches('/').to_string();
    trim(a) == trim(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(service: &str, listen: &str, port: u16, internal: bool) -> RoutePlan {
        RoutePlan {
            service: service.into(),
            host: None,
            path: "/".into(),
            strip_prefix: false,
            port,
            protocol: Protocol::Tcp,
            listen: Some(listen.parse().unwrap()),
            timeout: None,
            max_body: None,
            internal,
        }
    }

    fn gateway(routes: Vec<RoutePlan>) -> GatewayPlan {
        GatewayPlan {
            listen: DEFAULT_LISTEN.parse().unwrap(),
            default_listen: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            metrics: None,
            tls: None,
            access_query: Default::default(),
            routes,
            entry: true,
        }
    }

    #[test]
    fn ports_on_every_address_are_named_once() {
        let g = gateway(vec![
            tcp("db", "0.0.0.0:5432", 5432, false),
            tcp("cache", "[::]:6380", 6379, false),
            tcp("local", "127.0.0.1:8080", 80, false),
            tcp("lan", "192.168.1.5:8081", 80, false),
            tcp("api", "0.0.0.0:9000", 9000, true),
        ]);
        let w = published_warning(&g).unwrap();
        assert!(w.message.contains("`db` on 0.0.0.0:5432"), "{w}");
        assert!(w.message.contains("`cache` on [::]:6380"), "{w}");
        for quiet in ["local", "lan", "api"] {
            assert!(!w.message.contains(&format!("`{quiet}`")), "{w}");
        }
        assert!(w.hint.contains("`127.0.0.1:5432:5432`"), "{}", w.hint);
        let safe = gateway(vec![tcp("local", "127.0.0.1:8080", 80, false)]);
        assert!(published_warning(&safe).is_none());
    }
}
