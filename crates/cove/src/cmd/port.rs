//! `cove port SERVICE PRIVATE_PORT [--protocol tcp|udp] [--index N]`:
//! where this host reaches a replica's port, `HOST:PORT`, as `docker
//! compose port` prints it: the address the port is published on (a
//! `ports:` entry with a host port, which the gateway listens on), else
//! the replica's own address (a native replica listens there; a container
//! on the project's network, which the host reaches).

use std::process::ExitCode;

use cove_daemon::api::{Protocol, Replica, ReplicaState, Routes};
use cove_daemon::client::ClientError;

use crate::cli::{PortArgs, ProjectArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &PortArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let fail = |what: String, hint: String| {
        eprintln!("{}error{}: {what}", style.red, style.reset);
        eprintln!("  = {}hint{}: {hint}", style.cyan, style.reset);
        Ok(ExitCode::from(2))
    };
    let (port, protocol) = match args.private_port.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (args.private_port.as_str(), args.protocol.as_str()),
    };
    let Ok(port) = port.parse::<u16>() else {
        return fail(
            format!("`{}` is not a port", args.private_port),
            "write a number, e.g. `cove port web 80` or `80/tcp`".into(),
        );
    };
    if protocol != "tcp" && protocol != "udp" {
        return fail(
            format!("protocol `{protocol}`"),
            "`--protocol tcp` or `--protocol udp`".into(),
        );
    }
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let Some(compose) = project.app.services.get(&args.service) else {
        return fail(
            format!("no such service `{}`", args.service),
            project.app.services_hint(),
        );
    };
    // The ports it listens on: the plan's (TCP), and Compose's `ports`
    // and `expose` with their protocols.
    let plan = cove_runtime::plan::plan(&project.app, &project.project_dir).ok();
    let planned: Vec<u16> = plan
        .iter()
        .flat_map(|p| p.services.iter().filter(|s| s.name == args.service))
        .flat_map(|s| s.ports.clone())
        .collect();
    let listens = compose
        .ports
        .iter()
        .any(|p| p.target == port && p.protocol == protocol)
        || (protocol == "tcp" && planned.contains(&port))
        || compose.expose.iter().any(|e| {
            let (n, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            proto == protocol && n.parse::<u16>().is_ok_and(|n| n == port)
        });
    if !listens {
        let mut known: Vec<String> = planned.iter().map(|p| format!("{p}/tcp")).collect();
        for p in &compose.ports {
            let p = format!("{}/{}", p.target, p.protocol);
            if !known.contains(&p) {
                known.push(p);
            }
        }
        return fail(
            format!("`{}` has no port {port}/{protocol}", args.service),
            if known.is_empty() {
                "it declares none (`ports:`, `expose:`)".into()
            } else {
                format!("its ports: {}", known.join(", "))
            },
        );
    }
    let client = daemon::find(&project)?;
    let index = args.index.unwrap_or(1).max(1);
    let looked = daemon::runtime()?.block_on(async {
        let rows = super::ps::rows(&client).await?;
        let routes = match client.get::<Routes>("/v1/routes").await {
            Ok(r) => r.routes,
            Err(ClientError::Api { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok((rows, routes))
    });
    let (rows, routes) = match looked {
        Ok(found) => found,
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    let replica: Option<&Replica> = rows
        .iter()
        .filter(|r| r.service == args.service && r.replica == index && !r.retiring)
        .find(|r| !r.state.is_final());
    let Some(replica) = replica else {
        eprintln!(
            "{}error{}: replica {index} of `{}` is not running",
            style.red, style.reset, args.service
        );
        eprintln!(
            "  = {}hint{}: `cove ps {}` lists its replicas; `cove up -d` starts the app",
            style.cyan, style.reset, args.service
        );
        return Ok(ExitCode::from(1));
    };
    // Published: the gateway's listener for it (any replica behind it).
    if protocol == "tcp"
        && let Some(route) = routes.iter().find(|r| {
            r.service == args.service
                && r.port == port
                && r.protocol == Protocol::Tcp
                && !r.listen.is_empty()
                && !r.internal
        })
    {
        println!("{}", route.listen);
        return Ok(ExitCode::SUCCESS);
    }
    let host = replica
        .address
        .rsplit_once(':')
        .map_or(replica.address.as_str(), |(h, _)| h);
    if host.is_empty() || replica.state == ReplicaState::Waiting {
        eprintln!(
            "{}error{}: replica {index} of `{}` has no address yet ({})",
            style.red, style.reset, args.service, replica.state
        );
        return Ok(ExitCode::from(1));
    }
    println!("{host}:{port}");
    Ok(ExitCode::SUCCESS)
}
