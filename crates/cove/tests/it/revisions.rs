//! Revisions mean what they say (issue 17): a service held at a revision
//! (after a failed deploy, or a rollback) stays there through `restart`,
//! `stop`/`start`, `up -d` again and a daemon restart; a rollback says it
//! happened only when it did. Real processes; every wait is bounded; every
//! app is brought down when its test ends, even when it fails (`App`'s
//! drop).

use std::collections::BTreeMap;

use crate::claims::{
    edit, events, held, kill_daemon, last_seq, revisions, show, started, up_at_one,
};
use crate::daemon::{App, eventually};
use crate::deploy::cove_ok;

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
    let app = up_at_one(2, "failure_action: rollback");
    edit(&app, 2, 2, 2, "failure_action: rollback");
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
    edit(&app, 3, 2, 0, "failure_action: rollback");
    cove_ok(&app, &["deploy", "web"]);
    assert!(held(&app).is_empty(), "let go by the next deploy");
    let now = revisions(&app);
    assert!(
        now.len() == 2 && now.values().all(|r| *r > 1),
        "the next deploy rolls out everywhere: {now:?}"
    );
}

/// An HTTP server answering `v<N>` (`N` written into the file itself), for
/// a service whose code is the file.
/// `cove history web`: `current` runs, and no revision is held.
fn assert_current_and_not_held(app: &App, current: u64) {
    let text = cove_ok(app, &["history", "web", "--format", "json"]);
    let h: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(h["current"], current, "{h}");
    assert!(
        h["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["pinned"] != true),
        "not held: {h}"
    );
}

fn serving(version: u32) -> String {
    format!(
        r#"#!/usr/bin/env python3
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"v{version}"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#
    )
}

/// `web` running `run` (its code in a file of the project).
fn web(run: &str) -> String {
    format!(
        r#"
services:
  web:
    x-cove:
      run: {run}
      health: {{http: /}}
    expose: ["8000"]
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#
    )
}

/// What `web` answers through the gateway, once its one replica serves.
fn answer(app: &App) -> String {
    let gw = crate::gateway::wait_for_targets(app, &[1]);
    crate::claims::get_raw(gw, "web.localhost", std::time::Duration::from_secs(10)).1
}

/// docs/guides/deploy.md, Rollback: a program kept as an artifact (the
/// first word of `x-cove.run` is a file of the project) is rolled back to
/// its kept copy, though the file changed in place.
#[test]
fn a_rollback_runs_the_kept_copy_of_a_program() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = App::new(&web("./server"));
    let program = app.dir().join("server");
    let write = |version| {
        fs_err::write(&program, serving(version)).unwrap();
        fs_err::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write(1);
    cove_ok(&app, &["up", "-d"]);
    assert_eq!(answer(&app), "v1");
    write(2);
    let out = cove_ok(&app, &["deploy", "web"]);
    assert!(out.contains("revision 2 runs on every replica"), "{out}");
    assert_eq!(answer(&app), "v2");
    let out = cove_ok(&app, &["rollback", "web"]);
    assert!(out.contains("revision 1 runs on every replica"), "{out}");
    assert_eq!(answer(&app), "v1", "the kept copy runs, not the file");
}

/// docs/guides/deploy.md, Rollback: a script run by an interpreter
/// (`python3 app.py`) is not kept; a rollback to a revision that ran
/// other contents of it refuses, naming the file, and changes nothing. Put
/// back as it was, the same rollback goes ahead.
#[test]
fn a_rollback_of_a_working_tree_script_that_changed_refuses_and_says_why() {
    let app = App::new(&web("python3 app.py"));
    let script = app.dir().join("app.py");
    fs_err::write(&script, serving(1)).unwrap();
    cove_ok(&app, &["up", "-d"]);
    assert_eq!(answer(&app), "v1");
    fs_err::write(&script, serving(2)).unwrap();
    let out = cove_ok(&app, &["deploy", "web"]);
    assert!(out.contains("revision 2 runs on every replica"), "{out}");
    assert_eq!(answer(&app), "v2");

    let (code, out) = app.merged(&["rollback", "web"]);
    assert_ne!(code, Some(0), "a rollback that cannot happen fails:\n{out}");
    assert!(
        out.contains("runs files from the working tree (app.py), which cove does not keep"),
        "{out}"
    );
    assert!(
        out.contains("revert them (git) and `cove deploy web`"),
        "{out}"
    );
    assert!(!out.contains("runs on every replica"), "{out}");
    assert_eq!(answer(&app), "v2", "nothing changed");
    assert_current_and_not_held(&app, 2);

    // Gone from the working tree: refused too, saying so.
    fs_err::remove_file(&script).unwrap();
    let (code, out) = app.merged(&["rollback", "web"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("named by `python3 app.py`, none there now"),
        "{out}"
    );

    // The file as revision 1 ran it: the rollback is real.
    fs_err::write(&script, serving(1)).unwrap();
    let out = cove_ok(&app, &["rollback", "web"]);
    assert!(out.contains("revision 1 runs on every replica"), "{out}");
    assert_eq!(answer(&app), "v1");

    // Held at revision 1, the file changed again: a restart would run the
    // new file as revision 1, so it refuses, and the replicas keep serving.
    fs_err::write(&script, serving(3)).unwrap();
    let refused = |verb: &str| {
        let (code, out) = app.merged(&[verb, "web"]);
        assert_ne!(
            code,
            Some(0),
            "cove {verb} web ran the changed file:\n{out}"
        );
        assert!(
            out.contains(&format!(
                "cannot {verb} `web` at revision 1, where it is held: `web` runs files from the working tree (app.py)"
            )),
            "{out}"
        );
        assert!(out.contains("`cove deploy web`"), "{out}");
    };
    refused("restart");
    assert_eq!(answer(&app), "v1", "nothing changed by restart");
    // Stopped, it does not start as revision 1 with the new file either.
    cove_ok(&app, &["stop", "web"]);
    refused("start");
    assert!(
        app.ps()
            .iter()
            .all(|r| r["service"] != "web" || r["state"] != "running"),
        "web started"
    );
    // `up` runs the file as it is now, as a new revision (no longer held).
    cove_ok(&app, &["up", "-d"]);
    assert_eq!(answer(&app), "v3");
    assert_current_and_not_held(&app, 3);
    cove_ok(&app, &["restart", "web"]);
    assert_eq!(answer(&app), "v3");
}

/// docs/guides/deploy.md: a paused deploy (`failure_action: pause`) leaves
/// the replicas mixed and holds the service at the revision it ran
/// before; `cove restart` then runs that one on every replica, not the
/// failed one.
#[test]
fn a_restart_after_a_paused_deploy_runs_the_held_revision_everywhere() {
    let app = up_at_one(2, "failure_action: pause");
    edit(&app, 2, 2, 2, "failure_action: pause");
    let (code, out) = app.merged(&["deploy", "web"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("paused"), "{out}");
    assert_eq!(revisions(&app), BTreeMap::from([(1, 2), (2, 1)]), "mixed");
    assert_eq!(held(&app), [1]);
    let from = last_seq(&app);
    cove_ok(&app, &["restart", "web"]);
    still_at_one(&app, "`cove restart web`", from);
}
