//! Forwarding a request to a target of its route's pool: the upstream
//! request, retries, and the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};

use super::handle::Served;
use super::{Body, Gateway, Hold};
use crate::answer::{closing, plain, timed_out, too_large};
use crate::balance;
use crate::deadline::Deadlines;
use crate::headers::{forwarding_headers, request_host, strip_hop_by_hop, wants_upgrade};
use crate::table;
use crate::upstream::SendError;

impl Gateway {
    pub(super) async fn forward(
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
