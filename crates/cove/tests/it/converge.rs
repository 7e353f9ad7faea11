//! `cove up -d` waits for what it asked for: the revision of each service
//! its own request planned. Replicas of an earlier revision (still ready
//! while the new one starts, or failing while it is being replaced) neither
//! end the wait early nor fail it.

use crate::daemon::App;

fn compose(run: &str, health: &str, version: u32) -> String {
    format!(
        r#"
services:
  web:
    x-cove:
      run: {run}
    expose: ["8000"]
    environment:
      VERSION: "{version}"
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8000{health}"]
      interval: 300ms
      timeout: 2s
      retries: 1
      start_period: {start}
"#,
        // Revision 1 of the second test can never pass: it fails at once.
        start = if health == "/nope" { "0s" } else { "30s" }
    )
}

const SERVE: &str = "python3 -m http.server --bind $$HOST $$PORT";
const SLOW: &str = "sh -c 'sleep 4; exec python3 -m http.server --bind $$HOST $$PORT'";

/// The web rows of `ps`: (revision, state, health, retiring).
fn web(app: &App) -> Vec<(u64, String, String, bool)> {
    app.ps()
        .iter()
        .filter(|r| r["service"] == "web")
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["state"].as_str().unwrap().to_string(),
                r["health"].as_str().unwrap().to_string(),
                r["retiring"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn up_returns_once_its_own_revision_is_ready() {
    crate::recipes::require(&["curl"]);
    let app = App::new(&compose(SERVE, "/", 1));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(web(&app)[0].0, 1);

    // Revision 2 takes seconds to listen: `up -d` waits for it, not for
    // revision 1, which is ready all along.
    fs_err::write(app.dir().join("compose.yaml"), compose(SLOW, "/", 2)).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let rows = web(&app);
    let current: Vec<_> = rows.iter().filter(|r| !r.3).collect();
    assert!(
        !current.is_empty()
            && current
                .iter()
                .all(|r| r.0 == 2 && r.1 == "running" && r.2 == "healthy"),
        "up -d returned before revision 2 was ready: {rows:?}\n{out}"
    );
    assert!(out.contains("web-1 healthy"), "{out}");
}

#[test]
fn up_after_a_fix_is_not_failed_by_the_broken_revision() {
    crate::recipes::require(&["curl"]);
    // Revision 1's check can never pass: up -d fails, and its replica is
    // restarted again and again.
    let app = App::new(&compose(SERVE, "/nope", 1));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    // Fixed, with a replica slow to listen: while it starts, revision 1's
    // replica goes on failing; that is not this `up`'s failure.
    fs_err::write(app.dir().join("compose.yaml"), compose(SLOW, "/", 2)).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "the fixed revision was failed: {out}");
    let rows = web(&app);
    assert!(
        rows.iter()
            .filter(|r| !r.3)
            .all(|r| r.0 == 2 && r.2 == "healthy"),
        "{rows:?}"
    );
}

/// A change that leaves what runs as it is (an autoscale policy) keeps the
/// replicas and their revision: `up -d` does not wait for another one.
#[test]
fn up_of_a_policy_change_ends_with_the_replicas_it_keeps() {
    let yaml = |autoscale: &str| {
        format!(
            r#"
services:
  web:
    x-cove:
      run: python3 -m http.server --bind $$HOST $$PORT
      health: {{http: /}}
{autoscale}    expose: ["8000"]
  worker:
    x-cove: {{run: sleep 600}}
"#
        )
    };
    let app = App::new(&yaml(""));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let before = web(&app);
    let policy = "      autoscale: {min: 1, max: 2, target_concurrency: 4}\n";
    fs_err::write(app.dir().join("compose.yaml"), yaml(policy)).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "up -d of a policy change: {out}");
    assert_eq!(web(&app), before, "the same replicas, at the same revision");
    // And to zero replicas when idle: nothing left to wait for.
    let sleepy = "      autoscale: {min: 0, max: 2, target_concurrency: 4, scale_down_after: 1s}\n";
    fs_err::write(app.dir().join("compose.yaml"), yaml(sleepy)).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
}

/// `db`'s rows of `ps`: (revision, state, ready, retiring, pid).
fn db(app: &App) -> Vec<(u64, String, bool, bool, u64)> {
    app.ps()
        .iter()
        .filter(|r| r["service"] == "db")
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["state"].as_str().unwrap().to_string(),
                r["ready"].as_bool().unwrap_or(false),
                r["retiring"].as_bool().unwrap_or(false),
                r["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A dependency replaced stop-first, slow to stop, and a second `up -d`
/// while the first still waits for it: neither returns (as one did in
/// 0.05 s) before the dependency's new revision is ready and its old
/// replica gone.
#[test]
fn a_second_up_while_a_dependency_retires_waits_for_its_new_revision() {
    let yaml = |version: u32| {
        format!(
            r#"
services:
  db:
    x-cove:
      run: [sh, -c, "trap 'sleep 3; exit 0' TERM; while :; do sleep 0.1; done"]
    environment: {{VERSION: "{version}"}}
    deploy:
      update_config: {{order: stop-first}}
  api:
    x-cove: {{run: sleep 600}}
    depends_on: [db]
"#
        )
    };
    let app = App::new(&yaml(1));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let old = db(&app);
    assert_eq!(old.len(), 1, "{old:?}");
    let (old_revision, old_pid) = (old[0].0, old[0].4);

    fs_err::write(app.dir().join("compose.yaml"), yaml(2)).unwrap();
    // What `ps` says the moment an `up -d` returns.
    let up = || {
        let (code, out) = app.merged(&["up", "-d"]);
        (code, out, db(&app))
    };
    let check = |which: &str, (code, out, rows): (Option<i32>, String, Vec<_>)| {
        assert_eq!(code, Some(0), "the {which} up -d: {out}");
        let rows: Vec<(u64, String, bool, bool, u64)> = rows;
        assert!(
            !rows.is_empty()
                && rows.iter().all(|r| r.0 > old_revision
                    && r.1 == "running"
                    && r.2
                    && !r.3
                    && r.4 != old_pid),
            "the {which} up -d returned before db's new revision was ready \
             and its old replica gone: {rows:?}\n{out}"
        );
    };
    std::thread::scope(|s| {
        let first = s.spawn(up);
        // The old db is on its way out (3 s to stop): now the second.
        crate::daemon::eventually(30, "db's old replica stopping", || {
            db(&app)
                .iter()
                .any(|r| r.4 == old_pid && (r.3 || r.1 != "running"))
        });
        check("second", up());
        check("first", first.join().unwrap());
    });
}
