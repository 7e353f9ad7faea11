//! `cove wait SERVICE... [--down-project]`: blocks until the first
//! replica of the services stops (completes, fails, or is stopped), then
//! exits with its exit code, as `docker compose wait` does; with
//! `--down-project`, stops the whole app first, as `cove down`.

use std::process::ExitCode;

use clap::Parser as _;
use cove_daemon::api::{DaemonStatus, Event, Replica, ReplicaState};
use cove_daemon::client::ClientError;

use crate::cli::{Cli, Command, ProjectArgs, WaitArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &WaitArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let project = match super::ps::load_naming(project_args, &args.service_names) {
        Ok(project) => project,
        Err(code) => return Ok(code),
    };
    let client = daemon::find(&project)?;
    let ended = daemon::runtime()?.block_on(async {
        let mut after = match client.get::<DaemonStatus>("/v1/status").await {
            Ok(s) => s.seq,
            Err(ClientError::NotRunning) => 0,
            Err(e) => return Err(e),
        };
        let mut seen = false;
        loop {
            let rows: Vec<Replica> = super::ps::rows(&client)
                .await?
                .into_iter()
                .filter(|r| args.service_names.contains(&r.service))
                .collect();
            if let Some(first) = rows
                .iter()
                .filter(|r| r.state.is_final() && !r.retiring)
                .min_by_key(|r| r.since_ms)
            {
                return Ok(Some(first.clone()));
            }
            if rows.is_empty() {
                // None runs: never started (an error), or gone with the
                // app (`cove down`) while we waited.
                return if seen {
                    Ok(None)
                } else {
                    Err(ClientError::NotRunning)
                };
            }
            seen = true;
            // Until the next events (10 s at most, then the rows again).
            match client
                .get::<Vec<Event>>(&format!("/v1/events?after={after}&wait=10000"))
                .await
            {
                Ok(evs) => after = evs.last().map_or(after, |e| e.seq),
                Err(ClientError::NotRunning) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    });
    let code = match ended {
        Ok(Some(r)) => {
            let code = exit_code(&r);
            eprintln!(
                "cove: {}-{} {} (exit code {code})",
                r.service, r.replica, r.state
            );
            code
        }
        Ok(None) => {
            eprintln!("cove: the app was stopped");
            0
        }
        Err(ClientError::NotRunning) => {
            eprintln!(
                "{}error{}: no replica of {} runs",
                style.red,
                style.reset,
                args.service_names.join(", ")
            );
            eprintln!(
                "  = {}hint{}: start them first: `cove up -d {}`",
                style.cyan,
                style.reset,
                args.service_names.join(" ")
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    if args.down_project {
        let Ok(Cli {
            command: Command::Down(down),
            ..
        }) = Cli::try_parse_from(["cove", "down"])
        else {
            unreachable!("`cove down` parses");
        };
        let done = super::down::run(project_args, &down)?;
        if done != ExitCode::SUCCESS {
            return Ok(done);
        }
    }
    Ok(ExitCode::from(code))
}

/// Its exit code as a process's: 0 when completed or stopped on request,
/// the code of a failed one's exit, else 1 (a failed start or dependency,
/// a signal).
fn exit_code(r: &Replica) -> u8 {
    match (&r.state, r.exit_code) {
        (ReplicaState::Completed | ReplicaState::Stopped, _) => 0,
        (_, Some(c)) => u8::try_from(c).unwrap_or(1),
        _ => 1,
    }
}
