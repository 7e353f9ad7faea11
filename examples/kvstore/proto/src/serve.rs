//! How the two servers are told where to listen and when to stop: cove
//! gives each replica `HOST` and `PORT` (its own loopback address), and
//! stops it with SIGTERM, after which it finishes the calls in flight.

use std::net::{SocketAddr, ToSocketAddrs as _};

/// The address to listen on: `HOST` (default `127.0.0.1`) and `PORT`
/// (default `default_port`).
pub fn listen_addr(default_port: u16) -> Result<SocketAddr, String> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| format!("PORT is `{p}`, not a port number"))?,
        Err(_) => default_port,
    };
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("HOST `{host}` is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("HOST `{host}` has no address"))
}

/// The name of this replica in logs and answers: `COVE_SERVICE-COVE_REPLICA`
/// under cove (`server-2`), else `program@address`.
pub fn replica_name(program: &str, addr: SocketAddr) -> String {
    match (std::env::var("COVE_SERVICE"), std::env::var("COVE_REPLICA")) {
        (Ok(s), Ok(r)) => format!("{s}-{r}"),
        _ => format!("{program}@{addr}"),
    }
}

/// Resolves at the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers, the default action (exit) still applies.
        _ => std::future::pending().await,
    }
}
