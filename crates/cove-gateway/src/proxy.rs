//! The proxy: an HTTP/1.1 server that forwards each request to a target of
//! its route's pool over a pool of kept-alive upstream connections,
//! streaming bodies both ways.
//!
//! Forwarded requests get `X-Forwarded-For` (appended), `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Request-Id` (when absent); hop-by-hop headers
//! (and those named in `Connection`) are removed both ways. A request that
//! could not be sent (no connection) is tried on each other target in turn
//! (at most 8 tries); one that was sent and got no answer (the target died)
//! is sent on the same way only when it is idempotent (GET, HEAD, OPTIONS,
//! TRACE, PUT, DELETE) and has no body. Answers of the gateway itself: 400 a request body that cannot
//! be read (bad chunking), 404 no route, 502 upstream failed, 503 no
//! target (at once, saying why, when the pool's replicas run but refuse
//! connections: [`crate::table::Pool::unavailable`]), 504 timeout; they close the client's connection
//! when the request's body may be left unread.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

pub use crate::access::{AccessLog, AccessRecord, QueryLog};
use crate::metrics::RouteStats;

use crate::balance;
use crate::deadline::Deadlines;
use crate::server::Stopping;
use crate::table::{self, Table};
use crate::upstream::{SendError, Upstreams};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Limits that keep a client from holding the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a client to send a request's headers; also how long an
    /// idle kept-alive connection stays open.
    pub header_read: Duration,
    /// Time for an upstream to answer (headers).
    pub upstream_response: Duration,
    /// Time to connect to an upstream.
    pub upstream_connect: Duration,
    /// Largest request head, bytes.
    pub max_head: usize,
    /// Most header fields in a request head.
    pub max_headers: usize,
    /// Most requests at once on one HTTP/2 connection.
    pub max_streams: u32,
    /// How long a request waits for a target of a pool whose targets are
    /// on their way ([`crate::table::Pool::pending`]).
    pub hold: Duration,
    /// Once the gateway stops accepting, how long connections have to
    /// finish their request in progress (idle ones close at once).
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            upstream_response: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(5),
            max_head: 64 * 1024,
            max_headers: 100,
            max_streams: 256,
            hold: Duration::from_secs(30),
            drain: Duration::from_millis(100),
        }
    }
}

pub struct Gateway {
    /// Shared by the gateway's siblings (one per thread).
    table: Arc<RwLock<Arc<Table>>>,
    /// Bumped at every new table (shared by siblings too).
    changed: Arc<watch::Sender<u64>>,
    /// Where access log records go, if anywhere.
    access_log: Option<AccessLog>,
    /// What records keep of query strings ([`QueryLog`] as a `u8`; shared
    /// by siblings).
    access_query: Arc<AtomicU8>,
    upstreams: Arc<Upstreams>,
    /// Upstream response deadlines, checked coarsely (see [`crate::deadline`]).
    deadlines: std::sync::OnceLock<Arc<Deadlines>>,
    limits: Limits,
    /// Request ids: a random prefix and a counter.
    id_prefix: u64,
    ids: AtomicU64,
}

/// How long a request every target failed waits for a newer table (its
/// replicas' deaths seen by the daemon) before it is answered 502.
const AFTER_FAILURES: Duration = Duration::from_secs(2);

/// Where a held request or connection is: see [`Gateway::hold`].
#[derive(Default)]
pub(crate) struct Hold {
    until: Option<Instant>,
    changes: Option<watch::Receiver<u64>>,
}

impl Gateway {
    /// A pool whose targets are on their way (replicas starting) or asleep
    /// (woken, once) holds a request or connection a while: `true` when
    /// the caller should look at the table again (a new one came, or the
    /// watch on new ones just began); `false` when it goes on with what it
    /// has (a target is there, none is coming, or the hold is over).
    /// After every target of `route` (of `table`) failed to take a
    /// request none of them got (no connection): the same route's pool in a newer
    /// table, once the daemon has seen its replicas die (within a moment),
    /// held while its replicas are on their way as a request that finds
    /// none is. `None`: no newer table came, or the route is gone, or
    /// this is the third round.
    async fn after_failures(
        &self,
        table: &Arc<Table>,
        route: &table::Route,
        hold: &mut Hold,
        rounds: u32,
    ) -> Option<Arc<table::Pool>> {
        if rounds > 3 {
            return None;
        }
        let mut changes = self.changed.subscribe();
        if Arc::ptr_eq(table, &self.table()) {
            tokio::time::timeout(AFTER_FAILURES, changes.changed())
                .await
                .ok()?
                .ok()?;
        }
        loop {
            let newer = self.table();
            let pool = newer
                .routes()
                .iter()
                .find(|r| r.host == route.host && r.path == route.path)?
                .pool
                .clone();
            if !self.hold(&pool, hold).await {
                return Some(pool);
            }
        }
    }

    pub(crate) async fn hold(&self, pool: &table::Pool, hold: &mut Hold) -> bool {
        // Replicas that run but refuse connections: no hold, say why.
        let waiting = pool.unavailable.is_none()
            && (pool.pending || pool.wake.is_some())
            && balance::pick(pool, None, table::now_ms(), &mut balance::thread_random).is_none();
        if !waiting {
            return false;
        }
        let until = *hold.until.get_or_insert_with(|| {
            if let Some(wake) = &pool.wake {
                (wake.0)();
            }
            Instant::now() + self.limits.hold
        });
        if Instant::now() >= until {
            return false;
        }
        match hold.changes.as_mut() {
            // Watch first, then look again: no new table is missed.
            None => hold.changes = Some(self.changed.subscribe()),
            Some(rx) => {
                let _ = tokio::time::timeout_at(until.into(), rx.changed()).await;
            }
        }
        true
    }

    pub fn new(table: Table, limits: Limits) -> Arc<Gateway> {
        Gateway::with_access_log(table, limits, None)
    }

    /// A gateway that hands a record of every request to `access_log`.
    pub fn with_access_log(
        table: Table,
        limits: Limits,
        access_log: Option<AccessLog>,
    ) -> Arc<Gateway> {
        Gateway::with_table(
            Arc::new(RwLock::new(Arc::new(table))),
            Arc::new(watch::channel(0).0),
            access_log,
            Arc::new(AtomicU8::new(QueryLog::default() as u8)),
            limits,
        )
    }

    /// A gateway for another thread: the same table (and targets, so
    /// in-flight counts are shared), its own upstream connections.
    pub fn sibling(&self) -> Arc<Gateway> {
        Gateway::with_table(
            self.table.clone(),
            self.changed.clone(),
            self.access_log.clone(),
            self.access_query.clone(),
            self.limits,
        )
    }

    /// What access log records keep of query strings from now on, here
    /// and in every sibling (default: [`QueryLog::Redact`]).
    pub fn set_access_query(&self, query: QueryLog) {
        self.access_query.store(query as u8, Ordering::Relaxed);
    }

    fn access_query(&self) -> QueryLog {
        match self.access_query.load(Ordering::Relaxed) {
            q if q == QueryLog::Keep as u8 => QueryLog::Keep,
            q if q == QueryLog::Drop as u8 => QueryLog::Drop,
            _ => QueryLog::Redact,
        }
    }

    fn with_table(
        table: Arc<RwLock<Arc<Table>>>,
        changed: Arc<watch::Sender<u64>>,
        access_log: Option<AccessLog>,
        access_query: Arc<AtomicU8>,
        limits: Limits,
    ) -> Arc<Gateway> {
        Arc::new(Gateway {
            table,
            changed,
            access_log,
            access_query,
            upstreams: Upstreams::new(limits.upstream_connect),
            deadlines: std::sync::OnceLock::new(),
            limits,
            id_prefix: balance::thread_random(),
            ids: AtomicU64::new(0),
        })
    }

    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        self.table.read().expect("not poisoned").clone()
    }

    /// Replaces the table at once: requests already routed finish on the old one.
    pub fn set_table(&self, table: Table) {
        *self.table.write().expect("not poisoned") = Arc::new(table);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Serves `listener` until `shutdown` resolves; connections then finish
    /// their current request (within [`Limits::drain`]).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let cap = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
        self.serve_capped(listener, cap, shutdown).await
    }

    /// [`Gateway::serve`], with at most as many connections open as `cap`
    /// has permits.
    pub async fn serve_capped(
        self: Arc<Self>,
        listener: TcpListener,
        cap: Arc<Semaphore>,
        shutdown: impl Future<Output = ()>,
    ) {
        let drain = self.limits.drain;
        crate::server::accept_loop(listener, cap, shutdown, drain, move |stream, peer, stop| {
            self.clone().serve_connection(stream, peer, stop)
        })
        .await
    }

    /// Serves the requests of one client connection: HTTP/1.1, or HTTP/2
    /// when it opens with the HTTP/2 preface (h2c, prior knowledge); until
    /// `stop`, then it finishes its request in progress and closes.
    pub async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        mut stop: Stopping,
    ) {
        let _ = stream.set_nodelay(true);
        // Bounded like a request head: a client that sends nothing is cut off.
        let sniffed = tokio::select! {
            h2 = tokio::time::timeout(self.limits.header_read, sniff_h2(&stream)) => h2,
            _ = stop.requested() => return,
        };
        let h2 = match sniffed {
            Ok(Ok(h2)) => h2,
            _ => return,
        };
        self.serve_io(stream, peer, h2, false, stop).await
    }

    /// Serves one client connection over `io`, as HTTP/2 (`h2`) or
    /// HTTP/1.1; `secure`: it came over TLS. Once `stop` resolves, the
    /// request in progress (every stream, over HTTP/2) finishes and the
    /// connection closes.
    pub async fn serve_io<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        h2: bool,
        secure: bool,
        mut stop: Stopping,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.limits;
        let gw = self;
        let service = hyper::service::service_fn(move |req| {
            let gw = gw.clone();
            async move { Ok::<_, std::convert::Infallible>(gw.handle(req, peer, secure).await) }
        });
        if h2 {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.max_streams)
                .max_header_list_size(limits.max_head as u32)
                .keep_alive_interval(Some(Duration::from_secs(20)))
                .keep_alive_timeout(Duration::from_secs(20))
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.requested() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            return;
        }
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            // One buffer per write, not `writev`: fewer cycles per request
            // (bench/gateway/RESULTS.md).
            .writev(false)
            .max_buf_size(limits.max_head);
        // hyper's own limit is 100, kept on the stack; another one costs a
        // heap allocation per request.
        if limits.max_headers != 100 {
            http1.max_headers(limits.max_headers);
        }
        let conn = http1
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.requested() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Forwards one request; counts it, and logs it when there is an
    /// access log.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
    ) -> Response<Body> {
        let started = Instant::now();
        let asked = self.access_log.as_ref().map(|_| {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            (
                req.method().to_string(),
                crate::access::logged_path(path, self.access_query()).into_owned(),
            )
        });
        let mut served = Served::default();
        let resp = self.forward(req, peer, secure, &mut served).await;
        let took = started.elapsed();
        if let Some(stats) = &served.stats {
            stats.record(resp.status().as_u16(), took);
            if served.upstream_failed {
                stats.upstream_error();
            }
        }
        match (&self.access_log, asked) {
            (Some(log), Some((method, path))) => {
                let record = AccessRecord {
                    time: std::time::SystemTime::now(),
                    peer,
                    method,
                    path,
                    status: resp.status().as_u16(),
                    route: served.route,
                    service: served.service,
                    target: served.target,
                    duration: took,
                    upstream: served.upstream,
                    bytes: 0,
                };
                let (parts, body) = resp.into_parts();
                Response::from_parts(
                    parts,
                    crate::access::Logged::new(body, record, log.clone()).boxed(),
                )
            }
            _ => resp,
        }
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
        served: &mut Served,
    ) -> Response<Body> {
        let mut table = self.table();
        let mut hold = Hold::default();
        let index = loop {
            let host = request_host(&req);
            let Some(index) = table.route_index(host, req.uri().path()) else {
                return plain(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "cove gateway: no route for {}{}\n",
                        host.unwrap_or(""),
                        req.uri().path()
                    ),
                );
            };
            if !self.hold(&table.routes()[index].pool, &mut hold).await {
                break index;
            }
            table = self.table();
        };
        let route = &table.routes()[index];
        served.stats = Some(route.stats.clone());
        if self.access_log.is_some() {
            served.route = Some(format!(
                "{}{}",
                route.host.as_deref().unwrap_or("*"),
                route.path
            ));
            served.service = Some(route.pool.name.clone());
        }
        // A `Host` value is shared, not copied.
        // A WebSocket (or other) upgrade: the client's side of it.
        let upgrade = wants_upgrade(&req).then(|| {
            (
                req.headers().get(header::UPGRADE).cloned(),
                hyper::upgrade::on(&mut req),
            )
        });
        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let (mut parts, body) = req.into_parts();
        if let Some(max) = route.max_body
            && hyper::body::Body::size_hint(&body).lower() > max
        {
            return too_large(max);
        }
        // Origin form (`/path?query`), the prefix stripped if the route
        // says so; a request already in that form keeps its URI.
        let uri = if !route.strip_prefix && parts.uri.scheme().is_none() {
            std::mem::take(&mut parts.uri)
        } else {
            let pq = parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let pq = if route.strip_prefix {
                table::strip(&route.path, pq)
            } else {
                pq.to_string()
            };
            match pq.parse::<Uri>() {
                Ok(u) => u,
                Err(_) => return plain(StatusCode::BAD_REQUEST, "cove gateway: bad path\n"),
            }
        };
        // `TE: trailers` is end to end in spirit (gRPC needs it), the one
        // value HTTP/2 allows.
        let trailers = parts
            .headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        strip_hop_by_hop(&mut parts.headers);
        if trailers {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some((Some(protocol), _)) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        // An HTTP/2 request has no `Host`; an HTTP/1.1 upstream needs one.
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = &host
        {
            parts.headers.insert(header::HOST, h.clone());
        }
        // HTTP/2 upstreams get the absolute form (`:scheme`, `:authority`).
        let uri = if route.pool.http2 {
            let authority = host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            let pq = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            match Uri::builder()
                .scheme("http")
                .authority(authority)
                .path_and_query(pq)
                .build()
            {
                Ok(u) => u,
                Err(_) => return plain(StatusCode::BAD_REQUEST, "cove gateway: bad host\n"),
            }
        } else {
            uri
        };
        forwarding_headers(&mut parts.headers, peer, host, secure);
        if !parts.headers.contains_key("x-request-id") {
            let id = format!(
                "{:016x}-{}",
                self.id_prefix,
                self.ids.fetch_add(1, Ordering::Relaxed)
            );
            if let Ok(v) = HeaderValue::try_from(id) {
                parts.headers.insert("x-request-id", v);
            }
        }
        let replayable = hyper::body::Body::is_end_stream(&body);
        // What it takes to send an idempotent request again after its
        // target died under it.
        let again = (replayable && is_idempotent(&parts.method))
            .then(|| (parts.method.clone(), uri.clone(), parts.headers.clone()));
        // A body without a length over the route's limit is cut off when it
        // gets there: `over` says so, and the request is abandoned.
        let over = Arc::new(tokio::sync::Notify::new());
        let body = match route.max_body {
            Some(max) => crate::access::Capped::new(body, max, over.clone()).boxed(),
            None => body.boxed(),
        };
        let mut upstream_req = Request::new(body);
        *upstream_req.method_mut() = parts.method;
        *upstream_req.uri_mut() = uri;
        *upstream_req.headers_mut() = parts.headers;
        let wait = route.timeout.unwrap_or(self.limits.upstream_response);
        let mut avoid = None;
        let mut random = balance::thread_random;
        // A request that could not be sent (no connection) goes to each
        // other target in turn (each failed one is ejected, so it is not
        // picked again); so does one sent to a target that died under it,
        // when it is idempotent and has no body (as nginx does).
        // The pool tried: the route's, or the same route's in a newer table
        // (after every target failed, see `after_failures`).
        let mut pool = route.pool.clone();
        let mut attempts = pool.targets.len().clamp(2, 8);
        let mut attempt = 0;
        let mut rounds = 0;
        let mut held = Hold::default();
        let mut reached = false;
        loop {
            if attempt == attempts {
                // Every target failed to take a request that no target got:
                // replicas that died are on their way out of the table.
                rounds += 1;
                if reached {
                    break;
                }
                match self.after_failures(&table, route, &mut held, rounds).await {
                    Some(newer) => {
                        pool = newer;
                        attempts = pool.targets.len().clamp(2, 8);
                        (attempt, avoid) = (0, None);
                        continue;
                    }
                    None => break,
                }
            }
            let current = attempt;
            attempt += 1;
            let Some(target) = balance::pick(&pool, avoid, table::now_ms(), &mut random) else {
                if current > 0 {
                    attempt = attempts; // no other target to try
                    continue;
                }
                let why = if let Some(why) = &pool.unavailable {
                    format!("cove gateway: {why}\n")
                } else if pool.wake.is_some() {
                    format!(
                        "cove gateway: `{}` was scaled to zero and no replica was ready within {:?}\n",
                        pool.name, self.limits.hold
                    )
                } else {
                    format!("cove gateway: no healthy target for `{}`\n", pool.name)
                };
                return closing(plain(StatusCode::SERVICE_UNAVAILABLE, &why), replayable);
            };
            served.target = Some(target.addr);
            let guard = target.begin();
            // The target counts the request until its response body is done.
            // Made on first use, inside the runtime that serves.
            let deadline = self.deadlines.get_or_init(Deadlines::new).start(wait);
            // For the access log only: a clock read costs.
            let sent_at = self.access_log.as_ref().map(|_| Instant::now());
            if let Some((_, client_side)) = upgrade {
                return self
                    .upgrade(target, upstream_req, guard, client_side, &pool.name)
                    .await;
            }
            let send = async {
                if pool.http2 {
                    self.upstreams
                        .send_h2(target.addr, upstream_req, guard)
                        .await
                } else {
                    self.upstreams.send(target.addr, upstream_req, guard).await
                }
            };
            let sent = tokio::select! {
                r = send => Ok(r),
                _ = deadline.expired() => Err(false),
                _ = over.notified() => Err(true),
            };
            served.upstream = sent_at.map(|t| t.elapsed());
            match sent {
                Ok(Ok(mut resp)) => {
                    // A small answer to a request that may be sent again is
                    // read whole first: a target dying between its head and
                    // its body then costs a retry, not a broken answer.
                    if attempt < attempts
                        && small(&resp)
                        && let Some(again) = &again
                    {
                        let (parts, body) = resp.into_parts();
                        let whole = tokio::select! {
                            b = body.collect() => Some(b.ok()),
                            _ = deadline.expired() => None,
                        };
                        match whole {
                            Some(Some(b)) => {
                                resp = Response::from_parts(
                                    parts,
                                    Full::new(b.to_bytes())
                                        .map_err(|never| match never {})
                                        .boxed(),
                                );
                            }
                            Some(None) => {
                                target.record(table::Outcome::ConnectFailed, table::now_ms());
                                reached = true;
                                upstream_req = replay(again);
                                avoid = Some(target.addr);
                                continue;
                            }
                            None => {
                                served.upstream_failed = true;
                                return timed_out(&pool.name, target.addr, wait);
                            }
                        }
                    }
                    let outcome = if resp.status().is_server_error() {
                        table::Outcome::ServerError
                    } else {
                        table::Outcome::Ok
                    };
                    target.record(outcome, table::now_ms());
                    strip_hop_by_hop(resp.headers_mut());
                    return resp;
                }
                Ok(Err(SendError::Connect(_, req))) => {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                    // Nothing was sent: the same request, to another target.
                    upstream_req = *req;
                    avoid = Some(target.addr);
                    continue;
                }
                Ok(Err(SendError::Upstream(e))) if e.is_user() => {
                    // The client's own body failed as it was passed on (bad
                    // chunked framing, or the client went away): the
                    // client's fault, not the target's.
                    let why = std::error::Error::source(&e)
                        .map_or_else(|| e.to_string(), |cause| cause.to_string());
                    return closing(
                        plain(
                            StatusCode::BAD_REQUEST,
                            &format!("cove gateway: the request's body could not be read: {why}\n"),
                        ),
                        false,
                    );
                }
                Ok(Err(SendError::Upstream(_))) if attempt < attempts && again.is_some() => {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                    // It reached a target that died under it: never sent
                    // again to replicas still to come (it may be what
                    // killed it).
                    reached = true;
                    upstream_req = replay(again.as_ref().expect("a guard checked it"));
                    avoid = Some(target.addr);
                    continue;
                }
                Ok(Err(e)) => {
                    if matches!(e, SendError::Connect(..)) {
                        target.record(table::Outcome::ConnectFailed, table::now_ms());
                    }
                    served.upstream_failed = true;
                    return closing(
                        plain(
                            StatusCode::BAD_GATEWAY,
                            &format!("cove gateway: {} ({}): {e}\n", pool.name, target.addr),
                        ),
                        replayable,
                    );
                }
                Err(true) => return too_large(route.max_body.unwrap_or_default()),
                Err(false) => {
                    served.upstream_failed = true;
                    return closing(timed_out(&pool.name, target.addr, wait), replayable);
                }
            }
        }
        served.upstream_failed = true;
        closing(
            plain(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "cove gateway: no target of `{}` could be reached\n",
                    pool.name
                ),
            ),
            replayable,
        )
    }
}

/// The gateway's 504: `target` of `service` did not answer within `wait`.
fn timed_out(service: &str, target: SocketAddr, wait: Duration) -> Response<Body> {
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("cove gateway: {service} ({target}) did not answer within {wait:?}\n"),
    )
}

/// The same bodiless request again.
fn replay((method, uri, headers): &(hyper::Method, Uri, HeaderMap)) -> Request<Body> {
    let mut req = Request::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    req
}

/// Answers read whole before they are passed on (when they may be retried).
const SMALL_ANSWER: u64 = 64 * 1024;

/// Whether `resp` says its body is at most [`SMALL_ANSWER`] bytes.
fn small(resp: &Response<Body>) -> bool {
    resp.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n <= SMALL_ANSWER)
}

/// RFC 9110's idempotent methods.
fn is_idempotent(m: &hyper::Method) -> bool {
    use hyper::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(m)
}

/// `resp`, closing the client's connection unless the request's body was
/// all read (`done`): what is left of it must not be read as a request.
fn closing(mut resp: Response<Body>, done: bool) -> Response<Body> {
    if !done {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Whether `req` asks to switch protocols (HTTP/1.1 `Connection: upgrade`
/// with an `Upgrade` header).
fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == hyper::Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

impl Gateway {
    /// Forwards an upgrade request on a connection of its own; on `101`,
    /// joins the two upgraded streams (bytes both ways, the target counting
    /// it in flight until either side closes) and answers the client `101`.
    async fn upgrade(
        &self,
        target: Arc<table::Target>,
        req: Request<Body>,
        guard: table::InFlight,
        client_side: hyper::upgrade::OnUpgrade,
        service: &str,
    ) -> Response<Body> {
        let deadline = self
            .deadlines
            .get_or_init(Deadlines::new)
            .start(self.limits.upstream_response);
        let sent = tokio::select! {
            r = self.upstreams.send_upgrade(target.addr, req) => r,
            _ = deadline.expired() => {
                return plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("cove gateway: {service} ({}) did not answer the upgrade\n", target.addr),
                );
            }
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, SendError::Connect(..)) {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                }
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("cove gateway: {service} ({}): {e}\n", target.addr),
                );
            }
        };
        target.record(table::Outcome::Ok, table::now_ms());
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // Refused: an ordinary answer.
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, crate::upstream::holding(body, guard));
        }
        let upstream_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let _guard = guard;
            if let (Ok(client), Ok(upstream)) = tokio::join!(client_side, upstream_side) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(upstream),
                )
                .await;
            }
        });
        // The 101 with its `Upgrade`/`Connection` headers, as the upstream
        // sent them.
        let (parts, _) = resp.into_parts();
        Response::from_parts(
            parts,
            http_body_util::Empty::new().map_err(|n| match n {}).boxed(),
        )
    }
}

/// What [`Gateway::forward`] learned, for counters and the access log.
#[derive(Default)]
struct Served {
    stats: Option<Arc<RouteStats>>,
    /// For the access log only.
    route: Option<String>,
    service: Option<String>,
    target: Option<SocketAddr>,
    upstream: Option<Duration>,
    upstream_failed: bool,
}

fn too_large(max: u64) -> Response<Body> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "cove gateway: the request body is larger than this route's limit ({max} bytes)\n"
        ),
    )
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers that concern one connection, not the request.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none, or only `Connection`: one pass over the
    // names (comparisons of known names are cheap) before any removal.
    let is_hop = |k: &HeaderName| {
        *k == header::CONNECTION
            || *k == header::TE
            || *k == header::TRAILER
            || *k == header::UPGRADE
            || *k == header::TRANSFER_ENCODING
            || *k == header::PROXY_AUTHENTICATE
            || *k == header::PROXY_AUTHORIZATION
            || matches!(k.as_str(), "keep-alive" | "proxy-connection")
    };
    if !headers.keys().any(is_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
    // Transfer-Encoding is the connection's too; the client sets its own.
    headers.remove(header::TRANSFER_ENCODING);
}

fn forwarding_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    host: Option<HeaderValue>,
    secure: bool,
) {
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    // From a `String`: no copy.
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert("x-forwarded-for", v);
    }
    let proto = if secure { "https" } else { "http" };
    headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    if let Some(h) = host {
        headers.insert("x-forwarded-host", h);
    }
}

/// The host a request is for: its `Host` header, else its URI's authority
/// (HTTP/2, absolute form).
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Whether a connection opens with the HTTP/2 preface. Reads nothing (it
/// peeks), so the chosen server sees the bytes from the start.
async fn sniff_h2(stream: &TcpStream) -> std::io::Result<bool> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != PREFACE[..n] {
            return Ok(false);
        }
        if n == PREFACE.len() {
            return Ok(true);
        }
        // A prefix of it so far (rare): peek again shortly, as a peek
        // returns at once while anything is buffered.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
