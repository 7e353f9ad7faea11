//! `cove routes [--format table|json]`: the gateway's routes — where it
//! listens, which host and path reach which service port — and, when the
//! app runs, the replicas each route sends to now. When the app is not
//! running, the routes of the Compose file are shown without targets.

use std::process::ExitCode;

use cove_daemon::api::{Protocol, Routes};
use cove_daemon::client::ClientError;

use crate::cli::{ProjectArgs, PsArgs, PsFormat};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &PsArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let client = daemon::find(&project)?;
    let Some(routes) = (match daemon::runtime()?.block_on(client.get("/v1/routes")) {
        Ok(r) => Some(r),
        Err(ClientError::NotRunning) => local(&project),
        Err(ClientError::Api { status, .. }) if status.as_u16() == 409 => local(&project),
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    }) else {
        return Ok(ExitCode::from(1));
    };
    match args.format {
        PsFormat::Json => println!("{}", serde_json::to_string_pretty(&routes)?),
        PsFormat::Table => print!("{}", table(&routes)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The routes of the Compose file, without targets; `None` when it cannot
/// be planned (the errors are printed).
fn local(project: &cove_spec::project::Project) -> Option<Routes> {
    crate::project::plan_or_report(project).map(|plan| cove_daemon::gateway::describe(&plan, None))
}

fn table(routes: &Routes) -> String {
    if routes.routes.is_empty() {
        return "no routes: no service declares a port or `x-cove.routes`\n".into();
    }
    let mut out = format!(
        "gateway {} ({})\n",
        routes.url,
        if routes.running {
            "running"
        } else {
            "not running"
        }
    );
    if !routes.tls_url.is_empty() {
        out.push_str(&format!("https {}", routes.tls_url));
        if !routes.ca.is_empty() {
            out.push_str(&format!(" (certificate from the local CA {})", routes.ca));
        }
        out.push('\n');
    }
    let mut cells =
        vec![["HOST", "PATH", "SERVICE", "PORT", "PROTOCOL", "TARGETS"].map(String::from)];
    for r in &routes.routes {
        let (host, path) = if r.protocol == Protocol::Tcp {
            (
                if r.internal {
                    format!("{} (`{}` by name)", r.listen, r.service)
                } else {
                    r.listen.clone()
                },
                "-".to_string(),
            )
        } else {
            (
                if r.host.is_empty() {
                    "*".into()
                } else {
                    r.host.clone()
                },
                if r.strip_prefix {
                    format!("{} (stripped)", r.path)
                } else {
                    r.path.clone()
                },
            )
        };
        cells.push([
            host,
            path,
            r.service.clone(),
            r.port.to_string(),
            r.protocol.to_string(),
            if !routes.running {
                "-".into()
            } else if r.targets.is_empty() {
                "none healthy".into()
            } else {
                r.targets.join(",")
            },
        ]);
    }
    out.push_str(&crate::output::columns(&cells));
    out
}
