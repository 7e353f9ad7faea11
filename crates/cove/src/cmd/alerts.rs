//! `cove alerts [--format table|json]`: the app's alerts (`x-cove.alerts`
//! of its services) that fire, wait out their `for:` (pending) or fired
//! and resolved, as the daemon keeps them: firing first, newest first.
//! With the app down the daemon's last word is not at hand: it says so.

use std::process::ExitCode;

use cove_daemon::api::AlertView;
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
    let alerts: Vec<AlertView> = match daemon::runtime()?.block_on(client.get("/v1/alerts")) {
        Ok(a) => a,
        Err(ClientError::NotRunning) => {
            eprintln!(
                "{}error{}: the app is not up: its daemon keeps the alerts",
                style.red, style.reset
            );
            eprintln!(
                "{}hint{}: `cove up -d` evaluates them again",
                style.cyan, style.reset
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    match args.format {
        PsFormat::Json => println!("{}", serde_json::to_string_pretty(&alerts)?),
        PsFormat::Table => print!("{}", table(&alerts)),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(alerts: &[AlertView]) -> String {
    if alerts.is_empty() {
        return "no alert has fired\n".into();
    }
    let mut out = format!(
        "{:<9} {:<16} {:<20} {:<26} {:<25} {:<25} {}\n",
        "STATE", "SERVICE", "ALERT", "CONDITION", "SINCE", "ENDED", "VALUE"
    );
    for a in alerts {
        out.push_str(&format!(
            "{:<9} {:<16} {:<20} {:<26} {:<25} {:<25} {}\n",
            a.state,
            a.service,
            a.name,
            a.condition,
            a.since.as_deref().unwrap_or("-"),
            a.ended.as_deref().unwrap_or("-"),
            a.value
        ));
        for d in a.deliveries.iter().filter(|d| d.error.is_some()) {
            out.push_str(&format!(
                "          {} not delivered ({} tries): {}\n",
                d.sink,
                d.attempts,
                d.error.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}
