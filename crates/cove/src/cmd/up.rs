//! `cove up [SERVICE...]`: runs the services and their dependency closure in
//! the foreground, streaming every replica's output prefixed with its name,
//! until Ctrl-C (or SIGTERM), which stops everything, dependents first.
//! Exit code 0 when nothing failed, 1 otherwise.

use std::io::Write as _;
use std::process::ExitCode;

use cove_runtime::backoff::Backoff;
use cove_runtime::supervisor::{self, Report, State};
use tokio::sync::mpsc;

use crate::cli::{ProjectArgs, UpArgs};
use crate::output::{stderr_style, stdout_colour};

const COLOURS: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m",
];

pub fn run(project_args: &ProjectArgs, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let project = match crate::project::load(project_args, &args.service_names) {
        Ok(p) => p,
        Err(failure) => {
            eprint!("{}", failure.render(&style));
            return Ok(ExitCode::from(1));
        }
    };
    let plan = match cove_runtime::plan::plan(&project.app, &project.project_dir) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                eprintln!(
                    "{}error{}: {e}\n  = {}hint{}: {}",
                    style.red, style.reset, style.cyan, style.reset, e.hint
                );
            }
            return Ok(ExitCode::from(1));
        }
    };
    let width = plan
        .services
        .iter()
        .map(|s| s.name.len() + 1 + s.replicas.to_string().len())
        .max()
        .unwrap_or(0);
    let colour = stdout_colour();
    let colours: std::collections::HashMap<String, &str> = plan
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), COLOURS[i % COLOURS.len()]))
        .collect();
    for s in &plan.services {
        for r in 1..=s.replicas {
            eprintln!(
                "cove: {}-{r} listens on {}:{}",
                s.name,
                s.address(r),
                s.port()
            );
        }
    }

    let log_dir = cove_runtime::logs::Writer::dir_of(&cove_runtime::plan::state_dir(
        &project.app,
        &project.project_dir,
    ));
    let mut log_writer =
        cove_runtime::logs::Writer::new(&log_dir, cove_runtime::logs::MAX_FILE_BYTES)
            .map_err(|e| {
                eprintln!(
                    "{}warning{}: logs are not kept on disk: {e}",
                    style.yellow, style.reset
                )
            })
            .ok();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        let printer = tokio::spawn(async move {
            let mut out = std::io::stdout();
            while let Some(report) = rx.recv().await {
                match report {
                                        Report::Log { service, replica, line, stream } => {
                        let label = format!("{service}-{replica}");
                        if let Some(w) = log_writer.as_mut()
                            && let Err(e) = w.append(&label, stream, &line, std::time::SystemTime::now()) {
                                eprintln!("cove: logs are no longer kept on disk: {e}");
                                log_writer = None;
                            }
                        let (c, reset) = if colour { (colours[&service], "\x1b[0m") } else { ("", "") };
                        let _ = writeln!(out, "{c}{label:<width$} |{reset} {line}");
                    }
                    Report::Build { service, line } => {
                        let _ = writeln!(out, "{:<width$} | {line}", format!("{service} (build)"));
                    }
                    Report::State { service, replica, state, pid } => {
                        let what = match &state {
                            State::Waiting => "waiting for its dependencies".to_string(),
                            State::Starting => "starting".to_string(),
                            State::Running => format!("running (pid {})", pid.unwrap_or_default()),
                            State::Healthy => "healthy".to_string(),
                            State::Unhealthy => "unhealthy: restarting it".to_string(),
                            State::Restarting { code, delay } => format!(
                                "exited ({}); restarting in {delay:?}",
                                code.map_or("killed by a signal".to_string(), |c| format!("code {c}"))
                            ),
                            State::Completed => "completed".to_string(),
                            State::Failed { reason } => format!("failed: {reason}"),
                            State::Stopped => "stopped".to_string(),
                        };
                        eprintln!("cove: {service}-{replica} {what}");
                    }
                }
                let _ = out.flush();
            }
        });
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            eprintln!("cove: stopping (dependents first)");
        };
        let outcome = supervisor::run(plan, Backoff::default(), tx, shutdown).await;
        let _ = printer.await;
        outcome
    });
    if outcome.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &outcome.failed {
            eprintln!("{}error{}: {f}", style.red, style.reset);
        }
        Ok(ExitCode::from(1))
    }
}
