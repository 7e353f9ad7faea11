//! Each project's gateway: the daemon binds its addresses when the app's
//! plan has routes, and gives it a new table whenever the plan or a
//! replica's state changes. A route's targets are the replicas of its
//! service that serve (ready: healthy, or without a health check up
//! `x-cove.ready_after` and accepting connections on its ports, as the
//! supervisor probes them), at the route's port; a target keeps its
//! in-flight count and passive-health record from one table to the next.
//! While replicas are on their way, requests are held (the first ones
//! after `cove up` do not meet a process still starting); when those that
//! run all refuse connections, requests are answered 503 at once, saying
//! so.
//!
//! Sockets: one for HTTP routes (`x-cove.gateway.listen`; when that is
//! not set and the default port is taken, the next free one above it), one
//! per TCP route. A socket stays bound, with its threads, while the plan keeps its
//! address; a new address is bound before anything else of the plan is
//! acted on, so `cove up` fails (and nothing changes) when it is taken.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cove_gateway::metrics::RouteStats;
use cove_gateway::proxy::{AccessLog, Gateway, Limits};
use cove_gateway::server::{self, Kind, Server};
use cove_gateway::table::{Policy, Pool, PoolOptions, Route, Table, Target, TcpRoute, Usage, Wake};
use cove_gateway::tls;
use cove_runtime::plan::Plan;
use cove_runtime::routes::{GatewayPlan, Protocol, RoutePlan};
use cove_runtime::supervisor::{State, States};
use tokio::sync::Semaphore;

use crate::api::Routes;

mod describe;
mod sharing;

pub use describe::describe;
pub use sharing::Sharing;
use sharing::{Membership, shares};

/// A project's running gateway.
pub struct ProjectGateway {
    plan: Plan,
    /// Shared listeners, under the host's daemon.
    sharing: Option<Sharing>,
    /// Where its access log records go (also from a shared listener).
    access_log: AccessLog,
    /// Its HTTP routes' place on a shared listener, when it has one.
    member: Option<Membership>,
    gateway: Arc<Gateway>,
    /// The connection cap, shared by every socket.
    cap: Arc<Semaphore>,
    max_connections: u32,
    /// By the address the plan gives, with the one bound (they differ for
    /// port 0).
    servers: HashMap<SocketAddr, (SocketAddr, Server)>,
    /// Targets of the current table, by address.
    targets: HashMap<SocketAddr, Arc<Target>>,
    /// Each route's targets in the current table, in the plan's order.
    current: Vec<Vec<SocketAddr>>,
    /// Each route's counters, kept from one table to the next.
    stats: HashMap<String, Arc<RouteStats>>,
    /// The Prometheus endpoint: its address and its task.
    metrics: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    /// Services that may sleep (scaled to zero), and how to wake each.
    wakers: HashMap<String, Wake>,
    /// The previews of this project ([`PreviewSource`]): requests with
    /// their key go to their replicas of the services they run.
    previews: Vec<PreviewSource>,
    /// `x-cove.previews.domain`: preview `NAME` is also at `NAME.<domain>`.
    preview_domain: Option<String>,
    /// When each preview last got a request (over all its pools).
    preview_usage: HashMap<String, Arc<Usage>>,
}

/// A preview of a project, as its gateway routes to it: requests carrying
/// its key (`X-Cove-Preview: NAME`, or `cove-preview=NAME` in `baggage`),
/// and those to its hosts (`NAME.HOST`), go to its replicas of the
/// services it runs, the rest to the project's own.
#[derive(Clone)]
pub struct PreviewSource {
    pub name: String,
    /// Its plan: the services it runs.
    pub plan: Arc<Plan>,
    /// Its replicas' states.
    pub states: tokio::sync::watch::Receiver<States>,
    /// Wakes it when it sleeps.
    pub wake: Wake,
}

/// `x-cove.gateway.access_log.query` as the gateway takes it.
fn query_log(q: cove_spec::xcove::AccessLogQuery) -> cove_gateway::access::QueryLog {
    use cove_gateway::access::QueryLog;
    use cove_spec::xcove::AccessLogQuery;
    match q {
        AccessLogQuery::Redact => QueryLog::Redact,
        AccessLogQuery::Keep => QueryLog::Keep,
        AccessLogQuery::Drop => QueryLog::Drop,
    }
}

/// Threads serving the HTTP routes.
fn http_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl ProjectGateway {
    /// Binds what `plan`'s gateway listens on and starts serving (no
    /// targets until [`ProjectGateway::refresh`]).
    pub fn start(
        plan: &Plan,
        access_log: AccessLog,
        sharing: Option<Sharing>,
    ) -> Result<ProjectGateway, String> {
        let g = &plan.gateway;
        let mut gw = ProjectGateway {
            plan: plan.clone(),
            sharing,
            member: None,
            access_log: access_log.clone(),
            gateway: Gateway::with_access_log(
                Table::default(),
                Limits::default(),
                Some(access_log),
            ),
            stats: HashMap::new(),
            metrics: None,
            cap: Arc::new(Semaphore::new(g.max_connections as usize)),
            max_connections: g.max_connections,
            servers: HashMap::new(),
            targets: HashMap::new(),
            wakers: HashMap::new(),
            previews: Vec::new(),
            preview_domain: None,
            preview_usage: HashMap::new(),
            current: Vec::new(),
        };
        gw.listen(plan)?;
        gw.serve_metrics(plan.gateway.metrics)?;
        gw.gateway
            .set_access_query(query_log(plan.gateway.access_query));
        Ok(gw)
    }

    /// Serves `GET /metrics` on `addr` (stops serving the old address).
    fn serve_metrics(&mut self, addr: Option<SocketAddr>) -> Result<(), String> {
        if self.metrics.as_ref().map(|(a, _)| *a) == addr {
            return Ok(());
        }
        if let Some((_, task)) = self.metrics.take() {
            task.abort();
        }
        let Some(addr) = addr else { return Ok(()) };
        let socket = server::bind(addr)
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(s)
            })
            .map_err(|e| format!("the gateway's metrics cannot listen on {addr}: {e}"))?;
        let gateway = self.gateway.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let gateway = gateway.clone();
                        async move {
                            let (status, body) = if req.uri().path() == "/metrics" {
                                (200, cove_gateway::metrics::render(&gateway.table()))
                            } else {
                                (404, "not found: the metrics are at /metrics\n".to_string())
                            };
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        self.metrics = Some((addr, task));
        Ok(())
    }

    /// Moves to `plan`: binds its new addresses first (on failure nothing
    /// changes), then lets go of the ones it no longer has.
    pub fn update(&mut self, plan: &Plan) -> Result<(), String> {
        if plan.gateway.max_connections != self.max_connections {
            // A new cap for new connections; the open ones keep theirs.
            self.cap = Arc::new(Semaphore::new(plan.gateway.max_connections as usize));
            self.max_connections = plan.gateway.max_connections;
            for (_, s) in std::mem::take(&mut self.servers).into_values() {
                s.stop();
            }
        }
        if self.member.is_some() && !shares(plan) {
            // A route for any host now: a socket of its own.
            self.member = None;
        }
        self.listen(plan)?;
        self.serve_metrics(plan.gateway.metrics)?;
        self.gateway
            .set_access_query(query_log(plan.gateway.access_query));
        let wanted = addresses(&plan.gateway);
        self.servers
            .retain(|addr, _| wanted.iter().any(|(a, _)| a == addr));
        self.plan = plan.clone();
        Ok(())
    }

    /// Binds and serves every address of `plan` not served yet.
    fn listen(&mut self, plan: &Plan) -> Result<(), String> {
        let mut new = Vec::new();
        for (addr, purpose) in addresses(&plan.gateway) {
            if self.servers.contains_key(&addr) {
                continue;
            }
            if purpose == Purpose::Http
                && let Some(sharing) = self.sharing.clone()
                && shares(plan)
            {
                self.join(&sharing, plan)?;
                continue;
            }
            // Certificates first: a bad file fails before anything is bound.
            let kind = match purpose {
                Purpose::Http | Purpose::HttpAt => Kind::Http,
                Purpose::Tcp => Kind::Tcp,
                Purpose::Https => Kind::Https(tls_config(plan)?),
            };
            let fallback = purpose == Purpose::Http && plan.gateway.default_listen;
            let socket = bind(addr, fallback).map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "the gateway cannot listen on {addr}: the address is in use, by {}",
                    crate::holder::describe(addr)
                        .unwrap_or_else(|| "another cove app, or another program".into())
                ),
                _ => format!("the gateway cannot listen on {addr}: {e}"),
            })?;
            let bound = socket.local_addr().map_err(|e| e.to_string())?;
            new.push((addr, bound, purpose, kind, socket));
        }
        for (addr, bound, purpose, kind, socket) in new {
            let threads = match purpose {
                Purpose::Tcp | Purpose::HttpAt => 1,
                Purpose::Http | Purpose::Https => http_threads(),
            };
            let per_thread = (0..threads)
                .map(|_| Ok(vec![(kind.clone(), socket.try_clone()?)]))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            let s = Server::start(&self.gateway, per_thread, self.cap.clone())
                .map_err(|e| format!("the gateway cannot start on {addr}: {e}"))?;
            self.servers.insert(addr, (bound, s));
        }
        Ok(())
    }

    /// A new table from the plan and the replicas' `states` (and its
    /// previews' replicas).
    pub fn refresh(&mut self, states: &States) {
        let mut targets = HashMap::new();
        let old_stats = std::mem::take(&mut self.stats);
        let mut stats_of = |key: String| -> Arc<RouteStats> {
            let s = old_stats.get(&key).cloned().unwrap_or_else(RouteStats::new);
            self.stats.insert(key, s.clone());
            s
        };
        let mut http = Vec::new();
        let mut tcp = Vec::new();
        let mut listeners = Vec::new();
        let mut current = Vec::new();
        let previews = self.previews.clone();
        let domain = self.preview_domain.clone().filter(|_| !previews.is_empty());
        let mut domain_done = false;
        for r in &self.plan.gateway.routes {
            let pool = pool_of(
                &self.plan,
                states,
                r,
                (&self.targets, &mut targets),
                self.wakers.get(&r.service).cloned(),
                None,
            );
            current.push(pool.targets.iter().map(|t| t.addr).collect());
            // The previews that run this route's service.
            let overlays: Vec<(String, Arc<Pool>)> = if r.protocol == Protocol::Http {
                previews
                    .iter()
                    .filter(|p| p.plan.services.iter().any(|s| s.name == r.service))
                    .map(|p| {
                        let usage = self
                            .preview_usage
                            .entry(p.name.clone())
                            .or_default()
                            .clone();
                        let pool = pool_of(
                            &p.plan,
                            &p.states.borrow(),
                            r,
                            (&self.targets, &mut targets),
                            Some(p.wake.clone()),
                            Some(usage),
                        );
                        (p.name.clone(), pool)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let key = format!(
                "{} {}{}",
                r.service,
                r.host.as_deref().unwrap_or("*"),
                r.listen.map_or(r.path.clone(), |l| l.to_string())
            );
            match (r.listen, r.protocol) {
                (Some(listen), Protocol::Http) => listeners.push((
                    bound(&self.servers, listen),
                    Route {
                        stats: stats_of(key),
                        previews: Arc::from(overlays),
                        ..Route::new(None, "/", pool)
                    },
                )),
                (Some(listen), _) => tcp.push(TcpRoute {
                    listen: bound(&self.servers, listen),
                    pool,
                    stats: stats_of(key),
                }),
                (None, _) => {
                    let route = Route {
                        strip_prefix: r.strip_prefix,
                        timeout: r.timeout,
                        max_body: r.max_body,
                        stats: stats_of(key),
                        previews: Arc::from(overlays),
                        ..Route::new(r.host.as_deref(), &r.path, pool)
                    };
                    // Each preview's twin of an entry route: `NAME.HOST`
                    // (and `NAME.<previews.domain>` for the first one),
                    // which sets its key.
                    for p in &previews {
                        let mut hosts: Vec<String> =
                            r.host.iter().map(|h| format!("{}.{h}", p.name)).collect();
                        if let Some(d) = &domain
                            && !domain_done
                        {
                            hosts.push(format!("{}.{d}", p.name));
                        }
                        for h in hosts {
                            http.push(Route {
                                stats: stats_of(format!("{} {h}{}", r.service, r.path)),
                                host: Some(h),
                                preview: Some(p.name.clone()),
                                ..route.clone()
                            });
                        }
                    }
                    domain_done = domain_done || domain.is_some();
                    http.push(route);
                }
            }
        }
        if let Some(m) = &self.member {
            m.sharing
                .listeners
                .set_routes(m.at, &m.sharing.key, http.clone());
        }
        self.gateway
            .set_table(Table::new(http).with_tcp(tcp).with_listeners(listeners));
        self.targets = targets;
        self.current = current;
    }

    /// The previews it has: each one's name and plan.
    pub fn previews_signature(&self) -> Vec<(String, *const Plan)> {
        self.previews
            .iter()
            .map(|p| (p.name.clone(), Arc::as_ptr(&p.plan)))
            .collect()
    }

    /// `x-cove.previews.domain` as it has it.
    pub fn preview_domain(&self) -> Option<&str> {
        self.preview_domain.as_deref()
    }

    /// This project's previews; [`ProjectGateway::refresh`] then.
    pub fn set_previews(&mut self, previews: Vec<PreviewSource>, domain: Option<String>) {
        self.preview_usage
            .retain(|name, _| previews.iter().any(|p| &p.name == name));
        self.previews = previews;
        self.preview_domain = domain;
    }

    /// How long ago a request last went to preview `name`'s replicas
    /// (within a second); `None`: none yet.
    pub fn preview_idle_for(&self, name: &str) -> Option<Duration> {
        self.preview_usage.get(name)?.idle_for()
    }

    /// Which services may sleep; true when that changed (then
    /// [`ProjectGateway::refresh`]).
    pub fn set_wakers(&mut self, wakers: HashMap<String, Wake>) -> bool {
        let same =
            wakers.len() == self.wakers.len() && wakers.keys().all(|k| self.wakers.contains_key(k));
        self.wakers = wakers;
        !same
    }

    /// `service`'s requests in flight now (over its targets) and requests
    /// answered so far (over its routes): what autoscaling reads.
    pub fn load(&self, service: &str) -> (usize, u64) {
        let mut seen = HashSet::new();
        let mut in_flight = 0;
        for (r, addrs) in self.plan.gateway.routes.iter().zip(&self.current) {
            if r.service != service {
                continue;
            }
            for a in addrs {
                if seen.insert(*a) {
                    in_flight += self.targets.get(a).map_or(0, |t| t.in_flight());
                }
            }
        }
        let prefix = format!("{service} ");
        let answered = self
            .stats
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, s)| (1..=5).map(|c| s.requests(c)).sum::<u64>())
            .sum();
        (in_flight, answered)
    }

    /// `service`'s answers so far, over its routes, by status class and
    /// latency: what `error_rate` and `p99_ms` alerts read
    /// ([`crate::traffic`]).
    pub fn answered(&self, service: &str) -> crate::traffic::Answered {
        let prefix = format!("{service} ");
        let mut out = crate::traffic::Answered::default();
        for (_, s) in self.stats.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            for (c, n) in out.classes.iter_mut().enumerate() {
                *n += s.requests(c + 1);
            }
            for (i, n) in out.buckets.iter_mut().enumerate() {
                *n += s.in_bucket(i);
            }
        }
        out
    }

    /// The targets at `addrs` in the current table (to wait for their
    /// requests once they are out of it).
    pub fn targets_of(&self, addrs: &[SocketAddr]) -> Vec<Arc<Target>> {
        addrs
            .iter()
            .filter_map(|a| self.targets.get(a).cloned())
            .collect()
    }

    /// The address bound for `addr` of the plan.
    fn bound(&self, addr: SocketAddr) -> SocketAddr {
        match &self.member {
            Some(m) if addr == self.plan.gateway.listen => m.bound,
            _ => bound(&self.servers, addr),
        }
    }

    /// The gateway's counters in the Prometheus text format.
    pub fn metrics(&self) -> String {
        cove_gateway::metrics::render(&self.gateway.table())
    }

    /// What `cove routes` shows.
    pub fn describe(&self) -> Routes {
        let mut plan = self.plan.clone();
        plan.gateway.listen = self.bound(plan.gateway.listen);
        if let Some(t) = &mut plan.gateway.tls {
            t.listen = bound(&self.servers, t.listen);
        }
        for r in &mut plan.gateway.routes {
            r.listen = r.listen.map(|l| self.bound(l));
        }
        describe(&plan, Some(&self.current))
    }

    /// Stops serving; requests in progress get a moment to finish.
    pub fn stop(mut self) {
        if let Some((_, task)) = self.metrics.take() {
            task.abort();
        }
        self.member = None;
        for (_, s) in std::mem::take(&mut self.servers).into_values() {
            s.stop();
        }
    }
}

/// The address bound for `addr` of the plan.
fn bound(servers: &HashMap<SocketAddr, (SocketAddr, Server)>, addr: SocketAddr) -> SocketAddr {
    servers.get(&addr).map_or(addr, |(b, _)| *b)
}

/// How many ports are tried for the default address, its own included,
/// when it is taken.
const FALLBACK_PORTS: u16 = 32;

/// The addresses tried for `addr`, in order: itself, and with `fallback`
/// the ports above it ([`FALLBACK_PORTS`] in all; not for port 0).
fn tried(addr: SocketAddr, fallback: bool) -> impl Iterator<Item = SocketAddr> {
    let last = if fallback && addr.port() != 0 {
        addr.port().saturating_add(FALLBACK_PORTS - 1)
    } else {
        addr.port()
    };
    (addr.port()..=last).map(move |p| SocketAddr::new(addr.ip(), p))
}

/// Binds `addr`; with `fallback`, the next free port above it when it is
/// taken (another app's gateway, say).
fn bind(addr: SocketAddr, fallback: bool) -> std::io::Result<std::net::TcpListener> {
    // A native service's address on the containers' network: there once
    // the network is (made with the first container).
    if cove_runtime::plan::is_container_address(addr.ip()) {
        return server::bind_freebind(addr);
    }
    let mut last = Err(std::io::ErrorKind::AddrInUse.into());
    for at in tried(addr, fallback) {
        last = server::bind(at);
        match last {
            Err(ref e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
            _ => break,
        }
    }
    last
}

/// The addresses a gateway plan listens on.
fn addresses(g: &GatewayPlan) -> Vec<(SocketAddr, Purpose)> {
    let mut out = vec![(g.listen, Purpose::Http)];
    out.extend(g.tls.iter().map(|t| (t.listen, Purpose::Https)));
    out.extend(g.routes.iter().filter_map(|r| {
        let purpose = match r.protocol {
            Protocol::Http => Purpose::HttpAt,
            _ => Purpose::Tcp,
        };
        Some((r.listen?, purpose))
    }));
    out
}

/// What a socket of the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Http,
    Https,
    Tcp,
    /// HTTP at a service's own address: every request there is for that
    /// service (layer 7, so that a preview's key routes it).
    HttpAt,
}

/// The directory of the local CA: `<host dir>/ca`, shared by every app of
/// the user, so it is trusted once.
pub fn local_ca_dir() -> std::path::PathBuf {
    crate::host_dir().join("ca")
}

/// The TLS configuration of `plan`'s HTTPS listener: its certificate files,
/// or one from the local CA.
fn tls_config(plan: &Plan) -> Result<Arc<rustls::ServerConfig>, String> {
    let Some(t) = &plan.gateway.tls else {
        return Err("no TLS settings".into());
    };
    let mut certs = tls::Certificates::new();
    for (cert, key) in &t.certificates {
        certs.add(tls::load_pem(cert, key)?);
    }
    if certs.is_empty() {
        let ca = tls::LocalCa::load_or_create(&local_ca_dir())?;
        certs.add(ca.issue(&t.local_names)?);
    }
    tls::server_config(certs)
}

/// Targets by address.
type Targets = HashMap<SocketAddr, Arc<Target>>;

/// The pool of `route` in `plan` (its service's serving replicas at its
/// port, targets kept from `old` so their counts go on, recorded in
/// `new`), with `wake` for a service that may sleep.
fn pool_of(
    plan: &Plan,
    states: &States,
    route: &RoutePlan,
    (old, new): (&Targets, &mut Targets),
    wake: Option<Wake>,
    usage: Option<Arc<Usage>>,
) -> Arc<Pool> {
    let list = serving(plan, states, route)
        .into_iter()
        .map(|addr| {
            let t = old.get(&addr).cloned().unwrap_or_else(|| Target::new(addr));
            new.insert(addr, t.clone());
            t
        })
        .collect();
    let (pending, unavailable) = waiting(states, &route.service);
    Pool::with_options(
        &route.service,
        list,
        Policy::default(),
        PoolOptions {
            pending,
            http2: route.protocol == Protocol::Grpc,
            wake,
            unavailable,
            usage,
        },
    )
}

/// Where `route` sends to now: its service's serving replicas at its port.
fn serving(plan: &Plan, states: &States, route: &RoutePlan) -> Vec<SocketAddr> {
    if !plan.services.iter().any(|s| s.name == route.service) {
        return Vec::new();
    }
    let Some(replicas) = states.get(&route.service) else {
        return Vec::new();
    };
    replicas
        .iter()
        .filter(|s| s.serves())
        .map(|s| SocketAddr::from((s.addr, route.port)))
        .collect()
}

/// Whether `service`'s requests should wait for a replica on its way
/// (starting, restarting, not ready yet), and else, when replicas run but
/// refuse connections, why none serves (answered at once).
fn waiting(states: &States, service: &str) -> (bool, Option<String>) {
    let Some(replicas) = states.get(service) else {
        return (false, None);
    };
    let on_its_way = replicas
        .iter()
        .any(|s| !s.state.is_final() && !matches!(s.state, State::Refusing { .. }));
    let refused = replicas.iter().find_map(|s| match s.state {
        State::Refusing { port } if !s.retiring => Some(port),
        _ => None,
    });
    match refused {
        Some(port) if !on_its_way => (
            false,
            Some(format!(
                "`{service}` is running but not accepting connections on :{port} (`cove logs {service}` shows its output)"
            )),
        ),
        _ => (on_its_way, None),
    }
}
