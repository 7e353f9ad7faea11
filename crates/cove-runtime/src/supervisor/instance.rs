//! One task per instance runs its state machine (see the module
//! documentation): waits for its dependencies, starts its replica through
//! the driver, follows its health or readiness, restarts it per its
//! restart policy, stops it on request.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::state::dependencies_ready;
use super::{Ctx, Report, State};
use crate::backoff::Restarts;
use crate::health::Health;
use crate::plan::ServicePlan;

/// The last lines an instance wrote, for the reason of a failed deploy.
pub(super) type Tail = Arc<Mutex<VecDeque<String>>>;

pub(super) const TAIL_LINES: usize = 10;

/// The least time a replica without a health check runs before it is
/// said to refuse connections (with a shorter `ready_after` it is ready
/// as soon as it accepts, but one still binding its port is not called
/// refusing, and the gateway holds requests for it meanwhile).
pub const REFUSING_AFTER: Duration = Duration::from_secs(1);

/// Without a health check: waits until the replica (at `addr`, started
/// at `started`) has run `ready_after`, then until it accepts TCP
/// connections on each of `ports`, saying `Refusing` meanwhile (from
/// [`REFUSING_AFTER`]) and `Ready` once it does (`say`). Never resolves:
/// the replica's exit ends it.
pub(super) async fn settle(
    addr: Ipv4Addr,
    ports: &[u16],
    ready_after: Duration,
    started: Instant,
    mut say: impl FnMut(State),
) -> String {
    tokio::time::sleep_until(started + ready_after).await;
    let mut refusing = None;
    let mut pause = Duration::from_millis(20);
    loop {
        match first_refusing(addr, ports).await {
            None => {
                say(State::Ready);
                return std::future::pending().await;
            }
            Some(port) => {
                if refusing != Some(port) && started.elapsed() >= REFUSING_AFTER {
                    refusing = Some(port);
                    say(State::Refusing { port });
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The first of `ports` on `addr` that does not accept a TCP connection
/// (within a second).
pub(super) async fn first_refusing(addr: Ipv4Addr, ports: &[u16]) -> Option<u16> {
    for &port in ports {
        let connect = tokio::net::TcpStream::connect(SocketAddr::from((addr, port)));
        match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(_)) => {}
            _ => return Some(port),
        }
    }
    None
}

/// Whether a line of output says a port was taken (`Address already in
/// use` of C, Python, Rust, Go; Node's `EADDRINUSE`).
pub(super) fn says_address_in_use(line: &str) -> bool {
    line.to_ascii_lowercase().contains("address already in use") || line.contains("EADDRINUSE")
}

/// What a native replica that found its port taken should do: each
/// replica has its own address, and shares its port with the others.
pub(super) fn bind_hint(host: &str) -> String {
    format!(
        "the address was already in use: natively every replica of a service listens on the same port, each on its own address; bind `$HOST` (this replica's address, {host}), not 0.0.0.0"
    )
}

/// A tail is whole between any two statements: a poisoned one is used as
/// it is (a panic elsewhere must not end the instance that writes it).
pub(super) fn lock_tail(tail: &Tail) -> std::sync::MutexGuard<'_, VecDeque<String>> {
    tail.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn push_line(tail: &Tail, line: &str) {
    let mut t = lock_tail(tail);
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line.to_string());
}

/// `; last lines: …` of an instance's output, or nothing.
pub(super) fn last_lines(tail: &Tail) -> String {
    let t = lock_tail(tail);
    if t.is_empty() {
        return String::new();
    }
    format!(
        "; its last lines: {}",
        t.iter().cloned().collect::<Vec<_>>().join(" | ")
    )
}

pub(super) async fn instance(
    ctx: Ctx,
    svc: Arc<ServicePlan>,
    r: u32,
    slot: u32,
    restarted: u32,
    mut stop: watch::Receiver<bool>,
    tail: Tail,
) {
    let mut states = ctx.states.subscribe();
    let mut restarts = Restarts {
        streak: 0,
        total: restarted,
    };
    let mut env = svc.replica_env(r, slot);
    // Not for containers: they are found by their labels, and outlive a
    // killed daemon (the next one takes them over).
    if svc.container.is_none() {
        env.extend(ctx.extra_env.iter().cloned());
    }
    // The replica's secrets, as files, for as long as the instance lives.
    let _secrets = if !svc.has_private_dir() {
        None
    } else {
        let (dir, mounts) = (svc.secrets_dir(slot), svc.secrets.clone());
        let written = tokio::task::spawn_blocking(move || crate::secrets::write_dir(&dir, &mounts))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(guard) => Some(guard),
            Err(e) => {
                let reason = format!("cannot write its secrets: {e}");
                return ctx.set(&svc, slot, State::Failed { reason }, None, restarted);
            }
        }
    };
    loop {
        let total = restarts.total;
        let set = |state: State, pid: Option<u32>| ctx.set(&svc, slot, state, pid, total);
        // Wait for the dependencies (before every start).
        set(State::Waiting, None);
        loop {
            let verdict = dependencies_ready(&svc, &states.borrow_and_update());
            match verdict {
                Ok(true) => break,
                Ok(false) => {}
                Err(reason) => return set(State::Failed { reason }, None),
            }
            tokio::select! {
                _ = states.changed() => {}
                _ = stop.changed() => return set(State::Stopped, None),
            }
        }
        set(State::Starting, None);
        if let (Some(recipe), Some(data)) = (svc.recipe, svc.data_dir(r)) {
            let env = env.clone();
            let prepared =
                tokio::task::spawn_blocking(move || crate::recipe::prepare(recipe, &data, &env))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(reason) = prepared {
                return set(State::Failed { reason }, None);
            }
        }
        let (name, tx, lines) = (svc.name.clone(), ctx.reports.clone(), tail.clone());
        let redactor = svc.redactor.clone();
        // Whether this run said its address was taken (see `bind_hint`).
        let in_use = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let said_in_use = in_use.clone();
        let on_line = move |stream, line: String| {
            let line = redactor.scrub_owned(line);
            if says_address_in_use(&line) {
                said_in_use.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            push_line(&lines, &line);
            let _ = tx.send(Report::Log {
                service: name.clone(),
                replica: r,
                stream,
                line,
            });
        };
        let cgroup = (ctx.cgroups.as_deref())
            .filter(|_| svc.container.is_none())
            .map(|dir| crate::cgroup::replica(dir, &svc.name, slot));
        let started = tokio::select! {
            s = crate::driver::start(&svc, r, slot, &env, cgroup, on_line) => s,
            _ = stop.changed() => return set(State::Stopped, None),
        };
        let mut running = match started {
            Ok(p) => p,
            Err(reason) => {
                let reason = svc.redactor.scrub_owned(reason);
                return set(State::Failed { reason }, None);
            }
        };
        let pid = running.pid().unwrap_or_default();
        let prober = running.prober(svc.health.as_ref());
        let started = Instant::now();
        set(State::Running, Some(pid));
        // Resolves with the failed check when the replica turns unhealthy;
        // without a check, says when it is ready (and never resolves).
        let health = async {
            let failed = if svc.health.is_some() {
                prober
                    .watch(svc.health.as_ref(), &svc.workdir, &env, started, |h| {
                        if h == Health::Healthy {
                            set(State::Healthy, Some(pid));
                        }
                    })
                    .await
            } else {
                let addr = svc.address(slot);
                let say = |s| set(s, Some(pid));
                settle(addr, &svc.tcp_ports, svc.ready_after, started, say).await
            };
            svc.redactor.scrub_owned(failed)
        };
        let (code, unhealthy) = tokio::select! {
            status = running.wait() => (status, false),
            check = health => {
                set(State::Unhealthy { check }, Some(pid));
                running.stop(svc.stop_signal, svc.stop_grace).await;
                (None, true)
            }
            _ = stop.changed() => {
                set(State::Stopping, Some(pid));
                running.stop(svc.stop_signal, svc.stop_grace).await;
                running.finish().await;
                return set(State::Stopped, None);
            }
        };
        running.finish().await;
        // A native replica that bound 0.0.0.0 (as in a container) and died
        // for a port another replica holds: say what to do, in its log
        // (`cove logs`, `up`'s last lines) and in why it failed.
        let hint = match (code, &svc.container) {
            (Some(c), None) if c != 0 && in_use.load(std::sync::atomic::Ordering::Relaxed) => Some(
                bind_hint(crate::plan::env_value(&env, "HOST").unwrap_or("?")),
            ),
            _ => None,
        };
        if let Some(h) = &hint {
            let _ = ctx.reports.send(Report::Log {
                service: svc.name.clone(),
                replica: r,
                stream: crate::process::Stream::Stderr,
                line: format!("cove: {h}"),
            });
        }
        // Had it passed its health check before it exited?
        let served = !unhealthy
            && ctx.states.borrow().get(&svc.name).is_some_and(|l| {
                l.iter()
                    .any(|st| st.slot == slot && st.state == State::Healthy)
            });
        if !unhealthy && !svc.restart.again(code, restarts.total) {
            return set(
                match code {
                    Some(0) => State::Completed,
                    Some(c) => State::Failed {
                        reason: match &hint {
                            Some(h) => format!("exited with code {c}: {h}"),
                            None => format!("exited with code {c}"),
                        },
                    },
                    None => State::Failed {
                        reason: "killed by a signal".into(),
                    },
                },
                None,
            );
        }
        let delay = ctx.backoff.next(&mut restarts, started.elapsed(), served);
        ctx.set(
            &svc,
            slot,
            State::Restarting { code, delay },
            None,
            restarts.total,
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return ctx.set(&svc, slot, State::Stopped, None, restarts.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free loopback port (bound, then let go).
    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    /// What `settle` said about a replica at 127.0.0.1, until `until` held.
    async fn settle_until(
        ports: Vec<u16>,
        ready_after: Duration,
        until: impl Fn(&[State]) -> bool + Send + 'static,
    ) -> (Vec<State>, Duration) {
        let said = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let task = {
            let said = said.clone();
            tokio::spawn(async move {
                let say = |s| said.lock().unwrap().push(s);
                settle(Ipv4Addr::LOCALHOST, &ports, ready_after, started, say).await
            })
        };
        let deadline = started + Duration::from_secs(20);
        while !until(&said.lock().unwrap()) {
            assert!(Instant::now() < deadline, "{:?}", said.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = started.elapsed();
        task.abort();
        let said = said.lock().unwrap().clone();
        (said, elapsed)
    }

    #[tokio::test]
    async fn a_replica_is_ready_once_up_ready_after_and_accepting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ready_after = Duration::from_millis(300);
        let (said, took) = settle_until(vec![port], ready_after, |s| !s.is_empty()).await;
        assert_eq!(said, [State::Ready]);
        assert!(
            took >= ready_after,
            "ready after {took:?}, before {ready_after:?}"
        );
    }

    #[tokio::test]
    async fn a_replica_refusing_its_port_is_refusing_until_it_accepts() {
        let port = free_port();
        let (said, took) = settle_until(vec![port], Duration::ZERO, |s| !s.is_empty()).await;
        assert_eq!(said, [State::Refusing { port }]);
        assert!(
            took >= REFUSING_AFTER,
            "called refusing after {took:?}: one still binding its port is not"
        );
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (said, _) =
            settle_until(vec![port], Duration::ZERO, |s| s.contains(&State::Ready)).await;
        assert_eq!(said, [State::Ready], "accepting at once: ready at once");
        drop(listener);
    }

    #[tokio::test]
    async fn without_ports_uptime_alone_makes_a_replica_ready() {
        let (said, took) =
            settle_until(Vec::new(), Duration::from_millis(200), |s| !s.is_empty()).await;
        assert_eq!(said, [State::Ready]);
        assert!(took >= Duration::from_millis(200), "{took:?}");
    }
}
