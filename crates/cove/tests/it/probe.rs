//! A container's readiness before the engine's first health check (issue
//! 19): the engine runs a Compose healthcheck one `interval` after the
//! start (engines before API 1.44 have no `start_interval`), so cove runs
//! the check itself through the exec API until the engine's first verdict.
//! The image is built `FROM scratch` around a static program compiled here
//! (no registry is reachable).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::App;

/// Listens on PORT after DELAY_MS; `probe`: exits 0 when something
/// listens on PORT, 1 if not.
const PROGRAM: &str = r#"
fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    if std::env::args().nth(1).as_deref() == Some("probe") {
        let ok = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    let delay: u64 = std::env::var("DELAY_MS").ok().and_then(|d| d.parse().ok()).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(delay));
    let l = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
    println!("listening on {port}");
    for c in l.incoming() {
        drop(c);
    }
}
"#;

/// Both checks run by the engine only after 30 s. `slow` listens after
/// 2.5 s: cove's early probes fail ~10 times, and with `retries: 1` a
/// single failure counted would make it unhealthy.
const APP: &str = r#"
services:
  fast:
    build: ./img
    environment: {PORT: "8080"}
    stop_grace_period: 1s
    healthcheck: {test: [CMD, /app, probe], interval: 30s, timeout: 5s, retries: 1}
  slow:
    build: ./img
    environment: {PORT: "8080", DELAY_MS: "2500"}
    stop_grace_period: 1s
    healthcheck: {test: [CMD, /app, probe], interval: 30s, timeout: 5s, retries: 1}
    depends_on:
      fast: {condition: service_healthy}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

/// The engine's own health status of the container of `service`.
fn engine_health(app: &App, service: &str) -> String {
    let label = format!(
        "dev.cove.project={}",
        fs_err::canonicalize(app.dir().join(".cove"))
            .unwrap()
            .display()
    );
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label={label}")])
        .output()
        .expect("the docker client");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{.Name}} {{.State.Health.Status}}"])
        .args(&ids)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!("-{service}-")))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_container_is_ready_at_its_first_passing_check_not_one_interval_later() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    let app = App::new(APP);
    let img = app.dir().join("img");
    crate::containers::static_binary(&img, PROGRAM);
    fs_err::write(
        img.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    crate::deploy::cove_ok(&app, &["build"]);

    // `up -d` returns when both are healthy: `fast` at once, `slow` once it
    // listens; the engine's first checks would come 30 s after the starts
    // (so the old wait took 30 s or more: 28 s leaves room for a slow machine).
    let began = Instant::now();
    let (code, out) = app.merged(&["up", "-d"]);
    let took = began.elapsed();
    let log = || fs_err::read_to_string(app.dir().join(".cove/daemon.log")).unwrap_or_default();
    assert_eq!(code, Some(0), "{out}\n{}", log());
    assert!(
        took < Duration::from_secs(28),
        "up -d took {took:?}: readiness waited for the engine's first check\n{out}"
    );
    // `slow` waited for `fast` (healthy first) and for its own listener.
    assert!(took >= Duration::from_millis(2500), "{took:?}\n{out}");

    // Healthy in cove's eyes while the engine has not checked yet, and it
    // stays so (the engine's `starting` is no step back); the early
    // failures of `slow` did not count: no restart, never unhealthy.
    for _ in 0..3 {
        let ps = app.ps();
        for service in ["fast", "slow"] {
            let row = ps
                .iter()
                .find(|r| r["service"] == service)
                .unwrap_or_else(|| panic!("no {service} in {ps:?}"));
            assert_eq!(row["health"], "healthy", "{ps:?}\n{}", log());
            assert_eq!(row["restarts"], 0, "{ps:?}\n{}", log());
            assert_eq!(row["state"], "running", "{ps:?}\n{}", log());
        }
        assert_eq!(engine_health(&app, "fast"), "starting");
        assert_eq!(engine_health(&app, "slow"), "starting");
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(!log().contains("unhealthy"), "{}", log());
    crate::deploy::cove_ok(&app, &["down"]);
}
