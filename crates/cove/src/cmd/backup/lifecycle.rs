//! A service stopped, started (and waited for: ready, health checks
//! passing), or paused, through the daemon, as `cove stop|start|pause`
//! do it: for methods that read or replace a service's files.

use std::path::Path;
use std::time::{Duration, Instant};

use cove_daemon::api::{Accepted, Acted, ExecTarget};
use cove_spec::Project;

use super::Failure;
use crate::daemon;

fn client(
    project: &Project,
) -> Result<(cove_daemon::client::Client, tokio::runtime::Runtime), Failure> {
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
    let rt = daemon::runtime().map_err(|e| Failure::new(e.to_string()))?;
    Ok((client, rt))
}

/// Stops `t`'s service and waits (bounded: 2 minutes) until replica
/// `t`'s process is gone.
pub fn stop(project: &Project, t: &ExecTarget) -> Result<(), Failure> {
    let (client, rt) = client(project)?;
    let names = daemon::names(std::slice::from_ref(&t.service));
    rt.block_on(client.post::<Accepted>("/v1/stop", &names))
        .map_err(|e| Failure::new(format!("cannot stop `{}`: {e}", t.service)))?;
    if let Some(pid) = t.pid {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                return Err(Failure::new(format!(
                    "`{}` did not stop in 2 minutes",
                    t.service
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Starts `service` and waits (bounded: 5 minutes) until it is ready
/// (its health check passing).
pub fn start(project: &Project, service: &str) -> Result<(), Failure> {
    let (client, rt) = client(project)?;
    let names = daemon::names(&[service.to_string()]);
    let accepted: Accepted = rt
        .block_on(client.post("/v1/start", &names))
        .map_err(|e| Failure::new(format!("cannot start `{service}` again: {e}")))?;
    rt.block_on(daemon::wait_ready(
        &client,
        &[service.to_string()],
        accepted.seq,
        Duration::from_secs(300),
        &accepted.revisions,
    ))
    .map_err(|_| {
        Failure::new(format!(
            "`{service}` did not become ready after it started again"
        ))
        .hint("see `cove logs`")
    })?;
    Ok(())
}

/// `service`'s replicas paused (SIGSTOP to their process groups, as
/// `cove pause`) until dropped (SIGCONT, as `cove unpause`).
pub struct Paused<'a> {
    project: &'a Project,
    service: String,
}

pub fn pause<'a>(project: &'a Project, service: &str) -> Result<Paused<'a>, Failure> {
    let (client, rt) = client(project)?;
    let names = daemon::names(&[service.to_string()]);
    let acted: Acted = rt
        .block_on(client.post("/v1/pause", &names))
        .map_err(|e| Failure::new(format!("cannot pause `{service}`: {e}")))?;
    let guard = Paused {
        project,
        service: service.to_string(),
    };
    if let Some(e) = acted.replicas.iter().find_map(|r| r.error.clone()) {
        return Err(Failure::new(format!("cannot pause `{service}`: {e}")));
    }
    if acted.replicas.is_empty() {
        return Err(Failure::new(format!(
            "`{service}` has no running replica to pause"
        )));
    }
    Ok(guard)
}

impl Paused<'_> {
    fn resume(&self) -> Result<(), Failure> {
        let (client, rt) = client(self.project)?;
        let names = daemon::names(std::slice::from_ref(&self.service));
        let acted: Acted = rt
            .block_on(client.post("/v1/unpause", &names))
            .map_err(|e| Failure::new(format!("cannot resume `{}`: {e}", self.service)))?;
        if let Some(e) = acted.replicas.iter().find_map(|r| r.error.clone()) {
            return Err(Failure::new(format!(
                "cannot resume `{}`: {e}",
                self.service
            )));
        }
        Ok(())
    }

    /// Resumes the service now, saying if it could not.
    pub fn end(self) -> Result<(), Failure> {
        let r = self.resume();
        std::mem::forget(self);
        r
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.resume() {
            eprintln!(
                "cove: {} (resume it with `cove unpause {}`)",
                e.message, self.service
            );
        }
    }
}

/// `path` renamed to `<path>.before-restore-<unix time>` (when it exists):
/// the new name.
pub fn keep_aside(path: &Path) -> Result<Option<std::path::PathBuf>, Failure> {
    if !path.exists() {
        return Ok(None);
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".before-restore-{}",
        jiff::Timestamp::now().as_second()
    ));
    let kept = path.with_file_name(name);
    fs_err::rename(path, &kept).map_err(|e| Failure::new(e.to_string()))?;
    Ok(Some(kept))
}
