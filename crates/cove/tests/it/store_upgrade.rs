//! A store written by an earlier release opens in this one: the daemon
//! migrates it (`Store::migrate`) and brings its app back as it was.
//!
//! `tests/fixtures/store-v1/state.redb.gz` was written by cove at commit
//! e5852e3 (store layout 1, before the layout was recorded): the app of
//! `compose.yaml` beside it, at /tmp/cove-store-fixture, `up -d`, then
//! `cove scale web=2`, then its daemon SIGKILLed. Keys in a store name the
//! project's state directory, so the test puts the app back at that path.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon::{eventually, run_bounded};

const AT: &str = "/tmp/cove-store-fixture";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

/// The app at [`AT`], brought down and removed when the test ends.
struct Placed;

impl Drop for Placed {
    fn drop(&mut self) {
        let _ = cove(&["down"]);
        let _ = fs_err::remove_dir_all(AT);
    }
}

fn cove(args: &[&str]) -> crate::daemon::Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(AT)
            .args(args),
        120,
    )
}

#[test]
fn a_store_of_the_earlier_release_brings_its_app_back() {
    // A leftover of an earlier run of this test.
    if Path::new(AT).exists() {
        let _ = cove(&["down"]);
        fs_err::remove_dir_all(AT).unwrap();
    }
    let _placed = Placed;
    let state = Path::new(AT).join(".cove");
    cove_runtime::private::make_dir(&state).unwrap();
    fs_err::copy(
        fixture().join("compose.yaml"),
        Path::new(AT).join("compose.yaml"),
    )
    .unwrap();
    let gz = fs_err::File::open(fixture().join("state.redb.gz")).unwrap();
    let out = Command::new("gzip")
        .arg("-dc")
        .stdin(gz.into_parts().0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut db = cove_runtime::private::new_file(&state.join("state.redb")).unwrap();
    std::io::Write::write_all(&mut db, &out.stdout).unwrap();
    drop(db);

    // No daemon yet: nothing runs, and ps says so.
    let ps = cove(&["ps"]);
    assert_eq!(ps.code, Some(0), "{ps}");

    // `up -d` starts the daemon on that store: what it held comes back —
    // `cove scale web=2` holds until the next deploy.
    let up = cove(&["up", "-d"]);
    assert_eq!(up.code, Some(0), "{up}");
    let mut rows: Vec<serde_json::Value> = Vec::new();
    eventually(60, "two web replicas and a worker running", || {
        let ps = cove(&["ps", "--format", "json"]);
        rows = serde_json::from_str(&ps.stdout).unwrap_or_default();
        let running = |s: &str| {
            rows.iter()
                .filter(|r| r["service"] == s && r["state"] == "running")
                .count()
        };
        running("web") == 2 && running("worker") == 1
    });
    assert!(rows.iter().all(|r| r["revision"] == 1), "{rows:?}");
    let history = cove(&["history", "web", "--format", "json"]);
    let h: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(h["current"], 1, "{h}");
    let log = fs_err::read_to_string(state.join("daemon.log")).unwrap();
    assert!(log.contains("starting again in"), "{log}");

    let down = cove(&["down"]);
    assert_eq!(down.code, Some(0), "{down}");
    let pids: Vec<u64> = rows.iter().filter_map(|r| r["pid"].as_u64()).collect();
    eventually(30, "the replicas gone after down", || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
    });
}
