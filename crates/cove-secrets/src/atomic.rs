//! Replacing a file all at once: write a temporary file in the same
//! directory, flush it to disk, rename it over the target. A save that fails
//! at any step leaves the old file as it was and no temporary file behind.

use std::fs::Permissions;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Whether an existing file at the target may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replace {
    Yes,
    /// Fail with [`io::ErrorKind::AlreadyExists`] instead (race-free: the
    /// rename itself refuses).
    No,
}

/// Writes `contents` to `path` atomically, the file ending with `mode`.
pub(crate) fn write(path: &Path, contents: &[u8], mode: u32, replace: Replace) -> io::Result<()> {
    write_with(path, mode, replace, |f| f.write_all(contents))
}

/// [`write`], with the contents written by `fill` (tests inject failures).
pub(crate) fn write_with(
    path: &Path,
    mode: u32,
    replace: Replace,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let context = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("failed to write `{}`: {e}", path.display()),
        )
    };
    // Created 0600 whatever the final mode: a secret never sits in a
    // world-readable temporary file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".cove-")
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(context)?;
    fill(tmp.as_file_mut()).map_err(context)?;
    let file = tmp.as_file();
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(context)?;
    file.sync_all().map_err(context)?;
    match replace {
        Replace::Yes => tmp.persist(path),
        Replace::No => tmp.persist_noclobber(path),
    }
    .map_err(|e| context(e.error))?;
    // Make the rename itself durable; not every filesystem allows it.
    if let Ok(d) = fs_err::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"one", 0o644, Replace::Yes).unwrap();
        write(&p, b"two", 0o644, Replace::Yes).unwrap();
        assert_eq!(fs_err::read_to_string(&p).unwrap(), "two");
        let mode = fs_err::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(names(dir.path()), ["f"]);
    }

    #[test]
    fn no_replace_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"one", 0o600, Replace::No).unwrap();
        let e = write(&p, b"two", 0o600, Replace::No).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
        assert_eq!(fs_err::read_to_string(&p).unwrap(), "one");
        assert_eq!(names(dir.path()), ["f"]);
    }

    #[test]
    fn failure_midway_leaves_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"old", 0o644, Replace::Yes).unwrap();
        let e = write_with(&p, 0o644, Replace::Yes, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(fs_err::read_to_string(&p).unwrap(), "old");
        assert_eq!(names(dir.path()), ["f"]);
    }
}
