//! Accept loops: connections served each by a task while they hold a
//! permit of the connection cap, and told when to finish ([`Stopping`]);
//! on a server of several threads, kept-alive connections even out over
//! the threads ([`Spread`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// Handed to each connection an accept loop starts: it resolves
/// [`Stopping::requested`] once the loop stops accepting, and the loop then
/// waits (up to its `drain`) until every connection has dropped its
/// `Stopping`, that is, has finished its request in progress. On a server
/// of several threads it is also the connection's seat on its thread
/// (see [`Spread`]).
pub struct Stopping {
    stop: watch::Receiver<bool>,
    seat: Option<Seat>,
}

impl Stopping {
    /// Resolves once the server stops accepting.
    #[inline]
    pub async fn requested(&mut self) {
        // An error: the loop is gone, which means stopping too.
        let _ = self.stop.wait_for(|s| *s).await;
    }

    /// Another handle on the same stop (the server waits for both); it
    /// holds no seat.
    pub(crate) fn also(&self) -> Stopping {
        Stopping {
            stop: self.stop.clone(),
            seat: None,
        }
    }

    /// Whether the server has stopped accepting (without waiting).
    #[inline]
    pub fn is_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// A thread of the same server that serves at least two connections
    /// fewer than this one's, the least busy: where this connection would
    /// better be served (between two requests: see [`Stopping::move_to`]).
    #[inline]
    pub(crate) fn lighter(&self) -> Option<usize> {
        let seat = self.seat.as_ref()?;
        seat.spread.lighter(seat.thread)
    }

    /// Hands the connection (between two requests: nothing of the next one
    /// read) to thread `to` of the same server, with its seat and its
    /// permit. `false` when that thread has stopped accepting: the
    /// connection is then closed, as idle connections are when stopping.
    pub(crate) fn move_to(
        mut self,
        to: usize,
        stream: std::net::TcpStream,
        peer: SocketAddr,
    ) -> bool {
        let Some(seat) = self.seat.take() else {
            return false;
        };
        let spread = seat.spread.clone();
        let moved = Moved {
            stream,
            peer,
            seat: seat.to(to),
        };
        spread.inbox[to].send(moved).is_ok()
    }
}

/// The threads of one server, how many connections each serves, and a way
/// to hand a connection to another. Connections are spread over the
/// threads unevenly (SO_REUSEPORT by a hash of their addresses; a shared
/// socket by whichever thread is first): with a few dozen kept-alive
/// connections, one thread did 30–45 % more work than the other in a
/// 50-connection wrk run, and its connections waited longer. So a
/// kept-alive connection on a thread that serves two or more connections
/// more than another moves there between two requests (the fast path's
/// [`Stopping::lighter`] check: a few atomic loads per request). A
/// connection that is never kept alive never moves.
pub(crate) struct Spread {
    /// Connections each thread serves.
    live: Box<[AtomicUsize]>,
    /// Where each thread takes connections moved to it; closed once it stops.
    inbox: Box<[mpsc::UnboundedSender<Moved>]>,
}

impl Spread {
    /// A spread over `threads` threads, and each thread's lane (given to
    /// one HTTP accept loop of that thread).
    pub(crate) fn lanes(threads: usize) -> Vec<Lane> {
        let (inbox, rx): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
        let spread = Arc::new(Spread {
            live: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            inbox: inbox.into(),
        });
        rx.into_iter()
            .enumerate()
            .map(|(thread, inbox)| Lane {
                spread: spread.clone(),
                thread,
                inbox,
            })
            .collect()
    }

    /// How many connections each thread serves now.
    pub(crate) fn live(&self) -> Vec<usize> {
        self.live
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    fn lighter(&self, me: usize) -> Option<usize> {
        let mine = self.live[me].load(Ordering::Relaxed);
        if mine < 2 {
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, live) in self.live.iter().enumerate() {
            let n = live.load(Ordering::Relaxed);
            if i != me
                && n + 2 <= mine
                && best.is_none_or(|(_, b)| n < b)
                && !self.inbox[i].is_closed()
            {
                best = Some((i, n));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// One thread's end of a [`Spread`]: the connections moved to it.
pub(crate) struct Lane {
    spread: Arc<Spread>,
    thread: usize,
    inbox: mpsc::UnboundedReceiver<Moved>,
}

impl Lane {
    /// The spread this lane is of.
    pub(crate) fn spread(&self) -> Arc<Spread> {
        self.spread.clone()
    }
}

/// A connection's place on a thread of a [`Spread`], with its permit of the
/// server's connection cap; counted while it lives.
struct Seat {
    spread: Arc<Spread>,
    thread: usize,
    _permit: OwnedSemaphorePermit,
}

impl Seat {
    fn new(spread: Arc<Spread>, thread: usize, permit: OwnedSemaphorePermit) -> Seat {
        spread.live[thread].fetch_add(1, Ordering::Relaxed);
        Seat {
            spread,
            thread,
            _permit: permit,
        }
    }

    /// The same seat, counted on thread `to`.
    fn to(mut self, to: usize) -> Seat {
        self.spread.live[to].fetch_add(1, Ordering::Relaxed);
        self.spread.live[self.thread].fetch_sub(1, Ordering::Relaxed);
        self.thread = to;
        self
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.spread.live[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection on its way to another thread.
struct Moved {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    seat: Seat,
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
    accept_lane(listener, None, cap, shutdown, drain, serve).await
}

/// [`accept_loop`], which also serves the connections other threads move
/// to this one when `lane` is given (and gives its connections seats).
pub(crate) async fn accept_lane<F>(
    listener: tokio::net::TcpListener,
    lane: Option<Lane>,
    cap: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    serve: impl Fn(tokio::net::TcpStream, SocketAddr, Stopping) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (stopping, connections) = watch::channel(false);
    accept(listener, lane, cap, shutdown, |stream, peer, seat| {
        serve(
            stream,
            peer,
            Stopping {
                stop: connections.clone(),
                seat,
            },
        )
    })
    .await;
    // No new connection from here (the listener and the lane are closed):
    // the open ones finish their request in progress, for `drain` at most.
    drop(connections);
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(drain, stopping.closed()).await;
}

/// The next connection moved to this thread; never, without a lane.
async fn next_moved(lane: &mut Option<Lane>) -> Option<Moved> {
    match lane {
        Some(l) => l.inbox.recv().await,
        None => std::future::pending().await,
    }
}

async fn accept<F>(
    listener: tokio::net::TcpListener,
    mut lane: Option<Lane>,
    cap: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
    serve: impl Fn(tokio::net::TcpStream, SocketAddr, Option<Seat>) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    let mut permit: Option<OwnedSemaphorePermit> = None;
    loop {
        tokio::select! {
            // A connection another thread moved here, with its permit.
            Some(m) = next_moved(&mut lane) => {
                if let Ok(stream) = tokio::net::TcpStream::from_std(m.stream) {
                    tokio::spawn(serve(stream, m.peer, Some(m.seat)));
                }
            }
            p = cap.clone().acquire_owned(), if permit.is_none() => match p {
                Ok(p) => permit = Some(p),
                Err(_) => return, // closed: nothing more to accept
            },
            accepted = listener.accept(), if permit.is_some() => match accepted {
                Ok((stream, peer)) => {
                    let Some(p) = permit.take() else { continue };
                    match &lane {
                        // The seat holds the permit, wherever it moves.
                        Some(l) => {
                            let seat = Seat::new(l.spread.clone(), l.thread, p);
                            tokio::spawn(serve(stream, peer, Some(seat)));
                        }
                        None => {
                            let conn = serve(stream, peer, None);
                            tokio::spawn(async move {
                                conn.await;
                                drop(p);
                            });
                        }
                    }
                }
                // Out of descriptors, say: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = &mut shutdown => return,
        }
    }
}
