//! Forwarding a request to a target of its route's pool, in steps: its
//! head checked ([`refused_head`]: size, `Host`, framing), its route (held
//! while the pool's targets are on their way), the request as the targets
//! get it ([`Outgoing`]), then the tries (`tries.rs`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use tokio::sync::Notify;

use super::handle::Served;
use super::{Body, Gateway, Hold, Routed};
use crate::answer::{closing, plain, too_large};
use crate::headers::{
    X_REQUEST_ID, fields, forwarding_headers, framing, request_host, strip_hop_by_hop, valid_host,
    wants_upgrade,
};
use crate::preview;
use crate::table::{self, Route, Table};

/// An answer of the gateway's own instead of a forwarded request (boxed:
/// rare, and large).
pub(super) type Refused = Box<Response<Body>>;

/// What it takes to send a bodiless request again.
pub(super) type Replay = (hyper::Method, Uri, HeaderMap);

/// A request made ready for its targets.
pub(super) struct Outgoing {
    pub(super) req: Request<Body>,
    /// The client's side of an upgrade it asked for (WebSocket or other).
    pub(super) upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub(super) terms: Terms,
}

/// What every try of one request shares.
pub(super) struct Terms {
    /// The request's body was all read (it has none): the client's
    /// connection may stay open after an answer of the gateway's own.
    pub(super) replayable: bool,
    /// What it takes to send an idempotent request again after its target
    /// died under it.
    pub(super) again: Option<Replay>,
    /// A body without a length over the route's limit is cut off when it
    /// gets there: `over` says so, and the request is abandoned.
    pub(super) over: Arc<Notify>,
    /// How long a target has to answer.
    pub(super) wait: Duration,
    /// The route's limit on request bodies.
    pub(super) max_body: Option<u64>,
    /// Notified when the client stopped sending the request's body for
    /// longer than [`crate::limits::Limits::body_read`] (see [`Paced`]);
    /// `None`: the request has no body.
    pub(super) stalled: Option<Arc<Notify>>,
}

impl Gateway {
    #[inline]
    pub(super) async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        secure: bool,
        served: &mut Served,
    ) -> Response<Body> {
        if let Some(refused) = refused_head(&req, self.limits.max_head) {
            return *refused;
        }
        let (table, index, key) = match self.route(&req, local).await {
            Ok(found) => found,
            Err(resp) => return *resp,
        };
        let route = table.route_at(index);
        let pool = route.pool_for(key.as_deref()).clone();
        self.note_route(&table, index, &pool, key.as_deref(), served);
        let out = match self.outgoing(req, route, peer, secure) {
            Ok(out) => out,
            Err(resp) => return *resp,
        };
        let at = Routed {
            table: &table,
            index,
            key: key.as_deref(),
        };
        self.send(&at, pool, out, served).await
    }

    /// The table, the index of the route `req` takes (on a connection
    /// accepted at `local`) and its preview key, once the pool it goes to
    /// has a target or none is coming (see [`Gateway::hold`]); else 404.
    #[inline]
    async fn route(
        &self,
        req: &Request<Incoming>,
        local: Option<SocketAddr>,
    ) -> Result<(Arc<Table>, usize, Option<String>), Refused> {
        let mut table = self.table();
        let mut hold = Hold::default();
        loop {
            let host = request_host(req);
            let Some(index) = table.find(local, host, req.uri().path()) else {
                return Err(Box::new(plain(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "cove gateway: no route for {}{}\n",
                        host.unwrap_or(""),
                        req.uri().path()
                    ),
                )));
            };
            let route = table.route_at(index);
            // Looked for only where it matters: no header scan otherwise.
            let key = if route.keyed() {
                route.key(asked_key(req.headers())).map(str::to_string)
            } else {
                None
            };
            if !self.hold(route.pool_for(key.as_deref()), &mut hold).await {
                return Ok((table, index, key));
            }
            table = self.table();
        }
    }

    /// What counters and the access log keep of the route at `index` (the
    /// request goes to `pool`, by `key`).
    #[inline]
    fn note_route(
        &self,
        table: &Table,
        index: usize,
        pool: &table::Pool,
        key: Option<&str>,
        served: &mut Served,
    ) {
        served.stats = Some(table.route_at(index).stats.clone());
        if self.access_log.is_some() {
            served.route = Some(table.route_name(index));
            served.service = Some(pool.name.clone());
            served.preview = key.map(str::to_string);
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
        // The target's authority (HTTP/2, absolute form) wins over `Host`
        // (RFC 9110 §7.2), which is then made from it; a `Host` value is
        // shared, not copied.
        let authority = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(a) = &authority {
            req.headers_mut().insert(header::HOST, a.clone());
        }
        let host = authority.or_else(|| req.headers().get(header::HOST).cloned());
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
        if let Some(key) = &route.preview {
            set_key(&mut parts.headers, key)?;
        }
        self.request_id(&mut parts.headers);
        let replayable = hyper::body::Body::is_end_stream(&body);
        let again = (replayable && is_idempotent(&parts.method))
            .then(|| (parts.method.clone(), uri.clone(), parts.headers.clone()));
        let over = Arc::new(Notify::new());
        let stalled = (!replayable).then(|| Arc::new(Notify::new()));
        let gap = self.limits.body_read;
        let body = match (route.max_body, &stalled) {
            (Some(max), Some(s)) => Paced::new(
                crate::access::Capped::new(body, max, over.clone()),
                gap,
                s.clone(),
            )
            .boxed(),
            (None, Some(s)) => Paced::new(body, gap, s.clone()).boxed(),
            (Some(max), None) => crate::access::Capped::new(body, max, over.clone()).boxed(),
            (None, None) => body.boxed(),
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
                stalled,
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
}

static X_COVE_PREVIEW: header::HeaderName = header::HeaderName::from_static(preview::HEADER);
static BAGGAGE: header::HeaderName = header::HeaderName::from_static(preview::BAGGAGE);

/// The preview key a request asks for (see [`crate::preview`]).
fn asked_key(headers: &HeaderMap) -> Option<&str> {
    preview::request_key(
        headers
            .get_all(&X_COVE_PREVIEW)
            .iter()
            .map(HeaderValue::as_bytes),
        headers.get_all(&BAGGAGE).iter().map(HeaderValue::as_bytes),
    )
}

/// Sets `key` on a forwarded request: `X-Cove-Preview` replaced, and
/// `cove-preview` in `baggage` (the client's other members kept).
fn set_key(headers: &mut HeaderMap, key: &str) -> Result<(), Refused> {
    let bad = || {
        Box::new(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cove gateway: the preview key {key:?} of this route cannot be sent on\n"),
        ))
    };
    if !preview::valid_key(key) {
        return Err(bad());
    }
    let baggage = preview::baggage_with(
        headers.get_all(&BAGGAGE).iter().map(HeaderValue::as_bytes),
        key,
    );
    let baggage = HeaderValue::from_bytes(&baggage).map_err(|_| bad())?;
    let key = HeaderValue::from_str(key).map_err(|_| bad())?;
    headers.insert(X_COVE_PREVIEW.clone(), key);
    headers.insert(BAGGAGE.clone(), baggage);
    Ok(())
}

/// The gateway's answer to a request whose head it refuses, before any
/// routing: larger than `max_head` (431); HTTP/1.1 without `Host`, more
/// than one `Host`, an invalid `Host` or target authority (400, RFC 9112
/// §3.2); ambiguous framing (400, or 501 for an unknown transfer coding,
/// RFC 9112 §6). A refused framing closes the connection: where the next
/// request would start is not known.
pub(super) fn refused_head<B>(req: &Request<B>, max_head: usize) -> Option<Refused> {
    // One walk over the fields: their framing, and the head's size as sent
    // (at least: separators, one space after each colon). hyper's read
    // buffer lets heads somewhat over its limit through whole.
    let mut size = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len() + 7)
        + 12
        + 2;
    let framed = framing(fields(req.headers()).inspect(|(k, v)| size += k.len() + v.len() + 4));
    if size > max_head {
        return Some(Box::new(closing(
            plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                &format!("cove gateway: the request head is larger than {max_head} bytes\n"),
            ),
            false,
        )));
    }
    if let Err(e) = framed {
        return Some(Box::new(closing(
            plain(
                e.status(),
                &format!("cove gateway: bad request: {}\n", e.why()),
            ),
            false,
        )));
    }
    let bad = |why: &str| {
        Some(Box::new(closing(
            plain(
                StatusCode::BAD_REQUEST,
                &format!("cove gateway: bad request: {why}\n"),
            ),
            false,
        )))
    };
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == hyper::Version::HTTP_11 => return bad("no Host"),
        (Some(_), Some(_)) => return bad("more than one Host"),
        (Some(h), None) if !valid_host(h.as_bytes()) => return bad("an invalid Host"),
        _ => {}
    }
    if let Some(a) = req.uri().authority()
        && !valid_host(a.as_str().as_bytes())
    {
        return bad("an invalid authority in the target");
    }
    None
}

/// A request body that may pause for at most `gap` between two frames
/// while the upstream waits for it (nginx's `client_body_timeout`): past
/// it, `stalled` is notified and the body never yields again (the request
/// is abandoned: the upstream never sees a complete body). The clock runs
/// only while the body is polled and has nothing: an upstream slow to
/// read is not the client's fault.
pub(super) struct Paced<B> {
    inner: B,
    gap: Duration,
    /// Made at the first wait, reset at the next ones.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timer runs for the current wait.
    armed: bool,
    stalled: Arc<Notify>,
    tripped: bool,
}

impl<B> Paced<B> {
    pub(super) fn new(inner: B, gap: Duration, stalled: Arc<Notify>) -> Paced<B> {
        Paced {
            inner,
            gap,
            timer: None,
            armed: false,
            stalled,
            tripped: false,
        }
    }
}

impl<B> hyper::body::Body for Paced<B>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.tripped {
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let gap = this.gap;
                let timer = match &mut this.timer {
                    Some(t) if !this.armed => {
                        t.as_mut().reset(tokio::time::Instant::now() + gap);
                        t
                    }
                    Some(t) => t,
                    None => this.timer.insert(Box::pin(tokio::time::sleep(gap))),
                };
                this.armed = true;
                if timer.as_mut().poll(cx).is_ready() {
                    this.tripped = true;
                    this.timer = None;
                    this.stalled.notify_one();
                }
                Poll::Pending
            }
            ready => {
                // Some of the body came (or its end): the next gap starts
                // at the next wait.
                this.armed = false;
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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

/// RFC 9110's idempotent methods.
pub(super) fn is_idempotent(m: &hyper::Method) -> bool {
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
