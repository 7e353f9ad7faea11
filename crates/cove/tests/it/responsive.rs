//! The daemon never waits on itself: while a command waits on a process
//! (a stop within a long grace period), `ps`, `status` and `history`
//! answer at once, and show the replica as `stopping`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{App, eventually};

#[test]
fn ps_answers_while_a_stop_waits_for_its_grace_period() {
    let app = App::new(
        r#"
services:
  stubborn:
    x-cove:
      run: sh -c 'trap "" TERM; while true; do sleep 1; done'
    stop_grace_period: 25s
  other:
    x-cove: {run: sleep 600}
"#,
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    // Ignores SIGTERM: this stop takes its whole grace period.
    let mut stop = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(app.dir())
        .args(["stop", "stubborn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let mut stopping = false;
    eventually(20, "ps shows stubborn stopping", || {
        let rows = app.ps();
        stopping = rows
            .iter()
            .any(|r| r["service"] == "stubborn" && r["state"] == "stopping");
        stopping
    });
    for args in [&["ps"][..], &["history", "stubborn"]] {
        let (code, out) = app.merged(args);
        assert_eq!(code, Some(0), "cove {args:?}: {out}");
    }
    let waited = began.elapsed();
    assert!(
        stop.try_wait().unwrap().is_none(),
        "the stop ended before ps could show it in progress"
    );
    assert!(
        waited < Duration::from_secs(20),
        "ps waited for the stop ({waited:?})"
    );
    let other = app
        .ps()
        .into_iter()
        .find(|r| r["service"] == "other")
        .unwrap();
    assert_eq!(other["state"], "running");
    // The stop still ends, by SIGKILL after the grace period.
    let status = stop.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rows = app.ps();
    assert!(
        rows.iter()
            .any(|r| r["service"] == "stubborn" && r["state"] == "stopped"),
        "{rows:?}"
    );
}
