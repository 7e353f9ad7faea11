//! Connections to upstreams: kept alive and reused, one pool per gateway
//! (so per thread), per target address.
//!
//! A connection goes back to the pool when the response body it carried has
//! been read to the end; one whose body was abandoned is closed. A request
//! that could not even be written to a pooled connection (the upstream
//! closed it meanwhile) is sent again on a new one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::client::conn::http2;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::answer::Body;
use crate::table::InFlight;

/// Most idle connections kept per target.
const MAX_IDLE: usize = 512;

pub struct Upstreams {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<Body>>>>,
    /// One multiplexed HTTP/2 connection per target.
    h2: Mutex<HashMap<SocketAddr, http2::SendRequest<Body>>>,
    connect_timeout: Duration,
}

#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: nothing was sent; the request is
    /// given back.
    Connect(String, Box<Request<Body>>),
    /// The upstream failed after the request was (maybe) sent.
    Upstream(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e, _) => write!(f, "cannot connect: {e}"),
            SendError::Upstream(e) => write!(f, "{e}"),
        }
    }
}

impl Upstreams {
    pub fn new(connect_timeout: Duration) -> Arc<Upstreams> {
        Arc::new(Upstreams {
            idle: Mutex::new(HashMap::new()),
            h2: Mutex::new(HashMap::new()),
            connect_timeout,
        })
    }

    fn checkout(&self, addr: SocketAddr) -> Option<SendRequest<Body>> {
        let mut idle = crate::lock(&self.idle);
        let list = idle.get_mut(&addr)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn checkin(&self, addr: SocketAddr, s: SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        let mut idle = crate::lock(&self.idle);
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    async fn tcp(&self, addr: SocketAddr) -> Result<tokio::net::TcpStream, String> {
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| format!("no answer within {:?}", self.connect_timeout))?
                .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Body>, String> {
        let stream = self.tcp(addr).await?;
        // One buffer per write rather than `writev` of head and body: fewer
        // cycles per request here (bench/gateway/RESULTS.md).
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends `req` to `addr` over the target's HTTP/2 connection (made when
    /// there is none, or it closed); `guard` is released when the response
    /// body is dropped.
    pub async fn send_h2(
        &self,
        addr: SocketAddr,
        req: Request<Body>,
        guard: InFlight,
    ) -> Result<Response<Body>, SendError> {
        let existing = {
            let h2 = crate::lock(&self.h2);
            h2.get(&addr).filter(|s| !s.is_closed()).cloned()
        };
        let mut sender = match existing {
            Some(s) => s,
            None => {
                let stream = match self.tcp(addr).await {
                    Ok(s) => s,
                    Err(e) => return Err(SendError::Connect(e, Box::new(req))),
                };
                let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(TokioIo::new(stream))
                    .await
                    .map_err(SendError::Upstream)?;
                tokio::spawn(conn);
                crate::lock(&self.h2).insert(addr, sender.clone());
                sender
            }
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(SendError::Upstream)?;
        let (parts, body) = resp.into_parts();
        Ok(Response::from_parts(parts, holding(body, guard)))
    }

    /// Sends an upgrade request (WebSocket) to `addr` on a connection of
    /// its own, which is never pooled: after a `101` it belongs to the
    /// upgraded stream.
    pub async fn send_upgrade(
        &self,
        addr: SocketAddr,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let stream = match self.tcp(addr).await {
            Ok(s) => s,
            Err(e) => return Err(SendError::Connect(e, Box::new(req))),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Upstream)?;
        tokio::spawn(conn.with_upgrades());
        sender.send_request(req).await.map_err(SendError::Upstream)
    }

    /// Sends `req` to `addr`; the response's body gives the connection back
    /// when read to the end, and releases `guard` when dropped.
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        mut req: Request<Body>,
        guard: InFlight,
    ) -> Result<Response<Body>, SendError> {
        while let Some(mut s) = self.checkout(addr) {
            if s.ready().await.is_err() {
                continue;
            }
            match s.try_send_request(req).await {
                Ok(resp) => return Ok(self.returning(addr, s, resp, guard)),
                Err(mut e) => match e.take_message() {
                    // Not written: try another connection.
                    Some(r) => req = r,
                    None => return Err(SendError::Upstream(e.into_error())),
                },
            }
        }
        let mut s = match self.connect(addr).await {
            Ok(s) => s,
            Err(e) => return Err(SendError::Connect(e, Box::new(req))),
        };
        match s.try_send_request(req).await {
            Ok(resp) => Ok(self.returning(addr, s, resp, guard)),
            Err(mut e) => match e.take_message() {
                // Not written: as good as not connected.
                Some(r) => Err(SendError::Connect(e.into_error().to_string(), Box::new(r))),
                None => Err(SendError::Upstream(e.into_error())),
            },
        }
    }

    fn returning(
        self: &Arc<Self>,
        addr: SocketAddr,
        s: SendRequest<Body>,
        resp: Response<Incoming>,
        guard: InFlight,
    ) -> Response<Body> {
        let (parts, body) = resp.into_parts();
        let back = if body.is_end_stream() {
            // Nothing to read (a 204, a HEAD): free now.
            self.checkin(addr, s);
            None
        } else {
            Some((s, self.clone(), addr))
        };
        let body = Returning {
            inner: body,
            back,
            _guard: guard,
        };
        Response::from_parts(parts, http_body_util::BodyExt::boxed(body))
    }
}

/// `body`, counting its request in flight until it is dropped.
pub(crate) fn holding(body: Incoming, guard: InFlight) -> Body {
    http_body_util::BodyExt::boxed(Returning {
        inner: body,
        back: None,
        _guard: guard,
    })
}

/// A response body that gives its connection back when read to the end.
struct Returning {
    inner: Incoming,
    back: Option<(SendRequest<Body>, Arc<Upstreams>, SocketAddr)>,
    _guard: InFlight,
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        // Done: the end came, or the body says so (servers stop polling a
        // body whose length they know once they have it all).
        let done = matches!(frame, Poll::Ready(None)) || this.inner.is_end_stream();
        if done && let Some((s, pool, addr)) = this.back.take() {
            pool.checkin(addr, s);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
