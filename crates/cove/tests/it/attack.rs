//! Helpers for the shared-host tests: attacks run as an unprivileged user
//! (`setpriv` to uid/gid 65534, no supplementary groups) against what a
//! root `cove` made. They need root; under CI (`CI=true`) a non-root run
//! fails, elsewhere it says loudly that it skipped.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// The unprivileged user the attacks run as (`nobody` on Debian).
pub const NOBODY: u32 = 65534;

/// Whether this test can run its attack (it runs as root). Panics under CI
/// when it cannot; prints why elsewhere.
pub fn as_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "{test}: the shared-host tests run as root in CI");
    eprintln!("SKIPPED {test}: needs root (the attack runs as uid {NOBODY} against a root cove)");
    false
}

/// A command that runs `prog` as uid/gid 65534 with no supplementary
/// groups (`setpriv`); its environment is the caller's until changed.
pub fn nobody(prog: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        "--".into(),
    ])
    .arg(prog);
    cmd
}

/// `sh -c SCRIPT` as uid/gid 65534 with no supplementary groups, in `dir`.
pub fn as_nobody(dir: &Path, script: &str) -> Output {
    nobody("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .expect("setpriv runs")
}

/// Both streams of an attack's output, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
