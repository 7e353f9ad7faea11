//! The daemon end to end: `up -d`, `ps`, `down`, `stop/start/restart`,
//! `run`, and recovery after the daemon is SIGKILLed. Real processes; every
//! wait is bounded; every test ends with `cove down`, even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::up::{alive, down};

/// An app in a temporary directory; dropped, it is brought down.
pub struct App {
    tmp: tempfile::TempDir,
    /// Environment of every `cove` it runs.
    env: Vec<(String, String)>,
}

impl App {
    pub fn new(yaml: &str) -> App {
        App::with_env(yaml, &[])
    }

    pub fn with_env(yaml: &str, env: &[(&str, &Path)]) -> App {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::write(tmp.path().join("compose.yaml"), yaml).unwrap();
        App {
            tmp,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.display().to_string()))
                .collect(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `cove ARGS`: exit code and stdout then stderr, as one text.
    pub fn merged(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cove(args);
        (out.code, out.stdout + &out.stderr)
    }

    /// Runs `cove ARGS` to completion (killed after 120 s).
    fn cove(&self, args: &[&str]) -> Out {
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .current_dir(self.dir())
                .args(args)
                .env("NO_COLOR", "1")
                .envs(self.env.iter().map(|(k, v)| (k, v))),
            120,
        )
    }

    fn state_dir(&self) -> PathBuf {
        fs_err::canonicalize(self.dir().join(".cove")).unwrap()
    }

    /// PIDs of the live processes started for this app (by their marker).
    pub fn processes(&self) -> Vec<u32> {
        let marker = format!("COVE_PROJECT={}", self.state_dir().display());
        let mut pids = processes_whose_env(|v| v == marker.as_bytes());
        pids.sort();
        pids
    }

    /// [`App::processes`] but its health checks (those of the tests'
    /// `create_connection` probes, with whatever they start: a `python3`
    /// that is a pyenv shim runs a few): they come and go every interval,
    /// in process groups of their own.
    pub fn replica_processes(&self) -> Vec<u32> {
        let probe = |pid: u32| {
            fs_err::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("create_connection"))
        };
        let group = |pid: u32| -> Option<u32> {
            let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After `(comm)`: state, ppid, pgrp.
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()
        };
        self.processes()
            .into_iter()
            .filter(|p| !probe(*p) && !group(*p).is_some_and(probe))
            .collect()
    }

    /// [`Self::replica_processes`] seen in two looks 300 ms apart: a
    /// health check caught between its fork and its exec (which still
    /// looks like the daemon) is left out.
    pub fn steady_replica_processes(&self) -> Vec<u32> {
        let first = self.replica_processes();
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.replica_processes()
            .into_iter()
            .filter(|p| first.contains(p))
            .collect()
    }

    pub fn ps(&self) -> Vec<serde_json::Value> {
        let out = self.cove(&["ps", "--format", "json"]);
        assert_eq!(out.code, Some(0), "{out:?}");
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// The `cove __reaper` of this app's daemon.
    fn reaper_pid(&self) -> Option<u32> {
        let wanted = format!("__reaper\0--state-dir\0{}\0", self.state_dir().display());
        fs_err::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = fs_err::read(e.path().join("cmdline")).ok()?;
            (String::from_utf8_lossy(&cmdline).contains(&wanted) && alive(pid)).then_some(pid)
        })
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        daemon_pid_in(self.dir())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if self.env.is_empty() {
            down(self.dir());
        } else {
            let _ = self.cove(&["down"]);
        }
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Live processes with a variable (`NAME=value`) in their environment for
/// which `wanted` holds (other users' too, read as root).
pub fn processes_whose_env(wanted: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    fs_err::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = fs_err::read(e.path().join("environ")).ok()?;
            env.split(|b| *b == 0).any(&wanted).then_some(pid)
        })
        .filter(|p| alive(*p))
        .collect()
}

/// Runs `cmd` to completion, its output captured; killed after `secs`.
/// The output is read as it comes (by two threads): a command that prints
/// more than a pipe holds (64 KiB) would otherwise wait for the reader
/// until it is killed.
pub fn run_bounded(cmd: &mut Command, secs: u64) -> Out {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            all
        })
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    Out {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `cargo build -p PACKAGE...` in this workspace (one feature resolution
/// for the set, as the examples' `x-cove.build` does it); the executables
/// built, by name.
pub fn cargo_build(packages: &[&str]) -> std::collections::HashMap<String, PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--message-format=json-render-diagnostics",
    ])
    .arg("--manifest-path")
    .arg(&manifest);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "cargo build -p {packages:?} failed");
    let mut found = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) =
            (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    found
}

/// Polls `f` for up to `secs`.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {secs}s: {what}");
}

/// Polls `f` until it gives a value (or `secs` pass: then fails with what
/// it said last).
pub fn eventually_ok<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {secs}s: {what}; last seen: {last}");
}

fn row<'a>(rows: &'a [serde_json::Value], service: &str, replica: u64) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["service"] == service && r["replica"] == replica)
        .unwrap_or_else(|| panic!("no {service}-{replica} in {rows:#?}"))
}

const WEB: &str = r#"
services:
  db:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
    ports: ["5432"]
    # A database: replaced stop-first, reached at its replica's address.
    deploy: {update_config: {order: stop-first}}
    healthcheck:
      test: ["CMD", "python3", "-c", "import os,socket; socket.create_connection((os.environ['HOST'], int(os.environ['PORT'])), 1)"]
      interval: 1s
  api:
    x-cove:
      run: ["sh", "-c", "echo api serving; sleep 300 & wait"]
    environment:
      DB_URL: postgres://db:5432/app
    depends_on:
      db: {condition: service_healthy}
    deploy: {replicas: 2}
"#;

#[test]
fn up_detached_converges_ps_shows_replicas_and_down_leaves_nothing() {
    let app = App::new(WEB);
    let out = app.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("db-1 healthy"), "{}", out.stderr);
    assert!(out.stderr.contains("api-2 running"), "{}", out.stderr);

    let socket = app.dir().join(".cove/daemon.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs_err::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the API socket is private");

    let rows = app.ps();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let db = row(&rows, "db", 1);
    assert_eq!(
        (&db["state"], &db["health"]),
        (&"running".into(), &"healthy".into())
    );
    assert!(db["address"].as_str().unwrap().ends_with(":5432"));
    for r in 1..=2 {
        let api = row(&rows, "api", r);
        assert_eq!(api["state"], "running");
        assert_eq!(api["health"], "", "no health check");
        assert!(api["pid"].as_u64().unwrap() > 0);
    }
    let table = app.cove(&["ps"]).stdout;
    assert!(
        table.starts_with("SERVICE  REPLICA  REVISION  STATE    HEALTH   PID"),
        "{table}"
    );
    assert!(table.contains("healthy"), "{table}");

    // Again: nothing duplicated, nothing restarted.
    // Its health checks come and go; its replicas' processes stay.
    let before = app.steady_replica_processes();
    assert!(before.len() >= 5, "db, 2 × (sh + sleep): {before:?}");
    let again = app.cove(&["up", "-d"]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(
        app.steady_replica_processes(),
        before,
        "a second `up` converges"
    );
    let pids = |rows: &[serde_json::Value]| -> Vec<u64> {
        rows.iter().map(|r| r["pid"].as_u64().unwrap()).collect()
    };
    assert_eq!(pids(&app.ps()), pids(&rows));

    let out = app.cove(&["down"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        app.processes().is_empty(),
        "left running: {:?}",
        app.processes()
    );
    assert_eq!(app.daemon_pid(), None, "the daemon exits with the app");
    assert!(app.ps().is_empty());
}

#[test]
fn up_detached_names_what_failed_with_its_last_lines() {
    let app = App::new(
        r#"
services:
  bad:
    x-cove:
      run: [sh, -c, 'echo booting; echo "config file missing" >&2; exit 3']
"#,
    );
    let out = app.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("error: service `bad` did not start: bad-1 failed: exited with code 3"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("| config file missing"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: `cove logs bad`"),
        "{}",
        out.stderr
    );
    // `ps` says why, in its REASON column.
    let ps = app.cove(&["ps"]);
    let header = ps.stdout.lines().next().unwrap_or_default();
    assert!(header.trim_end().ends_with("REASON"), "{ps:?}");
    let row = ps
        .stdout
        .lines()
        .find(|l| l.starts_with("bad"))
        .unwrap_or_else(|| panic!("{ps:?}"));
    assert!(
        row.contains("failed") && row.trim_end().ends_with("exited with code 3"),
        "{ps:?}"
    );

    let app = App::new(
        r#"
services:
  sick:
    x-cove:
      run: [sleep, "300"]
    healthcheck:
      test: ["CMD-SHELL", "echo port 80 closed; exit 1"]
      interval: 100ms
      start_interval: 100ms
      retries: 2
    restart: always
"#,
    );
    let out = app.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(
            "sick-1 unhealthy: restarting it (health check `echo port 80 closed; exit 1` failed 2 time(s), last: exited with code 1: port 80 closed)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sigkilled_daemon_comes_back_with_its_app_and_leaves_no_orphan() {
    let app = App::new(
        r#"
services:
  db:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
    ports: ["5432"]
    # A database: replaced stop-first, reached at its replica's address.
    deploy: {update_config: {order: stop-first}}
    healthcheck:
      test: ["CMD", "python3", "-c", "import os,socket; socket.create_connection((os.environ['HOST'], int(os.environ['PORT'])), 1)"]
      interval: 1s
  flaky:
    # Crashes once, then stays up.
    x-cove:
      run: [sh, -c, 'if [ -e crashed ]; then exec sleep 300; else touch crashed; exit 1; fi']
    restart: always
    depends_on:
      db: {condition: service_healthy}
"#,
    );
    // `up -d` fails if it sees the crash, succeeds if it saw `flaky` running
    // first (no health check: running is ready); the app comes up either way.
    let out = app.cove(&["up", "-d"]);
    assert!(matches!(out.code, Some(0 | 1)), "{out:?}");
    // Everything from one snapshot: the restart is counted when the crash is
    // seen, before the new process exists.
    let old = settled(&app, 20, "flaky running after its restart", 1);

    // SIGKILL: its reaper stops the replicas at once, with no cove command.
    let daemon = app.daemon_pid().expect("a daemon runs");
    kill9(daemon);
    eventually(10, "the replicas of the killed daemon to stop", || {
        old.iter().all(|p| !alive(*p))
    });
    // The reaper writes its line after the processes are gone.
    let mut log = String::new();
    eventually(10, "the reaper's line in daemon.log", || {
        log = fs_err::read_to_string(app.dir().join(".cove/daemon.log")).unwrap();
        log.contains("the daemon is gone: stopped 2 process(es) it left")
    });
    let ps = app.cove(&["ps"]);
    assert!(ps.stderr.contains("did not stop cleanly"), "{ps:?}");

    // Started again, it brings the app back, restart counts kept.
    let out = app.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let new = settled(&app, 20, "the app back, restart counts kept", 1);
    assert!(new.iter().all(|p| !old.contains(p)), "{old:?} {new:?}");
    assert_ne!(app.daemon_pid(), Some(daemon));

    // Reaper and daemon both killed: the replicas are left running, and
    // the next daemon stops them before it starts the app again.
    kill9(app.reaper_pid().expect("a reaper runs"));
    let daemon = app.daemon_pid().unwrap();
    kill9(daemon);
    eventually(5, "the daemon to die", || !alive(daemon));
    assert!(new.iter().all(|p| alive(*p)), "nothing stopped them yet");
    let out = app.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        new.iter().all(|p| !alive(*p)),
        "orphans of the killed daemon"
    );
    settled(&app, 20, "the app started again", 1);
    // Both replicas among what it stopped (with a health check of db's
    // that was under way when the daemon died, if one was).
    let log = fs_err::read_to_string(app.dir().join(".cove/daemon.log")).unwrap();
    let swept = log
        .lines()
        .find_map(|l| l.split_once("process(es) a previous daemon left running: "))
        .map(|(_, pids)| pids.to_string())
        .unwrap_or_else(|| panic!("no sweep in the log:\n{log}"));
    for p in &new {
        assert!(
            swept.contains(&format!("[{p},"))
                || swept.contains(&format!(" {p},"))
                || swept.contains(&format!(" {p}]"))
                || swept.contains(&format!("[{p}]")),
            "replica {p} not among those stopped: {swept}\n{log}"
        );
    }

    // Both killed again: `down` alone cleans up, and forgets the app.
    let left = app.processes();
    kill9(app.reaper_pid().unwrap());
    let daemon = app.daemon_pid().unwrap();
    kill9(daemon);
    eventually(5, "the daemon to die", || !alive(daemon));
    let out = app.cove(&["down"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // The two replicas (and a health check of db's, if one was under way).
    let stopped: usize = out
        .stderr
        .split_once("cove: stopped ")
        .and_then(|(_, rest)| rest.split_once(" process(es) left by a daemon"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(stopped >= 2, "{}", out.stderr);
    assert!(left.iter().all(|p| !alive(*p)));
    assert!(app.processes().is_empty());
    let out = app.cove(&["up", "-d", "db"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(app.ps().len(), 1, "only db: the old app was forgotten");
}

/// Waits for one `ps` snapshot of the sigkill test's app in which both
/// replicas run, `flaky` has restarted `restarts` times, and the live
/// processes of the app are exactly those two (its health probes, short
/// lived, aside): their pids.
fn settled(app: &App, secs: u64, what: &str, restarts: u64) -> Vec<u32> {
    let probe = |pid: &u32| {
        fs_err::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("create_connection"))
    };
    eventually_ok(secs, what, || {
        let rows = app.ps();
        let mut listed: Vec<u32> = rows
            .iter()
            .filter(|r| r["state"] == "running")
            .filter_map(|r| r["pid"].as_u64())
            .map(|p| p as u32)
            .collect();
        listed.sort();
        let live: Vec<u32> = app.processes().into_iter().filter(|p| !probe(p)).collect();
        let flaky = rows
            .iter()
            .find(|r| r["service"] == "flaky")
            .map(|r| r["restarts"].clone());
        if rows.len() == 2 && listed.len() == 2 && flaky == Some(restarts.into()) && live == listed
        {
            Ok(listed)
        } else {
            Err(format!("ps: {rows:?}; live processes: {live:?}"))
        }
    })
}

/// The PID the daemon of the app in `dir` wrote, if any.
pub fn daemon_pid_in(dir: &Path) -> Option<u32> {
    fs_err::read_to_string(dir.join(".cove/daemon.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// SIGKILL to `pid`, which must have been delivered.
pub fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

#[test]
fn stop_start_restart_and_one_off_runs() {
    let app = App::new(WEB);
    // `run` starts the dependencies, then the command, with the
    // service's environment; its exit code is cove's.
    let out = app.cove(&[
        "run",
        "api",
        "sh",
        "-c",
        "echo \"$DB_URL as $COVE_REPLICA\"; exit 7",
    ]);
    assert_eq!(out.code, Some(7), "{out:?}");
    let db_address = row(&app.ps(), "db", 1)["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out.stdout
            .contains(&format!("postgres://{db_address}/app as run")),
        "{out:?}"
    );
    let rows = app.ps();
    assert_eq!(
        rows.len(),
        1,
        "only the dependency is left running: {rows:#?}"
    );

    assert_eq!(app.cove(&["up", "-d"]).code, Some(0));
    let out = app.cove(&["stop", "api"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows = app.ps();
    assert_eq!(row(&rows, "api", 1)["state"], "stopped");
    assert_eq!(row(&rows, "db", 1)["state"], "running");
    let db_pid = row(&rows, "db", 1)["pid"].clone();

    let out = app.cove(&["start", "api"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(row(&app.ps(), "api", 2)["state"], "running");

    let out = app.cove(&["restart", "db"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows = app.ps();
    assert_eq!(row(&rows, "db", 1)["health"], "healthy");
    assert_ne!(row(&rows, "db", 1)["pid"], db_pid, "a new process");

    let out = app.cove(&["stop", "nope"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no such service `nope`"), "{out:?}");
    assert!(
        out.stderr.contains("hint: the app's services are: db, api"),
        "{out:?}"
    );

    // `--no-deps` starts nothing else; no daemon needed.
    let other = App::new(WEB);
    let out = other.cove(&["run", "--no-deps", "api", "true"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(other.daemon_pid(), None);
    let out = other.cove(&["stop", "api"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cove is not running for this app"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("hint: start the app with `cove up -d`"),
        "{out:?}"
    );
}

#[test]
fn x_cove_http_and_tcp_probes_gate_dependents_and_bad_probes_are_errors() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: ["sh", "-c", "sleep 1; exec python3 -m http.server --bind $$HOST $$PORT"]
      health: {http: /}
    ports: ["8000"]
    healthcheck: {interval: 200ms, start_interval: 200ms, start_period: 10s}
  tcp:
    x-cove:
      run: ["python3", "-m", "http.server", "--bind", "$$HOST", "9000"]
      health: {tcp: 9000}
  client:
    x-cove:
      run: [sleep, "300"]
    depends_on:
      web: {condition: service_healthy}
      tcp: {condition: service_healthy}
"#,
    );
    let out = app.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows = app.ps();
    assert_eq!(row(&rows, "web", 1)["health"], "healthy");
    assert_eq!(row(&rows, "tcp", 1)["health"], "healthy");
    assert_eq!(row(&rows, "client", 1)["state"], "running");

    let bad = App::new(
        "services:\n  x:\n    x-cove:\n      run: [sleep, '1']\n      health: {http: healthz, tcp: 1}\n",
    );
    let out = bad.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("`x-cove.health` needs exactly one of `http` and `tcp`"),
        "{}",
        out.stderr
    );
}

/// A host's daemon, stopped (SIGTERM, by its pidfile) when dropped.
pub struct HostDaemon {
    pub dir: tempfile::TempDir,
}

impl HostDaemon {
    fn pid(&self) -> Option<u32> {
        fs_err::read_to_string(self.dir.path().join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn one_daemon_per_host_runs_several_apps_and_stays_up() {
    let host = HostDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    let env = [
        ("COVE_DAEMON", Path::new("host")),
        ("COVE_HOST_DIR", host.dir.path()),
    ];
    let a = App::with_env(WEB, &env);
    let b = App::with_env(
        "services:\n  worker:\n    x-cove: {run: [sh, -c, 'echo working; sleep 300 & wait']}\n",
        &env,
    );
    for app in [&a, &b] {
        let out = app.cove(&["up", "-d"]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    // One daemon, in the host's directory; each app sees its own replicas.
    let daemon = host.pid().expect("the host's daemon runs");
    assert_eq!(a.daemon_pid(), None);
    assert_eq!(b.daemon_pid(), None);
    let services = |app: &App| -> Vec<String> {
        app.ps()
            .iter()
            .map(|r| format!("{}-{}", r["service"].as_str().unwrap(), r["replica"]))
            .collect()
    };
    assert_eq!(services(&a), ["db-1", "api-1", "api-2"]);
    assert_eq!(services(&b), ["worker-1"]);
    let out = b.cove(&["logs", "worker"]);
    assert!(out.stdout.contains("worker-1 | working"), "{out:?}");

    // One app down: the other runs on, and so does the daemon.
    let b_procs = b.processes();
    assert_eq!(a.cove(&["down"]).code, Some(0));
    // Its replicas' last children may take a moment to be reaped.
    eventually(10, "no process of `a` left after its `down`", || {
        a.processes().is_empty()
    });
    assert!(alive(daemon), "the host's daemon stays up");
    assert_eq!(b.processes(), b_procs);
    assert!(a.ps().is_empty());

    // Killed, its reaper stops every app's replicas; started again, it
    // brings back what should run.
    kill9(daemon);
    eventually(10, "b's replicas to stop", || {
        b_procs.iter().all(|p| !alive(*p))
    });
    let out = b.cove(&["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_ne!(host.pid(), Some(daemon));
    assert_eq!(services(&b), ["worker-1"]);
    assert!(a.ps().is_empty(), "a was down: it stays down");
    assert_eq!(b.cove(&["down"]).code, Some(0));
    assert!(b.processes().is_empty());
    assert!(host.pid().is_some_and(alive), "still up with no app");
}

#[test]
fn profiles_can_be_given_after_up() {
    let app = App::new(
        "services:\n  web:\n    x-cove: {run: [sleep, '300']}\n  debug:\n    x-cove: {run: [sleep, '300']}\n    profiles: [tools]\n",
    );
    assert_eq!(app.cove(&["up", "-d"]).code, Some(0));
    let names = |app: &App| -> Vec<String> {
        app.ps()
            .iter()
            .map(|r| r["service"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&app), ["web"], "the profile is off by default");
    let out = app.cove(&["up", "-d", "--profile", "tools"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(names(&app), ["web", "debug"]);
}
