//! Backups of a service's data as snapshots in a restic repository,
//! through `rustic_core` (so Debian's `restic` lists and restores them).
//!
//! A backup is one stream (a dump: `pg_dump -Fc`, `mariadb-dump`, an RDB
//! file) written by a command on its standard output, stored as a snapshot
//! of one file named after the service and method, tagged with what it is
//! ([`Meta`]). The dump goes to a private temporary file first; only once
//! its command exited 0 is the file stored, so a dump that failed (or a
//! backup killed at any point) never becomes a snapshot.
//!
//! The repository's password is the caller's (cove keeps it in the app's
//! secrets file); the repository holds nothing readable without it.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustic_backend::BackendOptions;
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, KeyOptions, PathList, Repository,
    RepositoryBackends, RepositoryOptions, SnapshotOptions,
};

/// Every snapshot cove writes has this tag.
pub const COVE_TAG: &str = "cove";

mod scratch;
pub use scratch::remove_leftovers;

/// What went wrong, in words for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    fn new(context: &str, e: impl std::fmt::Display) -> Error {
        Error(format!("{context}: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a backup is of: stored as the snapshot's tags (`KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub project: String,
    pub environment: String,
    pub service: String,
    /// `pg_dump`, `mariadb-dump`, `redis-rdb`, ...
    pub method: String,
    pub cove_version: String,
}

impl Meta {
    fn tags(&self) -> Vec<String> {
        vec![
            COVE_TAG.to_string(),
            format!("project={}", self.project),
            format!("env={}", self.environment),
            format!("service={}", self.service),
            format!("method={}", self.method),
            format!("cove-version={}", self.cove_version),
        ]
    }

    fn from_tags(tags: &[String]) -> Option<Meta> {
        let get = |key: &str| {
            tags.iter()
                .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Meta {
            project: get("project")?,
            environment: get("env").unwrap_or_default(),
            service: get("service")?,
            method: get("method")?,
            cove_version: get("cove-version").unwrap_or_default(),
        })
    }

    /// The name of the stream's file in the snapshot.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.service, self.method)
    }
}

/// A backup as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backup {
    /// The snapshot's id (hex), as `restic snapshots` shows it.
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    /// When the backup was taken (RFC 3339).
    pub time: String,
    /// Bytes of the stream.
    pub size: u64,
    /// Bytes this backup added to the repository (after deduplication and
    /// compression, before encryption overhead).
    pub added: u64,
    /// The stream's path in the snapshot.
    pub path: String,
    /// When a restore drill last succeeded (RFC 3339): the snapshot's tag
    /// `verified=TIME` ([`Store::mark_verified`]). `None`: never verified.
    pub verified: Option<String>,
}

/// A restic repository at a local directory.
pub struct Store {
    dir: PathBuf,
    backends: RepositoryBackends,
    password: String,
}

impl std::fmt::Debug for Store {
    /// The directory only: never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the repository at `dir`, made (with `password`) if the
    /// directory holds none.
    pub fn open_or_init(dir: &Path, password: &str) -> Result<Store> {
        let repo = dir
            .to_str()
            .ok_or_else(|| Error(format!("{}: not a UTF-8 path", dir.display())))?;
        let backends = BackendOptions::default()
            .repository(repo)
            .to_backends()
            .map_err(|e| Error::new(&format!("backup target {}", dir.display()), e))?;
        let store = Store {
            dir: dir.to_path_buf(),
            backends,
            password: password.to_string(),
        };
        if !dir.join("config").is_file() {
            fs_err::create_dir_all(dir).map_err(|e| Error::new("backup target", e))?;
            store
                .raw()?
                .init(
                    &store.credentials(),
                    &KeyOptions::default(),
                    &ConfigOptions::default(),
                )
                .map_err(|e| {
                    Error::new(&format!("cannot make a repository in {}", dir.display()), e)
                })?;
        }
        // Fails early on a wrong password.
        store.open()?;
        Ok(store)
    }

    /// The repository's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn credentials(&self) -> Credentials {
        Credentials::password(&self.password)
    }

    fn raw(&self) -> Result<Repository<()>> {
        Repository::new(&RepositoryOptions::default(), &self.backends)
            .map_err(|e| Error::new("backup repository", e))
    }

    fn open(&self) -> Result<Repository<rustic_core::OpenStatus>> {
        self.raw()?.open(&self.credentials()).map_err(|e| {
            Error::new(
                &format!("cannot open the backup repository {}", self.dir.display()),
                e,
            )
        })
    }

    /// Runs `argv` (with exactly the environment `env`: no value may be a
    /// secret, since it is on `env`'s command line; give secrets in files)
    /// with its standard output in a private temporary file in `scratch`,
    /// and, once it exited 0, stores that file as a snapshot of `meta`. A
    /// command that fails (or is killed) leaves no snapshot: none is
    /// written before the whole dump is there.
    ///
    /// Why a file and not a pipe: rustic_core 0.13's chunker shrinks its
    /// read buffer to the size of any short read and never grows it back,
    /// so from a pipe it ends up reading a few hundred bytes a call (9 MiB/s
    /// here, against 118 MiB/s from a file; bench/backup/RESULTS.md).
    pub fn backup_command(
        &self,
        meta: &Meta,
        argv: &[String],
        env: &[(String, String)],
        scratch: &Path,
    ) -> Result<Backup> {
        let tags = meta.tags();
        for t in &tags {
            if t.contains(',') {
                return Err(Error(format!("`{t}`: a backup's tags may hold no comma")));
            }
        }
        fs_err::create_dir_all(scratch).map_err(|e| Error::new("backup scratch directory", e))?;
        // What killed backups left there.
        scratch::remove_leftovers(scratch);
        // A private (0700) directory holding the dump under its name in
        // the snapshot: rustic stores a single file by its own name.
        let dir = tempfile::Builder::new()
            .prefix(&scratch::prefix())
            .tempdir_in(scratch)
            .map_err(|e| {
                Error::new(
                    &format!("a temporary directory in {}", scratch.display()),
                    e,
                )
            })?;
        let dump_path = dir.path().join(meta.file_name());
        let out = fs_err::File::create(&dump_path)
            .map_err(|e| Error::new("the dump's temporary file", e))?
            .into_parts()
            .0;
        let shown = argv.join(" ");
        let done = std::process::Command::new("env")
            .arg("-i")
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(argv)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .output()
            .map_err(|e| Error::new(&format!("cannot run `{shown}`"), e))?;
        if !done.status.success() {
            return Err(Error(format!(
                "the backup command `{shown}` failed ({}), no backup was kept: {}",
                done.status,
                String::from_utf8_lossy(&done.stderr).trim()
            )));
        }
        let snap = SnapshotOptions::default()
            .command("cove backup".to_string())
            .add_tags(&tags.join(","))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| Error::new("backup snapshot", e))?;
        let repo = self
            .open()?
            .to_indexed_ids()
            .map_err(|e| Error::new("reading the repository's index", e))?;
        let opts =
            BackupOptions::default().as_path(Some(PathBuf::from(format!("/{}", meta.file_name()))));
        let path = dump_path
            .to_str()
            .ok_or_else(|| Error(format!("{}: not a UTF-8 path", dump_path.display())))?;
        let source = PathList::from_string(path)
            .map_err(|e| Error::new("backup source", e))?
            .sanitize()
            .map_err(|e| Error::new("backup source", e))?;
        let snap = repo
            .backup(&opts, &source, snap)
            .map_err(|e| Error::new("storing the backup", e))?;
        listed(&snap).ok_or_else(|| Error("the new snapshot is not cove's".into()))
    }

    /// The backups in the repository, oldest first.
    pub fn list(&self) -> Result<Vec<Backup>> {
        let repo = self.open()?;
        let mut snaps = repo
            .get_all_snapshots()
            .map_err(|e| Error::new("listing snapshots", e))?;
        snaps.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(latest_versions(snaps).iter().filter_map(listed).collect())
    }

    /// Records that a restore drill of backup `id` succeeded at `at` (RFC
    /// 3339): as restic's `tag --add` does, the snapshot is written again
    /// with the tag `verified=AT` (and `original` pointing at the first
    /// version, whose id cove keeps showing), then the old version is
    /// removed. Killed between the two, both versions exist and
    /// [`Store::list`] shows the newer one.
    pub fn mark_verified(&self, id: &str, at: &str) -> Result<Backup> {
        let repo = self.open()?;
        let old = self.snapshot(&repo, id)?;
        let mut new = old.clone();
        let stale: Vec<String> = new
            .tags
            .iter()
            .filter(|t| t.starts_with("verified="))
            .cloned()
            .collect();
        for t in stale {
            new.tags.remove_all(
                &[<rustic_core::StringList as std::str::FromStr>::from_str(&t)
                    .map_err(|e| Error::new("reading the snapshot's tags", e))?],
            );
        }
        new.tags.add(format!("verified={at}"));
        new.original = Some(old.original.unwrap_or(old.id));
        repo.save_snapshots(vec![new.clone()])
            .map_err(|e| Error::new("recording the verification", e))?;
        repo.delete_snapshots(&[old.id])
            .map_err(|e| Error::new("removing the unverified version", e))?;
        let mut b = listed(&new).ok_or_else(|| Error("the snapshot is not cove's".into()))?;
        b.verified = Some(at.to_string());
        Ok(b)
    }

    fn snapshot(
        &self,
        repo: &Repository<rustic_core::OpenStatus>,
        id: &str,
    ) -> Result<SnapshotFile> {
        let snaps = repo
            .get_all_snapshots()
            .map_err(|e| Error::new("listing snapshots", e))?;
        let matching: Vec<_> = latest_versions(snaps)
            .into_iter()
            .filter(|s| shown_id(s).starts_with(id) && listed(s).is_some())
            .collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one")),
            0 => Err(Error(format!("no backup `{id}` in {}", self.dir.display()))),
            _ => Err(Error(format!(
                "`{id}` names more than one backup: give more of its id"
            ))),
        }
    }

    /// Reads back every blob of backup `id` (the packs holding its data
    /// and its tree), verifying each against its hash and MAC. The error
    /// names each damaged file of the repository.
    pub fn check(&self, id: &str) -> Result<()> {
        let repo = self.open()?;
        let snap = self.snapshot(&repo, id)?;
        let repo = repo
            .to_indexed()
            .map_err(|e| Error::new("reading the repository's index", e))?;
        let results = repo
            .check_with_trees(CheckOptions::default().read_data(true), vec![snap.tree])
            .map_err(|e| Error::new("checking the backup", e))?;
        if results.is_ok().is_ok() {
            return Ok(());
        }
        // The level's type is not exported: errors are told by its name
        // (every finding, should that name change).
        let all = |only_errors: bool| -> Vec<String> {
            results
                .0
                .iter()
                .filter(|(level, _)| !only_errors || format!("{level:?}") == "Error")
                .map(|(_, e)| self.naming_files(&e.to_string()))
                .collect()
        };
        let mut errors = all(true);
        if errors.is_empty() {
            errors = all(false);
        }
        Err(Error(format!(
            "backup {} is damaged: {}",
            short(&snap),
            errors.join("; ")
        )))
    }

    /// A check error's message (its first line and rustic's "Message"),
    /// with the repository file of each pack it names (by a short id).
    fn naming_files(&self, message: &str) -> String {
        let lines: Vec<&str> = message.lines().map(str::trim).collect();
        let mut out = lines.first().copied().unwrap_or_default().to_string();
        if let Some(i) = lines.iter().position(|l| *l == "Message:")
            && let Some(m) = lines.get(i + 1)
        {
            out.push(' ');
            out.push_str(m);
        }
        let first = lines.first().copied().unwrap_or_default();
        for word in first.split(|c: char| !c.is_ascii_hexdigit()) {
            if word.len() < 8 {
                continue;
            }
            let sub = self.dir.join("data").join(&word[..2]);
            let Ok(entries) = fs_err::read_dir(&sub) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(word) {
                    out.push_str(&format!(" (file {})", e.path().display()));
                }
            }
        }
        out
    }

    /// Writes backup `id`'s stream to `out`, after [`Store::check`]: a
    /// damaged backup is refused before anything is written.
    pub fn restore(&self, id: &str, out: &mut impl Write) -> Result<Backup> {
        self.check(id)?;
        let repo = self.open()?;
        let snap = self.snapshot(&repo, id)?;
        let backup = listed(&snap).expect("a listed snapshot");
        let repo = repo
            .to_indexed()
            .map_err(|e| Error::new("reading the repository's index", e))?;
        let node = repo
            .node_from_snapshot_and_path(&snap, &backup.path)
            .map_err(|e| Error::new("finding the stream in the snapshot", e))?;
        repo.dump(&node, out)
            .map_err(|e| Error::new("reading the backup", e))?;
        out.flush()
            .map_err(|e| Error::new("writing the backup", e))?;
        Ok(backup)
    }
}

fn short(snap: &SnapshotFile) -> String {
    shown_id(snap).chars().take(8).collect()
}

/// The id cove shows for a snapshot: its first version's (restic's
/// `original`), so that marking it verified does not change it.
fn shown_id(snap: &SnapshotFile) -> String {
    snap.original.unwrap_or(snap.id).to_hex().to_string()
}

/// One version per backup: of snapshots with the same [`shown_id`] (a
/// [`Store::mark_verified`] killed halfway leaves two), the newest.
fn latest_versions(snaps: Vec<SnapshotFile>) -> Vec<SnapshotFile> {
    let mut out: Vec<SnapshotFile> = Vec::with_capacity(snaps.len());
    for s in snaps {
        let verified = |s: &SnapshotFile| s.tags.iter().any(|t| t.starts_with("verified="));
        match out.iter_mut().find(|o| shown_id(o) == shown_id(&s)) {
            Some(o) if verified(&s) && (!verified(o) || s.original.is_some()) => *o = s,
            Some(_) => {}
            None => out.push(s),
        }
    }
    out
}

/// A snapshot of cove's, complete: as [`Store::list`] shows it.
fn listed(snap: &SnapshotFile) -> Option<Backup> {
    let tags: Vec<String> = snap.tags.iter().map(ToString::to_string).collect();
    if !tags.iter().any(|t| t == COVE_TAG) {
        return None;
    }
    let meta = Meta::from_tags(&tags)?;
    let summary = snap.summary.as_ref();
    Some(Backup {
        id: shown_id(snap),
        verified: tags
            .iter()
            .find_map(|t| t.strip_prefix("verified="))
            .map(str::to_string),
        time: snap.time.timestamp().to_string(),
        size: summary.map_or(0, |s| s.total_bytes_processed),
        added: summary.map_or(0, |s| s.data_added_packed),
        path: format!("/{}", meta.file_name()),
        meta,
    })
}
