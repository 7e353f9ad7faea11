//! Accept loops: connections served each by a task while they hold a
//! permit of the connection cap, and told when to finish ([`Stopping`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

/// Handed to each connection an accept loop starts: it resolves
/// [`Stopping::requested`] once the loop stops accepting, and the loop then
/// waits (up to its `drain`) until every connection has dropped its
/// `Stopping`, that is, has finished its request in progress.
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Resolves once the server stops accepting.
    #[inline]
    pub async fn requested(&mut self) {
        // An error: the loop is gone, which means stopping too.
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Another handle on the same stop (the server waits for both).
    pub(crate) fn also(&self) -> Stopping {
        Stopping(self.0.clone())
    }

    /// Whether the server has stopped accepting (without waiting).
    #[inline]
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// Accepts connections on `listener` until `shutdown` resolves, each
/// served by its own task made by `serve`, while it holds a permit of `cap`.
/// Then tells the connections to finish ([`Stopping`]) and waits, at most
/// `drain`, for those that keep their `Stopping` to end.
pub(crate) async fn accept_loop<F>(
    listener: tokio::net::TcpListener,
    cap: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    serve: impl Fn(tokio::net::TcpStream, SocketAddr, Stopping) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (stopping, connections) = watch::channel(false);
    accept(listener, cap, shutdown, |stream, peer| {
        serve(stream, peer, Stopping(connections.clone()))
    })
    .await;
    // No new connection from here (the listener is closed): the open ones
    // finish their request in progress, for `drain` at most.
    drop(connections);
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(drain, stopping.closed()).await;
}

async fn accept<F>(
    listener: tokio::net::TcpListener,
    cap: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
    serve: impl Fn(tokio::net::TcpStream, SocketAddr) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = cap.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return, // closed: nothing more to accept
            },
            _ = &mut shutdown => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors, say: wait a little rather than spin.
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue }
            },
            _ = &mut shutdown => return,
        };
        let conn = serve(stream, peer);
        tokio::spawn(async move {
            conn.await;
            drop(permit);
        });
    }
}
