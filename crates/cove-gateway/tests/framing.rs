//! Framing, Host and upgrade rules (issue 20, RFC 9110/9112), judged on the
//! wire: raw bytes from a client socket, a recording upstream that keeps
//! every byte it gets and counts the requests it parsed, and the exact
//! status line the client reads. Every case runs on both paths
//! (`Limits::fast_path` off and on); nothing here looks at hyper. Every
//! read is bounded, so a hang fails instead of stalling.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cove_gateway::proxy::{Gateway, Limits};
use cove_gateway::table::{Policy, Pool, Route, Table, Target};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The bound on every wait for bytes.
const WAIT: Duration = Duration::from_secs(5);

/// The two ways a request can be served.
const PATHS: [bool; 2] = [false, true];

// ---------------------------------------------------------------------
// The recording upstream.

/// What one upstream connection got.
#[derive(Debug, Default, Clone)]
struct Conn {
    /// Every byte, as it came.
    bytes: Vec<u8>,
    /// The heads of the requests parsed whole (head and body).
    heads: Vec<String>,
    /// The gateway closed it.
    closed: bool,
}

/// The raw answer to a request, chosen by the test from the request's head.
type Answers = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl Upstream {
    /// An upstream on 127.0.0.1:0 answering each request with
    /// `answers(head)`; it closes the connection after an answer whose
    /// head says `connection: close`.
    async fn start(answers: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Upstream {
        let answers: Answers = Arc::new(answers);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let up = Upstream {
            addr,
            conns: conns.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = {
                    let mut c = conns.lock().unwrap();
                    c.push(Conn::default());
                    c.len() - 1
                };
                tokio::spawn(serve_recorded(
                    stream,
                    conns.clone(),
                    index,
                    answers.clone(),
                ));
            }
        });
        up
    }

    /// An upstream that answers every request `200 OK` with body `ok`.
    async fn ok() -> Upstream {
        Upstream::start(|_| ok_answer("ok")).await
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }

    /// Requests parsed whole, over every connection.
    fn requests(&self) -> usize {
        self.conns().iter().map(|c| c.heads.len()).sum()
    }

    fn heads(&self) -> Vec<String> {
        self.conns().into_iter().flat_map(|c| c.heads).collect()
    }

    /// Every byte it got, over every connection.
    fn bytes(&self) -> String {
        let all: Vec<u8> = self.conns().into_iter().flat_map(|c| c.bytes).collect();
        String::from_utf8_lossy(&all).into_owned()
    }

    /// Waits (bounded) until `f` holds of what it got.
    async fn until(&self, what: &str, f: impl Fn(&[Conn]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !f(&self.conns()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "upstream: not within {WAIT:?}: {what}: {:?}",
                self.conns()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn ok_answer(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve_recorded(
    mut stream: TcpStream,
    conns: Arc<Mutex<Vec<Conn>>>,
    index: usize,
    answers: Answers,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = |conns: &Arc<Mutex<Vec<Conn>>>| conns.lock().unwrap()[index].closed = true;
    loop {
        // A whole request: head, then its body by its framing.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return closed(&conns),
                Ok(n) => {
                    conns.lock().unwrap()[index]
                        .bytes
                        .extend_from_slice(&chunk[..n]);
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let body_end = match framing(&head) {
            Framing::Length(n) => Some(head_end + n),
            Framing::Chunked => None,
            Framing::None => Some(head_end),
        };
        let end = loop {
            let end = match body_end {
                Some(e) if buf.len() >= e => Some(e),
                Some(_) => None,
                None => chunked_end(&buf, head_end),
            };
            if let Some(e) = end {
                break e;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return closed(&conns),
                Ok(n) => {
                    conns.lock().unwrap()[index]
                        .bytes
                        .extend_from_slice(&chunk[..n]);
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        };
        buf.drain(..end);
        conns.lock().unwrap()[index].heads.push(head.clone());
        let answer = answers(&head);
        if stream.write_all(&answer).await.is_err() {
            return closed(&conns);
        }
        let answer_head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        if answer_head.contains("connection: close\r\n") {
            let _ = stream.shutdown().await;
            // Wait for the gateway to close its side.
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
            }
            return closed(&conns);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

enum Framing {
    Length(usize),
    Chunked,
    None,
}

/// The framing of a well-formed message head (what the gateway sends is).
fn framing(head: &str) -> Framing {
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            return Framing::Length(value.trim().parse().unwrap());
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Framing::Chunked;
        }
    }
    Framing::None
}

/// Where a chunked body that starts at `at` ends, once `buf` has it all.
fn chunked_end(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let line = find(&buf[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&buf[at..at + line]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).ok()?;
        at += line + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let l = find(&buf[at..], b"\r\n")?;
                at += l + 2;
                if l == 0 {
                    return Some(at);
                }
            }
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}

// ---------------------------------------------------------------------
// The gateway, and a raw client.

/// A gateway on 127.0.0.1:0: `a.test` → `a`; `/api` (prefix stripped) and
/// everything else → `up`.
struct Setup {
    addr: SocketAddr,
    pool: Arc<Pool>,
    table_routes: Arc<Table>,
    fast_path: bool,
}

async fn gateway(up: &Upstream, a: &Upstream, limits: Limits) -> Setup {
    let pool = Pool::new("svc", vec![Target::new(up.addr)], Policy::RoundRobin);
    let pool_a = Pool::new("a", vec![Target::new(a.addr)], Policy::RoundRobin);
    let mut api = Route::new(None, "/api", pool.clone());
    api.strip_prefix = true;
    let table = Table::new(vec![
        Route::new(Some("a.test"), "/", pool_a),
        api,
        Route::new(None, "/", pool.clone()),
    ]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = Gateway::new(table, limits);
    let table_routes = gw.table();
    tokio::spawn(gw.serve(listener, std::future::pending()));
    Setup {
        addr,
        pool,
        table_routes,
        fast_path: limits.fast_path,
    }
}

fn limits(fast_path: bool) -> Limits {
    Limits {
        fast_path,
        ..Limits::default()
    }
}

/// A gateway (on `fast_path` or not) in front of `up`, and an `a.test`
/// upstream that answers `ok`.
async fn simple(up: &Upstream, fast_path: bool) -> Setup {
    let a = Upstream::ok().await;
    gateway(up, &a, limits(fast_path)).await
}

/// One answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status_line: String,
    /// The whole head, lowercased.
    head: String,
    body: Vec<u8>,
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    /// Whose answers these are, for messages.
    path: &'static str,
}

impl Client {
    async fn connect(gw: &Setup) -> Client {
        Client {
            s: TcpStream::connect(gw.addr).await.unwrap(),
            buf: Vec::new(),
            path: if gw.fast_path {
                "fast path"
            } else {
                "hyper path"
            },
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The gateway may close early (a refused head): a failed write is
        // for the answer to tell.
        let _ = self.s.write_all(bytes).await;
    }

    /// More bytes, bounded by `WAIT`; `false` at the end of the stream.
    async fn more(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(WAIT, self.s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!(
                "{}: no byte within {WAIT:?} (so far: {:?})",
                self.path,
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// The next answer; `None` when the connection closes first.
    async fn answer(&mut self) -> Option<Answer> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.more().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status_line = String::from_utf8_lossy(&self.buf[..head_end])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let code: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = loop {
            let end = if code == 101 || code == 204 || code == 304 {
                Some(head_end)
            } else {
                match framing(&head) {
                    Framing::Length(n) => (self.buf.len() >= head_end + n).then_some(head_end + n),
                    Framing::Chunked => chunked_end(&self.buf, head_end),
                    // Read to the end.
                    Framing::None => None,
                }
            };
            if let Some(e) = end {
                break e;
            }
            if !self.more().await {
                break self.buf.len();
            }
        };
        let body = self.buf[head_end..end].to_vec();
        self.buf.drain(..end);
        Some(Answer {
            status_line,
            head,
            body,
        })
    }

    /// Whether the gateway closes the connection with nothing more sent
    /// (bounded by `WAIT`); panics on more bytes.
    async fn closes(&mut self) -> bool {
        loop {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(
                        self.buf.is_empty(),
                        "{}: more after the answer: {:?}",
                        self.path,
                        String::from_utf8_lossy(&self.buf)
                    );
                    return true;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    assert!(
                        self.buf.is_empty(),
                        "{}: more after the answer: {:?}",
                        self.path,
                        String::from_utf8_lossy(&self.buf)
                    );
                    return false;
                }
            }
        }
    }
}

/// Sends `request` on a new connection: the one answer, and whether the
/// gateway then closed the connection with nothing more.
async fn exchange(gw: &Setup, request: &[u8]) -> (Answer, bool) {
    let mut c = Client::connect(gw).await;
    c.send(request).await;
    let answer = c.answer().await.unwrap_or_else(|| {
        panic!(
            "{}: closed without an answer to {:?}",
            c.path,
            String::from_utf8_lossy(request)
        )
    });
    let closed = c.closes().await;
    (answer, closed)
}

fn path_name(fast_path: bool) -> &'static str {
    if fast_path { "fast path" } else { "hyper path" }
}

/// A request that rides behind a refused one: it must never reach an
/// upstream.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// Upstream errors counted, over every route.
fn upstream_errors(gw: &Setup) -> u64 {
    cove_gateway::metrics::render(&gw.table_routes)
        .lines()
        .filter(|l| l.starts_with("cove_gateway_upstream_errors_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

// ---------------------------------------------------------------------
// 1, 9: answers with ambiguous framing.

#[tokio::test]
async fn answers_with_ambiguous_framing_are_a_502_and_their_connection_is_not_reused() {
    let answers: [(&str, &[u8]); 8] = [
        (
            "Content-Length then chunked",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunked then Content-Length",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "two equal Content-Lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "two different Content-Lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 3\r\n\r\nhello",
        ),
        (
            "a Content-Length list",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 3\r\n\r\nhello",
        ),
        (
            "gzip, no chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nhello",
        ),
        (
            "chunked, then gzip",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunked twice",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for fast_path in PATHS {
        for (what, bad) in answers {
            for method in ["GET", "POST"] {
                let up = Upstream::start(move |head| {
                    if head.starts_with("GET /next ") {
                        ok_answer("next")
                    } else {
                        bad.to_vec()
                    }
                })
                .await;
                let gw = simple(&up, fast_path).await;
                let case = format!("{} {method}: {what}", path_name(fast_path));
                let request = if method == "GET" {
                    b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()
                } else {
                    b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_vec()
                };
                let mut c = Client::connect(&gw).await;
                c.send(&request).await;
                let answer = c.answer().await;
                eprintln!(
                    "{case}: {:?}",
                    answer.as_ref().map(|a| (&a.status_line, &a.body))
                );
                let answer = answer.unwrap_or_else(|| panic!("{case}: closed without an answer"));
                assert_eq!(answer.status_line, "HTTP/1.1 502 Bad Gateway", "{case}");
                assert!(
                    !String::from_utf8_lossy(&answer.body).contains("hel"),
                    "{case}: the answer's body was passed on: {answer:?}"
                );
                // The upstream got the request once, and its connection is
                // closed, not reused.
                up.until(&format!("{case}: the connection closed"), |c| {
                    c.len() == 1 && c[0].closed
                })
                .await;
                assert_eq!(up.requests(), 1, "{case}");
                // The next request is served on a new upstream connection.
                let mut next = Client::connect(&gw).await;
                next.send(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n").await;
                let answer = next.answer().await.expect("the next answer");
                assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{case}");
                assert_eq!(answer.body, b"next", "{case}");
                let conns = up.conns();
                assert_eq!(conns.len(), 2, "{case}: {conns:?}");
                assert_eq!(conns[1].heads.len(), 1, "{case}");
                // It counts against the upstream.
                assert_eq!(upstream_errors(&gw), 1, "{case}");
            }
        }
    }
}

// ---------------------------------------------------------------------
// 2: upgrades other than WebSocket.

#[tokio::test]
async fn h2c_upgrades_are_never_forwarded_and_an_unasked_101_is_a_502() {
    let requests: [(&str, &[u8]); 3] = [
        (
            "h2c with HTTP2-Settings",
            b"GET /api/one HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        ),
        (
            "h2c without HTTP2-Settings",
            b"GET /api/one HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        ),
        (
            "h2c, HTTP2-Settings not named in Connection",
            b"GET /api/one HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        ),
    ];
    for fast_path in PATHS {
        for (what, request) in requests {
            for upstream_switches in [true, false] {
                // A naive upstream switches to whatever it is asked (or
                // to h2c unasked).
                let up = Upstream::start(move |head| {
                    if head.starts_with("GET /one ") && upstream_switches {
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec()
                    } else {
                        ok_answer("plain")
                    }
                })
                .await;
                let gw = simple(&up, fast_path).await;
                let case = format!(
                    "{}: {what}, upstream {}",
                    path_name(fast_path),
                    if upstream_switches {
                        "answers 101"
                    } else {
                        "answers 200"
                    }
                );
                let mut c = Client::connect(&gw).await;
                c.send(request).await;
                let answer = c.answer().await;
                eprintln!("{case}: {:?}", answer.as_ref().map(|a| &a.status_line));
                let answer = answer.unwrap_or_else(|| panic!("{case}: no answer"));
                let expected = if upstream_switches {
                    "HTTP/1.1 502 Bad Gateway"
                } else {
                    "HTTP/1.1 200 OK"
                };
                assert_eq!(answer.status_line, expected, "{case}");
                assert!(!answer.head.contains("\r\nupgrade:"), "{case}: {answer:?}");
                // The upstream saw a plain request: no upgrade asked.
                up.until(&case, |c| {
                    c.iter().map(|c| c.heads.len()).sum::<usize>() == 1
                })
                .await;
                let first = up.heads()[0].to_ascii_lowercase();
                assert!(first.starts_with("get /one http/1.1"), "{case}: {first}");
                assert!(
                    !first.contains("upgrade") && !first.contains("http2-settings"),
                    "{case}: {first}"
                );
                // The same client connection: the next request is routed,
                // its prefix stripped, forwarding headers added.
                c.send(b"GET /api/two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    .await;
                let answer = c.answer().await.unwrap_or_else(|| {
                    panic!("{case}: the connection closed before the second answer")
                });
                assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{case}");
                assert_eq!(answer.body, b"plain", "{case}");
                up.until(&case, |c| {
                    c.iter().map(|c| c.heads.len()).sum::<usize>() == 2
                })
                .await;
                let second = up.heads()[1].to_ascii_lowercase();
                assert!(second.starts_with("get /two http/1.1"), "{case}: {second}");
                assert!(
                    second.contains("x-forwarded-for: 127.0.0.1"),
                    "{case}: {second}"
                );
                assert!(!up.bytes().contains("/api/two"), "{case}: reached raw");
                if upstream_switches {
                    // The connection that switched is never used again.
                    let conns = up.conns();
                    assert_eq!(conns[0].heads.len(), 1, "{case}: {conns:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn websocket_upgrades_still_pass_and_a_101_to_another_protocol_is_a_502() {
    const WS: &[u8] = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    for fast_path in PATHS {
        for answer_protocol in ["websocket", "h2c"] {
            let up = Upstream::start(move |_| {
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {answer_protocol}\r\n\r\n"
                )
                .into_bytes()
            })
            .await;
            let gw = simple(&up, fast_path).await;
            let case = format!("{}: 101 {answer_protocol}", path_name(fast_path));
            let mut c = Client::connect(&gw).await;
            c.send(WS).await;
            let answer = c.answer().await.expect("an answer");
            eprintln!("{case}: {}", answer.status_line);
            let head = up.heads();
            assert_eq!(head.len(), 1, "{case}");
            assert!(
                head[0].to_ascii_lowercase().contains("upgrade: websocket"),
                "{case}: {head:?}"
            );
            if answer_protocol == "websocket" {
                assert_eq!(
                    answer.status_line, "HTTP/1.1 101 Switching Protocols",
                    "{case}"
                );
                c.send(b"raw websocket bytes").await;
                up.until(&case, |c| {
                    String::from_utf8_lossy(&c[0].bytes).ends_with("raw websocket bytes")
                })
                .await;
            } else {
                assert_eq!(answer.status_line, "HTTP/1.1 502 Bad Gateway", "{case}");
                assert!(!answer.head.contains("\r\nupgrade:"), "{case}: {answer:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------
// 3: Host.

#[tokio::test]
async fn a_missing_repeated_or_invalid_host_is_a_400() {
    let bad: [(&str, &[u8]); 9] = [
        ("no Host", b"GET / HTTP/1.1\r\n\r\n"),
        (
            "two equal Hosts",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        ),
        (
            "two different Hosts",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a.test\r\n\r\n",
        ),
        (
            "a path in Host",
            b"GET / HTTP/1.1\r\nHost: example.test/evil?x\r\n\r\n",
        ),
        ("a space in Host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
        (
            "userinfo in Host",
            b"GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n",
        ),
        ("a bad port", b"GET / HTTP/1.1\r\nHost: a.test:8x\r\n\r\n"),
        ("a Host list", b"GET / HTTP/1.1\r\nHost: a, a.test\r\n\r\n"),
        (
            "an absolute target with userinfo",
            b"GET http://u@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        ),
    ];
    for fast_path in PATHS {
        for (what, request) in bad {
            let up = Upstream::ok().await;
            let a = Upstream::ok().await;
            let gw = gateway(&up, &a, limits(fast_path)).await;
            let case = format!("{}: {what}", path_name(fast_path));
            let (answer, _) = exchange(&gw, request).await;
            eprintln!("{case}: {}", answer.status_line);
            assert_eq!(answer.status_line, "HTTP/1.1 400 Bad Request", "{case}");
            assert_eq!(up.requests() + a.requests(), 0, "{case}");
        }
    }
}

#[tokio::test]
async fn valid_hosts_an_absolute_target_and_http_1_0_without_host_are_served() {
    for fast_path in PATHS {
        let up = Upstream::ok().await;
        let a = Upstream::start(|_| ok_answer("a")).await;
        let gw = gateway(&up, &a, limits(fast_path)).await;
        let name = path_name(fast_path);
        for host in [
            "a.test:8080",
            "A.Test",
            "[::1]:80",
            "127.0.0.1",
            "x-y_z.test.",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let (answer, _) = exchange(&gw, req.as_bytes()).await;
            assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{name}: {host}");
        }
        // The absolute form: Host comes from the target (RFC 9110 §7.2),
        // for routing and for the upstream.
        let (answer, _) = exchange(
            &gw,
            b"GET http://a.test/x?q=1 HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        eprintln!(
            "{name}: absolute form: {} {:?}",
            answer.status_line, answer.body
        );
        assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{name}");
        assert_eq!(
            answer.body, b"a",
            "{name}: routed by the target's authority"
        );
        let head = a.heads().pop().unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /x?q=1 http/1.1\r\n"),
            "{name}: {head}"
        );
        assert!(head.contains("\r\nhost: a.test\r\n"), "{name}: {head}");
        assert!(!head.contains("b.test"), "{name}: {head}");
        // HTTP/1.0 without Host: routed as no host.
        let (answer, _) = exchange(&gw, b"GET /old HTTP/1.0\r\n\r\n").await;
        eprintln!("{name}: HTTP/1.0 without Host: {}", answer.status_line);
        assert!(
            answer.status_line.ends_with(" 200 OK"),
            "{name}: {answer:?}"
        );
        assert_eq!(answer.body, b"ok", "{name}");
    }
}

// ---------------------------------------------------------------------
// 4: request framing.

#[tokio::test]
async fn requests_with_ambiguous_framing_are_a_400_and_the_connection_closes() {
    let bad: &[(&str, &[u8], &str)] = &[
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "400 Bad Request",
        ),
        (
            "a Content-Length list, different",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
            "400 Bad Request",
        ),
        (
            "a Content-Length list, equal",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
            "400 Bad Request",
        ),
        (
            "a signed Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding gzip",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding chunked, gzip",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding chunked, chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding chunked twice",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding gzip, chunked (a coding not implemented)",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "501 Not Implemented",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "obs-fold with a tab",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n\ttwo\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "a bare CR in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\rtwo\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "whitespace before the colon",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "whitespace before the colon of Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
            "400 Bad Request",
        ),
    ];
    for fast_path in PATHS {
        for (what, request, status) in bad {
            let up = Upstream::ok().await;
            let gw = simple(&up, fast_path).await;
            let case = format!("{}: {what}", path_name(fast_path));
            let mut bytes = request.to_vec();
            bytes.extend_from_slice(SMUGGLED);
            let (answer, closed) = exchange(&gw, &bytes).await;
            eprintln!("{case}: {} (closed: {closed})", answer.status_line);
            assert_eq!(answer.status_line, format!("HTTP/1.1 {status}"), "{case}");
            assert!(closed, "{case}: the connection stayed open");
            assert_eq!(up.requests(), 0, "{case}: {:?}", up.heads());
            assert!(!up.bytes().contains("smuggled"), "{case}");
        }
    }
}

/// Shapes that hyper's parser normalises before the gateway sees the
/// request: it drops a `Content-Length` next to a `Transfer-Encoding` and
/// a second equal `Content-Length` from the fields it hands over, and
/// skips chunk extensions unread. The fast path refuses them (400, the
/// connection closed); on the hyper path they stay safe (see
/// `..._are_normalised_safely_on_the_hyper_path`). Fast path only.
#[tokio::test]
async fn shapes_hyper_normalises_are_a_400_on_the_fast_path() {
    for (what, request) in normalised_by_hyper() {
        let up = Upstream::ok().await;
        let gw = simple(&up, true).await;
        let mut bytes = request.to_vec();
        bytes.extend_from_slice(SMUGGLED);
        let (answer, closed) = exchange(&gw, &bytes).await;
        assert_eq!(answer.status_line, "HTTP/1.1 400 Bad Request", "{what}");
        assert!(closed, "{what}");
        assert_eq!(up.requests(), 0, "{what}");
    }
}

fn normalised_by_hyper() -> [(&'static str, &'static [u8]); 4] {
    [
        (
            "Content-Length then Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding then Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        ),
        (
            "two equal Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "a control byte in a chunk extension",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01b\r\nabc\r\n0\r\n\r\n",
        ),
    ]
}

/// What the hyper path does with the shapes above: one framing reaches
/// the upstream, never both lengths, never the extension; after
/// `Content-Length` with `Transfer-Encoding` the connection closes, so
/// what rides behind never reaches the upstream. (Equal lengths and a
/// well-delimited chunked body leave no doubt where the request ends:
/// what follows is a next request, served as such.)
#[tokio::test]
async fn shapes_hyper_normalises_are_normalised_safely_on_the_hyper_path() {
    for (what, request) in normalised_by_hyper() {
        let up = Upstream::ok().await;
        let gw = simple(&up, false).await;
        let mut bytes = request.to_vec();
        bytes.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let mut c = Client::connect(&gw).await;
        c.send(&bytes).await;
        let mut answers = Vec::new();
        while let Some(a) = c.answer().await {
            answers.push(a.status_line);
        }
        eprintln!("hyper path: {what}: {answers:?}");
        assert_eq!(answers[0], "HTTP/1.1 200 OK", "{what}");
        let heads = up.heads();
        let first = heads[0].to_ascii_lowercase();
        assert!(
            !(first.contains("content-length") && first.contains("transfer-encoding")),
            "{what}: {first}"
        );
        assert!(
            first.matches("content-length").count() <= 1,
            "{what}: {first}"
        );
        assert!(
            !up.bytes().contains('\x01'),
            "{what}: the extension went through"
        );
        if what.contains("Transfer-Encoding") {
            assert_eq!(answers.len(), 1, "{what}: {answers:?}");
            assert_eq!(heads.len(), 1, "{what}: {heads:?}");
            assert!(!up.bytes().contains("/next"), "{what}");
        } else {
            assert_eq!(answers.len(), 2, "{what}: {answers:?}");
            assert_eq!(heads.len(), 2, "{what}: {heads:?}");
        }
    }
}

#[tokio::test]
async fn invalid_chunked_bodies_are_a_400_not_an_upstream_error() {
    let bad: &[(&str, &[u8])] = &[
        ("a negative size", b"-1\r\nabc\r\n0\r\n\r\n"),
        ("a 0x size", b"0x3\r\nabc\r\n0\r\n\r\n"),
        ("a size not hex", b"zz\r\nabc\r\n0\r\n\r\n"),
        (
            "an overflowing size",
            b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        ),
        ("no CRLF after the data", b"3\r\nabcX\r\n0\r\n\r\n"),
        ("an LF alone after the size", b"3\nabc\r\n0\r\n\r\n"),
        ("a space inside the size", b"1 0\r\nabc\r\n0\r\n\r\n"),
        ("a bare CR in an extension", b"3;a\rb\r\nabc\r\n0\r\n\r\n"),
    ];
    for fast_path in PATHS {
        for (what, body) in bad {
            let up = Upstream::ok().await;
            let gw = simple(&up, fast_path).await;
            let case = format!("{}: {what}", path_name(fast_path));
            let mut bytes =
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            bytes.extend_from_slice(body);
            bytes.extend_from_slice(SMUGGLED);
            let (answer, closed) = exchange(&gw, &bytes).await;
            eprintln!(
                "{case}: {} (closed {closed}), upstream errors {}",
                answer.status_line,
                upstream_errors(&gw)
            );
            assert_eq!(answer.status_line, "HTTP/1.1 400 Bad Request", "{case}");
            assert!(closed, "{case}");
            assert_eq!(up.requests(), 0, "{case}: the upstream got a whole request");
            assert!(!up.bytes().contains("smuggled"), "{case}");
            assert_eq!(upstream_errors(&gw), 0, "{case}");
            let target = &gw.pool.targets[0];
            assert_eq!(target.ejections(), 0, "{case}: passive health marked it");
        }
    }
}

#[tokio::test]
async fn chunk_extensions_and_trailers_that_are_valid_pass() {
    for fast_path in PATHS {
        let up = Upstream::ok().await;
        let gw = simple(&up, fast_path).await;
        let (answer, _) = exchange(
            &gw,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;name=value;q=\"quoted\"\r\nabc\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(
            answer.status_line,
            "HTTP/1.1 200 OK",
            "{}",
            path_name(fast_path)
        );
        assert_eq!(up.requests(), 1);
    }
}

// ---------------------------------------------------------------------
// 6: head size.

#[tokio::test]
async fn heads_up_to_64_kib_pass_and_larger_ones_are_refused() {
    for fast_path in PATHS {
        for (kib, many) in [
            (63, false),
            (65, false),
            (63, true),
            (65, true),
            (112, false),
        ] {
            let up = Upstream::ok().await;
            let gw = simple(&up, fast_path).await;
            let case = format!(
                "{}: a {kib} KiB head ({})",
                path_name(fast_path),
                if many { "many fields" } else { "one field" }
            );
            let start = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".to_vec();
            let mut head = start.clone();
            let target = kib * 1024 - 2;
            if many {
                let mut i = 0;
                while head.len() + 1100 < target {
                    head.extend(format!("X-F{i:03}: ").as_bytes());
                    head.extend(std::iter::repeat_n(b'x', 1000));
                    head.extend(b"\r\n");
                    i += 1;
                }
            }
            let left = target - head.len() - "X-Big: \r\n".len();
            head.extend(b"X-Big: ");
            head.extend(std::iter::repeat_n(b'x', left));
            head.extend(b"\r\n\r\n");
            assert_eq!(head.len(), kib * 1024);
            let mut c = Client::connect(&gw).await;
            c.send(&head).await;
            let answer = c.answer().await;
            eprintln!("{case}: {:?}", answer.as_ref().map(|a| &a.status_line));
            if kib <= 64 {
                let answer = answer.unwrap_or_else(|| panic!("{case}: no answer"));
                assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{case}");
                assert_eq!(up.requests(), 1, "{case}");
            } else {
                let status = answer.map(|a| a.status_line).unwrap_or_default();
                assert!(
                    status == "HTTP/1.1 431 Request Header Fields Too Large"
                        || status == "HTTP/1.1 400 Bad Request",
                    "{case}: {status:?}"
                );
                assert_eq!(up.requests(), 0, "{case}");
            }
        }
    }
}

// ---------------------------------------------------------------------
// 7: HTTP/1.2.

/// RFC 9110 §2.5: a recipient treats a higher minor version as the
/// highest it supports. hyper's parser (httparse) refuses any version but
/// 1.0 and 1.1, so this is the fast path's alone (it rewrites the minor
/// digit and parses again).
#[tokio::test]
async fn http_1_2_is_served_as_http_1_1() {
    let up = Upstream::ok().await;
    let gw = simple(&up, true).await;
    let (answer, _) = exchange(&gw, b"GET / HTTP/1.2\r\nHost: a\r\n\r\n").await;
    assert_eq!(answer.status_line, "HTTP/1.1 200 OK");
    assert!(up.heads()[0].starts_with("GET / HTTP/1.1\r\n"));
}

// ---------------------------------------------------------------------
// 8: stalled request bodies.

#[tokio::test]
async fn a_stalled_request_body_is_a_408_and_the_connection_closes() {
    let body_read = Duration::from_millis(300);
    let heads: [(&str, &[u8]); 2] = [
        (
            "Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        ),
        (
            "chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        ),
    ];
    for fast_path in PATHS {
        for (what, request) in heads {
            let up = Upstream::ok().await;
            let a = Upstream::ok().await;
            let gw = gateway(
                &up,
                &a,
                Limits {
                    body_read,
                    ..limits(fast_path)
                },
            )
            .await;
            let case = format!("{}: {what}", path_name(fast_path));
            let (answer, closed) = exchange(&gw, request).await;
            eprintln!("{case}: {} (closed {closed})", answer.status_line);
            assert_eq!(answer.status_line, "HTTP/1.1 408 Request Timeout", "{case}");
            assert!(closed, "{case}");
            assert_eq!(up.requests(), 0, "{case}");
            // The abandoned request's upstream connection is closed, not
            // left waiting for the rest of the body.
            up.until(&format!("{case}: the upstream connection closed"), |c| {
                c.len() == 1 && c[0].closed
            })
            .await;
            assert_eq!(upstream_errors(&gw), 0, "{case}");
        }
    }
}

#[tokio::test]
async fn a_slow_body_that_keeps_coming_is_not_cut_off() {
    // Gaps of a tenth of the limit: far from it even on a busy machine.
    let body_read = Duration::from_secs(2);
    for fast_path in PATHS {
        let up = Upstream::ok().await;
        let a = Upstream::ok().await;
        let gw = gateway(
            &up,
            &a,
            Limits {
                body_read,
                ..limits(fast_path)
            },
        )
        .await;
        let mut c = Client::connect(&gw).await;
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
            .await;
        for _ in 0..12 {
            tokio::time::sleep(body_read / 10).await;
            c.send(b"x").await;
        }
        let answer = c.answer().await.expect("an answer");
        assert_eq!(
            answer.status_line,
            "HTTP/1.1 200 OK",
            "{}",
            path_name(fast_path)
        );
        assert_eq!(up.requests(), 1);
    }
}

#[test]
fn the_body_read_limit_is_10_s_by_default() {
    assert_eq!(Limits::default().body_read, Duration::from_secs(10));
}
