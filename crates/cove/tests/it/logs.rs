//! `cove logs`: what `cove up` printed, kept on disk, merged in time
//! order; with the app down, read from the files; under `cove up -d`,
//! served by the daemon (`GET /v1/logs`): filters, merge order across
//! replicas, JSON output, bad filters, and a follow that ends with its
//! client.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{App, Out, eventually, run_bounded};
use crate::up::Up;

fn logs(dir: &Path, args: &[&str]) -> (Option<i32>, Vec<String>) {
    let o = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(dir)
        .arg("logs")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    (
        o.status.code(),
        text.lines()
            .map(|l| l.split(" | ").nth(1).unwrap_or_default().to_string())
            .collect(),
    )
}

/// Two services whose lines alternate a1, b1, a2, b2 by cause, not by
/// timing: after each line, a service waits until cove has stored it (the
/// line is in its replica's log file), then touches a file the other
/// service waits for (each wait 10 s at most), however late either process
/// starts or cove reads its output.
const APP: &str = r#"
services:
  a:
    x-cove:
      run: [sh, -c, 'w() { i=0; until [ -e "$$1" ]; do i=$$((i+1)); [ $$i -gt 200 ] && exit 9; sleep 0.05; done; }; kept() { i=0; until grep -q " out $$1$$" .cove/logs/a-1.log 2>/dev/null; do i=$$((i+1)); [ $$i -gt 200 ] && exit 8; sleep 0.05; done; }; echo a1; kept a1; touch a1.done; w b1.done; echo a2; kept a2; touch a2.done']
  b:
    x-cove:
      run: [sh, -c, 'w() { i=0; until [ -e "$$1" ]; do i=$$((i+1)); [ $$i -gt 200 ] && exit 9; sleep 0.05; done; }; kept() { i=0; until grep -q " out $$1$$" .cove/logs/b-1.log 2>/dev/null; do i=$$((i+1)); [ $$i -gt 200 ] && exit 8; sleep 0.05; done; }; w a1.done; echo b1; kept b1; touch b1.done; w a2.done; echo b2']
"#;

#[test]
fn logs_are_kept_merged_filtered_and_followed() {
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(tmp.path().join("compose.yaml"), APP).unwrap();
    let mut up = Up::start(tmp.path(), &[]);
    assert_eq!(
        up.wait_exit(30),
        Some(0),
        "one-shot services that complete end `cove up`"
    );

    assert_eq!(
        logs(tmp.path(), &[]),
        (
            Some(0),
            vec!["a1".into(), "b1".into(), "a2".into(), "b2".into()]
        )
    );
    assert_eq!(logs(tmp.path(), &["b"]).1, ["b1", "b2"]);
    assert_eq!(logs(tmp.path(), &["a-1"]).1, ["a1", "a2"]);
    assert_eq!(logs(tmp.path(), &["-n", "1"]).1, ["a2", "b2"]);
    assert_eq!(logs(tmp.path(), &["--since", "1h"]).1.len(), 4);
    assert_eq!(
        logs(tmp.path(), &["--since", "2999-01-01T00:00:00.000Z"])
            .1
            .len(),
        0
    );
    assert_eq!(logs(tmp.path(), &["--since", "yesterday"]).0, Some(2));
    assert_eq!(logs(tmp.path(), &["nope"]).0, Some(2));

    // Follow: lines of the next run appear as they are written.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(tmp.path())
        .args(["logs", "-f", "a"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut up = Up::start(tmp.path(), &["a"]);
    assert_eq!(up.wait_exit(30), Some(0));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got
        .iter()
        .filter(|l: &&String| l.ends_with("| a1") || l.ends_with("| a2"))
        .count()
        < 4
        && Instant::now() < deadline
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let texts: Vec<&str> = got
        .iter()
        .map(|l| l.rsplit(" | ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        texts,
        ["a1", "a2", "a1", "a2"],
        "first the stored lines, then the new run's"
    );
}

/// Two replicas of one service under `cove up -d`, printing JSON and plain
/// lines, stdout and stderr, in an order fixed by cause (each line is in
/// its replica's log file before the other replica prints the next), then
/// `m6 from N` each time the test touches `say.N` (5 minutes at most).
const SAYERS: &str = r#"
services:
  api:
    deploy: {replicas: 2}
    x-cove:
      run:
        - sh
        - -c
        - |
          r=$$COVE_REPLICA
          w() { i=0; until [ -e "$$1" ]; do i=$$((i+1)); [ $$i -gt 400 ] && exit 9; sleep 0.05; done; }
          kept() { i=0; until grep -q "$$1" .cove/logs/api-$$r.log 2>/dev/null; do i=$$((i+1)); [ $$i -gt 400 ] && exit 8; sleep 0.05; done; }
          if [ "$$r" = 1 ]; then
            echo '{"level":"info","msg":"m1","user":"ann"}'; kept m1; touch m1.done
            w m2.done; echo 'WARN m3 disk low'; kept m3; touch m3.done
            w m4.done; echo 'plain m5'; kept m5; touch m5.done
          else
            w m1.done; echo '{"level":"error","msg":"m2","user":"bob"}'; kept m2; touch m2.done
            w m3.done; echo 'ERROR: m4 failed' >&2; kept m4; touch m4.done
          fi
          i=0
          while [ $$i -lt 3000 ]; do
            if [ -e say.$$r ]; then rm say.$$r; echo "m6 from $$r"; fi
            i=$$((i+1)); sleep 0.1
          done
"#;

/// `cove ARGS` in the app (NO_COLOR), bounded.
fn cove(app: &App, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(app.dir())
            .args(args)
            .env("NO_COLOR", "1"),
        120,
    )
}

/// The texts `cove logs ARGS --no-log-prefix` prints (which must succeed).
fn texts(app: &App, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs", "--no-log-prefix"];
    all.extend(args);
    let out = cove(app, &all);
    assert_eq!(out.code, Some(0), "cove {all:?}:\n{out}");
    out.stdout.lines().map(str::to_string).collect()
}

/// How many `GET /v1/logs` long polls the app's daemon is serving (its
/// status, asked with curl over its socket).
fn follows(app: &App) -> Option<u64> {
    let out = run_bounded(
        Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "10",
                "--unix-socket",
                ".cove/daemon.sock",
                "http://cove/v1/status",
            ])
            .current_dir(app.dir()),
        20,
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    v["log_follows"].as_u64()
}

#[test]
fn the_daemon_serves_logs_filtered_merged_and_followed() {
    let app = App::new(SAYERS);
    let out = cove(&app, &["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out}");
    eventually(60, "both replicas said m1..m5", || {
        app.dir().join("m5.done").exists()
    });
    let all = texts(&app, &["api"]);
    let said: Vec<&str> = all
        .iter()
        .filter_map(|l| {
            ["m1", "m2", "m3", "m4", "m5"]
                .into_iter()
                .find(|m| l.contains(m))
        })
        .collect();
    assert_eq!(
        said,
        ["m1", "m2", "m3", "m4", "m5"],
        "merged in time order: {all:#?}"
    );
    // The prefixes: the replicas alternate.
    let out = cove(&app, &["logs", "api"]);
    let sources: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split(" | ").next().unwrap().trim())
        .collect();
    assert_eq!(
        sources,
        ["api-1", "api-2", "api-1", "api-2", "api-1"],
        "{out}"
    );

    // Each filter.
    assert_eq!(
        texts(&app, &["--grep", "m[24]"]),
        [
            r#"{"level":"error","msg":"m2","user":"bob"}"#,
            "ERROR: m4 failed"
        ]
    );
    assert_eq!(
        texts(&app, &["--level", "warn"]),
        [
            r#"{"level":"error","msg":"m2","user":"bob"}"#,
            "WARN m3 disk low",
            "ERROR: m4 failed"
        ]
    );
    assert_eq!(texts(&app, &["--level", "ERROR"]).len(), 2);
    assert_eq!(
        texts(&app, &["--where", "user=bob"]),
        [r#"{"level":"error","msg":"m2","user":"bob"}"#]
    );
    assert_eq!(
        texts(&app, &["--where", "user=ann", "--where", "level=info"]),
        [r#"{"level":"info","msg":"m1","user":"ann"}"#]
    );
    assert_eq!(
        texts(&app, &["--where", "user=ann", "--where", "level=error"]).len(),
        0
    );
    assert_eq!(
        texts(&app, &["--replica", "2"]),
        [
            r#"{"level":"error","msg":"m2","user":"bob"}"#,
            "ERROR: m4 failed"
        ]
    );
    assert_eq!(
        texts(&app, &["-n", "1", "--grep", "m[1-5]"]),
        ["ERROR: m4 failed", "plain m5"],
        "the last passing line of each replica"
    );
    assert_eq!(
        texts(&app, &["--until", "2000-01-01T00:00:00.000Z"]).len(),
        0
    );

    // One JSON object per line.
    let out = cove(&app, &["logs", "--format", "json", "--grep", "m4"]);
    assert_eq!(out.code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect(&out.stdout);
    assert_eq!(v["source"], "api-2", "{v}");
    assert_eq!(v["service"], "api", "{v}");
    assert_eq!(v["replica"], 2, "{v}");
    assert_eq!(v["stream"], "stderr", "{v}");
    assert_eq!(v["text"], "ERROR: m4 failed", "{v}");
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    assert!(v["time_ms"].as_u64().is_some(), "{v}");

    // Bad filters: said with the flag and a hint, nothing printed.
    for (args, said) in [
        (
            &["--grep", "m(2"][..],
            "`--grep m(2` is not a regular expression",
        ),
        (&["--where", "user"], "`--where user`"),
        (&["--level", "loud"], "`--level loud` is not a level"),
    ] {
        let mut all = vec!["logs"];
        all.extend(args);
        let out = cove(&app, &all);
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(out.stderr.contains(&format!("error: {said}")), "{out}");
        assert!(out.stderr.contains("hint: "), "{out}");
        assert_eq!(out.stdout, "", "{out}");
    }

    // Follow: served by the daemon's long poll; new lines come, then
    // Ctrl-C ends the CLI and the daemon's poll with it (long before the
    // poll's own 55 s).
    let mut follow = Following::start(&app, &["logs", "-f", "--grep", "m6", "--no-log-prefix"]);
    eventually(30, "the daemon serves the follow", || {
        follows(&app) == Some(1)
    });
    fs_err::write(app.dir().join("say.2"), "").unwrap();
    assert_eq!(follow.next_line(30).as_deref(), Some("m6 from 2"));
    fs_err::write(app.dir().join("say.1"), "").unwrap();
    assert_eq!(follow.next_line(30).as_deref(), Some("m6 from 1"));
    follow.interrupt();
    eventually(20, "the daemon's poll ended with its client", || {
        follows(&app) == Some(0)
    });
    assert_eq!(cove(&app, &["down"]).code, Some(0));
}

/// `cove logs -f ...` running, its lines on a channel; killed by its pid
/// when dropped.
struct Following {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Following {
    fn start(app: &App, args: &[&str]) -> Following {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(app.dir())
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Following { child, lines }
    }

    fn next_line(&self, secs: u64) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(secs)).ok()
    }

    /// SIGINT (Ctrl-C), then waits for it to end (10 s at most).
    fn interrupt(&mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cove logs -f did not end on SIGINT within 10 s");
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
