//! `cove --host ssh://USER@HOST[:PORT]` (or `COVE_HOST`): the commands
//! that only speak to the daemon speak to that host's daemon over ssh
//! ([`cove_daemon::remote`]); a project is found there by its name and
//! environment (`GET /v1/projects`), since its directory there is not
//! this one. Commands that would need this machine's files or processes
//! there (`up`, `exec`, ...) are refused, never run here instead.

use std::sync::{Arc, OnceLock};

use cove_daemon::api::HostProject;
use cove_daemon::client::{Client, ClientError};
use cove_daemon::remote::{Remote, Target};
use cove_spec::Project;

use crate::cli::Command;

static HOST: OnceLock<Arc<Remote>> = OnceLock::new();

/// Sets the host of this run (once, before the command runs).
pub fn set(target: Target) {
    let _ = HOST.set(Arc::new(Remote::new(target)));
}

/// The host of this run, if one was given.
pub fn current() -> Option<Arc<Remote>> {
    HOST.get().cloned()
}

/// The host daemon's client for calls about no project (`status`,
/// `projects`).
pub fn daemon(remote: &Arc<Remote>) -> Client {
    Client::over(remote.clone(), String::new())
}

/// Refuses a command that does not work over `--host` yet, naming it.
pub fn check_supported(command: &Command, target: &Target) -> anyhow::Result<()> {
    let name = match command {
        Command::Ps(_)
        | Command::Ls(_)
        | Command::Events(_)
        | Command::Logs(_)
        | Command::Version(_) => return Ok(()),
        // Run in the app's checkout there (`cove system in`): sent by
        // `cove deploy --env`.
        Command::History(_)
        | Command::Rollback(_)
        | Command::Down(_)
        | Command::Stop(_)
        | Command::Start(_)
        | Command::Restart(_)
        | Command::Scale(_) => return Ok(()),
        // Run where they are typed and ask no daemon: the host is not
        // theirs (`config` prints this checkout's files resolved).
        Command::Daemon(_)
        | Command::Reaper(_)
        | Command::System(_)
        | Command::Schema(_)
        | Command::Config(_) => {
            return Ok(());
        }
        Command::Server(_) => "server install",
        Command::Up(_) => "up",
        Command::Deploy(_) => "deploy",
        other => {
            let debug = format!("{other:?}");
            let word = debug.split(['(', ' ', '{']).next().unwrap_or("this");
            return Err(unsupported(&word.to_ascii_lowercase(), target));
        }
    };
    Err(unsupported(name, target))
}

fn unsupported(name: &str, target: &Target) -> anyhow::Error {
    anyhow::anyhow!(
        "`cove {name}` does not work over --host yet ({target}): only `ps`, `ls`, `events`, `logs`, `version` and (in a checkout `cove deploy --env` sent) `history`, `rollback`, `down`, `stop`, `start`, `restart` and `scale` do; nothing was run; hint: run it on the host (`{} -- cove {name} ...` in the project's directory there), or drop --host/COVE_HOST to run it here",
        target.ssh_line()
    )
}

/// The client of `project` on the host: the project of the same name and
/// environment among those its daemon runs.
pub async fn find(remote: &Arc<Remote>, project: &Project) -> Result<Client, ClientError> {
    let all: Vec<HostProject> = daemon(remote).get("/v1/projects").await?;
    let name = &project.app.name;
    let env = &project.app.x_cove.env;
    let same: Vec<&HostProject> = all
        .iter()
        .filter(|p| p.name.as_ref() == Some(name) && &p.env == env)
        .collect();
    let what = match env {
        Some(e) => format!("project `{name}` (environment `{e}`)"),
        None => format!("project `{name}`"),
    };
    match same.as_slice() {
        [one] => Ok(Client::over(remote.clone(), one.key.clone())),
        [] => {
            let names: Vec<String> = all
                .iter()
                .map(|p| {
                    let n = p.name.clone().unwrap_or_else(|| p.key.clone());
                    match &p.env {
                        Some(e) => format!("`{n}` ({e})"),
                        None => format!("`{n}`"),
                    }
                })
                .collect();
            Err(ClientError::Unreachable(cove_daemon::remote::Failure {
                error: format!("the daemon on {} does not run {what}", remote.target),
                hint: Some(if names.is_empty() {
                    "it runs no project: start it there with `COVE_DAEMON=host cove up -d`".into()
                } else {
                    format!(
                        "it runs {}; `-p NAME` (and `--env`) name another",
                        names.join(", ")
                    )
                }),
            }))
        }
        many => Err(ClientError::Unreachable(cove_daemon::remote::Failure {
            error: format!(
                "the daemon on {} runs {what} from {} directories: {}",
                remote.target,
                many.len(),
                many.iter()
                    .map(|p| p
                        .project_dir
                        .as_ref()
                        .map_or(p.key.clone(), |d| d.display().to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some(
                "give them different names (`name:` in the file, or `-p NAME` on the host)".into(),
            ),
        })),
    }
}
