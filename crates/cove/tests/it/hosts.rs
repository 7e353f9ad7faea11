//! `x-cove.environments.prod.hosts` and `cove deploy --env prod` against
//! two real OpenSSH servers on loopback (different ports), each with its
//! own cove host daemon directory, age identity and gateway address: the
//! app and its encrypted secrets file are sent content-addressed (only the
//! blobs a host lacks), deployed on one host after the other, answer on
//! each host's gateway with the secret opened there; a deploy that fails
//! on the second host rolls the first back; `ps --env prod` lists both
//! hosts and says when one does not answer.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::daemon::{HostDaemon, Out, eventually, run_bounded};
use crate::load::get;
use crate::sshd::{Options, Sshd, merge_known_hosts, ssh_command};

const SERVER: &str = r#"
import http.server, os, sys
if os.environ["VERSION"] == os.environ.get("FAULT_VERSION"):
    print("version", os.environ["VERSION"], "cannot start on this host", flush=True)
    sys.exit(1)
print("serving version", os.environ["VERSION"], flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/secret":
            body = os.environ["TOKEN"].encode()
        else:
            body = ("v" + os.environ["VERSION"]).encode()
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
        r#"name: shipped
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /healthz}}
    environment:
      VERSION: ${{VERSION}}
      FAULT_VERSION: ${{FAULT_VERSION:-none}}
    expose: ["8000"]
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

/// The Host header of requests to the hosts' gateways.
pub(crate) const HOST: &str = "web.prod.localhost";

const TOKEN: &str = "tok-3f0c9a71-shipped-only-encrypted";

/// A free port of 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cove ARGS` in `dir` as the laptop: `env` for its own variables, no
/// daemon of this machine asked.
pub(crate) fn cove(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cove"));
    c.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("COVE_DAEMON")
        .env_remove("COVE_HOST_DIR")
        .env_remove("COVE_HOST")
        .env_remove("COVE_STATE_DIR")
        .env_remove("COVE_SHIPPED")
        .envs(env.iter().copied());
    match stdin {
        None => run_bounded(&mut c, 300),
        Some(input) => {
            let mut child = c
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            let out = child.wait_with_output().unwrap();
            Out {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    }
}

/// Makes an age identity at `who` (as `cove secrets init` or `cove
/// server install` does): its recipient.
pub(crate) fn identity(who: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    fs_err::write(scratch.path().join("compose.yaml"), "services: {}\n").unwrap();
    let out = cove(
        scratch.path(),
        &[("COVE_IDENTITY", who.to_str().unwrap())],
        &["secrets", "init"],
        None,
    );
    assert_eq!(out.code, Some(0), "{out}");
    out.stderr
        .lines()
        .find_map(|l| l.strip_prefix("cove: your recipient (public key): "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string()
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in read.flatten() {
            let p = e.path();
            let Ok(meta) = fs_err::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && fs_err::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p);
            }
        }
    }
    found
}

/// A host: its daemon's directory, identity, gateway and sshd.
struct Host {
    sshd: Sshd,
    gateway: SocketAddr,
    daemon: HostDaemon,
}

impl Host {
    fn start(identity: &Path, more: &[(&str, &str)]) -> Host {
        let daemon = HostDaemon {
            dir: tempfile::tempdir().unwrap(),
        };
        let gateway: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut o = Options::new(daemon.dir.path())
            .env("COVE_IDENTITY", identity.display())
            .env("GATEWAY_LISTEN", gateway);
        for (k, v) in more {
            o = o.env(k, v);
        }
        Host {
            sshd: Sshd::start_opts(o),
            gateway,
            daemon,
        }
    }

    fn label(&self) -> String {
        format!("127.0.0.1:{}", self.sshd.port)
    }
}

/// The app stopped on each host (what `cove system in shipped prod --
/// down` does over ssh, run here: the host is this machine), whatever
/// happened; then the hosts' daemons and sshds stop as they drop.
struct Down(Vec<PathBuf>);

impl Drop for Down {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = run_bounded(
                Command::new(env!("CARGO_BIN_EXE_cove"))
                    .args(["system", "in", "shipped", "prod", "--", "down"])
                    .env("COVE_HOST_DIR", dir)
                    .env_remove("COVE_DAEMON"),
                120,
            );
        }
    }
}

#[test]
fn deploy_env_ships_to_each_host_and_rolls_back_when_one_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let init = identity;
    let (laptop_id, id1, id2) = (
        t.join("me/id.txt"),
        t.join("h1/id.txt"),
        t.join("h2/id.txt"),
    );
    init(&laptop_id);
    let (r1, r2) = (init(&id1), init(&id2));
    // The second host cannot start version 3 (what it lacks, said by its
    // own environment): its deploy of it fails there only.
    let mut hosts = [
        Host::start(&id1, &[]),
        Host::start(&id2, &[("FAULT_VERSION", "3")]),
    ];
    let _down = Down(
        hosts
            .iter()
            .map(|h| h.daemon.dir.path().to_path_buf())
            .collect(),
    );
    let known = t.join("known_hosts");
    let files: Vec<_> = hosts.iter().map(|h| h.sshd.known_hosts()).collect();
    merge_known_hosts(&known, &files);
    let keys: Vec<_> = hosts.iter().map(|h| h.sshd.client_key()).collect();
    let ssh = ssh_command(&known, &keys, "");
    let me = laptop_id.to_str().unwrap();
    let env = [("COVE_SSH", ssh.as_str()), ("COVE_IDENTITY", me)];

    // The app, its prod variables and its secrets file, readable by the
    // hosts.
    let app = t.join("app");
    fs_err::create_dir_all(&app).unwrap();
    let urls: Vec<String> = hosts.iter().map(|h| h.sshd.url()).collect();
    fs_err::write(app.join("compose.yaml"), compose(&urls)).unwrap();
    fs_err::write(app.join("server.py"), SERVER).unwrap();
    fs_err::write(app.join(".env.prod"), "VERSION=1\n").unwrap();
    fs_err::write(app.join("notes.txt"), "not referenced: never sent\n").unwrap();
    for args in [
        &["--env", "prod", "secrets", "init"][..],
        &[
            "--env",
            "prod",
            "secrets",
            "recipients",
            "add",
            &r1,
            "--comment",
            "web1",
        ],
        &[
            "--env",
            "prod",
            "secrets",
            "recipients",
            "add",
            &r2,
            "--comment",
            "web2",
        ],
    ] {
        let out = cove(&app, &env, args, None);
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
    }
    let out = cove(
        &app,
        &env,
        &["--env", "prod", "secrets", "set", "TOKEN"],
        Some(TOKEN.as_bytes()),
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(app.join("cove.secrets.prod.yaml").is_file());

    // The first deploy (`up -d` is the same): everything sent, each host
    // started.
    let out = cove(&app, &env, &["up", "-d", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        assert!(
            out.stderr
                .contains(&format!("{} | shipped 4 files,", h.label())),
            "compose.yaml, .env.prod, server.py, the secrets file: {out}"
        );
        assert!(
            out.stderr.contains(&format!("{} | ", h.label())) && out.stderr.contains("web-1"),
            "the host's output, prefixed: {out}"
        );
    }
    assert!(
        !out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN),
        "{out}"
    );
    for h in &hosts {
        eventually(60, "v1 on each host's gateway", || {
            get(h.gateway, "/", HOST) == Ok("v1".into())
        });
        assert_eq!(get(h.gateway, "/secret", HOST), Ok(TOKEN.to_string()));
        // Opened there: never on the wire nor on the host's disk in the
        // clear.
        let leaks = files_holding(h.daemon.dir.path(), TOKEN.as_bytes());
        assert!(leaks.is_empty(), "the secret in the clear: {leaks:?}");
        let blobs = fs_err::read_dir(h.daemon.dir.path().join("blobs"))
            .unwrap()
            .count();
        assert_eq!(blobs, 4, "one blob per file");
        assert!(
            files_holding(h.daemon.dir.path(), b"not referenced").is_empty(),
            "what the app does not name is not sent"
        );
    }

    // Nothing changed: nothing sent. (Its time is printed, not checked:
    // the machine is shared.)
    let started = std::time::Instant::now();
    let out = cove(&app, &env, &["deploy", "--env", "prod"], None);
    println!(
        "measured: a deploy to 2 hosts with nothing changed took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        assert!(
            out.stderr.contains(&format!(
                "{} | shipped 0 files, 0 B (4 unchanged)",
                h.label()
            )),
            "{out}"
        );
    }

    // `ps --env prod`: both hosts' replicas.
    let out = cove(
        &app,
        &env,
        &["ps", "--env", "prod", "--format", "json"],
        None,
    );
    assert_eq!(out.code, Some(0), "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect(&out.stdout);
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut want: Vec<(String, String)> = hosts
        .iter()
        .map(|h| (h.label(), "running".to_string()))
        .collect();
    want.sort();
    assert_eq!(seen, want, "{out}");
    let out = cove(&app, &env, &["ps", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.starts_with("HOST "), "{out}");
    for h in &hosts {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&h.label()) && l.contains(" web ")),
            "{out}"
        );
    }

    // One file changed: only its blob is sent.
    fs_err::write(app.join(".env.prod"), "VERSION=2\n").unwrap();
    let out = cove(&app, &env, &["deploy", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        assert!(
            out.stderr.contains(&format!(
                "{} | shipped 1 file, 10 B (3 unchanged)",
                h.label()
            )),
            "{out}"
        );
        eventually(60, "v2 on each host", || {
            get(h.gateway, "/", HOST) == Ok("v2".into())
        });
    }

    // `logs`, `history` across the hosts, and over `--host`: run in
    // each host's checkout, prefixed with the host.
    let out = cove(&app, &env, &["logs", "--env", "prod", "web"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{} | web-1", h.label()))
                    && l.ends_with("serving version 2")),
            "{out}"
        );
    }
    let out = cove(&app, &env, &["history", "--env", "prod", "web"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{} | 2 (running)", h.label()))),
            "{out}"
        );
    }
    let out = cove(
        &app,
        &env,
        &[
            "--host",
            &hosts[0].sshd.url(),
            "--env",
            "prod",
            "logs",
            "web",
        ],
        None,
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("serving version 2") && !out.stdout.contains(&hosts[1].label()),
        "{out}"
    );

    // `stop` and `start` on every host.
    let out = cove(&app, &env, &["stop", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        assert!(
            get(h.gateway, "/", HOST).is_err(),
            "stopped on {}",
            h.label()
        );
    }
    let out = cove(&app, &env, &["start", "--env", "prod"], None);
    assert_eq!(out.code, Some(0), "{out}");
    for h in &hosts {
        eventually(60, "v2 after start", || {
            get(h.gateway, "/", HOST) == Ok("v2".into())
        });
    }

    // Version 3 cannot start on the second host: the deploy stops there,
    // names it, and the first goes back to version 2.
    fs_err::write(app.join(".env.prod"), "VERSION=3\n").unwrap();
    let out = cove(&app, &env, &["deploy", "--env", "prod"], None);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: the deploy stopped at {}: its deploy failed",
            hosts[1].label()
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "cove: rolled back {}, {} to what they ran before",
            hosts[0].label(),
            hosts[1].label()
        )),
        "{out}"
    );
    for h in &hosts {
        eventually(60, "v2 again on each host", || {
            get(h.gateway, "/", HOST) == Ok("v2".into())
        });
    }

    // A host that does not answer: a line that names it, exit code 1,
    // the other host still listed.
    hosts[1].sshd.stop();
    let out = cove(
        &app,
        &env,
        &["ps", "--env", "prod", "--format", "json"],
        None,
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("error: {}: ", hosts[1].label())),
        "{out}"
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect(&out.stdout);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["host"] == hosts[0].label().as_str()),
        "{out}"
    );
    // A deploy then: refused before any host changed, naming the host.
    fs_err::write(app.join(".env.prod"), "VERSION=4\n").unwrap();
    let out = cove(&app, &env, &["deploy", "--env", "prod"], None);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: cannot send the app to {}: ",
            hosts[1].label()
        )) && out
            .stderr
            .contains("error: nothing was deployed: no host changed"),
        "{out}"
    );
    assert_eq!(get(hosts[0].gateway, "/", HOST), Ok("v2".into()));

    // `down` over `--host` with the environment: that host only.
    let out = cove(
        &app,
        &env,
        &["--host", &hosts[0].sshd.url(), "--env", "prod", "down"],
        None,
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        get(hosts[0].gateway, "/", HOST).is_err(),
        "down on the first host"
    );
}

#[test]
fn what_cannot_be_sent_is_refused_with_its_service_before_anything_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    fs_err::create_dir_all(&app).unwrap();
    let outside = tmp.path().join("outside.env");
    fs_err::write(&outside, "A=1\n").unwrap();
    fs_err::write(
        app.join("compose.yaml"),
        format!(
            r#"name: refused
services:
  api:
    build: ./api
  worker:
    x-cove: {{run: ./worker, build: "make worker"}}
  web:
    x-cove: {{run: "sleep 1000"}}
    env_file: [{}]
x-cove:
  environments:
    prod:
      hosts: [ssh://root@127.0.0.1:1]
      rollout: {{hosts_at_once: 2}}
"#,
            outside.display()
        ),
    )
    .unwrap();
    fs_err::create_dir_all(app.join("api")).unwrap();
    fs_err::write(app.join("api/Dockerfile"), "FROM scratch\n").unwrap();
    // `prod` has no file of its own (no compose.prod.yaml, .env.prod nor
    // secrets file): `x-cove.environments` defines it.
    // No ssh would reach anything: it must not be run at all.
    let ran = tmp.path().join("ran");
    let fake_ssh = tmp.path().join("ssh");
    fs_err::write(
        &fake_ssh,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexit 255\n", ran.display()),
    )
    .unwrap();
    fs_err::set_permissions(
        &fake_ssh,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // `cove config` shows the environment; what is not acted on is said.
    let out = cove(&app, &[], &["config"], None);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(
            "  environments:\n    prod:\n      hosts:\n        - ssh://root@127.0.0.1:1\n"
        ),
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "`x-cove.environments.prod.rollout.hosts_at_once: 2` is accepted but not acted on yet: hosts are deployed one at a time"
        ),
        "{out}"
    );
    let out = cove(
        &app,
        &[("COVE_SSH", fake_ssh.to_str().unwrap())],
        &["deploy", "--env", "prod"],
        None,
    );
    assert_eq!(out.code, Some(1), "{out}");
    for (what, hint) in [
        (
            "error: service `api`: `build:` contexts are not sent to hosts yet",
            "hint: push the image to a registry and use `image:` in compose.prod.yaml",
        ),
        (
            "error: service `worker`: `x-cove.build` is not run for hosts yet",
            "hint: build on this machine (or in CI)",
        ),
        (
            "error: service `web`: `env_file`: ",
            "hint: move it into the project directory",
        ),
    ] {
        assert!(
            out.stderr.contains(what) && out.stderr.contains(hint),
            "{what}: {out}"
        );
    }
    assert!(
        out.stderr
            .contains("error: the app cannot be sent to the hosts of `prod`; nothing was sent"),
        "{out}"
    );
    assert!(!ran.exists(), "ssh was run: {out}");
}

#[test]
fn a_host_keeps_no_blob_whose_bytes_do_not_match_and_no_path_outside_the_checkout() {
    let host = tempfile::tempdir().unwrap();
    let receive = |manifest: &serde_json::Value, bytes: &[u8]| -> Out {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
            .args(["system", "receive", "app", "prod"])
            .env("COVE_HOST_DIR", host.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{manifest}").unwrap();
        let _ = stdin.write_all(bytes);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let file = |path: &str, content: &[u8]| {
        serde_json::json!({
            "path": path,
            // SHA-256 of "right", whatever is sent.
            "sha256": "27042f4e6eca7d0b2a7ee4026df2ecfa51d3339e6d122aa099118ecd8563bad9",
            "mode": 0o644,
            "size": content.len(),
        })
    };
    let manifest = |f: serde_json::Value| serde_json::json!({"project": "app", "env": "prod", "compose": ["compose.yaml"], "files": [f]});
    // The bytes are not those of the hash.
    let out = receive(&manifest(file("compose.yaml", b"wrong")), b"wrong");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("do not match their hash") && out.stderr.contains("hint: "),
        "{out}"
    );
    let blobs: Vec<_> = fs_err::read_dir(host.path().join("blobs"))
        .unwrap()
        .collect();
    assert!(blobs.is_empty(), "nothing kept: {blobs:?}");
    assert!(
        !host.path().join("checkouts/app/prod").exists() || {
            fs_err::read_dir(host.path().join("checkouts/app/prod"))
                .unwrap()
                .count()
                == 0
        }
    );
    // A path out of the checkout: refused before anything is read.
    let out = receive(&manifest(file("../../escape", b"right")), b"right");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("`../../escape` is not a path inside the project"),
        "{out}"
    );
    assert!(!host.path().join("escape").exists());
}
