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

/// The daemon's recorded events after `after` (`GET /v1/events`, over
/// its socket): each with its time, service, replica, revision, state
/// and pid.
fn events(app: &App, after: u64) -> Vec<serde_json::Value> {
    use std::io::{Read as _, Write as _};
    let state = fs_err::canonicalize(app.dir().join(".cove")).unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(app.dir().join(".cove/daemon.sock"))
        .expect("the daemon's socket");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /v1/events?after={after}&wait=0 HTTP/1.1\r\nHost: cove\r\ncove-project: {}\r\nConnection: close\r\n\r\n",
        state.display()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The last event's number (0 when there is none).
fn last_seq(app: &App) -> u64 {
    events(app, 0)
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// One line per event, for failure messages.
fn show(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}-{} r{} {} {}",
                e["time_ms"], e["service"], e["replica"], e["revision"], e["state"], e["detail"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
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

/// Answers `v<VERSION>`.
const VERSIONED: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("v" + os.environ["VERSION"]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

/// `web` (start-first) and `db` (stop-first), 2 replicas each, at
/// `version`; `other` never changes.
fn two_orders(version: u32) -> String {
    format!(
        r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /}}
    environment: {{VERSION: "{version}"}}
    expose: ["8000"]
    deploy: {{replicas: 2}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
  db:
    x-cove:
      run: python3 server.py
      health: {{tcp: 8000}}
    environment: {{VERSION: "{version}"}}
    ports: ["8000"]
    deploy:
      replicas: 2
      update_config: {{order: stop-first}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
  other:
    x-cove: {{run: [sh, -c, 'sleep 300 & wait']}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#
    )
}

/// Replays a service's events: after each, how many of its instances
/// serve (healthy), and the order in which old ones (revision `old`)
/// stopped and new ones (revision `new`) turned healthy: `-N` old
/// replica N stopped, `+N` new replica N healthy.
fn replay(events: &[serde_json::Value], service: &str, old: u64, new: u64) -> (Vec<usize>, Vec<String>) {
    let mut serving = std::collections::BTreeSet::new();
    // Serving when the replay starts: both old replicas.
    serving.insert((1, old));
    serving.insert((2, old));
    let mut counts = Vec::new();
    let mut steps = Vec::new();
    for e in events.iter().filter(|e| e["service"] == service && e["replica"] != 0) {
        let key = (e["replica"].as_u64().unwrap(), e["revision"].as_u64().unwrap());
        // Health is in the detail (the state is `running`).
        if e["detail"] == "healthy" {
            if serving.insert(key) && key.1 == new {
                steps.push(format!("+{}", key.0));
            }
        } else {
            serving.remove(&key);
            if key.1 == old && e["state"] == "stopped" {
                steps.push(format!("-{}", key.0));
            }
        }
        counts.push(serving.len());
    }
    (counts, steps)
}

/// docs/guides/up.md: "Running `cove up` again converges: services whose
/// definition did not change keep their replicas; changed ones are
/// replaced replica by replica, as `cove deploy` does". Seen from the
/// daemon's recorded events (every state change of every instance) and
/// through the gateway under load.
#[test]
fn up_again_after_a_change_replaces_replica_by_replica_and_leaves_the_rest() {
    let app = App::new(&two_orders(1));
    fs_err::write(app.dir().join("server.py"), VERSIONED).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[2, 2]);
    let before = pids(&app, &["web", "db", "other"]);
    assert_eq!(before.len(), 5, "{before:?}");
    let from = last_seq(&app);

    let load = Load::start(gw);
    settle();
    fs_err::write(app.dir().join("compose.yaml"), two_orders(2)).unwrap();
    cove_ok(&app, &["up", "-d"]);
    eventually(60, "every web and db replica at revision 2, healthy", || {
        let rows = app.ps();
        let new = |s: &str| {
            rows.iter()
                .filter(|r| r["service"] == s && r["revision"] == 2 && r["health"] == "healthy")
                .count()
        };
        new("web") == 2 && new("db") == 2 && rows.len() == 5
    });
    settle();
    let bodies = load.finish("up again");
    assert!(bodies.contains_key("v2"), "{bodies:?}");

    let after = pids(&app, &["web", "db", "other"]);
    assert_eq!(after["other-1"], before["other-1"], "unchanged: same process");
    for r in ["web-1", "web-2", "db-1", "db-2"] {
        assert_ne!(after[r], before[r], "{r} replaced");
    }
    let happened = events(&app, from);
    assert!(
        !happened.iter().any(|e| e["service"] == "other"),
        "nothing happened to the unchanged service:\n{}",
        show(&happened)
    );
    // start-first: a new replica serves before its old one stops, one
    // replica at a time; never fewer than 2 serve.
    let (counts, steps) = replay(&happened, "web", 1, 2);
    assert_eq!(steps, ["+1", "-1", "+2", "-2"], "{}", show(&happened));
    assert!(
        counts.iter().all(|c| *c >= 2),
        "{counts:?}\n{}",
        show(&happened)
    );
    // stop-first: the old one stops first, one at a time; never none.
    let (counts, steps) = replay(&happened, "db", 1, 2);
    assert_eq!(steps, ["-1", "+1", "-2", "+2"], "{}", show(&happened));
    assert!(
        counts.iter().all(|c| *c >= 1),
        "{counts:?}\n{}",
        show(&happened)
    );
}
