//! Nothing shrinks the running app: `up SERVICE`, `up --profile P SERVICE`
//! and `run` add to what runs, as in Compose; they never stop or unroute
//! anything else. A service removed from the file keeps running (an
//! orphan, marked by `ps`) until `up --remove-orphans` or `down
//! --remove-orphans`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::daemon::{App, eventually};
use crate::gateway::{http, wait_for_targets};

/// The app; `web`'s port 8000 is published on `127.0.0.1:published`.
fn compose(with_worker: bool, published: u16) -> String {
    let worker = if with_worker {
        "  worker:\n    x-cove: {run: sleep 600}\n    depends_on: [db]\n"
    } else {
        ""
    };
    format!(
        r#"
services:
  web:
    x-cove:
      run: python3 -m http.server --bind $$HOST $$PORT
      health: {{http: /}}
    expose: ["8000"]
    ports: ["127.0.0.1:{published}:8000"]
    depends_on: [api]
  api:
    x-cove: {{run: sleep 600}}
    depends_on: [db]
  db:
    x-cove: {{run: sleep 600}}
{worker}  migrate:
    x-cove: {{run: "true"}}
    depends_on: [db]
  debug:
    x-cove: {{run: sleep 600}}
    profiles: [debug]
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
"#
    )
}

/// Each running service's pids, from one `ps`.
fn running(app: &App) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in app.ps() {
        if r["state"] == "running" {
            out.entry(r["service"].as_str().unwrap().to_string())
                .or_default()
                .push(r["pid"].as_u64().unwrap());
        }
    }
    out
}

fn ok(app: &App, args: &[&str]) -> String {
    let (code, out) = app.merged(args);
    assert_eq!(code, Some(0), "cove {args:?}:\n{out}");
    out
}

#[test]
fn up_of_one_service_and_run_add_to_what_runs_and_orphans_stay_until_removed() {
    let published = crate::flags::free_port();
    let app = App::new(&compose(true, published));
    ok(&app, &["up", "-d"]);
    let gw = wait_for_targets(&app, &[1, 1]);
    let port = SocketAddr::from(([127, 0, 0, 1], published));
    let first = running(&app);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["api", "db", "web", "worker"],
        "{first:?}"
    );
    let serves = |what: &str| {
        let (status, _, body) = http(gw, "GET", "web.localhost", "/", b"");
        assert_eq!(status, 200, "web through the gateway after {what}: {body}");
        if let Err(e) = std::net::TcpStream::connect(port) {
            panic!("web's published port {port} after {what}: {e}");
        }
        let (status, _, body) = http(port, "GET", "web.localhost", "/", b"");
        assert_eq!(status, 200, "web's published port after {what}: {body}");
    };
    serves("up");

    // Each of these used to replace what runs with the command's closure.
    for args in [
        &["run", "api", "true"][..],
        &["run", "api", "--", "true"],
        &["run", "migrate"],
        &["up", "-d", "api"],
        &["up", "-d", "migrate"],
    ] {
        ok(&app, args);
        assert_eq!(running(&app), first, "after `cove {}`", args.join(" "));
        let rows = app.ps();
        assert!(
            rows.iter().all(|r| r["orphan"] == false),
            "nothing is an orphan after {args:?}: {rows:?}"
        );
        serves(&args.join(" "));
        let routes = ok(&app, &["routes"]);
        assert!(routes.contains("web"), "after {args:?}: {routes}");
    }
    // A profile's service, named: added beside the rest.
    ok(&app, &["up", "-d", "--profile", "debug", "debug"]);
    let with_debug = running(&app);
    assert!(with_debug.contains_key("debug"), "{with_debug:?}");
    for (service, pids) in &first {
        assert_eq!(with_debug.get(service), Some(pids), "{service} untouched");
    }
    serves("up --profile debug debug");
    // The others are still the app's: they can be restarted by name.
    ok(&app, &["restart", "worker"]);
    eventually(20, "worker running again", || {
        running(&app)
            .get("worker")
            .is_some_and(|p| p != &first["worker"])
    });

    // `worker` removed from the file: it keeps running, an orphan.
    let without_worker = || {
        fs_err::write(app.dir().join("compose.yaml"), compose(false, published)).unwrap();
    };
    without_worker();
    let out = ok(&app, &["up", "-d"]);
    assert!(
        out.contains("`worker` still runs but is no longer in the compose file")
            && out.contains("--remove-orphans"),
        "{out}"
    );
    let worker = running(&app)["worker"].clone();
    let rows = app.ps();
    assert!(
        rows.iter()
            .filter(|r| r["service"] == "worker")
            .all(|r| r["orphan"] == true),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r["service"] != "worker")
            .all(|r| r["orphan"] == false),
        "{rows:?}"
    );
    let (_, table) = app.merged(&["ps"]);
    assert!(table.contains("orphans"), "{table}");
    ok(&app, &["deploy"]);
    assert_eq!(running(&app).get("worker"), Some(&worker), "kept by deploy");
    serves("the orphan's up");

    // Removed on request; the rest untouched.
    let before = running(&app);
    ok(&app, &["up", "-d", "--remove-orphans"]);
    eventually(20, "the orphan stopped", || {
        !running(&app).contains_key("worker")
    });
    let after = running(&app);
    for (service, pids) in before.iter().filter(|(s, _)| *s != "worker") {
        assert_eq!(after.get(service), Some(pids), "{service} untouched");
    }
    assert!(app.ps().iter().all(|r| r["service"] != "worker"));
    serves("--remove-orphans");

    // An orphan again, then `down --remove-orphans` while it runs: the
    // orphan stops with the rest.
    fs_err::write(app.dir().join("compose.yaml"), compose(true, published)).unwrap();
    ok(&app, &["up", "-d"]);
    without_worker();
    ok(&app, &["up", "-d"]);
    let orphan = running(&app).get("worker").cloned().unwrap_or_default();
    assert!(!orphan.is_empty(), "no orphan to remove");
    assert!(
        app.ps()
            .iter()
            .any(|r| r["service"] == "worker" && r["orphan"] == true)
    );
    ok(&app, &["down", "--remove-orphans"]);
    for pid in orphan {
        assert!(
            !crate::up::alive(pid as u32),
            "the orphan (pid {pid}) runs on after down --remove-orphans"
        );
    }
    assert!(app.processes().is_empty());
}

/// `cove start SERVICE` of a service of the file that does not run yet —
/// never started, or stopped before the last `up` — starts it with what it
/// depends on, and routes it (the running plan did not have it).
#[test]
fn start_runs_a_service_the_running_plan_lacks_with_its_dependencies() {
    let app = App::new(&compose(true, crate::flags::free_port()));
    ok(&app, &["up", "-d", "db"]);
    assert_eq!(running(&app).keys().collect::<Vec<_>>(), ["db"]);
    // web depends on api, which depends on db.
    ok(&app, &["start", "web"]);
    eventually(30, "web and api running", || {
        let r = running(&app);
        r.contains_key("web") && r.contains_key("api")
    });
    let gw = wait_for_targets(&app, &[1, 1]);
    let (status, _, body) = http(gw, "GET", "web.localhost", "/", b"");
    assert_eq!(status, 200, "{body}");
    // Stopped, then another `up`: started again by name.
    ok(&app, &["stop", "web"]);
    ok(&app, &["up", "-d", "worker"]);
    assert!(!running(&app).contains_key("web"));
    ok(&app, &["start", "web"]);
    eventually(30, "web running again", || {
        running(&app).contains_key("web")
    });
    let gw = wait_for_targets(&app, &[1, 1]);
    let (status, _, body) = http(gw, "GET", "web.localhost", "/", b"");
    assert_eq!(status, 200, "{body}");
}
