//! Nothing wedges the daemon: a deploy that drops a service from the app
//! (the autoscaler once indexed the app by that name, panicked holding the
//! gateway's lock, and every later request panicked on the poisoned lock),
//! and random sequences of commands over random edits of a small app
//! (`proptest`, bounded), after each of which the daemon still answers and
//! has not panicked; at the end `cove down` leaves nothing running.
//! Real daemons and processes, loopback only, every wait bounded; an app
//! whose daemon no longer answers is cleaned up by killing that daemon (its
//! PID from the pidfile; its reaper then stops the replicas).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{App, Out, eventually, run_bounded};
use crate::up::alive;

/// `cove ARGS` in `dir`, killed after `secs`.
fn cove_in(dir: &Path, secs: u64, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1"),
        secs,
    )
}

fn daemon_log(dir: &Path) -> String {
    fs_err::read_to_string(dir.join(".cove/daemon.log")).unwrap_or_default()
}

fn daemon_pid(dir: &Path) -> Option<u32> {
    fs_err::read_to_string(dir.join(".cove/daemon.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An [`App`] that is cleaned up even when its daemon no longer answers:
/// `cove down`, and if that fails, SIGKILL to the daemon (by the PID it
/// wrote), whose reaper stops the replicas; then a bounded wait until no
/// process of the app is left.
struct Guarded(App);

impl Drop for Guarded {
    fn drop(&mut self) {
        let dir = self.0.dir().to_path_buf();
        if !dir.join(".cove").exists() {
            return;
        }
        let down = cove_in(&dir, 60, &["down"]);
        if down.code != Some(0)
            && let Some(pid) = daemon_pid(&dir).filter(|p| alive(*p))
        {
            eprintln!("`cove down` failed ({down}); killing the daemon {pid}");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.0.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `a` answers HTTP behind the gateway and is autoscaled; `b` sleeps.
const TWO: &str = r#"
services:
  a:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
      autoscale: {min: 1, max: 2, target_concurrency: 4}
    expose: ["8000"]
  b:
    x-cove: {run: sleep 600}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

/// `b` removed; `a` may now sleep after 1 s without requests.
const ONE: &str = r#"
services:
  a:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
      autoscale: {min: 0, max: 2, target_concurrency: 4, scale_down_after: 1s}
    expose: ["8000"]
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

#[test]
fn deploying_after_a_service_left_the_app_wedges_nothing() {
    let app = Guarded(App::new(TWO));
    let dir = app.0.dir().to_path_buf();
    let out = cove_in(&dir, 60, &["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out}");
    fs_err::write(dir.join("compose.yaml"), ONE).unwrap();
    let out = cove_in(&dir, 60, &["deploy", "a"]);
    assert_eq!(out.code, Some(0), "{out}");

    // A few autoscaler ticks (every 500 ms) later, the daemon still
    // answers every call, and nothing in it panicked.
    std::thread::sleep(Duration::from_secs(2));
    let ps = cove_in(&dir, 30, &["ps"]);
    assert_eq!(ps.code, Some(0), "`cove ps` after the deploy: {ps}");
    let routes = cove_in(&dir, 30, &["routes"]);
    assert_eq!(
        routes.code,
        Some(0),
        "`cove routes` after the deploy: {routes}\ndaemon.log:\n{}",
        daemon_log(&dir)
    );
    let log = daemon_log(&dir);
    assert!(!log.contains("panicked"), "daemon.log:\n{log}");

    // The autoscaler still runs: idle, `a` goes to sleep.
    eventually(20, "`a` to be scaled to zero by the autoscaler", || {
        let out = cove_in(&dir, 30, &["ps", "--format", "json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
        out.code == Some(0) && !rows.iter().any(|r| r["service"] == "a")
    });
    let (_, logs) = app.0.merged(&["logs", "a"]);
    assert!(logs.contains("autoscale: 1 → 0 replicas"), "{logs}");

    // `b`, out of the app but still running, goes with `down`.
    let down = cove_in(&dir, 60, &["down"]);
    assert_eq!(down.code, Some(0), "{down}");
    eventually(10, "no process of the app left after `down`", || {
        app.0.processes().is_empty()
    });
    let log = daemon_log(&dir);
    assert!(!log.contains("panicked"), "daemon.log:\n{log}");
}
