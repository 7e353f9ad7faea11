//! The fast path's upstream connections: plain sockets kept alive per
//! target, one pool per gateway (so per thread: the lock is never
//! contended).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::TcpStream;

/// Most idle connections kept per target.
const MAX_IDLE: usize = 512;

/// Idle connections by target: a list looked through (a pool has few
/// targets; no hashing per request).
#[derive(Default)]
pub(crate) struct Conns {
    idle: Mutex<Vec<(SocketAddr, Vec<TcpStream>)>>,
}

impl Conns {
    /// An idle connection to `addr` that the target has not closed, if any.
    pub(super) fn checkout(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = crate::lock(&self.idle);
        let list = &mut idle.iter_mut().find(|(a, _)| *a == addr)?.1;
        while let Some(s) = list.pop() {
            if is_open(&s) {
                return Some(s);
            }
        }
        None
    }

    /// Keeps `s` for the next request to `addr`.
    pub(super) fn checkin(&self, addr: SocketAddr, s: TcpStream) {
        let mut idle = crate::lock(&self.idle);
        let at = match idle.iter().position(|(a, _)| *a == addr) {
            Some(i) => i,
            None => {
                // Targets come and go with deploys: connections that gone
                // ones closed are dropped first (a new target is rare).
                idle.retain_mut(|(_, l)| {
                    l.retain(is_open);
                    !l.is_empty()
                });
                idle.push((addr, Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[at].1;
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    /// A new connection to `addr`, within `wait`.
    pub(super) async fn connect(addr: SocketAddr, wait: Duration) -> Result<TcpStream, String> {
        let s = tokio::time::timeout(wait, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no answer within {wait:?}"))?
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

/// Whether an idle connection is still open: nothing has come on it since
/// its last answer (an end of stream, or stray bytes, mean it is not
/// reusable). Asks the reactor first, which costs no system call.
fn is_open(s: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match s.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut b = [0u8; 1];
            matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}
