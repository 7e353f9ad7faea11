//! The recorder: the supervisors' reports become log lines (each
//! project's logs), events and replica records (the store), in batches;
//! [`crate::server::registry::Daemon::flush`] waits for it. A batch with
//! events is written on the blocking pool (appends, one durable commit);
//! one of lines only, here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cove_runtime::logs;
use cove_runtime::supervisor::Report;
use tokio::sync::{mpsc, watch};

use crate::api::{Event, EventState, ReplicaState};
use crate::server::log::{log, millis};
use crate::server::offload::blocking;
use crate::server::tasks::survive;
use crate::store::{ReplicaRecord, Store};

/// Turns reports into log lines, events and replica records, in batches.
/// A batch whose writing panicked is logged and dropped (its logs' writers
/// opened afresh); the recorder goes on with the next, and answers every
/// flush either way.
pub(super) async fn record(
    mut reports: mpsc::UnboundedReceiver<(Arc<str>, Report)>,
    store: Arc<Store>,
    seq_tx: watch::Sender<u64>,
    flushed_tx: watch::Sender<u64>,
    lines_tx: watch::Sender<u64>,
) {
    // Each project's logs live in its own state directory; `None` once
    // writing there failed. Lent to each batch's blocking work.
    let mut writers: Writers = HashMap::new();
    let mut seq = *seq_tx.borrow();
    let mut batch = Vec::new();
    while reports.recv_many(&mut batch, 1024).await > 0 {
        let flushed = batch
            .iter()
            .filter_map(|(_, r)| match r {
                Report::Flush(id) => Some(*id),
                _ => None,
            })
            .max();
        let reports = std::mem::take(&mut batch);
        let count = reports.len();
        let store_now = store.clone();
        // Only a batch with events makes a durable commit: that one goes
        // to the blocking pool; lines alone (an access log under load) are
        // appended here, without a hand-off per batch.
        let commits = reports.iter().any(|(_, r)| {
            matches!(
                r,
                Report::State { .. }
                    | Report::Deploy { .. }
                    | Report::Backup { .. }
                    | Report::Alert { .. }
                    | Report::Deployed { .. }
            )
        });
        let work = move || {
            // `down --volumes` deletes a project's logs (a host's daemon
            // stays up): the next run's lines go to new files, not
            // deleted ones.
            writers.retain(|p, _| logs::Writer::dir_of(Path::new(&**p)).is_dir());
            let written = survive(
                "the recorder",
                || write_batch(reports, &store_now, &mut writers, &mut seq),
                log,
            );
            (written, writers, seq)
        };
        let (written, back, at) = if commits {
            blocking(work).await
        } else {
            work()
        };
        (writers, seq) = (back, at);
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
        // Log followers read what this batch wrote.
        lines_tx.send_modify(|n| *n += 1);
        if let Some(id) = flushed {
            let _ = flushed_tx.send(id);
        }
    }
}

/// Each project's log writer (`None` once writing there failed).
type Writers = HashMap<Arc<str>, Option<logs::Writer>>;

/// An event of a service as a whole (replica 0): a deploy, a backup, an
/// alert.
fn service_event(
    project: &str,
    seq: u64,
    now: std::time::SystemTime,
    service: String,
    state: EventState,
    detail: String,
) -> Event {
    Event {
        project: project.to_string(),
        seq,
        time_ms: millis(now),
        service,
        replica: 0,
        revision: 0,
        state,
        detail,
        pid: None,
        restarts: 0,
    }
}

/// Writes one batch of reports: log lines to each project's logs, events
/// and replica records to the store (after `seq`, which it moves on).
/// Whether it recorded events.
fn write_batch(
    batch: Vec<(Arc<str>, Report)>,
    store: &Store,
    writers: &mut Writers,
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
                events.push(service_event(
                    &project,
                    *seq,
                    now,
                    service,
                    EventState::Deploy,
                    message,
                ));
            }
            Report::Backup {
                service,
                drill,
                ok,
                message,
            } => {
                *seq += 1;
                append(
                    format!("{service}-backup"),
                    cove_runtime::process::Stream::Stdout,
                    &message,
                );
                events.push(service_event(
                    &project,
                    *seq,
                    now,
                    service,
                    match (drill, ok) {
                        (false, true) => EventState::Backup,
                        (false, false) => EventState::BackupFailed,
                        (true, true) => EventState::Verify,
                        (true, false) => EventState::VerifyFailed,
                    },
                    message,
                ));
            }
            Report::Deployed {
                service,
                ok,
                message,
            } => {
                *seq += 1;
                events.push(service_event(
                    &project,
                    *seq,
                    now,
                    service,
                    if ok {
                        EventState::Deployed
                    } else {
                        EventState::DeployFailed
                    },
                    message,
                ));
            }
            Report::Alert {
                service,
                firing,
                message,
            } => {
                *seq += 1;
                events.push(service_event(
                    &project,
                    *seq,
                    now,
                    service,
                    if firing {
                        EventState::Alert
                    } else {
                        EventState::AlertResolved
                    },
                    message,
                ));
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
                let word = ReplicaState::from(&state);
                replicas.push((
                    (project.to_string(), service.clone(), replica),
                    ReplicaRecord {
                        state: word.clone(),
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
                    state: word.into(),
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
