//! Borrowed dependencies on the same host (`cove up --borrow
//! ENV[:SERVICE,...]`, `x-cove.borrow`), with real processes: an app of
//! two HTTP services, `api` calling `store` (the chain fixture's links,
//! each answering `NAME@VERSION`), whose `staging` environment
//! (`compose.staging.yaml`) answers as `staging`. The default environment
//! borrowing `store` runs only `api`, whose calls reach staging's `store`;
//! `ps` shows `store` as borrowed; `down` leaves staging running. Another
//! checkout's directory lends the same way. What cannot be borrowed is
//! refused, naming the flag or the field. Loopback only; every wait
//! bounded.

use std::path::Path;
use std::process::Command;

use crate::daemon::{App, Out, eventually_ok, run_bounded};

const CHAIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chain");

const COMPOSE: &str = r#"name: lend
x-cove:
  gateway: {listen: "127.0.0.1:0"}
x-link: &link
  x-cove:
    run: python3 chain.py
    health: {http: /health}
  expose: ["8000"]
services:
  api:
    <<: *link
    environment:
      NEXT: http://store:8000/
    depends_on:
      store: {condition: service_healthy}
  store:
    <<: *link
"#;

/// The `staging` environment: both services answer as `staging`.
const STAGING: &str = r#"services:
  api:
    environment:
      VERSION: staging
  store:
    environment:
      VERSION: staging
"#;

/// The app with its `staging` environment's file; `staging` is brought
/// down when it is dropped (the app's own `down` is `App`'s).
struct Lender {
    app: App,
}

impl Lender {
    fn new(compose: &str) -> Lender {
        let app = App::new(compose);
        fs_err::write(app.dir().join("compose.staging.yaml"), STAGING).unwrap();
        fs_err::copy(
            Path::new(CHAIN).join("chain.py"),
            app.dir().join("chain.py"),
        )
        .unwrap();
        Lender { app }
    }

    fn dir(&self) -> &Path {
        self.app.dir()
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        let _ = cove(self.dir(), &["--env", "staging", "down"]);
    }
}

fn cove(dir: &Path, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("COVE_ENV"),
        240,
    )
}

fn cove_ok(dir: &Path, args: &[&str]) -> Out {
    let out = cove(dir, args);
    assert_eq!(out.code, Some(0), "`cove {}`: {out}", args.join(" "));
    out
}

/// `cove [--env ENV] ps --format json`.
fn ps(dir: &Path, env: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = Vec::new();
    if let Some(e) = env {
        args.extend(["--env", e]);
    }
    args.extend(["ps", "--format", "json"]);
    let out = cove_ok(dir, &args);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn rows_of<'a>(rows: &'a [serde_json::Value], service: &str) -> Vec<&'a serde_json::Value> {
    rows.iter().filter(|r| r["service"] == service).collect()
}

/// The address `ADDR:PORT` of the one running replica of `service`.
fn address(rows: &[serde_json::Value], service: &str) -> String {
    let running: Vec<_> = rows_of(rows, service)
        .into_iter()
        .filter(|r| r["state"] == "running")
        .collect();
    assert_eq!(running.len(), 1, "one `{service}` running: {rows:#?}");
    running[0]["address"].as_str().unwrap().to_string()
}

/// `GET /` at `addr`: the body of a 200, else what went wrong.
fn get(addr: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    crate::load::get(addr, "/", "x")
}

#[test]
fn a_borrowed_service_is_reached_at_the_lenders_and_not_run_here() {
    let lender = Lender::new(COMPOSE);
    let dir = lender.dir();
    cove_ok(dir, &["--env", "staging", "up", "-d"]);
    let staging = ps(dir, Some("staging"));
    let store_there = address(&staging, "store");

    let out = cove_ok(dir, &["up", "-d", "--borrow", "staging:store"]);
    let said = "`store` is borrowed from staging";
    assert_eq!(
        out.stderr.matches(said).count(),
        1,
        "says once that writes go to staging's data: {out}"
    );
    assert!(out.stderr.contains("writes go to its data"), "{out}");

    // `store` is one row, borrowed, at staging's address; only `api` runs.
    let here = ps(dir, None);
    let store = rows_of(&here, "store");
    assert_eq!(store.len(), 1, "{here:#?}");
    assert_eq!(store[0]["state"], "borrowed", "{here:#?}");
    assert_eq!(store[0]["detail"], "borrowed from staging", "{here:#?}");
    // At staging's address of it (its service address), which answers.
    let lent = store[0]["address"].as_str().unwrap().to_string();
    assert_eq!(
        eventually_ok(30, "the lent address answers", || get(&lent)),
        "store@staging"
    );
    let api = address(&here, "api");
    assert_ne!(api, address(&staging, "api"));
    let table = cove_ok(dir, &["ps"]).stdout;
    let line = table
        .lines()
        .find(|l| l.starts_with("store"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("borrowed") && line.contains("borrowed from staging"),
        "{table}"
    );
    // No process of `store` runs for this environment.
    let own = fs_err::canonicalize(dir.join(".cove")).unwrap();
    let marker = format!("COVE_PROJECT={}", own.display());
    let local_store: Vec<u32> = crate::daemon::processes_whose_env(|v| v == marker.as_bytes())
        .into_iter()
        .filter(|pid| {
            fs_err::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == b"COVE_SERVICE=store"))
        })
        .collect();
    assert!(local_store.is_empty(), "store runs here: {local_store:?}");

    // The local `api` calls staging's `store`.
    let answer = eventually_ok(60, "api answers", || get(&api));
    assert_eq!(answer, "api@base > store@staging");

    // Down here leaves staging as it ran.
    cove_ok(dir, &["down"]);
    let after = ps(dir, Some("staging"));
    assert_eq!(address(&after, "store"), store_there);
    assert_eq!(
        eventually_ok(30, "staging's store answers", || get(&store_there)),
        "store@staging"
    );
    assert_eq!(
        eventually_ok(30, "staging's api answers", || get(&address(&after, "api"))),
        "api@staging > store@staging"
    );
}

#[test]
fn x_cove_borrow_is_read_from_the_file_and_the_flag_wins() {
    let compose = COMPOSE.replacen(
        "x-cove:\n",
        "x-cove:\n  borrow: {env: staging, services: [store]}\n",
        1,
    );
    let lender = Lender::new(&compose);
    let dir = lender.dir();
    // The environment the file names does not borrow from itself.
    cove_ok(dir, &["--env", "staging", "up", "-d"]);
    let staging = ps(dir, Some("staging"));
    address(&staging, "store");

    let out = cove_ok(dir, &["up", "-d"]);
    assert!(
        out.stderr.contains("`store` is borrowed from staging"),
        "{out}"
    );
    let here = ps(dir, None);
    assert_eq!(rows_of(&here, "store")[0]["state"], "borrowed", "{here:#?}");
    let api = address(&here, "api");
    assert_eq!(
        eventually_ok(60, "api answers", || get(&api)),
        "api@base > store@staging"
    );

    // The flag wins: `api` borrowed, `store` run here; the `api` that ran
    // here stops.
    let out = cove_ok(dir, &["up", "-d", "--borrow", "staging:api"]);
    assert!(!out.stderr.contains("`store` is borrowed"), "{out}");
    let here = ps(dir, None);
    let api = rows_of(&here, "api");
    assert_eq!(api.len(), 1, "{here:#?}");
    assert_eq!(api[0]["state"], "borrowed", "{here:#?}");
    assert_eq!(
        eventually_ok(60, "local store answers", || get(&address(&here, "store"))),
        "store@base"
    );
}

#[test]
fn what_cannot_be_borrowed_is_refused_naming_the_flag_or_field() {
    let lender = Lender::new(COMPOSE);
    let dir = lender.dir();
    let refused = |args: &[&str], words: &[&str]| {
        let out = cove(dir, args);
        assert_eq!(out.code, Some(1), "`cove {}`: {out}", args.join(" "));
        for w in words {
            assert!(out.stderr.contains(w), "`{w}` in: {out}");
        }
        assert!(out.stderr.contains("hint"), "{out}");
        // Nothing started here.
        assert!(
            crate::daemon::daemon_pid_in(dir).is_none(),
            "a daemon started: {out}"
        );
    };
    refused(
        &["up", "-d", "--borrow", "staging:store"],
        &[
            "--borrow staging:store",
            "the environment `staging` is not running",
        ],
    );
    // Staging runs `store` only.
    cove_ok(dir, &["--env", "staging", "up", "-d", "store"]);
    refused(
        &["up", "-d", "--borrow", "staging:api"],
        &["--borrow staging:api", "`staging` does not run `api`"],
    );
    refused(
        &["up", "-d", "--borrow", "staging:store,nosuch"],
        &["the app has no service `nosuch`", "api, store"],
    );
    refused(
        &["up", "-d", "store", "--borrow", "staging:store"],
        &["`store` is borrowed and also asked to start here"],
    );
    refused(
        &["--env", "staging", "up", "-d", "--borrow", "staging:store"],
        &["`staging` is this environment"],
    );
    // From the file: where it is written.
    let compose = COMPOSE.replacen(
        "x-cove:\n",
        "x-cove:\n  borrow: {env: staging, services: [nosuch]}\n",
        1,
    );
    fs_err::write(dir.join("compose.yaml"), compose).unwrap();
    refused(
        &["up", "-d"],
        &[
            "`x-cove.borrow.services`: the app has no service `nosuch`",
            "compose.yaml:3:",
        ],
    );
    // Staging's `store` ran on, untouched.
    let staging = ps(dir, Some("staging"));
    address(&staging, "store");
}

#[test]
fn another_checkout_lends_its_service() {
    let lender = App::new(&COMPOSE.replace(
        "  store:\n    <<: *link\n",
        "  store:\n    <<: *link\n    environment:\n      VERSION: checkout\n",
    ));
    fs_err::copy(
        Path::new(CHAIN).join("chain.py"),
        lender.dir().join("chain.py"),
    )
    .unwrap();
    cove_ok(lender.dir(), &["up", "-d", "store"]);
    let borrower = Lender::new(COMPOSE);
    let dir = borrower.dir();
    let other = lender.dir().display().to_string();
    let out = cove_ok(dir, &["up", "-d", "--borrow", &format!("{other}:store")]);
    assert!(
        out.stderr
            .contains(&format!("`store` is borrowed from {other}")),
        "{out}"
    );
    let here = ps(dir, None);
    assert_eq!(
        rows_of(&here, "store")[0]["detail"],
        format!("borrowed from {other}").as_str()
    );
    let api = address(&here, "api");
    assert_eq!(
        eventually_ok(60, "api answers", || get(&api)),
        "api@base > store@checkout"
    );
    cove_ok(dir, &["down"]);
    address(&ps(lender.dir(), None), "store");
}
