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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
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
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        eprintln!(
            "cove gateway: listening on {} ({} upstreams, {threads} threads)",
            args.listen,
            args.upstreams.len()
        );
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        Gateway::new(table, Limits::default())
            .serve(listener, shutdown)
            .await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
