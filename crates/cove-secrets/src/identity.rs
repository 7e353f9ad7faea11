//! The private key that opens secrets files: an age x25519 identity, kept in
//! a file of its own (mode 0600) outside the repository.
//!
//! The file is the one `age-keygen` writes, so either tool reads the other's:
//! `#` comment lines (one names the public key) and one
//! `AGE-SECRET-KEY-1…` line.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::atomic::{self, Replace};
use crate::error::{Error, Result};

/// An age x25519 identity (private key), and where it was loaded from or
/// saved to. Debug shows the public key and the path only.
#[derive(Clone)]
pub struct Identity {
    key: age::x25519::Identity,
    path: Option<PathBuf>,
}

impl Identity {
    /// A new random identity (from the operating system's generator).
    pub fn generate() -> Identity {
        Identity {
            key: age::x25519::Identity::generate(),
            path: None,
        }
    }

    /// Reads the identity file at `path`.
    pub fn load(path: &Path) -> Result<Identity> {
        let text = match fs_err::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::IdentityMissing { path: path.into() });
            }
            Err(e) => return Err(e.into()),
        };
        let malformed = |line: usize, reason: &str| Error::IdentityMalformed {
            path: path.into(),
            line,
            reason: reason.into(),
        };
        let text = std::str::from_utf8(&text).map_err(|_| malformed(1, "not UTF-8 text"))?;
        let mut found = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if found.is_some() {
                return Err(malformed(
                    i + 1,
                    "more than one key; cove reads a file with exactly one",
                ));
            }
            if !line.starts_with("AGE-SECRET-KEY-1") {
                return Err(malformed(
                    i + 1,
                    "expected a line `AGE-SECRET-KEY-1…` (an x25519 identity)",
                ));
            }
            let key = age::x25519::Identity::from_str(line)
                .map_err(|reason| malformed(i + 1, &format!("bad key ({reason})")))?;
            found = Some(key);
        }
        let key = found.ok_or_else(|| malformed(1, "no `AGE-SECRET-KEY-1…` line"))?;
        Ok(Identity {
            key,
            path: Some(path.into()),
        })
    }

    /// Writes the identity to `path` with mode 0600, creating missing parent
    /// directories (mode 0700). The write is atomic; an existing file is
    /// replaced only when `overwrite` is true ([`Error::IdentityExists`]
    /// otherwise). Afterwards [`path`](Self::path) is `path`.
    pub fn save(&mut self, path: &Path, overwrite: bool) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            use std::os::unix::fs::PermissionsExt;
            fs_err::create_dir_all(dir)?;
            fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let secret = self.key.to_string();
        let text = Zeroizing::new(format!(
            "# cove identity: the private key that opens cove secrets files. Keep it private;\n\
             # never commit it. Its recipient (public key) is safe to share.\n\
             # public key: {}\n{}\n",
            self.recipient(),
            secret.expose_secret()
        ));
        let replace = if overwrite { Replace::Yes } else { Replace::No };
        atomic::write(path, text.as_bytes(), 0o600, replace).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists && !overwrite {
                Error::IdentityExists { path: path.into() }
            } else {
                e.into()
            }
        })?;
        self.path = Some(path.into());
        Ok(())
    }

    /// The public key, `age1…`: what a secrets file lists as a recipient.
    pub fn recipient(&self) -> String {
        self.key.to_public().to_string()
    }

    /// The file this identity was loaded from or last saved to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub(crate) fn age(&self) -> &age::x25519::Identity {
        &self.key
    }

    /// "the identity at PATH", for error messages.
    pub(crate) fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("the identity at {}", p.display()),
            None => format!("the identity {} (not saved)", self.recipient()),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("recipient", &self.recipient())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Where the identity lives: `$COVE_IDENTITY` if set, else
/// `$XDG_CONFIG_HOME/cove/identity.txt`, else `~/.config/cove/identity.txt`.
pub fn default_identity_path() -> Result<PathBuf> {
    identity_path_from(|k| std::env::var_os(k))
}

fn identity_path_from(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(p) = set("COVE_IDENTITY") {
        return Ok(p.into());
    }
    // The XDG spec says to ignore relative paths.
    let config = match set("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(set("HOME").ok_or(Error::NoIdentityPath)?).join(".config"),
    };
    Ok(config.join("cove").join("identity.txt"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/cove/identity.txt");
        let mut id = Identity::generate();
        id.save(&path, false).unwrap();
        assert_eq!(id.path(), Some(path.as_path()));
        let mode = fs_err::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs_err::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let back = Identity::load(&path).unwrap();
        assert_eq!(back.recipient(), id.recipient());
        assert!(id.recipient().starts_with("age1"));
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("# public key: {}", id.recipient())));
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.txt");
        let mut first = Identity::generate();
        first.save(&path, false).unwrap();
        let mut second = Identity::generate();
        let e = second.save(&path, false).unwrap_err();
        assert!(matches!(e, Error::IdentityExists { .. }), "{e}");
        assert_eq!(
            Identity::load(&path).unwrap().recipient(),
            first.recipient()
        );
        second.save(&path, true).unwrap();
        assert_eq!(
            Identity::load(&path).unwrap().recipient(),
            second.recipient()
        );
    }

    #[test]
    fn missing_and_malformed_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt");
        let e = Identity::load(&missing).unwrap_err();
        assert!(matches!(e, Error::IdentityMissing { .. }));
        assert!(e.to_string().contains("nope.txt"), "{e}");
        assert!(e.hint().is_some());

        let bad = dir.path().join("bad.txt");
        for (text, line) in [
            ("", 1),
            ("# only a comment\n", 1),
            ("# c\nhello\n", 2),
            ("AGE-SECRET-KEY-1QQQQ\n", 1),
            ("\u{0}\u{ff}", 1),
        ] {
            fs_err::write(&bad, text).unwrap();
            let e = Identity::load(&bad).unwrap_err();
            let Error::IdentityMalformed { line: l, .. } = e else {
                panic!("{e}")
            };
            assert_eq!(l, line, "{text:?}");
            assert!(e.to_string().contains("bad.txt"), "{e}");
        }
        // Two keys: ambiguous, refused; the message does not echo them.
        let a = Identity::generate().key.to_string();
        let b = Identity::generate().key.to_string();
        let two = format!("{}\n{}\n", a.expose_secret(), b.expose_secret());
        fs_err::write(&bad, &two).unwrap();
        let e = Identity::load(&bad).unwrap_err();
        assert!(e.to_string().contains("bad.txt:2"), "{e}");
        assert!(!e.to_string().contains("AGE-SECRET-KEY"), "{e}");
    }

    #[test]
    fn reads_age_keygen_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        let id = Identity::generate();
        let text = format!(
            "# created: 2026-01-01T00:00:00Z\n# public key: {}\n{}\n",
            id.recipient(),
            id.key.to_string().expose_secret()
        );
        fs_err::write(&path, text).unwrap();
        assert_eq!(Identity::load(&path).unwrap().recipient(), id.recipient());
    }

    #[test]
    fn debug_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let mut id = Identity::generate();
        id.save(&dir.path().join("id.txt"), false).unwrap();
        let secret = id.key.to_string();
        let debug = format!("{id:?} {:?}", Identity::load(id.path().unwrap()).unwrap());
        assert!(!debug.contains(secret.expose_secret()), "{debug}");
        assert!(!debug.to_uppercase().contains("AGE-SECRET-KEY"), "{debug}");
        assert!(debug.contains(&id.recipient()), "{debug}");
    }

    #[test]
    fn default_path_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let p = |pairs| identity_path_from(env(pairs)).ok();
        assert_eq!(
            p(&[("COVE_IDENTITY", "/k"), ("HOME", "/h")]),
            Some("/k".into())
        );
        assert_eq!(
            p(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            Some("/x/cove/identity.txt".into())
        );
        assert_eq!(
            p(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]),
            Some("/h/.config/cove/identity.txt".into())
        );
        assert_eq!(
            p(&[("COVE_IDENTITY", ""), ("HOME", "/h")]),
            Some("/h/.config/cove/identity.txt".into())
        );
        assert!(matches!(
            identity_path_from(env(&[])),
            Err(Error::NoIdentityPath)
        ));
    }
}
