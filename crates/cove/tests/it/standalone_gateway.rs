//! The standalone `cove gateway` end to end (docs/guides/gateway.md,
//! "Standalone"): in front of a backend of the test's own, a request goes
//! through; on SIGTERM the request in flight finishes, new connections are
//! refused, and the gateway exits 0; a second one on the same port is
//! refused. Loopback only; every wait bounded; gateways killed by pid.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::gateway::http;

/// A backend on 127.0.0.1: `/slow` answers after a second (and says on
/// `started` when it has the request), any other path at once. Each
/// answer names the path.
fn backend(started: mpsc::Sender<String>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let started = started.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                if path == "/slow" {
                    let _ = started.send(path.clone());
                    std::thread::sleep(Duration::from_secs(1));
                }
                let body = format!("answered {path}");
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

/// `cove gateway`, stopped (SIGKILL, by its pid) if the test ends first.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts `cove gateway --listen listen --upstream upstream --threads 2`;
/// its stderr lines come on the receiver.
fn start(listen: SocketAddr, upstream: SocketAddr) -> (Gateway, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
        .args(["gateway", "--listen", &listen.to_string()])
        .args(["--upstream", &upstream.to_string(), "--threads", "2"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Gateway(child), rx)
}

/// Polls `f` every 20 ms for up to `limit`; panics with `what` after.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("not within {limit:?}: {what}");
}

#[test]
fn standalone_gateway_proxies_and_finishes_the_request_in_flight_on_sigterm() {
    proxies_then_stops_gracefully_on("TERM");
}

/// Ctrl-C (SIGINT) stops it the same way as SIGTERM, as the gateway guide
/// says.
#[test]
fn standalone_gateway_finishes_the_request_in_flight_on_ctrl_c() {
    proxies_then_stops_gracefully_on("INT");
}

fn proxies_then_stops_gracefully_on(signal: &str) {
    let (started_tx, started) = mpsc::channel();
    let upstream = backend(started_tx);
    // A free port (the gateway binds it at once; nothing else here takes it).
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (gw, lines) = start(listen, upstream);
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("cove gateway printed nothing within 20 s");
    assert_eq!(
        first,
        format!("cove gateway: listening on {listen} (1 upstreams, 2 threads)")
    );

    // Through the gateway to the backend.
    let (status, head, body) = http(listen, "GET", "localhost", "/hello", b"");
    assert_eq!((status, body.as_str()), (200, "answered /hello"), "{head}");

    // A kept-alive connection, idle when SIGTERM comes.
    let mut idle = TcpStream::connect(listen).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(b"GET /kept HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"answered /kept") {
        let n = idle.read(&mut buf).expect("the kept-alive answer");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }

    // A slow request in flight when SIGTERM comes.
    let slow = std::thread::spawn(move || http(listen, "GET", "localhost", "/slow", b""));
    assert_eq!(
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the slow request did not reach the backend within 10 s"),
        "/slow"
    );
    let sent = Instant::now();
    let pid = gw.0.id().to_string();
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success()
    );
    // New connections are refused while the slow one is still answering.
    within(
        Duration::from_millis(500),
        &format!("new connections refused after SIG{signal}"),
        || {
            matches!(
                TcpStream::connect_timeout(&listen, Duration::from_millis(200)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        },
    );
    assert!(
        sent.elapsed() < Duration::from_millis(900),
        "the refusal came only after the slow request could have finished"
    );
    // The idle connection is closed at once (not held open for the drain,
    // nor until its idle timeout, 10 s).
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        idle.read(&mut buf).map_err(|e| e.kind()),
        Ok(0),
        "the idle kept-alive connection closed at SIG{signal}"
    );
    // The request in flight finishes, whole.
    let (status, _, body) = slow.join().expect("the slow request failed");
    assert_eq!((status, body.as_str()), (200, "answered /slow"));
    // And the gateway exits 0, soon (well before its 30 s drain: nothing
    // is left in flight).
    let mut gw = gw;
    within(
        Duration::from_secs(5),
        &format!("cove gateway exiting after SIG{signal}"),
        || gw.0.try_wait().unwrap().is_some(),
    );
    assert_eq!(gw.0.wait().unwrap().code(), Some(0));
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "exited {:?} after SIG{signal}",
        sent.elapsed()
    );
}

/// A second standalone `cove gateway` on a port one already listens on is
/// refused (SO_REUSEPORT would have let it share the port and take half
/// the connections): it exits non-zero naming the address, with a hint,
/// and the first keeps serving.
#[test]
fn a_second_gateway_on_a_port_in_use_is_refused_and_the_first_keeps_serving() {
    let (started, _) = mpsc::channel();
    let upstream = backend(started);
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (first, first_lines) = start(listen, upstream);
    let line = first_lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the first cove gateway printed nothing within 20 s");
    assert!(line.starts_with("cove gateway: listening on"), "{line}");

    let (mut second, second_lines) = start(listen, upstream);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the second cove gateway still runs after 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    let mut text = String::new();
    while let Ok(line) = second_lines.recv_timeout(Duration::from_secs(5)) {
        text.push_str(&line);
        text.push('\n');
    }
    assert!(
        text.starts_with(&format!(
            "error: cannot listen on {listen}: the address is already in use"
        )),
        "{text}"
    );
    assert!(text.contains("\n  = hint: "), "{text}");
    assert!(!text.contains("listening on"), "{text}");

    // The first one still serves, every connection (none goes to a
    // second set of sockets).
    for _ in 0..8 {
        let (status, head, body) = http(listen, "GET", "localhost", "/", b"");
        assert_eq!((status, body.as_str()), (200, "answered /"), "{head}");
    }
    drop(first);
}

/// Bad health check flags are refused before anything listens: a
/// `--health-path` that is not a path (with the one meant), a duration of
/// zero or not a duration (clap's usage error, exit 2).
#[test]
fn bad_health_check_flags_are_refused_saying_which() {
    let run = |extra: &[&str]| {
        crate::daemon::run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .args(["gateway", "--listen", "127.0.0.1:1"])
                .args(["--upstream", "127.0.0.1:2"])
                .args(extra)
                .env("NO_COLOR", "1"),
            60,
        )
    };
    let out = run(&["--health-path", "healthz"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with("error: --health-path `healthz` is not a path\n")
            && out
                .stderr
                .contains("hint: write it from the root, as `/healthz`"),
        "{out}"
    );
    let out = run(&["--health-interval", "0"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("--health-interval") && out.stderr.contains("must be above zero"),
        "{out}"
    );
    let out = run(&["--connect-timeout", "soon"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("`soon` is not a duration"), "{out}");
    let out = run(&["--no-health-check", "--health-path", "/x"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("cannot be used with"), "{out}");
}
