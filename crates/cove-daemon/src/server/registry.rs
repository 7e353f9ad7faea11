//! The projects a daemon runs: [`Daemon`] (its store, recorder channel,
//! projects by key), [`Project`] (its supervisor, gateway, autoscalers),
//! [`Running`] (what runs and should, under the run lock), the [`View`]
//! readers get without waiting for that lock, and [`RunGuard`], the lock
//! held, which leaves the view when let go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cove_runtime::backoff::Backoff;
use cove_runtime::plan::Plan;
use cove_runtime::supervisor::{Report, States, Supervisor};
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::Paths;
use crate::gateway::ProjectGateway;
use crate::server::log::log;
use crate::server::tasks::spawn_restarting;
use crate::store::{Desired, Store};

/// Longest wait for a retiring replica's requests to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Daemon {
    pub(super) paths: Paths,
    /// The host's daemon: several projects, and it stays up.
    pub(super) host: bool,
    /// The host's daemon's shared HTTP listeners ([`crate::listeners`]).
    pub(super) listeners: Option<Arc<crate::listeners::Listeners>>,
    /// Its cgroup tree, where it may have one ([`cove_runtime::cgroup`]).
    pub(super) cgroups: Option<std::path::PathBuf>,
    pub(super) store: Arc<Store>,
    /// The projects it runs, by key (their state directory).
    pub(super) projects: std::sync::Mutex<HashMap<String, Arc<Project>>>,
    /// The recorder's channel: reports tagged with their project.
    pub(super) recorder: mpsc::UnboundedSender<(Arc<str>, Report)>,
    /// Last recorded event.
    pub(super) seq: watch::Receiver<u64>,
    /// Moves on when the recorder has written a batch (log lines).
    pub(super) lines: watch::Receiver<u64>,
    /// `GET /v1/logs` long polls in progress.
    pub(super) log_follows: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) flushes: std::sync::atomic::AtomicU64,
    pub(super) flushed: watch::Receiver<u64>,
    pub(super) shutdown: Notify,
    /// Told when a request wakes a sleeping service.
    pub(super) wake: Arc<Notify>,
    /// Scheduled backups ([`crate::server::backups`]).
    pub(super) backups: crate::server::backups::Backups,
}

/// One project: its supervisor and what it was asked to run.
pub(super) struct Project {
    /// Its key (its state directory).
    pub(super) key: Arc<str>,
    /// Sleeping services (scaled to zero) a request asked for.
    pub(super) woken: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Autoscaled services: their scaler, and the last request count seen.
    pub(super) scalers:
        std::sync::Mutex<HashMap<String, (crate::autoscale::Scaler, u64, tokio::time::Instant)>>,
    /// What runs and should, changed under this lock (held across the
    /// supervisor's work); take it with [`Project::lock_run`].
    pub(super) run: Mutex<Running>,
    /// The last plan and desired state [`Project::lock_run`]'s guard left:
    /// what readers (`ps`, status, history) show without waiting for a
    /// command in progress (a stop may take its grace period).
    view: std::sync::Mutex<View>,
    pub(super) states: watch::Receiver<States>,
    /// Its supervisor's report channel, for [`Daemon::flush`].
    pub(super) reports: mpsc::UnboundedSender<Report>,
    /// Its gateway, when its plan has routes.
    pub(super) gateway: Arc<std::sync::Mutex<Option<ProjectGateway>>>,
    /// Where the gateway's access log goes: the project's logs, as
    /// `gateway`.
    access_log: cove_gateway::proxy::AccessLog,
    /// Under the host's daemon, where its HTTP routes are served.
    sharing: Option<crate::gateway::Sharing>,
    /// A preview's baseline: its gateway (which routes the preview's key
    /// to this project's replicas) and its replicas' states, so that a
    /// change of this project's replicas gives it a new table too.
    pub(super) base: Arc<std::sync::Mutex<Option<BaseLink>>>,
    /// A preview: a request asked for it while it slept.
    pub(super) wake_asked: Arc<std::sync::atomic::AtomicBool>,
    /// A preview: when it last woke (or was made), for its idle time
    /// before any request.
    pub(super) awake_since: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// See [`Project::base`].
#[derive(Clone)]
pub(super) struct BaseLink {
    pub(super) gateway: Arc<std::sync::Mutex<Option<ProjectGateway>>>,
    pub(super) states: watch::Receiver<States>,
}

impl Project {
    /// Takes [`Project::run`] (waiting for a command in progress).
    pub(super) async fn lock_run(&self) -> RunGuard<'_> {
        RunGuard {
            guard: self.run.lock().await,
            view: &self.view,
        }
    }

    /// The plan and desired state as the last command left them, without
    /// waiting for one in progress.
    pub(super) fn view(&self) -> (Option<Arc<Plan>>, Option<Arc<Desired>>) {
        let view = crate::lock(&self.view);
        (view.plan.clone(), view.desired.clone())
    }

    /// Starts, moves or stops the gateway for `plan`; fails (changing
    /// nothing) when an address cannot be bound.
    pub(super) fn set_gateway(&self, plan: Option<&Plan>) -> Result<(), String> {
        let mut slot = crate::lock(&self.gateway);
        match plan.filter(|p| !p.gateway.routes.is_empty()) {
            None => {
                if let Some(g) = slot.take() {
                    g.stop();
                }
            }
            Some(plan) => match slot.as_mut() {
                Some(g) => g.update(plan)?,
                None => {
                    *slot = Some(ProjectGateway::start(
                        plan,
                        self.access_log.clone(),
                        self.sharing.clone(),
                    )?)
                }
            },
        }
        if let Some(g) = slot.as_mut() {
            g.refresh(&self.states.borrow());
        }
        Ok(())
    }
}

pub(super) struct Running {
    pub(super) supervisor: Supervisor,
    pub(super) desired: Option<Desired>,
    pub(super) plan: Option<Plan>,
}

/// A copy of [`Running`]'s plan and desired state, for readers.
#[derive(Default)]
pub(super) struct View {
    plan: Option<Arc<Plan>>,
    desired: Option<Arc<Desired>>,
}

/// [`Project::run`] locked; when it is let go, the project's [`View`]
/// gets what it holds.
pub(super) struct RunGuard<'a> {
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
    pub(super) fn project(&self, key: &str) -> Arc<Project> {
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
        // A new table for the gateway whenever a replica changes state
        // (and for a preview's baseline's).
        let states = supervisor.states();
        let slot = gateway.clone();
        let base: Arc<std::sync::Mutex<Option<BaseLink>>> = Default::default();
        let base_link = base.clone();
        spawn_restarting(
            format!("{key}: the gateway's table updater"),
            move || {
                let (mut states, slot, base) = (states.clone(), slot.clone(), base_link.clone());
                async move {
                    loop {
                        if states.changed().await.is_err() {
                            break;
                        }
                        let now = states.borrow_and_update().clone();
                        if let Some(g) = crate::lock(&slot).as_mut() {
                            g.refresh(&now);
                        }
                        let link = crate::lock(&base).clone();
                        if let Some(link) = link
                            && let Some(g) = crate::lock(&link.gateway).as_mut()
                        {
                            g.refresh(&link.states.borrow());
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
            sharing: self
                .listeners
                .clone()
                .map(|listeners| crate::gateway::Sharing {
                    listeners,
                    key: key.clone(),
                }),
            states: supervisor.states(),
            run: Mutex::new(Running {
                supervisor,
                desired: None,
                plan: None,
            }),
            view: Default::default(),
            reports: tx,
            base,
            wake_asked: Default::default(),
            awake_since: std::sync::Mutex::new(Some(tokio::time::Instant::now())),
        });
        projects.insert(key.to_string(), project.clone());
        project
    }

    pub(super) fn existing(&self, key: &str) -> Option<Arc<Project>> {
        crate::lock(&self.projects).get(key).cloned()
    }

    /// Forgets a project that has nothing left; a project's daemon then
    /// exits.
    pub(super) fn forget(&self, key: &str) {
        let mut projects = crate::lock(&self.projects);
        projects.remove(key);
        if projects.is_empty() && !self.host {
            self.shutdown.notify_one();
        }
    }

    pub(super) fn all(&self) -> Vec<Arc<Project>> {
        crate::lock(&self.projects).values().cloned().collect()
    }

    /// Waits until every report `project` sent so far is recorded
    /// (bounded), so an answer sent after it sees its events in the store.
    pub(super) async fn flush(&self, project: &Project) {
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
