//! Backups of a service's data as snapshots in a restic repository,
//! through `rustic_core` (so Debian's `restic` lists and restores them).
//!
//! A backup is one stream (a dump: `pg_dump -Fc`, `mariadb-dump`, an RDB
//! file) written by a command on its standard output, stored as a snapshot
//! of one file named after the service and method, tagged with what it is
//! ([`Meta`]). Either the dump goes to a private temporary file first, and
//! only once its command exited 0 is the file stored (to each of several
//! targets); or it is stored to one target while it runs, as a pending
//! snapshot made cove's once the command exited 0 ([`stream`]). Either way
//! a dump that failed (or a backup killed at any point) is never listed.
//!
//! The repository's password is the caller's (cove keeps it in the app's
//! secrets file); the repository holds nothing readable without it.
//!
//! A repository is at a [`Location`]: a local directory, SFTP or S3
//! ([`target`]). One dump ([`dump_command`]) can be stored to several
//! ([`Store::store_dump`]).

pub mod target;

pub use target::{Location, S3Keys};

mod tree;

pub mod stream;

pub use stream::{DumpCommand, Filter};

use std::io::Write;
use std::path::{Path, PathBuf};

use rustic_backend::BackendOptions;
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, KeyOptions, PathList, Repository,
    RepositoryBackends, RepositoryOptions, SnapshotOptions,
};

/// The zstd level of the repositories cove makes: 1, not restic's 3. On
/// dumps (SQL text, archives) it compresses about half again as fast for
/// a few percent more bytes, and the CPU a backup takes is taken from the
/// running app's host (bench/backup/RESULTS.md). A repository keeps the
/// level it was made with; restic reads either.
pub const COMPRESSION: i32 = 1;

/// Every snapshot cove writes has this tag.
pub const COVE_TAG: &str = "cove";

/// What went wrong, in words for the user, and whose failure it was.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    kind: ErrorKind,
}

/// Whose failure an [`Error`] is, for a caller that tells the user what
/// to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The dump command failed (or could not run): nothing was stored,
    /// and no target is to blame.
    Command,
    /// Writing the dump to the scratch directory failed.
    Scratch,
    /// Anything else: the repository, a target, the snapshot's metadata.
    Other,
}

impl Error {
    fn new(context: &str, e: impl std::fmt::Display) -> Error {
        Error::other(format!("{context}: {e}"))
    }

    fn other(message: String) -> Error {
        Error {
            message,
            kind: ErrorKind::Other,
        }
    }

    /// The error of a dump command that failed or could not run.
    pub fn command(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            kind: ErrorKind::Command,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub mod retention;
pub mod scratch;
pub mod sqlsplit;

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
    /// The snapshot's description: what cove recorded with the backup (the
    /// source's figures at its consistent point, the last drill's), JSON by
    /// cove's convention; never a secret. Not in `cove backup ls`.
    #[serde(default, skip_serializing)]
    pub description: Option<String>,
}

/// A restic repository: in a local directory, on an SFTP server or in S3.
pub struct Store {
    /// The target's name (`local`, or a name under `x-cove.backup.targets`).
    name: String,
    location: Location,
    /// The local directory; for a remote target, its URL (for messages).
    dir: PathBuf,
    /// Always `Some` but in `drop`, which drops it first.
    backends: Option<RepositoryBackends>,
    password: String,
    /// SFTP: the ssh master connections this store starts, closed on drop.
    masters: Option<target::SshMasters>,
    /// Where a remote target's lock file is kept on this host
    /// ([`Store::with_lock_dir`]); a local one's is in its directory.
    lock_dir: Option<PathBuf>,
}

impl Drop for Store {
    /// The backend first (its SFTP sessions), then every ssh master
    /// connection it started is waited for, or closed.
    fn drop(&mut self) {
        drop(self.backends.take());
        if let Some(m) = self.masters.take() {
            m.close();
        }
    }
}

impl std::fmt::Debug for Store {
    /// The target's name and location only: never the password nor a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("location", &self.location.url())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the repository at `dir`, made (with `password`) if the
    /// directory holds none.
    pub fn open_or_init(dir: &Path, password: &str) -> Result<Store> {
        Store::open_or_init_at("local", &Location::Dir(dir.to_path_buf()), None, password)
    }

    /// Opens the repository of target `name` at `location`, made (with
    /// `password`) if there is none there. `keys`: for S3.
    pub fn open_or_init_at(
        name: &str,
        location: &Location,
        keys: Option<&S3Keys>,
        password: &str,
    ) -> Result<Store> {
        let store = Store::connect(name, location, keys, password)?;
        if !store.has_repository()? {
            if let Location::Dir(dir) = location {
                fs_err::create_dir_all(dir).map_err(|e| store.error("", e))?;
            }
            store
                .raw()?
                .init(
                    &store.credentials(),
                    &KeyOptions::default(),
                    &ConfigOptions::default().set_compression(COMPRESSION),
                )
                .map_err(|e| store.error("cannot make a repository", e))?;
        }
        // Fails early on a wrong password.
        store.open()?;
        Ok(store)
    }

    /// The repository of target `name` at `location`, not yet reached
    /// (a remote one is connected to at the first use).
    pub fn connect(
        name: &str,
        location: &Location,
        keys: Option<&S3Keys>,
        password: &str,
    ) -> Result<Store> {
        let (repo, options) = location.backend(keys)?;
        let masters = matches!(location, Location::Sftp { .. }).then(target::SshMasters::before);
        let backends = BackendOptions::default()
            .repository(repo)
            .options(options)
            .to_backends()
            .map_err(|e| {
                Error::other(format!(
                    "backup target `{name}` ({}): {}",
                    location.url(),
                    rustic_message(&e.to_string())
                ))
            })?;
        Ok(Store {
            name: name.to_string(),
            location: location.clone(),
            dir: location
                .dir()
                .map_or_else(|| PathBuf::from(location.url()), Path::to_path_buf),
            backends: Some(backends),
            password: password.to_string(),
            masters,
            lock_dir: None,
        })
    }

    /// Keeps a remote target's lock file ([`retention`]: storing and
    /// pruning exclude each other) in `dir` on this host, named after the
    /// target's URL: so runs on this host exclude each other (not runs on
    /// other hosts, which restic's own locks would be needed for). Without
    /// it, a remote target is not locked.
    #[must_use]
    pub fn with_lock_dir(mut self, dir: &Path) -> Store {
        self.lock_dir = Some(dir.to_path_buf());
        self
    }

    /// The lock file's path, if this store is locked.
    pub(crate) fn lock_path(&self) -> Option<PathBuf> {
        match &self.location {
            Location::Dir(d) => Some(d.join("cove.lock")),
            _ => self.lock_dir.as_ref().map(|dir| {
                // FNV-1a of the URL: stable across builds.
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in self.location.url().bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                dir.join(format!("cove-repo-{h:016x}.lock"))
            }),
        }
    }

    /// Whether there is a repository at the target (reaching it: an error
    /// says why it cannot be reached).
    pub fn has_repository(&self) -> Result<bool> {
        if let Location::Dir(d) = &self.location {
            return Ok(d.join("config").is_file());
        }
        Ok(self
            .raw()?
            .config_id()
            .map_err(|e| self.error("cannot reach it", e))?
            .is_some())
    }

    /// The repository's directory (a local target's; for a remote one, its
    /// URL: see [`Store::location`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the repository is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// An error at this target: its name and location, what was done, the
    /// cause in short, and a hint when one helps.
    fn error(&self, context: &str, e: impl std::fmt::Display) -> Error {
        let mut msg = rustic_message(&e.to_string());
        // opendal keeps only "failed to connect" of ssh's words: ask ssh
        // itself why.
        if msg.contains("failed to connect to the remote host")
            && let Some(why) = self.location.ssh_says()
        {
            msg = format!("ssh cannot connect: {why}");
        }
        let context = if context.is_empty() {
            String::new()
        } else {
            format!("{context}: ")
        };
        let hint = self
            .location
            .hint(&msg)
            .map(|h| format!("\n  = hint: {h}"))
            .unwrap_or_default();
        Error::other(format!(
            "backup target `{}` ({}): {context}{msg}{hint}",
            self.name,
            self.location.url()
        ))
    }

    fn credentials(&self) -> Credentials {
        Credentials::password(&self.password)
    }

    fn raw(&self) -> Result<Repository<()>> {
        Repository::new(
            &RepositoryOptions::default(),
            self.backends.as_ref().expect("dropped only in drop"),
        )
        .map_err(|e| self.error("backup repository", e))
    }

    fn open(&self) -> Result<Repository<rustic_core::OpenStatus>> {
        self.raw()?
            .open(&self.credentials())
            .map_err(|e| self.error("cannot open the backup repository", e))
    }

    /// Runs `argv` (with exactly the environment `env`: no value may be a
    /// secret, since it is on `env`'s command line; give secrets in files)
    /// with its standard output in a private temporary file in `scratch`,
    /// and, once it exited 0, stores that file as a snapshot of `meta`. A
    /// command that fails (or is killed) leaves no snapshot: none is
    /// written before the whole dump is there. ([`dump_command`], then
    /// [`Store::store_dump`].)
    pub fn backup_command(
        &self,
        meta: &Meta,
        argv: &[String],
        env: &[(String, String)],
        scratch: &Path,
    ) -> Result<Backup> {
        self.backup_command_described(meta, argv, env, scratch, || None)
    }

    /// [`Store::backup_command`], the snapshot's description being what
    /// `describe` says once the command exited 0 (before the snapshot is
    /// written): figures taken while the command ran, say.
    pub fn backup_command_described(
        &self,
        meta: &Meta,
        argv: &[String],
        env: &[(String, String)],
        scratch: &Path,
        describe: impl FnOnce() -> Option<String>,
    ) -> Result<Backup> {
        let mut dump = dump_command(meta, argv, env, scratch)?;
        dump.description = describe();
        self.store_dump(&dump)
    }

    /// Stores a finished dump as a snapshot of its [`Meta`] (described by
    /// its description): the same dump can be stored to several
    /// repositories.
    pub fn store_dump(&self, dump: &Dump) -> Result<Backup> {
        let (snap, repo, _lock) = self.begin(&dump.meta.tags(), dump.description.clone())?;
        let opts = BackupOptions::default()
            .as_path(Some(PathBuf::from(format!("/{}", dump.meta.file_name()))));
        let path = dump
            .path
            .to_str()
            .ok_or_else(|| Error::other(format!("{}: not a UTF-8 path", dump.path.display())))?;
        let source = PathList::from_string(path)
            .map_err(|e| Error::new("backup source", e))?
            .sanitize()
            .map_err(|e| Error::new("backup source", e))?;
        let snap = repo
            .backup(&opts, &source, snap)
            .map_err(|e| self.error("storing the backup", e))?;
        listed(&snap).ok_or_else(|| Error::other("the new snapshot is not cove's".into()))
    }

    /// What storing a backup starts with: its snapshot (tagged `tags`,
    /// described by `description`), the repository open with its index,
    /// and the lock that keeps a prune out while this backup's packs are
    /// written but not indexed.
    fn begin(
        &self,
        tags: &[String],
        description: Option<String>,
    ) -> Result<(
        SnapshotFile,
        Repository<rustic_core::IndexedIdsStatus>,
        retention::RepoLock,
    )> {
        let snap = SnapshotOptions::default()
            .command("cove backup".to_string())
            .description(description)
            .add_tags(&tags.join(","))
            .and_then(|o| o.to_snapshot())
            .map_err(|e| Error::new("backup snapshot", e))?;
        let lock = retention::RepoLock::take(self, false)?;
        let repo = self
            .open()?
            .to_indexed_ids()
            .map_err(|e| self.error("reading the repository's index", e))?;
        Ok((snap, repo, lock))
    }

    /// The backups in the repository, oldest first.
    pub fn list(&self) -> Result<Vec<Backup>> {
        let repo = self.open()?;
        let mut snaps = repo
            .get_all_snapshots()
            .map_err(|e| self.error("listing snapshots", e))?;
        snaps.retain(|s| !stream::is_pending(s));
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
        self.mark_verified_described(id, at, None)
    }

    /// [`Store::mark_verified`], the snapshot's description replaced by
    /// `description` when given (the drill's figures beside the source's).
    pub fn mark_verified_described(
        &self,
        id: &str,
        at: &str,
        description: Option<&str>,
    ) -> Result<Backup> {
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
        if let Some(d) = description {
            new.description = Some(d.to_string());
        }
        new.original = Some(old.original.unwrap_or(old.id));
        repo.save_snapshots(vec![new.clone()])
            .map_err(|e| self.error("recording the verification", e))?;
        repo.delete_snapshots(&[old.id])
            .map_err(|e| self.error("removing the unverified version", e))?;
        let mut b =
            listed(&new).ok_or_else(|| Error::other("the snapshot is not cove's".into()))?;
        b.verified = Some(at.to_string());
        Ok(b)
    }

    fn snapshot(
        &self,
        repo: &Repository<rustic_core::OpenStatus>,
        id: &str,
    ) -> Result<SnapshotFile> {
        let mut snaps = repo
            .get_all_snapshots()
            .map_err(|e| self.error("listing snapshots", e))?;
        snaps.retain(|s| !stream::is_pending(s));
        let matching: Vec<_> = latest_versions(snaps)
            .into_iter()
            .filter(|s| shown_id(s).starts_with(id) && listed(s).is_some())
            .collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one")),
            0 => Err(Error::other(format!(
                "no backup `{id}` in target `{}` ({})",
                self.name,
                self.location.url()
            ))),
            _ => Err(Error::other(format!(
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
            .map_err(|e| self.error("reading the repository's index", e))?;
        let results = repo
            .check_with_trees(CheckOptions::default().read_data(true), vec![snap.tree])
            .map_err(|e| self.error("checking the backup", e))?;
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
        Err(Error::other(format!(
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
            .map_err(|e| self.error("reading the repository's index", e))?;
        let node = repo
            .node_from_snapshot_and_path(&snap, &backup.path)
            .map_err(|e| self.error("finding the stream in the snapshot", e))?;
        repo.dump(&node, out)
            .map_err(|e| self.error("reading the backup", e))?;
        out.flush()
            .map_err(|e| Error::new("writing the backup", e))?;
        Ok(backup)
    }
}

/// A finished dump: the whole stream of a backup command that exited 0,
/// in a private temporary file (removed when this is dropped), ready to be
/// stored ([`Store::store_dump`]) to any number of repositories.
#[derive(Debug)]
pub struct Dump {
    meta: Meta,
    path: PathBuf,
    /// The snapshot's description (figures recorded while the dump ran).
    pub description: Option<String>,
    // Holds the file; removed on drop.
    _dir: tempfile::TempDir,
}

impl Dump {
    /// What the dump is of.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Bytes of the stream.
    pub fn size(&self) -> u64 {
        fs_err::metadata(&self.path).map_or(0, |m| m.len())
    }
}

/// Runs `argv` (with exactly the environment `env`: no value may be a
/// secret, since it is on `env`'s command line; give secrets in files)
/// with its standard output in a private temporary file in `scratch`. An
/// error if it does not exit 0: a failed dump is never stored. A file, to
/// store the same dump to several targets; to one,
/// [`Store::stream_command`] stores it while it runs.
pub fn dump_command(
    meta: &Meta,
    argv: &[String],
    env: &[(String, String)],
    scratch: &Path,
) -> Result<Dump> {
    let cmd = DumpCommand {
        argv,
        env,
        filter: None,
    };
    dump_command_with(meta, &cmd, scratch)
}

/// [`dump_command`] of a [`DumpCommand`] (whose output may be filtered
/// on its way to the file).
pub fn dump_command_with(meta: &Meta, cmd: &DumpCommand<'_>, scratch: &Path) -> Result<Dump> {
    stream::check_tags(meta)?;
    dump_with(meta, scratch, |mut out| match cmd.filter {
        None => cmd.run_into(out),
        Some(_) => {
            let (mut r, running) = cmd.spawn()?;
            let copied = std::io::copy(&mut r, &mut out);
            // Closed, so that a command still writing stops.
            drop(r);
            let waited = running.wait();
            copied.map_err(|e| Error::new("writing the dump", e))?;
            waited
        }
    })
}

/// Runs `fill` with a private file (in a private directory under
/// `scratch`) to write the dump of `meta` to: the dump, once `fill`
/// returned `Ok`; nothing is kept otherwise.
pub fn dump_with(
    meta: &Meta,
    scratch: &Path,
    fill: impl FnOnce(std::fs::File) -> Result<()>,
) -> Result<Dump> {
    fs_err::create_dir_all(scratch).map_err(|e| Error::new("backup scratch directory", e))?;
    scratch::clean(scratch);
    let dir = tempfile::Builder::new()
        .prefix(&scratch::prefix())
        .tempdir_in(scratch)
        .map_err(|e| Error {
            kind: ErrorKind::Scratch,
            ..Error::new(
                &format!("a temporary directory in {}", scratch.display()),
                e,
            )
        })?;
    let dump_path = dir.path().join(meta.file_name());
    let out = fs_err::File::create(&dump_path)
        .map_err(|e| Error {
            kind: ErrorKind::Scratch,
            ..Error::new("the dump's temporary file", e)
        })?
        .into_parts()
        .0;
    fill(out)?;
    Ok(Dump {
        meta: meta.clone(),
        path: dump_path,
        description: None,
        _dir: dir,
    })
}

/// rustic's error in short: its lines joined, without the boilerplate
/// about reporting bugs and log levels.
fn rustic_message(full: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in full.lines().map(str::trim) {
        // A backtrace (with RUST_BACKTRACE set) or the word that it is off.
        if line.starts_with("0: ") || line.starts_with("disabled backtrace") {
            break;
        }
        if line.is_empty()
            || line.starts_with("Some additional details")
            || line.starts_with("If you think")
            || line.starts_with("We believe this is a bug")
            || line.starts_with("If you can, please attach")
            || line.starts_with("Thank you for helping")
            || line.contains("github.com")
            || line.contains("discord")
            || line.starts_with("Backtrace")
        {
            continue;
        }
        out.push(line);
    }
    out.join(" ")
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
        description: snap.description.clone(),
        meta,
    })
}
