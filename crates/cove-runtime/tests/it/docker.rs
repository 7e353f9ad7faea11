//! The Docker Engine side of the driver against a real engine (the one
//! `scripts/test` starts, at `DOCKER_HOST`). No registry is reachable:
//! the image is built `FROM scratch` around a statically linked program
//! compiled here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use std::time::{Duration, Instant};

use cove_runtime::docker::{
    BuildSpec, ContainerSpec, DockerError, Engine, Healthcheck, LABEL_PROJECT,
};
use cove_runtime::process::Stream;

/// The program in the image: `print N` writes N lines to each stream and
/// exits 3; `serve` listens on PORT (ignoring SIGTERM, as PID 1 does
/// without a handler); `probe` checks that something listens there.
const APP: &str = r#"
use std::io::Write;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    match args.get(1).map(String::as_str) {
        Some("print") => {
            let n: u32 = args[2].parse().unwrap();
            for i in 0..n {
                println!("out {i}");
                eprintln!("err {i}");
            }
            std::io::stdout().flush().unwrap();
            std::process::exit(3);
        }
        Some("serve") => {
            let l = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
            println!("listening on {port}");
            for c in l.incoming() {
                drop(c);
            }
        }
        Some("probe") => {
            let ok = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
            std::process::exit(if ok { 0 } else { 1 });
        }
        _ => std::process::exit(2),
    }
}
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The engine, or a failure that says how to get one.
async fn engine() -> Engine {
    match Engine::connect().await {
        Ok(e) => e,
        Err(e) => panic!(
            "{e}\nhint: run `bash scripts/test`, which starts a Docker engine of its own ({})",
            e.hint()
        ),
    }
}

/// Compiles APP statically into `dir/app`, beside a Dockerfile.
fn context(dir: &Path) {
    fs_err::write(dir.join("app.rs"), APP).unwrap();
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "app.rs",
            "-o",
            "app",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs_err::remove_file(dir.join("app.rs")).unwrap();
    fs_err::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\nLABEL made-by=cove-tests\n",
    )
    .unwrap();
}

type Lines = Arc<Mutex<Vec<(Stream, String)>>>;

fn collect(lines: &Lines) -> impl FnMut(Stream, String) + Send + 'static {
    let lines = lines.clone();
    move |s, l| lines.lock().unwrap().push((s, l))
}

#[test]
fn a_built_image_runs_is_followed_health_checked_stopped_and_found_by_label() {
    let tmp = tempfile::tempdir().unwrap();
    context(tmp.path());
    let id = std::process::id();
    let tag = format!("cove-test-app:{id}");
    let project = format!("cove-test-{id}");
    rt().block_on(async {
        let engine = engine().await;
        assert!(!engine.version().await.unwrap().is_empty());

        // Build, output followed line by line.
        let mut build_lines = Vec::new();
        let spec = BuildSpec {
            context: tmp.path().to_path_buf(),
            tag: tag.clone(),
            labels: HashMap::from([(LABEL_PROJECT.to_string(), project.clone())]),
            ..Default::default()
        };
        let image = engine
            .build(&spec, |l| build_lines.push(l.to_string()))
            .await
            .unwrap();
        assert!(image.starts_with("sha256:"), "{image}");
        assert!(
            build_lines.iter().any(|l| l.contains("COPY app /app")),
            "{build_lines:?}"
        );
        assert_eq!(engine.image_id(&tag).await.unwrap(), Some(image.clone()));
        assert_eq!(
            engine.ensure_image(&tag).await.unwrap(),
            image,
            "present: no pull"
        );

        let labels = HashMap::from([(LABEL_PROJECT.to_string(), project.clone())]);
        // A job: both streams, line by line, then its exit code.
        let lines: Lines = Default::default();
        let job = engine
            .run(
                &ContainerSpec {
                    name: format!("{project}-job"),
                    image: tag.clone(),
                    cmd: Some(vec!["print".into(), "5".into()]),
                    labels: labels.clone(),
                    network_mode: Some("none".into()),
                    ..Default::default()
                },
                collect(&lines),
            )
            .await
            .unwrap();
        assert_eq!(engine.wait(&job).await.unwrap(), 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines.lock().unwrap().len() < 10 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = lines.lock().unwrap().clone();
        for i in 0..5 {
            assert!(
                got.contains(&(Stream::Stdout, format!("out {i}"))),
                "{got:?}"
            );
            assert!(
                got.contains(&(Stream::Stderr, format!("err {i}"))),
                "{got:?}"
            );
        }
        engine.remove(&job).await.unwrap();

        // A server with the engine's healthcheck; found again by label;
        // stopped with a grace period it does not use (PID 1 ignores
        // SIGTERM), so it is killed when the grace is over.
        let before = std::time::SystemTime::now() - Duration::from_secs(1);
        let server = engine
            .run(
                &ContainerSpec {
                    name: format!("{project}-server"),
                    image: tag.clone(),
                    cmd: Some(vec!["serve".into()]),
                    env: vec![("PORT".into(), "8181".into())],
                    labels: labels.clone(),
                    network_mode: Some("none".into()),
                    healthcheck: Some(Healthcheck {
                        test: vec!["CMD".into(), "/app".into(), "probe".into()],
                        interval: Duration::from_secs(1),
                        timeout: Duration::from_secs(2),
                        retries: 3,
                        ..Default::default()
                    }),
                    stop_signal: Some("SIGTERM".into()),
                    ..Default::default()
                },
                |_, _| {},
            )
            .await
            .unwrap();
        // Its verdicts come as events (from a time before it started, so
        // none is missed however late the subscription), and its state
        // says the same.
        let first = |c: &cove_runtime::docker::Container| {
            let events = engine.health_events(c, before);
            async move {
                let mut events = std::pin::pin!(events);
                tokio::time::timeout(Duration::from_secs(20), events.next())
                    .await
                    .expect("a health event within 20 s")
            }
        };
        assert_eq!(first(&server).await.as_deref(), Some("healthy"));
        let health = engine.health(&server).await.unwrap().unwrap();
        assert_eq!((health.status.as_str(), health.streak), ("healthy", 0));
        assert_eq!(health.last, "exited with code 0");

        // A check that fails: unhealthy after `retries`, its output kept.
        let sick = engine
            .run(
                &ContainerSpec {
                    name: format!("{project}-sick"),
                    image: tag.clone(),
                    cmd: Some(vec!["serve".into()]),
                    labels: labels.clone(),
                    network_mode: Some("none".into()),
                    healthcheck: Some(Healthcheck {
                        test: vec!["CMD".into(), "/app".into(), "nope".into()],
                        interval: Duration::from_secs(1),
                        timeout: Duration::from_secs(2),
                        retries: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(first(&sick).await.as_deref(), Some("unhealthy"));
        let health = engine.health(&sick).await.unwrap().unwrap();
        assert_eq!((health.status.as_str(), health.streak), ("unhealthy", 2));
        assert_eq!(health.last, "exited with code 2");
        engine.remove(&sick).await.unwrap();
        let found = engine.find(&[(LABEL_PROJECT, &project)]).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].name.as_str(), found[0].state.as_str()),
            (server.name.as_str(), "running")
        );
        let started = Instant::now();
        engine
            .stop(&server, "SIGTERM", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "the grace was given"
        );
        assert_eq!(engine.wait(&server).await.unwrap(), 137, "killed after it");
        engine.remove(&server).await.unwrap();
        assert!(
            engine
                .find(&[(LABEL_PROJECT, &project)])
                .await
                .unwrap()
                .is_empty()
        );
        engine.remove_image(&tag).await.unwrap();
    });
}

#[test]
fn a_missing_image_that_cannot_be_pulled_is_named_with_what_to_do() {
    rt().block_on(async {
        let engine = engine().await;
        let image = format!("cove-test-absent-{}:never", std::process::id());
        let err = engine.ensure_image(&image).await.unwrap_err();
        assert!(matches!(err, DockerError::MissingImage { .. }), "{err:?}");
        let text = format!("{err}\nhint: {}", err.hint());
        assert!(
            text.contains(&image) && text.contains("cove build") && text.contains("docker load"),
            "{text}"
        );
    });
}
