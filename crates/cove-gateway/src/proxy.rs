//! The proxy: an HTTP/1.1 server that forwards each request to a target of
//! its route's pool over a pool of kept-alive upstream connections,
//! streaming bodies both ways.
//!
//! Forwarded requests get `X-Forwarded-For` (appended), `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Request-Id` (when absent); hop-by-hop headers
//! (and those named in `Connection`) are removed both ways. A request that
//! could not be connected is retried once on another target when it has no
//! body (the body of one that has was consumed). Answers of the gateway
//! itself: 404 no route, 502 upstream failed, 503 no target, 504 timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::balance;
use crate::table::{self, Table};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Limits that keep a client from holding the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a client to send a request's headers.
    pub header_read: Duration,
    /// Time for an upstream to answer (headers).
    pub upstream_response: Duration,
    /// Time to connect to an upstream.
    pub upstream_connect: Duration,
    /// Largest request head, bytes.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            upstream_response: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(5),
            max_head: 64 * 1024,
        }
    }
}

pub struct Gateway {
    table: RwLock<Arc<Table>>,
    client: Client<HttpConnector, Body>,
    limits: Limits,
    /// Request ids: a random prefix and a counter.
    id_prefix: u64,
    ids: AtomicU64,
}

impl Gateway {
    pub fn new(table: Table, limits: Limits) -> Arc<Gateway> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(limits.upstream_connect));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Arc::new(Gateway {
            table: RwLock::new(Arc::new(table)),
            client,
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
    }

    /// Serves `listener` until `shutdown` resolves; connections then finish
    /// their current request.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    // Out of descriptors, say: wait a little rather than spin.
                    Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue }
                },
                _ = &mut shutdown => return,
            };
            let _ = stream.set_nodelay(true);
            let gw = self.clone();
            let limits = self.limits;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, std::convert::Infallible>(gw.handle(req, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read)
                    .max_buf_size(limits.max_head)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Forwards one request.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let table = self.table();
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let path = req.uri().path().to_string();
        let Some(route) = table.route(host.as_deref(), &path) else {
            return plain(
                StatusCode::NOT_FOUND,
                &format!(
                    "cove gateway: no route for {}{path}\n",
                    host.as_deref().unwrap_or("")
                ),
            );
        };
        let (mut parts, body) = req.into_parts();
        let path_and_query = {
            let pq = parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            if route.strip_prefix {
                table::strip(&route.path, pq)
            } else {
                pq.to_string()
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        forwarding_headers(&mut parts.headers, peer, host.as_deref());
        if !parts.headers.contains_key("x-request-id") {
            let id = format!(
                "{:016x}-{}",
                self.id_prefix,
                self.ids.fetch_add(1, Ordering::Relaxed)
            );
            if let Ok(v) = HeaderValue::from_str(&id) {
                parts.headers.insert("x-request-id", v);
            }
        }
        let replayable = hyper::body::Body::is_end_stream(&body);
        let mut body = Some(body.boxed());
        let mut avoid = None;
        let mut random = balance::thread_random;
        for attempt in 0..2 {
            let Some(target) = balance::pick(&route.pool, avoid, &mut random) else {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "cove gateway: no healthy target for `{}`\n",
                        route.pool.name
                    ),
                );
            };
            let guard = target.begin();
            let uri: Uri = match format!("http://{}{path_and_query}", target.addr).parse() {
                Ok(u) => u,
                Err(_) => return plain(StatusCode::BAD_REQUEST, "cove gateway: bad path\n"),
            };
            let mut builder = Request::builder()
                .method(parts.method.clone())
                .uri(uri)
                .version(hyper::Version::HTTP_11);
            if let Some(h) = builder.headers_mut() {
                *h = parts.headers.clone();
            }
            let this_body = body.take().unwrap_or_else(empty);
            let Ok(upstream_req) = builder.body(this_body) else {
                return plain(StatusCode::BAD_REQUEST, "cove gateway: bad request\n");
            };
            let sent = tokio::time::timeout(
                self.limits.upstream_response,
                self.client.request(upstream_req),
            )
            .await;
            match sent {
                Ok(Ok(resp)) => {
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    // The target counts the request until its body is done.
                    let rbody = rbody
                        .map_frame(move |f| {
                            let _ = &guard;
                            f
                        })
                        .boxed();
                    return Response::from_parts(rparts, rbody);
                }
                Ok(Err(e)) if e.is_connect() && replayable && attempt == 0 => {
                    avoid = Some(target.addr);
                    continue;
                }
                Ok(Err(e)) => {
                    return plain(
                        StatusCode::BAD_GATEWAY,
                        &format!("cove gateway: {} ({}): {e}\n", route.pool.name, target.addr),
                    );
                }
                Err(_) => {
                    return plain(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!(
                            "cove gateway: {} ({}) did not answer within {:?}\n",
                            route.pool.name, target.addr, self.limits.upstream_response
                        ),
                    );
                }
            }
        }
        plain(
            StatusCode::BAD_GATEWAY,
            &format!(
                "cove gateway: no target of `{}` could be reached\n",
                route.pool.name
            ),
        )
    }
}

fn empty() -> Body {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
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

fn forwarding_headers(headers: &mut HeaderMap, peer: SocketAddr, host: Option<&str>) {
    let ip = peer.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(h) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert("x-forwarded-host", h);
    }
}
