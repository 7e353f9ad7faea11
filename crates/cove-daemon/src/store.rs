//! The state store: what should run, what ran (restart counts, last state)
//! and the event history, in one redb file (`<daemon dir>/state.redb`).
//! A daemon may run several projects (one per host); keys start with the
//! project's key (its state directory): `desired/<project>` in `meta`,
//! `<project>|<service>/<replica>` in `replicas`,
//! `<project>|<service>|<number>` in `revisions`, `<project>|<service>|<name>`
//! in `alerts` (each alert rule's state and deliveries,
//! [`crate::alert::AlertRecord`]); events name their project.
//!
//! redb commits are atomic and durable: a daemon killed at any point reopens
//! the last committed state. The file is locked while a daemon has it open,
//! which also makes the daemon one per state directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::alert::AlertRecord;
use crate::api::{Event, ReplicaState};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const REPLICAS: TableDefinition<&str, &[u8]> = TableDefinition::new("replicas");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const REVISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revisions");
/// Added in layout 1 without a migration: a table is made when the store
/// opens, and an older cove never opens it.
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");

/// The layout this build writes: `meta`'s `schema` key. A store without
/// the key is one written before it existed (layout 1). Opening a store of
/// an older layout migrates it (each step in [`MIGRATIONS`], one
/// transaction); a newer one is refused, never rewritten.
///
/// States in records (replicas', events') are typed
/// ([`ReplicaState`], [`EventState`](crate::api::EventState)) but written as the words layout
/// 1 wrote, so typing them changed no layout; a word a newer cove wrote
/// reads as `Other` (kept as it came).
pub const SCHEMA: u32 = 1;

/// `MIGRATIONS[i]` turns layout `i + 1` into `i + 2`. None yet: layout 1
/// is the first.
const MIGRATIONS: &[Migration] = &[];

/// One step of [`MIGRATIONS`], in the transaction that records the new
/// layout.
type Migration = fn(&redb::WriteTransaction) -> Result<(), redb::Error>;

/// Revisions kept per service; older ones are dropped.
pub const MAX_REVISIONS: usize = 50;

/// One revision of a service: what it ran, from which artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub number: u64,
    /// Milliseconds since the Unix epoch when it first ran.
    pub time_ms: u64,
    /// `--message`, else the git commit of the project, else empty.
    pub message: String,
    /// The artifact's digest (`sha256:…`), empty when the command names no file.
    pub digest: String,
    /// The kept copy of its program, if any.
    pub program: Option<PathBuf>,
    /// The service as resolved from the Compose file.
    pub config: serde_json::Value,
}

/// Events kept; older ones are dropped.
pub const MAX_EVENTS: u64 = 10_000;

/// What should run: the app (as loaded by the CLI) and the services wanted up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub app: cove_spec::App,
    pub project_dir: PathBuf,
    /// Services that should be running (with their dependencies), in start order.
    pub wanted: Vec<String>,
    /// Wanted services the compose file no longer has: they keep running,
    /// as they were defined, until `--remove-orphans` (as in Compose).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<String>,
    /// Replica counts set by `cove scale` (they win over `deploy.replicas`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scale: std::collections::BTreeMap<String, u32>,
    /// Services held at a revision by `cove rollback` (until the next deploy).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub pinned: std::collections::BTreeMap<String, u64>,
    /// The age identity that opens the app's secrets file (the CLI's
    /// `COVE_IDENTITY`, or the user's default); a path, never a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
}

/// The last known state of a replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// Written as the API writes it (`running`); a word this build does
    /// not know reads as [`ReplicaState::Other`].
    pub state: ReplicaState,
    /// Its process (the leader of its process group), while it runs.
    pub pid: Option<u32>,
    pub restarts: u32,
    /// When that process started ([`cove_runtime::process::start_of`]):
    /// a daemon that finds it running later stops its group only if it is
    /// still that process, not a recycled pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

#[derive(Debug)]
pub struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

fn err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError(format!("state store {}: {e}", path.display()))
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store; fails if another process has it open.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_waiting(path, std::time::Duration::ZERO)
    }

    /// Opens (or creates, mode 0600) the store; while another process has it open (a
    /// daemon on its way out finishing its last writes), tries again every
    /// 100 ms for up to `patience`, then fails.
    pub fn open_waiting(path: &Path, patience: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        let db = loop {
            // 0600, never through a link, refused when another user's.
            let file =
                cove_runtime::private::rw_file(path).map_err(|e| StoreError(e.to_string()))?;
            match Database::builder().create_file(file.into_parts().0) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other.map_err(|e| err(path)(&e))?,
            }
        };
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        // Create the tables, so reads never meet a missing one.
        store.write(|txn| {
            txn.open_table(META)?;
            txn.open_table(REPLICAS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(REVISIONS)?;
            txn.open_table(ALERTS)?;
            Ok(())
        })?;
        store.migrate()?;
        Ok(store)
    }

    /// The layout of the file (1 when it does not say).
    pub fn schema(&self) -> Result<u32, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(META).map_err(|x| e(&x))?;
        let Some(v) = table.get("schema").map_err(|x| e(&x))? else {
            return Ok(1);
        };
        serde_json::from_slice(v.value()).map_err(|x| e(&x))
    }

    /// Brings an older layout to [`SCHEMA`]; refuses a newer one.
    fn migrate(&self) -> Result<(), StoreError> {
        let found = self.schema()?;
        if found > SCHEMA {
            return Err(StoreError(format!(
                "state store {} was written by a newer cove (layout {found}; this one reads up to {SCHEMA}); \
                 hint: run that cove (`cove down` with it first, to move back), or remove the file to start afresh (what should run is lost; data directories are kept)",
                self.path.display()
            )));
        }
        let steps = &MIGRATIONS[(found as usize - 1).min(MIGRATIONS.len())..];
        let to = SCHEMA.to_string();
        self.write(|txn| {
            for step in steps {
                step(txn)?;
            }
            txn.open_table(META)?.insert("schema", to.as_bytes())?;
            Ok(())
        })
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_write().map_err(|x| e(&x))?;
        f(&txn).map_err(|x| e(&x))?;
        txn.commit().map_err(|x| e(&x))
    }

    /// What should run, per project, for every project that asked; a
    /// project whose record this build cannot read (a field it does not
    /// know) is listed with why, so the others still come back.
    #[allow(clippy::type_complexity)]
    pub fn all_desired(&self) -> Result<Vec<(String, Result<Desired, String>)>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(META).map_err(|x| e(&x))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let Some(project) = k.value().strip_prefix("desired/") else {
                continue;
            };
            let desired = serde_json::from_slice(v.value()).map_err(|x| x.to_string());
            out.push((project.to_string(), desired));
        }
        Ok(out)
    }

    /// What `project` should run, if it ever asked.
    pub fn desired(&self, project: &str) -> Result<Option<Desired>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(META).map_err(|x| e(&x))?;
        let key = format!("desired/{project}");
        let Some(bytes) = table.get(key.as_str()).map_err(|x| e(&x))? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|x| e(&x))
    }

    /// Records what `project` should run (before it is acted on); `None`
    /// forgets the project.
    pub fn set_desired(&self, project: &str, desired: Option<&Desired>) -> Result<(), StoreError> {
        let bytes = desired
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|x| err(&self.path)(&x))?;
        let key = format!("desired/{project}");
        let prefix = format!("{project}|");
        self.write(|txn| {
            let mut table = txn.open_table(META)?;
            match &bytes {
                Some(b) => {
                    table.insert(key.as_str(), b.as_slice())?;
                }
                None => {
                    table.remove(key.as_str())?;
                    txn.open_table(REPLICAS)?
                        .retain(|k, _| !k.starts_with(prefix.as_str()))?;
                }
            }
            Ok(())
        })
    }

    /// The replicas of `project`, keyed by `(service, replica)`.
    pub fn replicas(
        &self,
        project: &str,
    ) -> Result<HashMap<(String, u32), ReplicaRecord>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(REPLICAS).map_err(|x| e(&x))?;
        let mut out = HashMap::new();
        for row in table.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let Some((p, key)) = k.value().rsplit_once('|') else {
                continue;
            };
            if p != project {
                continue;
            }
            let Some((svc, r)) = key.rsplit_once('/') else {
                continue;
            };
            let (Ok(r), Ok(rec)) = (r.parse(), serde_json::from_slice(v.value())) else {
                continue;
            };
            out.insert((svc.to_string(), r), rec);
        }
        Ok(out)
    }

    /// The recorded leaders of running replicas' process groups, with when
    /// they started (`project`'s, or every project's): what a daemon that
    /// was killed may have left running.
    pub fn leaders(&self, project: Option<&str>) -> Result<Vec<(u32, String)>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(REPLICAS).map_err(|x| e(&x))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let Some((p, _)) = k.value().rsplit_once('|') else {
                continue;
            };
            if project.is_some_and(|want| want != p) {
                continue;
            }
            if let Ok(ReplicaRecord {
                pid: Some(pid),
                start: Some(start),
                ..
            }) = serde_json::from_slice(v.value())
            {
                out.push((pid, start));
            }
        }
        Ok(out)
    }

    /// Records replica states (`(project, service, replica)`) and events in
    /// one transaction.
    pub fn record(
        &self,
        replicas: &[((String, String, u32), ReplicaRecord)],
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(REPLICAS)?;
            for ((project, svc, r), rec) in replicas {
                let bytes = serde_json::to_vec(rec).expect("plain data");
                table.insert(format!("{project}|{svc}/{r}").as_str(), bytes.as_slice())?;
            }
            let mut table = txn.open_table(EVENTS)?;
            for ev in events {
                let bytes = serde_json::to_vec(ev).expect("plain data");
                table.insert(ev.seq, bytes.as_slice())?;
            }
            if let Some(last) = events.last()
                && last.seq >= MAX_EVENTS
            {
                let cut = last.seq - MAX_EVENTS;
                table.retain_in(..=cut, |_, _| false)?;
            }
            Ok(())
        })
    }

    /// Events of `project` after `seq`, oldest first, at most `limit`.
    pub fn events_after(
        &self,
        project: &str,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(EVENTS).map_err(|x| e(&x))?;
        let mut out = Vec::new();
        for row in table.range(seq + 1..).map_err(|x| e(&x))? {
            let (_, v) = row.map_err(|x| e(&x))?;
            if let Ok(ev) = serde_json::from_slice::<Event>(v.value())
                && ev.project == project
            {
                out.push(ev);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The revisions of `service` of `project`, oldest first.
    pub fn revisions(&self, project: &str, service: &str) -> Result<Vec<Revision>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(REVISIONS).map_err(|x| e(&x))?;
        let prefix = format!("{project}|{service}|");
        let mut out = Vec::new();
        for row in table.range(prefix.as_str()..).map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            out.push(serde_json::from_slice(v.value()).map_err(|x| e(&x))?);
        }
        Ok(out)
    }

    /// Records a revision (replacing one with its number); keeps the last
    /// [`MAX_REVISIONS`].
    pub fn add_revision(
        &self,
        project: &str,
        service: &str,
        rev: &Revision,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rev).map_err(|x| err(&self.path)(&x))?;
        let prefix = format!("{project}|{service}|");
        self.write(|txn| {
            let mut table = txn.open_table(REVISIONS)?;
            table.insert(
                format!("{prefix}{:020}", rev.number).as_str(),
                bytes.as_slice(),
            )?;
            let keys: Vec<String> = table
                .range(prefix.as_str()..)?
                .filter_map(Result::ok)
                .map(|(k, _)| k.value().to_string())
                .take_while(|k| k.starts_with(&prefix))
                .collect();
            for k in keys.iter().take(keys.len().saturating_sub(MAX_REVISIONS)) {
                table.remove(k.as_str())?;
            }
            Ok(())
        })
    }

    /// The alert records of `project`, by service and name. A record
    /// this build cannot read is left out.
    pub fn alerts(&self, project: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(ALERTS).map_err(|x| e(&x))?;
        let prefix = format!("{project}|");
        let mut out = Vec::new();
        for row in table.range(prefix.as_str()..).map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            if let Ok(rec) = serde_json::from_slice(v.value()) {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Writes `records` of `project` and removes `gone` (service, name),
    /// in one transaction.
    pub fn save_alerts(
        &self,
        project: &str,
        records: &[AlertRecord],
        gone: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(ALERTS)?;
            for r in records {
                let bytes = serde_json::to_vec(r).expect("plain data");
                table.insert(
                    format!("{project}|{}|{}", r.service, r.name).as_str(),
                    bytes.as_slice(),
                )?;
            }
            for (service, name) in gone {
                table.remove(format!("{project}|{service}|{name}").as_str())?;
            }
            Ok(())
        })
    }

    /// The sequence number of the last event (0 when none).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let e = err(&self.path);
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let table = txn.open_table(EVENTS).map_err(|x| e(&x))?;
        Ok(table
            .last()
            .map_err(|x| e(&x))?
            .map_or(0, |(k, _)| k.value()))
    }
}

#[cfg(test)]
mod tests;
