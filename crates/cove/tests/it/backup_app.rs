//! What every backup test's app has: its own identity and secrets file
//! (`cove secrets init`), up, and `cove` run in it with that identity.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::daemon::{App, Out, run_bounded};

pub struct BackupApp {
    pub app: App,
    pub identity: PathBuf,
    _id_dir: tempfile::TempDir,
}

impl BackupApp {
    /// `yaml` as compose.yaml, a secrets file for a new identity, `cove up -d`.
    pub fn new(yaml: &str) -> BackupApp {
        let id_dir = tempfile::tempdir().unwrap();
        let identity = id_dir.path().join("identity.txt");
        let app = App::with_env(yaml, &[("COVE_IDENTITY", &identity)]);
        let f = BackupApp {
            app,
            identity,
            _id_dir: id_dir,
        };
        f.ok(&["secrets", "init"]);
        f.ok(&["up", "-d"]);
        f
    }

    pub fn dir(&self) -> &Path {
        self.app.dir()
    }

    /// `cove ARGS` in the app's directory, with its identity (bounded).
    pub fn cove(&self, args: &[&str]) -> Out {
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .current_dir(self.dir())
                .args(args)
                .env("NO_COLOR", "1")
                .env("COVE_IDENTITY", &self.identity)
                .stdin(Stdio::null()),
            600,
        )
    }

    /// [`BackupApp::cove`], which must exit 0.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.cove(args);
        assert_eq!(out.code, Some(0), "cove {args:?}: {out}");
        out
    }

    /// `sh -c SCRIPT` beside the replica of `service` (its environment).
    pub fn sh(&self, service: &str, script: &str) -> String {
        self.ok(&["exec", service, "sh", "-c", script]).stdout
    }
}

impl BackupApp {
    /// The default (`local`) repository.
    pub fn repo(&self) -> PathBuf {
        self.dir().join(".cove/backups")
    }

    /// The repositories' password, from the secrets file.
    pub fn repo_password(&self) -> String {
        self.ok(&["secrets", "get", "COVE_BACKUP_PASSWORD"])
            .stdout
            .trim_end()
            .to_string()
    }

    /// Every pack of the local repository with one byte flipped (which
    /// packs hold the newest backup is rustic's business): their file names.
    pub fn flip_a_byte(&self) -> Vec<String> {
        let mut names = Vec::new();
        for sub in fs_err::read_dir(self.repo().join("data"))
            .unwrap()
            .flatten()
        {
            for f in fs_err::read_dir(sub.path()).unwrap().flatten() {
                let pack = f.path();
                let mut bytes = fs_err::read(&pack).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                let mut perm = fs_err::metadata(&pack).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perm.set_readonly(false);
                fs_err::set_permissions(&pack, perm).unwrap();
                fs_err::write(&pack, bytes).unwrap();
                names.push(pack.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        names
    }
}

/// Debian's restic on `repo` (bounded: `secs`).
pub fn restic(repo: &Path, password: &str, args: &[&str], secs: u64) -> Out {
    let pwfile = tempfile::NamedTempFile::new().unwrap();
    fs_err::write(pwfile.path(), password).unwrap();
    run_bounded(
        Command::new("restic")
            .arg("-r")
            .arg(repo)
            .arg("--password-file")
            .arg(pwfile.path())
            .arg("--no-cache")
            .args(args)
            .stdin(Stdio::null()),
        secs,
    )
}

/// `psql -c SQL` beside the replica of the service `pg`, as its user in
/// its database.
pub fn psql(f: &BackupApp, sql: &str) -> String {
    f.sh(
        "pg",
        &format!(
            "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -h \"$HOST\" -p \"$PORT\" -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -tA -v ON_ERROR_STOP=1 -c \"{sql}\""
        ),
    )
}

/// Count and md5 of the ordered rows of the tables `items` and `notes`.
pub fn pg_checksums(f: &BackupApp) -> String {
    psql(
        f,
        "SELECT (SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM items t) || ' ' || (SELECT count(*) || ':' || md5(string_agg(u::text, ',' ORDER BY id)) FROM notes u)",
    )
}
