// The gateway's cases against real upstreams on port 0, over real
// sockets: included by `it.rs` (the HTTP/1.1 fast path, the default) and
// `it_hyper.rs` (every request through hyper), which set `FAST_PATH`.

use std::net::SocketAddr;
use std::sync::Arc;

use cove_gateway::proxy::{Gateway, Limits};
use cove_gateway::table::{Policy, Pool, Route, Table, Target};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The gateway's limits, on the path this run is about.
fn limits() -> Limits {
    Limits {
        fast_path: FAST_PATH,
        ..Limits::default()
    }
}

/// An upstream that answers `id`, the path it got, its headers and the
/// length of the body it read.
async fn upstream(id: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let headers: String = req
                            .headers()
                            .iter()
                            .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("?")))
                            .collect();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let text = format!("{id}\n{path}\n{headers}body: {}\n", body.len());
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A gateway serving `table` on port 0.
async fn gateway(table: Table) -> (Arc<Gateway>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = Gateway::new(table, limits());
    tokio::spawn(gw.clone().serve(listener, std::future::pending()));
    (gw, addr)
}

fn one_pool(targets: &[SocketAddr], policy: Policy) -> (Table, Arc<Pool>) {
    let pool = Pool::new(
        "svc",
        targets.iter().map(|a| Target::new(*a)).collect(),
        policy,
    );
    let table = Table::new(vec![Route::new(None, "/", pool.clone())]);
    (table, pool)
}

/// One request over a new connection: status and body.
async fn get(gw: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    send(gw, "GET", path, headers, Bytes::new()).await
}

async fn send(
    gw: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(gw).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", "app.localhost:8080");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_the_replicas() {
    let ups = [upstream("a").await, upstream("b").await];
    for policy in [Policy::LeastInFlight, Policy::RoundRobin] {
        let (table, _) = one_pool(&ups, policy);
        let (_, gw) = gateway(table).await;
        let (mut a, mut b) = (0, 0);
        for _ in 0..200 {
            let (status, body) = get(gw, "/", &[]).await;
            assert_eq!(status, 200, "{body}");
            match body.lines().next() {
                Some("a") => a += 1,
                Some("b") => b += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(a >= 60 && b >= 60, "{policy:?}: a {a}, b {b}");
    }
}

#[tokio::test]
async fn a_failed_connect_is_retried_on_another_replica() {
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let live = upstream("live").await;
    let (table, pool) = one_pool(&[dead, live], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    for _ in 0..10 {
        let (status, body) = get(gw, "/x", &[]).await;
        assert_eq!((status, body.lines().next()), (200, Some("live")), "{body}");
    }
    // The dead one is left out for a while (passive health).
    let now = cove_gateway::table::now_ms();
    assert!(pool.targets[0].is_ejected(now));
    assert!(!pool.targets[1].is_ejected(now));
    // Nothing was sent: a request with a body goes elsewhere too.
    let (table, _) = one_pool(&[dead, live], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    for _ in 0..4 {
        let (status, body) = send(gw, "POST", "/", &[], Bytes::from_static(b"data")).await;
        assert_eq!((status, body.lines().next()), (200, Some("live")), "{body}");
    }
    // Two dead (one just killed, one not back yet) and one live: each
    // request, POSTs too, is tried on the others in turn until one answers.
    let dead2 = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let orders = [
        [dead, dead2, live],
        [dead, live, dead2],
        [dead2, live, dead],
        [live, dead, dead2],
    ];
    for (order, policy) in orders
        .iter()
        .flat_map(|o| [(o, Policy::RoundRobin), (o, Policy::LeastInFlight)])
    {
        // A fresh pool each time: nothing ejected yet.
        let (table, _) = one_pool(order, policy);
        let (_, gw) = gateway(table).await;
        for _ in 0..3 {
            let (status, body) = get(gw, "/x", &[]).await;
            assert_eq!((status, body.lines().next()), (200, Some("live")), "{body}");
            let (status, body) = send(gw, "POST", "/", &[], Bytes::from_static(b"data")).await;
            assert_eq!((status, body.lines().next()), (200, Some("live")), "{body}");
        }
    }
    // Nowhere to go: the client learns of it, and its connection is closed
    // (the body it sent is not read as a request).
    let (table, _) = one_pool(&[dead], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    let answer = raw(
        gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\ndata",
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("`svc` could be reached"), "{answer}");
}

/// Reads a request head and closes without answering — or, with `head`,
/// after the head of an answer and part of its body (a replica that dies
/// under a request); counts the requests it got.
async fn dying_upstream(head: bool) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if let Ok(n) = s.read(&mut buf).await
                    && n > 0
                {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if head {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
                            .await;
                    }
                }
                drop(s);
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn only_idempotent_requests_are_retried_after_their_target_died_under_them() {
    let (dying, seen) = dying_upstream(false).await;
    let live = upstream("live").await;
    // Dying after the head of its answer: a GET is still retried.
    let (half, halves) = dying_upstream(true).await;
    let (table, _) = one_pool(&[half, live], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    for _ in 0..4 {
        let (status, body) = get(gw, "/", &[]).await;
        assert_eq!((status, body.lines().next()), (200, Some("live")));
    }
    assert!(halves.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let (table, _) = one_pool(&[dying, live], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    for method in ["GET", "HEAD", "DELETE"] {
        for _ in 0..4 {
            let (status, _) = send(gw, method, "/", &[], Bytes::new()).await;
            assert_eq!(status, 200, "{method}");
        }
    }
    let reached = seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        reached >= 1,
        "a GET went to the dying one and was retried: {reached}"
    );
    // Two targets die under it (one killed, one restarted behind a stale
    // kept-alive connection): a GET goes on to the third, in any order.
    let (dying2, _) = dying_upstream(false).await;
    for order in [
        [dying, dying2, live],
        [dying, live, dying2],
        [dying2, live, dying],
    ] {
        let (table, _) = one_pool(&order, Policy::RoundRobin);
        let (_, gw) = gateway(table).await;
        for _ in 0..3 {
            let (status, body) = get(gw, "/", &[]).await;
            assert_eq!(
                (status, body.lines().next()),
                (200, Some("live")),
                "{order:?}"
            );
        }
    }
    // A POST that reached it may have acted: it is not sent again.
    let (table, _) = one_pool(&[dying, live], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    let before = seen.load(std::sync::atomic::Ordering::SeqCst);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let (status, body) = send(gw, "POST", "/", &[], Bytes::from_static(b"x")).await;
        statuses.push((status, body.lines().next().map(str::to_string)));
    }
    statuses.sort();
    // Round robin: one POST to each; the dying one's is not replayed.
    assert_eq!(statuses[0], (200, Some("live".to_string())), "{statuses:?}");
    assert_eq!(statuses[1].0, 502, "{statuses:?}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn forwarding_headers_are_added_and_hop_by_hop_ones_removed() {
    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    let (status, body) = get(
        gw,
        "/p?q=1",
        &[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eA=="),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[1], "/p?q=1");
    assert!(
        lines.contains(&"x-forwarded-for: 10.0.0.1, 127.0.0.1"),
        "{body}"
    );
    assert!(lines.contains(&"x-forwarded-proto: http"), "{body}");
    assert!(
        lines.contains(&"x-forwarded-host: app.localhost:8080"),
        "{body}"
    );
    assert!(lines.contains(&"host: app.localhost:8080"), "{body}");
    assert!(lines.contains(&"x-kept: yes"), "{body}");
    assert!(
        lines.iter().any(|l| l.starts_with("x-request-id: ")),
        "{body}"
    );
    for gone in ["x-secret", "keep-alive", "proxy-authorization"] {
        assert!(
            !lines.iter().any(|l| l.starts_with(&format!("{gone}:"))),
            "{gone}: {body}"
        );
    }
    // A request id the client sent is kept.
    let (_, body) = get(gw, "/", &[("x-request-id", "abc")]).await;
    assert!(body.lines().any(|l| l == "x-request-id: abc"), "{body}");
}

#[tokio::test]
async fn routes_by_host_and_prefix_with_strip_and_clear_errors() {
    let api = upstream("api").await;
    let web = upstream("web").await;
    let pool = |name: &str, a| Pool::new(name, vec![Target::new(a)], Policy::RoundRobin);
    let table = Table::new(vec![
        Route {
            strip_prefix: true,
            ..Route::new(None, "/api", pool("api", api))
        },
        Route::new(Some("web.localhost"), "/", pool("web", web)),
    ]);
    let (gw_handle, gw) = gateway(table).await;
    let (status, body) = get(gw, "/api/users?x=1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.lines().take(2).collect::<Vec<_>>(),
        ["api", "/users?x=1"]
    );
    let (status, body) = get(gw, "/", &[]).await;
    assert_eq!(status, 404, "app.localhost has no route for /: {body}");
    assert!(body.contains("no route for app.localhost:8080/"), "{body}");
    let (status, body) = get(gw, "/", &[("host", "WEB.localhost:8080")]).await;
    assert_eq!((status, body.lines().next()), (200, Some("web")), "{body}");

    // Draining: no new requests; then nothing left is a 503.
    for r in gw_handle.table().routes() {
        for t in &r.pool.targets {
            t.drain();
        }
    }
    let (status, body) = get(gw, "/api/x", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no healthy target for `api`"), "{body}");
}

#[tokio::test]
async fn draining_sends_new_requests_elsewhere_and_a_new_table_takes_over() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let (table, pool) = one_pool(&[a, b], Policy::LeastInFlight);
    let (gw_handle, gw) = gateway(table).await;
    pool.targets[0].drain();
    for _ in 0..20 {
        let (_, body) = get(gw, "/", &[]).await;
        assert_eq!(body.lines().next(), Some("b"));
    }
    // Swap the table: only `a` (fresh) now.
    let (table, _) = one_pool(&[a], Policy::LeastInFlight);
    gw_handle.set_table(table);
    let (_, body) = get(gw, "/", &[]).await;
    assert_eq!(body.lines().next(), Some("a"));
}

#[tokio::test]
async fn bodies_are_streamed_through_in_both_directions() {
    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    let big = Bytes::from(vec![b'x'; 4 * 1024 * 1024]);
    let (status, body) = send(gw, "POST", "/upload", &[], big).await;
    assert_eq!(status, 200);
    assert!(
        body.ends_with("body: 4194304\n"),
        "{}",
        &body[body.len().saturating_sub(40)..]
    );
}

/// Sends raw bytes on a new connection; what comes back before the gateway
/// closes it (or `wait` passes).
async fn raw(gw: SocketAddr, bytes: &[u8], wait: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(gw).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn guarded_gateway(limits: Limits) -> SocketAddr {
    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = Gateway::new(table, limits);
    tokio::spawn(gw.serve(listener, std::future::pending()));
    addr
}

#[tokio::test]
async fn smuggling_shapes_are_refused() {
    let gw = guarded_gateway(limits()).await;
    let long = std::time::Duration::from_secs(5);
    // Content-Length and Transfer-Encoding together: an error (RFC 9112
    // §6.1), answered 400 and the connection closed on the fast path. hyper
    // drops the length before the gateway sees the request, so on its path
    // chunked wins and the connection closes after the answer. Either way
    // a smuggled second request has no connection to ride on.
    let out = raw(
        gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        long,
    )
    .await;
    let want = if FAST_PATH { "HTTP/1.1 400" } else { "HTTP/1.1 200" };
    assert!(out.starts_with(want), "{out:?}");
    assert!(out.contains("connection: close"), "{out:?}");
    assert!(!out.contains("content-length: 4"), "{out:?}");
    assert!(!out.contains("/smuggled"), "{out:?}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out:?}");
    // Two different Content-Lengths.
    let out = raw(
        gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        long,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
    // Invalid chunk size.
    let out = raw(
        gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        long,
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 400"),
        "answered, not held: {out:?}"
    );
    assert!(!out.contains("HTTP/1.1 200"), "{out:?}");
    // Obsolete line folding.
    let out = raw(
        gw,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        long,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
    // A well-formed request on the same gateway still works.
    let out = raw(
        gw,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        long,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
}

#[tokio::test]
async fn oversized_heads_and_slow_clients_are_cut_off() {
    let limits = Limits {
        header_read: std::time::Duration::from_millis(300),
        max_head: 16 * 1024,
        ..limits()
    };
    let gw = guarded_gateway(limits).await;
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 64 * 1024));
    big.extend(b"\r\n\r\n");
    let out = raw(gw, &big, std::time::Duration::from_secs(5)).await;
    assert!(
        out.starts_with("HTTP/1.1 431"),
        "{:?}",
        &out[..out.len().min(80)]
    );
    // Half a request head, then nothing: closed after the header timeout.
    let t = std::time::Instant::now();
    let out = raw(
        gw,
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    let took = t.elapsed();
    assert!(
        took < std::time::Duration::from_secs(3),
        "a stalled client held its connection for {took:?}: {out:?}"
    );
    assert!(!out.contains("200"), "{out:?}");
}

/// An upstream that reads requests and never answers.
async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test]
async fn routes_limit_bodies_and_answer_times_and_the_counters_show_it() {
    let up = upstream("u").await;
    let silent = silent_upstream().await;
    let pool = |name: &str, a| Pool::new(name, vec![Target::new(a)], Policy::RoundRobin);
    let table = Table::new(vec![
        Route {
            max_body: Some(10),
            ..Route::new(None, "/small", pool("small", up))
        },
        Route {
            timeout: Some(std::time::Duration::from_millis(300)),
            ..Route::new(None, "/slow", pool("slow", silent))
        },
    ]);
    let (gw_handle, gw) = gateway(table).await;
    let (status, body) = send(gw, "POST", "/small", &[], Bytes::from("0123456789")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("body: 10"), "{body}");
    let (status, body) = send(gw, "POST", "/small", &[], Bytes::from("0123456789X")).await;
    assert_eq!(status, 413, "a length over the limit: {body}");
    // Chunked, over the limit in its second chunk: cut off, answered 413.
    let chunked = raw(
        gw,
        b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");

    let started = std::time::Instant::now();
    let (status, body) = get(gw, "/slow", &[]).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("300ms"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the route's timeout, not the gateway's 60 s"
    );

    let text = cove_gateway::metrics::render(&gw_handle.table());
    for line in [
        "cove_gateway_requests_total{route=\"*/small\",service=\"small\",code=\"2xx\"} 1",
        "cove_gateway_requests_total{route=\"*/small\",service=\"small\",code=\"4xx\"} 2",
        "cove_gateway_requests_total{route=\"*/slow\",service=\"slow\",code=\"5xx\"} 1",
        "cove_gateway_upstream_errors_total{route=\"*/slow\",service=\"slow\"} 1",
        "cove_gateway_request_duration_seconds_count{route=\"*/small\",service=\"small\"} 3",
        "cove_gateway_targets{route=\"*/slow\",service=\"slow\"} 1",
        &format!("cove_gateway_in_flight{{service=\"small\",target=\"{up}\"}} 0"),
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// A pool with no target ready and replicas on their way.
fn on_its_way() -> Arc<Pool> {
    Pool::with_options(
        "svc",
        vec![],
        Policy::RoundRobin,
        cove_gateway::table::PoolOptions {
            pending: true,
            ..Default::default()
        },
    )
}

/// Waits (up to 20 s) until `target` counts `n` requests in flight.
async fn in_flight_on(target: &Target, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while target.in_flight() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} requests in flight on {}, not {n}, after 20 s",
            target.in_flight(),
            target.addr
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A target whose link went down gives no answer and refuses nothing:
/// when the active health check finds it down, the idempotent request
/// waiting on it goes to another target at once (not after the response
/// timeout); a POST waiting there is never sent again (it may have
/// acted), and gets the timeout's 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_found_down_hands_its_waiting_idempotent_requests_to_another() {
    let silent = silent_upstream().await;
    let a = upstream("a").await;
    let (table, pool) = one_pool(&[silent, a], Policy::RoundRobin);
    let gone = pool.targets[0].clone();
    gone.watch();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    let limits = Limits {
        upstream_response: std::time::Duration::from_secs(3),
        ..limits()
    };
    let gateway = Gateway::new(table, limits);
    tokio::spawn(gateway.clone().serve(listener, std::future::pending()));

    // Round robin: the POST to the silent target, a GET to `a`, then a
    // GET to the silent target.
    let post = tokio::spawn(send(gw, "POST", "/p", &[], Bytes::from_static(b"{}")));
    in_flight_on(&gone, 1).await;
    let (status, body) = get(gw, "/first", &[]).await;
    assert_eq!((status, body.lines().next()), (200, Some("a")), "{body}");
    let waiting = tokio::spawn(get(gw, "/second", &[]));
    in_flight_on(&gone, 2).await;
    let marked = std::time::Instant::now();
    assert!(gone.mark_down());

    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("the GET answered within 20 s")
        .unwrap();
    assert_eq!(
        (status, body.lines().take(2).collect::<Vec<_>>()),
        (200, vec!["a", "/second"]),
        "{body}"
    );
    // (Left there, it would have had the timeout's 504, not `a`'s answer.)
    eprintln!("moved {:?} after the mark", marked.elapsed());
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(20), post)
        .await
        .expect("the POST answered within 20 s")
        .unwrap();
    assert_eq!(status, 504, "the POST is not sent again: {body}");
    // While it is down, nothing goes to it.
    for _ in 0..4 {
        let (status, body) = get(gw, "/", &[]).await;
        assert_eq!((status, body.lines().next()), (200, Some("a")), "{body}");
    }
    assert!(gone.mark_up());
}

#[tokio::test]
async fn a_pool_with_targets_on_their_way_holds_requests_until_one_comes() {
    let up = upstream("late").await;
    let waiting = on_its_way();
    let table = Table::new(vec![
        Route::new(None, "/", waiting),
        Route::new(None, "/gone", Pool::new("gone", vec![], Policy::RoundRobin)),
    ]);
    let (gw_handle, gw) = gateway(table).await;
    let started = std::time::Instant::now();
    let (status, _) = get(gw, "/gone", &[]).await;
    assert_eq!(status, 503, "no target, none coming: refused at once");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let request = tokio::spawn(get(gw, "/x", &[]));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !request.is_finished(),
        "held while the target is on its way"
    );
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    gw_handle.set_table(table);
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(5), request)
        .await
        .expect("answered once the target came")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("late\n/x"), "{body}");
}

/// Every target of a pool dies at once (the daemon has not seen it yet):
/// a request, with a body too, waits for the newer table rather than
/// being answered 502; first with its replicas on their way (held until
/// one comes), then with one ready in it. With no newer table within a
/// moment, it is answered 502.
#[tokio::test]
async fn a_request_every_target_failed_waits_for_the_newer_table() {
    let dead = |_| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (d1, d2) = (dead(1), dead(2));
    let (table, _) = one_pool(&[d1, d2], Policy::RoundRobin);
    let (gw_handle, gw) = gateway(table).await;
    let got = tokio::spawn(get(gw, "/x", &[]));
    let post = tokio::spawn(send(gw, "POST", "/y", &[], Bytes::from_static(b"data")));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !got.is_finished() && !post.is_finished(),
        "waiting for a newer table"
    );
    // The daemon saw them die: none ready, one on its way.
    gw_handle.set_table(Table::new(vec![Route::new(None, "/", on_its_way())]));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !got.is_finished() && !post.is_finished(),
        "held while it comes"
    );
    let up = upstream("back").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    gw_handle.set_table(table);
    for (request, path) in [(got, "/x"), (post, "/y")] {
        let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(5), request)
            .await
            .expect("answered once a target came")
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(&format!("back\n{path}")), "{body}");
    }
    // A GET its only target died under (it got it: it may be what killed
    // it) is not sent to the replicas that come next.
    let (dying, seen) = dying_upstream(false).await;
    let (table, _) = one_pool(&[dying], Policy::RoundRobin);
    gw_handle.set_table(table);
    let got = tokio::spawn(get(gw, "/deadly", &[]));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    gw_handle.set_table(table);
    let (status, body) = got.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    // No newer table: 502 after the moment it waits.
    let (table, _) = one_pool(&[d1, d2], Policy::RoundRobin);
    let (_, gw) = gateway(table).await;
    let started = std::time::Instant::now();
    let (status, body) = get(gw, "/z", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("no target of `svc` could be reached"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn a_pool_whose_replicas_refuse_connections_answers_503_at_once_saying_why() {
    let why = "`wrongport` is running but not accepting connections on :8000";
    let refusing = Pool::with_options(
        "wrongport",
        vec![],
        Policy::RoundRobin,
        cove_gateway::table::PoolOptions {
            // Even a pool told its targets are coming is not held.
            pending: true,
            unavailable: Some(why.to_string()),
            ..Default::default()
        },
    );
    let (_gw, gw) = gateway(Table::new(vec![Route::new(None, "/", refusing)])).await;
    let started = std::time::Instant::now();
    let (status, body) = get(gw, "/x", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(why), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered at once, not held for {:?}",
        limits().hold
    );
}

#[tokio::test]
async fn a_tcp_route_holds_connections_while_its_targets_are_on_their_way() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = upstream("late").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let tcp = |targets: Vec<Arc<Target>>, pending: bool| {
        let pool = Pool::with_options(
            "svc",
            targets,
            Policy::RoundRobin,
            cove_gateway::table::PoolOptions {
                pending,
                ..Default::default()
            },
        );
        Table::default().with_tcp(vec![cove_gateway::table::TcpRoute {
            listen: at,
            pool,
            stats: cove_gateway::metrics::RouteStats::new(),
        }])
    };
    let gw = Gateway::new(tcp(vec![], true), limits());
    tokio::spawn(cove_gateway::tcp::serve(
        gw.clone(),
        listener,
        Arc::new(tokio::sync::Semaphore::new(16)),
        std::future::pending(),
    ));
    let client = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
        s.write_all(b"GET /held HTTP/1.0\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!client.is_finished(), "held while the target is on its way");
    gw.set_table(tcp(vec![Target::new(up)], false));
    let out = tokio::time::timeout(std::time::Duration::from_secs(5), client)
        .await
        .expect("joined once the target came")
        .unwrap();
    assert!(out.contains("late\n/held"), "{out}");

    // No target and none on its way: closed at once.
    gw.set_table(tcp(vec![], false));
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut out = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok() && out.is_empty(), "{out:?}");
}

#[tokio::test]
async fn the_access_log_gets_one_record_per_request_when_its_body_is_done() {
    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let records = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = records.clone();
    let log: cove_gateway::proxy::AccessLog =
        Arc::new(move |r| sink.lock().unwrap().push(r.to_json()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    let handle = Gateway::with_access_log(table, limits(), Some(log));
    tokio::spawn(handle.serve(listener, std::future::pending()));
    let (status, body) = get(gw, "/hello?x=1", &[]).await;
    assert_eq!(status, 200);
    let (status, _) = get(gw, "/again", &[]).await;
    assert_eq!(status, 200);
    let lines = records.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["method"], "GET");
    // Query values are redacted by default (`access_log.query: redact`).
    assert_eq!(first["path"], "/hello?x=***");
    assert_eq!(first["status"], 200);
    assert_eq!(first["route"], "*/");
    assert_eq!(first["service"], "svc");
    assert_eq!(first["target"], up.to_string());
    assert_eq!(first["bytes"], body.len());
    assert!(first["duration_ms"].as_f64().unwrap() >= first["upstream_ms"].as_f64().unwrap());
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn too_many_headers_and_idle_kept_alive_connections_are_refused() {
    let limits = Limits {
        header_read: std::time::Duration::from_millis(500),
        ..limits()
    };
    let gw = guarded_gateway(limits).await;
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..101 {
        many.extend(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    let out = raw(gw, &many, std::time::Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out:?}");

    // One request, then silence: the connection is closed once idle for
    // the header timeout.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(gw).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let mut out = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "an idle connection stayed open");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

/// Kept-alive connections even out over a server's threads: all of them
/// arrive on thread 0 (thread 1's socket gets none), and the fast path
/// moves them, between two requests, until the two threads serve as many;
/// every request on a moved connection is answered, and the server stops
/// with them open. (hyper's path moves nothing: all stay where they came.)
#[tokio::test]
async fn kept_alive_connections_even_out_over_the_threads() {
    use cove_gateway::server::{Kind, Server};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let gw = Gateway::new(table, limits());
    let busy = cove_gateway::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let quiet = cove_gateway::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = busy.local_addr().unwrap();
    let cap = Arc::new(tokio::sync::Semaphore::new(tokio::sync::Semaphore::MAX_PERMITS));
    let server = Server::start(
        &gw,
        vec![vec![(Kind::Http, busy)], vec![(Kind::Http, quiet)]],
        cap,
    )
    .unwrap();
    async fn ask(s: &mut tokio::net::TcpStream) -> String {
        let wait = std::time::Duration::from_secs(5);
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The upstream's answer (with a length) ends with its body's size.
        while !got.ends_with(b"body: 0\n") {
            match tokio::time::timeout(wait, s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                other => panic!("no whole answer: {other:?} after {:?}", String::from_utf8_lossy(&got)),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
    let mut conns = Vec::new();
    for _ in 0..10 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = ask(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        conns.push(s);
    }
    // Each further request is a chance to move (the check runs after each).
    for round in 0..5 {
        for s in &mut conns {
            let answer = ask(s).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "round {round}: {answer}");
        }
    }
    // A move decided after the last answer may still be on its way.
    let t = std::time::Instant::now();
    let mut spread = server.connections();
    while FAST_PATH && spread[0].abs_diff(spread[1]) > 1 && t.elapsed().as_secs() < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        spread = server.connections();
    }
    assert_eq!(spread.iter().sum::<usize>(), 10, "{spread:?}");
    if FAST_PATH {
        assert!(spread[0].abs_diff(spread[1]) <= 1, "not evened out: {spread:?}");
        // The moved ones still answer.
        for s in &mut conns {
            assert!(ask(s).await.starts_with("HTTP/1.1 200"));
        }
    } else {
        assert_eq!(spread, [10, 0], "hyper's path moved a connection");
    }
    drop(conns);
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}

/// A request still in flight when the server stops gets `drain` to finish,
/// no more: stop returns soon after the drain, and the client's connection
/// is closed without an answer (the upstream never answers here).
#[tokio::test]
async fn a_request_in_flight_at_stop_is_cut_after_the_drain() {
    use cove_gateway::server::{Kind, Server};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let silent = silent_upstream().await;
    let (table, _) = one_pool(&[silent], Policy::RoundRobin);
    let drain = std::time::Duration::from_millis(400);
    let gw = Gateway::new(
        table,
        Limits {
            drain,
            ..limits()
        },
    );
    let socket = cove_gateway::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let cap = Arc::new(tokio::sync::Semaphore::new(16));
    let server = Server::start(&gw, vec![vec![(Kind::Http, socket)]], cap).unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Let the request reach the (silent) upstream.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let asked = std::time::Instant::now();
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    let stopped = asked.elapsed();
    assert!(stopped >= drain, "stopped after {stopped:?}, before the drain");
    // The upstream's own answer time is 60 s: only the drain ends it this soon.
    assert!(
        stopped < std::time::Duration::from_secs(10),
        "stop waited {stopped:?} for a request that never ends"
    );
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the cut request's connection: {read:?}"
    );
}

#[tokio::test]
async fn the_connection_cap_makes_extra_clients_wait_for_a_free_slot() {
    use cove_gateway::server::{Kind, Server};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let gw = Gateway::new(table, limits());
    let socket = cove_gateway::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let cap = Arc::new(tokio::sync::Semaphore::new(2));
    let server = Server::start(&gw, vec![vec![(Kind::Http, socket)]], cap).unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    async fn answered(s: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
        let mut buf = [0u8; 4096];
        matches!(tokio::time::timeout(wait, s.read(&mut buf)).await, Ok(Ok(n)) if n > 0)
    }
    let long = std::time::Duration::from_secs(5);
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        assert!(answered(&mut s, long).await);
        kept.push(s);
    }
    // The third is accepted by the kernel, not served.
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    third.write_all(request).await.unwrap();
    assert!(
        !answered(&mut third, std::time::Duration::from_millis(500)).await,
        "served beyond the cap"
    );
    drop(kept.pop());
    assert!(
        answered(&mut third, long).await,
        "served once a slot was free"
    );
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_drained_under_load_loses_no_request() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let (table, pool) = one_pool(&[a, b], Policy::LeastInFlight);
    let (gw_handle, gw) = gateway(table).await;
    let drained_at = Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Four clients, 150 keep-alive requests each (bounded), noting when
    // each request started and who answered.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let drained_at = drained_at.clone();
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(gw).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut seen = Vec::new();
            for i in 0..150 {
                let started = std::time::Instant::now();
                let req = Request::builder()
                    .uri(format!("/{i}"))
                    .header("host", "a")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                let after_drain = drained_at.get().is_some_and(|d| started > *d);
                seen.push((status, body[..1].to_vec(), after_drain));
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            seen
        }));
    }
    // Under way: a sixth of the requests answered (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while done.load(std::sync::atomic::Ordering::Relaxed) < 100
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Drain `a`: no new requests; then a table without it, once its
    // requests in flight are done (bounded).
    let target_a = pool.targets.iter().find(|t| t.addr == a).unwrap().clone();
    target_a.drain();
    drained_at.set(std::time::Instant::now()).unwrap();
    assert!(
        target_a.drain_for(std::time::Duration::from_secs(5)).await,
        "a's requests finished"
    );
    let (table, _) = one_pool(&[b], Policy::LeastInFlight);
    gw_handle.set_table(table);
    let (mut total, mut by_a, mut after) = (0, 0, 0);
    for c in clients {
        for (status, who, after_drain) in c.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "no request lost");
            by_a += usize::from(who == b"a");
            if after_drain {
                after += 1;
                assert_eq!(who, b"b", "a request started after the drain went to a");
            }
        }
    }
    assert_eq!(total, 600);
    assert!(
        by_a > 0 && after > 0,
        "the drain came under load: {by_a} by a, {after} after"
    );
}

/// An HTTP/2 (cleartext) upstream that answers `id`, the version it got
/// and its path.
async fn upstream_h2(id: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        let text = format!(
                            "{id} {:?} {} {}",
                            req.version(),
                            req.uri().path(),
                            req.headers()
                                .get("x-forwarded-proto")
                                .map_or("-", |v| v.to_str().unwrap_or("?"))
                        );
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                    });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http2_clients_and_http2_upstreams_both_ways() {
    let h1 = upstream("h1").await;
    let h2 = upstream_h2("h2").await;
    let table = Table::new(vec![
        Route::new(
            None,
            "/",
            Pool::new("h1", vec![Target::new(h1)], Policy::RoundRobin),
        ),
        Route::new(
            None,
            "/grpcish",
            Pool::with_options(
                "h2",
                vec![Target::new(h2)],
                Policy::RoundRobin,
                cove_gateway::table::PoolOptions {
                    http2: true,
                    ..Default::default()
                },
            ),
        ),
    ]);
    let (_gw_handle, gw) = gateway(table).await;
    // h2c with prior knowledge, several requests on one connection.
    let stream = tokio::net::TcpStream::connect(gw).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (path, want) in [
        ("/a", "h1\n/a\n"),
        ("/grpcish/x", "h2 HTTP/2.0 /grpcish/x http"),
    ] {
        let req = Request::builder()
            .uri(format!("http://app.localhost{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with(want), "{path}: {body}");
        if path == "/a" {
            assert!(
                body.contains("host: app.localhost"),
                "an HTTP/1.1 upstream gets a Host: {body}"
            );
        }
    }
    // HTTP/1.1 in, HTTP/2 out.
    let (status, body) = get(gw, "/grpcish/y", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "h2 HTTP/2.0 /grpcish/y http");
}

#[tokio::test]
async fn grpc_passes_through_with_its_status_trailers_and_streams() {
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("kv", ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let pool = Pool::with_options(
        "kv",
        vec![Target::new(upstream)],
        Policy::RoundRobin,
        cove_gateway::table::PoolOptions {
            http2: true,
            ..Default::default()
        },
    );
    let (_gw_handle, gw) = gateway(Table::new(vec![Route::new(None, "/", pool)])).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{gw}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let ok = client
        .check(HealthCheckRequest {
            service: "kv".into(),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    // The error status travels in the trailers.
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    // A server stream: each message arrives as it is sent.
    let mut watch = client
        .watch(HealthCheckRequest {
            service: "kv".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    reporter
        .set_service_status("kv", ServingStatus::NotServing)
        .await;
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
        .await
        .expect("the second message came while the stream is open")
        .unwrap()
        .unwrap();
    assert_eq!(second.status, ServingStatus::NotServing as i32);
}

/// An upstream that accepts upgrades and echoes the upgraded bytes.
async fn echo_upgrade_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(up) = upgrade.await {
                            let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        }
                    });
                    let resp = Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", "websocket")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, hyper::Error>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_upgrades_carry_bytes_both_ways_until_a_side_closes() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = echo_upgrade_upstream().await;
    let (table, pool) = one_pool(&[up], Policy::RoundRobin);
    let (_gw_handle, gw) = gateway(table).await;
    let mut s = tokio::net::TcpStream::connect(gw).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello"[..], b"\x81\x05world", b"third"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg);
    }
    let target = pool.targets[0].clone();
    assert_eq!(
        target.in_flight(),
        1,
        "the open upgrade counts as in flight"
    );
    drop(s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while target.in_flight() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(target.in_flight(), 0, "closing one side ended it");
}

/// A TLS client trusting `ca` (PEM), offering ALPN h2 then http/1.1.
fn tls_client(ca: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_chooses_the_certificate_by_sni_negotiates_h2_and_says_https() {
    use cove_gateway::server::{Kind, Server};
    use cove_gateway::tls::{Certificates, LocalCa};
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = LocalCa::load_or_create(&ca_dir).unwrap();
    let ca_pem = fs_err::read_to_string(ca.cert_path()).unwrap();
    // Made once: loading again keeps it; the key is private.
    let again = LocalCa::load_or_create(&ca_dir).unwrap();
    assert_eq!(fs_err::read_to_string(again.cert_path()).unwrap(), ca_pem);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs_err::metadata(ca_dir.join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut certs = Certificates::new();
    certs.add(ca.issue(&["a.test".into()]).unwrap());
    // Issued by the second load: the same CA.
    certs.add(again.issue(&["b.test".into(), "*.b.test".into()]).unwrap());
    let config = cove_gateway::tls::server_config(certs).unwrap();

    let up = upstream("u").await;
    let (table, _) = one_pool(&[up], Policy::RoundRobin);
    let gw = Gateway::new(table, limits());
    let socket = cove_gateway::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let cap = Arc::new(tokio::sync::Semaphore::new(100));
    let server = Server::start(&gw, vec![vec![(Kind::Https(config), socket)]], cap).unwrap();

    let client = tls_client(&ca_pem);
    let connect = |name: &'static str| {
        let client = client.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let server_name = rustls_pki_types::ServerName::try_from(name).unwrap();
            client.connect(server_name, tcp).await
        }
    };
    // The client checks the name: a wrong certificate fails the handshake.
    for name in ["a.test", "b.test", "x.b.test"] {
        let tls = connect(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "{name}");
    }
    let unknown = connect("c.test").await;
    assert!(
        unknown.is_err(),
        "c.test got the default (a.test) certificate"
    );

    // HTTP/2 over TLS; the upstream hears it was https.
    let tls = connect("b.test").await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("https://b.test/secure")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert!(body.contains("/secure"), "{body}");

    // A client that never finishes its handshake is cut off.
    let limits_wait = limits().header_read + std::time::Duration::from_secs(5);
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    use tokio::io::AsyncReadExt as _;
    let closed = tokio::time::timeout(limits_wait, silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}
