//! One request: forwarded, counted, logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{AccessRecord, Body, Gateway};
use crate::metrics::RouteStats;

impl Gateway {
    /// Forwards one request; counts it, and logs it when there is an
    /// access log.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
    ) -> Response<Body> {
        self.handle_at(req, peer, None, secure).await
    }

    /// [`Gateway::handle`] for a request on a connection accepted at
    /// `local` (its listener route, if the table has one, takes it).
    pub async fn handle_at(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
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
        let resp = self.forward(req, peer, local, secure, &mut served).await;
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
                    preview: served.preview,
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
}

/// What [`Gateway::forward`] learned, for counters and the access log.
#[derive(Default)]
pub(super) struct Served {
    pub(super) stats: Option<Arc<RouteStats>>,
    /// For the access log only.
    pub(super) route: Option<String>,
    pub(super) service: Option<String>,
    pub(super) preview: Option<String>,
    pub(super) target: Option<SocketAddr>,
    pub(super) upstream: Option<Duration>,
    pub(super) upstream_failed: bool,
}
