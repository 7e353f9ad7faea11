//! The previews' policies and modes, with real processes (`cove preview`,
//! issue 22): `max_awake` (making or waking one beyond it puts the least
//! recently used to sleep), `ttl` (an old preview is removed: processes,
//! listing, directory), the memory budget `previews.memory` (the least
//! recently used sleeps, the most recently used stays), per-service
//! `x-cove.preview: run` / `share`, `fork` of a real PostgreSQL's data
//! (the baseline's data only read), `cove preview logs`, and the errors
//! of `cove preview up`. Loopback only; every wait bounded; every preview
//! brought down even when a test fails.

use std::process::Command;

use crate::daemon::{App, processes_whose_env, run_bounded};
use crate::preview_util::{
    branch_changing_b, chain_with, cove_ok, events, gateway, get, poll, preview_dir,
    preview_processes, previews, state_of,
};

/// Brings the named previews of an app down when dropped (before the
/// app itself: declare it after the app).
struct Down<'a>(&'a App, &'a [&'a str]);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        for name in self.1 {
            let _ = self.0.merged(&["preview", "down", name]);
        }
    }
}

fn answer(version: &str) -> String {
    format!("a@base > b@{version} > c@base")
}

#[test]
fn max_awake_puts_the_least_recently_used_to_sleep_when_one_is_made_or_woken() {
    let app = chain_with("{max_awake: 1, idle_after: 1h}", |c| c);
    branch_changing_b(&app, "p1");
    branch_changing_b(&app, "p2");
    cove_ok(&app, &["up", "-d"]);
    let _down = Down(&app, &["p1", "p2"]);
    let gw = gateway(&app);

    cove_ok(&app, &["preview", "up", "p1", "--ref", "p1"]);
    assert_eq!(state_of(&app, "p1"), "awake");
    assert_eq!(
        get(gw, "a.localhost", "X-Cove-Preview: p1\r\n"),
        Ok(answer("p1"))
    );
    // A second one made: p1, the least recently used, sleeps.
    cove_ok(&app, &["preview", "up", "p2", "--ref", "p2"]);
    poll(60, "p1 to sleep for p2 (max_awake 1)", || {
        state_of(&app, "p1") == "asleep" && preview_processes(&app, "p1").is_empty()
    });
    assert_eq!(state_of(&app, "p2"), "awake");
    assert_eq!(preview_processes(&app, "p2").len(), 1);
    let ev = events(&app);
    assert!(ev.contains("preview p1 asleep (max_awake 1"), "{ev}");

    // A request with p1's key wakes it (held until ready); p2 sleeps.
    assert_eq!(
        get(gw, "a.localhost", "X-Cove-Preview: p1\r\n"),
        Ok(answer("p1"))
    );
    poll(60, "p2 to sleep for p1", || {
        state_of(&app, "p2") == "asleep" && preview_processes(&app, "p2").is_empty()
    });
    assert_eq!(state_of(&app, "p1"), "awake");
    let ev = events(&app);
    assert!(ev.contains("preview p1 awake (a request)"), "{ev}");
    assert!(ev.contains("preview p2 asleep (max_awake 1"), "{ev}");

    // `cove preview wake p2`: p1 sleeps again.
    cove_ok(&app, &["preview", "wake", "p2"]);
    poll(60, "p1 to sleep for the woken p2", || {
        state_of(&app, "p1") == "asleep" && state_of(&app, "p2") == "awake"
    });
    assert_eq!(
        get(gw, "p2.a.localhost", ""),
        Ok(answer("p2")),
        "p2 answers, awake"
    );
}

#[test]
fn ttl_removes_an_old_preview_its_processes_and_its_directory() {
    let app = chain_with("{ttl: 45s, idle_after: 1h}", |c| c);
    branch_changing_b(&app, "old");
    cove_ok(&app, &["up", "-d"]);
    let _down = Down(&app, &["old"]);
    let gw = gateway(&app);
    let base_processes = app.processes();
    cove_ok(&app, &["preview", "up", "old", "--ref", "old"]);
    let dir = preview_dir(&app, "old");
    assert!(dir.join("preview.json").is_file());
    assert_eq!(state_of(&app, "old"), "awake");
    assert_eq!(preview_processes(&app, "old").len(), 1);

    poll(150, "the preview to be removed after its ttl", || {
        previews(&app).is_empty() && preview_processes(&app, "old").is_empty() && !dir.exists()
    });
    let ev = events(&app);
    assert!(
        ev.contains("preview old removed (older than ttl 45s)"),
        "{ev}"
    );
    assert_eq!(
        get(gw, "a.localhost", "X-Cove-Preview: old\r\n"),
        Ok(answer("base")),
        "its key goes to the baseline"
    );
    assert_eq!(app.processes(), base_processes, "the baseline untouched");
}

#[test]
fn memory_budget_puts_the_least_recently_used_to_sleep_the_latest_stays() {
    let app = chain_with("{memory: 1MiB, idle_after: 1h}", |c| c);
    branch_changing_b(&app, "m1");
    branch_changing_b(&app, "m2");
    cove_ok(&app, &["up", "-d"]);
    let _down = Down(&app, &["m1", "m2"]);
    let gw = gateway(&app);

    // Alone over the budget, the most recently used stays awake.
    cove_ok(&app, &["preview", "up", "m1", "--ref", "m1"]);
    assert_eq!(
        get(gw, "m1.a.localhost", ""),
        Ok(answer("m1")),
        "m1 answers"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(state_of(&app, "m1"), "awake", "{}", events(&app));

    cove_ok(&app, &["preview", "up", "m2", "--ref", "m2"]);
    poll(60, "m1 to sleep for the budget", || {
        state_of(&app, "m1") == "asleep" && preview_processes(&app, "m1").is_empty()
    });
    assert_eq!(state_of(&app, "m2"), "awake");
    let ev = events(&app);
    assert!(
        ev.contains("preview m1 asleep (previews.memory 1MiB"),
        "{ev}"
    );

    // m1 used again: awake, and m2 is now the one over the budget.
    assert_eq!(get(gw, "m1.a.localhost", ""), Ok(answer("m1")));
    poll(60, "m2 to sleep for the budget", || {
        state_of(&app, "m2") == "asleep" && state_of(&app, "m1") == "awake"
    });
    let ev = events(&app);
    assert!(
        ev.contains("preview m2 asleep (previews.memory 1MiB"),
        "{ev}"
    );
}

/// `b` marked `share` (changed in the branch, still shared) and `c`
/// marked `run` (the same, still run), saying where it runs.
fn run_and_share(compose: String) -> String {
    let b = "  b:\n    <<: *link\n";
    let c = "  c:\n    <<: *link";
    assert!(compose.contains(b) && compose.contains(c), "{compose}");
    compose
        .replace(
            b,
            "  b:\n    expose: [\"8000\"]\n    x-cove: {run: python3 chain.py, health: {http: /health}, preview: share}\n",
        )
        .replace(
            c,
            "  c:\n    expose: [\"8000\"]\n    x-cove:\n      run: [sh, -c, \"echo c starts in $$COVE_PROJECT; exec python3 chain.py\"]\n      health: {http: /health}\n      preview: run",
        )
}

#[test]
fn preview_run_runs_an_unchanged_service_share_shares_a_changed_one_and_logs_show_it() {
    let app = chain_with("{idle_after: 1h}", run_and_share);
    branch_changing_b(&app, "feat");
    cove_ok(&app, &["up", "-d"]);
    let _down = Down(&app, &["feat"]);
    let gw = gateway(&app);
    assert_eq!(get(gw, "a.localhost", ""), Ok(answer("base")));

    let out = cove_ok(&app, &["preview", "up", "feat", "--ref", "feat"]);
    assert!(out.contains("runs c (preview: run)"), "{out}");
    assert!(out.contains("shares a, b"), "{out}");
    let list = previews(&app);
    assert_eq!(list[0]["run"], serde_json::json!(["c"]), "{list:?}");
    assert_eq!(list[0]["shared"], serde_json::json!(["a", "b"]), "{list:?}");
    let pids = preview_processes(&app, "feat");
    assert_eq!(pids.len(), 1, "one process, the preview's c");
    let env = fs_err::read(format!("/proc/{}/environ", pids[0])).unwrap();
    assert!(
        env.split(|b| *b == 0).any(|v| v == b"COVE_SERVICE=c"),
        "it is c"
    );
    // The changed `b` is the baseline's: its key reaches b@base.
    assert_eq!(get(gw, "feat.a.localhost", ""), Ok(answer("base")));

    // Its logs: the preview's c, not the baseline's.
    let dir = preview_dir(&app, "feat");
    let out = cove_ok(&app, &["preview", "logs", "feat"]);
    let mine = format!("c starts in {}", dir.display());
    assert!(out.contains(&mine), "{out}");
    let base_line = format!(
        "c starts in {}\n",
        dir.parent().unwrap().parent().unwrap().display()
    );
    assert!(!out.contains(&base_line), "{out}");
    let out = cove_ok(&app, &["logs", "c"]);
    assert!(out.contains(&base_line) && !out.contains(&mine), "{out}");
}

#[test]
fn preview_up_refuses_bad_names_nothing_to_run_unknown_refs_and_apps_without_previews() {
    let app = chain_with("{idle_after: 1h}", |c| c);
    cove_ok(&app, &["up", "-d"]);
    let _down = Down(&app, &["same", "nope"]);
    let refused = |args: &[&str], what: &str| {
        let (code, out) = app.merged(args);
        assert!(
            code.is_some_and(|c| c != 0),
            "`cove {}`: {out}",
            args.join(" ")
        );
        assert!(out.contains(what), "`cove {}`: {out}", args.join(" "));
        assert!(out.contains("hint: "), "`cove {}`: {out}", args.join(" "));
    };
    refused(
        &["preview", "up", "Feat_1"],
        "`Feat_1` is not a preview name",
    );
    refused(
        &["preview", "up", "same", "--ref", "main"],
        "preview `same` would run nothing: every service is as the baseline runs it",
    );
    assert!(
        !preview_dir(&app, "same").exists(),
        "nothing left of a preview refused"
    );
    refused(
        &["preview", "up", "nope", "--ref", "no-such-branch"],
        "`git archive no-such-branch`",
    );
    assert!(!preview_dir(&app, "nope").exists());
    refused(&["preview", "logs", "nope"], "no preview `nope`");
    assert!(previews(&app).is_empty());

    let plain = App::new("services:\n  s:\n    x-cove:\n      run: [sleep, \"300\"]\n");
    cove_ok(&plain, &["up", "-d"]);
    let (code, out) = plain.merged(&["preview", "up", "feat"]);
    assert!(code.is_some_and(|c| c != 0), "{out}");
    assert!(out.contains("declares no previews"), "{out}");
    assert!(out.contains("hint: add `x-cove: {previews: {}}`"), "{out}");
}

const PG_PASSWORD: &str = "fork-pw-5c1e";

const FORKED: &str = r#"
name: forked
x-cove:
  previews: {}
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "fork-pw-5c1e"
      POSTGRES_DB: orders
    x-cove: {preview: fork}
"#;

/// Whether `bins` are installed; when not, a test that needs them fails
/// under CI and is skipped (loudly) elsewhere.
fn installed(bins: &[&str]) -> bool {
    let missing: Vec<_> = bins
        .iter()
        .filter(|b| {
            !std::env::var_os("PATH").is_some_and(|p| {
                std::env::split_paths(&p)
                    .chain(["/usr/sbin".into()])
                    .any(|d| d.join(b).is_file())
            })
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} not installed: `bash scripts/test` installs PostgreSQL"
    );
    eprintln!("SKIPPED: {missing:?} not installed (`bash scripts/test` installs PostgreSQL)");
    false
}

/// The `HOST:PORT` a replica of the project whose state directory is
/// `state` listens on (its `HOST` and `PORT`).
fn address_of(state: &std::path::Path) -> (String, String) {
    let marker = format!("COVE_PROJECT={}", state.display());
    let pids = processes_whose_env(|v| v == marker.as_bytes());
    for pid in pids {
        let Ok(env) = fs_err::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let var = |name: &str| {
            env.split(|b| *b == 0).find_map(|v| {
                let v = std::str::from_utf8(v).ok()?;
                v.strip_prefix(name).map(str::to_string)
            })
        };
        if let (Some(h), Some(p)) = (var("HOST="), var("PORT=")) {
            return (h, p);
        }
    }
    panic!("no replica of {} with HOST and PORT", state.display());
}

fn psql(at: &(String, String), sql: &str) -> String {
    let out = run_bounded(
        Command::new("psql")
            .args(["-h", &at.0, "-p", &at.1, "-U", "shop", "-d", "orders"])
            .args(["-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", PG_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10"),
        60,
    );
    assert_eq!(out.code, Some(0), "psql {sql}: {out}");
    out.stdout.trim().to_string()
}

#[test]
fn fork_copies_postgres_data_into_the_preview_and_never_writes_the_baseline() {
    if !installed(&["psql", "pg_dump", "pg_restore", "pg_ctl"]) {
        return;
    }
    let app = App::new(FORKED);
    cove_ok(&app, &["up", "-d"]);
    let _down = Down(&app, &["fork1"]);
    let state = fs_err::canonicalize(app.dir().join(".cove")).unwrap();
    let base = address_of(&state);
    psql(
        &base,
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g",
    );
    let base_data = state.join("data/db-1");
    assert!(base_data.join("pg/PG_VERSION").is_file(), "{base_data:?}");

    let out = cove_ok(&app, &["preview", "up", "fork1"]);
    assert!(out.contains("runs db (preview: fork)"), "{out}");
    assert!(out.contains("forking db's data from the baseline"), "{out}");
    let dir = preview_dir(&app, "fork1");
    let mine = address_of(&dir);
    assert_ne!(mine, base, "the preview's own instance");
    assert_eq!(previews(&app)[0]["run"], serde_json::json!(["db"]));
    assert_eq!(psql(&mine, "SELECT count(*) FROM items"), "500");
    assert_eq!(
        psql(&mine, "SELECT name FROM items WHERE id = 321"),
        "item 321"
    );

    // Writes to the preview's copy stay there.
    psql(
        &mine,
        "INSERT INTO items VALUES (501, 'preview only'); CREATE TABLE extra (n int)",
    );
    assert_eq!(psql(&mine, "SELECT count(*) FROM items"), "501");
    assert_eq!(psql(&base, "SELECT count(*) FROM items"), "500");
    assert_eq!(
        psql(
            &base,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'extra'"
        ),
        "0",
        "no new table in the baseline"
    );
    assert!(
        !base_data.starts_with(&dir),
        "the baseline's data is not under the preview"
    );

    let out = cove_ok(&app, &["preview", "down", "fork1"]);
    assert!(out.contains("removed"), "{out}");
    poll(60, "the preview's processes to end", || {
        preview_processes(&app, "fork1").is_empty()
    });
    assert!(!dir.exists(), "its data deleted with it");
    assert!(
        base_data.join("pg/PG_VERSION").is_file(),
        "the baseline's data kept"
    );
    assert_eq!(psql(&base, "SELECT count(*) FROM items"), "500");
}
