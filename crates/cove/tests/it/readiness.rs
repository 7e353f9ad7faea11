//! Issue "the first hour", "readiness is truthful": a replica without a
//! health check is ready once it has run `x-cove.ready_after` (default
//! 1 s) and accepts connections on its service's port. One that exits
//! sooner failed to start (`up -d`, `start`, `scale` and `deploy` say
//! so, with its exit code; a failed deploy leaves the old revision
//! serving); one that
//! runs but listens elsewhere is not ready, and the gateway says why at
//! once instead of holding requests. Real processes on loopback; every
//! wait is bounded; every app is brought down (`App`'s drop), even when a
//! test fails.

use std::time::{Duration, Instant};

use crate::daemon::{App, eventually};
use crate::gateway::{http, wait_for_targets};

#[test]
fn a_replica_that_exits_at_once_is_a_failed_start_not_running() {
    let app = App::new(
        r#"
services:
  crash:
    x-cove: {run: [python3, -c, "import sys; print('bye'); sys.exit(3)"]}
"#,
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(
        code,
        Some(0),
        "a program that exits 3 at once started?\n{out}"
    );
    assert!(
        out.contains("service `crash` did not start") && out.contains("code 3"),
        "names the service and its exit code:\n{out}"
    );
    assert!(out.contains("`cove logs crash`"), "hint:\n{out}");
    assert!(!out.contains("crash-1 running"), "{out}");
}

#[test]
fn an_exit_before_ready_after_is_a_failed_start_and_0s_is_ready_at_once() {
    // Runs 2 s, then exits 3: within a `ready_after` of 20 s, a failed
    // start (without the field, up -d would have called it running).
    let app = App::new(
        r#"
services:
  slow_crash:
    x-cove:
      run: [sh, -c, "sleep 2; exit 3"]
      ready_after: 20s
"#,
    );
    let started = Instant::now();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(code, Some(0), "exited 3 before ready_after:\n{out}");
    assert!(
        out.contains("service `slow_crash` did not start") && out.contains("code 3"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "failed when it exited, not at ready_after: {:?}",
        started.elapsed()
    );
    drop(app);

    // `0s`: ready as soon as it runs (no port to accept on), as before
    // the field: up -d returns while it still runs.
    let app = App::new(
        r#"
services:
  later:
    x-cove:
      run: [sh, -c, "sleep 30; exit 3"]
      ready_after: 0s
"#,
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("later-1 running"), "{out}");
    let ps = app.ps();
    assert_eq!(ps[0]["ready"], true, "{ps:?}");
    // Printed back in normal form by `cove config`.
    let (code, config) = app.merged(&["config"]);
    assert_eq!(code, Some(0), "{config}");
    assert!(config.contains("ready_after: 0s"), "{config}");
}

#[test]
fn up_d_waits_ready_after_before_calling_a_replica_running() {
    let app = App::new(
        r#"
services:
  sleeper:
    x-cove:
      run: [sleep, "300"]
      ready_after: 3s
"#,
    );
    let started = Instant::now();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "ready after {:?}, before its ready_after:\n{out}",
        started.elapsed()
    );
}

#[test]
fn a_replica_listening_on_another_port_is_not_ready_and_the_gateway_says_why_at_once() {
    let app = App::new(
        r#"
x-cove:
  gateway: {listen: "127.0.0.1:0"}
services:
  wrongport:
    expose: ["8000"]
    x-cove:
      run: [python3, -m, http.server, --bind, $$HOST, "8001"]
"#,
    );
    std::thread::scope(|s| {
        let up = s.spawn(|| {
            let started = Instant::now();
            (app.merged(&["up", "-d"]), started.elapsed())
        });
        eventually(60, "the replica refusing connections on :8000", || {
            app.ps().iter().any(|r| r["refusing"] == 8000)
        });
        let gw = wait_for_targets(&app, &[0]);
        let asked = Instant::now();
        let (status, _, body) = http(gw, "GET", "wrongport.localhost", "/", b"");
        let took = asked.elapsed();
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("`wrongport` is running but not accepting connections on :8000"),
            "{body}"
        );
        assert!(
            took < Duration::from_secs(10),
            "answered after {took:?}: held, not refused at once"
        );

        // kamal-proxy fails a deploy whose target never passes its check:
        // up -d fails, naming the service and the port.
        let ((code, out), waited) = up.join().unwrap();
        assert_ne!(code, Some(0), "{out}");
        assert!(
            out.contains("service `wrongport` is not ready")
                && out.contains("does not accept connections on :8000"),
            "{out}"
        );
        assert!(out.contains("`cove logs wrongport`"), "{out}");
        assert!(
            waited < Duration::from_secs(100),
            "gave up after {waited:?}, not at --wait-timeout's 300 s"
        );
    });
    let (_, ps) = app.merged(&["ps"]);
    assert!(ps.contains("not accepting connections on :8000"), "{ps}");
}

#[test]
fn a_ready_after_that_is_not_a_duration_is_refused_where_it_is_written() {
    let app = App::new(
        "services:\n  api:\n    x-cove:\n      run: [sleep, \"300\"]\n      ready_after: nonsense\n",
    );
    let (code, out) = app.merged(&["config"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ready_after"), "{out}");
    assert!(out.contains("not a valid duration"), "{out}");
    assert!(out.contains("compose.yaml:5:20"), "{out}");
}

#[test]
fn scale_waits_for_the_replicas_it_adds_and_names_one_that_does_not_start() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: [sh, -c, 'if [ "$$COVE_REPLICA" = 2 ]; then echo no config; sleep 0.3; exit 3; fi; exec sleep 300']
"#,
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["scale", "web=2"]);
    assert_ne!(code, Some(0), "replica 2 exits 3 at once:\n{out}");
    assert!(
        out.contains("service `web` did not start: web-2") && out.contains("code 3"),
        "{out}"
    );
    assert!(out.contains("`cove logs web`"), "{out}");
}

/// `deploy` waits for `ready_after` too: a new revision with no health
/// check whose program exits 3 at once is a failed deploy naming the
/// exit code, not "runs on every replica", and the old revision keeps
/// serving.
#[test]
fn a_deploy_whose_program_exits_at_once_fails_and_the_old_revision_serves() {
    let compose = |run: &str| {
        format!(
            r#"
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
services:
  web:
    expose: ["8000"]
    x-cove:
      run: {run}
"#
        )
    };
    let app = App::new(&compose(
        r#"[python3, -m, http.server, --bind, $$HOST, "8000"]"#,
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = wait_for_targets(&app, &[1]);
    let (status, _, body) = http(gw, "GET", "web.localhost", "/", b"");
    assert_eq!(status, 200, "{body}");
    let before = app.ps();
    assert_eq!(before.len(), 1, "{before:?}");

    fs_err::write(
        app.dir().join("compose.yaml"),
        compose(r#"[sh, -c, "echo no config; exit 3"]"#),
    )
    .unwrap();
    let (code, out) = app.merged(&["deploy"]);
    assert_ne!(
        code,
        Some(0),
        "a program that exits 3 at once deployed?\n{out}"
    );
    assert!(out.contains("code 3"), "names the exit code:\n{out}");
    assert!(!out.contains("runs on every replica"), "{out}");

    // The old replica, as it was, and it answers.
    let ps = app.ps();
    let running: Vec<_> = ps
        .iter()
        .filter(|r| r["state"] == "running" && r["retiring"] == false)
        .collect();
    assert_eq!(running.len(), 1, "{ps:?}");
    assert_eq!(running[0]["revision"], before[0]["revision"], "{ps:?}");
    assert_eq!(running[0]["pid"], before[0]["pid"], "{ps:?}");
    let (status, _, body) = http(gw, "GET", "web.localhost", "/", b"");
    assert_eq!(status, 200, "the old revision no longer serves: {body}");
}

/// `start` waits for `ready_after` too: a stopped service whose program
/// now exits within its first second (0.3 s, after it could have been
/// called running) fails to start, with the reason.
#[test]
fn start_of_a_program_that_exits_in_its_first_second_fails_with_the_reason() {
    let app = App::new("services: {}\n");
    let broken = app.dir().join("broken");
    fs_err::write(
        app.dir().join("compose.yaml"),
        format!(
            r#"
services:
  worker:
    x-cove:
      run: [sh, -c, 'if [ -e "{}" ]; then echo no config; sleep 0.3; exit 3; fi; exec sleep 300']
"#,
            broken.display()
        ),
    )
    .unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["stop", "worker"]);
    assert_eq!(code, Some(0), "{out}");
    fs_err::write(&broken, "").unwrap();
    let (code, out) = app.merged(&["start", "worker"]);
    assert_ne!(
        code,
        Some(0),
        "a program that exits 3 within its first second started?\n{out}"
    );
    assert!(
        out.contains("service `worker` did not start") && out.contains("code 3"),
        "names the service and its exit code:\n{out}"
    );
    assert!(out.contains("`cove logs worker`"), "hint:\n{out}");
}
