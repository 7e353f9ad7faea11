//! Revisions mean what they say (issue 17): a service held at a revision
//! (after a failed deploy, or a rollback) stays there through `restart`,
//! `stop`/`start`, `up -d` again and a daemon restart; a rollback says it
//! happened only when it did. Real processes; every wait is bounded; every
//! app is brought down when its test ends, even when it fails (`App`'s
//! drop).

use std::collections::BTreeMap;

use crate::claims::{
    FAILING_ONE, events, kill_daemon, last_seq, revisions, show, started, updating,
};
use crate::daemon::{App, eventually};
use crate::deploy::cove_ok;

/// The revisions `cove history web` says the service is held at.
fn held(app: &App) -> Vec<u64> {
    let text = cove_ok(app, &["history", "web", "--format", "json"]);
    let h: serde_json::Value = serde_json::from_str(&text).unwrap();
    h["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pinned"] == true)
        .map(|r| r["number"].as_u64().unwrap())
        .collect()
}

/// After `what`, both replicas run revision 1 again and no replica of
/// revision 2 was started since event `from`.
fn still_at_one(app: &App, what: &str, from: u64) {
    eventually(60, &format!("both replicas running after {what}"), || {
        revisions(app).len() == 2
    });
    let happened = events(app, from);
    assert!(
        started(&happened, 2).is_empty(),
        "{what} started the failed revision 2 again:\n{}",
        show(&happened)
    );
    assert_eq!(
        revisions(app),
        BTreeMap::from([(1, 1), (2, 1)]),
        "after {what}:\n{}",
        show(&happened)
    );
    assert_eq!(held(app), [1], "still held after {what}");
}

/// docs/guides/deploy.md: a failed deploy holds the service at the
/// revision it ran before. `cove restart`, `cove stop` + `cove start`,
/// `cove up -d` (the file still says revision 2) and a SIGKILLed daemon
/// brought back by `up -d` all keep revision 1 on every replica.
#[test]
fn a_service_held_after_a_rolled_back_deploy_stays_held_through_restart_start_and_up() {
    let app = App::new(&updating(1, 2, 0, "failure_action: rollback"));
    fs_err::write(app.dir().join("server.py"), FAILING_ONE).unwrap();
    cove_ok(&app, &["up", "-d"]);
    fs_err::write(
        app.dir().join("compose.yaml"),
        updating(2, 2, 2, "failure_action: rollback"),
    )
    .unwrap();
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("replica 2: exited with code 3"), "{out}");
    eventually(60, "the deploy rolled back to revision 1", || {
        revisions(&app) == BTreeMap::from([(1, 1), (2, 1)])
    });
    assert_eq!(held(&app), [1], "held at the revision that ran before");

    let from = last_seq(&app);
    cove_ok(&app, &["restart", "web"]);
    still_at_one(&app, "`cove restart web`", from);

    let from = last_seq(&app);
    cove_ok(&app, &["stop", "web"]);
    eventually(30, "web stopped", || revisions(&app).is_empty());
    cove_ok(&app, &["start", "web"]);
    still_at_one(&app, "`cove stop web` and `cove start web`", from);

    let from = last_seq(&app);
    cove_ok(&app, &["up", "-d"]);
    still_at_one(&app, "`cove up -d` again", from);

    let from = last_seq(&app);
    kill_daemon(&app);
    cove_ok(&app, &["up", "-d"]);
    still_at_one(&app, "a SIGKILLed daemon and `cove up -d`", from);

    // The next deploy lets go (and, fixed, rolls out).
    fs_err::write(
        app.dir().join("compose.yaml"),
        updating(3, 2, 0, "failure_action: rollback"),
    )
    .unwrap();
    cove_ok(&app, &["deploy", "web"]);
    assert!(held(&app).is_empty(), "let go by the next deploy");
    let now = revisions(&app);
    assert!(
        now.len() == 2 && now.values().all(|r| *r > 1),
        "the next deploy rolls out everywhere: {now:?}"
    );
}
