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
