//! `cove pause|unpause [SERVICE...]`: freezes the services' running
//! replicas, or resumes them, through the daemon (`POST /v1/pause`,
//! `/v1/unpause`): SIGSTOP/SIGCONT to a native replica's process group,
//! the engine's pause/unpause for a container. A paused replica is listed
//! `paused`; the gateway does not send it requests and its health is not
//! checked until it resumes.

use std::process::ExitCode;

use cove_daemon::api::Acted;

use crate::cli::{ActServicesArgs, ProjectArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(
    project_args: &ProjectArgs,
    args: &ActServicesArgs,
    pause: bool,
) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let client = daemon::find(&project)?;
    let (path, done, none) = if pause {
        ("/v1/pause", "paused", "no running replica to pause")
    } else {
        ("/v1/unpause", "unpaused", "no paused replica to unpause")
    };
    let names = daemon::names(&args.service_names);
    daemon::runtime()?.block_on(async {
        let acted: Acted = match client.post(path, &names).await {
            Ok(a) => a,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        Ok(crate::cmd::kill::report(&style, &acted, done, none))
    })
}
