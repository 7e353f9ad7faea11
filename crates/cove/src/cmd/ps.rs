//! `cove ps [--format table|json]`: every replica the daemon knows, with
//! its revision, state, health, pid, address, restarts, uptime and why it
//! is not serving (during a deploy a replica's old and new instances are
//! both listed).

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cove_daemon::api::{Health, Replica, ReplicaState};
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
    let rows: Vec<Replica> = match daemon::runtime()?.block_on(client.get("/v1/ps")) {
        Ok(rows) => rows,
        Err(ClientError::NotRunning) => {
            // A pidfile whose daemon is gone: it did not stop cleanly (one
            // still there is finishing its exit).
            let pid = fs_err::read_to_string(client.paths.pidfile())
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if pid.is_some_and(|p| !cove_runtime::process::alive(p)) {
                eprintln!(
                    "{}warning{}: the daemon is not running but did not stop cleanly; `cove up -d` starts the app again, `cove down` stops what it left",
                    style.yellow, style.reset
                );
            }
            Vec::new()
        }
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    match args.format {
        PsFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        PsFormat::Table => print!("{}", table(&rows, SystemTime::now())),
    }
    daemon::warn_orphans(&style, &rows);
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[Replica], now: SystemTime) -> String {
    let cells = cells(rows, now);
    if rows.iter().all(|r| r.container.is_none()) {
        return crate::output::columns(&cells);
    }
    // A last column for services run as containers.
    let with: Vec<[String; 11]> = cells
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let extra = match i {
                0 => "CONTAINER".to_string(),
                _ => rows
                    .get(i - 1)
                    .and_then(|r| r.container.clone())
                    .unwrap_or_else(|| "-".into()),
            };
            let [a, b, c, d, e, f, g, h, k, l] = row;
            [a, b, c, d, e, f, g, h, k, l, extra]
        })
        .collect();
    crate::output::columns(&with)
}

fn cells(rows: &[Replica], now: SystemTime) -> Vec<[String; 10]> {
    let mut cells = vec![
        [
            "SERVICE", "REPLICA", "REVISION", "STATE", "HEALTH", "PID", "ADDRESS", "RESTARTS",
            "UPTIME", "REASON",
        ]
        .map(String::from),
    ];
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    for r in rows {
        let up = r.state == ReplicaState::Running;
        cells.push([
            r.service.clone(),
            r.replica.to_string(),
            if r.revision == 0 {
                "-".into()
            } else {
                r.revision.to_string()
            },
            if r.retiring {
                format!("{} (retiring)", r.state)
            } else {
                r.state.to_string()
            },
            r.health.to_string(),
            r.pid.map_or("-".into(), |p| p.to_string()),
            r.address.clone(),
            r.restarts.to_string(),
            if up {
                daemon::human_duration(Duration::from_millis(now_ms.saturating_sub(r.since_ms)))
            } else {
                "-".into()
            },
            reason(r),
        ]);
    }
    cells
}

/// Why a replica is not serving, when it is not: a failure's reason, a
/// failed check, the exit before a restart, a port refusing connections;
/// else `-`.
fn reason(r: &Replica) -> String {
    if let Some(port) = r.refusing {
        return format!("not accepting connections on :{port}");
    }
    match r.state {
        ReplicaState::Failed => r
            .detail
            .strip_prefix("failed: ")
            .unwrap_or(&r.detail)
            .to_string(),
        ReplicaState::Restarting => r.detail.clone(),
        _ if r.health == Health::Unhealthy || r.detail.starts_with("unhealthy") => r.detail.clone(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: ReplicaState, detail: &str) -> Replica {
        Replica {
            service: "web".into(),
            replica: 1,
            revision: 2,
            retiring: false,
            state,
            health: Health::Unchecked,
            detail: detail.into(),
            pid: Some(42),
            address: "127.0.0.1:8080".into(),
            container: None,
            restarts: 0,
            since_ms: 0,
            ready: false,
            refusing: None,
            orphan: false,
        }
    }

    #[test]
    fn a_state_a_newer_daemon_names_is_shown_as_it_came() {
        let now = UNIX_EPOCH + Duration::from_secs(90);
        let cells = cells(
            &[
                row(ReplicaState::Running, "running (pid 42)"),
                row(ReplicaState::Failed, "failed: exited with code 3"),
                row("hibernating".into(), "asleep"),
            ],
            now,
        );
        assert_eq!(cells[1][3], "running");
        assert_eq!(cells[1][8], "1m30s", "uptime of a running one");
        assert_eq!(cells[2][3], "failed");
        assert_eq!(cells[2][9], "exited with code 3");
        // Unknown: its word, not up (no uptime), no reason.
        assert_eq!(cells[3][3], "hibernating");
        assert_eq!(cells[3][8], "-");
        assert_eq!(cells[3][9], "-");
    }
}
