//! The daemon never waits on itself: while a command waits on a process
//! (a stop within a 30 s grace period), `ps`, `status`, `events` and
//! `history` answer at once, and show the replica as `stopping`. The
//! bar is the daemon's answer (the API call, not the CLI's start): `ps`
//! in under 10 ms.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cove_daemon::api::{DaemonStatus, Event, History, Replica, ReplicaState};
use cove_daemon::client::Client;

use crate::daemon::{App, eventually};

/// The issue's bar for `ps` during a slow stop.
const PS_BAR: Duration = Duration::from_millis(10);

/// How long each of `n` calls of `GET path` took, fastest first (each on
/// a connection of its own, as the CLI makes them).
fn timed<T: serde::de::DeserializeOwned>(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    path: &str,
    n: usize,
) -> (Vec<Duration>, T) {
    let mut took = Vec::new();
    let mut last = None;
    for _ in 0..n {
        let began = Instant::now();
        let answer: T = rt
            .block_on(client.get(path))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        took.push(began.elapsed());
        last = Some(answer);
    }
    took.sort();
    (took, last.unwrap())
}

#[test]
fn ps_answers_while_a_stop_waits_for_its_grace_period() {
    let app = App::new(
        r#"
services:
  stubborn:
    x-cove:
      run: sh -c 'trap "" TERM; while true; do sleep 1; done'
    stop_grace_period: 30s
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
    // The daemon's answers themselves, as the API gives them.
    let state = fs_err::canonicalize(app.dir().join(".cove")).unwrap();
    let client = Client::new(
        cove_daemon::Paths::new(&state),
        state.display().to_string(),
        false,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (took, rows): (_, Vec<Replica>) = timed(&rt, &client, "/v1/ps", 21);
    let median = took[took.len() / 2];
    eprintln!("ps during the stop, fastest first: {took:?}");
    assert!(
        median < PS_BAR,
        "ps took {median:?} (median) during the stop; all: {took:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.service == "stubborn" && r.state == ReplicaState::Stopping),
        "{rows:?}"
    );
    for path in [
        "/v1/status",
        "/v1/events?after=0",
        "/v1/history?service=stubborn",
    ] {
        let took = match path {
            "/v1/status" => timed::<DaemonStatus>(&rt, &client, path, 5).0,
            "/v1/history?service=stubborn" => timed::<History>(&rt, &client, path, 5).0,
            _ => timed::<Vec<Event>>(&rt, &client, path, 5).0,
        };
        assert!(
            took[took.len() / 2] < Duration::from_millis(100),
            "{path} waited during the stop: {took:?}"
        );
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
