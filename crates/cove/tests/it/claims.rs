//! Claims of the guides that had no test (issue 27): `cove stop` and
//! dependents, `cove up` again after a change, `update_config`, secrets
//! after a killed daemon, scale to zero that never wakes. Real processes;
//! every wait is bounded; every app is brought down when its test ends,
//! even when it fails (`App`'s drop).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::daemon::{App, eventually, kill9};
use crate::deploy::{Load, cove_ok, settle};
use crate::gateway::wait_for_targets;
use crate::up::alive;

/// SIGKILLs the app's daemon and waits (bounded) until its reaper has
/// stopped every replica.
pub(crate) fn kill_daemon(app: &App) {
    let daemon = app.daemon_pid().expect("a daemon runs");
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
pub(crate) fn events(app: &App, after: u64) -> Vec<serde_json::Value> {
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
pub(crate) fn last_seq(app: &App) -> u64 {
    events(app, 0)
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// One line per event, for failure messages.
pub(crate) fn show(events: &[serde_json::Value]) -> String {
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
    // db's health checks come and go; the replicas' processes stay.
    let before = app.steady_replica_processes();

    let out = cove_ok(&app, &["stop", "db"]);
    let rows = app.ps();
    let db = rows.iter().find(|r| r["service"] == "db").unwrap();
    assert_eq!(db["state"], "stopped", "{out}\n{rows:#?}");
    assert_eq!(
        pids(&app, &["api", "worker"]),
        dependents,
        "dependents of a stopped service keep their processes: {out}"
    );
    let left = app.replica_processes();
    assert!(
        before.iter().filter(|p| !left.contains(p)).count() == 1,
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
pub(crate) fn get_raw(gw: std::net::SocketAddr, host: &str, wait: Duration) -> (String, String) {
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
fn replay(
    events: &[serde_json::Value],
    service: &str,
    old: u64,
    new: u64,
) -> (Vec<usize>, Vec<String>) {
    let mut serving = std::collections::BTreeSet::new();
    // Serving when the replay starts: both old replicas.
    serving.insert((1, old));
    serving.insert((2, old));
    let mut counts = Vec::new();
    let mut steps = Vec::new();
    for e in events
        .iter()
        .filter(|e| e["service"] == service && e["replica"] != 0)
    {
        let key = (
            e["replica"].as_u64().unwrap(),
            e["revision"].as_u64().unwrap(),
        );
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
    fs_err::write(app.dir().join("server.py"), crate::deploy::SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[2, 2]);
    let before = pids(&app, &["web", "db", "other"]);
    assert_eq!(before.len(), 5, "{before:?}");
    let from = last_seq(&app);

    let load = Load::start(gw);
    settle();
    fs_err::write(app.dir().join("compose.yaml"), two_orders(2)).unwrap();
    cove_ok(&app, &["up", "-d"]);
    eventually(
        60,
        "every web and db replica at revision 2, healthy",
        || {
            let rows = app.ps();
            let new = |s: &str| {
                rows.iter()
                    .filter(|r| r["service"] == s && r["revision"] == 2 && r["health"] == "healthy")
                    .count()
            };
            new("web") == 2 && new("db") == 2 && rows.len() == 5
        },
    );
    settle();
    let bodies = load.finish("up again");
    assert!(bodies.contains_key("v2"), "{bodies:?}");

    let after = pids(&app, &["web", "db", "other"]);
    assert_eq!(
        after["other-1"], before["other-1"],
        "unchanged: same process"
    );
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

/// `deploy::SERVER`, but the replica numbered `FAIL_REPLICA` exits with
/// code 3 at once.
fn failing_one() -> String {
    format!(
        r#"
import os, sys
if os.environ.get("FAIL_REPLICA") == os.environ["COVE_REPLICA"]:
    print("replica", os.environ["COVE_REPLICA"], "will not start", flush=True)
    sys.exit(3)
{}"#,
        crate::deploy::SERVER
    )
}

/// `web`, `replicas` of it, at `version`, with replica `fail` (0: none)
/// failing, replaced per `update` (YAML flow mapping entries).
fn updating(version: u32, replicas: u32, fail: u32, update: &str) -> String {
    format!(
        r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /}}
    environment: {{VERSION: "{version}", FAIL_REPLICA: "{fail}"}}
    expose: ["8000"]
    deploy:
      replicas: {replicas}
      update_config: {{{update}}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#
    )
}

/// An app of `updating` at version 1 (no failing replica), up: its
/// `server.py` is `failing_one()`.
pub(crate) fn up_at_one(replicas: u32, update: &str) -> App {
    let app = App::new(&updating(1, replicas, 0, update));
    fs_err::write(app.dir().join("server.py"), failing_one()).unwrap();
    cove_ok(&app, &["up", "-d"]);
    app
}

/// The app's file now says `updating(version, ...)` (not deployed yet).
pub(crate) fn edit(app: &App, version: u32, replicas: u32, fail: u32, update: &str) {
    fs_err::write(
        app.dir().join("compose.yaml"),
        updating(version, replicas, fail, update),
    )
    .unwrap();
}

/// The revisions `cove history web` says the service is held at.
pub(crate) fn held(app: &App) -> Vec<u64> {
    let text = cove_ok(app, &["history", "web", "--format", "json"]);
    let h: serde_json::Value = serde_json::from_str(&text).unwrap();
    h["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pinned"] == true)
        .map(|r| r["number"].as_u64().unwrap())
        .collect()
}

/// `replica` → revision of each running `web` replica.
pub(crate) fn revisions(app: &App) -> BTreeMap<u64, u64> {
    app.ps()
        .into_iter()
        .filter(|r| r["service"] == "web" && r["state"] == "running")
        .map(|r| {
            (
                r["replica"].as_u64().unwrap(),
                r["revision"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The order in which new (revision `new`) web replicas started: their
/// replica numbers.
pub(crate) fn started(events: &[serde_json::Value], new: u64) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["service"] == "web" && e["revision"] == new && e["state"] == "starting")
        .map(|e| e["replica"].as_u64().unwrap())
        .collect()
}

/// docs/guides/deploy.md, `update_config.failure_action: continue`: a
/// replica of the new revision that fails does not stop the deploy; it
/// goes on to the next replica and ends (exit 0) saying which replica
/// kept its previous revision, and why.
#[test]
fn failure_action_continue_goes_on_past_a_failed_replica() {
    let app = up_at_one(3, "failure_action: continue");
    let from = last_seq(&app);
    edit(&app, 2, 3, 2, "failure_action: continue");
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("revision 2 runs on 2 of 3 replicas"),
        "says what it did: {out}"
    );
    assert!(
        out.contains("replica 2: exited with code 3"),
        "says why: {out}"
    );
    assert!(!out.contains("rolling back"), "{out}");
    let happened = events(&app, from);
    assert_eq!(
        started(&happened, 2),
        [1, 2, 3],
        "replica 3 after replica 2 failed:\n{}",
        show(&happened)
    );
    assert_eq!(
        revisions(&app),
        BTreeMap::from([(1, 2), (2, 1), (3, 2)]),
        "the failed replica keeps revision 1"
    );
}

/// docs/guides/deploy.md, `update_config.max_failure_ratio`: failed
/// replicas up to that share are tolerated (the deploy goes through);
/// beyond it the deploy fails (`failure_action`: here, roll back).
#[test]
fn max_failure_ratio_tolerates_failures_up_to_the_share_and_no_more() {
    let app = up_at_one(3, "max_failure_ratio: 0.2");
    // 1 of 3 is more than 0.2: the deploy fails and is rolled back.
    edit(&app, 2, 3, 2, "max_failure_ratio: 0.2");
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("replica 2: exited with code 3"), "{out}");
    assert!(out.contains("rolled back to revision 1"), "{out}");
    assert_eq!(revisions(&app), BTreeMap::from([(1, 1), (2, 1), (3, 1)]));
    // 1 of 3 is within 0.5: tolerated, the deploy goes through. (The
    // failed revision was not recorded: this one is revision 2 again.)
    edit(&app, 3, 3, 2, "max_failure_ratio: 0.5");
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("revision 2 runs on 2 of 3 replicas"), "{out}");
    assert!(out.contains("replica 2: exited with code 3"), "{out}");
    assert!(!out.contains("rolling back"), "{out}");
    assert_eq!(revisions(&app), BTreeMap::from([(1, 2), (2, 1), (3, 2)]));
}

/// docs/guides/deploy.md, `update_config.delay`: the pause between
/// batches, seen in the times the daemon recorded: the next replica's new
/// instance starts at least `delay` after the previous batch ended (its
/// old instance stopped).
#[test]
fn update_delay_separates_the_replacements() {
    let delay = Duration::from_secs(2);
    let app = up_at_one(2, "delay: 2s");
    let from = last_seq(&app);
    edit(&app, 2, 2, 0, "delay: 2s");
    let out = cove_ok(&app, &["deploy", "web"]);
    assert!(out.contains("1 at a time, 2s apart"), "{out}");
    let happened = events(&app, from);
    let at = |replica: u64, revision: u64, state: &str| {
        happened
            .iter()
            .find(|e| {
                e["service"] == "web"
                    && e["replica"] == replica
                    && e["revision"] == revision
                    && e["state"] == state
            })
            .and_then(|e| e["time_ms"].as_u64())
            .unwrap_or_else(|| {
                panic!(
                    "no web-{replica} r{revision} {state} in:\n{}",
                    show(&happened)
                )
            })
    };
    let first_done = at(1, 1, "stopped");
    let second_started = at(2, 2, "starting");
    // The daemon stamps an event when it records it (a few ms after it
    // happened, at most): a 100 ms allowance for that, against a 2 s
    // delay.
    let gap = Duration::from_millis(second_started.saturating_sub(first_done));
    assert!(
        gap + Duration::from_millis(100) >= delay,
        "replica 2 started {gap:?} after replica 1's old instance stopped (delay {delay:?}):\n{}",
        show(&happened)
    );
}

/// docs/guides/deploy.md: a failed deploy leaves the service "held at the
/// revision it runs, so a daemon restart does not bring the failed one
/// back" — here with `failure_action: pause`, after a replica of the new
/// revision already took over: the daemon SIGKILLed and started again
/// runs the service at the held revision, and nothing rolls the failed
/// revision out again.
#[test]
fn a_paused_deploy_stays_held_across_a_daemon_restart() {
    let app = up_at_one(2, "failure_action: pause");
    edit(&app, 2, 2, 2, "failure_action: pause");
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("paused"), "{out}");
    assert!(out.contains("replica 2: exited with code 3"), "{out}");
    assert_eq!(
        revisions(&app),
        BTreeMap::from([(1, 2), (2, 1)]),
        "paused where it was"
    );
    assert_eq!(held(&app), [1], "held at the revision that ran everywhere");

    let from = last_seq(&app);
    kill_daemon(&app);
    // The file still says revision 2: `up` keeps a held service where it
    // is.
    cove_ok(&app, &["up", "-d"]);
    assert_eq!(held(&app), [1], "still held after the restart");
    eventually(30, "both replicas running again", || {
        revisions(&app).len() == 2
    });
    let happened = events(&app, from);
    assert!(
        started(&happened, 2).is_empty(),
        "the failed revision was started again:\n{}",
        show(&happened)
    );
    assert_eq!(revisions(&app), BTreeMap::from([(1, 1), (2, 1)]));
}
