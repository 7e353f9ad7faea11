//! `cove up` end to end: real processes, real health checks, real signals.
//! Every wait is bounded; every test stops what it started, by PID.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `cove up` and the lines it printed (stdout and stderr merged).
pub struct Up {
    child: Child,
    dir: std::path::PathBuf,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// `wait_for` looks only after the last line it matched.
    cursor: usize,
}

impl Up {
    pub fn start(dir: &Path, args: &[&str]) -> Up {
        Up::start_with_env(dir, args, &[])
    }

    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .arg("up")
            .args(args)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Up {
            child,
            dir: dir.to_path_buf(),
            lines: rx,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// Waits (at most `secs`) for a line containing `text`.
    pub fn wait_for(&mut self, text: &str, secs: u64) -> &mut Self {
        let deadline = Instant::now() + Duration::from_secs(secs);
        if let Some(i) = self.seen[self.cursor..]
            .iter()
            .position(|l| l.contains(text))
        {
            self.cursor += i + 1;
            return self;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.seen.push(line);
                    if hit {
                        self.cursor = self.seen.len();
                        return self;
                    }
                }
                Err(_) => break,
            }
        }
        self.stop();
        panic!(
            "no line with `{text}` within {secs}s; output:\n{}",
            self.seen.join("\n")
        );
    }

    /// Waits (at most `secs`) until every one of `texts` has been printed,
    /// in any order.
    pub fn wait_for_all(&mut self, texts: &[&str], secs: u64) -> &mut Self {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if texts
                .iter()
                .all(|t| self.seen.iter().any(|l| l.contains(t)))
            {
                return self;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        self.stop();
        panic!(
            "not all of {texts:?} within {secs}s; output:\n{}",
            self.seen.join("\n")
        );
    }

    fn position(&self, text: &str) -> usize {
        self.seen
            .iter()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no `{text}` in:\n{}", self.seen.join("\n")))
    }

    /// Ctrl-C, then waits (bounded) for cove to exit; returns its exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.wait_exit(20)
    }

    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status.code();
            }
            // Keep what it prints meanwhile, for the message below.
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
        self.stop();
        panic!(
            "cove did not exit within {secs}s; output:\n{}",
            self.seen.join("\n")
        );
    }

    /// Ctrl-C and a bounded wait for cove to stop its services; SIGKILL
    /// only if it does not exit (which would orphan them).
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever happened above, leave no daemon or replica behind.
        down(&self.dir);
    }
}

/// `cove down` in `dir` (bounded by cove's own timeouts).
pub fn down(dir: &Path) {
    let _ = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(dir)
        .arg("down")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PIDs the services wrote to `pids/` (each service writes `$$`).
fn pids(dir: &Path) -> Vec<u32> {
    let Ok(entries) = fs_err::read_dir(dir.join("pids")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| fs_err::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs_err::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start().chars().next())
        .unwrap_or_default();
    !matches!(state, Some('Z') | Some('X'))
}

fn app(dir: &Path, yaml: &str) {
    fs_err::create_dir_all(dir.join("pids")).unwrap();
    fs_err::write(dir.join("compose.yaml"), yaml).unwrap();
}

const ORDERED: &str = r#"
services:
  db:
    x-cove:
      run: ["sh", "-c", "echo $$$$ > pids/db; exec python3 -m http.server --bind $$HOST $$PORT"]
    ports: ["5432"]
    # A database: replaced stop-first, reached at its replica's address.
    deploy: {update_config: {order: stop-first}}
    healthcheck:
      test: ["CMD", "python3", "-c", "import os,socket; socket.create_connection((os.environ['HOST'], int(os.environ['PORT'])), 1)"]
      interval: 1s
  migrate:
    x-cove:
      run: ["sh", "-c", "echo migrating $$DB_URL"]
    environment:
      DB_URL: postgres://db:5432/app
    depends_on:
      db: {condition: service_healthy}
  api:
    x-cove:
      run: ["sh", "-c", "echo $$$$ > pids/api-$$COVE_REPLICA; sleep 60 & wait"]
    depends_on:
      migrate: {condition: service_completed_successfully}
    deploy: {replicas: 2}
  other:
    x-cove:
      run: ["sh", "-c", "echo other ran; sleep 60"]
"#;

#[test]
fn up_starts_the_closure_in_order_and_ctrl_c_stops_everything() {
    let tmp = tempfile::tempdir().unwrap();
    app(tmp.path(), ORDERED);
    let mut up = Up::start(tmp.path(), &["api"]);
    // Output (via the log files) and states (via events) come in no fixed order.
    up.wait_for_all(&["api-1 running", "api-2 running", "| migrating "], 30);
    // Order: db healthy → migrate completes (with db's address) → api starts.
    let healthy = up.position("db-1 healthy");
    let migrated = up.position("migrate-1 completed");
    assert!(healthy < up.position("migrate-1 starting"));
    assert!(migrated < up.position("api-1 starting"));
    // `db:5432` in migrate's environment is db's own address.
    let db_address = up
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("cove: db-1 listens on "))
        .unwrap()
        .to_string();
    assert!(
        db_address.starts_with("127.") && db_address.ends_with(":5432"),
        "{db_address}"
    );
    let migrating = format!("migrating postgres://{db_address}/app");
    assert!(
        up.seen.iter().any(|l| l.contains(&migrating)),
        "{:#?}",
        up.seen
    );
    assert!(
        !up.seen.iter().any(|l| l.contains("other")),
        "`other` is not in api's closure"
    );
    // Give the replicas a moment to write their pid files.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids(tmp.path()).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = pids(tmp.path());
    assert_eq!(started.len(), 3, "db, api-1, api-2");
    assert!(started.iter().all(|p| alive(*p)));
    assert_eq!(up.interrupt(), Some(0));
    // Dependents stop before their dependencies.
    assert!(up.position("api-1 stopped") < up.position("db-1 stopped"));
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<u32> = started.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        left.is_empty(),
        "still running after cove up stopped: {left:?}"
    );
}

#[test]
fn a_crashing_service_is_restarted_with_backoff_until_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    app(
        tmp.path(),
        "services:\n  flaky:\n    x-cove:\n      run: [sh, -c, 'echo attempt; exit 3']\n    restart: on-failure:2\n",
    );
    let mut up = Up::start(tmp.path(), &[]);
    up.wait_for("flaky-1 failed: exited with code 3", 30);
    assert_eq!(
        up.wait_exit(10),
        Some(1),
        "a failed service makes `cove up` fail"
    );
    let restarts: Vec<&String> = up
        .seen
        .iter()
        .filter(|l| l.contains("restarting in"))
        .collect();
    assert_eq!(restarts.len(), 2, "{:#?}", up.seen);
    assert!(
        restarts[0].contains("100ms") && restarts[1].contains("200ms"),
        "{restarts:?}"
    );
    assert_eq!(
        up.seen.iter().filter(|l| l.contains("| attempt")).count(),
        3
    );
}

#[test]
fn an_unhealthy_replica_is_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    // Healthy while `ok` exists; the first run removes it after a while.
    app(
        tmp.path(),
        r#"
services:
  dep:
    x-cove:
      run: [sh, -c, 'if [ -e first ]; then touch ok; else touch first ok; (sleep 1.5; rm ok) & fi; sleep 60']
    healthcheck:
      test: ["CMD", "test", "-e", "ok"]
      interval: 200ms
      retries: 1
  app:
    x-cove:
      run: [sh, -c, 'echo app started; sleep 60']
    depends_on:
      dep: {condition: service_healthy}
"#,
    );
    let mut up = Up::start(tmp.path(), &[]);
    up.wait_for("dep-1 healthy", 20)
        .wait_for("app-1 running", 10);
    up.wait_for("dep-1 unhealthy: restarting it", 20);
    up.wait_for("dep-1 exited (killed by a signal); restarting in 100ms", 5);
    up.wait_for("dep-1 running", 10)
        .wait_for("dep-1 healthy", 20);
    assert_eq!(up.interrupt(), Some(0));
}

#[test]
fn a_failed_dependency_fails_its_dependents_and_plan_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    app(
        tmp.path(),
        "services:\n  init:\n    x-cove: {run: [sh, -c, 'exit 1']}\n  app:\n    x-cove: {run: [sleep, '60']}\n    depends_on:\n      init: {condition: service_completed_successfully}\n",
    );
    let mut up = Up::start(tmp.path(), &[]);
    up.wait_for("app-1 failed: dependency `init` failed", 20);
    assert_eq!(up.wait_exit(10), Some(1));

    // An image that is not here and cannot be pulled, whatever registries
    // the machine reaches: its registry is a port on loopback that closes
    // every connection at once. Named, with how to get it.
    let registry = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let image = format!("{}/cove-tests/absent:1", registry.local_addr().unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let closer = std::thread::spawn(move || {
        registry.set_nonblocking(true).unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < end && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match registry.accept() {
                Ok((c, _)) => drop(c),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    });
    app(
        tmp.path(),
        &format!("services:\n  web:\n    image: {image}\n"),
    );
    let mut up = Up::start(tmp.path(), &[]);
    assert_eq!(up.wait_exit(30), Some(1));
    let text = up.seen.join("\n");
    assert!(
        text.contains(&format!(
            "image `{image}` is not on this machine and cannot be pulled"
        )),
        "{text}"
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    closer.join().unwrap();
    assert!(text.contains("docker load"), "{text}");
}
