//! A second standalone `cove gateway` on a port one already listens on is
//! refused (SO_REUSEPORT would have let it share the port and take half
//! the connections): it exits non-zero naming the address, with a hint,
//! and the first keeps serving. Loopback only; every wait bounded; the
//! gateways started here are killed by their pid.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::gateway::http;

/// A backend on 127.0.0.1 that answers `backend` to every request.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
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
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbackend",
                );
            });
        }
    });
    addr
}

/// `cove gateway`, killed (by its pid) if still running when dropped.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts `cove gateway --listen listen --upstream upstream`; its stderr
/// lines come on the receiver.
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

#[test]
fn a_second_gateway_on_a_port_in_use_is_refused_and_the_first_keeps_serving() {
    let upstream = backend();
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
        assert_eq!((status, body.as_str()), (200, "backend"), "{head}");
    }
    drop(first);
}
