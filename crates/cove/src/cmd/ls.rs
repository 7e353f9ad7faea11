//! `cove ls [--all] [--format table|json]`: this host's projects and
//! environments that the user can see, as `docker compose ls` lists
//! projects: each one that holds a block of addresses (see
//! [`cove_runtime::lease`]), its name, environment, how many replicas run
//! and its Compose files. Its daemon is asked (its own, or the host's);
//! one that does not answer has nothing running. With `--host`, what the
//! host daemon there runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cove_daemon::Paths;
use cove_daemon::api::{Replica, ReplicaState};
use cove_daemon::client::Client;

use crate::cli::{LsArgs, PsFormat};
use cove_daemon::about::About;

/// One line of `cove ls`.
#[derive(Debug, serde::Serialize)]
struct Listed {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    /// `running(N)`, with `failed(N)` and the like after it, or `stopped`.
    status: String,
    running: usize,
    config_files: Vec<PathBuf>,
    project_dir: PathBuf,
    state_dir: PathBuf,
}

pub fn run(args: &LsArgs) -> anyhow::Result<ExitCode> {
    let rt = crate::daemon::runtime()?;
    let mut listed = Vec::new();
    if let Some(remote) = crate::remote::current() {
        // The projects the host's daemon runs there.
        let client = crate::remote::daemon(&remote);
        let all: Vec<cove_daemon::api::HostProject> = match rt.block_on(client.get("/v1/projects"))
        {
            Ok(all) => all,
            Err(e) => {
                crate::daemon::print_error(&crate::output::stderr_style(), &e);
                return Ok(ExitCode::from(1));
            }
        };
        for p in all {
            let running = running(&p.replicas);
            if running == 0 && !args.all {
                continue;
            }
            listed.push(Listed {
                name: p.name.unwrap_or_else(|| p.key.clone()),
                env: p.env,
                status: status(&p.replicas),
                running,
                config_files: p.files,
                project_dir: p.project_dir.unwrap_or_default(),
                state_dir: PathBuf::from(p.key),
            });
        }
    }
    for state in cove_runtime::lease::holders()
        .into_iter()
        .filter(|_| crate::remote::current().is_none())
    {
        let Some(about) = About::read(&state) else {
            continue;
        };
        let rows = rt.block_on(replicas(&state));
        let running = running(&rows);
        if running == 0 && !args.all {
            continue;
        }
        listed.push(Listed {
            name: about.name,
            env: about.env,
            status: status(&rows),
            running,
            config_files: about.files,
            project_dir: about.project_dir,
            state_dir: state,
        });
    }
    listed.sort_by(|a, b| (&a.name, &a.env).cmp(&(&b.name, &b.env)));
    match args.format {
        PsFormat::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
        PsFormat::Table => {
            let mut cells = vec![[
                "NAME".to_string(),
                "ENV".to_string(),
                "STATUS".to_string(),
                "CONFIG FILES".to_string(),
            ]];
            cells.extend(listed.iter().map(|l| {
                [
                    l.name.clone(),
                    l.env.clone().unwrap_or_else(|| "-".into()),
                    l.status.clone(),
                    l.config_files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            }));
            print!("{}", crate::output::columns(&cells));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The project's replicas, from its own daemon or the host's; none when
/// neither answers.
async fn replicas(state: &Path) -> Vec<Replica> {
    let key = state.display().to_string();
    let own = Client::new(Paths::new(state), key.clone(), false);
    if let Ok(rows) = own.get::<Vec<Replica>>("/v1/ps").await {
        return rows;
    }
    let host = Client::new(Paths::new(&cove_daemon::host_dir()), key, true);
    host.get::<Vec<Replica>>("/v1/ps").await.unwrap_or_default()
}

/// How many of the replicas run (a project none of whose replicas runs is
/// listed only with `--all`).
fn running(rows: &[Replica]) -> usize {
    rows.iter()
        .filter(|r| r.state == ReplicaState::Running)
        .count()
}

/// `running(2)`, `running(2), failed(1)`, `stopped`: the replicas of each
/// state, the running ones first, as `docker compose ls` says it.
fn status(rows: &[Replica]) -> String {
    let mut counts: Vec<(&ReplicaState, usize)> = Vec::new();
    for r in rows {
        match counts.iter_mut().find(|(s, _)| **s == r.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((&r.state, 1)),
        }
    }
    counts.sort_by_key(|(s, _)| (**s != ReplicaState::Running, s.as_str()));
    if counts.iter().all(|(s, _)| **s == ReplicaState::Stopped) {
        return "stopped".into();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(states: &[&str]) -> Vec<Replica> {
        states
            .iter()
            .map(|s| {
                serde_json::from_value(serde_json::json!({
                    "service": "web", "replica": 1, "state": s, "health": "",
                    "detail": "", "pid": null, "address": "", "restarts": 0,
                    "since_ms": 0, "ready": false,
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn status_counts_each_state_running_first() {
        assert_eq!(
            status(&rows(&["failed", "running", "running"])),
            "running(2), failed(1)"
        );
        assert_eq!(status(&rows(&["stopped", "stopped"])), "stopped");
        // A state a newer daemon names is counted under its word.
        assert_eq!(
            status(&rows(&["running", "hibernating"])),
            "running(1), hibernating(1)"
        );
    }
}
