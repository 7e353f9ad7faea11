//! `cove gateway --listen ADDR --upstream ADDR... [--threads N]`: the
//! gateway alone, in the foreground, one pool of upstreams behind every
//! path — the same code path as under `cove up`. Its upstreams are
//! health-checked actively (`--health-*`; each change said on stderr) and
//! connects to them time out after `--connect-timeout` (1 s): as a front
//! across hosts, a host whose link goes down is routed around within a
//! second. Stops on SIGTERM or Ctrl-C: no new connection from then,
//! requests in flight get [`DRAIN`] to finish, then it exits 0.

use std::process::ExitCode;

use cove_gateway::health::{self, Change, HealthCheck};
use cove_gateway::proxy::{Gateway, Limits};
use cove_gateway::server::{self, Kind, Server};
use cove_gateway::table::{Policy, Pool, Route, Table, Target};

use crate::cli::{BalancePolicy, GatewayArgs};

/// How long requests in flight at SIGTERM have to finish.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

pub fn run(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let policy = match args.policy {
        BalancePolicy::LeastInFlight => Policy::LeastInFlight,
        BalancePolicy::RoundRobin => Policy::RoundRobin,
    };
    let targets: Vec<_> = args.upstreams.iter().map(|a| Target::new(*a)).collect();
    let pool = Pool::new("upstreams", targets.clone(), policy);
    let table = Table::new(vec![Route::new(None, "/", pool)]);
    let limits = Limits {
        drain: DRAIN,
        upstream_connect: args.connect_timeout,
        ..Limits::default()
    };
    if let Some(path) = &args.health_path
        && !path.starts_with('/')
    {
        anyhow::bail!(
            "--health-path `{path}` is not a path; hint: write it from the root, as `/{path}`"
        );
    }
    let check = (!args.no_health_check).then(|| HealthCheck {
        interval: args.health_interval,
        timeout: args.health_timeout,
        path: args.health_path.clone(),
    });
    let gateway = Gateway::new(table, limits);
    // SO_REUSEPORT would share the port with whoever listens there already
    // (another gateway would get half the connections): refuse instead.
    server::check_free(args.listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {}: the address is already in use (another `cove gateway` or another program listens there); hint: stop it, or choose another address with --listen",
                args.listen
            )
        } else {
            anyhow::anyhow!("cannot listen on {}: {e}", args.listen)
        }
    })?;
    // One socket per thread (SO_REUSEPORT: the kernel spreads connections).
    let sockets = (0..threads)
        .map(|_| Ok(vec![(Kind::Http, server::bind_reuseport(args.listen)?)]))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let unlimited = std::sync::Arc::new(tokio::sync::Semaphore::new(
        tokio::sync::Semaphore::MAX_PERMITS,
    ));
    let server = Server::start(&gateway, sockets, unlimited)?;
    eprintln!(
        "cove gateway: listening on {} ({} upstreams, {threads} threads)",
        args.listen,
        args.upstreams.len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        if let Some(check) = &check {
            health::watch(&targets, check, |change| match change {
                Change::Down(addr, why) => eprintln!(
                    "cove gateway: upstream {addr} is down ({why}): no request goes to it until a health check passes"
                ),
                Change::Up(addr) => eprintln!("cove gateway: upstream {addr} is back"),
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    server.stop();
    Ok(ExitCode::SUCCESS)
}
