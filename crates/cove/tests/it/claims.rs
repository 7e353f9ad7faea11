//! Claims of the guides that had no test (issue 27): `cove stop` and
//! dependents, `cove up` again after a change, `update_config`, secrets
//! after a killed daemon, scale to zero that never wakes. Real processes;
//! every wait is bounded; every app is brought down when its test ends,
//! even when it fails (`App`'s drop).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{App, eventually};
use crate::deploy::{Load, cove_ok, settle};
use crate::gateway::wait_for_targets;
use crate::up::alive;

fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

fn daemon_pid(app: &App) -> u32 {
    fs_err::read_to_string(app.dir().join(".cove/daemon.pid"))
        .expect("a daemon runs")
        .trim()
        .parse()
        .unwrap()
}

/// SIGKILLs the app's daemon and waits (bounded) until its reaper has
/// stopped every replica.
fn kill_daemon(app: &App) {
    let daemon = daemon_pid(app);
    kill9(daemon);
    eventually(10, "the killed daemon to be gone", || !alive(daemon));
    eventually(15, "its replicas stopped by the reaper", || {
        app.processes().is_empty()
    });
}

/// `service-replica` → pid of each running replica of `services`.
fn pids(app: &App, services: &[&str]) -> BTreeMap<String, u64> {
    app.ps()
        .into_iter()
        .filter(|r| services.contains(&r["service"].as_str().unwrap_or_default()))
        .filter(|r| r["state"] == "running")
        .map(|r| {
            (
                format!("{}-{}", r["service"].as_str().unwrap(), r["replica"]),
                r["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

const CHAIN: &str = r#"
services:
  db:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
    ports: ["5432"]
    healthcheck:
      test: ["CMD", "python3", "-c", "import os,socket; socket.create_connection((os.environ['HOST'], int(os.environ['PORT'])), 1)"]
      interval: 1s
      start_interval: 100ms
  api:
    x-cove:
      run: ["sh", "-c", "sleep 300 & wait"]
    environment:
      DB_URL: postgres://db:5432/app
    depends_on:
      db: {condition: service_healthy}
    deploy: {replicas: 2}
  worker:
    x-cove:
      run: ["sh", "-c", "sleep 300 & wait"]
    depends_on:
      api: {condition: service_started}
"#;

/// docs/guides/up.md: `cove stop SERVICE` — "their dependents keep
/// running": the same processes, not restarted.
#[test]
fn stop_leaves_the_dependents_running_as_they_were() {
    let app = App::new(CHAIN);
    cove_ok(&app, &["up", "-d"]);
    let dependents = pids(&app, &["api", "worker"]);
    assert_eq!(dependents.len(), 3, "{dependents:?}");
    let before = app.processes();

    let out = cove_ok(&app, &["stop", "db"]);
    let rows = app.ps();
    let db = rows.iter().find(|r| r["service"] == "db").unwrap();
    assert_eq!(db["state"], "stopped", "{out}\n{rows:#?}");
    assert_eq!(
        pids(&app, &["api", "worker"]),
        dependents,
        "dependents of a stopped service keep their processes: {out}"
    );
    let left = app.processes();
    assert!(
        before
            .iter()
            .filter(|p| !left.contains(p))
            .count()
            == 1,
        "only db's process is gone: before {before:?}, after {left:?}"
    );
    assert!(dependents.values().all(|p| alive(*p as u32)));

    // Started again: the dependents still run as they were.
    cove_ok(&app, &["start", "db"]);
    assert_eq!(pids(&app, &["api", "worker"]), dependents);
    let rows = app.ps();
    assert!(
        rows.iter().all(|r| r["restarts"] == 0),
        "nothing restarted: {rows:#?}"
    );
}

/// Removes a directory the test made, however the test ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(&self.0);
    }
}

/// docs/guides/secrets.md: a replica's secrets directory is "removed when
/// the replica stops (and at the next start of a daemon that was
/// killed)". A SIGKILLed daemon removes nothing; its reaper stops the
/// replicas but leaves their files: the next daemon removes them before it
/// starts anything.
#[test]
fn secrets_left_by_a_sigkilled_daemon_are_removed_at_its_next_start() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: [sh, -c, 'echo "$$COVE_SECRETS" > secrets_dir.txt; exec sleep 300']
    secrets: [token]
secrets:
  token:
    file: ./token.txt
"#,
    );
    let token = "tok-claims-3f1e9a";
    fs_err::write(app.dir().join("token.txt"), token).unwrap();
    let report = app.dir().join("secrets_dir.txt");
    cove_ok(&app, &["up", "-d"]);
    eventually(20, "the replica to say where its secrets are", || {
        fs_err::read_to_string(&report).is_ok_and(|s| s.ends_with('\n'))
    });
    let old = std::path::PathBuf::from(fs_err::read_to_string(&report).unwrap().trim());
    assert_eq!(
        fs_err::read_to_string(old.join("token")).unwrap(),
        token,
        "the secret is a file in {}",
        old.display()
    );
    let root = old.parent().unwrap().to_path_buf();

    kill_daemon(&app);
    // What the killed daemon left: its replica's directory, with the
    // secret in it; and, as a replica of another slot would have left
    // (one the next daemon does not start again), a directory beside it.
    assert!(
        old.join("token").is_file(),
        "the reaper leaves the files: {}",
        old.display()
    );
    let ghost = root.join("web-9");
    let _planted = RemoveOnDrop(ghost.clone());
    fs_err::create_dir_all(&ghost).unwrap();
    fs_err::write(ghost.join("token"), token).unwrap();
    fs_err::write(old.join("left-behind"), "x").unwrap();
    fs_err::remove_file(&report).unwrap();

    cove_ok(&app, &["up", "-d"]);
    eventually(20, "the new replica's report", || {
        fs_err::read_to_string(&report).is_ok_and(|s| s.ends_with('\n'))
    });
    assert!(
        !ghost.exists(),
        "left by the killed daemon, still there: {}",
        ghost.display()
    );
    assert!(
        !old.join("left-behind").exists(),
        "the old directory was not removed: {}",
        old.display()
    );
    let new = std::path::PathBuf::from(fs_err::read_to_string(&report).unwrap().trim());
    assert_eq!(fs_err::read_to_string(new.join("token")).unwrap(), token);
    cove_ok(&app, &["down"]);
    assert!(!new.exists(), "removed with the replica: {}", new.display());
}

/// Healthy unless the file `broken` is in its directory.
const SLEEPER: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 500 if os.path.exists("broken") else 200
        self.send_response(code)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

/// One GET through the gateway for `host`: status line and body.
fn get_raw(gw: std::net::SocketAddr, host: &str, wait: Duration) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&gw, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("no answer within {wait:?}: {e}; got {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// docs/guides/deploy.md, "Scale to zero": the request that wakes a
/// sleeping service is held; "if none is within 30 s, it answers 503
/// saying so". (The hold itself is tested with a short value in
/// cove-gateway's tests/wake.rs; this is the daemon's default, end to end.)
#[test]
fn a_woken_service_that_never_turns_healthy_gets_a_503_after_30_s() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {http: /}
      autoscale: {min: 0, max: 1, target_concurrency: 4, scale_down_after: 1s}
    expose: ["8000"]
    healthcheck: {interval: 1s, timeout: 1s, retries: 100, start_period: 120s, start_interval: 100ms}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#,
    );
    fs_err::write(app.dir().join("server.py"), SLEEPER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[1]);
    eventually(30, "web to sleep", || pids(&app, &["web"]).is_empty());
    // From now on a replica starts but never passes its health check.
    fs_err::write(app.dir().join("broken"), "").unwrap();
    let started = Instant::now();
    let (status, body) = get_raw(gw, "web.localhost", Duration::from_secs(90));
    let waited = started.elapsed();
    assert!(status.starts_with("HTTP/1.1 503"), "{status}\n{body}");
    assert!(
        body.contains("`web` was scaled to zero and no replica was ready within 30s"),
        "says why: {body}"
    );
    assert!(
        waited >= Duration::from_secs(30),
        "answered after {waited:?}, before 30 s"
    );
    let (_, logs) = app.merged(&["logs"]);
    assert!(
        logs.contains("autoscale: 0 → 1 replicas (a request came while it was scaled to zero)"),
        "it was woken: {logs}"
    );
}
