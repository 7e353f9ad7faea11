//! `cove events [--json] [--since WHEN] [--until WHEN] [SERVICE...]`: the
//! app's events as the daemon records them, from now on (or from those it
//! kept since `--since`), until Ctrl-C, `--until`, or the app is down:
//! one line each, `TIME TYPE ACTION NAME (attributes)` as `docker compose
//! events` prints them, or one JSON object a line with `--json`.
//!
//! TYPE is `container` for a replica run as a container, `process` for a
//! native one, `service` for a step of a deploy or a scaling; ACTION is
//! the replica's new state in cove's words (`starting`, `running`,
//! `restarting`, `completed`, `failed`, `stopping`, `stopped`, ...) or
//! `deploy`; NAME is the replica's id, as `cove ps -q` prints it.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cove_daemon::api::{DaemonStatus, Event};
use cove_daemon::client::ClientError;

use crate::cli::{EventsArgs, ProjectArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let project = match super::ps::load_naming(project_args, &args.service_names) {
        Ok(project) => project,
        Err(code) => return Ok(code),
    };
    let (since, until) = match super::logs::window(&args.since, &args.until) {
        Ok(window) => window,
        Err(why) => {
            eprintln!("{}error{}: {why}", style.red, style.reset);
            return Ok(ExitCode::from(2));
        }
    };
    let plan = cove_runtime::plan::plan(&project.app, &project.project_dir).ok();
    let container_of = |service: &str, replica: u32| -> Option<String> {
        let svc = plan.as_ref()?.services.iter().find(|s| s.name == service)?;
        svc.container.as_ref()?;
        Some(cove_runtime::driver::container_name(svc, replica))
    };
    let ended = daemon::runtime()?.block_on(async {
        let client = daemon::locate(&project).await?;
        // From now on, or from the first kept event with `--since`.
        let mut after = match since {
            Some(_) => 0,
            None => client.get::<DaemonStatus>("/v1/status").await?.seq,
        };
        loop {
            // Long polls of 10 s at most, ending at `--until`.
            let wait = until.map_or(10_000, |t| t.saturating_sub(now_ms()).min(10_000));
            let evs: Vec<Event> = client
                .get(&format!("/v1/events?after={after}&wait={wait}"))
                .await?;
            let mut out = std::io::stdout().lock();
            for ev in &evs {
                after = ev.seq;
                if until.is_some_and(|t| ev.time_ms >= t) {
                    return Ok(());
                }
                if since.is_some_and(|t| ev.time_ms < t)
                    || (!args.service_names.is_empty() && !args.service_names.contains(&ev.service))
                {
                    continue;
                }
                let line = Line::of(ev, container_of(&ev.service, ev.replica));
                let text = if args.json {
                    line.json().to_string()
                } else {
                    line.text()
                };
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    // Whoever read it is gone (a closed pipe).
                    return Ok::<(), ClientError>(());
                }
            }
            if evs.is_empty() && until.is_some_and(|t| now_ms() >= t) {
                return Ok(());
            }
        }
    });
    match ended {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ClientError::NotRunning) => {
            eprintln!("cove: the app is not running (no more events)");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            daemon::print_error(&style, &e);
            Ok(ExitCode::from(1))
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// An event as `events` prints it.
struct Line {
    time: String,
    kind: &'static str,
    action: String,
    name: String,
    service: String,
    attributes: Vec<(&'static str, String)>,
}

impl Line {
    /// `container`: the container's name, for a service run as one (the
    /// replica's slot is its number but during a deploy: close enough for
    /// a name, which `ps -q` gives exactly).
    fn of(ev: &Event, container: Option<String>) -> Line {
        let time = cove_runtime::logs::format_time(
            SystemTime::UNIX_EPOCH + Duration::from_millis(ev.time_ms),
        );
        let (kind, name) = match (&ev.state, container) {
            (s, _) if s.replica().is_none() => ("service", ev.service.clone()),
            (_, Some(c)) => ("container", c),
            (_, None) => ("process", format!("{}-{}", ev.service, ev.replica)),
        };
        let mut attributes = vec![("service", ev.service.clone())];
        if ev.state.replica().is_some() {
            attributes.push(("replica", ev.replica.to_string()));
        }
        if ev.revision != 0 {
            attributes.push(("revision", ev.revision.to_string()));
        }
        if let Some(pid) = ev.pid {
            attributes.push(("pid", pid.to_string()));
        }
        if ev.restarts != 0 {
            attributes.push(("restarts", ev.restarts.to_string()));
        }
        attributes.push(("detail", ev.detail.clone()));
        Line {
            time,
            kind,
            action: ev.state.to_string(),
            name,
            service: ev.service.clone(),
            attributes,
        }
    }

    fn text(&self) -> String {
        let attributes: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{} {} {} {} ({})",
            self.time,
            self.kind,
            self.action,
            self.name,
            attributes.join(", ")
        )
    }

    fn json(&self) -> serde_json::Value {
        let attributes: serde_json::Map<String, serde_json::Value> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into()))
            .collect();
        serde_json::json!({
            "time": self.time,
            "type": self.kind,
            "action": self.action,
            "id": self.name,
            "service": self.service,
            "attributes": attributes,
        })
    }
}
