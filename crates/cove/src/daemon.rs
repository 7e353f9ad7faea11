//! The CLI's side of the daemon: where it lives, starting it, waiting for
//! services to be ready, and printing its errors.

use std::time::Duration;

use cove_daemon::api::{Event, Replica, ReplicaState};
use cove_daemon::client::{Client, ClientError};
use cove_daemon::{Paths, api};
use cove_runtime::docker::DockerError;
use cove_spec::Style;
use cove_spec::xcove::DaemonScope;

use cove_spec::Project;

/// The daemon that runs `project` and the project's key: its own daemon in
/// its state directory, or the host's daemon (`COVE_DAEMON=host`, or
/// `x-cove: {daemon: host}`). Paths are canonical where they exist.
/// A state directory that is there is checked first (a link, another
/// user's, or one others may write in is refused: see
/// [`cove_runtime::private::check_dir`]).
pub fn find(project: &Project) -> anyhow::Result<Client> {
    let dir = cove_runtime::plan::state_dir(&project.app, &project.project_dir);
    cove_runtime::private::check_dir(&dir)?;
    let key = fs_err::canonicalize(&dir).unwrap_or(dir);
    let host = match std::env::var("COVE_DAEMON").ok().as_deref() {
        Some("host") => true,
        Some("project") => false,
        Some(other) if !other.is_empty() => anyhow::bail!(
            "COVE_DAEMON is `{other}`; it must be `host` (one daemon per host) or `project` (one per project)"
        ),
        _ => project.app.x_cove.daemon == Some(DaemonScope::Host),
    };
    let daemon_dir = if host {
        let d = cove_daemon::host_dir();
        cove_runtime::private::check_dir(&d)?;
        fs_err::canonicalize(&d).unwrap_or(d)
    } else {
        key.clone()
    };
    Ok(Client::new(
        Paths::new(&daemon_dir),
        key.display().to_string(),
        host,
    ))
}

/// [`find`], or with `--host` the project of the same name on that
/// host's daemon (see [`crate::remote`]).
pub async fn locate(project: &Project) -> Result<Client, ClientError> {
    match crate::remote::current() {
        Some(remote) => crate::remote::find(&remote, project).await,
        None => find(project).map_err(|e| ClientError::Other(format!("{e:#}"))),
    }
}

/// [`find`], after making the state directories (0700, or checked when
/// they are there), so the canonical paths are the daemon's.
pub fn client(project: &Project) -> anyhow::Result<Client> {
    cove_runtime::private::make_dir(&cove_runtime::plan::state_dir(
        &project.app,
        &project.project_dir,
    ))?;
    let client = find(project)?;
    cove_runtime::private::make_dir(&client.paths.state_dir)?;
    find(project)
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Starts the daemon if needed.
pub async fn ensure(client: &Client) -> Result<(), ClientError> {
    let exe = std::env::current_exe()
        .map_err(|e| ClientError::Other(format!("cannot find the cove binary: {e}")))?;
    client.ensure_running(&exe).await.map(|_| ())
}

/// Starts the daemon if needed, then `POST path` (an `up`, which may be
/// sent again: it converges). A daemon that was exiting (nothing left to
/// run) when it answered the check may be gone, or drop the request: then
/// a new one is started and asked again, three times at most.
pub async fn ensure_and_post<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<T, ClientError> {
    let mut tries = 0;
    loop {
        tries += 1;
        ensure(client).await?;
        match client.post(path, body).await {
            Err(ClientError::NotRunning | ClientError::Other(_)) if tries < 3 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answer => return answer,
        }
    }
}

pub fn print_error(style: &Style, e: &ClientError) {
    eprintln!("{}error{}: {e}", style.red, style.reset);
    let hint = match e {
        ClientError::NotRunning => Some("start the app with `cove up -d`".to_string()),
        ClientError::Api { error, .. } => error.hint.clone(),
        ClientError::Other(_) => None,
        ClientError::Unreachable(f) => f.hint.clone(),
    };
    if let Some(h) = hint {
        eprintln!("  = {}hint{}: {h}", style.cyan, style.reset);
    }
}

/// A Docker engine's error, printed as the others: `error: WHAT` (after
/// `prefix`, e.g. the service), then its hint.
pub fn print_engine_error(style: &Style, prefix: &str, e: &DockerError) {
    eprintln!("{}error{}: {prefix}{e}", style.red, style.reset);
    eprintln!("  = {}hint{}: {}", style.cyan, style.reset, e.hint());
}

/// A Docker engine's error for `?`: `WHAT; hint: HINT`, which `main`
/// prints as an error and its hint.
pub fn engine_error(e: DockerError) -> anyhow::Error {
    anyhow::anyhow!("{e}; hint: {}", e.hint())
}

/// Why waiting failed.
pub enum NotReady {
    /// A replica failed, crashed or turned unhealthy.
    Failed(Event),
    /// Time ran out; the replicas not ready.
    Timeout(Vec<Replica>),
    /// Replicas have run [`REFUSING_FOR`] without accepting connections
    /// on a port of their service.
    Refusing(Vec<Replica>),
    Client(ClientError),
}

/// How long a replica may run without accepting connections on its
/// service's port before waiting for it fails (kamal-proxy's deploy
/// timeout): it listens elsewhere, or not at all.
pub const REFUSING_FOR: Duration = Duration::from_secs(30);

/// Waits until every replica of `services` is ready (healthy; without a
/// health check, up `x-cove.ready_after` and accepting connections; or
/// completed), failing at the first one that fails, restarts or turns
/// unhealthy (events after `after`), or that has run [`REFUSING_FOR`]
/// without accepting connections. A service in `revisions` (what an `up`
/// asked for) counts only its replicas of that revision, and needs one:
/// replicas of an earlier one, ready or failing while they are replaced,
/// neither end the wait nor fail it.
pub async fn wait_ready(
    client: &Client,
    services: &[String],
    after: u64,
    timeout: Duration,
    revisions: &std::collections::BTreeMap<String, u64>,
) -> Result<Vec<Replica>, NotReady> {
    let ours = |service: &str, revision: u64| {
        services.iter().any(|s| s == service)
            && revisions.get(service).is_none_or(|r| *r == revision)
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut after = after;
    // Sleeping services (scaled to zero) have no replica to wait for.
    let status: api::DaemonStatus = client.get("/v1/status").await.map_err(NotReady::Client)?;
    let services: Vec<String> = services
        .iter()
        .filter(|s| !status.asleep.contains(s))
        .cloned()
        .collect();
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let services = services.as_slice();
    loop {
        let events: Vec<Event> = client
            .get(&format!("/v1/events?after={after}&wait=200"))
            .await
            .map_err(NotReady::Client)?;
        for ev in events {
            after = ev.seq;
            let bad = matches!(
                ev.state.replica(),
                Some(ReplicaState::Failed | ReplicaState::Restarting)
            ) || ev.detail.starts_with("unhealthy");
            if bad && ours(&ev.service, ev.revision) {
                return Err(NotReady::Failed(ev));
            }
        }
        let rows: Vec<Replica> = client.get("/v1/ps").await.map_err(NotReady::Client)?;
        let ours: Vec<Replica> = rows
            .into_iter()
            .filter(|r| ours(&r.service, r.revision) && !r.retiring)
            .collect();
        // (A service scaled to zero meanwhile, asleep, has none.)
        let asleep = if revisions.is_empty() {
            Vec::new()
        } else {
            let status: api::DaemonStatus =
                client.get("/v1/status").await.map_err(NotReady::Client)?;
            status.asleep
        };
        let all_there = services
            .iter()
            .filter(|s| revisions.contains_key(*s) && !asleep.contains(s))
            .all(|s| ours.iter().any(|r| &r.service == s));
        // Every service asked for may have gone to sleep meanwhile (scaled
        // to zero by the autoscaler): then there is nothing to wait for.
        let awake = services.iter().any(|s| !asleep.contains(s));
        if (!ours.is_empty() || !awake) && all_there && ours.iter().all(|r| r.ready) {
            return Ok(ours);
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let refusing: Vec<Replica> = ours
            .iter()
            .filter(|r| {
                r.refusing.is_some()
                    && now_ms.saturating_sub(r.since_ms) >= REFUSING_FOR.as_millis() as u64
            })
            .cloned()
            .collect();
        if !refusing.is_empty() {
            return Err(NotReady::Refusing(refusing));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NotReady::Timeout(
                ours.into_iter().filter(|r| !r.ready).collect(),
            ));
        }
    }
}

/// Prints why waiting failed, with the failed replica's last log lines.
pub fn print_not_ready(style: &Style, client: &Client, why: &NotReady, timeout: Duration) {
    match why {
        NotReady::Client(e) => print_error(style, e),
        NotReady::Timeout(left) => {
            let names: Vec<String> = left
                .iter()
                .map(|r| format!("{}-{} ({})", r.service, r.replica, r.detail))
                .collect();
            eprintln!(
                "{}error{}: not ready within {timeout:?}: {}",
                style.red,
                style.reset,
                names.join(", ")
            );
            eprintln!(
                "  = {}hint{}: `cove ps` shows their state, `cove logs` their output; `--wait-timeout` waits longer",
                style.cyan, style.reset
            );
        }
        NotReady::Refusing(left) => {
            for r in left {
                eprintln!(
                    "{}error{}: service `{}` is not ready: {}-{} has run {} but does not accept connections on :{}",
                    style.red,
                    style.reset,
                    r.service,
                    r.service,
                    r.replica,
                    human_duration(REFUSING_FOR),
                    r.refusing.unwrap_or_default()
                );
            }
            if let Some(r) = left.first() {
                eprintln!(
                    "  = {}hint{}: it must listen on its address and that port ({}; `$HOST` and `$PORT` in its environment); `cove logs {}` shows its output; one that takes longer to listen wants a `healthcheck` or `x-cove.ready_after`",
                    style.cyan, style.reset, r.address, r.service
                );
            }
        }
        NotReady::Failed(ev) => {
            let label = format!("{}-{}", ev.service, ev.replica);
            eprintln!(
                "{}error{}: service `{}` did not start: {label} {}",
                style.red, style.reset, ev.service, ev.detail
            );
            let dir = cove_runtime::logs::Writer::dir_of(std::path::Path::new(&client.project));
            let entries =
                cove_runtime::logs::read(&dir, std::slice::from_ref(&label)).unwrap_or_default();
            if !entries.is_empty() {
                eprintln!("  its last lines:");
                for e in &entries[entries.len().saturating_sub(10)..] {
                    eprintln!("  | {}", e.text);
                }
            }
            let still = if ev.state.replica() == Some(&ReplicaState::Failed) {
                ""
            } else {
                " (it is being restarted)"
            };
            eprintln!(
                "  = {}hint{}: `cove logs {}` shows all its output, `cove ps` its state{still}",
                style.cyan, style.reset, ev.service
            );
        }
    }
}

/// `1h2m`, `3m4s`, `5s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

pub fn names(list: &[String]) -> api::Names {
    api::Names {
        services: list.to_vec(),
        remove_orphans: false,
        ..Default::default()
    }
}

/// Says which services still run though the compose file no longer has
/// them (orphans), and how to stop them, as Compose does.
pub fn warn_orphans(style: &Style, rows: &[Replica]) {
    let mut orphans: Vec<&str> = rows
        .iter()
        .filter(|r| r.orphan)
        .map(|r| r.service.as_str())
        .collect();
    orphans.dedup();
    if orphans.is_empty() {
        return;
    }
    eprintln!(
        "{}warning{}: {} still run{} but {} no longer in the compose file (orphans)\n  = {}hint{}: `cove up -d --remove-orphans` stops {}",
        style.yellow,
        style.reset,
        orphans
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if orphans.len() == 1 { "s" } else { "" },
        if orphans.len() == 1 { "is" } else { "are" },
        style.cyan,
        style.reset,
        if orphans.len() == 1 { "it" } else { "them" },
    );
}
