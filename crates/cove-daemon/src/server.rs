//! The daemon: serves the API, runs the supervisor, records states, events
//! and logs. Started by the CLI as `cove __daemon --state-dir DIR`.
//!
//! Start-up: take the store (its lock makes this the only daemon of the
//! state directory), write the pidfile, stop whatever a previous daemon left
//! running (by [`crate::MARKER`]), start its reaper, bind the socket (mode
//! 0600), then start again what the store says should run. Exit: after `down` leaves nothing
//! to run, or on SIGTERM/SIGINT (replicas stopped; what should run is kept,
//! so the next start brings it back).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cove_runtime::backoff::Backoff;
use cove_runtime::logs;
use cove_runtime::plan::Plan;
use cove_runtime::supervisor::{Report, States, Supervisor};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::Paths;
use crate::api::{Accepted, ApiError, DaemonStatus, Event, Names, Replica, UpRequest};
use crate::store::{Desired, ReplicaRecord, Store};

/// Longest long poll of `/v1/events`.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Grace given to leftovers of a previous daemon before SIGKILL.
const SWEEP_GRACE: Duration = Duration::from_secs(5);

struct Daemon {
    paths: Paths,
    store: Arc<Store>,
    /// What runs: the supervisor and the plan of the app it was given.
    run: Mutex<Running>,
    states: watch::Receiver<States>,
    /// Last recorded event.
    seq: watch::Receiver<u64>,
    /// The recorder's channel, for [`Daemon::flush`].
    reports: mpsc::UnboundedSender<Report>,
    flushes: std::sync::atomic::AtomicU64,
    flushed: watch::Receiver<u64>,
    shutdown: Notify,
}

impl Daemon {
    /// Waits until every report sent so far is recorded (bounded), so an
    /// answer sent after it sees its events in the store.
    async fn flush(&self) {
        let id = self
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if self.reports.send(Report::Flush(id)).is_err() {
            return;
        }
        let mut flushed = self.flushed.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), flushed.wait_for(|f| *f >= id)).await;
    }
}

struct Running {
    supervisor: Supervisor,
    desired: Option<Desired>,
    plan: Option<Plan>,
}

/// Runs the daemon of `state_dir` until it is told to stop.
pub fn main(state_dir: &Path) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(serve(state_dir));
    // Whatever is still running (a long poll) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(state_dir: &Path) -> Result<(), String> {
    // Out of the CLI's session: Ctrl-C in its terminal is not for us.
    let _ = rustix::process::setsid();
    fs_err::create_dir_all(state_dir).map_err(|e| e.to_string())?;
    let state_dir = fs_err::canonicalize(state_dir).map_err(|e| e.to_string())?;
    let paths = Paths::new(&state_dir);
    let store = Arc::new(Store::open(&paths.store()).map_err(|e| {
        format!(
            "{e} (is another cove daemon running for {}?)",
            state_dir.display()
        )
    })?);
    write_atomically(&paths.pidfile(), &format!("{}\n", std::process::id()))?;
    log(&format!(
        "daemon {} starting for {}",
        std::process::id(),
        state_dir.display()
    ));

    let left =
        cove_runtime::process::sweep(&paths.marker(), rustix::process::Signal::TERM, SWEEP_GRACE);
    if !left.is_empty() {
        log(&format!(
            "stopped {} process(es) a previous daemon left running: {left:?}",
            left.len()
        ));
    }
    // Lives as long as this process; its end tells the reaper to act.
    let _reaper = spawn_reaper(&state_dir);

    let socket = paths.socket();
    let _ = fs_err::remove_file(&socket);
    let old_umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let listener = UnixListener::bind(&socket);
    rustix::process::umask(old_umask);
    let listener = listener.map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs_err::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }

    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (marker_name, marker_value) = paths
        .marker()
        .split_once('=')
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .expect("NAME=value");
    let supervisor = Supervisor::new(
        Backoff::default(),
        reports_tx.clone(),
        vec![(marker_name, marker_value)],
    );
    let states = supervisor.states();
    let first_seq = store.last_seq().map_err(|e| e.to_string())?;
    let (seq_tx, seq_rx) = watch::channel(first_seq);
    let (flushed_tx, flushed_rx) = watch::channel(0u64);
    let recorder = tokio::spawn(record(
        reports_rx,
        store.clone(),
        logs::Writer::dir_of(&state_dir),
        seq_tx,
        flushed_tx,
    ));
    let daemon = Arc::new(Daemon {
        paths: paths.clone(),
        store: store.clone(),
        run: Mutex::new(Running {
            supervisor,
            desired: None,
            plan: None,
        }),
        states,
        seq: seq_rx,
        reports: reports_tx,
        flushes: Default::default(),
        flushed: flushed_rx,
        shutdown: Notify::new(),
    });

    // Bring back what should run.
    if let Some(desired) = store.desired().map_err(|e| e.to_string())? {
        let restarts: HashMap<(String, u32), u32> = store
            .replicas()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k, v.restarts))
            .collect();
        let mut run = daemon.run.lock().await;
        match cove_runtime::plan::plan(&desired.app, &desired.project_dir) {
            Ok(plan) => {
                log(&format!("starting again: {}", desired.wanted.join(", ")));
                run.supervisor
                    .apply(&plan, &desired.wanted, &restarts)
                    .await;
                run.plan = Some(plan);
            }
            Err(errors) => log(&format!(
                "cannot plan the stored app: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
        run.desired = Some(desired);
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| e.to_string())?;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let daemon = daemon.clone();
                // Reap finished connections as new ones come.
                while connections.try_join_next().is_some() {}
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let daemon = daemon.clone();
                        async move { Ok::<_, Infallible>(handle(&daemon, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = daemon.shutdown.notified() => {
                log("nothing left to run; exiting");
                break;
            }
            _ = term.recv() => {
                log("SIGTERM: stopping the replicas (what should run is kept)");
                daemon.run.lock().await.supervisor.stop(&[]).await;
                break;
            }
            _ = int.recv() => {
                log("SIGINT: stopping the replicas (what should run is kept)");
                daemon.run.lock().await.supervisor.stop(&[]).await;
                break;
            }
        }
    }
    // No new connections (a client connecting now would wait for an answer
    // that never comes); finish the open ones: the `down` that ended it
    // above all.
    drop(listener);
    let _ = fs_err::remove_file(&socket);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    // Let the recorder write the last states.
    drop(daemon);
    let _ = tokio::time::timeout(Duration::from_secs(2), recorder).await;
    let _ = fs_err::remove_file(paths.pidfile());
    Ok(())
}

/// Starts `cove __reaper` with a pipe from this process as its input.
fn spawn_reaper(state_dir: &Path) -> Option<std::process::Child> {
    let exe = std::env::current_exe().ok()?;
    std::process::Command::new(exe)
        .arg("__reaper")
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| log(&format!("no reaper (replicas would outlive a crash): {e}")))
        .ok()
}

/// `cove __reaper`: waits until its input closes — the daemon that started
/// it holds the other end, so this happens when the daemon exits, however
/// it exits — then stops every process the daemon left (after a clean exit
/// there are none). So no replica outlives a daemon killed with SIGKILL.
pub fn reaper(state_dir: &Path) {
    use std::io::Read as _;
    // Out of the daemon's process group: a kill of that group is not for us.
    let _ = rustix::process::setsid();
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    let paths = Paths::new(state_dir);
    let left =
        cove_runtime::process::sweep(&paths.marker(), rustix::process::Signal::TERM, SWEEP_GRACE);
    if !left.is_empty() {
        log(&format!(
            "the daemon is gone: stopped {} process(es) it left: {left:?}",
            left.len()
        ));
    }
}

fn log(msg: &str) {
    eprintln!(
        "{} cove-daemon: {msg}",
        logs::format_time(SystemTime::now())
    );
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    fs_err::write(&tmp, text)
        .and_then(|()| fs_err::rename(&tmp, path))
        .map_err(|e| e.to_string())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Turns reports into log lines, events and replica records, in batches.
async fn record(
    mut reports: mpsc::UnboundedReceiver<Report>,
    store: Arc<Store>,
    log_dir: PathBuf,
    seq_tx: watch::Sender<u64>,
    flushed_tx: watch::Sender<u64>,
) {
    let mut writer = logs::Writer::new(&log_dir, logs::MAX_FILE_BYTES)
        .map_err(|e| log(&format!("logs are not kept on disk: {e}")))
        .ok();
    let mut seq = *seq_tx.borrow();
    let mut batch = Vec::new();
    while reports.recv_many(&mut batch, 1024).await > 0 {
        let now = SystemTime::now();
        let mut events = Vec::new();
        let mut replicas = Vec::new();
        let mut flushed = None;
        for report in batch.drain(..) {
            match report {
                Report::Flush(id) => flushed = Some(id),
                Report::Log {
                    service,
                    replica,
                    stream,
                    line,
                } => {
                    if let Some(w) = writer.as_mut()
                        && let Err(e) =
                            w.append(&format!("{service}-{replica}"), stream, &line, now)
                    {
                        log(&format!("logs are no longer kept on disk: {e}"));
                        writer = None;
                    }
                }
                Report::Build { service, line } => {
                    if let Some(w) = writer.as_mut() {
                        let _ = w.append(
                            &format!("{service}-build"),
                            cove_runtime::process::Stream::Stdout,
                            &line,
                            now,
                        );
                    }
                }
                Report::State {
                    service,
                    replica,
                    state,
                    pid,
                    restarts,
                } => {
                    seq += 1;
                    replicas.push((
                        (service.clone(), replica),
                        ReplicaRecord {
                            state: state.name().to_string(),
                            pid,
                            restarts,
                        },
                    ));
                    events.push(Event {
                        seq,
                        time_ms: millis(now),
                        service,
                        replica,
                        state: state.name().to_string(),
                        detail: state.describe(pid),
                        pid,
                        restarts,
                    });
                }
            }
        }
        if !events.is_empty() {
            if let Err(e) = store.record(&replicas, &events) {
                log(&e.to_string());
            }
            let _ = seq_tx.send(seq);
        }
        if let Some(id) = flushed {
            let _ = flushed_tx.send(id);
        }
    }
}

type Answer = Response<Full<Bytes>>;

fn json(status: StatusCode, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

fn error(status: StatusCode, error: impl Into<String>, hint: Option<String>) -> Answer {
    json(
        status,
        &ApiError {
            error: error.into(),
            hint,
        },
    )
}

async fn handle(daemon: &Daemon, req: Request<Incoming>) -> Answer {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), None),
    };
    macro_rules! parse {
        ($t:ty) => {
            match serde_json::from_slice::<$t>(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("bad request body for {method} {path}: {e}"),
                        None,
                    )
                }
            }
        };
    }
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/status") => {
            let running = daemon.run.lock().await.supervisor.running();
            json(
                StatusCode::OK,
                &DaemonStatus {
                    pid: std::process::id(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    state_dir: daemon.paths.state_dir.clone(),
                    running,
                    seq: *daemon.seq.borrow(),
                },
            )
        }
        (Method::GET, "/v1/ps") => {
            let run = daemon.run.lock().await;
            json(
                StatusCode::OK,
                &ps(&daemon.states.borrow(), run.plan.as_ref()),
            )
        }
        (Method::GET, "/v1/events") => events(daemon, &query).await,
        (Method::POST, "/v1/up") => up(daemon, parse!(UpRequest)).await,
        (Method::POST, "/v1/stop") => stop(daemon, parse!(Names)).await,
        (Method::POST, "/v1/start") => start(daemon, parse!(Names), false).await,
        (Method::POST, "/v1/restart") => start(daemon, parse!(Names), true).await,
        (Method::POST, "/v1/down") => down(daemon, parse!(Names)).await,
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such API call: {method} {path}"),
            None,
        ),
    }
}

fn ps(states: &States, plan: Option<&Plan>) -> Vec<Replica> {
    let mut rows = Vec::new();
    for (name, replicas) in states {
        let svc = plan.and_then(|p| p.services.iter().find(|s| &s.name == name));
        for (i, s) in replicas.iter().enumerate() {
            let r = i as u32 + 1;
            rows.push(Replica {
                service: name.clone(),
                replica: r,
                state: s.state.name().to_string(),
                health: s.health().to_string(),
                detail: s.state.describe(s.pid),
                pid: s.pid,
                address: svc.map_or(String::new(), |svc| {
                    format!("{}:{}", svc.address(r), svc.port())
                }),
                restarts: s.restarts,
                since_ms: millis(s.since),
                ready: s.ready(),
            });
        }
    }
    rows
}

async fn events(daemon: &Daemon, query: &str) -> Answer {
    let mut after = 0u64;
    let mut wait = Duration::ZERO;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(n) = v.parse::<u64>() else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`{k}` must be a number, not `{v}`"),
                None,
            );
        };
        match k {
            "after" => after = n,
            "wait" => wait = Duration::from_millis(n).min(MAX_WAIT),
            _ => {}
        }
    }
    let mut seq = daemon.seq.clone();
    let _ = tokio::time::timeout(wait, seq.wait_for(|s| *s > after)).await;
    match daemon.store.events_after(after, 1000) {
        Ok(evs) => json(StatusCode::OK, &evs),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

fn accepted(daemon: &Daemon) -> Answer {
    json(
        StatusCode::OK,
        &Accepted {
            seq: *daemon.seq.borrow(),
            events: Vec::new(),
        },
    )
}

async fn up(daemon: &Daemon, req: UpRequest) -> Answer {
    let plan = match cove_runtime::plan::plan(&req.app, &req.project_dir) {
        Ok(p) => p,
        Err(errors) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
                errors.first().map(|e| e.hint.clone()),
            );
        }
    };
    if let Some(unknown) = req
        .services
        .iter()
        .find(|s| !req.app.services.contains_key(*s))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("no such service `{unknown}` in the app"),
            None,
        );
    }
    let answer = accepted(daemon);
    let mut run = daemon.run.lock().await;
    // Still wanted: what was, if the app still has it, plus what is asked.
    let before = run
        .desired
        .as_ref()
        .map(|d| d.wanted.clone())
        .unwrap_or_default();
    let wanted: Vec<String> = req
        .app
        .services
        .keys()
        .filter(|s| before.contains(s) || req.services.contains(s))
        .cloned()
        .collect();
    let desired = Desired {
        app: req.app,
        project_dir: req.project_dir,
        wanted,
    };
    // Written before it is acted on.
    if let Err(e) = daemon.store.set_desired(Some(&desired)) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    run.supervisor
        .apply(&plan, &req.services, &HashMap::new())
        .await;
    run.plan = Some(plan);
    run.desired = Some(desired);
    answer
}

/// Checks `names` against the app; empty means all of its services.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
fn known(run: &Running, names: &[String]) -> Result<Vec<String>, Answer> {
    let Some(desired) = &run.desired else {
        return Err(error(
            StatusCode::CONFLICT,
            "the app is not running",
            Some("start it with `cove up -d`".into()),
        ));
    };
    if let Some(unknown) = names
        .iter()
        .find(|s| !desired.app.services.contains_key(*s))
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no such service `{unknown}`"),
            Some(format!(
                "the app's services are: {}",
                desired
                    .app
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    Ok(if names.is_empty() {
        desired.app.services.keys().cloned().collect()
    } else {
        names.to_vec()
    })
}

async fn stop(daemon: &Daemon, req: Names) -> Answer {
    let answer = accepted(daemon);
    let mut run = daemon.run.lock().await;
    let names = match known(&run, &req.services) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let mut desired = run.desired.clone().expect("checked by known");
    desired.wanted.retain(|s| !names.contains(s));
    if let Err(e) = daemon.store.set_desired(Some(&desired)) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    run.desired = Some(desired);
    run.supervisor.stop(&names).await;
    daemon.flush().await;
    answer
}

async fn start(daemon: &Daemon, req: Names, restart: bool) -> Answer {
    let answer = accepted(daemon);
    let mut run = daemon.run.lock().await;
    let names = match known(&run, &req.services) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let mut desired = run.desired.clone().expect("checked by known");
    let app_order: Vec<String> = desired.app.services.keys().cloned().collect();
    desired.wanted = app_order
        .into_iter()
        .filter(|s| desired.wanted.contains(s) || names.contains(s))
        .collect();
    if let Err(e) = daemon.store.set_desired(Some(&desired)) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    run.desired = Some(desired);
    if restart {
        run.supervisor.stop(&names).await;
    }
    if let Some(plan) = run.plan.clone() {
        run.supervisor.apply(&plan, &names, &HashMap::new()).await;
    }
    daemon.flush().await;
    answer
}

async fn down(daemon: &Daemon, req: Names) -> Answer {
    let before = *daemon.seq.borrow();
    let mut run = daemon.run.lock().await;
    let Some(mut desired) = run.desired.clone() else {
        // Nothing was ever run: just go.
        daemon.shutdown.notify_one();
        return accepted(daemon);
    };
    desired
        .wanted
        .retain(|s| !req.services.is_empty() && !req.services.contains(s));
    let everything = desired.wanted.is_empty();
    let stored = if everything {
        daemon.store.set_desired(None)
    } else {
        daemon.store.set_desired(Some(&desired))
    };
    if let Err(e) = stored {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    let names = if everything {
        Vec::new()
    } else {
        req.services.clone()
    };
    run.supervisor.remove(&names).await;
    daemon.flush().await;
    // Its events come with the answer: the daemon may be gone right after.
    let events = match daemon.store.events_after(before, 10_000) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    if everything {
        run.desired = None;
        run.plan = None;
        daemon.shutdown.notify_one();
    } else {
        run.desired = Some(desired);
    }
    json(
        StatusCode::OK,
        &Accepted {
            seq: before,
            events,
        },
    )
}
