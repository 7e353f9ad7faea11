//! The alert evaluator: for each project the daemon runs, each of its
//! services' `x-cove.alerts` whose condition the daemon evaluates
//! ([`cove_spec::alert_rule::Figure::evaluated`]) goes through its state
//! machine ([`crate::alert`]) every [`TICK`] and at once when an event is
//! recorded (the recorder's sequence number moves).
//!
//! What a condition reads: the project's events in the store (the latest
//! scheduled backup's, restore drill's and deploy's outcome per service, replicas'
//! `restarting` events for `restarts[W]`), read once from the start at the
//! first turn and then only the new ones; and the supervisor's live states
//! (`unhealthy`: a replica, not being retired, that is failing its health
//! check, restarting, failed, refusing connections, or running with a
//! check and no verdict yet).
//!
//! Invariants: a record is saved (the store's `alerts` table, one
//! transaction per turn) before its change is recorded as an event
//! (`alert`, `alert-resolved`) and before anything is delivered, so a
//! daemon killed at any point neither loses an alert nor announces one
//! twice; a delivery is saved as done only after it succeeded (a daemon
//! killed in between sends it again: at least once). Deliveries run as
//! their own tasks, bounded ([`crate::server::notify`]); the evaluator
//! never waits for one.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cove_runtime::supervisor::{Report, State, Status as ReplicaStatus};
use cove_spec::alert_rule::{Condition, Figure};
use cove_spec::xcove::{Notify, NotifyFormat, StringOrList};
use hyper::StatusCode;
use tokio::sync::mpsc;

use crate::alert::{AlertRecord, Change, Notice, Sink, Status};
use crate::api::{AlertView, EventState, ReplicaState};
use crate::server::log::log;
use crate::server::notify::{self, Notification, rfc3339};
use crate::server::offload::blocking;
use crate::server::registry::{Daemon, Project};
use crate::server::reply::{Answer, error, json};
use crate::server::tasks::spawn_restarting;
use crate::store::Desired;
use crate::traffic::Samples;

/// How often every rule is evaluated (besides at each recorded event).
pub(super) const TICK: Duration = Duration::from_secs(5);

/// Events read from the store at a time.
const PAGE: usize = 1000;

/// Rules by (service, name): `when` as written, parsed, and `for`.
type Rules = BTreeMap<(String, String), (String, Condition, Duration)>;

/// What the events said of a project's services so far.
#[derive(Default)]
struct Facts {
    /// The last event read.
    cursor: u64,
    services: HashMap<String, ServiceFacts>,
}

#[derive(Default)]
struct ServiceFacts {
    /// The latest scheduled backup: whether it worked, and its message.
    backup: Option<(bool, String)>,
    /// The latest restore drill.
    verify: Option<(bool, String)>,
    /// The latest deploy.
    deploy: Option<(bool, String)>,
    /// When its replicas restarted (oldest first).
    restarts: VecDeque<u64>,
    /// The gateway's answers for it, sampled at each turn.
    traffic: Samples,
}

/// How a delivery ended, back to the evaluator.
struct Done {
    project: Arc<str>,
    rule: (String, String),
    sink: Sink,
    notice: Notice,
    outcome: Result<(), String>,
}

/// One project's rules as the evaluator keeps them (what the store has).
#[derive(Default)]
struct ProjectAlerts {
    /// Whether `records` is what the store has (read at the first turn,
    /// and again after a save failed).
    loaded: bool,
    facts: Facts,
    /// By (service, name).
    records: BTreeMap<(String, String), AlertRecord>,
}

fn now_ms() -> u64 {
    crate::server::log::millis(SystemTime::now())
}

/// Runs the evaluator (restarted after a panic).
pub(super) fn spawn_alerts(daemon: Arc<Daemon>) {
    spawn_restarting(
        "the alert evaluator".into(),
        move || {
            let daemon = daemon.clone();
            async move { run(daemon).await }
        },
        log,
    );
}

async fn run(daemon: Arc<Daemon>) {
    let mut projects: HashMap<Arc<str>, ProjectAlerts> = HashMap::new();
    let mut in_flight: HashSet<(Arc<str>, (String, String), Sink)> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut seq = daemon.seq.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = seq.changed() => {
                if changed.is_err() {
                    // The recorder is gone (the daemon is exiting).
                    tick.tick().await;
                }
            }
            Some(done) = done_rx.recv() => {
                in_flight.remove(&(done.project.clone(), done.rule.clone(), done.sink));
                delivered(&daemon, &mut projects, done).await;
            }
        }
        turn(&daemon, &mut projects, &mut in_flight, &done_tx).await;
    }
}

/// Applies a delivery's outcome to its record and saves it.
async fn delivered(daemon: &Daemon, projects: &mut HashMap<Arc<str>, ProjectAlerts>, d: Done) {
    let Some(rec) = projects
        .get_mut(&d.project)
        .and_then(|p| p.records.get_mut(&d.rule))
    else {
        return;
    };
    let what = format!(
        "alert `{}` of `{}` ({}) to the {}",
        rec.name,
        rec.service,
        d.notice.status.as_str(),
        d.sink.as_str()
    );
    let error = d.outcome.as_ref().err().cloned();
    match rec.delivered(d.sink, d.notice, d.outcome, now_ms()) {
        Ok(()) => {}
        Err(false) => log(&format!(
            "{what}: not delivered ({}); tried again later",
            error.unwrap_or_default()
        )),
        Err(true) => log(&format!(
            "{what}: not delivered ({}); given up after {} tries",
            error.unwrap_or_default(),
            crate::alert::MAX_ATTEMPTS
        )),
    }
    let store = daemon.store.clone();
    let key = d.project.to_string();
    let rec = rec.clone();
    if let Err(e) = blocking(move || store.save_alerts(&key, &[rec], &[])).await {
        log(&format!("alerts: {e}"));
    }
}

/// One evaluation of every project's rules, and the deliveries due.
async fn turn(
    daemon: &Arc<Daemon>,
    projects: &mut HashMap<Arc<str>, ProjectAlerts>,
    in_flight: &mut HashSet<(Arc<str>, (String, String), Sink)>,
    done_tx: &mpsc::UnboundedSender<Done>,
) {
    let up = daemon.all();
    projects.retain(|k, _| up.iter().any(|p| p.key == *k));
    for project in up {
        let Some(desired) = project.view().1 else {
            continue;
        };
        let key = project.key.clone();
        let state = projects.entry(key.clone()).or_default();
        if !state.loaded {
            let store = daemon.store.clone();
            let k = key.to_string();
            match blocking(move || store.alerts(&k)).await {
                Ok(records) => {
                    state.loaded = true;
                    state.records = records
                        .into_iter()
                        .map(|r| ((r.service.clone(), r.name.clone()), r))
                        .collect();
                }
                Err(e) => {
                    // Not evaluated without what the store says: it
                    // would fire again what already fired.
                    log(&format!("alerts: {e}"));
                    continue;
                }
            }
        }
        let rules = rules(&desired);
        if rules.is_empty() && state.records.is_empty() {
            // Nothing to evaluate or deliver: its events are not read
            // (from the first, once it has rules).
            continue;
        }
        if !read_events(daemon, &key, &mut state.facts).await {
            // Not evaluated on facts that lag: a firing alert would
            // resolve for want of the events that keep it.
            continue;
        }
        evaluate(daemon, &project, &desired, rules, state).await;
        deliver(&project, &desired, state, in_flight, done_tx);
    }
}

/// Reads the project's events since the last turn into its facts;
/// whether it read them all.
async fn read_events(daemon: &Daemon, key: &Arc<str>, facts: &mut Facts) -> bool {
    loop {
        // Every event up to `upto` is committed: none is missed by
        // moving the cursor there after a read that found the last.
        let upto = *daemon.seq.borrow();
        let store = daemon.store.clone();
        let (k, after) = (key.to_string(), facts.cursor);
        let events = match blocking(move || store.events_after(&k, after, PAGE)).await {
            Ok(events) => events,
            Err(e) => {
                log(&format!("alerts: {e}"));
                return false;
            }
        };
        let full = events.len() == PAGE;
        for ev in events {
            facts.cursor = facts.cursor.max(ev.seq);
            let f = facts.services.entry(ev.service.clone()).or_default();
            match &ev.state {
                EventState::Backup => f.backup = Some((true, ev.detail)),
                EventState::BackupFailed => f.backup = Some((false, ev.detail)),
                EventState::Verify => f.verify = Some((true, ev.detail)),
                EventState::VerifyFailed => f.verify = Some((false, ev.detail)),
                EventState::Deployed => f.deploy = Some((true, ev.detail)),
                EventState::DeployFailed => f.deploy = Some((false, ev.detail)),
                EventState::Replica(ReplicaState::Restarting) => f.restarts.push_back(ev.time_ms),
                _ => {}
            }
        }
        // The store's sequence is shared by every project: the cursor
        // moves past the others' events too.
        if !full {
            facts.cursor = facts.cursor.max(upto);
            return true;
        }
    }
}

/// The rules of `desired`'s wanted services the daemon evaluates: by
/// (service, name), with their condition and `for`.
fn rules(desired: &Desired) -> Rules {
    let mut out = BTreeMap::new();
    for name in &desired.wanted {
        let Some(x) = desired
            .app
            .services
            .get(name)
            .and_then(|s| s.x_cove.as_ref())
        else {
            continue;
        };
        for a in &x.alerts {
            let Ok(c) = a.when.parse::<Condition>() else {
                continue;
            };
            if !c.figure.evaluated() {
                continue;
            }
            let hold = a
                .for_
                .as_deref()
                .and_then(|t| cove_spec::units::parse_duration(t).ok())
                .unwrap_or_default();
            out.insert((name.clone(), a.name.clone()), (a.when.clone(), c, hold));
        }
    }
    out
}

/// Whether the facts say anything of `c`: an outcome of the operation a
/// `*_failed` fact is about (other figures are always read).
fn known(c: &Condition, facts: Option<&ServiceFacts>) -> bool {
    match c.figure {
        Figure::BackupFailed => facts.is_some_and(|f| f.backup.is_some()),
        Figure::VerifyFailed => facts.is_some_and(|f| f.verify.is_some()),
        Figure::DeployFailed => facts.is_some_and(|f| f.deploy.is_some()),
        _ => true,
    }
}

/// Whether `c` holds for `service` now, and its value.
fn holds(
    c: &Condition,
    facts: Option<&ServiceFacts>,
    replicas: Option<&Vec<ReplicaStatus>>,
    memory: Option<u64>,
    now: u64,
) -> (bool, String) {
    let last = |r: Option<&(bool, String)>, what: &str| match r {
        Some((false, m)) => (true, m.clone()),
        Some((true, m)) => (false, m.clone()),
        None => (false, format!("no {what} yet")),
    };
    match c.figure {
        Figure::BackupFailed => last(facts.and_then(|f| f.backup.as_ref()), "scheduled backup"),
        Figure::VerifyFailed => last(facts.and_then(|f| f.verify.as_ref()), "restore drill"),
        Figure::DeployFailed => last(facts.and_then(|f| f.deploy.as_ref()), "deploy"),
        Figure::Restarts(window) => {
            let from = now.saturating_sub(window.as_millis() as u64);
            let n = facts.map_or(0, |f| f.restarts.iter().filter(|t| **t >= from).count());
            let held = c.test.is_some_and(|(op, t)| op.holds(n as f64, t));
            (
                held,
                format!(
                    "{n} restart(s) in the last {}",
                    cove_spec::units::format_duration(window)
                ),
            )
        }
        Figure::Unhealthy => {
            let bad = replicas
                .into_iter()
                .flatten()
                .filter(|s| !s.retiring)
                .find_map(|s| {
                    let why = match &s.state {
                        State::Unhealthy { .. }
                        | State::Restarting { .. }
                        | State::Failed { .. }
                        | State::Refusing { .. } => s.state.describe(s.pid),
                        State::Running | State::Starting if s.checked => {
                            "not healthy yet (its check has not passed)".to_string()
                        }
                        _ => return None,
                    };
                    Some(format!("replica {}: {why}", s.replica))
                });
            match bad {
                Some(why) => (true, why),
                None => (false, "every replica is healthy".into()),
            }
        }
        Figure::ErrorRate(window) | Figure::P99Ms(window) => {
            let w = window.as_millis() as u64;
            let span = cove_spec::units::format_duration(window);
            let read = match c.figure {
                Figure::ErrorRate(_) => facts.and_then(|f| f.traffic.error_rate(now, w)),
                _ => facts.and_then(|f| f.traffic.p99_ms(now, w)),
            };
            let Some((value, answers)) = read else {
                return (
                    false,
                    format!("no answers through the gateway in the last {span}"),
                );
            };
            let held = c.test.is_some_and(|(op, t)| op.holds(value, t));
            let shown = match c.figure {
                Figure::ErrorRate(_) => format!("{value:.3}"),
                _ if value.is_infinite() => "over 10000 ms".to_string(),
                _ => format!("{value} ms"),
            };
            (
                held,
                format!(
                    "{} {shown} over {answers} answer(s) in the last {span}",
                    c.figure.name()
                ),
            )
        }
        Figure::MemoryMb => match memory {
            Some(bytes) => {
                let mib = bytes as f64 / (1024.0 * 1024.0);
                let held = c.test.is_some_and(|(op, t)| op.holds(mib, t));
                (held, format!("memory_mb {mib:.1} (its largest replica)"))
            }
            None => (false, "no replica's memory could be read".into()),
        },
    }
}

/// Steps every rule of the project, saves what changed, then records the
/// changes as events.
async fn evaluate(
    daemon: &Daemon,
    project: &Project,
    desired: &Desired,
    rules: Rules,
    state: &mut ProjectAlerts,
) {
    let now = now_ms();
    let replicas = project.states.borrow().clone();
    let memory = memory_of(daemon, project, &rules, &replicas).await;
    // Restarts older than the longest window are no longer needed.
    let longest = rules
        .values()
        .filter_map(|(_, c, _)| match c.figure {
            Figure::Restarts(w) => Some(w.as_millis() as u64),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    for f in state.facts.services.values_mut() {
        while f
            .restarts
            .front()
            .is_some_and(|t| *t < now.saturating_sub(longest))
        {
            f.restarts.pop_front();
        }
    }
    // The gateway's counters of each service an `error_rate` or `p99_ms`
    // rule reads, kept for its longest window.
    let mut windows: BTreeMap<&str, u64> = BTreeMap::new();
    for ((service, _), (_, c, _)) in &rules {
        if let Figure::ErrorRate(w) | Figure::P99Ms(w) = c.figure {
            let e = windows.entry(service.as_str()).or_default();
            *e = (*e).max(w.as_millis() as u64);
        }
    }
    if !windows.is_empty() {
        let gateway = crate::lock(&project.gateway);
        for (service, keep) in windows {
            let answered = gateway
                .as_ref()
                .map(|g| g.answered(service))
                .unwrap_or_default();
            state
                .facts
                .services
                .entry(service.to_string())
                .or_default()
                .traffic
                .push(now, answered, keep);
        }
    }
    let mut changed = Vec::new();
    let mut events = Vec::new();
    for (rule, (when, c, hold)) in &rules {
        let rec = state
            .records
            .entry(rule.clone())
            .or_insert_with(|| AlertRecord::new(&rule.0, &rule.1, when));
        let before = rec.clone();
        rec.condition = when.clone();
        let facts = state.facts.services.get(&rule.0);
        if !known(c, facts) {
            // No outcome kept (none yet, or its event is older than the
            // store keeps): the rule stays as it is; only a later
            // outcome changes it.
            continue;
        }
        let (held, value) = holds(
            c,
            facts,
            replicas.get(&rule.0),
            memory.get(&rule.0).copied().flatten(),
            now,
        );
        if let Some(change) = rec.step(held, &value, *hold, now) {
            events.push((rule.0.clone(), change, message(rec, change)));
        }
        if *rec != before {
            changed.push(rec.clone());
        }
    }
    // Rules gone from the file: a firing one resolves; one with nothing
    // left to deliver is forgotten.
    let mut gone = Vec::new();
    for (rule, rec) in state.records.iter_mut() {
        if rules.contains_key(rule) {
            continue;
        }
        let before = rec.clone();
        if let Some(change) = rec.retire(now, "its rule is no longer in the file") {
            events.push((rule.0.clone(), change, message(rec, change)));
        }
        let settled = [Sink::Webhook, Sink::Command, Sink::Alertmanager]
            .iter()
            .all(|s| rec.due(*s, now).is_none() || !configured(desired, *s));
        if rec.phase != crate::alert::Phase::Firing && settled {
            gone.push(rule.clone());
        } else if *rec != before {
            changed.push(rec.clone());
        }
    }
    for rule in &gone {
        state.records.remove(rule);
    }
    if changed.is_empty() && gone.is_empty() {
        return;
    }
    let store = daemon.store.clone();
    let key = project.key.to_string();
    let saved = blocking(move || store.save_alerts(&key, &changed, &gone)).await;
    if let Err(e) = saved {
        // Not announced: the next turn starts again from what was saved.
        log(&format!("alerts: {e}"));
        *state = ProjectAlerts::default();
        return;
    }
    for (service, change, message) in events {
        let _ = project.reports.send(Report::Alert {
            service,
            firing: change == Change::Fired,
            message,
        });
    }
}

/// The memory of the largest replica of each service a `memory_mb` rule
/// reads (none where no replica's could be read), read on the blocking
/// pool ([`crate::memory`]).
async fn memory_of(
    daemon: &Daemon,
    project: &Project,
    rules: &Rules,
    replicas: &cove_runtime::supervisor::States,
) -> HashMap<String, Option<u64>> {
    let tree = daemon
        .cgroups
        .as_deref()
        .map(|t| cove_runtime::cgroup::project(t, &project.key));
    // Per service: each replica's cgroup (if any) and process.
    type Replicas = Vec<(Option<PathBuf>, Option<u32>)>;
    let reads: Vec<(String, Replicas)> = rules
        .iter()
        .filter(|(_, (_, c, _))| c.figure == Figure::MemoryMb)
        .map(|((service, _), _)| {
            let of = replicas
                .get(service)
                .into_iter()
                .flatten()
                .filter(|r| !r.retiring && r.pid.is_some())
                .map(|r| {
                    let leaf = tree
                        .as_deref()
                        .map(|t| cove_runtime::cgroup::replica(t, service, r.slot));
                    (leaf, r.pid)
                })
                .collect();
            (service.clone(), of)
        })
        .collect();
    if reads.is_empty() {
        return HashMap::new();
    }
    blocking(move || {
        reads
            .into_iter()
            .map(|(service, of)| {
                let largest = of
                    .iter()
                    .filter_map(|(leaf, pid)| crate::memory::replica_bytes(leaf.as_deref(), *pid))
                    .max();
                (service, largest)
            })
            .collect()
    })
    .await
}

/// The event's words for a change.
fn message(rec: &AlertRecord, change: Change) -> String {
    match change {
        Change::Fired => format!(
            "alert `{}` firing: {} ({})",
            rec.name, rec.condition, rec.value
        ),
        Change::Resolved => format!(
            "alert `{}` resolved: {} ({})",
            rec.name, rec.condition, rec.value
        ),
    }
}

fn configured(desired: &Desired, sink: Sink) -> bool {
    let Some(n) = &desired.app.x_cove.notify else {
        return false;
    };
    match sink {
        Sink::Webhook => n.webhook.is_some(),
        Sink::Command => n.command.is_some(),
        Sink::Alertmanager => n.alertmanager.is_some(),
    }
}

/// Starts each delivery that is due and not under way.
fn deliver(
    project: &Project,
    desired: &Desired,
    state: &ProjectAlerts,
    in_flight: &mut HashSet<(Arc<str>, (String, String), Sink)>,
    done_tx: &mpsc::UnboundedSender<Done>,
) {
    let Some(notify) = desired.app.x_cove.notify.clone() else {
        return;
    };
    let now = now_ms();
    for (rule, rec) in &state.records {
        for sink in [Sink::Webhook, Sink::Command, Sink::Alertmanager] {
            if !configured(desired, sink) {
                continue;
            }
            let Some(notice) = rec.due(sink, now) else {
                continue;
            };
            let id = (project.key.clone(), rule.clone(), sink);
            if !in_flight.insert(id) {
                continue;
            }
            let n = notification(desired, rec, notice);
            let notify = notify.clone();
            let dir = desired.project_dir.clone();
            let done = Done {
                project: project.key.clone(),
                rule: rule.clone(),
                sink,
                notice,
                outcome: Ok(()),
            };
            let tx = done_tx.clone();
            tokio::spawn(async move {
                let outcome = send(&notify, sink, notice.status, &n, dir).await;
                let _ = tx.send(Done { outcome, ..done });
            });
        }
    }
}

/// One try of one notification to one sink.
async fn send(
    notify: &Notify,
    sink: Sink,
    status: Status,
    n: &Notification,
    dir: PathBuf,
) -> Result<(), String> {
    match sink {
        Sink::Webhook => {
            let url = notify.webhook.as_deref().unwrap_or_default();
            notify::webhook(url, notify.format.unwrap_or(NotifyFormat::Json), n).await
        }
        Sink::Alertmanager => {
            let url = notify.alertmanager.as_deref().unwrap_or_default();
            notify::alertmanager(url, status, n).await
        }
        Sink::Command => {
            let argv = match &notify.command {
                Some(StringOrList::List(l)) => l.clone(),
                // A string by `sh -c` (as `x-cove.backup.command`), a list as is.
                Some(StringOrList::String(s)) => vec!["sh".into(), "-c".into(), s.clone()],
                None => Vec::new(),
            };
            notify::command(&argv, &dir, n).await
        }
    }
}

/// The notification of `notice` of `rec`.
fn notification(desired: &Desired, rec: &AlertRecord, notice: Notice) -> Notification {
    Notification {
        status: notice.status.as_str(),
        alert: rec.name.clone(),
        service: rec.service.clone(),
        project: desired.app.name.clone(),
        environment: desired
            .app
            .x_cove
            .env
            .clone()
            .unwrap_or_else(|| "default".into()),
        condition: rec.condition.clone(),
        value: rec.value.clone(),
        since: rfc3339(notice.since_ms),
        ended: match notice.status {
            Status::Firing => None,
            Status::Resolved => rec.resolved_ms.map(rfc3339),
        },
    }
}

/// `GET /v1/alerts`: the project's alerts that are pending, firing or
/// resolved (as the store has them), firing first.
pub(super) async fn list(daemon: &Daemon, key: &str) -> Answer {
    let store = daemon.store.clone();
    let k = key.to_string();
    let records = match blocking(move || store.alerts(&k)).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let mut out: Vec<AlertView> = records
        .into_iter()
        .filter(|r| r.phase != crate::alert::Phase::Inactive || r.fired_ms.is_some())
        .map(|r| AlertView {
            service: r.service,
            name: r.name,
            condition: r.condition,
            state: match r.phase {
                crate::alert::Phase::Inactive | crate::alert::Phase::Resolved => "resolved",
                crate::alert::Phase::Pending => "pending",
                crate::alert::Phase::Firing => "firing",
            }
            .to_string(),
            since: r.fired_ms.or(r.holds_ms).map(rfc3339),
            ended: r.resolved_ms.map(rfc3339),
            holds_since: r.holds_ms.map(rfc3339),
            value: r.value,
            deliveries: r
                .deliveries
                .iter()
                .map(|(sink, d)| crate::api::DeliveryView {
                    sink: sink.as_str().to_string(),
                    delivered: d.done.map(|n| n.status.as_str().to_string()),
                    attempts: d.attempts,
                    error: d.error.clone(),
                })
                .collect(),
        })
        .collect();
    let rank = |s: &str| match s {
        "firing" => 0,
        "pending" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(&a.state)
            .cmp(&rank(&b.state))
            .then(b.since.cmp(&a.since))
    });
    json(StatusCode::OK, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(state: State, checked: bool, retiring: bool) -> ReplicaStatus {
        ReplicaStatus {
            replica: 1,
            slot: 1,
            revision: 1,
            addr: std::net::Ipv4Addr::LOCALHOST,
            retiring,
            state,
            pid: Some(42),
            restarts: 0,
            since: SystemTime::UNIX_EPOCH,
            checked,
        }
    }

    fn cond(t: &str) -> Condition {
        t.parse().unwrap()
    }

    #[test]
    fn unhealthy_is_any_replica_not_serving_that_is_not_being_retired() {
        let c = cond("unhealthy");
        let at = |rs: Vec<ReplicaStatus>| holds(&c, None, Some(&rs), None, 0);
        assert!(!at(vec![replica(State::Healthy, true, false)]).0);
        assert!(!at(vec![replica(State::Ready, false, false)]).0);
        assert!(
            !at(vec![replica(State::Running, false, false)]).0,
            "no check: running is fine"
        );
        assert!(
            at(vec![replica(State::Running, true, false)]).0,
            "checked, no verdict yet"
        );
        let (held, value) = at(vec![
            replica(State::Healthy, true, false),
            replica(
                State::Unhealthy {
                    check: "exit 1".into(),
                },
                true,
                false,
            ),
        ]);
        assert!(held && value.starts_with("replica 1: unhealthy"), "{value}");
        assert!(
            at(vec![replica(
                State::Failed { reason: "x".into() },
                false,
                false
            )])
            .0
        );
        assert!(
            !at(vec![replica(
                State::Unhealthy { check: "x".into() },
                true,
                true
            )])
            .0,
            "one being replaced does not count"
        );
        assert!(!at(vec![replica(State::Stopped, true, false)]).0);
        assert!(
            !holds(&c, None, None, None, 0).0,
            "no replicas: nothing unhealthy"
        );
    }

    #[test]
    fn restarts_are_counted_within_the_window_and_facts_need_an_outcome() {
        let c = cond("restarts[10s] > 2");
        let mut f = ServiceFacts::default();
        f.restarts.extend([1_000, 5_000, 9_000, 12_000]);
        let (held, value) = holds(&c, Some(&f), None, None, 12_000);
        assert!(held, "{value}");
        assert_eq!(
            value, "3 restart(s) in the last 10s",
            "those in [2 s, 12 s]"
        );
        assert!(
            !holds(&c, Some(&f), None, None, 16_000).0,
            "2 in (6 s, 16 s]"
        );
        let b = cond("backup_failed");
        assert!(!known(&b, None));
        assert!(!known(&b, Some(&f)));
        f.backup = Some((false, "exit 1".into()));
        assert!(known(&b, Some(&f)));
        assert_eq!(
            holds(&b, Some(&f), None, None, 0),
            (true, "exit 1".to_string())
        );
        f.backup = Some((true, "backed up".into()));
        assert!(!holds(&b, Some(&f), None, None, 0).0);
        assert!(known(&c, None), "counted figures are always read");
    }

    #[test]
    fn memory_is_compared_in_mib() {
        let c = cond("memory_mb > 100");
        let (held, value) = holds(&c, None, None, Some(150 * 1024 * 1024), 0);
        assert!(held, "{value}");
        assert_eq!(value, "memory_mb 150.0 (its largest replica)");
        assert!(!holds(&c, None, None, Some(50 * 1024 * 1024), 0).0);
        assert!(!holds(&c, None, None, None, 0).0);
    }
}
