//! The gateway under `cove up`: routes from the Compose file, targets from
//! the replicas' health, `cove routes`, TCP routes, a taken address. Real
//! processes (a small Python HTTP server, Redis); the gateway listens on
//! port 0 so tests run side by side.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::daemon::{App, eventually};

/// An HTTP server that answers with who it is and what it was asked.
/// `/healthz` fails on the replica named by `SICK_REPLICA`.
const SERVER: &str = r#"
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/healthz" and os.environ.get("SICK_REPLICA") == os.environ["COVE_REPLICA"]:
            code = 500
        else:
            code = 200
        body = json.dumps({
            "service": os.environ["COVE_SERVICE"],
            "replica": os.environ["COVE_REPLICA"],
            "path": self.path,
            "host": self.headers.get("host"),
            "xff": self.headers.get("x-forwarded-for"),
            "proto": self.headers.get("x-forwarded-proto"),
            "request_id": self.headers.get("x-request-id"),
        }).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

pub fn app(yaml: &str) -> App {
    app_with_env(yaml, &[])
}

fn app_with_env(yaml: &str, env: &[(&str, &std::path::Path)]) -> App {
    let app = App::with_env(yaml, env);
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    app
}

/// `cove routes --format json`.
fn routes(app: &App) -> serde_json::Value {
    let (code, out) = app.merged(&["routes", "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Waits until every route has `n` targets; the gateway's address.
pub fn wait_for_targets(app: &App, n: &[usize]) -> SocketAddr {
    eventually(30, "the routes' targets", || {
        let r = routes(app);
        let counts: Vec<usize> = r["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["targets"].as_array().unwrap().len())
            .collect();
        counts == n
    });
    let url = routes(app)["url"].as_str().unwrap().to_string();
    url.trim_start_matches("http://").parse().unwrap()
}

/// One request (`Connection: close`): status and body.
fn get(gateway: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http(gateway, "GET", host, path, b"");
    (status, body)
}

/// One request (`Connection: close`): status, head and body.
pub fn http(
    gateway: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(gateway).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (400, 413) before it has read a large body.
    let _ = s.write_all(body);
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

const WEB_AND_API: &str = r#"
services:
  web:
    x-cove: {run: python3 server.py}
    expose: ["8000"]
    deploy: {replicas: 2}
  api:
    x-cove:
      run: python3 server.py
      routes: [{path: /api, strip_prefix: true}]
    expose: ["9000"]
  worker:
    x-cove: {run: sleep 600}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

#[test]
fn routes_reach_services_by_host_and_path_across_replicas() {
    let app = app(WEB_AND_API);
    // Before `up`: the file's routes, no targets.
    let before = routes(&app);
    assert_eq!(before["running"], false);
    let table = app.merged(&["routes"]).1;
    assert!(table.contains("web.localhost"), "{table}");
    assert!(table.contains("/api (stripped)"), "{table}");
    assert!(!table.contains("worker"), "no port, no route: {table}");

    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = wait_for_targets(&app, &[2, 1]);
    assert_ne!(gw.port(), 0, "the bound port is shown");

    let mut replicas = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = get(gw, "web.localhost", "/x?y=1");
        assert_eq!(status, 200, "{body}");
        let b = json(&body);
        assert_eq!(b["service"], "web");
        assert_eq!(b["path"], "/x?y=1");
        assert_eq!(b["host"], format!("web.localhost"));
        assert_eq!(b["xff"], "127.0.0.1");
        assert_eq!(b["proto"], "http");
        assert!(b["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        replicas.insert(b["replica"].as_str().unwrap().to_string());
    }
    assert_eq!(replicas.len(), 2, "both replicas served: {replicas:?}");

    let (status, body) = get(gw, "127.0.0.1", "/api/users/7");
    assert_eq!(status, 200, "{body}");
    let b = json(&body);
    assert_eq!(
        (b["service"].as_str(), b["path"].as_str()),
        (Some("api"), Some("/users/7"))
    );
    let (status, body) = get(gw, "elsewhere.test", "/nothing");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no route"), "{body}");

    // A stopped service leaves its routes without targets: 503.
    let (code, out) = app.merged(&["stop", "api"]);
    assert_eq!(code, Some(0), "{out}");
    wait_for_targets(&app, &[2, 0]);
    let (status, body) = get(gw, "127.0.0.1", "/api/x");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("`api`"), "{body}");
    let table = app.merged(&["routes"]).1;
    assert!(table.contains("none healthy"), "{table}");

    // `down` closes the gateway.
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(TcpStream::connect(gw).is_err(), "the gateway is gone");
}

#[test]
fn only_replicas_whose_health_check_passes_get_requests() {
    let app = app(r#"
services:
  web:
    x-cove:
      run: python3 server.py
      health: {http: /healthz}
    environment: {SICK_REPLICA: "2"}
    healthcheck: {interval: 200ms, retries: 1000, start_period: 0s}
    expose: ["8000"]
    deploy: {replicas: 2}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#);
    let (code, out) = app.merged(&["up", "-d", "--wait-timeout", "1"]);
    // Replica 2 never becomes healthy: `up -d` says so.
    assert_ne!(code, Some(0), "{out}");
    let gw = wait_for_targets(&app, &[1]);
    for _ in 0..10 {
        let (status, body) = get(gw, "web.localhost", "/");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["replica"], "1", "only the healthy replica");
    }
}

#[test]
fn tcp_routes_join_connections_to_a_replica() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let app = app(&format!(
        r#"
services:
  cache:
    image: redis:7
    x-cove:
      routes: [{{protocol: tcp, listen: "127.0.0.1:{port}"}}]
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    wait_for_targets(&app, &[1]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PING\r\nSET k v\r\nGET k\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !String::from_utf8_lossy(&got).contains("$1\r\nv\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+PONG\r\n+OK\r\n$1\r\nv\r\n",
        "Redis answered through the gateway"
    );
}

#[test]
fn a_taken_gateway_address_fails_up_and_starts_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let app = app(&WEB_AND_API.replace("127.0.0.1:0", &addr.to_string()));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "the gateway cannot listen on {addr}: the address is in use"
        )),
        "{out}"
    );
    assert!(out.contains("x-cove.gateway.listen"), "a hint: {out}");
    // By what: this test's own process holds it.
    assert!(
        out.contains(&format!("(pid {})", std::process::id())),
        "the holder named: {out}"
    );
    assert!(app.processes().is_empty(), "nothing started");
}

#[test]
fn apps_on_the_default_address_take_the_next_free_port() {
    let yaml = "services:\n  web:\n    x-cove: {run: python3 server.py}\n    expose: [\"8000\"]\n";
    let (a, b) = (app(yaml), app(yaml));
    for x in [&a, &b] {
        let (code, out) = x.merged(&["up", "-d"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("cove: gateway on http://127.0.0.1:"), "{out}");
    }
    let (ga, gb) = (wait_for_targets(&a, &[1]), wait_for_targets(&b, &[1]));
    assert_ne!(ga, gb);
    for g in [ga, gb] {
        assert!((2683..2715).contains(&g.port()), "{g}");
        let (status, body) = get(g, "web.localhost", "/");
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn requests_are_logged_as_json_and_counted_for_prometheus() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = free.local_addr().unwrap();
    drop(free);
    let app = app(&format!(
        "services:\n  web:\n    x-cove: {{run: python3 server.py}}\n    expose: [\"8000\"]\nx-cove:\n  gateway: {{listen: \"127.0.0.1:0\", metrics: \"{metrics}\"}}\n"
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = wait_for_targets(&app, &[1]);
    for path in ["/one", "/two"] {
        assert_eq!(get(gw, "web.localhost", path).0, 200);
    }
    eventually(10, "two access log lines", || {
        app.merged(&["logs", "gateway"])
            .1
            .matches("\"status\":200")
            .count()
            == 2
    });
    let (code, logs) = app.merged(&["logs", "gateway"]);
    assert_eq!(code, Some(0), "{logs}");
    let line = logs.lines().find(|l| l.contains("/two")).unwrap();
    let record = json(line.split_once(" | ").unwrap().1);
    assert_eq!(record["service"], "web");
    assert_eq!(record["route"], "web.localhost/");
    assert!(record["target"].as_str().unwrap().ends_with(":8000"));
    let (status, text) = get(metrics, "127.0.0.1", "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains(
            "cove_gateway_requests_total{route=\"web.localhost/\",service=\"web\",code=\"2xx\"} 2"
        ),
        "{text}"
    );
}

/// An HTTPS request by Python's `ssl` (trusting `ca`, else the system's
/// authorities), to `addr` with SNI and `Host` `name`: what came back.
fn https_get(addr: SocketAddr, name: &str, ca: Option<&str>, path: &str) -> String {
    let cafile = ca.map_or("None".to_string(), |c| format!("{c:?}"));
    let script = format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cafile={cafile})
with socket.create_connection(("{ip}", {port}), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="{name}") as s:
        s.sendall(b"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
print(out.decode())
"#,
        ip = addr.ip(),
        port = addr.port()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn https_with_a_certificate_from_the_local_ca() {
    let host_dir = tempfile::tempdir().unwrap();
    let app = app_with_env(
        "services:\n  web:\n    x-cove: {run: python3 server.py}\n    expose: [\"8000\"]\nx-cove:\n  gateway: {listen: \"127.0.0.1:0\", tls: {listen: \"127.0.0.1:0\"}}\n",
        &[("COVE_HOST_DIR", host_dir.path())],
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("cove: HTTPS on https://127.0.0.1:"), "{out}");
    wait_for_targets(&app, &[1]);
    let r = routes(&app);
    let ca = r["ca"].as_str().unwrap().to_string();
    assert_eq!(ca, host_dir.path().join("ca/ca.pem").display().to_string());
    let tls: SocketAddr = r["tls_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let answer = https_get(tls, "web.localhost", Some(&ca), "/over-tls");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = json(answer.split_once("\r\n\r\n").unwrap().1.trim());
    assert_eq!(body["proto"], "https");
    assert_eq!(body["path"], "/over-tls");
    // A client with only the system's authorities refuses it.
    let refused = https_get(tls, "web.localhost", None, "/");
    assert!(refused.contains("CERTIFICATE_VERIFY_FAILED"), "{refused}");
}
