//! Private places on a shared host: directories only cove's user may
//! enter (0700), files only it may read (0600), made and checked without
//! following anything another user could have planted.
//!
//! - [`make_dir`] / [`check_dir`]: a state directory (or one in it, such as
//!   `logs/`): made 0700, or, when it is there, refused if it is a symbolic
//!   link, not a directory, another user's, or writable by group or others;
//!   else made 0700.
//! - [`Dir`]: a chain of directories walked from a trusted anchor (`/run`,
//!   `$XDG_RUNTIME_DIR`, `/dev/shm`) with `openat(O_NOFOLLOW|O_DIRECTORY)`
//!   from the handle of the one above, each one checked (a real directory,
//!   ours) and `fchmod`ed 0700 through its handle; files made in it with
//!   `O_EXCL|O_NOFOLLOW`; trees removed through handles, never following a
//!   link. Nothing is removed before the chain to it is verified.
//! - [`append_file`], [`rw_file`], [`new_file`]: the files cove keeps
//!   (logs, the store, pidfiles), 0600, opened with `O_NOFOLLOW`.
//!
//! Every error names the path, says what is wrong, and gives a hint.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Mode of every directory cove keeps private.
pub const DIR_MODE: u32 = 0o700;

/// Mode of every file cove writes in them.
pub const FILE_MODE: u32 = 0o600;

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `uid 65534 (nobody)`.
pub fn describe_uid(uid: u32) -> String {
    let name = fs_err::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("uid {uid} ({n})"),
        None => format!("uid {uid}"),
    }
}

/// A refusal: `PATH WHAT; hint: HINT`, as an I/O error of kind
/// `PermissionDenied`.
fn refused(path: &Path, what: &str, hint: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {what}; hint: {hint}", path.display()),
    )
}

fn os_error(path: &Path, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn foreign(path: &Path, uid: u32, hint: &str) -> io::Error {
    refused(
        path,
        &format!(
            "belongs to {}, not to {} that cove runs as: cove does not use a place another user controls (it may have been planted there)",
            describe_uid(uid),
            describe_uid(me())
        ),
        hint,
    )
}

/// What `path` is, when it is not the directory expected (for messages).
fn what_is(path: &Path) -> &'static str {
    match fs_err::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            "is a symbolic link: cove does not follow links where it keeps private files (one may have been planted to redirect them)"
        }
        Ok(_) => "is not a directory",
        Err(_) => "cannot be opened as a directory",
    }
}

/// Makes `dir` (and what is missing above it, as usual) with mode 0700, or
/// checks the one that is there: refused when it is a symbolic link, not a
/// directory, owned by another user, or writable by group or others; then
/// made 0700 (so what is in it is private too).
pub fn make_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent)?;
    }
    match rustix::fs::mkdir(dir, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(os_error(dir, e)),
    }
    check_dir(dir)
}

/// [`make_dir`]'s checks of a directory that is there (none when it is
/// not).
pub fn check_dir(dir: &Path) -> io::Result<()> {
    let hint = format!(
        "cove keeps its state only in a directory of its own user; remove {} (check what is in it first) or set `x-cove: {{state_dir: ...}}` to a private directory",
        dir.display()
    );
    let fd = match rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::LOOP | Errno::NOTDIR) => return Err(refused(dir, what_is(dir), &hint)),
        Err(e) => return Err(os_error(dir, e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error(dir, e))?;
    if st.st_uid != me() {
        let hint = format!(
            "if {} ran this project with cove, run cove as that user; otherwise {}",
            describe_uid(st.st_uid),
            hint.trim_start_matches("cove keeps its state only in a directory of its own user; ")
        );
        return Err(foreign(dir, st.st_uid, &hint));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(
            dir,
            &format!(
                "is writable by {} (mode {mode:04o}): another user could have put a state there that cove would act on",
                if mode & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                }
            ),
            &format!(
                "if only you could write in it, make it private with `chmod 700 {}` (and check what is in it); else remove it",
                dir.display()
            ),
        ));
    }
    if mode != DIR_MODE {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(DIR_MODE)).map_err(|e| os_error(dir, e))?;
    }
    Ok(())
}

/// Opens a file cove keeps, `flags` added to `O_NOFOLLOW|O_CLOEXEC`; made
/// 0600 when new, made 0600 when it was not; refused when it is a link, not
/// a regular file, or another user's.
fn private_file(path: &Path, flags: OFlags) -> io::Result<fs_err::File> {
    let hint = format!(
        "remove {} (cove makes it again); its directory should be private (0700) to cove's user",
        path.display()
    );
    let fd = match rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(FILE_MODE),
    ) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => {
            return Err(refused(
                path,
                "is a symbolic link: cove does not write through links (one may have been planted to make it overwrite another file)",
                &hint,
            ));
        }
        Err(e) => return Err(os_error(path, e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(refused(path, "is not a regular file", &hint));
    }
    if st.st_uid != me() {
        return Err(foreign(path, st.st_uid, &hint));
    }
    if st.st_mode & 0o7777 != FILE_MODE {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE)).map_err(|e| os_error(path, e))?;
    }
    Ok(fs_err::File::from_parts(std::fs::File::from(fd), path))
}

/// `path` opened to append (a log), made 0600 when new.
pub fn append_file(path: &Path) -> io::Result<fs_err::File> {
    private_file(path, OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE)
}

/// `path` opened to read and write (the store), made 0600 when new.
pub fn rw_file(path: &Path) -> io::Result<fs_err::File> {
    private_file(path, OFlags::RDWR | OFlags::CREATE)
}

/// A new file at `path` (`O_EXCL`: fails when anything is there), 0600.
pub fn new_file(path: &Path) -> io::Result<fs_err::File> {
    private_file(path, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL)
}

/// Writes `bytes` to `path` whole or not at all: through a new temporary
/// file beside it (`PATH.tmp`, 0600, `O_EXCL|O_NOFOLLOW`, one left by a
/// crash removed first), synced, then renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    match fs_err::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = new_file(&tmp)?;
    io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    fs_err::rename(&tmp, path)
}

/// An open directory, checked, and its path (for messages).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A directory cove does not make (`/run`, `/dev/shm`,
    /// `$XDG_RUNTIME_DIR`): opened as it is named (links followed: it is
    /// the system's); refused when a user other than root and cove's owns
    /// it, or when others may write in it without the sticky bit (which
    /// keeps them from renaming or removing what cove makes there).
    pub fn anchor(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| os_error(path, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| os_error(path, e))?;
        let hint = "set XDG_RUNTIME_DIR to a directory of your own (mode 0700)";
        if st.st_uid != 0 && st.st_uid != me() {
            return Err(foreign(path, st.st_uid, hint));
        }
        if st.st_mode & 0o022 != 0 && st.st_mode & 0o1000 == 0 {
            return Err(refused(
                path,
                &format!(
                    "is writable by others without the sticky bit (mode {:04o})",
                    st.st_mode & 0o7777
                ),
                hint,
            ));
        }
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The private directory `name` in this one: made 0700 when missing
    /// (with `create`; else `None`), opened without following a link, and
    /// refused when it is a link, not a directory, or another user's; made
    /// 0700 through its handle.
    pub fn child(&self, name: &OsStr, create: bool) -> io::Result<Option<Dir>> {
        let path = self.path.join(name);
        if create {
            match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(os_error(&path, e)),
            }
        }
        let hint = format!(
            "remove it ({}) if nothing of yours is in it, or set XDG_RUNTIME_DIR to a directory of your own (mode 0700)",
            path.display()
        );
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !create => return Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(refused(&path, what_is(&path), &hint));
            }
            Err(e) => return Err(os_error(&path, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| os_error(&path, e))?;
        if st.st_uid != me() {
            return Err(foreign(&path, st.st_uid, &hint));
        }
        if st.st_mode & 0o7777 != DIR_MODE {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(DIR_MODE))
                .map_err(|e| os_error(&path, e))?;
        }
        Ok(Some(Dir { fd, path }))
    }

    /// The chain `rel` (plain names only) below this directory, each one a
    /// [`child`](Self::child); `None` when a part is missing and not
    /// `create`. An empty `rel`: this directory again.
    pub fn chain(&self, rel: &Path, create: bool) -> io::Result<Option<Dir>> {
        let mut current: Option<Dir> = None;
        for c in rel.components() {
            let here = current.as_ref().unwrap_or(self);
            let Component::Normal(name) = c else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: `{}` is not a plain name",
                        self.path.join(rel).display(),
                        c.as_os_str().to_string_lossy()
                    ),
                ));
            };
            match here.child(name, create)? {
                Some(d) => current = Some(d),
                None => return Ok(None),
            }
        }
        match current {
            Some(d) => Ok(Some(d)),
            None => Ok(Some(Dir {
                fd: self.fd.try_clone()?,
                path: self.path.clone(),
            })),
        }
    }

    /// A new file `name` in this directory (`O_CREAT|O_EXCL|O_NOFOLLOW`),
    /// mode `mode` exactly.
    pub fn new_file(&self, name: &OsStr, mode: u32) -> io::Result<fs_err::File> {
        let path = self.path.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map_err(|e| os_error(&path, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| os_error(&path, e))?;
        Ok(fs_err::File::from_parts(std::fs::File::from(fd), path))
    }

    /// Removes `name` from this directory, whatever it is, if it is there:
    /// a directory with everything in it, walked through handles; a link
    /// is removed, never followed.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        remove_at(self.fd.as_fd(), name, &self.path.join(name))
    }
}

fn remove_at(parent: std::os::fd::BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<()> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(os_error(path, e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(os_error(path, e)),
        };
    }
    let fd = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(os_error(path, e)),
    };
    // A directory left read-only: its entries could not be removed.
    if st.st_uid == me() && st.st_mode & 0o700 != 0o700 {
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(DIR_MODE));
    }
    let mut names: Vec<OsString> = Vec::new();
    let listing = rustix::fs::Dir::read_from(&fd).map_err(|e| os_error(path, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| os_error(path, e))?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        remove_at(fd.as_fd(), &n, &path.join(&n))?;
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(os_error(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        fs_err::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn state_dirs_are_made_private_and_links_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/.cove");
        make_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // One left readable by an older cove is made private.
        fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // Writable by others: refused, left as it is.
        fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = make_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("writable by everyone") && e.contains("hint:"),
            "{e}"
        );
        assert_eq!(mode(&dir), 0o777);
        // Writable by its group only: refused too, naming it, left as it is.
        fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = make_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("writable by its group")
                && e.contains("0770")
                && e.contains(&*dir.to_string_lossy())
                && e.contains("hint:"),
            "{e}"
        );
        assert_eq!(mode(&dir), 0o770);
        // A link, even to a directory of ours: refused.
        let link = tmp.path().join("b");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = make_dir(&link).unwrap_err().to_string();
        assert!(
            e.contains("symbolic link") && e.contains(&*link.to_string_lossy()),
            "{e}"
        );
        assert!(check_dir(&tmp.path().join("missing")).is_ok());
    }

    #[test]
    fn files_are_private_and_never_written_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("x.log");
        drop(append_file(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
        fs_err::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(append_file(&log).unwrap());
        assert_eq!(
            mode(&log),
            0o600,
            "an old world-readable log is made private"
        );
        assert!(new_file(&log).is_err(), "O_EXCL");
        let victim = tmp.path().join("victim");
        fs_err::write(&victim, "keep").unwrap();
        let link = tmp.path().join("y.log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = append_file(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link") && e.contains("hint:"), "{e}");
        assert_eq!(mode(&victim), 0o644);
        assert_eq!(fs_err::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn a_link_in_a_chain_is_refused_and_nothing_removed_through_it() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs_err::create_dir(&victim).unwrap();
        fs_err::write(victim.join("PG_VERSION"), "16").unwrap();
        fs_err::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let base = tmp.path().join("base");
        fs_err::create_dir_all(base.join("cove")).unwrap();
        std::os::unix::fs::symlink(&victim, base.join("cove/tag")).unwrap();
        let anchor = Dir::anchor(&base).unwrap();
        let e = anchor
            .chain(Path::new("cove/tag/web-1"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cove/tag") && e.contains("symbolic link"), "{e}");
        assert!(victim.join("PG_VERSION").is_file());
        assert_eq!(mode(&victim), 0o755, "not chmodded through the link");
        // Removing the link removes the link only.
        let cove = Dir::anchor(&base)
            .unwrap()
            .chain(Path::new("cove"), false)
            .unwrap()
            .unwrap();
        cove.remove(OsStr::new("tag")).unwrap();
        assert!(victim.join("PG_VERSION").is_file());
        assert!(fs_err::symlink_metadata(base.join("cove/tag")).is_err());
    }

    #[test]
    fn trees_are_removed_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs_err::create_dir(&victim).unwrap();
        fs_err::write(victim.join("f"), "x").unwrap();
        let root = Dir::anchor(tmp.path()).unwrap();
        let d = root.child(OsStr::new("d"), true).unwrap().unwrap();
        let sub = d.child(OsStr::new("sub"), true).unwrap().unwrap();
        drop(sub.new_file(OsStr::new("secret"), 0o400).unwrap());
        std::os::unix::fs::symlink(&victim, tmp.path().join("d/sub/link")).unwrap();
        assert_eq!(mode(&tmp.path().join("d/sub/secret")), 0o400);
        root.remove(OsStr::new("d")).unwrap();
        assert!(!tmp.path().join("d").exists());
        assert!(victim.join("f").is_file());
        root.remove(OsStr::new("d")).unwrap();
    }
}
