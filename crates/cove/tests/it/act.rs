//! Commands that act on running replicas (issue 19), end to end: `exec`,
//! `kill`, `pause`/`unpause`, `cp`, `pull`, `watch`; native processes
//! here, containers against the real engine (`DOCKER_HOST`, started by
//! `scripts/test`) at the end. Every wait is bounded; every app is
//! brought down when its test ends.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{App, eventually};
use crate::deploy::cove_ok;
use crate::up::alive;

/// Listens on `$HOST:$PORT` (answers `$GREETING`), says `got-usr1` on
/// SIGUSR1, dies of SIGHUP (the default action).
const SERVER: &str = r#"
import http.server, os, signal, sys
signal.signal(signal.SIGUSR1, lambda *a: print("got-usr1", flush=True))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("GREETING", "").encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
print("serving", flush=True)
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

const APP: &str = r#"
services:
  web:
    x-cove: {run: python3 server.py}
    expose: ["8000"]
    environment:
      GREETING: hello
    secrets:
      - source: token
        x-cove: {env: TOKEN}
    deploy: {replicas: 2}
    restart: always
  worker:
    x-cove: {run: python3 server.py}
    expose: ["8001"]
    restart: always
secrets:
  token:
    file: ./token.txt
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

fn app() -> App {
    let app = App::new(APP);
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    fs_err::write(app.dir().join("token.txt"), "tok-51ab7e").unwrap();
    fs_err::create_dir_all(app.dir().join("sub")).unwrap();
    app
}

/// `cove ARGS` with `stdin` fed: exit code, stdout, stderr.
fn cove_with_stdin(dir: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("cove {args:?} did not end in 90 s"))
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cove ARGS`: exit code, stdout, stderr (apart).
fn cove(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    cove_with_stdin(dir, args, "")
}

/// The rows of `service` in `cove ps --format json`.
fn rows(app: &App, service: &str) -> Vec<serde_json::Value> {
    app.ps()
        .into_iter()
        .filter(|r| r["service"] == service)
        .collect()
}

fn row(app: &App, service: &str, replica: u64) -> serde_json::Value {
    rows(app, service)
        .into_iter()
        .find(|r| r["replica"] == replica)
        .unwrap_or_else(|| panic!("no {service}-{replica} in {:?}", app.ps()))
}

fn pid_of(app: &App, service: &str, replica: u64) -> u32 {
    row(app, service, replica)["pid"].as_u64().unwrap() as u32
}

/// The variables of process `pid` (`/proc/PID/environ`).
fn environ(pid: u32) -> Vec<(String, String)> {
    let raw = fs_err::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The `KEY=VALUE` lines `env` printed.
fn printed(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The process state letter (`S`, `R`, `T` stopped, ...) of `pid`.
fn proc_state(pid: u32) -> char {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    after.trim_start().chars().next().unwrap()
}

#[test]
fn exec_runs_a_command_in_a_running_replicas_environment() {
    let app = app();
    cove_ok(&app, &["up", "-d"]);
    let dir = app.dir();
    // What replica 2 got, and what a command beside it gets.
    let pid = pid_of(&app, "web", 2);
    let replica = environ(pid);
    let (code, out, err) = cove(dir, &["exec", "--index", "2", "web", "env"]);
    assert_eq!(code, Some(0), "{err}");
    let got = printed(&out);
    // (Not PATH: the replica's `python3` may be a pyenv shim that changes
    // its own.)
    for key in [
        "GREETING",
        "HOST",
        "PORT",
        "COVE_SERVICE",
        "COVE_REPLICA",
        "COVE_SECRETS",
        "TOKEN",
        "HOME",
        "LANG",
    ] {
        assert_eq!(
            value(&got, key),
            value(&replica, key),
            "{key}: the command's {got:?}\nthe replica's {replica:?}"
        );
    }
    assert_eq!(value(&got, "COVE_REPLICA"), Some("2"));
    assert_eq!(value(&got, "TOKEN"), Some("tok-51ab7e"));
    assert!(value(&got, "PATH").is_some(), "{got:?}");
    // Not the daemon's marker: the command is no replica (a new daemon's
    // sweep of leftovers must not take it for one).
    assert_eq!(value(&got, "COVE_PROJECT"), None);
    // Replica 1 (the default) is another, at its own address.
    let (_, out1, _) = cove(dir, &["exec", "web", "env"]);
    assert_eq!(value(&printed(&out1), "COVE_REPLICA"), Some("1"));
    assert_ne!(value(&printed(&out1), "HOST"), value(&got, "HOST"));
    // It reaches its replica at that address.
    let (code, out, err) = cove(
        dir,
        &[
            "exec",
            "web",
            "python3",
            "-c",
            "import os,urllib.request;print(urllib.request.urlopen(f'http://{os.environ[\"HOST\"]}:{os.environ[\"PORT\"]}/').read().decode())",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "hello");
    // Its working directory, its secrets directory, `-e`, `-w`, stdin, and
    // its exit code.
    let (code, out, err) = cove_with_stdin(
        dir,
        &[
            "exec",
            "-e",
            "GREETING=bye",
            "web",
            "sh",
            "-c",
            "pwd; cat \"$COVE_SECRETS/token\"; echo; echo $GREETING; cat; exit 7",
        ],
        "from-stdin\n",
    );
    assert_eq!(code, Some(7), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            fs_err::canonicalize(dir).unwrap().to_str().unwrap(),
            "tok-51ab7e",
            "bye",
            "from-stdin"
        ],
        "{err}"
    );
    let (code, out, _) = cove(dir, &["exec", "-w", "sub", "web", "pwd"]);
    assert_eq!(code, Some(0));
    assert!(out.trim().ends_with("/sub"), "{out}");
    // `-d`: started, not waited for.
    let (code, _, err) = cove(
        dir,
        &[
            "exec",
            "-d",
            "web",
            "sh",
            "-c",
            "sleep 0.3; echo $COVE_REPLICA > detached.txt",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("cove: started `sh`"), "{err}");
    eventually(10, "the detached command's file", || {
        fs_err::read_to_string(dir.join("detached.txt")).is_ok_and(|t| t.trim() == "1")
    });
    // Flags without meaning natively are said so.
    let (code, _, err) = cove(dir, &["exec", "-T", "--privileged", "web", "true"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("--privileged means nothing"), "{err}");
    // `-u`: natively only as root.
    let (code, out, err) = cove(dir, &["exec", "-u", "65534:65534", "web", "id", "-u"]);
    if rustix::process::geteuid().is_root() {
        assert_eq!((code, out.trim()), (Some(0), "65534"), "{err}");
    } else {
        assert_eq!(code, Some(1));
        assert!(err.contains("only when cove runs as root"), "{err}");
    }
    // No running replica: said, with the hint to start it.
    cove_ok(&app, &["stop", "worker"]);
    let (code, _, err) = cove(dir, &["exec", "worker", "true"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("service `worker` has no running replica 1"),
        "{err}"
    );
    assert!(err.contains("cove up -d worker"), "{err}");
    let (code, _, err) = cove(dir, &["exec", "--index", "3", "web", "true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no running replica 3"), "{err}");
    let (code, _, err) = cove(dir, &["exec", "nope", "true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such service `nope`"), "{err}");
    // A command is required.
    let (code, _, _) = cove(dir, &["exec", "web"]);
    assert_eq!(code, Some(2));
    cove_ok(&app, &["down"]);
    let (code, _, err) = cove(dir, &["exec", "web", "true"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no running replica") && err.contains("cove up -d web"),
        "{err}"
    );
}

#[test]
fn kill_stops_with_sigkill_and_delivers_other_signals_under_the_restart_policy() {
    let app = app();
    cove_ok(&app, &["up", "-d"]);
    let dir = app.dir();
    // A signal it handles: delivered, nothing else happens.
    let worker = pid_of(&app, "worker", 1);
    let (code, _, err) = cove(dir, &["kill", "-s", "SIGUSR1", "worker"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("worker-1 sent signal SIGUSR1"), "{err}");
    eventually(10, "worker's got-usr1", || {
        app.merged(&["logs", "worker"]).1.contains("got-usr1")
    });
    assert_eq!(pid_of(&app, "worker", 1), worker);
    // One it dies of (not a stop): restarted, as `restart: always` says.
    let (code, _, err) = cove(dir, &["kill", "-s", "HUP", "worker"]);
    assert_eq!(code, Some(0), "{err}");
    eventually(20, "worker restarted", || {
        let r = row(&app, "worker", 1);
        r["restarts"] == 1 && r["state"] == "running" && r["pid"].as_u64() != Some(worker.into())
    });
    assert!(!alive(worker));
    // SIGKILL (the default): stopped, and `restart: always` does not bring
    // it back (as Docker); the other service runs on.
    let web: Vec<u32> = (1..=2).map(|r| pid_of(&app, "web", r)).collect();
    let worker = pid_of(&app, "worker", 1);
    let (code, _, err) = cove(dir, &["kill", "web"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("web-1 killed") && err.contains("web-2 killed"),
        "{err}"
    );
    for pid in &web {
        eventually(5, "web's replicas gone", || !alive(*pid));
    }
    std::thread::sleep(Duration::from_secs(2));
    for r in rows(&app, "web") {
        assert_eq!(r["state"], "stopped", "{r}");
    }
    assert_eq!(pid_of(&app, "worker", 1), worker);
    // `start` brings it back.
    cove_ok(&app, &["start", "web"]);
    assert!(rows(&app, "web").iter().all(|r| r["state"] == "running"));
    // The service's own stop signal (SIGTERM by default) stops it too.
    let (code, _, err) = cove(dir, &["kill", "-s", "15", "web"]);
    assert_eq!(code, Some(0), "{err}");
    eventually(10, "web stopped", || {
        rows(&app, "web").iter().all(|r| r["state"] == "stopped")
    });
    // Nothing left to kill: said; a bad signal: refused.
    let (code, _, err) = cove(dir, &["kill", "web"]);
    assert_eq!(code, Some(0));
    assert!(err.contains("no running replica to kill"), "{err}");
    let (code, _, err) = cove(dir, &["kill", "-s", "SIGNOPE"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`SIGNOPE` is no signal"), "{err}");
    let (code, _, err) = cove(dir, &["kill", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such service `nope`"), "{err}");
}

#[test]
fn pause_freezes_replicas_out_of_the_gateway_and_their_checks_until_unpause() {
    let app = App::new(
        r#"
services:
  web:
    x-cove: {run: python3 server.py, health: {http: /}}
    expose: ["8000"]
    environment: {GREETING: hello}
    healthcheck: {interval: 300ms, timeout: 300ms, retries: 2, start_period: 5s, start_interval: 100ms}
  worker:
    x-cove: {run: python3 server.py}
    expose: ["8001"]
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#,
    );
    fs_err::write(app.dir().join("server.py"), SERVER).unwrap();
    cove_ok(&app, &["up", "-d"]);
    let dir = app.dir();
    let targets = |app: &App| -> Vec<String> {
        let (code, out) = app.merged(&["routes", "--format", "json"]);
        assert_eq!(code, Some(0), "{out}");
        let routes: serde_json::Value = serde_json::from_str(&out).unwrap();
        routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["service"] == "web")
            .flat_map(|r| r["targets"].as_array().unwrap().clone())
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    eventually(20, "web routed", || !targets(&app).is_empty());
    let pid = pid_of(&app, "web", 1);
    let (code, _, err) = cove(dir, &["pause", "web"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("web-1 paused"), "{err}");
    assert_eq!(row(&app, "web", 1)["state"], "paused");
    assert_eq!(row(&app, "worker", 1)["state"], "running");
    assert_eq!(proc_state(pid), 'T', "stopped by SIGSTOP");
    eventually(10, "web out of the gateway", || targets(&app).is_empty());
    // Its checks would fail many times over: it is not restarted.
    std::thread::sleep(Duration::from_secs(3));
    let r = row(&app, "web", 1);
    assert_eq!(
        (r["state"].as_str(), r["restarts"].as_u64()),
        (Some("paused"), Some(0)),
        "{r}"
    );
    assert_eq!(pid_of(&app, "web", 1), pid);
    // No command beside a paused replica.
    let (code, _, err) = cove(dir, &["exec", "web", "true"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("is paused") && err.contains("cove unpause web"),
        "{err}"
    );
    // Pausing again does nothing; unpause gives back what it was.
    let (_, _, err) = cove(dir, &["pause", "web"]);
    assert!(err.contains("no running replica to pause"), "{err}");
    let (code, _, err) = cove(dir, &["unpause"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("web-1 unpaused") && !err.contains("worker"),
        "{err}"
    );
    assert_ne!(proc_state(pid), 'T');
    eventually(10, "web healthy and routed again", || {
        row(&app, "web", 1)["health"] == "healthy" && !targets(&app).is_empty()
    });
    assert_eq!(pid_of(&app, "web", 1), pid);
    assert_eq!(row(&app, "web", 1)["restarts"], 0);
    // A paused replica still stops (its stop signal reaches it).
    cove_ok(&app, &["pause", "web"]);
    let started = Instant::now();
    cove_ok(&app, &["stop", "web"]);
    assert!(!alive(pid));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(row(&app, "web", 1)["state"], "stopped");
}

#[test]
fn cp_copies_natively_relative_to_the_services_working_directory() {
    let app = app();
    let dir = app.dir();
    fs_err::create_dir_all(dir.join("data/nested")).unwrap();
    fs_err::write(dir.join("data/a.txt"), "alpha").unwrap();
    fs_err::write(dir.join("data/nested/b.txt"), "beta").unwrap();
    cove_ok(&app, &["up", "-d", "worker"]);
    let out = tempfile::tempdir().unwrap();
    // A file out, as the destination; a directory out, into one.
    let (code, _, err) = cove(
        dir,
        &[
            "cp",
            "worker:data/a.txt",
            &out.path().join("copy.txt").display().to_string(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        fs_err::read_to_string(out.path().join("copy.txt")).unwrap(),
        "alpha"
    );
    let (code, _, err) = cove(
        dir,
        &["cp", "worker:data", &out.path().display().to_string()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("copied 4 file(s) from worker-1"), "{err}");
    assert_eq!(
        fs_err::read_to_string(out.path().join("data/nested/b.txt")).unwrap(),
        "beta"
    );
    // In, relative to its working directory.
    fs_err::write(out.path().join("in.txt"), "gamma").unwrap();
    let (code, _, err) = cove(
        dir,
        &[
            "cp",
            &out.path().join("in.txt").display().to_string(),
            "worker:sub",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        fs_err::read_to_string(dir.join("sub/in.txt")).unwrap(),
        "gamma"
    );
    // Mistakes are said.
    let (code, _, err) = cove(dir, &["cp", "a", "b"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("neither path names a service"), "{err}");
    let (code, _, err) = cove(dir, &["cp", "worker:missing", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("missing"), "{err}");
    let (code, _, err) = cove(dir, &["cp", "web:data", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no running replica"), "{err}");
}

#[test]
fn pull_says_native_services_have_nothing_to_pull() {
    let app = app();
    let (code, _, err) = cove(app.dir(), &["pull"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("web runs natively: nothing to pull"), "{err}");
    assert!(
        err.contains("worker runs natively: nothing to pull"),
        "{err}"
    );
    let (code, _, err) = cove(app.dir(), &["pull", "-q", "web"]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let (code, _, err) = cove(app.dir(), &["pull", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nope"), "{err}");
}

/// A running `cove ARGS` whose lines (stdout and stderr) come through a
/// channel; Ctrl-C'd and waited for when dropped.
struct Foreground {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Foreground {
    fn start(dir: &Path, args: &[&str]) -> Foreground {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Foreground {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no `{text}` in:\n{}", self.seen.join("\n"));
            if let Ok(l) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                self.seen.push(l);
            }
        }
    }

    /// Ctrl-C; its exit code.
    fn interrupt(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("cove did not exit after Ctrl-C:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn watch_starts_the_services_and_replaces_them_when_their_files_change() {
    let app = App::new(
        r#"
services:
  web:
    x-cove: {run: python3 server.py}
    expose: ["8000"]
    develop:
      watch:
        - {path: ./conf, action: restart}
  other:
    x-cove: {run: python3 server.py}
    expose: ["8001"]
"#,
    );
    let dir = app.dir();
    fs_err::write(dir.join("server.py"), SERVER).unwrap();
    fs_err::create_dir_all(dir.join("conf")).unwrap();
    fs_err::write(dir.join("conf/a.conf"), "1").unwrap();
    let mut watch = Foreground::start(dir, &["watch", "--prune", "web"]);
    watch.wait_for("watching", 60);
    assert!(
        watch
            .seen
            .iter()
            .any(|l| l.contains("--prune: nothing to prune")),
        "{:?}",
        watch.seen
    );
    eventually(30, "web running", || {
        rows(&app, "web")
            .first()
            .is_some_and(|r| r["state"] == "running")
    });
    // Only what was named (and what it depends on) runs.
    assert!(rows(&app, "other").is_empty(), "{:?}", app.ps());
    let before = pid_of(&app, "web", 1);
    fs_err::write(dir.join("conf/a.conf"), "2").unwrap();
    eventually(60, "web replaced", || {
        rows(&app, "web").iter().any(|r| {
            r["state"] == "running"
                && r["pid"].as_u64() != Some(before.into())
                && r["retiring"] == false
        })
    });
    assert_eq!(watch.interrupt(), Some(0));
    assert!(!alive(before));
}

/// The container's program: `serve` (the default) accepts connections on
/// `$PORT`; `env` prints its environment and exits with `$CODE`; `cat
/// FILE` prints a file; `pwd` its working directory.
const CONTAINED: &str = r#"
fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("env") => {
            for (k, v) in std::env::vars() {
                println!("{k}={v}");
            }
            eprintln!("to-stderr");
            let code = std::env::var("CODE").ok().and_then(|c| c.parse().ok()).unwrap_or(0);
            std::process::exit(code);
        }
        Some("cat") => print!("{}", std::fs::read_to_string(&args[2]).unwrap()),
        Some("pwd") => println!("{}", std::env::current_dir().unwrap().display()),
        _ => {
            let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
            println!("serving on {port}");
            let l = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
            for c in l.incoming() {
                drop(c);
            }
        }
    }
}
"#;

const CONTAINER_APP: &str = r#"
services:
  box:
    build: ./box
    expose: ["8080"]
    environment:
      GREETING: from-the-file
    restart: always
  pulled:
    image: cove-act-nowhere.invalid/none:1
    profiles: [pull]
"#;

fn engine_or_fail() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn exec_kill_pause_cp_and_pull_act_on_containers_through_the_engine() {
    engine_or_fail();
    let app = App::new(CONTAINER_APP);
    let dir = app.dir();
    crate::containers::static_binary(&dir.join("box"), CONTAINED);
    fs_err::write(
        dir.join("box/Dockerfile"),
        "FROM scratch\nCOPY app /app\nWORKDIR /work\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    cove_ok(&app, &["up", "-d", "box"]);
    let name = row(&app, "box", 1)["container"]
        .as_str()
        .unwrap()
        .to_string();

    // exec: the container's environment, `-e`, `-w`, both streams, the
    // exit code.
    let (code, out, err) = cove(dir, &["exec", "-e", "CODE=5", "box", "/app", "env"]);
    assert_eq!(code, Some(5), "{out}{err}");
    let env = printed(&out);
    assert_eq!(value(&env, "GREETING"), Some("from-the-file"), "{out}");
    assert_eq!(value(&env, "COVE_SERVICE"), Some("box"), "{out}");
    assert!(err.contains("to-stderr"), "{err}");
    let (code, out, _) = cove(dir, &["exec", "box", "/app", "pwd"]);
    assert_eq!((code, out.trim()), (Some(0), "/work"));
    let (code, out, _) = cove(dir, &["exec", "-w", "/", "box", "/app", "pwd"]);
    assert_eq!((code, out.trim()), (Some(0), "/"));
    let (code, _, err) = cove(dir, &["exec", "box", "/no-such-program"]);
    assert_ne!(code, Some(0), "{err}");

    // cp: in, then out again, through the archive endpoint.
    let here = tempfile::tempdir().unwrap();
    fs_err::write(here.path().join("note.txt"), "copied-in").unwrap();
    let (code, _, err) = cove(
        dir,
        &[
            "cp",
            &here.path().join("note.txt").display().to_string(),
            "box:/work/",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cove(dir, &["exec", "box", "/app", "cat", "/work/note.txt"]);
    assert_eq!((code, out.as_str()), (Some(0), "copied-in"), "{err}");
    let (code, _, err) = cove(
        dir,
        &[
            "cp",
            &here.path().join("note.txt").display().to_string(),
            "box:/work/renamed.txt",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = cove(dir, &["exec", "box", "/app", "cat", "/work/renamed.txt"]);
    assert_eq!(out, "copied-in");
    let back = here.path().join("back.txt");
    let (code, _, err) = cove(
        dir,
        &["cp", "box:/work/renamed.txt", &back.display().to_string()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(fs_err::read_to_string(&back).unwrap(), "copied-in");
    let (code, _, err) = cove(dir, &["cp", "box:/app", &here.path().display().to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        fs_err::read(here.path().join("app")).unwrap(),
        fs_err::read(dir.join("box/app")).unwrap()
    );
    let (code, _, err) = cove(
        dir,
        &[
            "cp",
            "box:/nothing-here",
            &here.path().display().to_string(),
        ],
    );
    assert_eq!(code, Some(1), "{err}");

    // pause: the engine freezes it; listed paused; unpause thaws it.
    let (code, _, err) = cove(dir, &["pause", "box"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Paused}}", &name]),
        "true"
    );
    assert_eq!(row(&app, "box", 1)["state"], "paused");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(row(&app, "box", 1)["state"], "paused");
    let (code, _, err) = cove(dir, &["unpause", "box"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Paused}}", &name]),
        "false"
    );
    assert_eq!(row(&app, "box", 1)["state"], "running");

    // kill -s USR1: the engine's kill with that signal (the container's
    // PID 1 has no handler, so the kernel drops it, as under Docker); it
    // runs on.
    let since = docker(&["info", "--format", "{{.SystemTime}}"]);
    let (code, _, err) = cove(dir, &["kill", "-s", "USR1", "box"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("box-1 sent signal USR1"), "{err}");
    let until = docker(&["info", "--format", "{{.SystemTime}}"]);
    let signals = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={name}"),
        "--filter",
        "event=kill",
        "--format",
        "{{.Actor.Attributes.signal}}",
    ]);
    assert_eq!(signals, "10", "SIGUSR1 is 10");
    let r = row(&app, "box", 1);
    assert_eq!(
        (r["state"].as_str(), r["restarts"].as_u64()),
        (Some("running"), Some(0))
    );
    // kill: stopped for good, its container gone.
    let (code, _, err) = cove(dir, &["kill", "box"]);
    assert_eq!(code, Some(0), "{err}");
    eventually(20, "box stopped", || {
        row(&app, "box", 1)["state"] == "stopped"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(row(&app, "box", 1)["state"], "stopped");
    eventually(20, "its container removed", || {
        docker(&["ps", "-a", "-q", "--filter", &format!("name=^{name}$")]).is_empty()
    });

    // pull: a built image has nothing to pull; one no registry has fails,
    // unless told to go on.
    let (code, _, err) = cove(dir, &["pull", "box"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("box builds its image"), "{err}");
    let (code, _, err) = cove(dir, &["--profile", "pull", "pull", "pulled"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cove-act-nowhere.invalid/none:1"), "{err}");
    let (code, _, err) = cove(
        dir,
        &[
            "--profile",
            "pull",
            "pull",
            "--ignore-pull-failures",
            "pulled",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning"), "{err}");
}
