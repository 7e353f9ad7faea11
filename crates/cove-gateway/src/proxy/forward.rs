//! Forwarding a request to a target of its route's pool, in steps: its
//! route (held while the pool's targets are on their way), the request as
//! the targets get it ([`Outgoing`]), then tries on one target after
//! another until one answers ([`Gateway::try_target`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use tokio::sync::Notify;

use super::handle::Served;
use super::{Body, Gateway, Hold};
use crate::answer::{closing, plain, timed_out, too_large};
use crate::balance;
use crate::deadline::{Deadline, Deadlines};
use crate::headers::{
    X_REQUEST_ID, forwarding_headers, request_host, strip_hop_by_hop, wants_upgrade,
};
use crate::table::{self, Pool, Route, Table, Target};
use crate::upstream::SendError;

/// An answer of the gateway's own instead of a forwarded request (boxed:
/// rare, and large).
type Refused = Box<Response<Body>>;

/// What it takes to send a bodiless request again.
type Replay = (hyper::Method, Uri, HeaderMap);

/// A request made ready for its targets.
struct Outgoing {
    req: Request<Body>,
    /// The client's side of an upgrade it asked for (WebSocket or other).
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    terms: Terms,
}

/// What every try of one request shares.
struct Terms {
    /// The request's body was all read (it has none): the client's
    /// connection may stay open after an answer of the gateway's own.
    replayable: bool,
    /// What it takes to send an idempotent request again after its target
    /// died under it.
    again: Option<Replay>,
    /// A body without a length over the route's limit is cut off when it
    /// gets there: `over` says so, and the request is abandoned.
    over: Arc<Notify>,
    /// How long a target has to answer.
    wait: Duration,
    /// The route's limit on request bodies.
    max_body: Option<u64>,
}

/// One try: a target of a pool; `more`: another try may follow.
struct Try<'a> {
    pool: &'a Pool,
    target: &'a Arc<Target>,
    more: bool,
}

/// What comes after one try.
enum Next {
    /// This is the client's answer.
    Answer(Response<Body>),
    /// The request goes to another target; `reached`: the one just tried
    /// got it (and died under it).
    Retry { req: Request<Body>, reached: bool },
}

/// Where the tries of one request are. A request that could not be sent
/// (no connection) goes to each other target in turn (each failed one is
/// ejected, so it is not picked again); so does one sent to a target that
/// died under it, when it is idempotent and has no body (as nginx does).
struct Tries {
    /// The pool tried: the route's, or the same route's in a newer table
    /// (after every target failed, see [`Gateway::after_failures`]).
    pool: Arc<Pool>,
    attempts: usize,
    attempt: usize,
    rounds: u32,
    /// The target that just failed.
    avoid: Option<SocketAddr>,
    /// A target got the request (and died under it).
    reached: bool,
}

impl Tries {
    fn new(pool: Arc<Pool>) -> Tries {
        let attempts = pool.targets.len().clamp(2, 8);
        Tries {
            pool,
            attempts,
            attempt: 0,
            rounds: 0,
            avoid: None,
            reached: false,
        }
    }

    /// The next round, on a newer table's pool.
    fn again_on(&mut self, pool: Arc<Pool>) {
        self.attempts = pool.targets.len().clamp(2, 8);
        self.pool = pool;
        (self.attempt, self.avoid) = (0, None);
    }
}

impl Gateway {
    #[inline]
    pub(super) async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
        served: &mut Served,
    ) -> Response<Body> {
        let (table, index) = match self.route(&req).await {
            Ok(found) => found,
            Err(resp) => return *resp,
        };
        let route = &table.routes()[index];
        self.note_route(route, served);
        let out = match self.outgoing(req, route, peer, secure) {
            Ok(out) => out,
            Err(resp) => return *resp,
        };
        self.send(&table, route, out, served).await
    }

    /// The table and the index of the route `req` takes, once its pool has
    /// a target or none is coming (see [`Gateway::hold`]); else 404.
    #[inline]
    async fn route(&self, req: &Request<Incoming>) -> Result<(Arc<Table>, usize), Refused> {
        let mut table = self.table();
        let mut hold = Hold::default();
        loop {
            let host = request_host(req);
            let Some(index) = table.route_index(host, req.uri().path()) else {
                return Err(Box::new(plain(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "cove gateway: no route for {}{}\n",
                        host.unwrap_or(""),
                        req.uri().path()
                    ),
                )));
            };
            if !self.hold(&table.routes()[index].pool, &mut hold).await {
                return Ok((table, index));
            }
            table = self.table();
        }
    }

    /// What counters and the access log keep of `route`.
    #[inline]
    fn note_route(&self, route: &Route, served: &mut Served) {
        served.stats = Some(route.stats.clone());
        if self.access_log.is_some() {
            served.route = Some(format!(
                "{}{}",
                route.host.as_deref().unwrap_or("*"),
                route.path
            ));
            served.service = Some(route.pool.name.clone());
        }
    }

    /// `req` as the targets of `route` get it: its URI in the form they
    /// need, hop-by-hop headers out, forwarding headers and a request id
    /// in, its body capped at the route's limit; or the gateway's answer
    /// (413, 400).
    #[inline]
    fn outgoing(
        &self,
        mut req: Request<Incoming>,
        route: &Route,
        peer: SocketAddr,
        secure: bool,
    ) -> Result<Outgoing, Refused> {
        // A WebSocket (or other) upgrade: the client's side of it.
        let upgrade = wants_upgrade(&req).then(|| {
            (
                req.headers().get(header::UPGRADE).cloned(),
                hyper::upgrade::on(&mut req),
            )
        });
        // A `Host` value is shared, not copied.
        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let (mut parts, body) = req.into_parts();
        if let Some(max) = route.max_body
            && hyper::body::Body::size_hint(&body).lower() > max
        {
            return Err(Box::new(too_large(max)));
        }
        let uri = origin_uri(&mut parts.uri, route)?;
        let protocol = upgrade.as_ref().and_then(|(p, _)| p.as_ref());
        upstream_headers(&mut parts.headers, protocol, host.as_ref());
        // HTTP/2 upstreams get the absolute form (`:scheme`, `:authority`).
        let uri = if route.pool.http2 {
            absolute_uri(&uri, host.as_ref())?
        } else {
            uri
        };
        forwarding_headers(&mut parts.headers, peer, host, secure);
        self.request_id(&mut parts.headers);
        let replayable = hyper::body::Body::is_end_stream(&body);
        let again = (replayable && is_idempotent(&parts.method))
            .then(|| (parts.method.clone(), uri.clone(), parts.headers.clone()));
        let over = Arc::new(Notify::new());
        let body = match route.max_body {
            Some(max) => crate::access::Capped::new(body, max, over.clone()).boxed(),
            None => body.boxed(),
        };
        let mut upstream_req = Request::new(body);
        *upstream_req.method_mut() = parts.method;
        *upstream_req.uri_mut() = uri;
        *upstream_req.headers_mut() = parts.headers;
        Ok(Outgoing {
            req: upstream_req,
            upgrade: upgrade.map(|(_, client_side)| client_side),
            terms: Terms {
                replayable,
                again,
                over,
                wait: route.timeout.unwrap_or(self.limits.upstream_response),
                max_body: route.max_body,
            },
        })
    }

    /// An `X-Request-Id`, unless the request has one.
    fn request_id(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(&X_REQUEST_ID) {
            let id = format!(
                "{:016x}-{}",
                self.id_prefix,
                self.ids.fetch_add(1, Ordering::Relaxed)
            );
            if let Ok(v) = HeaderValue::try_from(id) {
                headers.insert(X_REQUEST_ID.clone(), v);
            }
        }
    }

    /// Tries the targets of `route`'s pool (of `table`, then of newer
    /// tables while no target got the request) until one answers.
    #[inline]
    async fn send(
        &self,
        table: &Arc<Table>,
        route: &Route,
        out: Outgoing,
        served: &mut Served,
    ) -> Response<Body> {
        let Outgoing {
            mut req,
            mut upgrade,
            terms,
        } = out;
        let mut random = balance::thread_random;
        let mut tries = Tries::new(route.pool.clone());
        let mut held = Hold::default();
        loop {
            if tries.attempt == tries.attempts {
                // Every target failed to take a request that no target got:
                // replicas that died are on their way out of the table.
                tries.rounds += 1;
                if tries.reached {
                    break;
                }
                match self
                    .after_failures(table, route, &mut held, tries.rounds)
                    .await
                {
                    Some(newer) => {
                        tries.again_on(newer);
                        continue;
                    }
                    None => break,
                }
            }
            let current = tries.attempt;
            tries.attempt += 1;
            let pool = &tries.pool;
            let Some(target) = balance::pick(pool, tries.avoid, table::now_ms(), &mut random)
            else {
                if current > 0 {
                    tries.attempt = tries.attempts; // no other target to try
                    continue;
                }
                let why = self.no_target(pool);
                return closing(
                    plain(StatusCode::SERVICE_UNAVAILABLE, &why),
                    terms.replayable,
                );
            };
            served.target = Some(target.addr);
            if let Some(client_side) = upgrade.take() {
                // The target counts the request until the upgraded
                // connection closes.
                let guard = target.begin();
                return self
                    .upgrade(target, req, guard, client_side, &pool.name)
                    .await;
            }
            let at = Try {
                pool,
                target: &target,
                more: tries.attempt < tries.attempts,
            };
            match self.try_target(&at, req, &terms, served).await {
                Next::Answer(resp) => return resp,
                Next::Retry {
                    req: again,
                    reached,
                } => {
                    req = again;
                    tries.reached |= reached;
                    tries.avoid = Some(target.addr);
                }
            }
        }
        served.upstream_failed = true;
        closing(
            plain(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "cove gateway: no target of `{}` could be reached\n",
                    tries.pool.name
                ),
            ),
            terms.replayable,
        )
    }

    /// Why `pool` has no target for a request (the 503's text).
    fn no_target(&self, pool: &Pool) -> String {
        if let Some(why) = &pool.unavailable {
            format!("cove gateway: {why}\n")
        } else if pool.wake.is_some() {
            format!(
                "cove gateway: `{}` was scaled to zero and no replica was ready within {:?}\n",
                pool.name, self.limits.hold
            )
        } else {
            format!("cove gateway: no healthy target for `{}`\n", pool.name)
        }
    }

    /// One try: `req` sent to the target and its answer awaited.
    #[inline]
    async fn try_target(
        &self,
        at: &Try<'_>,
        req: Request<Body>,
        terms: &Terms,
        served: &mut Served,
    ) -> Next {
        let Try { pool, target, more } = *at;
        // The target counts the request until its response body is done.
        let guard = target.begin();
        // Made on first use, inside the runtime that serves.
        let deadline = self.deadlines.get_or_init(Deadlines::new).start(terms.wait);
        // For the access log only: a clock read costs.
        let sent_at = self.access_log.as_ref().map(|_| Instant::now());
        let send = async {
            if pool.http2 {
                self.upstreams.send_h2(target.addr, req, guard).await
            } else {
                self.upstreams.send(target.addr, req, guard).await
            }
        };
        let sent = tokio::select! {
            r = send => Ok(r),
            _ = deadline.expired() => Err(false),
            _ = terms.over.notified() => Err(true),
        };
        served.upstream = sent_at.map(|t| t.elapsed());
        let failed = || target.record(table::Outcome::ConnectFailed, table::now_ms());
        match sent {
            Ok(Ok(resp)) => self.answered(resp, at, terms, &deadline, served).await,
            Ok(Err(SendError::Connect(_, req))) => {
                failed();
                // Nothing was sent: the same request, to another target.
                Next::Retry {
                    req: *req,
                    reached: false,
                }
            }
            Ok(Err(SendError::Upstream(e))) if e.is_user() => {
                // The client's own body failed as it was passed on (bad
                // chunked framing, or the client went away): the client's
                // fault, not the target's.
                let why = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |cause| cause.to_string());
                Next::Answer(closing(
                    plain(
                        StatusCode::BAD_REQUEST,
                        &format!("cove gateway: the request's body could not be read: {why}\n"),
                    ),
                    false,
                ))
            }
            Ok(Err(SendError::Upstream(_))) if more && let Some(again) = &terms.again => {
                failed();
                // It reached a target that died under it: never sent
                // again to replicas still to come (it may be what killed
                // it).
                Next::Retry {
                    req: replay(again),
                    reached: true,
                }
            }
            Ok(Err(e)) => {
                if matches!(e, SendError::Connect(..)) {
                    failed();
                }
                served.upstream_failed = true;
                Next::Answer(closing(
                    plain(
                        StatusCode::BAD_GATEWAY,
                        &format!("cove gateway: {} ({}): {e}\n", pool.name, target.addr),
                    ),
                    terms.replayable,
                ))
            }
            Err(true) => Next::Answer(too_large(terms.max_body.unwrap_or_default())),
            Err(false) => {
                served.upstream_failed = true;
                Next::Answer(closing(
                    timed_out(&pool.name, target.addr, terms.wait),
                    terms.replayable,
                ))
            }
        }
    }

    /// A target's answer, passed on. A small answer to a request that may
    /// be sent again is read whole first: a target dying between its head
    /// and its body then costs a retry, not a broken answer.
    #[inline]
    async fn answered(
        &self,
        mut resp: Response<Body>,
        at: &Try<'_>,
        terms: &Terms,
        deadline: &Deadline,
        served: &mut Served,
    ) -> Next {
        let Try { pool, target, more } = *at;
        if more
            && small(&resp)
            && let Some(again) = &terms.again
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
                    return Next::Retry {
                        req: replay(again),
                        reached: true,
                    };
                }
                None => {
                    served.upstream_failed = true;
                    return Next::Answer(timed_out(&pool.name, target.addr, terms.wait));
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
        Next::Answer(resp)
    }
}

/// Origin form (`/path?query`), the prefix stripped if the route says so;
/// a request already in that form keeps its URI (taken from `uri`).
#[inline]
fn origin_uri(uri: &mut Uri, route: &Route) -> Result<Uri, Refused> {
    if !route.strip_prefix && uri.scheme().is_none() {
        return Ok(std::mem::take(uri));
    }
    let pq = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let pq = if route.strip_prefix {
        table::strip(&route.path, pq)
    } else {
        pq.to_string()
    };
    pq.parse::<Uri>()
        .map_err(|_| Box::new(plain(StatusCode::BAD_REQUEST, "cove gateway: bad path\n")))
}

/// The headers of a request as it leaves: hop-by-hop ones out but
/// `TE: trailers`, the upgrade's (`protocol`) back in, `Host` set.
#[inline]
fn upstream_headers(
    headers: &mut HeaderMap,
    protocol: Option<&HeaderValue>,
    host: Option<&HeaderValue>,
) {
    // `TE: trailers` is end to end in spirit (gRPC needs it), the one
    // value HTTP/2 allows.
    let trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = protocol {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    // An HTTP/2 request has no `Host`; an HTTP/1.1 upstream needs one.
    if !headers.contains_key(header::HOST)
        && let Some(h) = host
    {
        headers.insert(header::HOST, h.clone());
    }
}

/// `uri` in the absolute form (`:scheme`, `:authority`) an HTTP/2
/// upstream gets.
fn absolute_uri(uri: &Uri, host: Option<&HeaderValue>) -> Result<Uri, Refused> {
    let authority = host
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let pq = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(pq)
        .build()
        .map_err(|_| Box::new(plain(StatusCode::BAD_REQUEST, "cove gateway: bad host\n")))
}

/// The same bodiless request again.
fn replay((method, uri, headers): &Replay) -> Request<Body> {
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
