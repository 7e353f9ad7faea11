//! Health checks: Compose `healthcheck` tests (`CMD`, `CMD-SHELL`) run as
//! native commands, and the thresholds that turn results into a status.
//!
//! [`Tracker`] is pure (it is given the instants), so its rules are tested
//! without sleeping. Until the first success, cove probes every
//! `start_interval` (default 1 s) so dependents start promptly; afterwards
//! every `interval` (default 30 s, as Docker). Failures inside
//! `start_period` do not count until the first success.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

/// A health check of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `["CMD", prog, args...]`.
    Exec(Vec<String>),
    /// `["CMD-SHELL", script]`, run with `sh -c`.
    Shell(String),
    /// `x-cove.health.http`: `GET path` on the replica's address and `port`
    /// (default `PORT`); healthy on 2xx/3xx.
    Http { path: String, port: Option<u16> },
    /// `x-cove.health.tcp`: a connection to the replica's address and `port`.
    Tcp { port: u16 },
}

impl HealthSpec {
    /// `probe` with the timings of `h` (Docker's defaults for what it lacks).
    pub fn with_timings(probe: Probe, h: Option<&cove_spec::model::Healthcheck>) -> HealthSpec {
        let d = |v: Option<cove_spec::units::ComposeDuration>, default: u64| {
            v.map(|d| d.0)
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(default))
        };
        HealthSpec {
            probe,
            interval: d(h.and_then(|h| h.interval), 30),
            timeout: d(h.and_then(|h| h.timeout), 30),
            retries: h
                .and_then(|h| h.retries)
                .map(|r| r as u32)
                .filter(|r| *r > 0)
                .unwrap_or(3),
            start_period: h
                .and_then(|h| h.start_period)
                .map(|d| d.0)
                .unwrap_or_default(),
            start_interval: d(h.and_then(|h| h.start_interval), 1),
        }
    }

    /// From a Compose healthcheck; `None` when disabled or absent.
    pub fn from_compose(h: &cove_spec::model::Healthcheck) -> Option<HealthSpec> {
        if !h.is_enabled() {
            return None;
        }
        let probe = match h.test.first().map(String::as_str) {
            Some("CMD") => Probe::Exec(h.test[1..].to_vec()),
            Some("CMD-SHELL") => Probe::Shell(h.test[1..].join(" ")),
            _ => return None,
        };
        Some(HealthSpec::with_timings(probe, Some(h)))
    }
}

/// A replica's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No result counted yet.
    Starting,
    Healthy,
    Unhealthy,
}

/// Turns probe results into a status (Docker's rules).
#[derive(Debug, Clone)]
pub struct Tracker {
    retries: u32,
    start_period: Duration,
    interval: Duration,
    start_interval: Duration,
    started: Instant,
    failures: u32,
    status: Health,
}

impl Tracker {
    pub fn new(spec: &HealthSpec, started: Instant) -> Tracker {
        Tracker {
            retries: spec.retries,
            start_period: spec.start_period,
            interval: spec.interval,
            start_interval: spec.start_interval,
            started,
            failures: 0,
            status: Health::Starting,
        }
    }

    pub fn status(&self) -> Health {
        self.status
    }

    /// Records a probe result at `now`; returns the new status.
    pub fn record(&mut self, now: Instant, ok: bool) -> Health {
        if ok {
            self.failures = 0;
            self.status = Health::Healthy;
            return self.status;
        }
        let in_start_period = now.duration_since(self.started) < self.start_period;
        if in_start_period && self.status == Health::Starting {
            return self.status;
        }
        self.failures += 1;
        if self.failures >= self.retries {
            self.status = Health::Unhealthy;
        }
        self.status
    }

    /// Time until the next probe.
    pub fn next_delay(&self) -> Duration {
        match self.status {
            Health::Starting => self.start_interval.min(self.interval),
            _ => self.interval,
        }
    }
}

/// `text` with each `localhost` and `127.0.0.1` that names a host (not a
/// part of a longer name or address: `localhost.example`, `127.0.0.10`)
/// replaced by `host`.
pub fn loopback_to(text: &str, host: &str) -> String {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    'scan: while !rest.is_empty() {
        for word in ["localhost", "127.0.0.1"] {
            let Some(after) = rest.strip_prefix(word) else {
                continue;
            };
            let mut next = after.chars();
            let follows = match next.next() {
                None => true,
                // A dot ending a sentence, not one starting a longer name.
                Some('.') => !next.next().is_some_and(|c| c.is_ascii_alphanumeric()),
                Some(c) => !name_char(c),
            };
            if follows && !before.is_some_and(|c| name_char(c) || c == '.') {
                out.push_str(host);
                before = word.chars().last();
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        before = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Runs one probe in `workdir` with `env`: `Ok` when it exits 0 in time,
/// else what went wrong (exit code and the end of its output, or the timeout).
pub async fn probe(
    spec: &HealthSpec,
    workdir: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    // A check written for a container (`curl http://localhost:8080/`)
    // probes the replica's own address natively: it listens on `HOST`.
    let host = crate::vars::env_value(env, "HOST");
    let here = |t: &str| match host {
        Some(h) => loopback_to(t, h),
        None => t.to_string(),
    };
    let argv: Vec<String> = match &spec.probe {
        Probe::Exec(argv) => argv
            .iter()
            .map(|a| here(&crate::vars::expand_known(a, env)))
            .collect(),
        Probe::Shell(script) => vec!["sh".into(), "-c".into(), here(script)],
        Probe::Http { path, port } => {
            let addr = address(env, *port)?;
            return timed(spec.timeout, http_get(&addr, path)).await;
        }
        Probe::Tcp { port } => {
            let addr = address(env, Some(*port))?;
            return timed(spec.timeout, async {
                tokio::net::TcpStream::connect(&addr)
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))
            })
            .await;
        }
    };
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty health check command".into());
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .current_dir(workdir)
        .env_clear()
        .envs(crate::environ::with(env))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{prog}`: {e}"))?;
    let pid = child.id();
    match tokio::time::timeout(spec.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim();
            let tail: String = text
                .char_indices()
                .rev()
                .nth(MAX_OUTPUT)
                .map_or(text, |(i, _)| &text[i..])
                .to_string();
            let code = out
                .status
                .code()
                .map_or("was killed by a signal".to_string(), |c| {
                    format!("exited with code {c}")
                });
            Err(if tail.is_empty() {
                code
            } else {
                format!("{code}: {tail}")
            })
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(format!("timed out after {:?}", spec.timeout))
        }
    }
}

/// `HOST:port` of the replica (`port` defaults to its `PORT`).
fn address(env: &[(String, String)], port: Option<u16>) -> Result<String, String> {
    let get = |k: &str| crate::vars::env_value(env, k);
    let host = get("HOST").ok_or("the replica has no HOST")?;
    let port = match port {
        Some(p) => p.to_string(),
        None => get("PORT").ok_or("the replica has no PORT")?.to_string(),
    };
    Ok(format!("{host}:{port}"))
}

async fn timed(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
}

/// `GET path` over HTTP/1.0; `Ok` on a 2xx or 3xx status.
async fn http_get(addr: &str, path: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: cove-health\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    // The status line is enough.
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim();
    let status: Option<u16> = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match status {
        Some(200..=399) => Ok(()),
        Some(_) => Err(format!("GET http://{addr}{path} answered `{line}`")),
        None => Err(format!(
            "GET http://{addr}{path}: not an HTTP answer: `{line}`"
        )),
    }
}

/// How much of a failed probe's output is kept.
const MAX_OUTPUT: usize = 300;

/// A probe in words, for messages: `test -e ok`.
pub fn describe(probe: &Probe) -> String {
    match probe {
        Probe::Exec(argv) => cove_spec::shell_words::join(argv),
        Probe::Shell(script) => script.clone(),
        Probe::Http { path, port } => match port {
            Some(p) => format!("GET {path} on port {p}"),
            None => format!("GET {path}"),
        },
        Probe::Tcp { port } => format!("connect to port {port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_and_127_0_0_1_become_the_replica_address() {
        let h = "127.9.8.7";
        assert_eq!(
            loopback_to("curl -f http://localhost:8080/health", h),
            "curl -f http://127.9.8.7:8080/health"
        );
        assert_eq!(loopback_to("127.0.0.1", h), h);
        assert_eq!(
            loopback_to("pg_isready -h localhost && nc -z 127.0.0.1 80", h),
            "pg_isready -h 127.9.8.7 && nc -z 127.9.8.7 80"
        );
        assert_eq!(loopback_to("ping localhost.", h), "ping 127.9.8.7.");
        for kept in [
            "localhost.example.com",
            "mylocalhost",
            "localhost-2",
            "127.0.0.10",
            "10.127.0.0.1",
            "x.localhost",
        ] {
            assert_eq!(loopback_to(kept, h), kept);
        }
    }

    fn spec(retries: u32, start_period: u64) -> HealthSpec {
        HealthSpec {
            probe: Probe::Shell("true".into()),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration::from_secs(start_period),
            start_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn retries_consecutive_failures_make_unhealthy() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&spec(3, 0), t0);
        assert_eq!(t.next_delay(), Duration::from_secs(1));
        assert_eq!(t.record(t0, false), Health::Starting);
        assert_eq!(t.record(t0, false), Health::Starting);
        assert_eq!(t.record(t0, false), Health::Unhealthy);
        assert_eq!(t.record(t0, true), Health::Healthy);
        assert_eq!(t.next_delay(), Duration::from_secs(10));
        assert_eq!(t.record(t0, false), Health::Healthy);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&spec(1, 30), t0);
        assert_eq!(
            t.record(t0 + Duration::from_secs(29), false),
            Health::Starting
        );
        assert_eq!(
            t.record(t0 + Duration::from_secs(31), false),
            Health::Unhealthy
        );
        // After a success, failures count even inside the start period.
        let mut t = Tracker::new(&spec(1, 30), t0);
        t.record(t0, true);
        assert_eq!(
            t.record(t0 + Duration::from_secs(1), false),
            Health::Unhealthy
        );
    }

    #[test]
    fn from_compose_forms() {
        let mut h = cove_spec::model::Healthcheck {
            test: vec!["CMD-SHELL".into(), "pg_isready".into()],
            ..Default::default()
        };
        let s = HealthSpec::from_compose(&h).unwrap();
        assert_eq!(s.probe, Probe::Shell("pg_isready".into()));
        assert_eq!((s.interval, s.retries), (Duration::from_secs(30), 3));
        h.test = vec!["CMD".into(), "true".into()];
        assert_eq!(
            HealthSpec::from_compose(&h).unwrap().probe,
            Probe::Exec(vec!["true".into()])
        );
        h.test = vec!["NONE".into()];
        assert!(HealthSpec::from_compose(&h).is_none());
        h.test = vec!["CMD".into(), "true".into()];
        h.disable = true;
        assert!(HealthSpec::from_compose(&h).is_none());
    }

    #[tokio::test]
    async fn http_and_tcp_probes() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Answers /ok with 200, anything else with 503.
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer = if req.starts_with("GET /ok ") {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                } else {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let env = vec![
            ("HOST".to_string(), "127.0.0.1".to_string()),
            ("PORT".to_string(), port.to_string()),
        ];
        let dir = std::env::temp_dir();
        let mut s = spec(1, 0);
        s.probe = Probe::Http {
            path: "/ok".into(),
            port: None,
        };
        assert_eq!(probe(&s, &dir, &env).await, Ok(()));
        s.probe = Probe::Http {
            path: "/down".into(),
            port: Some(port),
        };
        let e = probe(&s, &dir, &env).await.unwrap_err();
        assert!(
            e.ends_with("answered `HTTP/1.1 503 Service Unavailable`"),
            "{e}"
        );
        s.probe = Probe::Tcp { port };
        assert_eq!(probe(&s, &dir, &env).await, Ok(()));
        // A port nobody listens on (bound, then closed).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        s.probe = Probe::Tcp { port: closed_port };
        let e = probe(&s, &dir, &env).await.unwrap_err();
        assert!(e.starts_with("cannot connect to 127.0.0.1:"), "{e}");
    }

    #[tokio::test]
    async fn probes_run_commands_with_a_timeout() {
        let dir = std::env::temp_dir();
        let mut s = spec(1, 0);
        assert_eq!(probe(&s, &dir, &[]).await, Ok(()));
        s.probe = Probe::Shell("echo not ready; exit 3".into());
        assert_eq!(
            probe(&s, &dir, &[]).await,
            Err("exited with code 3: not ready".into())
        );
        s.probe = Probe::Exec(vec!["sh".into(), "-c".into(), "test \"$X\" = yes".into()]);
        assert_eq!(probe(&s, &dir, &[("X".into(), "yes".into())]).await, Ok(()));
        s.probe = Probe::Shell("sleep 5".into());
        s.timeout = Duration::from_millis(100);
        let t = std::time::Instant::now();
        assert_eq!(
            probe(&s, &dir, &[]).await,
            Err("timed out after 100ms".into())
        );
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "the timeout did not stop the probe"
        );
        s.probe = Probe::Exec(vec!["/nonexistent/binary".into()]);
        let e = probe(&s, &dir, &[]).await.unwrap_err();
        assert!(e.starts_with("cannot run `/nonexistent/binary`"), "{e}");
    }
}
