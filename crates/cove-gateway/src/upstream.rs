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
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::proxy::Body;
use crate::table::InFlight;

/// Most idle connections kept per target.
const MAX_IDLE: usize = 512;

pub struct Upstreams {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<Body>>>>,
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
            connect_timeout,
        })
    }

    fn checkout(&self, addr: SocketAddr) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().expect("not poisoned");
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
        let mut idle = self.idle.lock().expect("not poisoned");
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Body>, String> {
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| format!("no answer within {:?}", self.connect_timeout))?
                .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(sender)
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
            Err(e) => Err(SendError::Upstream(e.into_error())),
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
