//! A dump stored while it is taken: the command's standard output goes
//! straight into one repository, with no temporary file.
//!
//! rustic_core saves a snapshot as soon as its source reaches the end,
//! whatever the command that wrote it then says. So the snapshot is saved
//! as *pending* (tagged [`PENDING_TAG`], without [`COVE_TAG`]: no list,
//! retention or restore of cove's sees it), and only once the command
//! exited 0 and the snapshot holds every byte read is it written again as
//! cove's (a snapshot of its own, with its own id) and the pending one
//! removed. A command that fails, a short
//! snapshot, or a backup killed at any point leaves at most a pending
//! snapshot, which the next streamed backup to that repository removes
//! (and its data, which the next prune frees).
//!
//! Reads are whole: rustic_core 0.13's chunker shrinks its read buffer to
//! the size of any short read and never grows it back, so a pipe given to
//! it as is ends up read a few hundred bytes a call (9 MiB/s here, against
//! 118 MiB/s from a file: bench/backup/RESULTS.md). [`Whole`] fills every
//! buffer it is given before it returns, but at the end.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{BackupOptions, ReadSource, ReadSourceEntry, RusticResult, StringList};

use crate::{Backup, COVE_TAG, Error, Meta, Result, Store, listed};

/// The tag of a snapshot whose command had not yet been seen to succeed.
pub const PENDING_TAG: &str = "cove-pending";

impl Store {
    /// Stores a stream as a snapshot of `meta` while it is read: `start`
    /// (called once the repository is open) gives the stream and a
    /// `finish` that, after the whole stream was read, says whether it was
    /// whole (waiting for the command that wrote it, say) and gives the
    /// snapshot's description. Only when it says so, and the snapshot
    /// holds every byte read, is the backup listed; else there is none,
    /// and the error says why.
    pub fn store_stream<R, F>(
        &self,
        meta: &Meta,
        start: impl FnOnce() -> Result<(R, F)>,
    ) -> Result<Backup>
    where
        R: Read + Send + 'static,
        F: FnOnce() -> Result<Option<String>>,
    {
        check_tags(meta)?;
        let mut tags: Vec<String> = meta.tags();
        tags.retain(|t| t != COVE_TAG);
        tags.push(PENDING_TAG.to_string());
        let (snap, repo, _lock) = self.begin(&tags, None)?;
        // What earlier streamed backups killed or failed left.
        if let Ok(snaps) = repo.get_all_snapshots() {
            let stale: Vec<_> = snaps
                .iter()
                .filter(|s| is_pending(s))
                .map(|s| s.id)
                .collect();
            if !stale.is_empty() {
                let _ = repo.delete_snapshots(&stale);
            }
        }
        let (reader, finish) = start()?;
        let path = PathBuf::from(format!("/{}", meta.file_name()));
        let read = Arc::new(AtomicU64::new(0));
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        let source = Source {
            path: path.clone(),
            reader: Mutex::new(Some(Whole {
                inner: reader,
                read: read.clone(),
                failed: failed.clone(),
            })),
        };
        // No parent: a stream has no metadata to tell an unchanged one by.
        let mut opts = BackupOptions::default();
        opts.parent_opts.force = true;
        let archived = repo.archive(&opts, &source, snap, std::slice::from_ref(&path));
        // The stream closed (were it never opened), so that a writer
        // still at it stops.
        drop(source);
        let done = finish();
        let pending = match archived {
            Ok(s) => s,
            Err(e) => {
                // The command's own error says more than a broken pipe.
                done?;
                return Err(self.error("storing the backup", e));
            }
        };
        let remove_pending = || {
            let _ = repo.delete_snapshots(&[pending.id]);
        };
        let description = match done {
            Ok(d) => d,
            Err(e) => {
                remove_pending();
                return Err(e);
            }
        };
        if let Some(why) = lock(&failed).take() {
            remove_pending();
            return Err(Error::other(format!(
                "reading the dump: {why}; no backup was kept"
            )));
        }
        let read = read.load(Ordering::Relaxed);
        let stored = pending
            .summary
            .as_ref()
            .map_or(0, |s| s.total_bytes_processed);
        if stored != read {
            remove_pending();
            return Err(Error::other(format!(
                "the snapshot holds {stored} bytes of the {read} the dump wrote; no backup was kept"
            )));
        }
        let mut done = pending.clone();
        done.tags.remove_all(&[PENDING_TAG
            .parse::<StringList>()
            .map_err(|e| Error::new("the snapshot's tags", e))?]);
        done.tags.add(COVE_TAG.to_string());
        done.description = description;
        repo.save_snapshots(vec![done.clone()])
            .map_err(|e| self.error("recording the finished backup", e))?;
        remove_pending();
        // Its id, as restic shows it (saving gives none back): the one
        // snapshot of cove's with its tree and time.
        let saved = repo
            .get_all_snapshots()
            .map_err(|e| self.error("listing snapshots", e))?
            .into_iter()
            .find(|s| s.tree == done.tree && s.time == done.time && !is_pending(s))
            .ok_or_else(|| Error::other("the finished backup's snapshot is not there".into()))?;
        listed(&saved).ok_or_else(|| Error::other("the new snapshot is not cove's".into()))
    }
}

/// A command that writes a dump on its standard output, run with exactly
/// the environment `env` (no value may be a secret, since it is on `env`'s
/// command line; give secrets in files).
pub struct DumpCommand<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    /// What its output is put through on its way (its bytes, changed).
    pub filter: Option<Filter>,
}

/// A dump's stream, changed on its way (see [`crate::sqlsplit`]).
pub type Filter = fn(Box<dyn Read + Send>) -> Box<dyn Read + Send>;

impl DumpCommand<'_> {
    fn shown(&self) -> String {
        self.argv.join(" ")
    }

    fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new("env");
        c.arg("-i")
            .args(self.env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(self.argv)
            .stdin(std::process::Stdio::null());
        c
    }

    /// Starts the command: its output (filtered) and the command running.
    pub(crate) fn spawn(&self) -> Result<(Box<dyn Read + Send>, Running)> {
        let mut child = self
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::command(format!("cannot run `{}`: {e}", self.shown())))?;
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let out = match self.filter {
            Some(f) => f(out),
            None => out,
        };
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            // What it says, up to 64 KiB of it; the rest read and dropped.
            let mut kept = Vec::new();
            let _ = (&mut err).take(64 << 10).read_to_end(&mut kept);
            let _ = io::copy(&mut err, &mut io::sink());
            String::from_utf8_lossy(&kept).trim().to_string()
        });
        Ok((
            out,
            Running {
                child,
                stderr,
                shown: self.shown(),
            },
        ))
    }

    /// Runs the command to its end with its output (unfiltered) in `out`.
    pub(crate) fn run_into(&self, out: std::fs::File) -> Result<()> {
        let done = self
            .command()
            .stdout(out)
            .output()
            .map_err(|e| Error::command(format!("cannot run `{}`: {e}", self.shown())))?;
        failed(
            &self.shown(),
            done.status,
            &String::from_utf8_lossy(&done.stderr),
        )
    }
}

/// A dump command started by [`DumpCommand::spawn`].
pub(crate) struct Running {
    child: std::process::Child,
    stderr: std::thread::JoinHandle<String>,
    shown: String,
}

impl Running {
    /// Waits for it: an error unless it exited 0.
    pub(crate) fn wait(mut self) -> Result<()> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::new(&format!("waiting for `{}`", self.shown), e))?;
        let said = self.stderr.join().unwrap_or_default();
        failed(&self.shown, status, &said)
    }
}

fn failed(shown: &str, status: std::process::ExitStatus, said: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(Error::command(format!(
        "the backup command `{shown}` failed ({status}), no backup was kept: {}",
        said.trim()
    )))
}

impl Store {
    /// Runs `cmd` and stores its output as a backup of `meta` while it
    /// runs ([`Store::store_stream`]): listed only once it exited 0, with
    /// the description `describe` then gives.
    pub fn stream_command(
        &self,
        meta: &Meta,
        cmd: &DumpCommand<'_>,
        describe: impl FnOnce() -> Option<String>,
    ) -> Result<Backup> {
        self.store_stream(meta, || {
            let (out, running) = cmd.spawn()?;
            Ok((out, move || {
                running.wait()?;
                Ok(describe())
            }))
        })
    }
}

pub(crate) fn check_tags(meta: &Meta) -> Result<()> {
    match meta.tags().iter().find(|t| t.contains(',')) {
        Some(t) => Err(Error::other(format!(
            "`{t}`: a backup's tags may hold no comma"
        ))),
        None => Ok(()),
    }
}

/// Whether `snap` is a streamed backup not (or not yet) seen to succeed.
pub(crate) fn is_pending(snap: &SnapshotFile) -> bool {
    snap.tags.iter().any(|t| t == PENDING_TAG)
}

/// One stream, as a source of one file.
struct Source<R> {
    path: PathBuf,
    reader: Mutex<Option<Whole<R>>>,
}

impl<R: Read + Send + 'static> ReadSource for Source<R> {
    type Open = Whole<R>;
    type Iter = std::iter::Once<RusticResult<ReadSourceEntry<Whole<R>>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let meta = Metadata {
            mode: Some(0o600),
            mtime: Some(jiff::Timestamp::now()),
            ..Metadata::default()
        };
        let name = self.path.file_name().unwrap_or_default();
        std::iter::once(Ok(ReadSourceEntry {
            path: self.path.clone(),
            node: Node::new_node(name, NodeType::File, meta),
            open: lock(&self.reader).take(),
        }))
    }
}

/// Locks `m`, going on with its state when a panic poisoned it: backups
/// run in the daemon, and what these locks keep (a reader to hand over
/// once, the first read error) is whole between any two statements, so a
/// panic elsewhere must not make the next backup panic in turn.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A reader that fills every buffer (but at the end), counting what it
/// gave and keeping the first error (rustic_core logs a file's read error
/// and goes on without the file).
struct Whole<R> {
    inner: R,
    read: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for Whole<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    lock(&self.failed).get_or_insert_with(|| e.to_string());
                    return Err(e);
                }
            }
        }
        self.read.fetch_add(filled as u64, Ordering::Relaxed);
        Ok(filled)
    }
}
