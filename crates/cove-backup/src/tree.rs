//! Backups that are not one command's standard output: a stream written
//! by the caller (a command whose environment holds secrets, so it cannot
//! go through `env` on a command line), and a directory tree (a service's
//! files, a `mariabackup` or `pg_basebackup` directory) stored as files
//! and directories, so `restic restore` gives back the tree.
//!
//! A tree from one directory is stored as `/<service>.<method>/...`;
//! from several, each at its own absolute path (as restic does). Either
//! way the snapshot's `paths` say where: [`Store::restore_tree`] returns
//! them.

use std::path::{Path, PathBuf};

use rustic_core::{
    BackupOptions, LocalDestination, LsOptions, PathList, RestoreOptions, SnapshotOptions,
};

use crate::{Backup, Error, Meta, Result, Store, listed};

impl Store {
    /// Stores, as a snapshot of one file like [`Store::backup_command`]'s,
    /// what `fill` writes to the file it is given (a private file in
    /// `scratch`). Nothing is stored unless `fill` returns `Ok`.
    pub fn backup_stream_with(
        &self,
        meta: &Meta,
        scratch: &Path,
        fill: impl FnOnce(std::fs::File) -> Result<()>,
    ) -> Result<Backup> {
        let dump = crate::dump_with(meta, scratch, fill)?;
        self.store_dump(&dump)
    }

    /// Stores the directory tree(s) `sources` as one snapshot of `meta`:
    /// one directory as `/<service>.<method>`, several each at its own
    /// absolute path. Unreadable files fail the backup (none is kept).
    pub fn backup_tree(&self, meta: &Meta, sources: &[PathBuf]) -> Result<Backup> {
        if sources.is_empty() {
            return Err(Error::other("no path to back up".into()));
        }
        for s in sources {
            if !s.is_absolute() {
                return Err(Error::other(format!(
                    "{}: not an absolute path",
                    s.display()
                )));
            }
            if !s.exists() {
                return Err(Error::other(format!(
                    "{}: no such file or directory",
                    s.display()
                )));
            }
        }
        self.store_paths(meta, sources, sources.len() == 1)
    }

    fn store_paths(&self, meta: &Meta, sources: &[PathBuf], as_name: bool) -> Result<Backup> {
        let tags = meta.tags();
        for t in &tags {
            if t.contains(',') {
                return Err(Error::other(format!(
                    "`{t}`: a backup's tags may hold no comma"
                )));
            }
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
        let opts = BackupOptions::default()
            .as_path(as_name.then(|| PathBuf::from(format!("/{}", meta.file_name()))));
        for s in sources {
            s.to_str()
                .ok_or_else(|| Error::other(format!("{}: not a UTF-8 path", s.display())))?;
        }
        let list = PathList::from_iter(sources.iter().cloned());
        let source = list
            .sanitize()
            .map_err(|e| Error::new("backup source", e))?;
        let snap = repo
            .backup(&opts, &source, snap)
            .map_err(|e| Error::new("storing the backup", e))?;
        listed(&snap).ok_or_else(|| Error::other("the new snapshot is not cove's".into()))
    }

    /// Restores the whole tree of backup `id` under `dest` (made if
    /// missing), after [`Store::check`]: a damaged backup is refused before
    /// anything is written. Ownership and modes are restored as stored
    /// (by name, as restic does). Returns the snapshot's paths: where each
    /// source now is under `dest` (`/<service>.<method>` for one directory).
    pub fn restore_tree(&self, id: &str, dest: &Path) -> Result<Vec<String>> {
        self.check(id)?;
        let repo = self.open()?;
        let snap = self.snapshot(&repo, id)?;
        let repo = repo
            .to_indexed()
            .map_err(|e| Error::new("reading the repository's index", e))?;
        let node = repo
            .node_from_snapshot_and_path(&snap, "")
            .map_err(|e| Error::new("reading the backup's tree", e))?;
        let ls = repo
            .ls(&node, &LsOptions::default())
            .map_err(|e| Error::new("listing the backup's tree", e))?;
        let d = dest
            .to_str()
            .ok_or_else(|| Error::other(format!("{}: not a UTF-8 path", dest.display())))?;
        let dest_dir = LocalDestination::new(d, true, false)
            .map_err(|e| Error::new(&format!("restore destination {d}"), e))?;
        let opts = RestoreOptions::default();
        let plan = repo
            .prepare_restore(&opts, ls.clone(), &dest_dir, false)
            .map_err(|e| Error::new("planning the restore", e))?;
        repo.restore(plan, &opts, ls, &dest_dir)
            .map_err(|e| Error::new(&format!("restoring into {d}"), e))?;
        Ok(snap.paths.iter().map(ToString::to_string).collect())
    }
}
