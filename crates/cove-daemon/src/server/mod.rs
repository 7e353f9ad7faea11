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
//!
//! Its parts, one noun per file: `registry` (the projects it runs and
//! their run lock), `http` (a request's way in: routing and the body
//! limit; `reply` the answers), `ops` (one file per API call),
//! `revisions` (planning with revision numbers, recording them),
//! `recorder` (reports → logs, events, replica records), `reaper`
//! (what stops the replicas when the daemon dies), `autoscale_tick` (the
//! autoscaler's turn), `tasks` (requests and background tasks that
//! survive a panic), `offload` (what runs off the runtime's workers:
//! durable commits, probes), `log` (daemon.log's lines), `backups`
//! (scheduled backups and restore drills), `alerts` (the alert
//! evaluator) and `notify` (delivering its notifications).
//!
//! It never blocks itself: its runtime's one thread answers requests and
//! runs the supervisors; durable commits, planning (which reads the
//! machine) and sleeps run on the blocking pool (`offload`); the only lock held
//! across the supervisor's work is a project's run lock, and readers
//! (`ps`, status, history, events) never take it.

mod alerts;
mod autoscale_tick;
mod backups;
mod http;
mod log;
mod notify;
mod offload;
mod ops;
mod previews;
mod reaper;
mod recorder;
mod registry;
mod reply;
mod revisions;
mod tasks;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::Paths;
use crate::store::Store;

pub use http::MAX_BODY;
pub use reaper::reaper;

use autoscale_tick::spawn_autoscaler;
use http::answer;
use log::log;
use ops::down::clear_leftovers;
use reaper::{SWEEP_GRACE, spawn_reaper};
use recorder::record;
use registry::Daemon;
use revisions::{keep_images, plan_for, settle_later};

/// How long a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections open at once; more are closed at once (and logged).
pub const MAX_CONNECTIONS: usize = 256;

/// How long a starting daemon waits for an exiting one to let go of the
/// store (which it holds at most 5 s after removing its socket).
const STORE_PATIENCE: Duration = Duration::from_secs(10);

/// One thread answers requests and runs the supervisors; what would block
/// it runs on the blocking pool (`offload`). Measured with bench/core: a
/// runtime of two workers cost the daemon more than it gave (RSS at rest
/// +33 %, `up -d` of 1,000 replicas +68 %, CPU per request through the
/// gateway under `cove up` +21 %), as nothing it runs needs a second one.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        // The blocking pool (commits, planning's probes, recipes' set-up)
        // lets its idle threads go soon: each thread a daemon at rest
        // keeps costs memory.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .enable_all()
        .build()
}

/// Runs the daemon of `state_dir` until it is told to stop; `host`: the
/// host's daemon (several projects; it stays up when they are down).
pub fn main(state_dir: &Path, host: bool) -> Result<(), String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    let state_dir = state_dir.to_path_buf();
    let result = rt.block_on(async move {
        tokio::spawn(async move { serve(&state_dir, host).await })
            .await
            .unwrap_or_else(|e| Err(format!("the daemon failed: {e}")))
    });
    // Whatever is still running (a long poll) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(state_dir: &Path, host: bool) -> Result<(), String> {
    harden();
    // Out of the CLI's session: Ctrl-C in its terminal is not for us.
    let _ = rustix::process::setsid();
    catch_inherited_signals()?;
    // 0700, ours; one another user made, or a link, is refused.
    cove_runtime::private::make_dir(state_dir).map_err(|e| e.to_string())?;
    let state_dir = fs_err::canonicalize(state_dir).map_err(|e| e.to_string())?;
    let paths = Paths::new(&state_dir);
    let (store, cgroups) = {
        let (paths, state_dir) = (paths.clone(), state_dir.clone());
        offload::blocking(move || take_over(&paths, &state_dir)).await?
    };
    // Lives as long as this process; its end tells the reaper to act. It
    // reads where the cgroups are (recorded above) when it starts.
    let _reaper = spawn_reaper(&state_dir);

    let socket = paths.socket();
    let listener = bind(&socket)?;

    let (recorder_tx, recorder_rx) = mpsc::unbounded_channel();
    let first_seq = store.last_seq().map_err(|e| e.to_string())?;
    let (seq_tx, seq_rx) = watch::channel(first_seq);
    let (flushed_tx, flushed_rx) = watch::channel(0u64);
    let (lines_tx, lines_rx) = watch::channel(0u64);
    let recorder = tokio::spawn(record(
        recorder_rx,
        store.clone(),
        seq_tx,
        flushed_tx,
        lines_tx,
    ));
    let daemon = Arc::new(Daemon {
        paths: paths.clone(),
        host,
        listeners: host.then(Default::default),
        cgroups,
        store: store.clone(),
        projects: Default::default(),
        recorder: recorder_tx,
        seq: seq_rx,
        lines: lines_rx,
        log_follows: Default::default(),
        flushes: Default::default(),
        flushed: flushed_rx,
        shutdown: Notify::new(),
        wake: Arc::new(Notify::new()),
        backups: Default::default(),
    });

    bring_back(&daemon, &store).await?;
    spawn_autoscaler(daemon.clone());
    backups::spawn_backups(daemon.clone());
    alerts::spawn_alerts(daemon.clone());
    let mut connections = accept_loop(&listener, &daemon).await?;
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

/// Takes the store (waiting for an exiting daemon to let go of it), writes
/// the pidfile, stops what a previous daemon left and makes the cgroup
/// tree: the store and the tree. Blocking (it waits and sleeps).
fn take_over(
    paths: &Paths,
    state_dir: &Path,
) -> Result<(Arc<Store>, Option<std::path::PathBuf>), String> {
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
    cove_runtime::private::write_atomically(
        &paths.pidfile(),
        format!("{}\n", std::process::id()).as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    log(&format!(
        "daemon {} starting for {}",
        std::process::id(),
        state_dir.display()
    ));
    sweep(paths, state_dir, &store);
    let cgroups = cove_runtime::cgroup::make_tree(state_dir);
    match &cgroups {
        Some(tree) => log(&format!("replicas run in cgroups under {}", tree.display())),
        None => log("no cgroup can be made here: replicas are tracked by process group and marker"),
    }
    Ok((store, cgroups))
}

/// Stops whatever a previous daemon of `state_dir` left running
/// ([`crate::leftovers`]).
fn sweep(paths: &Paths, state_dir: &Path, store: &Store) {
    let left = crate::leftovers::Leftovers::of_daemon(
        paths,
        cove_runtime::cgroup::left(state_dir),
        Some(store),
    );
    let left = left.stop(rustix::process::Signal::TERM, SWEEP_GRACE);
    if !left.is_empty() {
        log(&format!(
            "stopped {} process(es) a previous daemon left running: {left:?}",
            left.len()
        ));
    }
}

/// Binds the API socket, mode 0600 (made under umask 077).
fn bind(socket: &Path) -> Result<UnixListener, String> {
    let _ = fs_err::remove_file(socket);
    let old_umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let listener = UnixListener::bind(socket);
    rustix::process::umask(old_umask);
    let listener = listener.map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs_err::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }
    Ok(listener)
}

/// Brings back what the store says should run, project by project.
async fn bring_back(daemon: &Daemon, store: &Store) -> Result<(), String> {
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
        let planned = plan_for(&daemon.store, &key, &desired, &[]).await;
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
    Ok(())
}

/// Signals the daemon may have been started with ignored (`nohup` ignores
/// SIGHUP; a script's background job, SIGINT and SIGQUIT) are caught here
/// instead, by a handler that does nothing with them: an ignored signal
/// stays ignored across `exec`, a caught one does not, so every replica
/// starts with them at their default, as a shell's own child does (a
/// `kill -s HUP` of a replica ended it under a plain shell and did nothing
/// under `nohup`). Before any replica starts (`bring_back`); SIGTERM and
/// SIGINT then stop the daemon (`accept_loop`). tokio keeps a handler
/// installed for the life of the process once made, so the streams may go.
fn catch_inherited_signals() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [
        SignalKind::hangup(),
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
        SignalKind::alarm(),
    ] {
        drop(
            signal(kind)
                .map_err(|e| format!("cannot handle signal {}: {e}", kind.as_raw_value()))?,
        );
    }
    Ok(())
}

/// Serves connections until the daemon is told to stop (nothing left to
/// run, SIGTERM, SIGINT); the connections still open.
async fn accept_loop(
    listener: &UnixListener,
    daemon: &Arc<Daemon>,
) -> Result<tokio::task::JoinSet<()>, String> {
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
                stop_all(daemon).await;
                break;
            }
            _ = int.recv() => {
                log("SIGINT: stopping the replicas (what should run is kept)");
                stop_all(daemon).await;
                break;
            }
        }
    }
    Ok(connections)
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

async fn stop_all(daemon: &Daemon) {
    for project in daemon.all() {
        project.lock_run().await.supervisor.stop(&[]).await;
    }
}
