//! Alerts end to end (`x-cove.alerts`, `x-cove.notify`, `cove alerts`):
//! a scheduled backup that fails fires `backup_failed` to a recording
//! webhook server and to a command, once, even across a daemon killed
//! and started again, and resolves when the next backup succeeds; an
//! `unhealthy` rule with `for:` fires when a replica's health check fails
//! and resolves when it passes again, at a real Alertmanager (Debian's
//! `prometheus-alertmanager`, run by the test on its own port and storage)
//! that receives, groups and resolves it. Every wait is bounded; what a
//! test starts is stopped when it ends, even when it fails.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backup_app::BackupApp;
use crate::daemon::{App, eventually_ok, kill9};
use crate::recipes::require;

/// A webhook receiver on 127.0.0.1: each request's JSON body, in order.
/// Answers 200 to each; stops when dropped.
struct Hook {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if let Some(body) = read_request(conn) {
                            b.lock().unwrap().push(body);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Hook {
            addr,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then `Content-Length` bytes, within 10 s)
/// and answers 200; its body as JSON.
fn read_request(mut conn: TcpStream) -> Option<serde_json::Value> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, length);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    serde_json::from_slice(&buf[head_end..head_end + length]).ok()
}

/// `GET path` of `addr` (HTTP/1.0, within 10 s): status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut conn =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    conn.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// The lines of a file the command notifier appends to, as JSON.
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    fs_err::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn statuses(bodies: &[serde_json::Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| b["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn a_failed_backup_fires_once_to_a_webhook_and_a_command_across_a_restart_and_resolves() {
    let hook = Hook::start();
    let marks = tempfile::tempdir().unwrap();
    let fail = marks.path().join("fail");
    let notes = marks.path().join("notes.jsonl");
    fs_err::write(&fail, "").unwrap();
    // A backup every 2 s whose command fails while `fail` exists.
    let yaml = format!(
        r#"
x-cove:
  notify:
    webhook: {url}
    command: [sh, -c, "cat >> {notes}"]
services:
  store:
    x-cove:
      run: [sleep, "86400"]
      backup:
        schedule: "*/2 * * * * *"
        method: command
        command: "if [ -e {fail} ]; then echo the disk is gone >&2; exit 1; fi; echo data"
      alerts:
        - {{name: backups, when: backup_failed}}
"#,
        url = hook.url(),
        notes = notes.display(),
        fail = fail.display(),
    );
    let f = BackupApp::new(&yaml);

    // It fires: once at the webhook, once at the command.
    let fired = eventually_ok(120, "the firing at the webhook", || {
        let b = hook.bodies();
        b.first().cloned().ok_or(format!("{b:?}"))
    });
    assert_eq!(fired["status"], "firing", "{fired}");
    assert_eq!(fired["alert"], "backups", "{fired}");
    assert_eq!(fired["service"], "store", "{fired}");
    assert_eq!(fired["condition"], "backup_failed", "{fired}");
    assert_eq!(fired["environment"], "default", "{fired}");
    assert_eq!(fired["ended"], serde_json::Value::Null, "{fired}");
    assert!(
        fired["value"]
            .as_str()
            .unwrap()
            .contains("the disk is gone"),
        "its value is the backup's error: {fired}"
    );
    let since = fired["since"].as_str().unwrap().to_string();
    eventually_ok(60, "the firing at the command", || {
        let n = json_lines(&notes);
        (statuses(&n) == ["firing"])
            .then_some(())
            .ok_or(format!("{n:?}"))
    });
    assert_eq!(json_lines(&notes)[0]["since"], since.as_str());
    // `cove alerts` lists it; `cove events` has it.
    let listed: serde_json::Value =
        serde_json::from_str(&f.ok(&["alerts", "--format", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["state"], "firing", "{listed}");
    assert_eq!(listed[0]["name"], "backups", "{listed}");
    let table = f.ok(&["alerts"]).stdout;
    assert!(
        table.contains("firing") && table.contains("backup_failed"),
        "{table}"
    );
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]).stdout;
    assert!(events.contains("service alert store"), "{events}");

    // Both deliveries are recorded as done (a daemon killed between a
    // delivery and its record sends it again: at least once).
    eventually_ok(30, "both deliveries recorded", || {
        let out = f.ok(&["alerts", "--format", "json"]).stdout;
        let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
        let done = listed[0]["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["delivered"] == "firing"));
        done.then_some(()).ok_or(out)
    });
    // The daemon is killed and comes back: the alert is still firing and
    // is not announced again (its next word is its resolution).
    let pid = f.app.daemon_pid().expect("the daemon's pid");
    kill9(pid);
    f.ok(&["up", "-d"]);
    let listed: serde_json::Value =
        serde_json::from_str(&f.ok(&["alerts", "--format", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["state"], "firing", "{listed}");

    // The next backup succeeds: resolved, to each, with the same `since`.
    fs_err::remove_file(&fail).unwrap();
    let bodies = eventually_ok(120, "the resolution at the webhook", || {
        let b = hook.bodies();
        (b.len() >= 2).then(|| b.clone()).ok_or(format!("{b:?}"))
    });
    assert_eq!(
        statuses(&bodies),
        ["firing", "resolved"],
        "fired once, then resolved: {bodies:?}"
    );
    assert_eq!(bodies[1]["since"], since.as_str());
    assert!(bodies[1]["ended"].is_string(), "{bodies:?}");
    eventually_ok(60, "the resolution at the command", || {
        let n = json_lines(&notes);
        (statuses(&n) == ["firing", "resolved"])
            .then_some(())
            .ok_or(format!("{n:?}"))
    });
    let listed: serde_json::Value =
        serde_json::from_str(&f.ok(&["alerts", "--format", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["state"], "resolved", "{listed}");
    assert!(listed[0]["ended"].is_string(), "{listed}");
    let deliveries = listed[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{listed}");
    assert!(
        deliveries.iter().all(|d| d["delivered"] == "resolved"),
        "{listed}"
    );
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]).stdout;
    assert!(events.contains("service alert-resolved store"), "{events}");
}

/// Debian's Alertmanager on a free loopback port, with its own
/// configuration and storage; killed (by pid) when dropped.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        // Grouped by alert and service, sent to a receiver that sends
        // nothing on: the test reads its API.
        fs_err::write(
            dir.path().join("alertmanager.yml"),
            "route:\n  receiver: sink\n  group_by: [alertname, service]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: sink\n",
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = fs_err::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            // One instance: no cluster port.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.into_parts().0)
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            addr,
            _dir: dir,
        };
        eventually_ok(60, "Alertmanager ready", || match get(addr, "/-/ready") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        });
        am
    }

    /// Its alerts named `name`, as its API v2 lists them.
    fn alerts(&self, name: &str) -> Vec<serde_json::Value> {
        let (status, body) = get(self.addr, "/api/v2/alerts").unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_unhealthy_replica_fires_after_its_for_at_alertmanager_and_a_webhook_and_resolves() {
    require(&["prometheus-alertmanager"]);
    let am = Alertmanager::start();
    let hook = Hook::start();
    let marks = tempfile::tempdir().unwrap();
    let ok = marks.path().join("ok");
    fs_err::write(&ok, "").unwrap();
    let app = App::new(&format!(
        r#"
x-cove:
  notify:
    webhook: {url}
    alertmanager: http://{am}
services:
  api:
    x-cove:
      run: [sleep, "86400"]
      alerts:
        - {{name: api down, when: unhealthy, for: 2s}}
    healthcheck:
      test: ["CMD", "test", "-e", "{ok}"]
      interval: 300ms
      start_interval: 300ms
      retries: 2
"#,
        url = hook.url(),
        am = am.addr,
        ok = ok.display(),
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    // Healthy: nothing fires.
    let (_, out) = app.merged(&["alerts", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] != "firing"),
        "{listed}"
    );

    // Its check fails: after `for` it fires, to both.
    fs_err::remove_file(&ok).unwrap();
    let fired = eventually_ok(120, "the firing at the webhook", || {
        let b = hook.bodies();
        b.first().cloned().ok_or(format!("{b:?}"))
    });
    assert_eq!(fired["status"], "firing", "{fired}");
    assert_eq!(fired["alert"], "api down", "{fired}");
    assert!(
        fired["value"].as_str().unwrap().starts_with("replica 1"),
        "{fired}"
    );
    let active = eventually_ok(60, "the alert active at Alertmanager", || {
        let a = am.alerts("api down");
        match a.first() {
            Some(x) if x["status"]["state"] == "active" => Ok(x.clone()),
            _ => Err(format!("{a:?}")),
        }
    });
    assert_eq!(active["labels"]["service"], "api", "{active}");
    assert_eq!(active["labels"]["severity"], "critical", "{active}");
    assert!(active["labels"]["project"].is_string(), "{active}");
    // Grouped by alert name and service, as configured.
    let (status, groups) = get(am.addr, "/api/v2/alerts/groups").unwrap();
    assert_eq!(status, 200, "{groups}");
    let groups: serde_json::Value = serde_json::from_str(&groups).unwrap();
    assert!(
        groups.as_array().unwrap().iter().any(|g| {
            g["labels"]["alertname"] == "api down"
                && g["labels"]["service"] == "api"
                && g["alerts"].as_array().is_some_and(|a| a.len() == 1)
        }),
        "{groups}"
    );
    let (_, out) = app.merged(&["alerts", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["state"], "firing", "{listed}");
    // It fired once its condition had held its `for:` (2 s), not before.
    let time = |k: &str| {
        listed[0][k]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(|| panic!("{k} in {listed}"))
    };
    let held = time("since").duration_since(time("holds_since"));
    assert!(
        held >= jiff::SignedDuration::from_secs(2),
        "fired {held:?} after its condition began to hold: {listed}"
    );

    // Healthy again: resolved, at the webhook and at Alertmanager.
    fs_err::write(&ok, "").unwrap();
    let bodies = eventually_ok(180, "the resolution at the webhook", || {
        let b = hook.bodies();
        (statuses(&b).contains(&"resolved".to_string()))
            .then(|| b.clone())
            .ok_or(format!("{b:?}"))
    });
    assert_eq!(statuses(&bodies), ["firing", "resolved"], "{bodies:?}");
    eventually_ok(60, "the alert resolved at Alertmanager", || {
        let a = am.alerts("api down");
        if a.iter().all(|x| x["status"]["state"] != "active") {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    });
    let (_, out) = app.merged(&["alerts", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["state"], "resolved", "{listed}");
}

/// `web` with `V` in its environment: healthy unless `V` is `bad`.
fn deploy_app(hook: &Hook, v: &str) -> String {
    format!(
        r#"
x-cove:
  notify:
    webhook: {url}
    format: slack
services:
  web:
    environment:
      V: {v}
    x-cove:
      run: [sleep, "86400"]
      alerts:
        - {{name: deploys, when: deploy_failed}}
    healthcheck:
      test: ["CMD-SHELL", "test \"$$V\" != bad"]
      interval: 200ms
      start_interval: 200ms
      retries: 2
"#,
        url = hook.url()
    )
}

#[test]
fn a_failed_deploy_fires_in_slacks_format_and_the_next_good_deploy_resolves_it() {
    let hook = Hook::start();
    let app = App::new(&deploy_app(&hook, "one"));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");

    // A revision that never turns healthy: the deploy fails (rolled back).
    fs_err::write(app.dir().join("compose.yaml"), deploy_app(&hook, "bad")).unwrap();
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    let fired = eventually_ok(60, "the firing at the webhook", || {
        let b = hook.bodies();
        b.first().cloned().ok_or(format!("{b:?}"))
    });
    let text = fired["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING] deploys — web of ") && text.contains("deploy_failed"),
        "{fired}"
    );
    assert!(text.contains("the previous revision runs again"), "{fired}");
    let (_, out) = app.merged(&["events", "--since", "10m", "--until", "0s"]);
    assert!(out.contains("service deploy-failed web"), "{out}");

    // The next deploy succeeds: resolved.
    fs_err::write(app.dir().join("compose.yaml"), deploy_app(&hook, "two")).unwrap();
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(0), "{out}");
    let bodies = eventually_ok(60, "the resolution at the webhook", || {
        let b = hook.bodies();
        (b.len() >= 2).then(|| b.clone()).ok_or(format!("{b:?}"))
    });
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let text = bodies[1]["text"].as_str().unwrap();
    assert!(text.starts_with("[RESOLVED] deploys — web of "), "{text}");
}

/// Answers 500 while `fail` exists beside it, after 600 ms while `slow`
/// does, else 200 at once.
const TRAFFIC_SERVER: &str = r#"
import http.server, os, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if os.path.exists("slow"):
            time.sleep(0.6)
        code = 500 if os.path.exists("fail") else 200
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

/// `n` requests to `web` through the gateway, each answered `status`.
fn requests(gw: SocketAddr, n: usize, status: u16) {
    for _ in 0..n {
        let (got, _, body) = crate::gateway::http(gw, "GET", "web.localhost", "/", b"");
        assert_eq!(got, status, "{body}");
    }
}

/// The alert names and statuses the webhook had, in order.
fn heard(hook: &Hook) -> Vec<(String, String)> {
    hook.bodies()
        .iter()
        .map(|b| {
            (
                b["alert"].as_str().unwrap_or("?").to_string(),
                b["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_gateways_error_rate_and_p99_fire_and_resolve_as_answers_change() {
    let hook = Hook::start();
    let app = App::new(&format!(
        r#"
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
  notify: {{webhook: {url}}}
services:
  web:
    x-cove:
      run: python3 server.py
      alerts:
        - {{name: errors, when: "error_rate[10m] > 0.5"}}
        - {{name: slow, when: "p99_ms[10m] > 500"}}
    expose: ["8000"]
"#,
        url = hook.url()
    ));
    fs_err::write(app.dir().join("server.py"), TRAFFIC_SERVER).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = crate::gateway::wait_for_targets(&app, &[1]);
    requests(gw, 20, 200);

    // Errors: 30 of 50 answers (the window is 10 minutes: what leaves it
    // is what the answers that follow dilute).
    fs_err::write(app.dir().join("fail"), "").unwrap();
    requests(gw, 30, 500);
    let at = |name: &str, status: &str| {
        let want = (name.to_string(), status.to_string());
        eventually_ok(60, &format!("{name} {status}"), || {
            let h = heard(&hook);
            h.contains(&want).then_some(()).ok_or(format!("{h:?}"))
        });
    };
    at("errors", "firing");
    let fired = hook
        .bodies()
        .into_iter()
        .find(|b| b["alert"] == "errors")
        .unwrap();
    // 0.600 (1.000 if the evaluator's first look came after the 20).
    let value = fired["value"].as_str().unwrap();
    let rate: f64 = value
        .strip_prefix("error_rate ")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{fired}"));
    assert!(rate >= 0.6, "{fired}");
    // 60 of 110 no longer: resolved.
    fs_err::remove_file(app.dir().join("fail")).unwrap();
    requests(gw, 60, 200);
    at("errors", "resolved");

    // Slow: 3 answers of 113 took 600 ms, more than 1 % of them.
    fs_err::write(app.dir().join("slow"), "").unwrap();
    requests(gw, 3, 200);
    fs_err::remove_file(app.dir().join("slow")).unwrap();
    at("slow", "firing");
    let fired = hook
        .bodies()
        .into_iter()
        .find(|b| b["alert"] == "slow")
        .unwrap();
    assert!(
        fired["value"]
            .as_str()
            .unwrap()
            .starts_with("p99_ms 1000 ms"),
        "the bound of 600 ms's bucket: {fired}"
    );
    // 3 of 413: under 1 %, resolved.
    requests(gw, 300, 200);
    at("slow", "resolved");
    let h = heard(&hook);
    let once =
        |name: &str, status: &str| h.iter().filter(|(n, s)| n == name && s == status).count();
    for (name, status) in [
        ("errors", "firing"),
        ("errors", "resolved"),
        ("slow", "firing"),
        ("slow", "resolved"),
    ] {
        assert_eq!(once(name, status), 1, "{name} {status} once: {h:?}");
    }
}

#[test]
fn restarts_in_a_window_fire_and_resolve_once_the_crashes_stop() {
    let hook = Hook::start();
    let app = App::new(&format!(
        r#"
x-cove:
  notify: {{webhook: {url}}}
services:
  worker:
    # Crashes at once while `crash` exists beside it.
    x-cove:
      run: [sh, -c, "if [ -e crash ]; then sleep 0.2; exit 1; fi; exec sleep 86400"]
      alerts:
        - {{name: flapping, when: "restarts[15s] > 2"}}
    restart: always
"#,
        url = hook.url()
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    // It crashes again and again once its process is killed.
    fs_err::write(app.dir().join("crash"), "").unwrap();
    let (code, out) = app.merged(&["kill", "-s", "USR1", "worker"]);
    assert_eq!(code, Some(0), "{out}");
    let fired = eventually_ok(90, "the firing", || {
        let b = hook.bodies();
        b.first().cloned().ok_or(format!("{b:?}"))
    });
    assert_eq!(fired["status"], "firing", "{fired}");
    let value = fired["value"].as_str().unwrap();
    let n: u32 = value
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{fired}"));
    assert!(
        n > 2 && value.ends_with("restart(s) in the last 15s"),
        "{fired}"
    );
    // The crashes stop: once none is within the window, resolved.
    fs_err::remove_file(app.dir().join("crash")).unwrap();
    let bodies = eventually_ok(120, "the resolution", || {
        let b = hook.bodies();
        (statuses(&b).last().map(String::as_str) == Some("resolved"))
            .then(|| b.clone())
            .ok_or(format!("{b:?}"))
    });
    assert_eq!(bodies.last().unwrap()["alert"], "flapping");
    let (_, out) = app.merged(&["events", "--since", "10m", "--until", "0s"]);
    assert!(out.contains("service alert worker"), "{out}");
    assert!(out.contains("service alert-resolved worker"), "{out}");
}

/// Holds 150 MiB (written, so resident) while `big` exists beside it.
const HOG: &str = r#"
import os, time
held = None
while True:
    if os.path.exists("big"):
        if held is None:
            held = b"x" * (150 * 1024 * 1024)
    else:
        held = None
    time.sleep(0.05)
"#;

#[test]
fn a_replica_over_its_memory_fires_and_resolves_when_it_lets_go() {
    let hook = Hook::start();
    let app = App::new(&format!(
        r#"
x-cove:
  notify: {{webhook: {url}}}
services:
  hog:
    x-cove:
      run: python3 hog.py
      alerts:
        - {{name: memory, when: "memory_mb > 100"}}
"#,
        url = hook.url()
    ));
    fs_err::write(app.dir().join("hog.py"), HOG).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    fs_err::write(app.dir().join("big"), "").unwrap();
    let fired = eventually_ok(60, "the firing", || {
        let b = hook.bodies();
        b.first().cloned().ok_or(format!("{b:?}"))
    });
    assert_eq!(fired["status"], "firing", "{fired}");
    let mib: f64 = fired["value"]
        .as_str()
        .unwrap()
        .strip_prefix("memory_mb ")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{fired}"));
    assert!(mib > 150.0, "150 MiB held, and Python: {fired}");
    fs_err::remove_file(app.dir().join("big")).unwrap();
    let bodies = eventually_ok(60, "the resolution", || {
        let b = hook.bodies();
        (b.len() >= 2).then(|| b.clone()).ok_or(format!("{b:?}"))
    });
    assert_eq!(statuses(&bodies), ["firing", "resolved"], "{bodies:?}");
}

#[test]
fn a_backup_run_by_hand_is_recorded_and_fires_and_resolves_its_alert() {
    let hook = Hook::start();
    let marks = tempfile::tempdir().unwrap();
    let fail = marks.path().join("fail");
    fs_err::write(&fail, "").unwrap();
    // No schedule: every backup is `cove backup` typed by hand.
    let yaml = format!(
        r#"
x-cove:
  notify:
    webhook: {url}
services:
  store:
    x-cove:
      run: [sleep, "86400"]
      backup:
        method: command
        command: "if [ -e {fail} ]; then echo the disk is gone >&2; exit 1; fi; echo data"
      alerts:
        - {{name: backups, when: backup_failed}}
"#,
        url = hook.url(),
        fail = fail.display(),
    );
    let f = BackupApp::new(&yaml);
    let out = f.cove(&["backup", "store"]);
    assert_eq!(out.code, Some(1), "{out}");
    // Recorded as a scheduled one's end is: an event, and the alert.
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]).stdout;
    assert!(events.contains("backup-failed store"), "{events}");
    let fired = eventually_ok(60, "the firing at the webhook", || {
        let b = hook.bodies();
        b.first().cloned().ok_or(format!("{b:?}"))
    });
    assert_eq!(fired["status"], "firing", "{fired}");
    assert_eq!(fired["condition"], "backup_failed", "{fired}");
    assert!(
        fired["value"]
            .as_str()
            .unwrap()
            .contains("the disk is gone"),
        "its value is the backup's error: {fired}"
    );
    // The next backup by hand succeeds: resolved.
    fs_err::remove_file(&fail).unwrap();
    f.ok(&["backup", "store"]);
    let bodies = eventually_ok(60, "the resolution at the webhook", || {
        let b = hook.bodies();
        (b.len() >= 2).then(|| b.clone()).ok_or(format!("{b:?}"))
    });
    assert_eq!(statuses(&bodies), ["firing", "resolved"], "{bodies:?}");
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]).stdout;
    assert!(
        events.contains("backup store") && events.contains("run by hand"),
        "{events}"
    );
}
