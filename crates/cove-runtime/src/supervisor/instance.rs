//! One task per instance runs its state machine (see the module
//! documentation): waits for its dependencies, starts its replica through
//! the driver, follows its health or readiness, restarts it per its
//! restart policy, stops it on request.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::state::dependencies_ready;
use super::{Ctx, Report, State, States};
use crate::backoff::Restarts;
use crate::driver::{OnLine, Prober, Replica, Start};
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
    prober: &dyn Prober,
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
        match prober.refusing(addr, ports).await {
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

/// What one instance's task is given.
pub(super) struct Instance {
    pub(super) ctx: Ctx,
    pub(super) svc: Arc<ServicePlan>,
    pub(super) replica: u32,
    pub(super) slot: u32,
    /// Restarts so far (carried over a daemon's restart).
    pub(super) restarted: u32,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) tail: Tail,
    /// Whether its current run said its address was taken.
    pub(super) in_use: Arc<AtomicBool>,
}

/// How one run of a replica ended.
enum Ended {
    /// Stopped on request (it is, now).
    Stopped,
    /// Will not run again, and why.
    Failed(String),
    /// It exited (`code`; `None`: killed by a signal), or was stopped for
    /// failing its health check (`unhealthy`), after starting at `started`.
    Exited {
        code: Option<i32>,
        unhealthy: bool,
        started: Instant,
    },
}

/// An instance's task: its state machine, until it is final.
pub(super) async fn instance(mut i: Instance) {
    let mut restarts = Restarts {
        streak: 0,
        total: i.restarted,
    };
    let mut env = i.svc.replica_env(i.replica, i.slot);
    // Not for containers: they are found by their labels, and outlive a
    // killed daemon (the next one takes them over).
    if i.svc.container.is_none() {
        env.extend(i.ctx.extra_env.iter().cloned());
    }
    // The replica's secrets, as files, for as long as the instance lives.
    let _secrets = match secrets(&i.svc, i.slot).await {
        Ok(guard) => guard,
        Err(reason) => return i.set(State::Failed { reason }, None, i.restarted),
    };
    let mut states = i.ctx.states.subscribe();
    loop {
        let total = restarts.total;
        // Wait for the dependencies (before every start).
        i.set(State::Waiting, None, total);
        if let Err(end) = i.dependencies(&mut states).await {
            return i.set(end, None, total);
        }
        i.set(State::Starting, None, total);
        let (code, unhealthy, started) = match i.run(&env, total).await {
            Ended::Stopped => return i.set(State::Stopped, None, total),
            Ended::Failed(reason) => return i.set(State::Failed { reason }, None, total),
            Ended::Exited {
                code,
                unhealthy,
                started,
            } => (code, unhealthy, started),
        };
        let hint = i.hint(code, &env);
        // Had it passed its health check before it exited?
        let served = !unhealthy
            && i.ctx.states.borrow().get(&i.svc.name).is_some_and(|l| {
                l.iter()
                    .any(|st| st.slot == i.slot && st.state == State::Healthy)
            });
        if !unhealthy && !i.svc.restart.again(code, restarts.total) {
            return i.set(final_state(code, hint.as_deref()), None, total);
        }
        let delay = i.ctx.backoff.next(&mut restarts, started.elapsed(), served);
        i.set(State::Restarting { code, delay }, None, restarts.total);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = i.stop.changed() => return i.set(State::Stopped, None, restarts.total),
        }
    }
}

/// The replica's secrets as files, when it has any (removed when the
/// guard goes).
async fn secrets(svc: &ServicePlan, slot: u32) -> Result<Option<crate::secrets::DirGuard>, String> {
    if !svc.has_private_dir() {
        return Ok(None);
    }
    let (dir, mounts) = (svc.secrets_dir(slot), svc.secrets.clone());
    tokio::task::spawn_blocking(move || crate::secrets::write_dir(&dir, &mounts))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map(Some)
        .map_err(|e| format!("cannot write its secrets: {e}"))
}

/// What an exit the restart policy does not restart leaves.
fn final_state(code: Option<i32>, hint: Option<&str>) -> State {
    match code {
        Some(0) => State::Completed,
        Some(c) => State::Failed {
            reason: match hint {
                Some(h) => format!("exited with code {c}: {h}"),
                None => format!("exited with code {c}"),
            },
        },
        None => State::Failed {
            reason: "killed by a signal".into(),
        },
    }
}

impl Instance {
    fn set(&self, state: State, pid: Option<u32>, restarts: u32) {
        self.ctx.set(&self.svc, self.slot, state, pid, restarts);
    }

    /// Waits until its dependencies hold; the state it ends in when they
    /// never will, or when it is stopped meanwhile.
    async fn dependencies(&mut self, states: &mut watch::Receiver<States>) -> Result<(), State> {
        loop {
            match dependencies_ready(&self.svc, &states.borrow_and_update()) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(reason) => return Err(State::Failed { reason }),
            }
            tokio::select! {
                _ = states.changed() => {}
                _ = self.stop.changed() => return Err(State::Stopped),
            }
        }
    }

    /// Every line it prints: scrubbed, kept in its tail, reported; the
    /// flag says whether one said its address was taken.
    fn lines(&self) -> (OnLine, Arc<AtomicBool>) {
        let (name, tx, lines) = (
            self.svc.name.clone(),
            self.ctx.reports.clone(),
            self.tail.clone(),
        );
        let (redactor, replica) = (self.svc.redactor.clone(), self.replica);
        // Whether this run said its address was taken (see `bind_hint`).
        let in_use = Arc::new(AtomicBool::new(false));
        let said_in_use = in_use.clone();
        let on_line: OnLine = Arc::new(move |stream, line: String| {
            let line = redactor.scrub_owned(line);
            if says_address_in_use(&line) {
                said_in_use.store(true, Ordering::Relaxed);
            }
            push_line(&lines, &line);
            let _ = tx.send(Report::Log {
                service: name.clone(),
                replica,
                stream,
                line,
            });
        });
        (on_line, in_use)
    }

    /// One run: prepares its recipe's data, starts the replica through the
    /// driver, follows its health (or readiness) until it exits, turns
    /// unhealthy (then stops it) or is told to stop.
    async fn run(&mut self, env: &[(String, String)], total: u32) -> Ended {
        let svc = self.svc.clone();
        if let (Some(recipe), Some(data)) = (svc.recipe, svc.data_dir(self.replica)) {
            let env = env.to_vec();
            let prepared =
                tokio::task::spawn_blocking(move || crate::recipe::prepare(recipe, &data, &env))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(reason) = prepared {
                return Ended::Failed(reason);
            }
        }
        let (on_line, in_use) = self.lines();
        self.in_use = in_use;
        let cgroup = (self.ctx.cgroups.as_deref())
            .filter(|_| svc.container.is_none())
            .map(|dir| crate::cgroup::replica(dir, &svc.name, self.slot));
        let start = Start {
            svc: &svc,
            replica: self.replica,
            slot: self.slot,
            env,
            cgroup,
        };
        let driver = self.ctx.driver.clone();
        let started = tokio::select! {
            s = driver.start(start, on_line) => s,
            _ = self.stop.changed() => return Ended::Stopped,
        };
        let running = match started {
            Ok(p) => p,
            Err(reason) => return Ended::Failed(svc.redactor.scrub_owned(reason)),
        };
        self.follow(running, env, total).await
    }

    /// Follows a started replica until it ends (see [`Instance::run`]).
    async fn follow(
        &mut self,
        mut running: Box<dyn Replica>,
        env: &[(String, String)],
        total: u32,
    ) -> Ended {
        let svc = self.svc.clone();
        let pid = running.pid().unwrap_or_default();
        let prober = running.prober(svc.health.as_ref());
        let started = Instant::now();
        self.set(State::Running, Some(pid), total);
        let set = |state: State| self.ctx.set(&svc, self.slot, state, Some(pid), total);
        // Resolves with the failed check when the replica turns unhealthy;
        // without a check, says when it is ready (and never resolves).
        let health = || async {
            let failed = match &svc.health {
                Some(spec) => {
                    let mut on_change = |h| {
                        if h == Health::Healthy {
                            set(State::Healthy);
                        }
                    };
                    let workdir = &svc.workdir;
                    (prober.watch(spec, workdir, env, started, &mut on_change)).await
                }
                None => {
                    let addr = svc.address(self.slot);
                    let ports = &svc.tcp_ports;
                    settle(&*prober, addr, ports, svc.ready_after, started, set).await
                }
            };
            svc.redactor.scrub_owned(failed)
        };
        let mut stop = self.stop.clone();
        let (code, unhealthy) = loop {
            tokio::select! {
                status = running.wait() => break (status, false),
                check = health() => {
                    if !self.ctx.is_paused(&svc.name, self.slot) {
                        set(State::Unhealthy { check });
                        running.stop(svc.stop_signal, self.ctx.stop_grace(&svc)).await;
                        break (None, true);
                    }
                }
                _ = stop.changed() => {
                    set(State::Stopping);
                    running.stop(self.ctx.stop_signal(&svc), self.ctx.stop_grace(&svc)).await;
                    running.finish().await;
                    return Ended::Stopped;
                }
            }
            // Paused (`cove pause`): its checks fail while it is frozen;
            // they are watched again once it resumes.
            tokio::select! {
                status = running.wait() => break (status, false),
                _ = self.ctx.resumed(&svc.name, self.slot) => {}
                _ = stop.changed() => {
                    set(State::Stopping);
                    running.stop(self.ctx.stop_signal(&svc), self.ctx.stop_grace(&svc)).await;
                    running.finish().await;
                    return Ended::Stopped;
                }
            }
        };
        running.finish().await;
        Ended::Exited {
            code,
            unhealthy,
            started,
        }
    }

    /// A native replica that bound 0.0.0.0 (as in a container) and died
    /// for a port another replica holds: says what to do, in its log
    /// (`cove logs`, `up`'s last lines); the hint, for why it failed.
    fn hint(&self, code: Option<i32>, env: &[(String, String)]) -> Option<String> {
        let hint = match (code, &self.svc.container) {
            (Some(c), None) if c != 0 && self.in_use.load(Ordering::Relaxed) => Some(bind_hint(
                crate::plan::env_value(env, "HOST").unwrap_or("?"),
            )),
            _ => None,
        }?;
        let _ = self.ctx.reports.send(Report::Log {
            service: self.svc.name.clone(),
            replica: self.replica,
            stream: crate::output::Stream::Stderr,
            line: format!("cove: {hint}"),
        });
        Some(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::HostProber;

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
                settle(
                    &HostProber,
                    Ipv4Addr::LOCALHOST,
                    &ports,
                    ready_after,
                    started,
                    say,
                )
                .await
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
