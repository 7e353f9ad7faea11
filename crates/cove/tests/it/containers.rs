//! The docker driver end to end (issue 8, in progress): a `build:` service
//! runs as a container beside a native one, against the real engine that
//! `scripts/test` starts (`DOCKER_HOST`). The image is built `FROM scratch`
//! around a statically linked server compiled here (no registry is
//! reachable).

use std::path::Path;
use std::process::Command;

use crate::daemon::{App, eventually};
use crate::gateway::http;

/// The container's program: HTTP on 0.0.0.0:PORT; `/` answers hello,
/// `/secret` the secret file reversed, `/crash` exits 1. It prints its
/// secret, which cove must scrub.
const SERVER: &str = r#"
use std::io::{Read, Write};
fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    if std::env::args().nth(1).as_deref() == Some("count") {
        // A named volume at /data, a bind mount at /shared, a tmpfs at /scratch.
        let n: u32 = std::fs::read_to_string("/data/count").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0) + 1;
        std::fs::write("/data/count", n.to_string()).unwrap();
        let shared = std::fs::read_to_string("/shared/greeting").unwrap_or_default();
        let scratch = std::fs::write("/scratch/x", "x").is_ok();
        let readonly = std::fs::write("/shared/x", "x").is_err();
        println!("count={n} shared={} scratch={scratch} readonly={readonly}", shared.trim());
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    if std::env::args().nth(1).as_deref() == Some("probe") {
        // The Compose healthcheck, run inside the container by the engine.
        let answer = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).and_then(|mut s| {
            write!(s, "GET /health HTTP/1.0\r\n\r\n")?;
            let mut a = String::new();
            s.read_to_string(&mut a)?;
            Ok(a)
        });
        let ok = answer.as_deref().is_ok_and(|a| a.starts_with("HTTP/1.1 200"));
        println!("probe: {}", if ok { "ok" } else { "failed" });
        std::process::exit(if ok { 0 } else { 1 });
    }
    let token = std::fs::read_to_string("/run/secrets/token").unwrap_or_default();
    println!("listening on {port}, token={token}");
    let l = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
    let mut sick = false;
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        // The head, then the body its Content-Length announces (a POST's),
        // read whole before answering.
        let mut req = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let n = c.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
            if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let head = String::from_utf8_lossy(&req).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        if path != "/health" {
            println!("request {path}");
        }
        if path == "/crash" {
            std::process::exit(1);
        }
        if path == "/sick" {
            sick = true;
        }
        if sick {
            let _ = write!(c, "HTTP/1.1 500 Sick\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            continue;
        }
        let body = if path == "/secret" {
            token.chars().rev().collect::<String>()
        } else if path == "/native" {
            // The native service, by the name in API (rewritten by cove).
            let api = std::env::var("API").unwrap_or_default();
            match std::net::TcpStream::connect(&api) {
                Ok(mut s) => {
                    let _ = write!(s, "GET /index.html HTTP/1.0\r\nHost: api\r\n\r\n");
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    answer.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string()
                }
                Err(e) => format!("cannot reach {api}: {e}"),
            }
        } else {
            "GREETING".to_string()
        };
        let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    }
}
"#;

const APP: &str = r#"
services:
  web:
    build:
      context: ./web
      labels: {made-by: cove-tests}
    expose: ["8080"]
    ports: ["127.0.0.1:PUBLISHED:8080"]
    environment:
      API: api:9000
    restart: always
    networks:
      default: {aliases: [www]}
    configs: [{source: motd, target: /etc/motd}]
    secrets: [token]
    healthcheck: {test: [CMD, /app, probe], interval: 300ms, retries: 3}
    x-cove:
      routes: [{path: /}]
  counter:
    build: ./web
    command: [count]
    stop_grace_period: 1s
    read_only: true
    cap_drop: [ALL]
    labels: {team: blue}
    hostname: counting
    shm_size: 16m
    security_opt: [no-new-privileges:true]
    group_add: ["1234"]
    dns: 10.0.0.53
    sysctls: {net.ipv4.ip_unprivileged_port_start: 0}
    volumes:
      - counts:/data
      - ./shared:/shared:ro
      - type: tmpfs
        target: /scratch
  api:
    expose: ["9000"]
    x-cove:
      run: [python3, -m, http.server, --bind, $$HOST, $$PORT, --directory, ./site]
  caller:
    environment:
      WEB: http://web:8080/
    depends_on:
      web: {condition: service_healthy}
    x-cove:
      run: [python3, -u, -c, "import os, urllib.request, time\nprint('got: ' + urllib.request.urlopen(os.environ['WEB']).read().decode())\ntime.sleep(3600)"]
volumes:
  counts:
configs:
  motd: {file: ./shared/greeting}
secrets:
  token:
    file: ./token.txt
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

fn containers(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Names}} {{.State}}",
        ])
        .output()
        .expect("the docker client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `source` (one Rust file) compiled here into a statically linked `app`
/// in `dir`, for an image `FROM scratch` (no registry is reachable).
pub fn static_binary(dir: &Path, source: &str) {
    fs_err::create_dir_all(dir).unwrap();
    fs_err::write(dir.join("app.rs"), source).unwrap();
    let out = Command::new("rustc")
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
}

fn static_server(dir: &Path, greeting: &str) {
    static_binary(dir, &SERVER.replace("GREETING", greeting));
    fs_err::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
}

#[test]
fn a_built_service_runs_as_a_container_beside_a_native_one_and_down_removes_it() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    // A host port for `ports` (free now; the gateway binds it at `up`).
    let published = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = App::new(&APP.replace("PUBLISHED", &published.port().to_string()));
    let dir = app.dir();
    static_server(&dir.join("web"), "hello from a container");
    fs_err::write(dir.join("token.txt"), "tok-7f3a9c1e").unwrap();
    fs_err::create_dir_all(dir.join("shared")).unwrap();
    fs_err::write(dir.join("shared/greeting"), "hi-from-the-host").unwrap();
    fs_err::create_dir_all(dir.join("site")).unwrap();
    fs_err::write(dir.join("site/index.html"), "hello from a native service").unwrap();
    // `cove build` alone: the images, nothing started.
    let built = crate::deploy::cove_ok(&app, &["build"]);
    assert!(
        built.contains("cove: built cove-") && built.contains("COPY app /app"),
        "{built}"
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let label = format!(
        "dev.cove.project={}",
        fs_err::canonicalize(dir.join(".cove")).unwrap().display()
    );
    let mut running = containers(&label);
    running.sort();
    assert_eq!(
        running.len(),
        2,
        "web and counter (api and caller are native): {running:?}\n{out}\n{}",
        fs_err::read_to_string(dir.join(".cove/daemon.log")).unwrap_or_default()
    );
    assert!(running[0].ends_with("-counter-1 running"), "{running:?}");
    assert!(running[1].ends_with("-web-1 running"), "{running:?}");
    // Volumes: a named one kept across containers, a read-only bind mount,
    // a tmpfs.
    eventually(10, "the counter's first line", || {
        app.merged(&["logs", "counter"])
            .1
            .contains("count=1 shared=hi-from-the-host scratch=true readonly=true")
    });
    let inspect = |what: &str, name: &str, format: &str| {
        let out = Command::new("docker")
            .args([what, "inspect", "--format", format, name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let counter = running[0].split_whitespace().next().unwrap().to_string();
    assert_eq!(
        inspect(
            "container",
            &counter,
            "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{index .Config.Labels \"team\"}}"
        ),
        "true [ALL] blue"
    );
    assert_eq!(
        inspect(
            "container",
            &counter,
            "{{.Config.Hostname}} {{.HostConfig.ShmSize}} {{.HostConfig.SecurityOpt}} {{.HostConfig.GroupAdd}} {{.HostConfig.Dns}} {{.HostConfig.Sysctls}}"
        ),
        "counting 16777216 [no-new-privileges:true] [1234] [10.0.0.53] map[net.ipv4.ip_unprivileged_port_start:0]"
    );
    crate::deploy::cove_ok(&app, &["restart", "counter"]);
    eventually(15, "the count kept in the named volume", || {
        app.merged(&["logs", "counter"]).1.contains("count=2 ")
    });

    // Through the gateway, and from the native service by name.
    let (code, out) = app.merged(&["routes", "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let url = crate::gateway::json(&out)["url"]
        .as_str()
        .unwrap()
        .to_string();
    let gw = url.trim_start_matches("http://").parse().unwrap();
    let (status, _, body) = http(gw, "GET", "localhost", "/", b"");
    assert_eq!((status, body.as_str()), (200, "hello from a container"));
    let (status, _, body) = http(gw, "GET", "localhost", "/secret", b"");
    assert_eq!(
        (status, body.as_str()),
        (200, "e1c9a3f7-kot"),
        "the secret at /run/secrets"
    );
    // At its published port, as `docker compose` publishes it.
    let (status, _, body) = http(published, "GET", "localhost", "/", b"");
    assert_eq!((status, body.as_str()), (200, "hello from a container"));
    // And from the container to the native service, by its name.
    let mut last = String::new();
    eventually(10, "the native service through the container", || {
        last = http(gw, "GET", "localhost", "/native", b"").2;
        last == "hello from a native service"
    });
    eventually(10, "the native caller's answer", || {
        app.merged(&["logs", "caller"])
            .1
            .contains("got: hello from a container")
    });
    let ps = app.ps();
    let web = ps.iter().find(|r| r["service"] == "web").unwrap();
    assert_eq!(
        (&web["state"], &web["health"]),
        (&"running".into(), &"healthy".into()),
        "{web}"
    );
    let ip: std::net::Ipv4Addr = web["address"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0
        .parse()
        .unwrap();
    assert!(
        ip.octets()[0] == 10 && ip.octets()[1] >= 192,
        "in 10.192.0.0/10: {web}"
    );
    assert!(
        web["pid"].as_u64().is_some(),
        "the container's process: {web}"
    );
    let name = web["container"].as_str().unwrap().to_string();
    assert!(name.ends_with("-web-1"), "{web}");
    // Its network aliases are names on the project's network.
    assert!(
        inspect(
            "container",
            &name,
            "{{range .NetworkSettings.Networks}}{{.Aliases}}{{end}}"
        )
        .contains("www"),
    );
    // Its config, bound read-only at its target.
    assert!(
        inspect(
            "container",
            &name,
            "{{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}"
        )
        .contains("/etc/motd:false"),
    );
    // Its Compose healthcheck is the engine's to run.
    assert_eq!(
        inspect(
            "container",
            &name,
            "{{.Config.Healthcheck.Test}} {{.State.Health.Status}}"
        ),
        "[CMD /app probe] healthy"
    );
    let table = crate::deploy::cove_ok(&app, &["ps"]);
    assert!(
        table.contains("CONTAINER") && table.contains(&name),
        "{table}"
    );

    // Its output is in the merged logs, its secret scrubbed.
    let (_, logs) = app.merged(&["logs", "web"]);
    assert!(logs.contains("listening on 8080, token=***"), "{logs}");
    assert!(!logs.contains("tok-7f3a9c1e"), "{logs}");

    // A crash: restarted (a new container), healthy again.
    let _ = http(gw, "GET", "localhost", "/crash", b"");
    eventually(30, "web restarted and healthy", || {
        let ps = app.ps();
        let w = ps.iter().find(|r| r["service"] == "web").unwrap().clone();
        w["restarts"] == 1 && w["health"] == "healthy"
    });
    let (status, _, _) = http(gw, "GET", "localhost", "/", b"");
    assert_eq!(status, 200);
    // Unhealthy (its health check fails): replaced by a new container.
    let _ = http(gw, "GET", "localhost", "/sick", b"");
    eventually(
        30,
        "web restarted after turning unhealthy, healthy again",
        || {
            let ps = app.ps();
            let w = ps.iter().find(|r| r["service"] == "web").unwrap().clone();
            w["restarts"] == 2 && w["health"] == "healthy"
        },
    );
    let (status, _, _) = http(gw, "GET", "localhost", "/", b"");
    assert_eq!(status, 200);

    // Scaled out and back in under load: containers added beside, then
    // drained before they stop; no request fails.
    let load = crate::deploy::Load::start(gw);
    crate::deploy::settle();
    crate::deploy::cove_ok(&app, &["scale", "web=3"]);
    let webs = |app: &App| {
        app.ps()
            .into_iter()
            .filter(|r| r["service"] == "web" && r["health"] == "healthy")
            .count()
    };
    eventually(30, "three healthy web containers", || webs(&app) == 3);
    assert_eq!(
        containers(&label)
            .iter()
            .filter(|c| c.contains("-web-"))
            .count(),
        3
    );
    crate::deploy::settle();
    crate::deploy::cove_ok(&app, &["scale", "web=1"]);
    crate::deploy::settle();
    load.finish("container scaling");
    eventually(15, "one web container left", || webs(&app) == 1);
    eventually(10, "the two extra containers removed", || {
        containers(&label)
            .iter()
            .filter(|c| c.contains("-web-"))
            .count()
            == 1
    });

    // The same image again: nothing to do. A new one: built, started
    // beside the old container, which is drained; no request fails.
    let same = crate::deploy::cove_ok(&app, &["deploy", "web"]);
    assert!(same.contains("already running"), "{same}");
    let load = crate::deploy::Load::start(gw);
    crate::deploy::settle();
    static_server(&dir.join("web"), "hello from version 2");
    crate::deploy::cove_ok(&app, &["deploy", "web"]);
    crate::deploy::settle();
    let bodies = load.finish("container deploy");
    assert!(bodies.contains_key("hello from version 2"), "{bodies:?}");
    let (_, _, body) = http(gw, "GET", "localhost", "/", b"");
    assert_eq!(body, "hello from version 2");
    // Each build is tagged with its revision, so `latest` moving keeps it.
    let out = Command::new("docker")
        .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&out.stdout).to_string();
    let latest = tags
        .lines()
        .find(|l| l.starts_with("cove-") && l.ends_with("-web:latest"))
        .unwrap()
        .to_string();
    assert_eq!(
        inspect("image", &latest, "{{index .Config.Labels \"made-by\"}}"),
        "cove-tests"
    );
    for t in ["-web:latest", "-web:r1", "-web:r2"] {
        assert!(
            tags.lines()
                .any(|l| l.starts_with("cove-") && l.ends_with(t)),
            "{t} in {tags}"
        );
    }
    // Back to the first build: its image, by id, though the tag moved.
    let load = crate::deploy::Load::start(gw);
    crate::deploy::settle();
    crate::deploy::cove_ok(&app, &["rollback", "web"]);
    crate::deploy::settle();
    load.finish("container rollback");
    let (_, _, body) = http(gw, "GET", "localhost", "/", b"");
    assert_eq!(body, "hello from a container", "rolled back");
    crate::deploy::cove_ok(&app, &["deploy", "web"]);
    let (_, _, body) = http(gw, "GET", "localhost", "/", b"");
    assert_eq!(body, "hello from version 2", "deployed again");
    let running: Vec<String> = containers(&label)
        .into_iter()
        .filter(|c| c.contains("-web-"))
        .collect();
    assert_eq!(running.len(), 1, "the old container is gone: {running:?}");
    assert!(running[0].ends_with(" running"), "{running:?}");

    // The daemon SIGKILLed: its reaper stops the native replicas, but the
    // containers run on (the engine runs them) and still answer at their
    // addresses; started again, the daemon takes them over by their labels
    // (same containers, not restarted) and starts the native ones again.
    let ids = |label: &str| {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                &format!("label={label}"),
            ])
            .output()
            .unwrap();
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    };
    let before = ids(&label);
    eprintln!("before: {:?}", containers(&label));
    assert_eq!(before.len(), 2, "web and counter: {before:?}");
    let ps = app.ps();
    let web = ps.iter().find(|r| r["service"] == "web").unwrap().clone();
    let restarts = web["restarts"].clone();
    let web_at: std::net::SocketAddr = web["address"].as_str().unwrap().parse().unwrap();
    let caller = ps.iter().find(|r| r["service"] == "caller").unwrap()["pid"]
        .as_u64()
        .unwrap();
    crate::daemon::kill9(app.daemon_pid().expect("a daemon runs"));
    eventually(20, "the native caller stopped by the reaper", || {
        !Path::new(&format!("/proc/{caller}")).exists()
    });
    assert_eq!(ids(&label), before, "the containers run on");
    let (status, _, body) = http(web_at, "GET", "localhost", "/", b"");
    assert_eq!((status, body.as_str()), (200, "hello from version 2"));
    crate::deploy::cove_ok(&app, &["up", "-d"]);
    assert_eq!(
        ids(&label),
        before,
        "taken over, not replaced: {:?}\n{}",
        containers(&label),
        fs_err::read_to_string(dir.join(".cove/daemon.log")).unwrap_or_default()
    );
    let mut after = containers(&label);
    after.sort();
    assert_eq!(after.len(), 2, "no container beside them: {after:?}");
    eventually(15, "web taken over, healthy", || {
        let ps = app.ps();
        let w = ps.iter().find(|r| r["service"] == "web").unwrap().clone();
        w["health"] == "healthy" && w["restarts"] == restarts && w["address"] == web["address"]
    });
    let (status, _, body) = http(gw_after(&app), "GET", "localhost", "/", b"");
    assert_eq!((status, body.as_str()), (200, "hello from version 2"));
    let (status, _, body) = http(published, "GET", "localhost", "/", b"");
    assert_eq!((status, body.as_str()), (200, "hello from version 2"));
    // Its output is followed again.
    let (status, _, _) = http(
        gw_after(&app),
        "GET",
        "localhost",
        "/after-the-restart",
        b"",
    );
    assert_eq!(status, 200);
    // `cove ARGS` until its output has `needle` (10 s at most): the output.
    let until = |args: &[&str], needle: &str| {
        let mut out = String::new();
        for _ in 0..50 {
            out = app.merged(args).1;
            if out.contains(needle) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        out
    };
    let logs = until(
        &["logs", "web", "--tail", "20"],
        "request /after-the-restart",
    );
    assert!(
        logs.contains("request /after-the-restart"),
        "the taken-over container's new lines: {logs}\n{}",
        fs_err::read_to_string(dir.join(".cove/daemon.log")).unwrap_or_default()
    );
    let caller = until(&["logs", "caller"], "got: hello from version 2");
    assert!(
        caller.contains("got: hello from version 2"),
        "the native caller started again: {caller}\n{}",
        fs_err::read_to_string(dir.join(".cove/daemon.log")).unwrap_or_default()
    );

    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        containers(&label),
        Vec::<String>::new(),
        "down leaves no container"
    );
    // The named volume outlives `down`; `down --volumes` deletes it, naming it.
    let (_, config) = app.merged(&["config", "--format", "json"]);
    let mine = format!(
        "cove-{}-",
        crate::gateway::json(&config)["name"].as_str().unwrap()
    );
    let volumes = || {
        let out = Command::new("docker")
            .args(["volume", "ls", "--format", "{{.Name}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|v| v.starts_with(&mine) && v.ends_with("_counts"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let kept = volumes();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (code, out) = app.merged(&["down", "--volumes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("deleting the Docker volume {}", kept[0])),
        "{out}"
    );
    assert!(volumes().is_empty());
}

/// The gateway's address now (a restarted daemon may take another port).
fn gw_after(app: &App) -> std::net::SocketAddr {
    let out = crate::deploy::cove_ok(app, &["routes", "--format", "json"]);
    let url = crate::gateway::json(&out)["url"]
        .as_str()
        .unwrap()
        .to_string();
    url.trim_start_matches("http://").parse().unwrap()
}
