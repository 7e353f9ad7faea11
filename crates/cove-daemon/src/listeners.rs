//! The host daemon's shared HTTP listeners: the projects and environments
//! it runs serve their HTTP routes on one socket per address, as one
//! origin. Each host name belongs to one of them there (a second app
//! asking for it is refused, naming the one that has it); a request goes
//! to the routes of the app its `Host` names, and its access log record to
//! that app's logs. An app with a route for any host (no `host:`) has its
//! listener to itself.
//!
//! A project's own gateway (`ProjectGateway`, in `gateway.rs`) still keeps
//! its table (for its metrics, `cove routes`, autoscaling and draining),
//! its TLS and TCP sockets; it hands its HTTP routes here
//! ([`Listeners::set_routes`]) at every refresh, and the listener serves
//! the union. Shared among members: the connection cap (the first
//! member's) and what access log records keep of query strings (the
//! strictest of theirs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use cove_gateway::proxy::{AccessLog, AccessRecord, Gateway, Limits, QueryLog};
use cove_gateway::server::{Kind, Server};
use cove_gateway::table::{Route, Table};
use tokio::sync::Semaphore;

/// The shared listeners of one daemon, by the address asked for.
#[derive(Default)]
pub struct Listeners {
    by_addr: std::sync::Mutex<HashMap<SocketAddr, Shared>>,
}

/// One shared socket and who serves on it.
struct Shared {
    /// The address bound (differs from the one asked for with port 0).
    bound: SocketAddr,
    gateway: Arc<Gateway>,
    server: Option<Server>,
    /// Members by their key (a project's state directory).
    members: BTreeMap<Arc<str>, Member>,
    /// Each host's access log (its member's), read by the dispatcher.
    logs: Arc<RwLock<HashMap<String, AccessLog>>>,
}

struct Member {
    /// How errors name it (`` `shop`, environment `prod` in /src/shop ``).
    label: String,
    hosts: BTreeSet<String>,
    routes: Vec<Route>,
    query: QueryLog,
}

/// Why an app may not join a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Another member serves `host` there.
    Host { host: String, holder: String },
    /// The socket could not be bound.
    Bind(std::io::ErrorKind, String),
}

/// What a member brings.
pub struct Joining<'a> {
    pub key: &'a Arc<str>,
    pub label: &'a str,
    pub hosts: &'a BTreeSet<String>,
    pub log: AccessLog,
    pub query: QueryLog,
    pub max_connections: u32,
    pub threads: usize,
}

impl Listeners {
    /// Joins the listener on `addr` (binding it when nobody serves there
    /// yet); on success, the address bound. Joining again (same key) with
    /// other hosts re-checks them.
    pub fn join(&self, addr: SocketAddr, m: Joining<'_>) -> Result<SocketAddr, Refused> {
        let mut all = crate::lock(&self.by_addr);
        if let Some(shared) = all.get_mut(&addr) {
            if let Some((host, holder)) = shared.taken(m.key, m.hosts) {
                return Err(Refused::Host { host, holder });
            }
            shared.admit(m);
            return Ok(shared.bound);
        }
        let socket = bind(addr).map_err(|e| Refused::Bind(e.kind(), e.to_string()))?;
        let bound = socket
            .local_addr()
            .map_err(|e| Refused::Bind(e.kind(), e.to_string()))?;
        let logs: Arc<RwLock<HashMap<String, AccessLog>>> = Arc::default();
        let gateway = Gateway::with_access_log(
            Table::default(),
            Limits::default(),
            Some(dispatcher(logs.clone())),
        );
        let per_thread = (0..m.threads.max(1))
            .map(|_| Ok(vec![(Kind::Http, socket.try_clone()?)]))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Refused::Bind(e.kind(), e.to_string()))?;
        let cap = Arc::new(Semaphore::new(m.max_connections as usize));
        let server = Server::start(&gateway, per_thread, cap)
            .map_err(|e| Refused::Bind(e.kind(), e.to_string()))?;
        let mut shared = Shared {
            bound,
            gateway,
            server: Some(server),
            members: BTreeMap::new(),
            logs,
        };
        shared.admit(m);
        all.insert(addr, shared);
        Ok(bound)
    }

    /// `key`'s HTTP routes on `addr` from now on.
    pub fn set_routes(&self, addr: SocketAddr, key: &str, routes: Vec<Route>) {
        let mut all = crate::lock(&self.by_addr);
        if let Some(shared) = all.get_mut(&addr)
            && let Some(member) = shared.members.get_mut(key)
        {
            member.routes = routes;
            shared.publish();
        }
    }

    /// `key` leaves `addr`; the socket is closed with its last member.
    pub fn leave(&self, addr: SocketAddr, key: &str) {
        let mut all = crate::lock(&self.by_addr);
        let Some(shared) = all.get_mut(&addr) else {
            return;
        };
        if shared.members.remove(key).is_none() {
            return;
        }
        if shared.members.is_empty() {
            if let Some(mut shared) = all.remove(&addr)
                && let Some(server) = shared.server.take()
            {
                // Joining the worker threads may take a moment; not under
                // the lock of every listener.
                drop(all);
                server.stop();
            }
            return;
        }
        shared.publish();
    }

    /// Who serves on `addr`, by label.
    #[cfg(test)]
    fn members(&self, addr: SocketAddr) -> Vec<String> {
        crate::lock(&self.by_addr)
            .get(&addr)
            .map(|s| s.members.values().map(|m| m.label.clone()).collect())
            .unwrap_or_default()
    }
}

impl Shared {
    /// A host of `hosts` another member than `key` serves, and that member.
    fn taken(&self, key: &str, hosts: &BTreeSet<String>) -> Option<(String, String)> {
        self.members
            .iter()
            .filter(|(k, _)| &***k != key)
            .find_map(|(_, m)| {
                let host = m.hosts.intersection(hosts).next()?;
                Some((host.clone(), m.label.clone()))
            })
    }

    fn admit(&mut self, m: Joining<'_>) {
        let routes = self
            .members
            .remove(&**m.key)
            .map(|old| old.routes)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.host.as_ref().is_some_and(|h| m.hosts.contains(h)))
            .collect();
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        logs.retain(|h, _| !m.hosts.contains(h));
        for h in m.hosts {
            logs.insert(h.clone(), m.log.clone());
        }
        drop(logs);
        self.members.insert(
            m.key.clone(),
            Member {
                label: m.label.to_string(),
                hosts: m.hosts.clone(),
                routes,
                query: m.query,
            },
        );
        self.publish();
    }

    /// The union of the members' routes, and the strictest query policy.
    fn publish(&self) {
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        logs.retain(|h, _| self.members.values().any(|m| m.hosts.contains(h)));
        drop(logs);
        let routes = self
            .members
            .values()
            .flat_map(|m| m.routes.iter().cloned())
            .collect();
        self.gateway.set_table(Table::new(routes));
        self.gateway
            .set_access_query(strictest(self.members.values().map(|m| m.query)));
    }
}

/// The access log of a shared listener: each record to the log of the
/// member whose host its route names; a request no route took (404) is
/// nobody's and not logged.
fn dispatcher(logs: Arc<RwLock<HashMap<String, AccessLog>>>) -> AccessLog {
    Arc::new(move |record: AccessRecord| {
        let Some(route) = record.route.as_deref() else {
            return;
        };
        let host = route.split_once('/').map_or(route, |(h, _)| h);
        let log = logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .cloned();
        if let Some(log) = log {
            log(record);
        }
    })
}

/// The policy that keeps the least of query strings.
fn strictest(policies: impl Iterator<Item = QueryLog>) -> QueryLog {
    let rank = |q: QueryLog| match q {
        QueryLog::Keep => 0,
        QueryLog::Redact => 1,
        QueryLog::Drop => 2,
    };
    policies.max_by_key(|q| rank(*q)).unwrap_or_default()
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    if cove_runtime::plan::is_container_address(addr.ip()) {
        return cove_gateway::server::bind_freebind(addr);
    }
    cove_gateway::server::bind(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_gateway::table::{Policy, Pool};

    fn hosts(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    fn joining<'a>(key: &'a Arc<str>, hosts: &'a BTreeSet<String>, q: QueryLog) -> Joining<'a> {
        Joining {
            key,
            label: key,
            hosts,
            log: Arc::new(|_| {}),
            query: q,
            max_connections: 16,
            threads: 1,
        }
    }

    fn route(host: &str) -> Route {
        Route::new(
            Some(host),
            "/",
            Pool::new("web", Vec::new(), Policy::default()),
        )
    }

    #[tokio::test]
    async fn two_apps_share_one_socket_and_a_host_is_one_apps() {
        let l = Listeners::default();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let ha = hosts(&["web.localhost"]);
        let hb = hosts(&["web.prod.localhost", "api.prod.localhost"]);
        let bound = l.join(any, joining(&a, &ha, QueryLog::Keep)).unwrap();
        assert_ne!(bound.port(), 0);
        assert_eq!(l.join(any, joining(&b, &hb, QueryLog::Redact)), Ok(bound));
        // A host another app serves there: refused, naming it.
        let hc = hosts(&["api.prod.localhost"]);
        assert_eq!(
            l.join(any, joining(&c, &hc, QueryLog::Keep)),
            Err(Refused::Host {
                host: "api.prod.localhost".into(),
                holder: "b".into()
            })
        );
        l.set_routes(any, "a", vec![route("web.localhost")]);
        l.set_routes(any, "b", vec![route("web.prod.localhost")]);
        {
            let all = crate::lock(&l.by_addr);
            let shared = &all[&any];
            let table = shared.gateway.table();
            assert_eq!(table.routes().len(), 2);
            assert!(
                table
                    .route_index(Some("web.prod.localhost:80"), "/x")
                    .is_some()
            );
            assert!(table.route_index(Some("other.localhost"), "/").is_none());
            // The strictest of the members' query policies.
            assert_eq!(
                strictest(shared.members.values().map(|m| m.query)),
                QueryLog::Redact
            );
        }
        // Rejoining with fewer hosts drops the routes of the others.
        let fewer = hosts(&["api.prod.localhost"]);
        assert_eq!(
            l.join(any, joining(&b, &fewer, QueryLog::Redact)),
            Ok(bound)
        );
        assert_eq!(
            crate::lock(&l.by_addr)[&any].gateway.table().routes().len(),
            1
        );
        // The last one out closes the socket.
        l.leave(any, "a");
        assert_eq!(l.members(any), vec!["b".to_string()]);
        l.leave(any, "b");
        assert!(l.members(any).is_empty());
        assert!(std::net::TcpStream::connect(bound).is_err(), "closed");
    }

    #[test]
    fn records_go_to_the_log_of_their_routes_host() {
        let logs: Arc<RwLock<HashMap<String, AccessLog>>> = Arc::default();
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        for host in ["a.localhost", "b.localhost"] {
            let got = got.clone();
            let log: AccessLog = Arc::new(move |r: AccessRecord| {
                crate::lock(&got).push((host, r.path));
            });
            logs.write().unwrap().insert(host.to_string(), log);
        }
        let log = dispatcher(logs);
        let record = |route: Option<&str>, path: &str| AccessRecord {
            time: std::time::SystemTime::now(),
            peer: "127.0.0.1:1".parse().unwrap(),
            method: "GET".into(),
            path: path.into(),
            status: 200,
            route: route.map(str::to_string),
            service: None,
            preview: None,
            target: None,
            duration: std::time::Duration::ZERO,
            upstream: None,
            bytes: 0,
        };
        log(record(Some("b.localhost/api"), "/api/1"));
        log(record(Some("a.localhost/"), "/"));
        log(record(None, "/nowhere"));
        assert_eq!(
            *crate::lock(&got),
            vec![
                ("b.localhost", "/api/1".to_string()),
                ("a.localhost", "/".to_string())
            ]
        );
    }
}
