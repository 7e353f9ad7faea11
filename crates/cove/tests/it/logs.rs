//! `cove logs`: what `cove up` printed, kept on disk, merged in time order.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
