//! Running a gateway: worker threads, each a single-threaded tokio runtime
//! with its own sockets and upstream connections (no work moves between
//! threads), a connection cap shared by all, and a stop that lets requests
//! in progress finish.
//!
//! Sockets: [`bind`] makes one listening socket that every thread accepts
//! on (a second bind of the address fails, so two gateways cannot share a
//! port by accident); [`bind_reuseport`] makes one socket per thread that
//! the kernel balances connections across (faster under load, used by the
//! standalone `cove gateway`). SO_REUSEPORT would let a second gateway
//! share the port and take half its connections, so whoever binds so
//! checks first that nothing listens there ([`check_free`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

pub use crate::accept::Stopping;
use crate::accept::{Lane, Spread};
use crate::proxy::Gateway;

/// What a listening socket serves.
#[derive(Debug, Clone)]
pub enum Kind {
    /// HTTP routes.
    Http,
    /// HTTP routes, over TLS.
    Https(Arc<rustls::ServerConfig>),
    /// The table's layer-4 route for the socket's address.
    Tcp,
}

/// A running gateway; dropping it stops it too (without waiting).
pub struct Server {
    stop: watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    spread: Option<Arc<Spread>>,
}

impl Server {
    /// Starts one thread per entry of `threads`, serving its sockets with
    /// `gateway` (the first thread) or a sibling of it. Client connections
    /// are open only while they hold a permit of `cap` (it may be shared
    /// with other servers); more wait in the listen queue.
    pub fn start(
        gateway: &Arc<Gateway>,
        threads: Vec<Vec<(Kind, std::net::TcpListener)>>,
        cap: Arc<Semaphore>,
    ) -> std::io::Result<Server> {
        let (stop, stop_rx) = watch::channel(false);
        let mut workers = Vec::new();
        // Several threads: kept-alive connections even out over them.
        let mut lanes: Vec<Option<Lane>> = if threads.len() > 1 {
            Spread::lanes(threads.len()).into_iter().map(Some).collect()
        } else {
            threads.iter().map(|_| None).collect()
        };
        let spread = lanes.first().and_then(|l| l.as_ref()).map(Lane::spread);
        for (i, sockets) in threads.into_iter().enumerate() {
            // The thread's first HTTP socket takes the moved connections;
            // a thread without one takes none (its lane closes).
            let mut lane = lanes[i].take();
            let gw = if i == 0 {
                gateway.clone()
            } else {
                gateway.sibling()
            };
            for (_, s) in &sockets {
                s.set_nonblocking(true)?;
            }
            let stop_rx = stop_rx.clone();
            let cap = cap.clone();
            let worker = std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async move {
                        let mut tasks = tokio::task::JoinSet::new();
                        for (kind, socket) in sockets {
                            let Ok(listener) = tokio::net::TcpListener::from_std(socket) else {
                                continue;
                            };
                            let gw = gw.clone();
                            let cap = cap.clone();
                            let mut stop = stop_rx.clone();
                            let stopped = async move {
                                let _ = stop.wait_for(|s| *s).await;
                            };
                            let lane = match kind {
                                Kind::Http => lane.take(),
                                _ => None,
                            };
                            tasks.spawn(async move {
                                match kind {
                                    Kind::Http => gw.serve_lane(listener, lane, cap, stopped).await,
                                    Kind::Https(config) => {
                                        crate::tls::serve(gw, listener, config, cap, stopped).await
                                    }
                                    Kind::Tcp => {
                                        crate::tcp::serve(gw, listener, cap, stopped).await
                                    }
                                }
                            });
                        }
                        // Not taken (no HTTP socket here): closed now, so
                        // that no connection moves here.
                        drop(lane);
                        while tasks.join_next().await.is_some() {}
                        // Requests in progress get a moment to finish.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    });
                })?;
            workers.push(worker);
        }
        Ok(Server {
            stop,
            workers,
            spread,
        })
    }

    /// How many HTTP connections each thread serves now (a server of
    /// several threads; empty with one): kept-alive ones even out.
    pub fn connections(&self) -> Vec<usize> {
        self.spread.as_ref().map(|s| s.live()).unwrap_or_default()
    }

    /// Stops accepting, and waits for the threads to end (each connection
    /// finishes its request in progress, within the gateway's
    /// [`crate::limits::Limits::drain`]).
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A listening socket on `addr`, for every thread to share (`try_clone`).
/// Fails when the address is taken.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    // std sets SO_REUSEADDR (a restarted gateway binds at once), not
    // SO_REUSEPORT.
    std::net::TcpListener::bind(addr)
}

/// A listening socket on `addr`, which may not be on any interface yet
/// (IP_FREEBIND): connections arrive once it is.
pub fn bind_freebind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    listener(addr, |fd, on| rustix::net::sockopt::set_ip_freebind(fd, on))
}

/// Fails with [`std::io::ErrorKind::AddrInUse`] when something (another
/// gateway, any program) already listens on `addr`: a probe socket
/// without SO_REUSEPORT cannot share the port with a listener, so its bind
/// tells, then it is closed. Call it before [`bind_reuseport`], whose
/// sockets would share the port silently. (Two gateways started in the
/// same instant could both pass; the check is for the usual mistake, a
/// second one started later.)
pub fn check_free(addr: SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

/// One listening socket on `addr` of several (SO_REUSEPORT), one per thread.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    listener(addr, |fd, on| {
        rustix::net::sockopt::set_socket_reuseport(fd, on)
    })
}

/// A listening socket with SO_REUSEADDR and the option `set` turns on.
fn listener(
    addr: SocketAddr,
    set: fn(&rustix::fd::OwnedFd, bool) -> rustix::io::Result<()>,
) -> std::io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    set(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(std::net::TcpListener::from(fd))
}
