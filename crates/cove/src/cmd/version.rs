//! `cove version [--short] [--format pretty|json]`: cove's version, as
//! `docker compose version` prints its own; with `--host`, the version of
//! the daemon there too (client and server, as `docker version`).

use std::process::ExitCode;

use crate::cli::{VersionArgs, VersionFormat};

pub fn run(args: &VersionArgs) -> anyhow::Result<ExitCode> {
    let version = env!("CARGO_PKG_VERSION");
    let server = match crate::remote::current() {
        Some(remote) => {
            let client = crate::remote::daemon(&remote);
            match crate::daemon::runtime()?
                .block_on(client.get::<cove_daemon::api::DaemonStatus>("/v1/status"))
            {
                Ok(status) => Some((remote.target.to_string(), status.version)),
                Err(e) => {
                    crate::daemon::print_error(&crate::output::stderr_style(), &e);
                    return Ok(ExitCode::from(1));
                }
            }
        }
        None => None,
    };
    match (args.short, args.format, server) {
        (true, _, None) => println!("{version}"),
        (true, _, Some((_, theirs))) => println!("{version}\n{theirs}"),
        (false, VersionFormat::Pretty, None) => println!("cove version v{version}"),
        (false, VersionFormat::Pretty, Some((host, theirs))) => {
            println!("cove version v{version} (client)");
            println!("cove version v{theirs} (server: the daemon on {host})");
        }
        (false, VersionFormat::Json, None) => {
            println!(
                "{}",
                serde_json::json!({ "version": format!("v{version}") })
            )
        }
        (false, VersionFormat::Json, Some((host, theirs))) => {
            println!(
                "{}",
                serde_json::json!({
                    "version": format!("v{version}"),
                    "server": { "host": host, "version": format!("v{theirs}") },
                })
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}
