//! Layer-4 routes: each connection accepted on a TCP route's address is
//! joined to a target of its pool, bytes copied both ways until either side
//! closes. The balancing, ejection, draining and holding rules are the HTTP routes'
//! (see [`crate::balance`]); a target that refuses the connection is ejected
//! and another one tried. The target counts the connection as in flight for
//! as long as it lasts, so draining waits for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::balance;
use crate::proxy::Gateway;
use crate::table::{self, Outcome};

/// Serves the TCP route of `listener`'s address until `shutdown` resolves;
/// connections already joined go on.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    cap: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    // A joined connection is not waited for (its `Stopping` dropped here):
    // it goes on until the gateway's thread ends.
    crate::accept::accept_loop(
        listener,
        cap,
        shutdown,
        Duration::ZERO,
        move |stream, _peer, _stop| join(gateway.clone(), stream, local),
    )
    .await
}

async fn join(gateway: Arc<Gateway>, mut client: TcpStream, local: std::net::SocketAddr) {
    let _ = client.set_nodelay(true);
    // A pool whose targets are on their way holds the connection a while.
    let mut hold = crate::proxy::Hold::default();
    let (pool, stats) = loop {
        let table = gateway.table();
        let Some(r) = table.tcp_route(local) else {
            return; // the route is gone: close
        };
        if !gateway.hold(&r.pool, &mut hold).await {
            break (r.pool.clone(), r.stats.clone());
        }
    };
    let connect_timeout = gateway.limits().upstream_connect;
    let mut avoid = None;
    for _ in 0..2 {
        let Some(target) =
            balance::pick(&pool, avoid, table::now_ms(), &mut balance::thread_random).cloned()
        else {
            break;
        };
        let _in_flight = target.begin();
        match tokio::time::timeout(connect_timeout, TcpStream::connect(target.addr)).await {
            Ok(Ok(mut upstream)) => {
                target.record(Outcome::Ok, table::now_ms());
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            _ => {
                target.record(Outcome::ConnectFailed, table::now_ms());
                avoid = Some(target.addr);
            }
        }
    }
    // No target, or none could be reached.
    stats.upstream_error();
}
