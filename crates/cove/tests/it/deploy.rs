//! Deploys, scaling and rollbacks under load through the gateway: a
//! 3-replica Python HTTP service gets a new revision, is scaled 3 → 5 → 2,
//! rolled back, and given a revision that never turns healthy (rolled back
//! by itself); every phase runs under continuous requests, none may fail.
//! The load is bounded (time and count) and talks to the gateway on
//! loopback only.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon::{App, eventually};
use crate::gateway::wait_for_targets;

/// Answers `v<VERSION>` to GETs and POSTs; `/healthz` fails when `BROKEN=1`.
pub const SERVER: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        broken = os.environ.get("BROKEN") == "1"
        code = 500 if (self.path == "/healthz" and broken) else 200
        body = ("v" + os.environ["VERSION"]).encode()
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.do_GET()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

fn compose(version: u32, broken: bool) -> String {
    format!(
        r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /healthz}}
    environment: {{VERSION: "{version}", BROKEN: "{}"}}
    expose: ["8000"]
    deploy:
      replicas: 3
      update_config: {{parallelism: 1, order: start-first}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#,
        if broken { 1 } else { 0 }
    )
}

/// One GET through the gateway (`Connection: close`): the body of a 200, or
/// what went wrong.
fn get(gw: SocketAddr) -> Result<String, String> {
    request(gw, Method::Get, 0)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Get,
    /// Has a body; the gateway never sends it twice.
    Post,
}

/// One request through the gateway (`Connection: close`; a POST carries a
/// small JSON body numbered `n`): the body of a 200, or what went wrong.
fn request(gw: SocketAddr, method: Method, n: u64) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&gw, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let req = match method {
        Method::Get => {
            "GET / HTTP/1.1\r\nHost: web.localhost\r\nConnection: close\r\n\r\n".to_string()
        }
        Method::Post => {
            let body = format!("{{\"request\": {n:>12}, \"kind\": \"post\"}}");
            format!(
                "POST / HTTP/1.1\r\nHost: web.localhost\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
    };
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(format!(
            "{} {}",
            head.lines().next().unwrap_or("no answer"),
            body.trim()
        ))
    }
}

/// A request that failed: which, what went wrong, and when it was in flight.
struct Failure {
    method: Method,
    error: String,
    sent: Instant,
    ended: Instant,
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}: {} (after {} ms)",
            self.method,
            self.error,
            (self.ended - self.sent).as_millis()
        )
    }
}

/// What a load saw: answers by body, requests by method, and failures.
#[derive(Default)]
struct Seen {
    bodies: BTreeMap<String, u64>,
    gets: u64,
    posts: u64,
    failures: Vec<Failure>,
}

/// Requests from a few threads until stopped (or 120 s, or 50,000 requests
/// per thread): three GETs to a POST, over and over (staggered), as the reliability
/// bench does. The gateway may send a GET again on another replica when its
/// target dies under it; a POST, once sent, never: so a replica stopped
/// before it was drained shows as a failed POST.
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(gw: SocketAddr) -> Load {
        Load::start_with(gw, 4)
    }

    fn start_with(gw: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Seen>> = Default::default();
        let threads = (0..clients)
            .map(|client| {
                let (stop, seen) = (stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    let end = Instant::now() + Duration::from_secs(120);
                    for n in 0..50_000u64 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > end {
                            break;
                        }
                        // Staggered: some clients begin with their POST.
                        let method = if (n + client as u64) % 4 == 3 {
                            Method::Post
                        } else {
                            Method::Get
                        };
                        let sent = Instant::now();
                        let r = request(gw, method, n);
                        let mut s = seen.lock().unwrap();
                        match method {
                            Method::Get => s.gets += 1,
                            Method::Post => s.posts += 1,
                        }
                        match r {
                            Ok(body) => *s.bodies.entry(body).or_default() += 1,
                            Err(error) => s.failures.push(Failure {
                                method,
                                error,
                                sent,
                                ended: Instant::now(),
                            }),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    /// Stops the clients; what they saw, after checking that both kinds of
    /// request were sent and some answered.
    fn stop(self, phase: &str) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        assert!(
            seen.gets > 0 && seen.posts > 0,
            "{phase}: {} GETs and {} POSTs sent; the load sends both",
            seen.gets,
            seen.posts
        );
        assert!(
            !seen.bodies.is_empty(),
            "{phase}: no request answered: {:?}",
            &seen.failures[..seen.failures.len().min(5)]
        );
        seen
    }

    /// Answers by body; fails the test on any failed request, GET or POST.
    pub fn finish(self, phase: &str) -> BTreeMap<String, u64> {
        let seen = self.stop(phase);
        let total = seen.gets + seen.posts;
        assert!(
            seen.failures.is_empty(),
            "{phase}: {} of {total} requests failed: {:?}",
            seen.failures.len(),
            &seen.failures[..seen.failures.len().min(5)]
        );
        eprintln!(
            "{phase}: {} GETs and {} POSTs, 0 failed: {:?}",
            seen.gets, seen.posts, seen.bodies
        );
        seen.bodies
    }

    /// For a load during which replicas were SIGKILLed (each kill between
    /// the two instants of `kills`): no GET may fail; a POST may, only when
    /// it was in flight as a replica was killed (sent before the kill's
    /// end plus `dying`, the time a killed process may take to go; answered
    /// after the kill began). Returns the number of failed POSTs.
    fn finish_with_kills(
        self,
        phase: &str,
        kills: &[(Instant, Instant)],
        dying: Duration,
    ) -> usize {
        let seen = self.stop(phase);
        let gets: Vec<&Failure> = seen
            .failures
            .iter()
            .filter(|f| f.method == Method::Get)
            .collect();
        assert!(
            gets.is_empty(),
            "{phase}: {} of {} GETs failed (the gateway sends a GET again when its replica dies): {:?}",
            gets.len(),
            seen.gets,
            &gets[..gets.len().min(5)]
        );
        let unexplained: Vec<&Failure> = seen
            .failures
            .iter()
            .filter(|f| {
                !kills
                    .iter()
                    .any(|(began, done)| f.sent <= *done + dying && f.ended >= *began)
            })
            .collect();
        assert!(
            unexplained.is_empty(),
            "{phase}: {} POSTs failed that were not in flight when a replica was killed: {:?}",
            unexplained.len(),
            &unexplained[..unexplained.len().min(5)]
        );
        eprintln!(
            "{phase}: {} GETs (0 failed), {} POSTs ({} failed, each in flight at one of {} kills): {:?}",
            seen.gets,
            seen.posts,
            seen.failures.len(),
            kills.len(),
            seen.bodies
        );
        seen.failures.len()
    }
}

pub fn cove_ok(app: &App, args: &[&str]) -> String {
    let (code, out) = app.merged(args);
    assert_eq!(code, Some(0), "cove {args:?}:\n{out}");
    out
}

fn web_replicas(app: &App) -> Vec<serde_json::Value> {
    app.ps()
        .into_iter()
        .filter(|r| r["service"] == "web" && r["state"] == "running")
        .collect()
}

/// Lets the load run a moment, so every phase has requests before and after.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn deploy_scale_and_rollback_drop_no_request() {
    let app = App::new(&compose(1, false));
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[3]);
    assert_eq!(get(gw).unwrap(), "v1");

    // A new revision, replica by replica.
    let load = Load::start(gw);
    settle();
    fs_err::write(app.dir().join("compose.yaml"), compose(2, false)).unwrap();
    let out = cove_ok(&app, &["deploy", "web", "--message", "version 2"]);
    assert!(
        out.contains("revision 2 runs on every replica (3 replaced)"),
        "{out}"
    );
    settle();
    let bodies = load.finish("deploy");
    assert!(
        bodies.contains_key("v1") && bodies.contains_key("v2"),
        "{bodies:?}"
    );
    let rows = web_replicas(&app);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["revision"] == 2), "{rows:?}");
    assert!((0..10).all(|_| get(gw).unwrap() == "v2"));

    // The same again: nothing to do.
    let out = cove_ok(&app, &["deploy", "web"]);
    assert!(
        out.contains("revision 2 is already running; nothing to do"),
        "{out}"
    );

    // 3 → 5 → 2.
    let load = Load::start(gw);
    settle();
    cove_ok(&app, &["scale", "web=5"]);
    eventually(30, "5 healthy replicas", || {
        web_replicas(&app)
            .iter()
            .filter(|r| r["health"] == "healthy")
            .count()
            == 5
    });
    wait_for_targets(&app, &[5]);
    settle();
    cove_ok(&app, &["scale", "web=2"]);
    assert_eq!(web_replicas(&app).len(), 2);
    wait_for_targets(&app, &[2]);
    settle();
    load.finish("scale 3 → 5 → 2");

    // Back to revision 1, without a build.
    let load = Load::start(gw);
    settle();
    let out = cove_ok(&app, &["rollback", "web"]);
    assert!(out.contains("revision 1 runs on every replica"), "{out}");
    settle();
    load.finish("rollback");
    assert!((0..10).all(|_| get(gw).unwrap() == "v1"));
    let history = cove_ok(&app, &["history", "web", "--format", "json"]);
    let h: serde_json::Value = serde_json::from_str(history.lines().collect::<String>().as_str())
        .unwrap_or_else(|e| panic!("{e}: {history}"));
    let numbers: Vec<u64> = h["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "{h}");
    assert_eq!(h["current"], 1);
    assert_eq!(h["revisions"][1]["message"], "version 2");
    assert_eq!(
        h["revisions"][0]["pinned"], true,
        "held by the rollback: {h}"
    );

    // A revision that never turns healthy rolls back by itself.
    let load = Load::start(gw);
    settle();
    fs_err::write(app.dir().join("compose.yaml"), compose(3, true)).unwrap();
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("unhealthy"), "says why: {out}");
    assert!(out.contains("rolling back to revision 1"), "{out}");
    assert!(out.contains("the previous revision runs again"), "{out}");
    settle();
    let bodies = load.finish("failed deploy");
    assert_eq!(bodies.keys().collect::<Vec<_>>(), ["v1"], "v3 never served");
    let rows = web_replicas(&app);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["revision"] == 1), "{rows:?}");
}

/// A healthy replica SIGKILLed about every second, 8 to 10 times, while
/// another is healthy, under load (a shorter version of bench/reliability's
/// last phase): `restart: always` brings each back;
/// no GET fails (sent again on another replica), and a POST fails only when
/// it was in flight at the replica as it was killed.
#[test]
fn sigkilled_replicas_fail_only_the_posts_they_held() {
    let app =
        App::new(&compose(1, false).replace("    expose:", "    restart: always\n    expose:"));
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[3]);
    let load = Load::start(gw);
    settle();
    // A healthy replica killed about every second, while another serves:
    // the promise is that a GET goes again to a replica that is up, so a
    // kill waits until at least two are healthy (on a loaded machine a
    // replica may take over a second to come back; killing the last one
    // standing would fail GETs for want of any replica, not of a retry).
    let mut kills = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end && kills.len() < 10 {
        let tick = Instant::now();
        let healthy: Vec<u64> = web_replicas(&app)
            .iter()
            .filter(|r| r["health"] == "healthy")
            .filter_map(|r| r["pid"].as_u64())
            .collect();
        if healthy.len() < 2 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let pid = healthy[kills.len() % healthy.len()];
        let began = Instant::now();
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        if killed.success() {
            kills.push((began, Instant::now()));
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    assert!(kills.len() >= 8, "{} replicas killed in 30 s", kills.len());
    settle();
    let failed = load.finish_with_kills("SIGKILL", &kills, Duration::from_millis(500));
    eprintln!("{} kills, {failed} POSTs failed", kills.len());
    // All three back, each restarted by cove.
    eventually(30, "3 healthy replicas again", || {
        web_replicas(&app)
            .iter()
            .filter(|r| r["health"] == "healthy")
            .count()
            == 3
    });
    let restarts: u64 = web_replicas(&app)
        .iter()
        .filter_map(|r| r["restarts"].as_u64())
        .sum();
    assert!(
        restarts >= kills.len() as u64,
        "{restarts} restarts for {} kills",
        kills.len()
    );
    let load = Load::start(gw);
    settle();
    settle();
    load.finish("after the kills");
}

/// Answers after 300 ms.
const SLOW: &str = r#"
import http.server, os, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path != "/healthz":
            time.sleep(0.3)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.do_GET()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn autoscaling_follows_the_requests_in_flight() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {http: /healthz}
      autoscale: {min: 1, max: 3, target_concurrency: 2, scale_down_after: 2s}
    expose: ["8000"]
    healthcheck: {interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#,
    );
    fs_err::write(app.dir().join("server.py"), SLOW).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[1]);
    // 8 clients, each with one slow request in flight: 8 / 2 → 3 (max).
    let load = Load::start_with(gw, 8);
    eventually(30, "3 healthy replicas", || {
        web_replicas(&app)
            .iter()
            .filter(|r| r["health"] == "healthy")
            .count()
            == 3
    });
    load.finish("autoscale up");
    // Idle for longer than `scale_down_after`: back to 1.
    eventually(30, "1 replica", || web_replicas(&app).len() == 1);
    let (_, logs) = app.merged(&["logs"]);
    // Up (in one step or more as the load ramps up), then down, each with
    // its reason.
    assert!(logs.contains("autoscale: 1 → "), "{logs}");
    assert!(logs.contains("→ 3 replicas ("), "{logs}");
    assert!(logs.contains("→ 1 replicas ("), "{logs}");
    assert!(logs.contains("in flight, target 2 per replica"), "{logs}");
}

/// Serves the file `build/out.txt` as it was when it started.
const FILE_SERVER: &str = r#"
import http.server, os
body = open("build/out.txt", "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.do_GET()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn up_watch_rebuilds_and_redeploys_a_changed_service_without_dropping_requests() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      build: sh -c "mkdir -p build && cp src/in.txt build/out.txt"
      run: python3 server.py
      health: {http: /}
    expose: ["8000"]
    deploy: {replicas: 2}
    healthcheck: {interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}
    develop:
      watch:
        - {path: ./src, action: rebuild, ignore: ["*.swp"]}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#,
    );
    fs_err::write(app.dir().join("server.py"), FILE_SERVER).unwrap();
    fs_err::create_dir_all(app.dir().join("src")).unwrap();
    fs_err::write(app.dir().join("src/in.txt"), "one").unwrap();
    let mut up = crate::up::Up::start(app.dir(), &["--watch"]);
    up.wait_for("watching", 30);
    let gw = wait_for_targets(&app, &[2]);
    assert_eq!(get(gw).unwrap(), "one");
    let load = Load::start(gw);
    settle();
    // An ignored file changes nothing; the source does.
    fs_err::write(app.dir().join("src/.in.txt.swp"), "x").unwrap();
    fs_err::write(app.dir().join("src/in.txt"), "two").unwrap();
    up.wait_for("revision 2 runs on every replica", 60);
    settle();
    let bodies = load.finish("watch redeploy");
    assert!(bodies.contains_key("two"), "{bodies:?}");
    assert!((0..10).all(|_| get(gw).unwrap() == "two"));
    assert_eq!(up.interrupt(), Some(0));
}

#[test]
fn an_idle_service_sleeps_and_the_next_request_wakes_it() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {http: /healthz}
      autoscale: {min: 0, max: 2, target_concurrency: 4, scale_down_after: 1s}
    environment: {VERSION: "1", BROKEN: "0"}
    expose: ["8000"]
    healthcheck: {interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#,
    );
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[1]);
    assert_eq!(get(gw).unwrap(), "v1");
    eventually(30, "web to sleep", || web_replicas(&app).is_empty());
    // Held while one replica starts, then answered.
    let started = Instant::now();
    assert_eq!(get(gw).unwrap(), "v1");
    eprintln!("woken and answered in {:?}", started.elapsed());
    assert_eq!(web_replicas(&app).len(), 1);
    let (_, logs) = app.merged(&["logs"]);
    assert!(logs.contains("autoscale: 1 → 0 replicas"), "{logs}");
    assert!(
        logs.contains("autoscale: 0 → 1 replicas (a request came while it was scaled to zero)"),
        "{logs}"
    );
}

/// A service allowed to sleep after 1 s idle, whose replica takes 3 s to
/// answer its first health check: it is not scaled away while it starts,
/// so `up -d` sees it ready; it sleeps once it served.
#[test]
fn a_slow_start_is_not_scaled_away_before_it_answered() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: sh -c "sleep 3; exec python3 server.py"
      health: {http: /healthz}
      autoscale: {min: 0, max: 1, target_concurrency: 4, scale_down_after: 1s}
    environment: {VERSION: "1", BROKEN: "0"}
    expose: ["8000"]
    healthcheck: {interval: 1s, timeout: 1s, retries: 100, start_period: 60s, start_interval: 100ms}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#,
    );
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    let out = cove_ok(&app, &["up", "-d"]);
    assert!(out.contains("web-1 healthy"), "{out}");
    eventually(30, "web to sleep once it served", || {
        web_replicas(&app).is_empty()
    });
    let (_, logs) = app.merged(&["logs"]);
    assert_eq!(
        logs.matches("autoscale: 1 → 0 replicas").count(),
        1,
        "{logs}"
    );
}

#[test]
fn services_named_by_others_keep_their_address_across_deploys() {
    let compose = |version: u32| {
        format!(
            r#"
services:
  api:
    x-cove:
      run: python3 server.py
      health: {{http: /healthz}}
    environment: {{VERSION: "{version}", BROKEN: "0"}}
    expose: ["8000"]
    deploy: {{replicas: 2}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
  caller:
    x-cove: {{run: sleep 600}}
    environment: {{API_URL: "http://api:8000/"}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#
        )
    };
    let app = App::new(&compose(1));
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    // `api:8000` is the service's own address, not a replica's.
    let caller = app
        .ps()
        .into_iter()
        .find(|r| r["service"] == "caller")
        .and_then(|r| r["pid"].as_u64())
        .unwrap();
    let environ = fs_err::read(format!("/proc/{caller}/environ")).unwrap();
    let url = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"API_URL="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let replicas: Vec<String> = app
        .ps()
        .iter()
        .filter(|r| r["service"] == "api")
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    assert!(!replicas.contains(&addr.to_string()), "{addr} {replicas:?}");
    let routes = cove_ok(&app, &["routes"]);
    assert!(
        routes.contains(&format!("{addr} (`api` by name)")),
        "shown: {routes}"
    );
    eventually(30, "the service address to answer", || {
        get(addr).is_ok_and(|b| b == "v1")
    });
    // Callers keep reaching it while every replica moves.
    let load = Load::start(addr);
    settle();
    fs_err::write(app.dir().join("compose.yaml"), compose(2)).unwrap();
    cove_ok(&app, &["deploy", "api"]);
    settle();
    let bodies = load.finish("deploy behind the service address");
    assert!(bodies.contains_key("v2"), "{bodies:?}");
    let moved: Vec<String> = app
        .ps()
        .iter()
        .filter(|r| r["service"] == "api")
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(moved, replicas, "start-first: new replicas, new addresses");
    assert!((0..10).all(|_| get(addr).unwrap() == "v2"));
}

#[test]
fn deploying_everything_leaves_unchanged_recipes_running() {
    crate::recipes::require(&["redis-server"]);
    let app = App::new(
        &compose(1, false).replace("services:\n", "services:\n  cache:\n    image: redis:7\n"),
    );
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let pid = |app: &App| {
        app.ps()
            .into_iter()
            .find(|r| r["service"] == "cache")
            .and_then(|r| r["pid"].as_u64())
    };
    let before = pid(&app).expect("redis runs");
    // Every running service: the recipe's program is installed, not built,
    // and its config did not change.
    let out = cove_ok(&app, &["deploy"]);
    assert!(
        out.contains("cache: revision 1 is already running; nothing to do"),
        "{out}"
    );
    assert_eq!(pid(&app), Some(before), "redis kept running");
}

/// `SERVER`, but with `CRASH_SOON=1` exits 1 s after it first answered (its
/// health check's first request): healthy first, however slowly it starts,
/// then gone during `monitor`.
const CRASHING: &str = r#"
import http.server, os, threading
crash = threading.Event()
if os.environ.get("CRASH_SOON") == "1":
    threading.Thread(target=lambda: (crash.wait(), __import__("time").sleep(1.0), os._exit(3)), daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        body = ("v" + os.environ["VERSION"]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        crash.set()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn monitor_catches_a_replica_that_fails_after_turning_healthy_and_pause_stops_where_it_is() {
    let compose = |version: u32, crash: bool, action: &str| {
        format!(
            r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /}}
    environment: {{VERSION: "{version}", CRASH_SOON: "{}"}}
    expose: ["8000"]
    restart: always
    deploy:
      replicas: 2
      update_config: {{monitor: 3s, failure_action: {action}}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#,
            u8::from(crash)
        )
    };
    let app = App::new(&compose(1, false, "rollback"));
    fs_err::write(app.dir().join("server.py"), CRASHING).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[2]);
    // Healthy at first, gone a second later: `monitor` (3 s) sees it.
    fs_err::write(app.dir().join("compose.yaml"), compose(2, true, "rollback")).unwrap();
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("watching revision 2 for 3s"), "{out}");
    assert!(out.contains("during monitor: exited with code 3"), "{out}");
    assert!(out.contains("rolled back to revision 1"), "{out}");
    let rows = web_replicas(&app);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["revision"] == 1), "{rows:?}");
    assert!((0..5).all(|_| get(gw).unwrap() == "v1"));
    // `pause`: no rollback; what was not replaced keeps running.
    fs_err::write(app.dir().join("compose.yaml"), compose(3, true, "pause")).unwrap();
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("paused"), "{out}");
    assert!(!out.contains("rolling back"), "{out}");
    let rows = web_replicas(&app);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["revision"] == 1),
        "the failed one was not kept: {rows:?}"
    );
}
