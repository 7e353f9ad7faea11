//! Serving client connections: HTTP/1.1, or HTTP/2 by its preface.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Gateway;
use crate::accept::{Lane, Stopping};

impl Gateway {
    /// Serves `listener` until `shutdown` resolves; connections then finish
    /// their current request (within [`super::Limits::drain`]).
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
        self.serve_lane(listener, None, cap, shutdown).await
    }

    /// [`Gateway::serve_capped`] on one thread of several, which also
    /// serves the connections moved to it through `lane` (see
    /// [`crate::accept::Spread`]).
    pub(crate) async fn serve_lane(
        self: Arc<Self>,
        listener: TcpListener,
        lane: Option<Lane>,
        cap: Arc<Semaphore>,
        shutdown: impl Future<Output = ()>,
    ) {
        let drain = self.limits.drain;
        crate::accept::accept_lane(
            listener,
            lane,
            cap,
            shutdown,
            drain,
            move |stream, peer, stop| self.clone().serve_connection(stream, peer, stop),
        )
        .await
    }

    /// Serves the requests of one client connection: HTTP/1.1, or HTTP/2
    /// when it opens with the HTTP/2 preface (h2c, prior knowledge); until
    /// `stop`, then it finishes its request in progress and closes.
    pub async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: Stopping,
    ) {
        // Boxed either way: the task's future stays small (a connection's
        // state is moved once, not at each step of spawning a task), and
        // neither path carries the other's size.
        let served: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = if self.limits.fast_path {
            // It reads the first head itself, and hands HTTP/2 on; it sets
            // TCP_NODELAY only when it is needed (a second request or a
            // body in several writes), as nginx does.
            Box::pin(self.serve_h1(stream, peer, stop))
        } else {
            Box::pin(self.serve_sniffed(stream, peer, stop))
        };
        served.await
    }

    /// A connection served by hyper: HTTP/2 when it opens with the preface.
    async fn serve_sniffed(
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
        let local = stream.local_addr().ok();
        self.serve_io(stream, At { peer, local }, h2, false, stop)
            .await
    }

    /// Serves one client connection over `io` (from `at.peer`, accepted at
    /// `at.local`), as HTTP/2 (`h2`) or HTTP/1.1; `secure`: it came over
    /// TLS. Once `stop` resolves, the request in progress (every stream,
    /// over HTTP/2) finishes and the connection closes.
    pub async fn serve_io<I>(
        self: Arc<Self>,
        io: I,
        at: At,
        h2: bool,
        secure: bool,
        mut stop: Stopping,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.limits;
        let gw = self;
        let At { peer, local } = at;
        let service = hyper::service::service_fn(move |req| {
            let gw = gw.clone();
            async move {
                Ok::<_, std::convert::Infallible>(gw.handle_at(req, peer, local, secure).await)
            }
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
}

/// Where a client connection comes from and where it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub peer: SocketAddr,
    /// The connection's local address (picks a listener route, see
    /// [`crate::table::Table::with_listeners`]); `None`: not known.
    pub local: Option<SocketAddr>,
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
