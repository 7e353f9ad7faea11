//! Scheduled backups and restore drills: for each service of a running
//! project with `x-cove.backup.schedule` (and `verify`), the daemon runs
//! `cove backup SERVICE` (and `cove backup verify --latest SERVICE`) at
//! each time the schedule names ([`cove_spec::cron`], the host's time
//! zone).
//!
//! A run is the cove binary itself (`current_exe`), a child of the daemon
//! in its own process group, in the project's directory, with the
//! identity `cove up` gave (`COVE_IDENTITY`): exactly what a person would
//! type, so a scheduled backup does what `cove backup` does (its method,
//! then the service's `keep`). Its output goes to the project's logs (as
//! `SERVICE-backup`); how it ended becomes an event (`backup`,
//! `backup-failed`, `verify`, `verify-failed`) and a record in
//! `<state dir>/backup-schedule.json`, which `cove backup status` shows.
//!
//! Rules, as systemd timers have them:
//! - runs never overlap: a time that comes while a run of the project
//!   goes on waits for it (once, however many times come meanwhile); the
//!   project's runs go one at a time (the first makes the repository and
//!   its password, which two at once would race to do);
//! - a time missed while the daemon was down (killed, the machine off) is
//!   run once when it comes back, never once per missed time (systemd's
//!   `Persistent=true`); the record keeps the last time handled for that;
//! - `cove up` and `cove deploy` change schedules as the file says at the
//!   next turn (every [`TICK`]); `cove down` stops them (and a run in
//!   progress: its process group gets SIGTERM) and forgets the last time
//!   handled, so the next `cove up` runs nothing for the time it was down.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cove_runtime::process::Stream;
use cove_runtime::supervisor::Report;
use cove_spec::cron::Schedule;
use hyper::StatusCode;
use jiff::Zoned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;

use crate::api::{BackupStatus, Run, RunKind};
use crate::server::log::log;
use crate::server::offload::blocking;
use crate::server::registry::{Daemon, Project};
use crate::server::reply::{Answer, json};
use crate::server::tasks::spawn_restarting;
use crate::store::Desired;

/// How often schedules are looked at (6-field schedules name seconds).
pub(super) const TICK: Duration = Duration::from_secs(1);

/// Longest a run may take; then its process group is killed.
const RUN_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// The record's file in the project's state directory.
const RECORD: &str = "backup-schedule.json";

/// The schedules of every project the daemon runs.
#[derive(Default)]
pub(super) struct Backups {
    projects: std::sync::Mutex<HashMap<String, ProjectRuns>>,
}

struct ProjectRuns {
    services: BTreeMap<String, ServiceRuns>,
    record: Record,
}

#[derive(Default)]
struct ServiceRuns {
    backup: Option<Timer>,
    verify: Option<Timer>,
    /// What runs now, and its process (the leader of its group).
    running: Option<(RunKind, Option<u32>)>,
    /// Times that came while it ran: run next, each kind once.
    queued: Vec<RunKind>,
}

struct Timer {
    text: String,
    schedule: Result<Schedule, String>,
    next: Option<Zoned>,
}

/// What is kept across daemons, per service.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(default)]
    services: BTreeMap<String, ServiceRecord>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ServiceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_backup: Option<Run>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_verify: Option<Run>,
    /// The last scheduled time handled while the schedule was on (gone at
    /// `cove down`): a daemon that finds a later time missed runs it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup_due: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verify_due: Option<String>,
}

impl ServiceRecord {
    fn due(&mut self, kind: RunKind) -> &mut Option<String> {
        match kind {
            RunKind::Backup => &mut self.backup_due,
            RunKind::Verify => &mut self.verify_due,
        }
    }
}

impl ServiceRuns {
    fn timer(&mut self, kind: RunKind) -> &mut Option<Timer> {
        match kind {
            RunKind::Backup => &mut self.backup,
            RunKind::Verify => &mut self.verify,
        }
    }
}

fn record_path(key: &str) -> PathBuf {
    Path::new(key).join(RECORD)
}

fn load_record(key: &str) -> Record {
    match fs_err::read(record_path(key)) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            log(&format!(
                "{}: {e}; the backups' record starts afresh",
                record_path(key).display()
            ));
            Record::default()
        }),
        Err(_) => Record::default(),
    }
}

/// Writes `record` (atomically) on the blocking pool.
async fn save(key: String, record: Record) {
    blocking(move || {
        let path = record_path(&key);
        if !Path::new(&key).is_dir() {
            return; // `down --volumes` took the state directory
        }
        let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        if let Err(e) = cove_runtime::private::write_atomically(&path, &bytes) {
            log(&format!("{}: {e}", path.display()));
        }
    })
    .await
}

/// RFC 3339 with the zone's offset.
fn rfc(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The schedules `desired` asks for: service → (backup, verify).
fn wanted(desired: &Desired) -> BTreeMap<String, (Option<String>, Option<String>)> {
    use cove_spec::xcove::Verify;
    desired
        .wanted
        .iter()
        .filter_map(|name| {
            let b = desired
                .app
                .services
                .get(name)?
                .x_cove
                .as_ref()?
                .backup
                .as_ref()?;
            let verify = match &b.verify {
                Some(Verify::Schedule(s)) => Some(s.clone()),
                Some(Verify::Full(f)) => f.schedule.clone(),
                None => None,
            };
            Some((name.clone(), (b.schedule.clone(), verify)))
        })
        .collect()
}

impl ProjectRuns {
    /// Timers as `desired` says, from `now`; whether the record changed.
    fn update(&mut self, desired: &Desired, now: &Zoned) -> bool {
        let wanted = wanted(desired);
        let mut changed = false;
        let gone: Vec<String> = self
            .services
            .keys()
            .filter(|s| !wanted.contains_key(*s))
            .cloned()
            .collect();
        for s in gone {
            if let Some(runs) = self.services.remove(&s) {
                stop_run(&s, &runs);
            }
            if let Some(rec) = self.record.services.get_mut(&s) {
                changed |= rec.backup_due.take().is_some() | rec.verify_due.take().is_some();
            }
        }
        for (service, (backup, verify)) in wanted {
            let runs = self.services.entry(service.clone()).or_default();
            let rec = self.record.services.entry(service.clone()).or_default();
            for (kind, text) in [(RunKind::Backup, backup), (RunKind::Verify, verify)] {
                changed |= set_timer(&service, kind, runs.timer(kind), rec.due(kind), text, now);
            }
        }
        changed
    }

    /// Marks what is due at `now`, and what should start: each service's
    /// next run, when none runs.
    fn due(&mut self, now: &Zoned) -> (Vec<(String, RunKind)>, bool) {
        let mut start = Vec::new();
        let mut changed = false;
        for (service, runs) in &mut self.services {
            let rec = self.record.services.entry(service.clone()).or_default();
            for kind in [RunKind::Backup, RunKind::Verify] {
                let Some(timer) = runs.timer(kind).as_mut() else {
                    continue;
                };
                let Some(next) = timer.next.clone() else {
                    continue;
                };
                if next.timestamp() > now.timestamp() {
                    continue;
                }
                timer.next = timer.schedule.as_ref().ok().and_then(|s| s.next_after(now));
                *rec.due(kind) = Some(next.to_string());
                changed = true;
                if !runs.queued.contains(&kind) {
                    runs.queued.push(kind);
                }
            }
        }
        start.extend(self.next_run());
        (start, changed)
    }

    /// The next run to start, marked running, when none runs: the
    /// project's runs go one at a time (the first backup makes the
    /// repository and its password; two would race to).
    fn next_run(&mut self) -> Option<(String, RunKind)> {
        if self.services.values().any(|r| r.running.is_some()) {
            return None;
        }
        let (service, runs) = self
            .services
            .iter_mut()
            .find(|(_, r)| !r.queued.is_empty())?;
        let kind = runs.queued.remove(0);
        runs.running = Some((kind, None));
        Some((service.clone(), kind))
    }
}

/// Sets a timer to `text`; whether the record changed. A timer made
/// afresh (the daemon started) whose record says a time was handled
/// before, and a later one has passed since, is due now: once.
fn set_timer(
    service: &str,
    kind: RunKind,
    slot: &mut Option<Timer>,
    due: &mut Option<String>,
    text: Option<String>,
    now: &Zoned,
) -> bool {
    let Some(text) = text else {
        let had = slot.take().is_some();
        return had && due.take().is_some();
    };
    if slot.as_ref().is_some_and(|t| t.text == text) {
        return false;
    }
    let fresh = slot.is_none();
    let schedule = Schedule::parse(&text).map_err(|e| e.to_string());
    if let Err(e) = &schedule {
        log(&format!(
            "`{service}`: x-cove.backup {} `{text}` cannot be read ({e}); nothing is scheduled",
            kind.as_str()
        ));
    }
    let mut changed = false;
    let mut next = schedule.as_ref().ok().and_then(|s| s.next_after(now));
    match (&schedule, due.as_deref()) {
        (Ok(s), Some(last)) if fresh => {
            let missed = last
                .parse::<Zoned>()
                .ok()
                .and_then(|l| s.next_after(&l))
                .is_some_and(|m| m.timestamp() <= now.timestamp());
            if missed {
                log(&format!(
                    "`{service}`: a scheduled {} was missed while the daemon was down (last handled {last}): running it once now",
                    kind.as_str()
                ));
                next = Some(now.clone());
            }
        }
        _ => {
            // A new or changed schedule counts from now.
            changed = due.take().is_some();
        }
    }
    *slot = Some(Timer {
        text,
        schedule,
        next,
    });
    changed
}

/// Stops a run in progress (SIGTERM to its process group).
fn stop_run(service: &str, runs: &ServiceRuns) {
    if let Some((kind, Some(pid))) = runs.running
        && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
    {
        log(&format!(
            "`{service}`: stopping its scheduled {} (process group {pid:?})",
            kind.as_str()
        ));
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    }
}

/// Runs the schedules: a turn every [`TICK`] (restarted after a panic).
pub(super) fn spawn_backups(daemon: Arc<Daemon>) {
    spawn_restarting(
        "the backup scheduler".into(),
        move || {
            let daemon = daemon.clone();
            async move {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    turn(&daemon).await;
                }
            }
        },
        log,
    );
}

/// One look at every project's schedules.
async fn turn(daemon: &Arc<Daemon>) {
    let now = Zoned::now();
    let projects = daemon.all();
    let mut saves = Vec::new();
    let mut starts = Vec::new();
    {
        let mut all = crate::lock(&daemon.backups.projects);
        let up: HashMap<&str, (&Arc<Project>, Option<Arc<Desired>>)> = projects
            .iter()
            .map(|p| (&*p.key, (p, p.view().1)))
            .collect();
        let gone: Vec<String> = all
            .keys()
            .filter(|k| up.get(k.as_str()).is_none_or(|(_, d)| d.is_none()))
            .cloned()
            .collect();
        for key in gone {
            if let Some(runs) = all.remove(&key) {
                saves.push((key, stopped(runs)));
            }
        }
        for (key, (project, desired)) in &up {
            let Some(desired) = desired else { continue };
            if wanted(desired).is_empty() && !all.contains_key(*key) {
                continue;
            }
            let runs = all.entry(key.to_string()).or_insert_with(|| ProjectRuns {
                services: BTreeMap::new(),
                record: load_record(key),
            });
            let mut changed = runs.update(desired, &now);
            let (start, due_changed) = runs.due(&now);
            changed |= due_changed;
            if changed {
                saves.push((key.to_string(), runs.record.clone()));
            }
            for (service, kind) in start {
                starts.push(((*project).clone(), desired.clone(), service, kind));
            }
        }
    }
    for (key, record) in saves {
        save(key, record).await;
    }
    for (project, desired, service, kind) in starts {
        start(daemon.clone(), project, desired, service, kind);
    }
}

/// Stops `runs`' runs in progress: the record without its times handled.
fn stopped(mut runs: ProjectRuns) -> Record {
    for (service, r) in &runs.services {
        stop_run(service, r);
    }
    for rec in runs.record.services.values_mut() {
        rec.backup_due = None;
        rec.verify_due = None;
    }
    runs.record
}

/// `cove down` of the whole project: its schedules stop now (the daemon
/// may exit before the next turn).
pub(super) async fn stop(daemon: &Daemon, key: &str) {
    let runs = crate::lock(&daemon.backups.projects).remove(key);
    let record = match runs {
        Some(runs) => stopped(runs),
        None => {
            let mut r = load_record(key);
            for rec in r.services.values_mut() {
                rec.backup_due = None;
                rec.verify_due = None;
            }
            r
        }
    };
    if !record.services.is_empty() {
        save(key.to_string(), record).await;
    }
}

/// Starts a run of `kind` for `service` (marked running already); when
/// it ends, records it and starts what was queued meanwhile.
fn start(
    daemon: Arc<Daemon>,
    project: Arc<Project>,
    desired: Arc<Desired>,
    service: String,
    kind: RunKind,
) {
    tokio::spawn(async move {
        let key = project.key.to_string();
        let started = Zoned::now();
        log(&format!(
            "{key}: scheduled {} of `{service}`",
            kind.as_str()
        ));
        let (ok, message) = match run_child(&daemon, &project, &desired, &service, kind).await {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        let run = Run {
            started: rfc(&started),
            ended: rfc(&Zoned::now()),
            ok,
            message: message.clone(),
        };
        log(&format!(
            "{key}: scheduled {} of `{service}` {}: {message}",
            kind.as_str(),
            if ok { "done" } else { "FAILED" }
        ));
        let _ = project.reports.send(Report::Backup {
            service: service.clone(),
            drill: kind == RunKind::Verify,
            ok,
            message: format!(
                "scheduled {} {}: {message}",
                kind.as_str(),
                if ok { "done" } else { "failed" }
            ),
        });
        let (record, next) = {
            let mut all = crate::lock(&daemon.backups.projects);
            let Some(runs) = all.get_mut(&key) else {
                return; // stopped (`cove down`) meanwhile
            };
            let rec = runs.record.services.entry(service.clone()).or_default();
            match kind {
                RunKind::Backup => rec.last_backup = Some(run),
                RunKind::Verify => rec.last_verify = Some(run),
            }
            if let Some(r) = runs.services.get_mut(&service) {
                r.running = None;
            }
            (runs.record.clone(), runs.next_run())
        };
        save(key, record).await;
        if let Some((service, k)) = next {
            let desired = project.view().1.unwrap_or(desired);
            start(daemon, project, desired, service, k);
        }
    });
}

/// Runs the cove binary for one scheduled run: its last line, as the
/// outcome's message.
async fn run_child(
    daemon: &Daemon,
    project: &Project,
    desired: &Desired,
    service: &str,
    kind: RunKind,
) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find cove's binary: {e}"))?;
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.arg("--project-directory")
        .arg(&desired.project_dir)
        .arg("-p")
        .arg(&desired.app.name)
        .args(["--profile", "*"]);
    if let Some(env) = &desired.app.x_cove.env {
        cmd.arg("--env").arg(env);
    }
    match kind {
        RunKind::Backup => cmd.args(["backup", service]),
        RunKind::Verify => cmd.args(["backup", "verify", "--latest", service]),
    };
    cmd.current_dir(&desired.project_dir)
        // The app is the one `up` ran, not what the daemon's environment says.
        .env_remove("COVE_ENV")
        .env_remove("COMPOSE_FILE")
        // Its outcome is recorded here, not told back by the run.
        .env(crate::api::SCHEDULED_RUN_ENV, "1")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    if let Some(identity) = &desired.identity {
        cmd.env("COVE_IDENTITY", identity);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let pid = child.id();
    {
        let mut all = crate::lock(&daemon.backups.projects);
        if let Some(r) = all
            .get_mut(&*project.key)
            .and_then(|p| p.services.get_mut(service))
            && let Some((_, slot)) = r.running.as_mut()
        {
            *slot = pid;
        }
    }
    let source = format!("{service}-backup");
    let last = Arc::new(std::sync::Mutex::new(String::new()));
    let mut readers = tokio::task::JoinSet::new();
    for (stream, pipe) in [
        (
            Stream::Stdout,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            Stream::Stderr,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(pipe) = pipe else { continue };
        let (reports, source, last) = (project.reports.clone(), source.clone(), last.clone());
        readers.spawn(async move {
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if !line.trim().is_empty() {
                    *crate::lock(&last) = line.trim().to_string();
                }
                let _ = reports.send(Report::Log {
                    service: source.clone(),
                    replica: 0,
                    stream,
                    line,
                });
            }
        });
    }
    let status = match tokio::time::timeout(RUN_LIMIT, child.wait()).await {
        Ok(s) => s.map_err(|e| e.to_string())?,
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.wait().await;
            return Err(format!(
                "did not end in {} hours: killed",
                RUN_LIMIT.as_secs() / 3600
            ));
        }
    };
    // Its output to the end (bounded: the group may hold the pipes).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    let last = crate::lock(&last).clone();
    let last = last
        .strip_prefix("cove: ")
        .or_else(|| last.strip_prefix("error: "))
        .unwrap_or(&last)
        .to_string();
    if status.success() {
        Ok(last)
    } else {
        Err(format!("{status}: {last}"))
    }
}

/// `GET /v1/backups`: each service with `x-cove.backup` of the project.
/// Records how a backup or drill run by hand ended, as a scheduled one's
/// end is recorded (an event, a line in `SERVICE-backup`'s log; so its
/// alerts see it). Refused for a project the daemon does not run.
pub(super) fn outcome(daemon: &Daemon, key: &str, o: crate::api::BackupOutcome) -> Answer {
    let Some(project) = daemon.existing(key) else {
        return crate::server::reply::error(
            StatusCode::NOT_FOUND,
            "this project is not running",
            Some("start it with `cove up -d`".into()),
        );
    };
    let what = if o.drill { "verify" } else { "backup" };
    let _ = project.reports.send(Report::Backup {
        service: o.service,
        drill: o.drill,
        ok: o.ok,
        message: format!(
            "{what} {} (run by hand): {}",
            if o.ok { "done" } else { "failed" },
            o.message
        ),
    });
    json(StatusCode::OK, &serde_json::json!({}))
}

pub(super) fn status(daemon: &Daemon, key: &str) -> Answer {
    let desired = daemon.existing(key).and_then(|p| p.view().1);
    let Some(desired) = desired else {
        return json(StatusCode::OK, &Vec::<BackupStatus>::new());
    };
    let mut all = crate::lock(&daemon.backups.projects);
    let runs = all.get_mut(key);
    let record = runs
        .as_ref()
        .map(|r| r.record.clone())
        .unwrap_or_else(|| load_record(key));
    let out: Vec<BackupStatus> = wanted(&desired)
        .into_iter()
        .map(|(service, (schedule, verify))| {
            let r = runs.as_ref().and_then(|r| r.services.get(&service));
            let rec = record.services.get(&service).cloned().unwrap_or_default();
            let next = |t: &Option<Timer>| t.as_ref().and_then(|t| t.next.as_ref()).map(rfc);
            let problem = r.and_then(|r| {
                [&r.backup, &r.verify]
                    .into_iter()
                    .flatten()
                    .find_map(|t| t.schedule.as_ref().err().cloned())
            });
            BackupStatus {
                service,
                schedule,
                next_backup: r.and_then(|r| next(&r.backup)),
                last_backup: rec.last_backup,
                verify,
                next_verify: r.and_then(|r| next(&r.verify)),
                last_verify: rec.last_verify,
                running: r.and_then(|r| r.running.map(|(k, _)| k)),
                problem,
            }
        })
        .collect();
    json(StatusCode::OK, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned(s: &str) -> Zoned {
        format!("{s}[UTC]").parse().unwrap()
    }

    #[test]
    fn a_missed_time_runs_once_when_the_daemon_comes_back_and_not_after_a_down() {
        let now = zoned("2026-01-05T10:00:30+00:00");
        // Handled 09:58:00 of a every-minute schedule; 09:59 and 10:00 were
        // missed: one run, now.
        let mut slot = None;
        let mut due = Some(zoned("2026-01-05T09:58:00+00:00").to_string());
        set_timer(
            "db",
            RunKind::Backup,
            &mut slot,
            &mut due,
            Some("* * * * *".into()),
            &now,
        );
        assert_eq!(slot.as_ref().unwrap().next, Some(now.clone()));
        // Nothing missed: the next time.
        let mut slot = None;
        let mut due = Some(zoned("2026-01-05T10:00:00+00:00").to_string());
        set_timer(
            "db",
            RunKind::Backup,
            &mut slot,
            &mut due,
            Some("* * * * *".into()),
            &now,
        );
        assert_eq!(
            slot.as_ref().unwrap().next,
            Some(zoned("2026-01-05T10:01:00+00:00"))
        );
        // After a down (no time handled on record): the next time.
        let mut slot = None;
        let mut due = None;
        set_timer(
            "db",
            RunKind::Backup,
            &mut slot,
            &mut due,
            Some("* * * * *".into()),
            &now,
        );
        assert_eq!(
            slot.as_ref().unwrap().next,
            Some(zoned("2026-01-05T10:01:00+00:00"))
        );
        // A changed schedule counts from now, and forgets the time handled.
        let mut due = Some(zoned("2026-01-05T09:00:00+00:00").to_string());
        assert!(set_timer(
            "db",
            RunKind::Backup,
            &mut slot,
            &mut due,
            Some("0 * * * *".into()),
            &now,
        ));
        assert_eq!(due, None);
        assert_eq!(
            slot.as_ref().unwrap().next,
            Some(zoned("2026-01-05T11:00:00+00:00"))
        );
    }

    #[test]
    fn times_that_come_while_a_run_goes_on_queue_once() {
        let mut runs = ProjectRuns {
            services: BTreeMap::new(),
            record: Record::default(),
        };
        let mut s = ServiceRuns::default();
        let t0 = zoned("2026-01-05T10:00:00+00:00");
        let mut due = None;
        set_timer(
            "db",
            RunKind::Backup,
            &mut s.backup,
            &mut due,
            Some("* * * * * *".into()),
            &t0,
        );
        runs.services.insert("db".into(), s);
        let (start, _) = runs.due(&zoned("2026-01-05T10:00:01+00:00"));
        assert_eq!(start, [("db".to_string(), RunKind::Backup)]);
        // Three more seconds while it runs: queued once, nothing started.
        for s in ["02", "03", "04"] {
            let (start, _) = runs.due(&zoned(&format!("2026-01-05T10:00:{s}+00:00")));
            assert!(start.is_empty());
        }
        assert_eq!(runs.services["db"].queued, [RunKind::Backup]);
        assert_eq!(
            runs.record.services["db"].backup_due.as_deref(),
            Some(zoned("2026-01-05T10:00:04+00:00").to_string().as_str())
        );
    }
}
