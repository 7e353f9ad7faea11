//! `cove gateway --listen ADDR --upstream ADDR... [--threads N]`: the
//! gateway alone, in the foreground, one pool of upstreams behind every
//! path — the same code path as under `cove up`. Stops on SIGTERM or Ctrl-C
//! (connections finish their current request).

use std::process::ExitCode;

use cove_gateway::proxy::{Gateway, Limits};
use cove_gateway::table::{Policy, Pool, Route, Table, Target};

use crate::cli::{BalancePolicy, GatewayArgs};

pub fn run(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let policy = match args.policy {
        BalancePolicy::LeastInFlight => Policy::LeastInFlight,
        BalancePolicy::RoundRobin => Policy::RoundRobin,
    };
    let pool = Pool::new(
        "upstreams",
        args.upstreams.iter().map(|a| Target::new(*a)).collect(),
        policy,
    );
    let table = Table::new(vec![Route {
        host: None,
        path: "/".into(),
        strip_prefix: false,
        pool,
    }]);
    let gateway = Gateway::new(table, Limits::default());
    // One single-threaded runtime per thread, each with its own listening
    // socket on the address (SO_REUSEPORT: the kernel spreads connections)
    // and its own upstream connections; no work moves between threads.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for i in 0..threads {
        let gw = if i == 0 {
            gateway.clone()
        } else {
            gateway.sibling()
        };
        let listen = args.listen;
        let mut stop = stop_rx.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        workers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = match bind(listen) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok(()));
                gw.serve(listener, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                Ok(())
            })
        }));
        if let Ok(Err(e)) = ready_rx.recv() {
            let _ = stop_tx.send(true);
            anyhow::bail!("cannot listen on {}: {e}", args.listen);
        }
    }
    eprintln!(
        "cove gateway: listening on {} ({} upstreams, {threads} threads)",
        args.listen,
        args.upstreams.len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.join();
    }
    Ok(ExitCode::SUCCESS)
}

/// A listening socket on `addr` that other threads may share (SO_REUSEPORT).
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
