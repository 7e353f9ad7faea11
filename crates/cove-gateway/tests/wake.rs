//! A sleeping service (scaled to zero) that no replica wakes in time:
//! docs/guides/deploy.md ("if none is within 30 s, it answers 503 saying
//! so") and docs/guides/gateway.md ("up to 30 s"). Loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cove_gateway::proxy::{Gateway, Limits};
use cove_gateway::table::{Policy, Pool, PoolOptions, Route, Table, Wake};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

#[test]
fn a_request_waits_30_s_for_a_woken_service_by_default() {
    assert_eq!(Limits::default().hold, Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_wake_in_time_gets_a_503_saying_why() {
    let woken = Arc::new(AtomicUsize::new(0));
    let calls = woken.clone();
    let sleeping = Pool::with_options(
        "web",
        vec![],
        Policy::RoundRobin,
        PoolOptions {
            wake: Some(Wake(Arc::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
            }))),
            ..Default::default()
        },
    );
    let hold = Duration::from_millis(700);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = Gateway::new(
        Table::new(vec![Route::new(None, "/", sleeping)]),
        Limits {
            hold,
            ..Limits::default()
        },
    );
    tokio::spawn(gw.serve(listener, std::future::pending()));

    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text
    })
    .await
    .expect("an answer within 20 s");
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("`web` was scaled to zero and no replica was ready within 700ms"),
        "says why: {answer}"
    );
    assert!(waited >= hold, "answered after {waited:?}, before the hold");
    assert_eq!(woken.load(Ordering::SeqCst), 1, "woken once");
}
