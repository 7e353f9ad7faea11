//! `cove deploy --env prod` across two network-namespace hosts
//! ([`crate::netns::NetHosts`]), behind a front, under load (issue 21,
//! "Tests with real hosts"): each host is a namespace with a real sshd
//! and its own cove host daemon and age identity; the app (a Python HTTP
//! service with a healthcheck and a secret, 2 replicas) names both hosts
//! in `x-cove.environments.prod.hosts`, and each host's gateway listens
//! on the host's address (`GATEWAY_LISTEN`, interpolated from the
//! variables ssh gives commands there). A standalone `cove gateway` here
//! balances across the two gateways with health checks. Under continuous
//! GETs through it: `deploy --env prod` of a new version, `scale`,
//! `rollback`, then one host's link down and back. Failed requests are
//! counted per phase (printed; goal and assertion: 0).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::hosts::{HOST, cove, identity};
use crate::load::{Load, Sample, get};
use crate::netns::NetHosts;
use crate::netns_hosts::Front;
use crate::sshd::{merge_known_hosts, ssh_command};

const SERVER: &str = r#"
import http.server, os
token = os.environ["TOKEN"]  # from the secrets file, opened on the host
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok"
        else:
            body = ("v" + os.environ["VERSION"] + " " + os.environ["WHO"]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

fn compose(hosts: &[String]) -> String {
    format!(
        r#"name: fleet
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /healthz}}
      routes: [{{path: /}}]
    environment:
      VERSION: ${{VERSION}}
      WHO: ${{WHO:-nobody}}
    expose: ["8000"]
    deploy: {{replicas: 2}}
    secrets:
      - source: token
        x-cove: {{env: TOKEN}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
secrets:
  token:
    x-cove: {{store: TOKEN}}
x-cove:
  gateway: {{listen: "${{GATEWAY_LISTEN:-127.0.0.1:0}}"}}
  environments:
    prod:
      hosts: [{}]
"#,
        hosts.join(", ")
    )
}

/// A phase of the test under load: from when it began to when it ended.
struct Phase {
    name: &'static str,
    from: Duration,
    to: Duration,
}

/// Waits up to `secs` for `f` to give `Ok`, or panics with the last `Err`.
fn within<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {secs} s; last: {last}");
}

#[test]
fn deploy_scale_rollback_across_namespace_hosts_behind_a_front_under_load() {
    let Some(net) = NetHosts::new(2) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let init = identity;
    let laptop_id = t.join("me/id.txt");
    init(&laptop_id);
    let gateways: Vec<SocketAddr> = net
        .hosts
        .iter()
        .map(|h| SocketAddr::from((h.addr, 8080)))
        .collect();
    let mut recipients = Vec::new();
    let mut sshs = Vec::new();
    for (i, gateway) in gateways.iter().enumerate() {
        let id = t.join(format!("h{i}/id.txt"));
        recipients.push(init(&id));
        net.start_daemon(i);
        // What ssh gives commands run there: the host's identity, where
        // its gateway listens, its name.
        let listen = gateway.to_string();
        let who = format!("h{i}");
        sshs.push(net.start_sshd_env(
            i,
            &[
                ("COVE_IDENTITY", id.to_str().unwrap()),
                ("GATEWAY_LISTEN", &listen),
                ("WHO", &who),
            ],
        ));
    }
    let known = t.join("known_hosts");
    let files: Vec<_> = sshs.iter().map(|s| s.known_hosts.clone()).collect();
    merge_known_hosts(&known, &files);
    let keys: Vec<_> = sshs.iter().map(|s| s.key.clone()).collect();
    let ssh = ssh_command(&known, &keys, " -o ConnectTimeout=5");
    let me = laptop_id.to_str().unwrap();
    let env = [("COVE_SSH", ssh.as_str()), ("COVE_IDENTITY", me)];

    // The app, its prod variables and its secrets file, readable by the
    // hosts.
    let app = t.join("app");
    fs_err::create_dir_all(&app).unwrap();
    let urls: Vec<String> = sshs.iter().map(|s| s.url.clone()).collect();
    fs_err::write(app.join("compose.yaml"), compose(&urls)).unwrap();
    fs_err::write(app.join("server.py"), SERVER).unwrap();
    fs_err::write(app.join(".env.prod"), "VERSION=1\n").unwrap();
    let out = cove(&app, &env, &["--env", "prod", "secrets", "init"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for (i, r) in recipients.iter().enumerate() {
        let out = cove(
            &app,
            &env,
            &[
                "--env",
                "prod",
                "secrets",
                "recipients",
                "add",
                r,
                "--comment",
                &format!("h{i}"),
            ],
            None,
        );
        assert_eq!(out.code, Some(0), "{out}");
    }
    let out = cove(
        &app,
        &env,
        &["--env", "prod", "secrets", "set", "TOKEN"],
        Some(b"tok-fleet-7d1e"),
    );
    assert_eq!(out.code, Some(0), "{out}");

    // The first deploy, over the namespace links.
    let out = cove(&app, &env, &["deploy", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for (i, gw) in gateways.iter().enumerate() {
        let want = format!("v1 h{i}");
        within(60, &format!("{want} on host {i}'s gateway"), || {
            get(*gw, "/", HOST).and_then(|b| if b == want { Ok(()) } else { Err(b) })
        });
    }

    // The front: here, on loopback, across the two hosts' gateways.
    let upstreams: Vec<String> = gateways.iter().map(|g| g.to_string()).collect();
    let (front, listen, lines) = Front::start(&upstreams, "/healthz");
    let mut seen = std::collections::BTreeSet::new();
    within(60, "both hosts answer through the front", || {
        if let Ok(b) = get(listen, "/", HOST) {
            seen.insert(b);
        }
        if seen.len() == 2 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // The load: 4 clients, GETs back to back through the front, each on
    // a new connection; at most 200 000 requests and 600 s in all.
    let mut load = Load::start(4, 50_000, Duration::from_secs(600), move || {
        get(listen, "/", HOST)
    });
    let began = load.began;
    // Whether both hosts answered `want` (a version) through the front
    // after `after`, and nothing else did.
    let only_since = |version: &str, after: Duration| -> Result<(), String> {
        let samples = load.samples();
        let bodies: std::collections::BTreeSet<&str> = samples
            .iter()
            .filter(|s| s.start >= after)
            .filter_map(|s| s.result.as_deref().ok())
            .collect();
        let want: std::collections::BTreeSet<String> =
            (0..2).map(|i| format!("{version} h{i}")).collect();
        let want: std::collections::BTreeSet<&str> = want.iter().map(String::as_str).collect();
        if bodies == want {
            Ok(())
        } else {
            Err(format!("answered {bodies:?}"))
        }
    };
    let mut phases = Vec::new();
    let mut phase = |name: &'static str, run: &mut dyn FnMut()| {
        let from = began.elapsed();
        run();
        phases.push(Phase {
            name,
            from,
            to: began.elapsed(),
        });
    };

    phase("steady", &mut || std::thread::sleep(Duration::from_secs(2)));
    // A new version: rolled on each host, one host after the other.
    phase("deploy --env prod (v1 -> v2)", &mut || {
        fs_err::write(app.join(".env.prod"), "VERSION=2\n").unwrap();
        let out = cove(&app, &env, &["deploy", "--env", "prod"], None);
        assert_eq!(out.code, Some(0), "{out}");
        let done = began.elapsed();
        for (i, gw) in gateways.iter().enumerate() {
            assert_eq!(get(*gw, "/", HOST), Ok(format!("v2 h{i}")), "host {i}");
        }
        within(60, "only v2 from both hosts through the front", || {
            only_since("v2", done)
        });
    });
    phase("scale --env prod web=3", &mut || {
        let out = cove(&app, &env, &["scale", "--env", "prod", "web=3"], None);
        assert_eq!(out.code, Some(0), "{out}");
        let out = cove(
            &app,
            &env,
            &["ps", "--env", "prod", "--format", "json"],
            None,
        );
        assert_eq!(out.code, Some(0), "{out}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect(&out.stdout);
        for s in &sshs {
            let label = s.url.trim_start_matches("ssh://root@");
            let n = rows
                .iter()
                .filter(|r| r["host"].as_str().is_some_and(|h| label.starts_with(h)))
                .filter(|r| r["state"] == "running")
                .count();
            assert_eq!(n, 3, "3 running replicas on {label}: {out}");
        }
    });
    phase("rollback --env prod web", &mut || {
        let out = cove(&app, &env, &["rollback", "--env", "prod", "web"], None);
        assert_eq!(out.code, Some(0), "{out}");
        let done = began.elapsed();
        for (i, gw) in gateways.iter().enumerate() {
            assert_eq!(get(*gw, "/", HOST), Ok(format!("v1 h{i}")), "host {i}");
        }
        within(60, "only v1 from both hosts through the front", || {
            only_since("v1", done)
        });
    });
    // Host 0's link down mid-load: the front routes around it.
    phase("host 0's link down", &mut || {
        // What the front said before (a health check slowed by a loaded
        // machine) is not what follows.
        while let Ok((_, line)) = lines.try_recv() {
            eprintln!("front: {line}");
        }
        net.link_down(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, line) = lines
                .recv_timeout(left)
                .expect("the front did not say host 0 is down within 30 s");
            if line.contains(&format!("upstream {} is down", upstreams[0])) {
                break;
            }
            eprintln!("front: {line}");
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    // Back: it serves again.
    phase("host 0's link back", &mut || {
        net.link_up(0);
        let back = began.elapsed();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, line) = lines
                .recv_timeout(left)
                .expect("the front did not take host 0 back within 60 s");
            if line.contains(&format!("upstream {} is back", upstreams[0])) {
                break;
            }
            eprintln!("front: {line}");
        }
        within(60, "host 0 answers through the front again", || {
            only_since("v1", back)
        });
    });
    load.finish();

    let samples = load.samples();
    let mut failed_in_all = 0;
    for p in &phases {
        let during: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.start >= p.from && s.start < p.to)
            .collect();
        let failed: Vec<&Sample> = during
            .iter()
            .copied()
            .filter(|s| s.result.is_err())
            .collect();
        let slowest = during
            .iter()
            .map(|s| s.end - s.start)
            .max()
            .unwrap_or_default();
        eprintln!(
            "fleet: {}: {:.1?}, {} requests, {} failed, slowest {slowest:.0?}{}",
            p.name,
            p.to - p.from,
            during.len(),
            failed.len(),
            failed
                .first()
                .map(|s| format!(", first failure at {:.1?}: {:?}", s.start, s.result))
                .unwrap_or_default()
        );
        failed_in_all += failed.len();
    }
    eprintln!(
        "fleet: {} requests in all, {failed_in_all} failed",
        samples.len()
    );
    assert_eq!(failed_in_all, 0, "failed requests through the front");
    drop(samples);
    drop(front);
    let out = cove(&app, &env, &["down", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for gw in &gateways {
        assert!(
            get(*gw, "/", HOST).is_err(),
            "{gw} still answers after down"
        );
    }
}
