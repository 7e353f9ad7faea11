//! Active health checks: each target probed every interval, on a
//! connection of its own (a TCP connect, or an HTTP `GET` of a path that
//! must answer 2xx or 3xx), within a timeout.
//!
//! A probe that fails marks the target down ([`Target::mark_down`]): no
//! new request goes to it, and requests waiting on it that may be sent
//! again (idempotent, no body) go to another target at once. The next
//! probe that passes brings it back ([`Target::mark_up`]). Passive health
//! ([`crate::table::Outcome`]) sees a target only when requests fail on
//! it; a target whose packets are dropped (a host whose link went down)
//! fails no request quickly, so only a probe with a short timeout notices
//! it within a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::table::Target;

/// How targets are probed.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Time between the start of two probes of a target.
    pub interval: Duration,
    /// Time a probe has to pass (connect, and answer with `path`).
    pub timeout: Duration,
    /// `GET` this path (2xx or 3xx passes); `None`: a TCP connect passes.
    pub path: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_millis(250),
            timeout: Duration::from_millis(500),
            path: None,
        }
    }
}

/// A target that went down or came back, for whoever logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Down, and why (the probe's failure).
    Down(SocketAddr, String),
    Up(SocketAddr),
}

/// Probes `addr` once: `Err` says why it failed.
pub async fn probe(addr: SocketAddr, check: &HealthCheck) -> Result<(), String> {
    match tokio::time::timeout(check.timeout, probe_untimed(addr, check.path.as_deref())).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

async fn probe_untimed(addr: SocketAddr, path: Option<&str>) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let Some(path) = path else { return Ok(()) };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: cove-gateway-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("cannot send the check: {e}"))?;
    // The status line is enough.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let status: Option<u16> = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    match status {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("GET {path} answered {code}")),
        None if line.is_empty() => Err(format!("GET {path}: the connection closed unanswered")),
        None => Err(format!("GET {path}: not an HTTP answer: {line:?}")),
    }
}

/// Probes every target of `targets` every [`HealthCheck::interval`], for
/// as long as the runtime runs, marking them down and up; `changed` is
/// told each change. Each target has a task of its own (a target whose
/// probe hangs delays no other's).
pub fn watch(
    targets: &[Arc<Target>],
    check: &HealthCheck,
    changed: impl Fn(Change) + Send + Sync + 'static,
) {
    let changed = Arc::new(changed);
    for target in targets {
        target.watch();
        let (target, check, changed) = (target.clone(), check.clone(), changed.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(check.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match probe(target.addr, &check).await {
                    Ok(()) => {
                        if target.mark_up() {
                            changed(Change::Up(target.addr));
                        }
                    }
                    Err(why) => {
                        if target.mark_down() {
                            changed(Change::Down(target.addr, why));
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Policy, Pool, now_ms};
    use tokio::net::TcpListener;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A server answering every connection with `status` (`None`: read
    /// the request, never answer).
    async fn server(status: Option<u16>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    match status {
                        Some(code) => {
                            let _ = s
                                .write_all(
                                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n")
                                        .as_bytes(),
                                )
                                .await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        addr
    }

    fn http(path: &str) -> HealthCheck {
        HealthCheck {
            path: Some(path.to_string()),
            ..HealthCheck::default()
        }
    }

    #[test]
    fn a_probe_passes_on_2xx_and_3xx_and_fails_otherwise() {
        rt().block_on(async {
            let ok = server(Some(204)).await;
            let moved = server(Some(302)).await;
            let bad = server(Some(503)).await;
            let silent = server(None).await;
            assert_eq!(probe(ok, &http("/healthz")).await, Ok(()));
            assert_eq!(probe(moved, &http("/")).await, Ok(()));
            assert_eq!(
                probe(bad, &http("/healthz")).await,
                Err("GET /healthz answered 503".to_string())
            );
            // A TCP check passes on whatever accepts.
            assert_eq!(probe(bad, &HealthCheck::default()).await, Ok(()));
            // No answer: the timeout, not a hang.
            let started = std::time::Instant::now();
            assert_eq!(
                probe(silent, &http("/")).await,
                Err("no answer within 500ms".to_string())
            );
            assert!(started.elapsed() < Duration::from_secs(20));
            // Nothing listens: refused.
            let free = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let e = probe(free, &HealthCheck::default()).await.unwrap_err();
            assert!(e.starts_with("cannot connect:"), "{e}");
        });
    }

    #[test]
    fn a_target_found_down_is_left_out_and_its_waiters_told_until_a_probe_passes() {
        rt().block_on(async {
            let up = server(Some(200)).await;
            // Accepts, never answers: the HTTP probe times out.
            let silent = server(None).await;
            let targets = vec![Target::new(up), Target::new(silent)];
            let pool = Pool::new("p", targets.clone(), Policy::RoundRobin);
            // A request waiting on the silent target.
            let waiter = {
                let t = targets[1].clone();
                tokio::spawn(async move { t.gone_down().await })
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let check = HealthCheck {
                interval: Duration::from_millis(50),
                timeout: Duration::from_millis(200),
                path: Some("/".to_string()),
            };
            // Watched before the waiter first polls: it is told.
            watch(&targets, &check, move |c| {
                let _ = tx.send(c);
            });
            let change = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a change within 20 s")
                .unwrap();
            assert_eq!(
                change,
                Change::Down(silent, "no answer within 200ms".to_string())
            );
            tokio::time::timeout(Duration::from_secs(20), waiter)
                .await
                .expect("the waiter told within 20 s")
                .unwrap();
            assert!(targets[1].is_down() && !targets[0].is_down());
            let mut random = crate::balance::thread_random;
            for _ in 0..4 {
                let t = crate::balance::pick(&pool, None, now_ms(), &mut random).unwrap();
                assert_eq!(t.addr, up, "the down target is left out");
            }
            // Back: a probe passes, and what passive health held is forgotten.
            targets[1].record(crate::table::Outcome::ConnectFailed, now_ms());
            assert!(targets[1].mark_up());
            assert!(!targets[1].is_ejected(now_ms()));
            assert!(!targets[1].mark_up(), "no change the second time");
        });
    }

    #[test]
    fn a_target_already_down_does_not_move_requests_sent_to_it_again() {
        rt().block_on(async {
            let t = Target::new(SocketAddr::from(([127, 0, 0, 1], 1)));
            t.watch();
            assert!(t.mark_down());
            // Sent to it while it is down (every target is): another
            // failed probe must not cut it short.
            let waiter = {
                let t = t.clone();
                tokio::spawn(async move { t.gone_down().await })
            };
            tokio::task::yield_now().await;
            assert!(!t.mark_down(), "already down");
            let told = tokio::time::timeout(Duration::from_millis(200), waiter).await;
            assert!(told.is_err(), "told again while it stayed down");
        });
    }

    #[test]
    fn without_an_active_check_nothing_waits_on_a_target_going_down() {
        rt().block_on(async {
            let t = Target::new(SocketAddr::from(([127, 0, 0, 1], 1)));
            let waiter = {
                let t = t.clone();
                tokio::spawn(async move { t.gone_down().await })
            };
            tokio::task::yield_now().await;
            t.mark_down();
            let told = tokio::time::timeout(Duration::from_millis(200), waiter).await;
            assert!(told.is_err(), "unwatched targets never resolve gone_down");
        });
    }
}
