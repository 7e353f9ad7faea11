//! The routing table: which pool of targets serves a request.
//!
//! A route matches a host (exact, case-insensitive, port ignored; none:
//! any host) and a path prefix (on `/` boundaries: `/api` matches `/api`
//! and `/api/x`, not `/apix`). Host routes win over host-less ones, then the
//! longest prefix wins. Tables are immutable; the gateway swaps whole tables.
//!
//! Listener routes ([`Table::with_listeners`]) are bound to a listen
//! address instead: every request on a connection accepted there takes
//! that route, whatever its host and path.
//!
//! Previews: a route may carry the pools of the previews that run its
//! service ([`Route::previews`], by preview key); a request with a key
//! (see [`crate::preview`]) that names one of them goes to that pool, any
//! other to the route's own. A route may also set the key itself
//! ([`Route::preview`]: a preview's entry host).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::stats::RouteStats;

/// How long a target that failed is left out.
pub const EJECT_FOR: Duration = Duration::from_secs(10);
/// Consecutive 5xx answers that eject a target.
pub const EJECT_AFTER_5XX: u32 = 5;

/// Milliseconds on the gateway's clock (since its first use).
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// What a request to a target came to, for passive health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered below 500.
    Ok,
    /// Answered 5xx.
    ServerError,
    /// Could not connect.
    ConnectFailed,
}

/// One upstream address and what the balancer needs to know about it.
#[derive(Debug)]
pub struct Target {
    pub addr: SocketAddr,
    in_flight: AtomicUsize,
    draining: AtomicBool,
    /// Consecutive failures (connects, 5xx).
    failures: AtomicU32,
    /// Left out until then ([`now_ms`]); 0: never ejected.
    ejected_until: AtomicU64,
    ejections: AtomicU64,
    /// An active health check watches it ([`crate::health`]).
    checked: AtomicBool,
    /// The active health check found it down: left out until a check
    /// passes.
    down: AtomicBool,
    /// Told when the active health check finds it down: requests waiting
    /// on it that may be sent again go to another target.
    went_down: tokio::sync::Notify,
}

impl Target {
    pub fn new(addr: SocketAddr) -> Arc<Target> {
        Arc::new(Target {
            addr,
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            checked: AtomicBool::new(false),
            down: AtomicBool::new(false),
            went_down: tokio::sync::Notify::new(),
        })
    }

    /// Passive health: a failed connect ejects at once, a burst of
    /// [`EJECT_AFTER_5XX`] consecutive 5xx answers too, for [`EJECT_FOR`];
    /// a good answer clears the count. `now` is [`now_ms`].
    pub fn record(&self, outcome: Outcome, now: u64) {
        let eject = match outcome {
            Outcome::Ok => {
                // Read first: a store on every request would move the
                // line between the cores that share the target.
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                false
            }
            Outcome::ServerError => {
                self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= EJECT_AFTER_5XX
            }
            Outcome::ConnectFailed => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        if eject {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            self.ejected_until
                .store(now + EJECT_FOR.as_millis() as u64, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Whether health checks leave it out at `now` ([`now_ms`]): passive
    /// health ejected it, or the active check found it down.
    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now || self.down.load(Ordering::Relaxed)
    }

    /// From now on an active health check watches it: requests that may
    /// be sent again leave it when it is found down ([`Target::gone_down`]).
    pub fn watch(&self) {
        self.checked.store(true, Ordering::Relaxed);
    }

    /// The active check found it down: left out, and the requests waiting
    /// on it that may be sent again are told. True when it was up.
    pub fn mark_down(&self) -> bool {
        let was_up = !self.down.swap(true, Ordering::Relaxed);
        if was_up {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            // Only when it goes down: requests sent to it while it is
            // down (every target is, and they are tried anyway) wait for
            // their answer; moving them at every probe would fail the
            // slow ones.
            self.went_down.notify_waiters();
        }
        was_up
    }

    /// The active check passed: back in, and what passive health held
    /// against it (connects that timed out while it was away) is
    /// forgotten. True when it was down.
    pub fn mark_up(&self) -> bool {
        let was_down = self.down.swap(false, Ordering::Relaxed);
        if was_down {
            self.ejected_until.store(0, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
        }
        was_down
    }

    /// Whether the active check has it down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Resolves when the active health check finds it down after this was
    /// first polled; never without an active check (nothing to wait for,
    /// and nothing shared is touched).
    pub async fn gone_down(&self) {
        if !self.checked.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        self.went_down.notified().await;
    }

    /// Times passive health left it out.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Requests it is serving now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// [`Target::begin`], borrowed: the target's reference count is not
    /// touched (it is shared by every thread).
    pub fn begin_here(&self) -> InFlightHere<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightHere(self)
    }

    /// No new requests; the ones in flight finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Drains it and waits until its requests in flight are done, at most
    /// `timeout`; true when none is left. The caller then swaps in a table
    /// without it (and stops the replica).
    pub async fn drain_for(&self, timeout: Duration) -> bool {
        self.drain();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.in_flight() == 0
    }
}

/// A request in flight on a target.
#[derive(Debug)]
pub struct InFlight(Arc<Target>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight on a target, counted by a borrowed guard.
#[derive(Debug)]
pub struct InFlightHere<'a>(&'a Target);

impl Drop for InFlightHere<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a pool chooses among its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Power of two random choices, the one with fewer requests in flight.
    #[default]
    LeastInFlight,
    RoundRobin,
}

/// The targets of one service (its replicas).
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub targets: Vec<Arc<Target>>,
    pub policy: Policy,
    /// Targets are on their way (replicas starting): a request finding
    /// none waits for a new table (up to [`crate::limits::Limits::hold`])
    /// rather than being refused at once.
    pub pending: bool,
    /// The targets speak HTTP/2 (cleartext, prior knowledge): gRPC.
    pub http2: bool,
    /// The service sleeps (scaled to zero): a request finding no target
    /// calls this, then waits as for [`Pool::pending`].
    pub wake: Option<Wake>,
    /// Why there is no target although replicas run (they do not accept
    /// connections): a request finding none is answered 503 with this at
    /// once, not held.
    pub unavailable: Option<String>,
    /// When it last got a request (shared from one table to the next when
    /// its builder hands the same one on: [`PoolOptions::usage`]).
    pub usage: Arc<Usage>,
    pub(crate) next: AtomicUsize,
}

/// When a pool last got a request, to the second: what tells an idle
/// preview (or service) from a used one. Kept by whoever builds tables and
/// handed to the pool of each new table ([`PoolOptions::usage`]), as
/// [`crate::metrics::RouteStats`] are.
#[derive(Debug, Default)]
pub struct Usage {
    /// [`now_ms`] of the last request; 0: none yet.
    last_ms: AtomicU64,
}

/// How stale [`Usage`] may be: it is written at most once per this many
/// milliseconds (a store on every request would move its cache line
/// between the cores).
const USAGE_GRAIN_MS: u64 = 1000;

impl Usage {
    pub fn new() -> Arc<Usage> {
        Arc::default()
    }

    /// A request came at `now` ([`now_ms`]).
    #[inline]
    pub fn touch(&self, now: u64) {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last == 0 || now >= last + USAGE_GRAIN_MS {
            self.last_ms.store(now, Ordering::Relaxed);
        }
    }

    /// [`now_ms`] of the last request (within a second); `None`: none yet.
    pub fn last_ms(&self) -> Option<u64> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// How long ago the last request came (within a second); `None`: none
    /// came yet.
    pub fn idle_for(&self) -> Option<Duration> {
        self.last_ms()
            .map(|at| Duration::from_millis(now_ms().saturating_sub(at)))
    }
}

/// Asks for a sleeping service to be started (called once per request
/// that finds it asleep; the callee makes repeats cheap).
#[derive(Clone)]
pub struct Wake(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

/// How a pool's targets are reached and waited for.
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    /// See [`Pool::pending`].
    pub pending: bool,
    /// See [`Pool::http2`].
    pub http2: bool,
    /// See [`Pool::wake`].
    pub wake: Option<Wake>,
    /// See [`Pool::unavailable`].
    pub unavailable: Option<String>,
    /// See [`Pool::usage`]; `None`: a new one.
    pub usage: Option<Arc<Usage>>,
}

impl Pool {
    pub fn new(name: &str, targets: Vec<Arc<Target>>, policy: Policy) -> Arc<Pool> {
        Pool::with_options(name, targets, policy, PoolOptions::default())
    }

    pub fn with_options(
        name: &str,
        targets: Vec<Arc<Target>>,
        policy: Policy,
        options: PoolOptions,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            name: name.to_string(),
            targets,
            policy,
            pending: options.pending,
            http2: options.http2,
            wake: options.wake,
            unavailable: options.unavailable,
            usage: options.usage.unwrap_or_default(),
            next: AtomicUsize::new(0),
        })
    }

    /// When it last got a request: [`Usage::idle_for`].
    pub fn idle_for(&self) -> Option<Duration> {
        self.usage.idle_for()
    }
}

/// The pools of the previews that run a route's service, by preview key.
pub type Previews = Arc<[(String, Arc<Pool>)]>;

#[derive(Debug, Clone)]
pub struct Route {
    /// Lower case, without port; `None` matches any host.
    pub host: Option<String>,
    /// Starts with `/`.
    pub path: String,
    /// Remove `path` from the request's path before forwarding.
    pub strip_prefix: bool,
    pub pool: Arc<Pool>,
    /// Time for the upstream to answer; `None`: the gateway's limit.
    pub timeout: Option<Duration>,
    /// Largest request body, bytes; larger ones are answered 413.
    pub max_body: Option<u64>,
    pub stats: Arc<RouteStats>,
    /// The pools of the previews that run this route's service, by preview
    /// key: a request whose key names one goes there, any other to
    /// [`Route::pool`]. Empty: no request's key is even looked for.
    pub previews: Previews,
    /// The key this route sets (a preview's entry route): the forwarded
    /// request gets `X-Cove-Preview: KEY` and `cove-preview=KEY` in
    /// `baggage` (what the client sent of them is replaced), and is
    /// routed by it.
    pub preview: Option<String>,
}

impl Route {
    /// A route of `host` (`None`: any) and `path` to `pool`, with the
    /// gateway's limits and new counters.
    pub fn new(host: Option<&str>, path: &str, pool: Arc<Pool>) -> Route {
        Route {
            host: host.map(str::to_string),
            path: path.to_string(),
            strip_prefix: false,
            pool,
            timeout: None,
            max_body: None,
            stats: RouteStats::new(),
            previews: no_previews(),
            preview: None,
        }
    }

    /// Whether a request's key matters here: the route has preview pools,
    /// or sets a key.
    #[inline]
    pub fn keyed(&self) -> bool {
        !self.previews.is_empty() || self.preview.is_some()
    }

    /// The key a request on this route is routed by: the route's own, else
    /// `asked` (the request's).
    #[inline]
    pub fn key<'a>(&'a self, asked: Option<&'a str>) -> Option<&'a str> {
        self.preview.as_deref().or(asked)
    }

    /// The pool for a request with preview key `key` (see [`Route::key`]):
    /// that preview's, else the route's own.
    #[inline]
    pub fn pool_for(&self, key: Option<&str>) -> &Arc<Pool> {
        match key {
            Some(k) if !self.previews.is_empty() => self
                .previews
                .iter()
                .find(|(name, _)| name == k)
                .map_or(&self.pool, |(_, p)| p),
            _ => &self.pool,
        }
    }
}

/// An empty [`Previews`], shared (no allocation per route).
pub fn no_previews() -> Previews {
    static NONE: std::sync::OnceLock<Previews> = std::sync::OnceLock::new();
    NONE.get_or_init(|| Arc::from(Vec::new())).clone()
}

/// A layer-4 route: connections to `listen` go to a target of `pool`.
#[derive(Debug, Clone)]
pub struct TcpRoute {
    pub listen: SocketAddr,
    pub pool: Arc<Pool>,
    pub stats: Arc<RouteStats>,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The host routes (sorted: see [`Table::new`]), then the listener
    /// routes, in the order of `listen`.
    routes: Vec<Route>,
    /// How many of `routes` are host routes.
    hosted: usize,
    /// The listen address of each listener route.
    listen: Vec<SocketAddr>,
    tcp: Vec<TcpRoute>,
}

impl Table {
    pub fn new(mut routes: Vec<Route>) -> Table {
        for r in &mut routes {
            r.host = r.host.take().map(|h| h.to_ascii_lowercase());
        }
        // Host routes first, then longer prefixes.
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.path.len())));
        Table {
            hosted: routes.len(),
            routes,
            listen: Vec::new(),
            tcp: Vec::new(),
        }
    }

    /// The same table with HTTP routes bound to listen addresses (as
    /// bound: a connection's local address picks its route; one bound on
    /// every interface, its port): every
    /// request on a connection accepted at one takes its route, whatever
    /// its `Host` and path (the route's host and path are not matched,
    /// and its path is not stripped). Replaces any given before; a second
    /// route for the same address is ignored.
    pub fn with_listeners(mut self, listeners: Vec<(SocketAddr, Route)>) -> Table {
        self.routes.truncate(self.hosted);
        self.listen.clear();
        for (addr, route) in listeners {
            if !self.listen.contains(&addr) {
                self.listen.push(addr);
                self.routes.push(Route {
                    strip_prefix: false,
                    ..route
                });
            }
        }
        self
    }

    /// The same table with layer-4 routes.
    pub fn with_tcp(mut self, tcp: Vec<TcpRoute>) -> Table {
        self.tcp = tcp;
        self
    }

    /// The host routes (not the listener routes).
    pub fn routes(&self) -> &[Route] {
        &self.routes[..self.hosted]
    }

    /// The listener routes, with their addresses.
    pub fn listener_routes(&self) -> impl Iterator<Item = (SocketAddr, &Route)> {
        self.listen.iter().copied().zip(&self.routes[self.hosted..])
    }

    /// Whether it has listener routes.
    #[inline]
    pub fn has_listeners(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The route at `index`, of [`Table::route_index`] or
    /// [`Table::listener_index`].
    #[inline]
    pub fn route_at(&self, index: usize) -> &Route {
        &self.routes[index]
    }

    /// The index of the listener route of `local` (a connection's local
    /// address), for [`Table::route_at`].
    #[inline]
    pub fn listener_index(&self, local: SocketAddr) -> Option<usize> {
        // An address bound on every interface (`0.0.0.0:PORT`, `[::]:PORT`)
        // takes the connections to its port on any of them.
        self.listen
            .iter()
            .position(|a| *a == local)
            .or_else(|| {
                self.listen
                    .iter()
                    .position(|a| a.ip().is_unspecified() && a.port() == local.port())
            })
            .map(|i| self.hosted + i)
    }

    /// The index of the route a request takes: the listener route of
    /// `local` (its connection's local address, when known), else by
    /// `host` and `path` ([`Table::route_index`]).
    #[inline]
    pub fn find(&self, local: Option<SocketAddr>, host: Option<&str>, path: &str) -> Option<usize> {
        if let Some(local) = local
            && self.has_listeners()
            && let Some(i) = self.listener_index(local)
        {
            return Some(i);
        }
        self.route_index(host, path)
    }

    /// How counters and the access log name the route at `index`:
    /// `host/path` (`*` for any host), or `http://ADDR` (a listener route).
    pub fn route_name(&self, index: usize) -> String {
        match index.checked_sub(self.hosted) {
            Some(i) => format!("http://{}", self.listen[i]),
            None => {
                let r = &self.routes[index];
                format!("{}{}", r.host.as_deref().unwrap_or("*"), r.path)
            }
        }
    }

    /// The index here of the route of `old` at `index` (the same host and
    /// path, or the same listen address), for [`Table::route_at`].
    pub fn same_route(&self, old: &Table, index: usize) -> Option<usize> {
        if index >= old.hosted {
            return self.listener_index(*old.listen.get(index - old.hosted)?);
        }
        let r = old.routes.get(index)?;
        self.routes[..self.hosted]
            .iter()
            .position(|n| n.host == r.host && n.path == r.path)
    }

    pub fn tcp_routes(&self) -> &[TcpRoute] {
        &self.tcp
    }

    /// The pool serving connections accepted on `listen`.
    pub fn tcp_route(&self, listen: SocketAddr) -> Option<&TcpRoute> {
        self.tcp.iter().find(|r| r.listen == listen)
    }

    /// The route for a request to `host` (a `Host` header, port allowed) and `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.route_index(host, path).map(|i| &self.routes[i])
    }

    /// [`Table::route`]'s place in [`Table::routes`].
    pub fn route_index(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let host = host.map(|h| {
            // `[::1]:80`, `name:80`, `name`.
            match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => &h[..i],
                _ => h,
            }
        });
        self.routes[..self.hosted].iter().position(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                // Routes' hosts are lower case.
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.path, path)
        })
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `path` without the route's prefix (`/api/x` → `/x`; `/api` → `/`).
pub fn strip(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some("") => "/".to_string(),
        Some(rest) => rest.to_string(),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: &str, name: &str) -> Route {
        Route::new(host, path, Pool::new(name, vec![], Policy::default()))
    }

    #[test]
    fn host_routes_win_then_the_longest_prefix() {
        let t = Table::new(vec![
            route(None, "/", "web"),
            route(None, "/api", "api"),
            route(None, "/api/admin", "admin"),
            route(Some("Shop.localhost"), "/", "shop"),
        ]);
        let name = |h: Option<&str>, p: &str| t.route(h, p).map(|r| r.pool.name.clone());
        assert_eq!(name(None, "/"), Some("web".into()));
        assert_eq!(name(None, "/api"), Some("api".into()));
        assert_eq!(name(None, "/api/x"), Some("api".into()));
        assert_eq!(
            name(None, "/apix"),
            Some("web".into()),
            "prefixes end at `/`"
        );
        assert_eq!(name(None, "/api/admin/users"), Some("admin".into()));
        assert_eq!(
            name(Some("shop.localhost:8080"), "/api"),
            Some("shop".into())
        );
        assert_eq!(name(Some("SHOP.localhost"), "/"), Some("shop".into()));
        assert_eq!(name(Some("other"), "/api"), Some("api".into()));
        let none = Table::new(vec![route(Some("a"), "/", "a")]);
        assert!(none.route(Some("b"), "/").is_none());
        assert!(none.route(None, "/").is_none());
    }

    #[test]
    fn failures_eject_for_a_while_and_successes_clear_the_count() {
        let t = Target::new(SocketAddr::from(([127, 0, 0, 1], 1)));
        let now = 1_000;
        t.record(Outcome::ConnectFailed, now);
        assert!(t.is_ejected(now));
        assert!(t.is_ejected(now + EJECT_FOR.as_millis() as u64 - 1));
        assert!(
            !t.is_ejected(now + EJECT_FOR.as_millis() as u64),
            "back after the period"
        );
        let later = now + 60_000;
        for _ in 0..EJECT_AFTER_5XX - 1 {
            t.record(Outcome::ServerError, later);
        }
        assert!(!t.is_ejected(later));
        t.record(Outcome::Ok, later);
        for _ in 0..EJECT_AFTER_5XX - 1 {
            t.record(Outcome::ServerError, later);
        }
        assert!(
            !t.is_ejected(later),
            "a success in between resets the burst"
        );
        t.record(Outcome::ServerError, later);
        assert!(t.is_ejected(later), "{EJECT_AFTER_5XX} in a row eject");
    }

    #[test]
    fn listener_routes_are_found_by_address_and_again_in_a_newer_table() {
        let a: SocketAddr = "127.0.0.5:8000".parse().unwrap();
        let b: SocketAddr = "127.0.0.6:8000".parse().unwrap();
        let t = Table::new(vec![route(Some("x"), "/", "x"), route(None, "/", "web")])
            .with_listeners(vec![
                (a, route(Some("ignored"), "/ignored", "api")),
                (a, route(None, "/", "second")),
                (b, route(None, "/", "db-admin")),
            ]);
        assert_eq!(t.routes().len(), 2, "host routes only");
        let name = |i: Option<usize>| i.map(|i| t.route_at(i).pool.name.clone());
        assert_eq!(name(t.find(Some(a), Some("x"), "/q")), Some("api".into()));
        assert_eq!(name(t.find(Some(b), None, "/")), Some("db-admin".into()));
        let other: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(name(t.find(Some(other), Some("x"), "/")), Some("x".into()));
        let any = Table::new(vec![]).with_listeners(vec![
            ("127.0.0.5:9000".parse().unwrap(), route(None, "/", "exact")),
            ("0.0.0.0:9000".parse().unwrap(), route(None, "/", "any")),
        ]);
        let on = |a: &str| {
            any.find(Some(a.parse().unwrap()), None, "/")
                .map(|i| any.route_at(i).pool.name.clone())
        };
        assert_eq!(on("127.0.0.5:9000"), Some("exact".into()));
        assert_eq!(on("127.0.0.9:9000"), Some("any".into()));
        assert_eq!(on("127.0.0.9:9001"), None);
        assert_eq!(name(t.find(None, Some("y"), "/")), Some("web".into()));
        assert_eq!(
            t.route_name(t.find(Some(a), None, "/").unwrap()),
            "http://127.0.0.5:8000"
        );
        assert_eq!(t.route_name(0), "x/");
        assert_eq!(t.listener_routes().count(), 2, "one route per address");
        // A newer table, listeners in another order and a host route more.
        let newer =
            Table::new(vec![route(None, "/", "web"), route(Some("z"), "/", "z")]).with_listeners(
                vec![(b, route(None, "/", "db2")), (a, route(None, "/", "api2"))],
            );
        let same = |i: usize| {
            newer
                .same_route(&t, i)
                .map(|j| newer.route_at(j).pool.name.clone())
        };
        assert_eq!(
            same(t.find(Some(a), None, "/").unwrap()),
            Some("api2".into())
        );
        assert_eq!(
            same(t.find(Some(b), None, "/").unwrap()),
            Some("db2".into())
        );
        assert_eq!(same(t.route_index(None, "/").unwrap()), Some("web".into()));
        assert_eq!(same(0), None, "host x is gone");
    }

    #[test]
    fn a_key_picks_its_previews_pool_and_only_where_the_route_has_previews() {
        let base = route(None, "/", "base");
        assert!(!base.keyed());
        assert_eq!(base.pool_for(Some("feat")).name, "base");
        let feat = Pool::new("feat", vec![], Policy::default());
        let keyed = Route {
            previews: vec![("feat".to_string(), feat)].into(),
            ..base.clone()
        };
        assert!(keyed.keyed());
        assert_eq!(keyed.pool_for(Some("feat")).name, "feat");
        assert_eq!(keyed.pool_for(Some("Feat")).name, "base", "keys are exact");
        assert_eq!(keyed.pool_for(None).name, "base");
        let entry = Route {
            preview: Some("feat".into()),
            ..keyed.clone()
        };
        assert_eq!(
            entry.key(Some("other")),
            Some("feat"),
            "the route's key wins"
        );
        assert_eq!(keyed.key(Some("other")), Some("other"));
    }

    #[test]
    fn usage_is_kept_to_the_second_and_shared_between_tables() {
        let usage = Usage::new();
        let pool = |u: &Arc<Usage>| {
            Pool::with_options(
                "p",
                vec![],
                Policy::default(),
                PoolOptions {
                    usage: Some(u.clone()),
                    ..Default::default()
                },
            )
        };
        let (old, new) = (pool(&usage), pool(&usage));
        assert!(old.idle_for().is_none());
        old.usage.touch(5);
        assert_eq!(new.usage.last_ms(), Some(5), "the same usage");
        new.usage.touch(5 + USAGE_GRAIN_MS - 1);
        assert_eq!(usage.last_ms(), Some(5), "not written within the grain");
        new.usage.touch(5 + USAGE_GRAIN_MS);
        assert_eq!(usage.last_ms(), Some(5 + USAGE_GRAIN_MS));
        assert!(
            Pool::new("fresh", vec![], Policy::default())
                .idle_for()
                .is_none()
        );
    }

    #[test]
    fn strip_prefix() {
        assert_eq!(strip("/api", "/api/x?y"), "/x?y");
        assert_eq!(strip("/api/", "/api"), "/");
        assert_eq!(strip("/", "/x"), "/x");
    }
}
