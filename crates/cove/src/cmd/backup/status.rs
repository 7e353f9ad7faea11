//! `cove backup status [--format json]`: per service with `x-cove.backup`,
//! its schedule, its last scheduled backup (when, how it ended), the next
//! one, and the same for restore drills; as the daemon schedules them
//! (`GET /v1/backups`). With no daemon running, the schedules of the file
//! with "not scheduled: the app is not up". When the repository can be
//! read (its password opened), also the service's newest backup and newest
//! verified one there, whoever took them.

use cove_backup::Backup;
use cove_daemon::api::{BackupStatus, Run};
use cove_spec::Project;

use super::{Failure, open_all, short};
use crate::daemon;

/// A row of `status`: the daemon's, and what the repository holds.
#[derive(serde::Serialize)]
struct Row {
    #[serde(flatten)]
    scheduled: BackupStatus,
    /// The service's newest backup in the repository (any origin).
    newest: Option<Held>,
    /// Its newest backup a restore drill succeeded with.
    newest_verified: Option<Held>,
}

#[derive(serde::Serialize)]
struct Held {
    id: String,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified: Option<String>,
}

impl Held {
    fn of(b: &Backup) -> Held {
        Held {
            id: b.id.clone(),
            time: b.time.clone(),
            verified: b.verified.clone(),
        }
    }
}

/// The services with `x-cove.backup` in the file, unscheduled.
fn from_file(project: &Project) -> Vec<BackupStatus> {
    use cove_spec::xcove::Verify;
    project
        .app
        .services
        .iter()
        .filter_map(|(name, svc)| {
            let b = svc.x_cove.as_ref()?.backup.as_ref()?;
            Some(BackupStatus {
                service: name.clone(),
                schedule: b.schedule.clone(),
                next_backup: None,
                last_backup: None,
                verify: match &b.verify {
                    Some(Verify::Schedule(s)) => Some(s.clone()),
                    Some(Verify::Full(f)) => f.schedule.clone(),
                    None => None,
                },
                next_verify: None,
                last_verify: None,
                running: None,
                problem: Some(
                    "not scheduled: the app is not up (`cove up -d` starts its schedules)".into(),
                ),
            })
        })
        .collect()
}

fn last(run: &Option<Run>) -> String {
    match run {
        None => "-".into(),
        Some(r) => format!("{} {}", r.started, if r.ok { "ok" } else { "FAILED" }),
    }
}

pub(super) fn status(project: &Project, only: Option<&str>, format: &str) -> Result<(), Failure> {
    if format != "table" && format != "json" {
        return Err(Failure::new(format!(
            "--format {format}: `table` or `json`"
        )));
    }
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
    let rt = daemon::runtime().map_err(|e| Failure::new(e.to_string()))?;
    let rows: Vec<BackupStatus> = match rt.block_on(client.get("/v1/backups")) {
        Ok(rows) => rows,
        Err(cove_daemon::client::ClientError::NotRunning) => from_file(project),
        Err(cove_daemon::client::ClientError::Api { error, .. }) => {
            return Err(Failure {
                message: error.error.clone(),
                hint: error.hint.clone(),
            });
        }
        Err(e) => return Err(Failure::new(e.to_string())),
    };
    // The repository, when it opens (else the daemon's records alone).
    // (every target's copies: the newest and newest verified of any).
    let mut held: Vec<Backup> = match open_all(project, only) {
        Ok(opened) => opened
            .stores
            .iter()
            .filter_map(|s| s.list().ok())
            .flatten()
            .collect(),
        Err(_) => Vec::new(),
    };
    held.sort_by(|a, b| a.time.cmp(&b.time));
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| {
            let of: Vec<&Backup> = held
                .iter()
                .filter(|b| b.meta.service == r.service)
                .collect();
            Row {
                newest: of.last().map(|b| Held::of(b)),
                newest_verified: of
                    .iter()
                    .rev()
                    .find(|b| b.verified.is_some())
                    .map(|b| Held::of(b)),
                scheduled: r,
            }
        })
        .collect();
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::new(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:<16} {:<16} {:<31} {:<26} {:<16} {:<31} NEXT VERIFY",
        "SERVICE", "SCHEDULE", "LAST BACKUP", "NEXT BACKUP", "VERIFY", "LAST VERIFY"
    );
    for row in &rows {
        let r = &row.scheduled;
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let mut line = format!(
            "{:<16} {:<16} {:<31} {:<26} {:<16} {:<31} {}",
            r.service,
            dash(&r.schedule),
            last(&r.last_backup),
            dash(&r.next_backup),
            dash(&r.verify),
            last(&r.last_verify),
            dash(&r.next_verify),
        );
        if let Some(k) = r.running {
            line.push_str(&format!("  ({} running)", k.as_str()));
        }
        println!("{line}");
        for run in [&r.last_backup, &r.last_verify].into_iter().flatten() {
            if !run.ok {
                println!("  {}: {}", r.service, run.message);
            }
        }
        if let Some(p) = &r.problem {
            println!("  {}: {p}", r.service);
        }
        if let Some(n) = &row.newest {
            let verified = row
                .newest_verified
                .as_ref()
                .map_or("none verified".to_string(), |v| {
                    format!(
                        "newest verified {} (verified {})",
                        short(&v.id),
                        v.verified.as_deref().unwrap_or("-")
                    )
                });
            println!(
                "  {}: newest in the repository {} ({}); {verified}",
                r.service,
                short(&n.id),
                n.time
            );
        }
    }
    Ok(())
}
