//! The daemon: serves the API, runs one supervisor per project, records
//! states, events and logs. Started by the CLI as `cove __daemon --state-dir
//! DIR [--host]`.
//!
//! Start-up: no core dumps and not dumpable (it holds decrypted secrets),
//! make or check its directory (0700, its user's; see
//! [`cove_runtime::private::make_dir`]), take the store (0600; its lock
//! makes this the only daemon of the directory), write the pidfile, stop
//! whatever a previous daemon left running ([`crate::leftovers`]: its
//! cgroups, the process groups its store recorded, its marker), make its
//! own cgroup tree where it can, start its reaper, bind the socket (mode 0600),
//! then start again what the store says should run, project by project.
//! Connections: only from its own user or root (`SO_PEERCRED`), at most
//! [`MAX_CONNECTIONS`], headers within [`HEADER_TIMEOUT`], bodies up to
//! [`MAX_BODY`] (413 beyond). Exit: a project's daemon after `down` leaves nothing to run (a
//! host's daemon stays); either on SIGTERM/SIGINT (replicas stopped; what
//! should run is kept, so the next start brings it back).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cove_runtime::backoff::Backoff;
use cove_runtime::logs;
use cove_runtime::plan::Plan;
use cove_runtime::supervisor::{Report, State, States, Supervisor};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::Paths;
use crate::api::{
    Accepted, ApiError, DaemonStatus, DeployRequest, Event, History, Names, Outcomes, Replica,
    RevisionInfo, RollbackRequest, ScaleRequest, ServiceOutcome, UpRequest,
};
use crate::gateway::ProjectGateway;
use crate::store::{Desired, ReplicaRecord, Revision, Store};
use cove_runtime::supervisor::{Mode, Outcome};

/// Longest long poll of `/v1/events`.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// How often autoscaled services are looked at.
const AUTOSCALE_TICK: Duration = Duration::from_millis(500);

/// Longest wait for a retiring replica's requests to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause before a background task that panicked runs again; doubled after
/// each panic that came soon after the last, up to [`MAX_RESTART_PAUSE`]
/// (a task that panics on every turn fills daemon.log slowly).
const RESTART_PAUSE: Duration = Duration::from_millis(500);

/// Longest pause before a background task that panicked runs again.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(30);

/// A run of a background task this long starts its pauses afresh.
const RESTART_RESET: Duration = Duration::from_secs(60);

/// Grace given to leftovers of a previous daemon before SIGKILL.
const SWEEP_GRACE: Duration = Duration::from_secs(5);

/// Largest request body the API takes (an `up` carries the whole App
/// model, far smaller); a larger one is answered 413 without being read.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections open at once; more are closed at once (and logged).
pub const MAX_CONNECTIONS: usize = 256;

struct Daemon {
    paths: Paths,
    /// The host's daemon: several projects, and it stays up.
    host: bool,
    /// Its cgroup tree, where it may have one ([`cove_runtime::cgroup`]).
    cgroups: Option<std::path::PathBuf>,
    store: Arc<Store>,
    /// The projects it runs, by key (their state directory).
    projects: std::sync::Mutex<HashMap<String, Arc<Project>>>,
    /// The recorder's channel: reports tagged with their project.
    recorder: mpsc::UnboundedSender<(Arc<str>, Report)>,
    /// Last recorded event.
    seq: watch::Receiver<u64>,
    flushes: std::sync::atomic::AtomicU64,
    flushed: watch::Receiver<u64>,
    shutdown: Notify,
    /// Told when a request wakes a sleeping service.
    wake: Arc<Notify>,
}

/// One project: its supervisor and what it was asked to run.
struct Project {
    /// Its key (its state directory).
    key: Arc<str>,
    /// Sleeping services (scaled to zero) a request asked for.
    woken: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Autoscaled services: their scaler, and the last request count seen.
    scalers:
        std::sync::Mutex<HashMap<String, (crate::autoscale::Scaler, u64, tokio::time::Instant)>>,
    /// What runs and should, changed under this lock (held across the
    /// supervisor's work); take it with [`Project::lock_run`].
    run: Mutex<Running>,
    /// The last plan and desired state [`Project::lock_run`]'s guard left:
    /// what readers (`ps`, status, history) show without waiting for a
    /// command in progress (a stop may take its grace period).
    view: std::sync::Mutex<View>,
    states: watch::Receiver<States>,
    /// Its supervisor's report channel, for [`Daemon::flush`].
    reports: mpsc::UnboundedSender<Report>,
    /// Its gateway, when its plan has routes.
    gateway: Arc<std::sync::Mutex<Option<ProjectGateway>>>,
    /// Where the gateway's access log goes: the project's logs, as
    /// `gateway`.
    access_log: cove_gateway::proxy::AccessLog,
}

impl Project {
    /// Takes [`Project::run`] (waiting for a command in progress).
    async fn lock_run(&self) -> RunGuard<'_> {
        RunGuard {
            guard: self.run.lock().await,
            view: &self.view,
        }
    }

    /// The plan and desired state as the last command left them, without
    /// waiting for one in progress.
    fn view(&self) -> (Option<Arc<Plan>>, Option<Arc<Desired>>) {
        let view = crate::lock(&self.view);
        (view.plan.clone(), view.desired.clone())
    }

    /// Starts, moves or stops the gateway for `plan`; fails (changing
    /// nothing) when an address cannot be bound.
    fn set_gateway(&self, plan: Option<&Plan>) -> Result<(), String> {
        let mut slot = crate::lock(&self.gateway);
        match plan.filter(|p| !p.gateway.routes.is_empty()) {
            None => {
                if let Some(g) = slot.take() {
                    g.stop();
                }
            }
            Some(plan) => match slot.as_mut() {
                Some(g) => g.update(plan)?,
                None => *slot = Some(ProjectGateway::start(plan, self.access_log.clone())?),
            },
        }
        if let Some(g) = slot.as_mut() {
            g.refresh(&self.states.borrow());
        }
        Ok(())
    }
}

struct Running {
    supervisor: Supervisor,
    desired: Option<Desired>,
    plan: Option<Plan>,
}

/// A copy of [`Running`]'s plan and desired state, for readers.
#[derive(Default)]
struct View {
    plan: Option<Arc<Plan>>,
    desired: Option<Arc<Desired>>,
}

/// [`Project::run`] locked; when it is let go, the project's [`View`]
/// gets what it holds.
struct RunGuard<'a> {
    guard: tokio::sync::MutexGuard<'a, Running>,
    view: &'a std::sync::Mutex<View>,
}

impl std::ops::Deref for RunGuard<'_> {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.guard
    }
}

impl std::ops::DerefMut for RunGuard<'_> {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.guard
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut view = crate::lock(self.view);
        view.plan = self.guard.plan.clone().map(Arc::new);
        view.desired = self.guard.desired.clone().map(Arc::new);
    }
}

impl Daemon {
    /// The project of `key`, made (with its supervisor) on first use.
    fn project(&self, key: &str) -> Arc<Project> {
        let mut projects = crate::lock(&self.projects);
        if let Some(p) = projects.get(key) {
            return p.clone();
        }
        let key: Arc<str> = Arc::from(key);
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Tag its reports, in order, for the recorder.
        let recorder = self.recorder.clone();
        let tag = key.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                if recorder.send((tag.clone(), r)).is_err() {
                    break;
                }
            }
        });
        let supervisor = Supervisor::new(
            Backoff::default(),
            tx.clone(),
            vec![
                (
                    crate::MARKER.to_string(),
                    self.paths.state_dir.display().to_string(),
                ),
                (crate::PROJECT_MARKER.to_string(), key.to_string()),
            ],
        )
        .with_cgroups(
            self.cgroups
                .as_deref()
                .map(|tree| cove_runtime::cgroup::project(tree, &key)),
        );
        let gateway: Arc<std::sync::Mutex<Option<ProjectGateway>>> = Default::default();
        // Retiring replicas leave the gateway's table at once; they are
        // stopped when their last request is answered (bounded).
        let (slot, now) = (gateway.clone(), supervisor.states());
        let supervisor = supervisor.with_drain(Arc::new(move |addrs| {
            let targets = match crate::lock(&slot).as_mut() {
                Some(g) => {
                    let t = g.targets_of(&addrs);
                    g.refresh(&now.borrow());
                    t
                }
                None => Vec::new(),
            };
            Box::pin(async move {
                // A request that chose one just before the new table.
                tokio::time::sleep(Duration::from_millis(50)).await;
                for t in targets {
                    t.drain_for(DRAIN_TIMEOUT).await;
                }
            })
        }));
        // A new table for the gateway whenever a replica changes state.
        let states = supervisor.states();
        let slot = gateway.clone();
        spawn_restarting(
            format!("{key}: the gateway's table updater"),
            move || {
                let (mut states, slot) = (states.clone(), slot.clone());
                async move {
                    loop {
                        if states.changed().await.is_err() {
                            break;
                        }
                        let now = states.borrow_and_update().clone();
                        if let Some(g) = crate::lock(&slot).as_mut() {
                            g.refresh(&now);
                        }
                    }
                }
            },
            log,
        );
        let to_recorder = self.recorder.clone();
        let log_key = key.clone();
        let access_log: cove_gateway::proxy::AccessLog = Arc::new(move |record| {
            let _ = to_recorder.send((
                log_key.clone(),
                Report::Log {
                    service: "gateway".into(),
                    replica: 0,
                    stream: cove_runtime::process::Stream::Stdout,
                    line: record.to_json(),
                },
            ));
        });
        let project = Arc::new(Project {
            key: key.clone(),
            scalers: Default::default(),
            woken: Default::default(),
            gateway,
            access_log,
            states: supervisor.states(),
            run: Mutex::new(Running {
                supervisor,
                desired: None,
                plan: None,
            }),
            view: Default::default(),
            reports: tx,
        });
        projects.insert(key.to_string(), project.clone());
        project
    }

    fn existing(&self, key: &str) -> Option<Arc<Project>> {
        crate::lock(&self.projects).get(key).cloned()
    }

    /// Forgets a project that has nothing left; a project's daemon then
    /// exits.
    fn forget(&self, key: &str) {
        let mut projects = crate::lock(&self.projects);
        projects.remove(key);
        if projects.is_empty() && !self.host {
            self.shutdown.notify_one();
        }
    }

    fn all(&self) -> Vec<Arc<Project>> {
        crate::lock(&self.projects).values().cloned().collect()
    }

    /// Waits until every report `project` sent so far is recorded
    /// (bounded), so an answer sent after it sees its events in the store.
    async fn flush(&self, project: &Project) {
        let id = self
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if project.reports.send(Report::Flush(id)).is_err() {
            return;
        }
        let mut flushed = self.flushed.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), flushed.wait_for(|f| *f >= id)).await;
    }
}

/// How long a starting daemon waits for an exiting one to let go of the
/// store (which it holds at most 5 s after removing its socket).
const STORE_PATIENCE: Duration = Duration::from_secs(10);

/// Runs the daemon of `state_dir` until it is told to stop; `host`: the
/// host's daemon (several projects; it stays up when they are down).
pub fn main(state_dir: &Path, host: bool) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(serve(state_dir, host));
    // Whatever is still running (a long poll) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(state_dir: &Path, host: bool) -> Result<(), String> {
    harden();
    // Out of the CLI's session: Ctrl-C in its terminal is not for us.
    let _ = rustix::process::setsid();
    // 0700, ours; one another user made, or a link, is refused.
    cove_runtime::private::make_dir(state_dir).map_err(|e| e.to_string())?;
    let state_dir = fs_err::canonicalize(state_dir).map_err(|e| e.to_string())?;
    let paths = Paths::new(&state_dir);
    // A daemon that is exiting keeps the store for up to 5 s (its last
    // connections and writes) after its socket is gone: a client that found
    // no socket and started us must not fail for that.
    let store = Arc::new(
        Store::open_waiting(&paths.store(), STORE_PATIENCE).map_err(|e| {
            format!(
                "{e} (is another cove daemon running for {}?)",
                state_dir.display()
            )
        })?,
    );
    write_atomically(&paths.pidfile(), &format!("{}\n", std::process::id()))?;
    log(&format!(
        "daemon {} starting for {}",
        std::process::id(),
        state_dir.display()
    ));

    let left = crate::leftovers::Leftovers::of_daemon(
        &paths,
        cove_runtime::cgroup::left(&state_dir),
        Some(&store),
    );
    let left = left.stop(rustix::process::Signal::TERM, SWEEP_GRACE);
    if !left.is_empty() {
        log(&format!(
            "stopped {} process(es) a previous daemon left running: {left:?}",
            left.len()
        ));
    }
    let cgroups = cove_runtime::cgroup::make_tree(&state_dir);
    match &cgroups {
        Some(tree) => log(&format!("replicas run in cgroups under {}", tree.display())),
        None => log("no cgroup can be made here: replicas are tracked by process group and marker"),
    }
    // Lives as long as this process; its end tells the reaper to act. It
    // reads where the cgroups are (recorded above) when it starts.
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

    let (recorder_tx, recorder_rx) = mpsc::unbounded_channel();
    let first_seq = store.last_seq().map_err(|e| e.to_string())?;
    let (seq_tx, seq_rx) = watch::channel(first_seq);
    let (flushed_tx, flushed_rx) = watch::channel(0u64);
    let recorder = tokio::spawn(record(recorder_rx, store.clone(), seq_tx, flushed_tx));
    let daemon = Arc::new(Daemon {
        paths: paths.clone(),
        host,
        cgroups,
        store: store.clone(),
        projects: Default::default(),
        recorder: recorder_tx,
        seq: seq_rx,
        flushes: Default::default(),
        flushed: flushed_rx,
        shutdown: Notify::new(),
        wake: Arc::new(Notify::new()),
    });

    // Bring back what should run, project by project.
    for (key, desired) in store.all_desired().map_err(|e| e.to_string())? {
        // Not readable by this build: that project is not brought back
        // (its leftovers were stopped above); the others are.
        let desired = match desired {
            Ok(d) => d,
            Err(e) => {
                log(&format!(
                    "cannot read what {key} should run ({e}): it is not started again; `cove up -d` there brings it back"
                ));
                continue;
            }
        };
        let restarts: HashMap<(String, u32), u32> = store
            .replicas(&key)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k, v.restarts))
            .collect();
        let project = daemon.project(&key);
        let mut run = project.lock_run().await;
        let planned = plan_for(&daemon.store, &key, &desired, &[]);
        // What a killed daemon's replicas left: made again from the plan;
        // its containers of services still wanted are taken over.
        clear_leftovers(
            &desired,
            planned.as_ref().ok().map(|(p, _)| p),
            &desired.wanted,
        )
        .await;
        match planned {
            Ok((mut plan, pending)) => {
                keep_images(&daemon.store, &key, &mut plan).await;
                log(&format!(
                    "starting again in {key}: {}",
                    desired.wanted.join(", ")
                ));
                if let Err(e) = project.set_gateway(Some(&plan)) {
                    log(&format!("{key}: {e}; its routes are not served"));
                }
                let done = run
                    .supervisor
                    .apply(&plan, &desired.wanted, &restarts)
                    .await;
                settle_later(&daemon.store, &key, done, pending, String::new());
                run.plan = Some(plan);
            }
            Err(e) => log(&format!("cannot plan the stored app of {key}: {e}")),
        }
        run.desired = Some(desired);
    }

    let scaling = daemon.clone();
    spawn_restarting(
        "the autoscaler".into(),
        move || {
            let scaling = scaling.clone();
            async move {
                let mut tick = tokio::time::interval(AUTOSCALE_TICK);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = scaling.wake.notified() => {}
                    }
                    for p in scaling.all() {
                        autoscale(&scaling, &p).await;
                    }
                }
            }
        },
        log,
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| e.to_string())?;
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut full_logged: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if let Err(why) = peer_allowed(&stream) {
                    log(&why);
                    continue;
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    if full_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        log(&format!("{MAX_CONNECTIONS} connections are open: closing new ones until some end"));
                        full_logged = Some(tokio::time::Instant::now());
                    }
                    continue;
                };
                let daemon = daemon.clone();
                // Reap finished connections as new ones come.
                while connections.try_join_next().is_some() {}
                connections.spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(move |req| {
                        let daemon = daemon.clone();
                        async move { Ok::<_, Infallible>(answer(daemon, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
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
                stop_all(&daemon).await;
                break;
            }
            _ = int.recv() => {
                log("SIGINT: stopping the replicas (what should run is kept)");
                stop_all(&daemon).await;
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

/// A daemon restart changes nothing that runs: each container service
/// keeps its revision's image (while the engine has it), so its running
/// containers are taken over rather than rebuilt from a context that may
/// have changed since.
async fn keep_images(store: &Store, key: &str, plan: &mut Plan) {
    for svc in plan.services.iter_mut() {
        if svc.container.is_none() || svc.artifact.is_some() {
            continue;
        }
        let Ok(revisions) = store.revisions(key, &svc.name) else {
            continue;
        };
        let Some(rev) = revisions.iter().find(|r| r.number == svc.revision) else {
            continue;
        };
        if rev.digest.starts_with("sha256:") && cove_runtime::driver::has_image(&rev.digest).await {
            svc.artifact = Some(cove_runtime::artifact::Artifact {
                digest: rev.digest.clone(),
                program: None,
            });
        }
    }
}

/// The daemon holds decrypted secrets: no core dump of it (soft
/// `RLIMIT_CORE` 0, which its replicas inherit and may raise), and not
/// dumpable, so no other process of its user may read its memory or
/// environment (`/proc/PID/mem`, `environ`) or trace it.
fn harden() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, getrlimit, setrlimit};
    if let Err(e) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        log(&format!(
            "cannot make the daemon not dumpable (PR_SET_DUMPABLE): {e}"
        ));
    }
    let limit = Rlimit {
        current: Some(0),
        maximum: getrlimit(Resource::Core).maximum,
    };
    if let Err(e) = setrlimit(Resource::Core, limit) {
        log(&format!("cannot turn off core dumps (RLIMIT_CORE): {e}"));
    }
}

/// Who may talk to the daemon: its own user, and root (`SO_PEERCRED`). The
/// socket is 0600 in a 0700 directory; this holds when either was opened.
fn peer_allowed(stream: &tokio::net::UnixStream) -> Result<(), String> {
    let own = rustix::process::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(c) if c.uid() == own || c.uid() == 0 => Ok(()),
        Ok(c) => Err(format!(
            "refused a connection from {} (pid {}): only {} and root may use this daemon",
            cove_runtime::private::describe_uid(c.uid()),
            c.pid().map_or("unknown".to_string(), |p| p.to_string()),
            cove_runtime::private::describe_uid(own)
        )),
        Err(e) => Err(format!(
            "refused a connection whose peer is unknown (SO_PEERCRED): {e}"
        )),
    }
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
/// there are none): its cgroup tree (read when the reaper starts: a later
/// daemon's is not its), the process groups its store recorded (read when
/// no later daemon holds the store yet), its marker. So no replica outlives
/// a daemon killed with SIGKILL.
pub fn reaper(state_dir: &Path) {
    use std::io::Read as _;
    // Out of the daemon's process group: a kill of that group is not for us.
    let _ = rustix::process::setsid();
    let cgroups: Vec<_> = cove_runtime::cgroup::recorded(state_dir)
        .into_iter()
        .collect();
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    let paths = Paths::new(state_dir);
    // Read, then let go at once: a new daemon may be waiting for it.
    let store = Store::open_waiting(&paths.store(), Duration::from_secs(2)).ok();
    let left = crate::leftovers::Leftovers::of_daemon(&paths, cgroups, store.as_ref());
    drop(store);
    let left = left.stop(rustix::process::Signal::TERM, SWEEP_GRACE);
    if !left.is_empty() {
        log(&format!(
            "the daemon is gone: stopped {} process(es) it left: {left:?}",
            left.len()
        ));
    }
}

async fn stop_all(daemon: &Daemon) {
    for project in daemon.all() {
        project.lock_run().await.supervisor.stop(&[]).await;
    }
}

fn log(msg: &str) {
    eprintln!(
        "{} cove-daemon: {msg}",
        logs::format_time(SystemTime::now())
    );
}

/// Writes `text` to `path` through a new temporary file (0600,
/// `O_EXCL|O_NOFOLLOW`) and a rename.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    match fs_err::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
        _ => {}
    }
    cove_runtime::private::new_file(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs_err::rename(&tmp, path))
        .map_err(|e| e.to_string())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Turns reports into log lines, events and replica records, in batches.
/// A batch whose writing panicked is logged and dropped (its logs' writers
/// opened afresh); the recorder goes on with the next, and answers every
/// flush either way.
async fn record(
    mut reports: mpsc::UnboundedReceiver<(Arc<str>, Report)>,
    store: Arc<Store>,
    seq_tx: watch::Sender<u64>,
    flushed_tx: watch::Sender<u64>,
) {
    // Each project's logs live in its own state directory; `None` once
    // writing there failed.
    let mut writers: HashMap<Arc<str>, Option<logs::Writer>> = HashMap::new();
    let mut seq = *seq_tx.borrow();
    let mut batch = Vec::new();
    while reports.recv_many(&mut batch, 1024).await > 0 {
        // `down --volumes` deletes a project's logs (a host's daemon stays
        // up): the next run's lines go to new files, not deleted ones.
        writers.retain(|p, _| logs::Writer::dir_of(Path::new(&**p)).is_dir());
        let flushed = batch
            .iter()
            .filter_map(|(_, r)| match r {
                Report::Flush(id) => Some(*id),
                _ => None,
            })
            .max();
        let reports = std::mem::take(&mut batch);
        let count = reports.len();
        let written = survive(
            "the recorder",
            || write_batch(reports, &store, &mut writers, &mut seq),
            log,
        );
        match written {
            Some(true) => {
                let _ = seq_tx.send(seq);
            }
            Some(false) => {}
            None => {
                log(&format!(
                    "the recorder dropped a batch of {count} report(s) and goes on"
                ));
                writers.clear();
                seq = store.last_seq().unwrap_or(seq).max(*seq_tx.borrow());
            }
        }
        if let Some(id) = flushed {
            let _ = flushed_tx.send(id);
        }
    }
}

/// Writes one batch of reports: log lines to each project's logs, events
/// and replica records to the store (after `seq`, which it moves on).
/// Whether it recorded events.
fn write_batch(
    batch: Vec<(Arc<str>, Report)>,
    store: &Store,
    writers: &mut HashMap<Arc<str>, Option<logs::Writer>>,
    seq: &mut u64,
) -> bool {
    let now = SystemTime::now();
    let mut events = Vec::new();
    let mut replicas = Vec::new();
    for (project, report) in batch {
        let mut append = |source: String, stream, line: &str| {
            let writer = writers.entry(project.clone()).or_insert_with(|| {
                let dir = logs::Writer::dir_of(Path::new(&*project));
                logs::Writer::new(&dir, logs::MAX_FILE_BYTES)
                    .map_err(|e| log(&format!("logs of {project} are not kept on disk: {e}")))
                    .ok()
            });
            if let Some(w) = writer.as_mut()
                && let Err(e) = w.append(&source, stream, line, now)
            {
                log(&format!(
                    "logs of {project} are no longer kept on disk: {e}"
                ));
                *writer = None;
            }
        };
        match report {
            Report::Flush(_) => {}
            // Replica 0: the app's gateway (its access log).
            Report::Log {
                service,
                replica: 0,
                stream,
                line,
            } => append(service, stream, &line),
            Report::Log {
                service,
                replica,
                stream,
                line,
            } => append(format!("{service}-{replica}"), stream, &line),
            Report::Build { service, line } => append(
                format!("{service}-build"),
                cove_runtime::process::Stream::Stdout,
                &line,
            ),
            Report::Deploy { service, message } => {
                *seq += 1;
                append(
                    format!("{service}-deploy"),
                    cove_runtime::process::Stream::Stdout,
                    &message,
                );
                events.push(Event {
                    project: project.to_string(),
                    seq: *seq,
                    time_ms: millis(now),
                    service,
                    replica: 0,
                    revision: 0,
                    state: "deploy".into(),
                    detail: message,
                    pid: None,
                    restarts: 0,
                });
            }
            Report::State {
                service,
                replica,
                slot: _,
                revision,
                state,
                pid,
                restarts,
            } => {
                *seq += 1;
                replicas.push((
                    (project.to_string(), service.clone(), replica),
                    ReplicaRecord {
                        state: state.name().to_string(),
                        pid,
                        restarts,
                        start: pid.and_then(cove_runtime::process::child_start),
                    },
                ));
                events.push(Event {
                    project: project.to_string(),
                    seq: *seq,
                    time_ms: millis(now),
                    service,
                    replica,
                    revision,
                    state: state.name().to_string(),
                    detail: state.describe(pid),
                    pid,
                    restarts,
                });
            }
        }
    }
    if events.is_empty() {
        return false;
    }
    if let Err(e) = store.record(&replicas, &events) {
        log(&e.to_string());
    }
    true
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

/// [`handle`], in a task of its own: a panic in it (a bug) costs this
/// request only, answered 500 with the panic's message (also logged); the
/// daemon goes on serving. The task goes with the connection, as the
/// handler would.
async fn answer(daemon: Arc<Daemon>, req: Request<Incoming>) -> Answer {
    let what = format!("{} {}", req.method(), req.uri().path());
    match caught(async move { handle(&daemon, req).await }).await {
        Ok(a) => a,
        Err(why) => {
            log(&format!("{what} failed: {why}"));
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the daemon failed on {what}: {why}"),
                Some(
                    "the daemon still runs; its log (.cove/daemon.log) says more: please report it"
                        .into(),
                ),
            )
        }
    }
}

/// What a panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` as a task of its own: its output, or the message of the
/// panic that ended it. Dropped before it ends, the task is aborted.
async fn caught<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    let task = tokio::spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    task.await.map_err(|e| match e.try_into_panic() {
        Ok(payload) => format!("panicked: {}", panic_message(&*payload)),
        Err(e) => e.to_string(),
    })
}

/// Runs the task `make` makes, and a new one whenever it panics: `log`
/// (daemon.log) gets what the panic said, and after a pause
/// ([`RESTART_PAUSE`], doubled while it keeps panicking) it runs again, so
/// that one bad turn of a background task (the autoscaler, a project's
/// gateway updater) does not end it for the daemon's life. Ends when a
/// run ends without a panic.
fn spawn_restarting<F, Fut>(what: String, make: F, log: fn(&str)) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = RESTART_PAUSE;
        loop {
            let started = tokio::time::Instant::now();
            match tokio::spawn(make()).await {
                Err(e) if e.is_panic() => {
                    if started.elapsed() > RESTART_RESET {
                        pause = RESTART_PAUSE;
                    }
                    log(&format!(
                        "{what} panicked: {}; it runs again in {pause:?}",
                        panic_message(&*e.into_panic())
                    ));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RESTART_PAUSE);
                }
                _ => break,
            }
        }
    })
}

/// `f()`, or `None` when it panicked (what the panic said goes to `log`).
fn survive<T>(what: &str, f: impl FnOnce() -> T, log: fn(&str)) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(payload) => {
            log(&format!("{what} panicked: {}", panic_message(&*payload)));
            None
        }
    }
}

async fn handle(daemon: &Daemon, req: Request<Incoming>) -> Answer {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let key = req
        .headers()
        .get(crate::PROJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::decode_header);
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body of {method} {path} is larger than the daemon takes ({MAX_BODY} bytes)"
            ),
            Some("an app this large is not expected; check what sends it".into()),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
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
    if (method.clone(), path.as_str()) == (Method::GET, "/v1/status") {
        let (running, asleep) = match key.as_deref().and_then(|k| daemon.existing(k)) {
            Some(p) => {
                let (plan, desired) = p.view();
                // Scaled to zero, or planned with no replica at all
                // (`deploy.replicas: 0`): nothing of theirs to wait for.
                let mut asleep: Vec<String> = desired
                    .as_ref()
                    .map(|d| {
                        d.scale
                            .iter()
                            .filter(|(_, n)| **n == 0)
                            .map(|(s, _)| s.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for svc in plan.iter().flat_map(|p| &p.services) {
                    if svc.replicas == 0 && !asleep.contains(&svc.name) {
                        asleep.push(svc.name.clone());
                    }
                }
                // The supervisor's services, or, while a command holds
                // it, those with a replica not yet ended.
                let running = match p.run.try_lock() {
                    Ok(run) => run.supervisor.running(),
                    Err(_) => p
                        .states
                        .borrow()
                        .iter()
                        .filter(|(_, r)| r.iter().any(|s| !s.state.is_final()))
                        .map(|(n, _)| n.clone())
                        .collect(),
                };
                (running, asleep)
            }
            None => (Vec::new(), Vec::new()),
        };
        return json(
            StatusCode::OK,
            &DaemonStatus {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                state_dir: daemon.paths.state_dir.clone(),
                host: daemon.host,
                running,
                asleep,
                seq: *daemon.seq.borrow(),
            },
        );
    }
    let Some(key) = key else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{method} {path} needs the `{}` header",
                crate::PROJECT_HEADER
            ),
            None,
        );
    };
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/ps") => match daemon.existing(&key) {
            Some(p) => {
                // Never waits for a command in progress.
                let (plan, desired) = p.view();
                json(
                    StatusCode::OK,
                    &ps(
                        &p.states.borrow(),
                        plan.as_deref(),
                        desired.as_ref().map_or(&[][..], |d| &d.orphans),
                    ),
                )
            }
            None => json(StatusCode::OK, &Vec::<Replica>::new()),
        },
        (Method::GET, "/v1/events") => events(daemon, &key, &query).await,
        (Method::GET, "/v1/routes") => {
            let routes = daemon.existing(&key).and_then(|p| {
                let gateway = crate::lock(&p.gateway);
                gateway.as_ref().map(ProjectGateway::describe)
            });
            match routes {
                Some(r) => json(StatusCode::OK, &r),
                None => error(
                    StatusCode::CONFLICT,
                    "the app's gateway is not running",
                    None,
                ),
            }
        }
        (Method::POST, "/v1/up") => up(daemon, &key, parse!(UpRequest)).await,
        (Method::POST, "/v1/stop") => control(daemon, &key, parse!(Names), Verb::Stop).await,
        (Method::POST, "/v1/start") => control(daemon, &key, parse!(Names), Verb::Start).await,
        (Method::POST, "/v1/restart") => control(daemon, &key, parse!(Names), Verb::Restart).await,
        (Method::POST, "/v1/down") => down(daemon, &key, parse!(Names)).await,
        (Method::POST, "/v1/deploy") => deploy(daemon, &key, parse!(DeployRequest)).await,
        (Method::POST, "/v1/scale") => scale(daemon, &key, parse!(ScaleRequest)).await,
        (Method::POST, "/v1/rollback") => rollback(daemon, &key, parse!(RollbackRequest)).await,
        (Method::GET, "/v1/history") => history(daemon, &key, &query).await,
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such API call: {method} {path}"),
            None,
        ),
    }
}

fn ps(states: &States, plan: Option<&Plan>, orphans: &[String]) -> Vec<Replica> {
    let mut rows = Vec::new();
    for (name, replicas) in states {
        let svc = plan.and_then(|p| p.services.iter().find(|s| &s.name == name));
        for s in replicas {
            rows.push(Replica {
                service: name.clone(),
                replica: s.replica,
                revision: s.revision,
                retiring: s.retiring,
                state: s.state.name().to_string(),
                health: s.health().to_string(),
                detail: s.state.describe(s.pid),
                pid: s.pid,
                address: svc.map_or(String::new(), |svc| format!("{}:{}", s.addr, svc.port())),
                container: svc
                    .filter(|svc| svc.container.is_some())
                    .map(|svc| cove_runtime::driver::container_name(svc, s.slot)),
                restarts: s.restarts,
                since_ms: millis(s.since),
                ready: s.ready(),
                refusing: match s.state {
                    State::Refusing { port } => Some(port),
                    _ => None,
                },
                orphan: orphans.contains(name),
            });
        }
    }
    rows
}

async fn events(daemon: &Daemon, key: &str, query: &str) -> Answer {
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
    // Until one of this project's events comes, or the wait is over.
    let deadline = tokio::time::Instant::now() + wait;
    let mut seq = daemon.seq.clone();
    loop {
        let evs = match daemon.store.events_after(key, after, 1000) {
            Ok(evs) => evs,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
        };
        if !evs.is_empty() || tokio::time::Instant::now() >= deadline {
            return json(StatusCode::OK, &evs);
        }
        let last = *seq.borrow_and_update();
        let _ = tokio::time::timeout_at(deadline, seq.wait_for(|s| *s > last)).await;
    }
}

fn accepted(daemon: &Daemon) -> Answer {
    json(
        StatusCode::OK,
        &Accepted {
            seq: *daemon.seq.borrow(),
            events: Vec::new(),
            revisions: Default::default(),
        },
    )
}

async fn up(daemon: &Daemon, key: &str, req: UpRequest) -> Answer {
    if let Err(errors) = cove_runtime::plan::plan(&req.app, &req.project_dir) {
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
    for (name, svc) in &req.app.services {
        if let Some(a) = svc.x_cove.as_ref().and_then(|x| x.autoscale.as_ref())
            && let Err(e) = crate::autoscale::Policy::from_spec(a)
        {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("service `{name}`: `x-cove.autoscale` {e}"),
                Some("e.g. `autoscale: {min: 2, max: 5, target_concurrency: 32}`".into()),
            );
        }
    }
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
    // The project's addresses: its lease, taken at its first `up`.
    let state = cove_runtime::plan::state_dir(&req.app, &req.project_dir);
    let preferred = cove_runtime::plan::project_net(&req.app.name, &req.project_dir);
    let leased =
        tokio::task::spawn_blocking(move || cove_runtime::lease::acquire(&state, preferred)).await;
    match leased {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let text = e.to_string();
            let (message, hint) = text.split_once("; hint: ").unwrap_or((&text, ""));
            return error(
                StatusCode::CONFLICT,
                format!("cannot lease this project's addresses: {message}"),
                (!hint.is_empty()).then(|| hint.to_string()),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
    let seq = *daemon.seq.borrow();
    let project = daemon.project(key);
    let mut run = project.lock_run().await;
    // `cove scale` and `cove rollback` hold until the next deploy.
    let (scale, pinned) = run
        .desired
        .as_ref()
        .map(|d| (d.scale.clone(), d.pinned.clone()))
        .unwrap_or_default();
    let (app, orphans, removed) = with_orphans(
        req.app.clone(),
        run.desired.as_ref(),
        req.remove_orphans,
        &req.disabled,
    );
    let before: Vec<String> = run
        .desired
        .as_ref()
        .map(|d| d.wanted.clone())
        .unwrap_or_default();
    let mut candidate = Desired {
        app,
        project_dir: req.project_dir.clone(),
        wanted: Vec::new(),
        orphans,
        scale,
        pinned,
        identity: req.identity.clone(),
    };
    // A service held at a revision whose working-tree files changed since
    // (cove keeps no copy of them) runs them as a new revision, as a
    // deploy would: never under the held revision's number.
    // (Files as a later, failed revision had them keep the hold.)
    let held: Vec<(String, u64)> = candidate.pinned.clone().into_iter().collect();
    let mut renewed = Vec::new();
    for (name, number) in held {
        let revs = daemon.store.revisions(key, &name).unwrap_or_default();
        let Some(rev) = revs.iter().find(|r| r.number == number) else {
            continue;
        };
        if rev.digest.is_empty() || rev.program.is_some() {
            continue;
        }
        let Ok(Some(now)) = working_tree(daemon, key, &candidate, &name).await else {
            continue;
        };
        if revs
            .iter()
            .all(|r| r.digest != now.digest || r.number < number)
        {
            log(&format!(
                "`{name}` was held at revision {number}; its files changed since, so `up` runs them as a new revision"
            ));
            candidate.pinned.remove(&name);
            renewed.push(name);
        }
    }
    // Every service of the file planned (their addresses depend on all the
    // names), then only what should run kept: what ran, if the file (or
    // an orphan) still has it, what is asked, and what those depend on.
    // `up SERVICE` and `run` add to what runs; they never stop or unroute
    // anything else.
    let (mut plan, pending) = match plan_for(&daemon.store, key, &candidate, &renewed) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
    };
    let seeds: Vec<String> = before
        .iter()
        .chain(&req.services)
        .filter(|s| !removed.contains(s))
        .cloned()
        .collect();
    let wanted = plan.closure(&seeds);
    plan.keep(&wanted);
    // Its addresses first: when one is taken, nothing changes.
    if let Err(e) = project.set_gateway(Some(&plan)) {
        if run.desired.is_none() {
            drop(run);
            daemon.forget(key);
        }
        return error(
            StatusCode::CONFLICT,
            e,
            Some(
                "set `x-cove.gateway.listen` (or the route's `listen`) to a free address, e.g. 127.0.0.1:2684, or stop what uses it"
                    .into(),
            ),
        );
    }
    // Started (or converged): what is asked, and what it newly depends on.
    let start: Vec<String> = wanted
        .iter()
        .filter(|s| req.services.contains(s) || !before.contains(s))
        .cloned()
        .collect();
    let desired = Desired {
        wanted,
        ..candidate
    };
    // Written before it is acted on.
    if let Err(e) = daemon.store.set_desired(key, Some(&desired)) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    if !removed.is_empty() {
        run.supervisor.remove(&removed).await;
    }
    // The revisions this request asked for, which `up -d` waits for: the
    // plan's, or, for a service whose change does not touch what runs
    // (its replicas stay, with their revision), the one its replicas run.
    let revisions = {
        let states = project.states.borrow();
        plan.services
            .iter()
            .filter(|s| s.replicas > 0)
            .map(|s| {
                let stays = run.plan.as_ref().is_some_and(|p| {
                    p.services
                        .iter()
                        .any(|before| before.name == s.name && before.same_run(s))
                });
                let running = stays.then(|| current_revision(&states, &s.name)).flatten();
                (s.name.clone(), running.unwrap_or(s.revision))
            })
            .collect()
    };
    let done = run.supervisor.apply(&plan, &start, &HashMap::new()).await;
    settle_later(&daemon.store, key, done, pending, String::new());
    run.plan = Some(plan);
    run.desired = Some(desired);
    json(
        StatusCode::OK,
        &Accepted {
            seq,
            events: Vec::new(),
            revisions,
        },
    )
}

/// `app` (the compose file as it is now) with the services that ran
/// before (`desired`) but that the file no longer has: kept as they were
/// defined (orphans, as Compose calls them), or, with `remove`, listed to
/// be stopped. The app, the orphans, the removed.
fn with_orphans(
    mut app: cove_spec::App,
    desired: Option<&Desired>,
    remove: bool,
    disabled: &[String],
) -> (cove_spec::App, Vec<String>, Vec<String>) {
    let (mut orphans, mut removed) = (Vec::new(), Vec::new());
    for name in desired.map_or(&[][..], |d| &d.wanted) {
        if app.services.contains_key(name) {
            continue;
        }
        if disabled.contains(name) {
            // In the file, left out by the profiles of this command: it
            // runs on as it was (Compose does not call it an orphan).
            if let Some(def) = desired.and_then(|d| d.app.services.get(name)) {
                app.services.insert(name.clone(), def.clone());
            }
        } else if remove {
            removed.push(name.clone());
        } else if let Some(def) = desired.and_then(|d| d.app.services.get(name)) {
            app.services.insert(name.clone(), def.clone());
            orphans.push(name.clone());
        }
    }
    (app, orphans, removed)
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

/// The project of `key`, or the answer that it runs nothing.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
fn running_project(daemon: &Daemon, key: &str) -> Result<Arc<Project>, Answer> {
    daemon.existing(key).ok_or_else(|| {
        error(
            StatusCode::CONFLICT,
            "the app is not running",
            Some("start it with `cove up -d`".into()),
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Stop,
    Start,
    Restart,
}

/// `stop`, `start`, `restart`: what should run changes first (stopped
/// services are no longer wanted; started ones are again), then the
/// supervisor acts.
async fn control(daemon: &Daemon, key: &str, req: Names, verb: Verb) -> Answer {
    let answer = accepted(daemon);
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let mut run = project.lock_run().await;
    let names = match known(&run, &req.services) {
        Ok(n) => n,
        Err(a) => return a,
    };
    let mut desired = run.desired.clone().expect("checked by known");
    // A service held at a revision (a rollback, a failed deploy) starts
    // at it, or not at all: never the working tree's changed files under
    // its number.
    if verb != Verb::Stop {
        for name in &names {
            let Some(number) = desired.pinned.get(name).copied() else {
                continue;
            };
            let revs = match daemon.store.revisions(key, name) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
            };
            let Some(rev) = revs.iter().find(|r| r.number == number) else {
                continue;
            };
            if verb == Verb::Start && desired.wanted.contains(name) {
                continue; // running: nothing starts
            }
            let word = if verb == Verb::Start {
                "start"
            } else {
                "restart"
            };
            let what = format!("{word} `{name}` at revision {number}, where it is held");
            if let Err(a) = restorable(daemon, key, &desired, name, rev, &what).await {
                return a;
            }
        }
    }
    if verb == Verb::Stop {
        desired.wanted.retain(|s| !names.contains(s));
    } else {
        let app_order: Vec<String> = desired.app.services.keys().cloned().collect();
        desired.wanted = app_order
            .into_iter()
            .filter(|s| desired.wanted.contains(s) || names.contains(s))
            .collect();
    }
    // A service the running plan lacks (never started, or stopped before
    // the last `up`): planned with what it depends on, and routed, as
    // `up` does; those dependencies start too.
    let mut start = names.clone();
    let mut pending = Pending::new();
    let planned = |n: &String| {
        run.plan
            .as_ref()
            .is_some_and(|p| p.services.iter().any(|s| &s.name == n))
    };
    if verb != Verb::Stop && !names.iter().all(planned) {
        let (plan, new) = match plan_for(&daemon.store, key, &desired, &[]) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
        };
        if let Err(e) = project.set_gateway(Some(&plan)) {
            return error(StatusCode::CONFLICT, e, None);
        }
        desired.wanted = plan.services.iter().map(|s| s.name.clone()).collect();
        start.extend(
            desired
                .wanted
                .iter()
                .filter(|s| !planned(s) && !names.contains(s))
                .cloned(),
        );
        run.plan = Some(plan);
        pending = new;
    }
    if let Err(e) = daemon.store.set_desired(key, Some(&desired)) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    run.desired = Some(desired);
    if verb != Verb::Start {
        run.supervisor.stop(&names).await;
    }
    if verb != Verb::Stop
        && let Some(plan) = run.plan.clone()
    {
        let done = run.supervisor.apply(&plan, &start, &HashMap::new()).await;
        settle_later(&daemon.store, key, done, pending, String::new());
    }
    daemon.flush(&project).await;
    answer
}

async fn down(daemon: &Daemon, key: &str, req: Names) -> Answer {
    let before = *daemon.seq.borrow();
    let Some(project) = daemon.existing(key) else {
        // Nothing was ever run here (a project's daemon then goes).
        daemon.forget(key);
        return accepted(daemon);
    };
    let mut run = project.lock_run().await;
    let Some(mut desired) = run.desired.clone() else {
        daemon.forget(key);
        return accepted(daemon);
    };
    let mut gone = req.services.clone();
    if req.remove_orphans && !gone.is_empty() {
        gone.extend(desired.orphans.iter().cloned());
    }
    desired
        .wanted
        .retain(|s| !gone.is_empty() && !gone.contains(s));
    desired.orphans.retain(|s| desired.wanted.contains(s));
    let everything = desired.wanted.is_empty();
    let stored = if everything {
        daemon.store.set_desired(key, None)
    } else {
        daemon.store.set_desired(key, Some(&desired))
    };
    if let Err(e) = stored {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None);
    }
    let names = if everything { Vec::new() } else { gone };
    run.supervisor.remove(&names).await;
    daemon.flush(&project).await;
    // Its events come with the answer: the daemon may be gone right after.
    let events = match daemon.store.events_after(key, before, 10_000) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    if everything {
        let _ = project.set_gateway(None);
        clear_leftovers(&desired, run.plan.as_ref(), &[]).await;
        // Its replicas removed their cgroups as they stopped; anything
        // still there goes with the project's.
        if let Some(dir) = daemon
            .cgroups
            .as_deref()
            .map(|tree| cove_runtime::cgroup::project(tree, key))
        {
            let _ = tokio::task::spawn_blocking(move || {
                cove_runtime::cgroup::stop(&dir, rustix::process::Signal::KILL, Duration::ZERO)
            })
            .await;
        }
        run.desired = None;
        run.plan = None;
        daemon.forget(key);
    } else {
        run.desired = Some(desired);
    }
    json(
        StatusCode::OK,
        &Accepted {
            seq: before,
            events,
            revisions: Default::default(),
        },
    )
}

/// Removes what a project's replicas keep outside their processes: their
/// secrets files, and (when `plan` runs containers) its containers but
/// those of the services in `keep`, and the network when nothing is kept.
/// At `down`, and before a restarted daemon brings the app back.
async fn clear_leftovers(desired: &Desired, plan: Option<&Plan>, keep: &[String]) {
    let state = cove_runtime::plan::state_dir(&desired.app, &desired.project_dir);
    let secrets = cove_runtime::secrets::root(&state);
    if let Err(e) = cove_runtime::secrets::remove_all(&secrets) {
        log(&format!("cannot remove {}: {e}", secrets.display()));
    }
    if let Some(c) = plan.and_then(|p| p.services.iter().find_map(|s| s.container.as_ref())) {
        let network = keep.is_empty().then_some(c.network.as_str());
        cove_runtime::driver::remove_containers(&state, network, keep).await;
    }
}

/// Each service's command, to learn how it ended.
type Waiting = Vec<(String, tokio::sync::oneshot::Receiver<Outcome>)>;

/// Revisions the plan names that the store does not have yet: service →
/// (number, config). Recorded once the service started or deployed.
type Pending = HashMap<String, (u64, serde_json::Value)>;

/// A service's config as a revision records it: without its replica count
/// (scaling is not a new revision).
fn revision_config(svc: &cove_spec::model::Service) -> serde_json::Value {
    let mut v = serde_json::to_value(svc).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("scale");
        if let Some(d) = o.get_mut("deploy").and_then(|d| d.as_object_mut()) {
            d.remove("replicas");
            // `cove scale` of a service with no `deploy` leaves an empty
            // one: the same config (a daemon restart after a scale made a
            // new revision of it).
            if d.is_empty() {
                o.remove("deploy");
            }
        }
    }
    v
}

/// The plan of what `desired` says, with `cove scale` counts, services held
/// by `cove rollback` at their revision, and revision numbers: a service's
/// last revision when its config is the same (and it is not in
/// `deploying`), else the next number.
fn plan_for(
    store: &Store,
    key: &str,
    desired: &Desired,
    deploying: &[String],
) -> Result<(Plan, Pending), String> {
    let mut app = desired.app.clone();
    let mut held: HashMap<String, Revision> = HashMap::new();
    for (name, number) in &desired.pinned {
        let Some(now) = app.services.get(name) else {
            continue;
        };
        let revs = store.revisions(key, name).map_err(|e| e.to_string())?;
        let Some(rev) = revs.into_iter().find(|r| r.number == *number) else {
            return Err(format!(
                "`{name}` is held at revision {number}, which is no longer recorded"
            ));
        };
        let mut config: cove_spec::model::Service = serde_json::from_value(rev.config.clone())
            .map_err(|e| format!("revision {number} of `{name}` cannot be read: {e}"))?;
        config.deploy.get_or_insert_with(Default::default).replicas = Some(now.replicas());
        app.services.insert(name.clone(), config);
        held.insert(name.clone(), rev);
    }
    for (name, n) in &desired.scale {
        if let Some(s) = app.services.get_mut(name) {
            s.deploy.get_or_insert_with(Default::default).replicas = Some(*n);
        }
    }
    let words = |errors: Vec<cove_runtime::plan::PlanError>| {
        errors
            .iter()
            .map(|e| format!("{e}\n  = hint: {}", e.hint))
            .collect::<Vec<_>>()
            .join("\nerror: ")
    };
    let secrets =
        cove_runtime::secrets::resolve(&app, &desired.project_dir, desired.identity.as_deref())
            .map_err(words)?;
    let mut plan =
        cove_runtime::plan::plan_with(&app, &desired.project_dir, Some(&secrets)).map_err(words)?;
    // Every service planned (addresses depend on all the names); only
    // what should run (and what it depends on) kept, routes included.
    if !desired.wanted.is_empty() {
        let keep = plan.closure(&desired.wanted);
        plan.keep(&keep);
    }
    let mut pending = Pending::new();
    for svc in &mut plan.services {
        if let Some(rev) = held.get(&svc.name) {
            svc.revision = rev.number;
            // Its kept program, when it still is; else it is built again.
            if rev.program.as_ref().is_none_or(|p| p.is_file()) {
                svc.artifact = Some(cove_runtime::artifact::Artifact {
                    digest: rev.digest.clone(),
                    program: rev.program.clone(),
                });
            }
            continue;
        }
        let Some(service) = app.services.get(&svc.name) else {
            return Err(format!(
                "the plan names `{}`, which the app does not have",
                svc.name
            ));
        };
        let config = revision_config(service);
        let revs = store.revisions(key, &svc.name).map_err(|e| e.to_string())?;
        let number = match revs.last() {
            Some(l) if l.config == config && !deploying.contains(&svc.name) => l.number,
            Some(l) => l.number + 1,
            None => 1,
        };
        svc.revision = number;
        if revs.last().is_none_or(|l| l.number != number) {
            pending.insert(svc.name.clone(), (number, config));
        }
    }
    Ok((plan, pending))
}

/// Records the revision a service started or deployed, if it is new.
fn settle(
    store: &Store,
    key: &str,
    service: &str,
    outcome: &Outcome,
    pending: &Pending,
    message: &str,
) {
    let artifact = match outcome {
        Outcome::Started { artifact } | Outcome::Deployed { artifact, .. } => artifact,
        _ => return,
    };
    let Some((number, config)) = pending.get(service) else {
        return;
    };
    let rev = Revision {
        number: *number,
        time_ms: millis(SystemTime::now()),
        message: message.to_string(),
        digest: artifact
            .as_ref()
            .map(|a| a.digest.clone())
            .unwrap_or_default(),
        program: artifact.as_ref().and_then(|a| a.program.clone()),
        config: config.clone(),
    };
    if let Err(e) = store.add_revision(key, service, &rev) {
        log(&format!(
            "{key}: revision {number} of {service} not recorded: {e}"
        ));
    }
}

/// [`settle`]s each service when its command ends, without waiting for it.
fn settle_later(store: &Arc<Store>, key: &str, done: Waiting, pending: Pending, message: String) {
    if pending.is_empty() {
        return;
    }
    let (store, key, pending) = (store.clone(), key.to_string(), Arc::new(pending));
    for (service, rx) in done {
        let (store, key, pending, message) =
            (store.clone(), key.clone(), pending.clone(), message.clone());
        tokio::spawn(async move {
            if let Ok(outcome) = rx.await {
                settle(&store, &key, &service, &outcome, &pending, &message);
            }
        });
    }
}

/// The revision `service`'s replicas run (the newest when they differ).
fn current_revision(states: &States, service: &str) -> Option<u64> {
    states
        .get(service)?
        .iter()
        .filter(|s| !s.retiring && !s.state.is_final())
        .map(|s| s.revision)
        .max()
}

fn outcome_row(service: &str, revision: u64, outcome: &Outcome) -> ServiceOutcome {
    let (word, message, ok) = match outcome {
        Outcome::Unchanged => (
            "unchanged",
            format!("revision {revision} is already running; nothing to do"),
            true,
        ),
        Outcome::Started { .. } => ("started", format!("revision {revision} started"), true),
        Outcome::Scaled { from, to } => ("scaled", format!("scaled from {from} to {to}"), true),
        Outcome::Deployed {
            replaced, failed, ..
        } if failed.is_empty() => (
            "deployed",
            format!("revision {revision} runs on every replica ({replaced} replaced)"),
            true,
        ),
        // Failures its `update_config` tolerates.
        Outcome::Deployed {
            replaced, failed, ..
        } => (
            "deployed",
            format!(
                "revision {revision} runs on {replaced} of {} replicas; the others kept their previous revision: {}",
                *replaced as usize + failed.len(),
                failed.join("; ")
            ),
            true,
        ),
        Outcome::Failed { reason, undone } => (
            "failed",
            if *undone {
                format!("{reason}; the previous revision runs again")
            } else {
                reason.clone()
            },
            false,
        ),
        Outcome::Stopped => ("stopped", "stopped while it ran".into(), false),
    };
    ServiceOutcome {
        service: service.to_string(),
        revision,
        outcome: word.into(),
        message,
        ok,
    }
}

/// Waits for each service's command and answers with every outcome;
/// records new revisions.
async fn outcomes(
    daemon: &Daemon,
    project: &Project,
    key: &str,
    seq: u64,
    done: Waiting,
    pending: &Pending,
    message: &str,
) -> Outcomes {
    let mut results = Vec::new();
    for (service, rx) in done {
        let outcome = rx.await.unwrap_or(Outcome::Stopped);
        settle(&daemon.store, key, &service, &outcome, pending, message);
        let revision = current_revision(&project.states.borrow(), &service).unwrap_or_default();
        results.push(outcome_row(&service, revision, &outcome));
    }
    daemon.flush(project).await;
    Outcomes { seq, results }
}

/// Makes `desired` what should run (stored before it is acted on), with
/// `deploying` at new revision numbers, and sends each of `names` its plan
/// in `mode`: their outcomes to wait for, and the revisions to record.
#[allow(clippy::result_large_err, clippy::too_many_arguments)] // an HTTP answer, built once per request
fn act(
    daemon: &Daemon,
    project: &Project,
    key: &str,
    run: &mut Running,
    desired: Desired,
    names: &[String],
    deploying: &[String],
    mode: Mode,
) -> Result<(Waiting, Pending), Answer> {
    let (plan, pending) = plan_for(&daemon.store, key, &desired, deploying)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e, None))?;
    project
        .set_gateway(Some(&plan))
        .map_err(|e| error(StatusCode::CONFLICT, e, None))?;
    daemon
        .store
        .set_desired(key, Some(&desired))
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    let done = names
        .iter()
        .filter_map(|n| Some((n.clone(), run.supervisor.converge(&plan, n, mode)?)))
        .collect();
    run.plan = Some(plan);
    run.desired = Some(desired);
    Ok((done, pending))
}

/// [`act`] for `names` (scaling, a rollback), then the answer once each
/// is done (the project is let go meanwhile).
async fn converge_and_answer(
    daemon: &Daemon,
    project: &Project,
    key: &str,
    seq: u64,
    mut run: RunGuard<'_>,
    desired: Desired,
    names: &[String],
) -> Answer {
    let (done, pending) = match act(
        daemon,
        project,
        key,
        &mut run,
        desired,
        names,
        &[],
        Mode::Converge,
    ) {
        Ok(d) => d,
        Err(a) => return a,
    };
    drop(run);
    json(
        StatusCode::OK,
        &outcomes(daemon, project, key, seq, done, &pending, "").await,
    )
}

/// `cove deploy`: the new app becomes what should run; the named services
/// (all wanted ones when none) are built and rolled out; the answer comes
/// when every rollout ended. A service whose deploy failed is held at the
/// revision it ran before.
async fn deploy(daemon: &Daemon, key: &str, req: DeployRequest) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let mut run = project.lock_run().await;
    let Some(before) = run.desired.clone() else {
        return error(
            StatusCode::CONFLICT,
            "the app is not running",
            Some("start it with `cove up -d`, then deploy".into()),
        );
    };
    // Still wanted: what was, if the new app still has it (as `up` does).
    let wanted: Vec<String> = before
        .wanted
        .iter()
        .filter(|s| req.app.services.contains_key(*s))
        .cloned()
        .collect();
    let names: Vec<String> = if req.services.is_empty() {
        wanted.clone()
    } else {
        req.services.clone()
    };
    if let Some(unknown) = names.iter().find(|s| !req.app.services.contains_key(*s)) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no such service `{unknown}` in the app"),
            None,
        );
    }
    if let Some(idle) = names.iter().find(|s| !before.wanted.contains(s)) {
        return error(
            StatusCode::CONFLICT,
            format!("`{idle}` is not running; a deploy replaces running replicas"),
            Some(format!("start it first: `cove up -d {idle}`")),
        );
    }
    let (app, orphans, _) = with_orphans(req.app, Some(&before), false, &req.disabled);
    let mut desired = Desired {
        app,
        project_dir: req.project_dir,
        wanted: before.wanted.clone(),
        orphans,
        scale: before.scale.clone(),
        pinned: before.pinned.clone(),
        identity: req.identity.or_else(|| before.identity.clone()),
    };
    desired.pinned.retain(|s, _| !names.contains(s));
    let mode = if req.restart {
        Mode::Restart
    } else {
        Mode::Deploy
    };
    let previous: HashMap<String, u64> = names
        .iter()
        .filter_map(|n| Some((n.clone(), current_revision(&project.states.borrow(), n)?)))
        .collect();
    let (done, pending) = match act(
        daemon, &project, key, &mut run, desired, &names, &names, mode,
    ) {
        Ok(d) => d,
        Err(a) => return a,
    };
    drop(run);
    let answer = outcomes(daemon, &project, key, seq, done, &pending, &req.message).await;
    // Failed (rolled back, or paused with some replicas replaced): held
    // at the revision that ran before, across daemon restarts, so that
    // nothing rolls the failed one out again.
    let failed: Vec<&ServiceOutcome> = answer
        .results
        .iter()
        .filter(|r| r.outcome == "failed" && previous.contains_key(&r.service))
        .collect();
    if !failed.is_empty() {
        let mut run = project.lock_run().await;
        if let Some(d) = run.desired.as_mut() {
            for r in &failed {
                if let Some(&number) = previous.get(&r.service) {
                    d.pinned.insert(r.service.clone(), number);
                }
            }
            if let Err(e) = daemon.store.set_desired(key, Some(d)) {
                log(&format!("{key}: {e}"));
            }
        }
        // The plan kept for what acts on it later (`restart`, `start`)
        // runs the held revision, not the failed one.
        if let Some(d) = run.desired.clone() {
            match plan_for(&daemon.store, key, &d, &[]) {
                Ok((plan, _)) => run.plan = Some(plan),
                Err(e) => log(&format!("{key}: {e}")),
            }
        }
    }
    json(StatusCode::OK, &answer)
}

/// `cove scale SERVICE=N…`: the counts hold until changed again (a `cove
/// up` keeps them).
async fn scale(daemon: &Daemon, key: &str, req: ScaleRequest) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let run = project.lock_run().await;
    let names: Vec<String> = req.scale.keys().cloned().collect();
    if let Err(a) = known(&run, &names) {
        return a;
    }
    let mut desired = run.desired.clone().expect("checked by known");
    if let Some(idle) = names.iter().find(|s| !desired.wanted.contains(s)) {
        return error(
            StatusCode::CONFLICT,
            format!("`{idle}` is not running"),
            Some(format!("start it first: `cove up -d {idle}`")),
        );
    }
    let most = cove_runtime::plan::MAX_INSTANCES / 2;
    if let Some((name, n)) = req.scale.iter().find(|(_, n)| **n > most) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{name}` cannot run {n} replicas; natively a service runs at most {most}"),
            None,
        );
    }
    desired.scale.extend(req.scale.clone());
    converge_and_answer(daemon, &project, key, seq, run, desired, &names).await
}

/// `cove rollback SERVICE [--to N]`: rolls out a recorded revision (its kept
/// program, no build) and holds the service at it until the next deploy.
async fn rollback(daemon: &Daemon, key: &str, req: RollbackRequest) -> Answer {
    let seq = *daemon.seq.borrow();
    let project = match running_project(daemon, key) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let run = project.lock_run().await;
    let names = vec![req.service.clone()];
    if let Err(a) = known(&run, &names) {
        return a;
    }
    let mut desired = run.desired.clone().expect("checked by known");
    let revs = match daemon.store.revisions(key, &req.service) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let current = current_revision(&project.states.borrow(), &req.service);
    let target = match req.to {
        Some(n) => revs.iter().find(|r| r.number == n),
        None => revs
            .iter()
            .rev()
            .find(|r| current.is_none_or(|c| r.number < c)),
    };
    let Some(target) = target else {
        let known: Vec<String> = revs.iter().map(|r| r.number.to_string()).collect();
        return error(
            StatusCode::NOT_FOUND,
            match req.to {
                Some(n) => format!("`{}` has no revision {n}", req.service),
                None => format!(
                    "`{}` has no revision before {}",
                    req.service,
                    current.unwrap_or(0)
                ),
            },
            Some(if known.is_empty() {
                "it has no recorded revision yet".into()
            } else {
                format!(
                    "its revisions: {} (`cove history {}`)",
                    known.join(", "),
                    req.service
                )
            }),
        );
    };
    desired.pinned.insert(req.service.clone(), target.number);
    let what = format!("roll `{}` back to revision {}", req.service, target.number);
    if let Err(a) = restorable(daemon, key, &desired, &req.service, target, &what).await {
        return a;
    }
    converge_and_answer(daemon, &project, key, seq, run, desired, &names).await
}

/// Whether running `service` at `target` (pinned in `desired`: a
/// rollback, or a restart of a service held there) runs what `target`
/// ran: its kept program, an image, or a command that names no file of
/// the project do; files of the working tree (`python3 app.py`) do only
/// when they are as they were then (cove keeps no copy of them), else the
/// answer refuses to `what`, naming them.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
async fn restorable(
    daemon: &Daemon,
    key: &str,
    desired: &Desired,
    service: &str,
    target: &Revision,
    what: &str,
) -> Result<(), Answer> {
    if target.digest.is_empty() || target.program.is_some() {
        return Ok(());
    }
    let Some(now) = working_tree(daemon, key, desired, service).await? else {
        return Ok(());
    };
    if now.digest == target.digest {
        return Ok(());
    }
    Err(error(
        StatusCode::CONFLICT,
        format!(
            "cannot {what}: `{service}` runs files from the working tree ({}), which cove does not keep, and they changed since revision {} ran",
            now.names, target.number
        ),
        Some(format!(
            "revert them (git) and `cove deploy {service}`, or run them as they are now with `cove deploy {service}`; nothing was changed"
        )),
    ))
}

/// The files of the working tree a native service's command names, as
/// they are now.
struct WorkingTree {
    digest: String,
    /// Their names (relative to the workdir), for messages.
    names: String,
}

/// What `service` of `desired` would run from the working tree now; none
/// for a container, or when it cannot be said.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
async fn working_tree(
    daemon: &Daemon,
    key: &str,
    desired: &Desired,
    service: &str,
) -> Result<Option<WorkingTree>, Answer> {
    let (plan, _) = plan_for(&daemon.store, key, desired, &[])
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e, None))?;
    let Some(svc) = plan.services.into_iter().find(|s| s.name == service) else {
        return Ok(None);
    };
    if svc.container.is_some() {
        return Ok(None);
    }
    let (argv, workdir) = (svc.argv.clone(), svc.workdir.clone());
    let argv_text = argv.join(" ");
    let name = service.to_string();
    let now = tokio::task::spawn_blocking(move || {
        let files = cove_runtime::artifact::files_named(&argv, &workdir);
        let digest =
            cove_runtime::artifact::capture(&name, &argv, &workdir, None, &[]).map(|a| a.digest);
        (files, workdir, digest)
    })
    .await;
    let Ok((files, workdir, Ok(digest))) = now else {
        return Ok(None);
    };
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&workdir).unwrap_or(f).display().to_string())
        .collect();
    let names = if names.is_empty() {
        format!("named by `{}`, none there now", argv_text)
    } else {
        names.join(", ")
    };
    Ok(Some(WorkingTree { digest, names }))
}

/// `cove history SERVICE`.
async fn history(daemon: &Daemon, key: &str, query: &str) -> Answer {
    let service = query
        .split('&')
        .find_map(|p| p.strip_prefix("service="))
        .unwrap_or_default()
        .to_string();
    let revs = match daemon.store.revisions(key, &service) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let (current, pinned) = match daemon.existing(key) {
        Some(p) => {
            let (_, desired) = p.view();
            (
                current_revision(&p.states.borrow(), &service),
                desired
                    .as_ref()
                    .and_then(|d| d.pinned.get(&service).copied()),
            )
        }
        None => (None, None),
    };
    if revs.is_empty() && current.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("`{service}` has no recorded revision"),
            Some("a revision is recorded when a service starts or is deployed".into()),
        );
    }
    json(
        StatusCode::OK,
        &History {
            service,
            current,
            revisions: revs
                .into_iter()
                .map(|r| RevisionInfo {
                    number: r.number,
                    time_ms: r.time_ms,
                    message: r.message,
                    digest: r.digest,
                    kept: r.program.as_ref().is_some_and(|p| p.is_file()),
                    pinned: pinned == Some(r.number),
                })
                .collect(),
        },
    )
}

/// One look at `project`'s autoscaled services: the gateway's figures go to
/// each one's scaler; a decision becomes a `cove scale` (kept in what
/// should run) and an event. Skipped while another command holds the
/// project (a deploy waits for no one, so neither does this).
async fn autoscale(daemon: &Daemon, project: &Project) {
    use crate::autoscale::{Figure, Policy, Scaler};
    let Ok(mut run) = project.run.try_lock() else {
        return;
    };
    let Some(desired) = run.desired.clone() else {
        return;
    };
    let now = tokio::time::Instant::now();
    let mut changes = Vec::new();
    {
        let mut gateway = crate::lock(&project.gateway);
        // Services that may sleep get a waker in the gateway.
        let sleepers: HashMap<String, cove_gateway::table::Wake> = desired
            .wanted
            .iter()
            .filter(|n| {
                // What should run may name a service the app no longer
                // has (a deploy of another one after it was removed).
                desired
                    .app
                    .services
                    .get(n.as_str())
                    .and_then(|s| s.x_cove.as_ref()?.autoscale.as_ref())
                    .is_some_and(|a| a.min == 0)
            })
            .map(|n| {
                let (woken, wake, name) = (project.woken.clone(), daemon.wake.clone(), n.clone());
                let f = move || {
                    crate::lock(&woken).insert(name.clone());
                    wake.notify_one();
                };
                (n.clone(), cove_gateway::table::Wake(Arc::new(f)))
            })
            .collect();
        if let Some(g) = gateway.as_mut()
            && g.set_wakers(sleepers)
        {
            g.refresh(&project.states.borrow());
        }
        let woken = std::mem::take(&mut *crate::lock(&project.woken));
        let mut scalers = crate::lock(&project.scalers);
        for name in &desired.wanted {
            let Some((service, spec)) = desired.app.services.get(name).and_then(|s| {
                let spec = s.x_cove.as_ref()?.autoscale.as_ref()?;
                Some((s, spec))
            }) else {
                scalers.remove(name);
                continue;
            };
            let Ok(policy) = Policy::from_spec(spec) else {
                continue; // refused by `cove up` already
            };
            let Some(g) = gateway.as_ref() else {
                continue;
            };
            let (in_flight, answered) = g.load(name);
            let entry = scalers
                .entry(name.clone())
                .or_insert_with(|| (Scaler::new(policy.clone()), answered, now));
            if entry.0.policy != policy {
                *entry = (Scaler::new(policy.clone()), answered, now);
            }
            let figure = match policy.target {
                Figure::Concurrency(_) => in_flight as f64,
                Figure::Rps(_) => {
                    let dt = now.duration_since(entry.2).as_secs_f64().max(0.001);
                    (answered.saturating_sub(entry.1)) as f64 / dt
                }
            };
            entry.1 = answered;
            entry.2 = now;
            let current = desired
                .scale
                .get(name)
                .copied()
                .unwrap_or_else(|| service.replicas());
            if current == 0 && woken.contains(name) {
                entry.0 = Scaler::new(policy.clone());
                changes.push((
                    name.clone(),
                    0,
                    1,
                    "a request came while it was scaled to zero".to_string(),
                ));
                continue;
            }
            // A replica still on its way (starting, restarting, not yet
            // healthy) holds the count: the windows start once every
            // replica serves, so a slow start is not scaled away before it
            // answered once.
            let on_its_way = project
                .states
                .borrow()
                .get(name)
                .is_some_and(|rs| rs.iter().any(|r| !r.retiring && !r.ready()));
            if on_its_way {
                entry.0 = Scaler::new(policy.clone());
                continue;
            }
            if let Some(to) = entry.0.observe(now.into_std(), current, figure) {
                let what = match policy.target {
                    Figure::Concurrency(t) => {
                        format!("{in_flight} in flight, target {t} per replica")
                    }
                    Figure::Rps(t) => format!("{figure:.1} requests/s, target {t} per replica"),
                };
                changes.push((name.clone(), current, to, what));
            }
        }
    }
    if changes.is_empty() {
        return;
    }
    let mut desired = desired;
    for (name, _, to, _) in &changes {
        desired.scale.insert(name.clone(), *to);
    }
    let (plan, _) = match plan_for(&daemon.store, &project.key, &desired, &[]) {
        Ok(p) => p,
        Err(e) => return log(&format!("{}: autoscaling: {e}", project.key)),
    };
    if let Err(e) = daemon.store.set_desired(&project.key, Some(&desired)) {
        return log(&format!("{}: autoscaling: {e}", project.key));
    }
    for (name, from, to, what) in changes {
        let _ = project.reports.send(Report::Deploy {
            service: name.clone(),
            message: format!("autoscale: {from} → {to} replicas ({what})"),
        });
        drop(run.supervisor.converge(&plan, &name, Mode::Converge));
    }
    run.plan = Some(plan);
    run.desired = Some(desired);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`spawn_restarting`] and [`survive`] logged, in order.
    static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    fn keep(line: &str) {
        crate::lock(&LOGGED).push(line.to_string());
    }

    fn logged(what: &str) -> Vec<String> {
        crate::lock(&LOGGED)
            .iter()
            .filter(|l| l.starts_with(what))
            .cloned()
            .collect()
    }

    #[test]
    fn a_background_task_that_panics_is_logged_and_runs_again() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = runs.clone();
        rt.block_on(async {
            let task = spawn_restarting(
                "the test task".into(),
                move || {
                    let runs = counted.clone();
                    async move {
                        // Twice a panic, then an end.
                        let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if n < 2 {
                            panic!("deliberate panic {n}");
                        }
                    }
                },
                keep,
            );
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the task ran again after its panics, then ended")
                .unwrap();
        });
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(
            logged("the test task"),
            [
                "the test task panicked: deliberate panic 0; it runs again in 500ms",
                "the test task panicked: deliberate panic 1; it runs again in 1s",
            ]
        );
    }

    #[test]
    fn a_handler_that_panics_costs_its_request_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let failed = caught(async {
                let services: HashMap<String, u32> = HashMap::new();
                services["gone"]
            })
            .await;
            let why = failed.unwrap_err();
            assert!(why.starts_with("panicked: "), "{why}");
            assert_eq!(caught(async { 7 }).await, Ok(7));
            // Dropped (the connection closed), its task is aborted.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let waiting = caught(async move {
                let _tx = tx;
                std::future::pending::<()>().await
            });
            let _ = tokio::time::timeout(Duration::from_millis(50), waiting).await;
            tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .expect("the task of a dropped request ends")
                .unwrap_err();
        });
    }

    #[test]
    fn a_step_that_panics_is_logged_and_given_up() {
        assert_eq!(survive("the test step", || 1, keep), Some(1));
        let lost: Option<u32> = survive(
            "the test step",
            || panic!("deliberate panic in a batch"),
            keep,
        );
        assert_eq!(lost, None);
        assert_eq!(
            logged("the test step"),
            ["the test step panicked: deliberate panic in a batch"]
        );
    }

    #[test]
    fn a_poisoned_lock_is_taken_with_its_state() {
        let m = Arc::new(std::sync::Mutex::new(vec![1]));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut v = held.lock().unwrap();
            v.push(2);
            panic!("deliberate panic holding the lock");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*crate::lock(&m), [1, 2]);
    }
}
