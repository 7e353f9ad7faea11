//! Projects and environments are isolated: `--env prod` and `-p NAME` on
//! the same checkout are other projects, with their own state, daemon,
//! data, addresses and gateway; nothing of one is touched by the other.

use crate::daemon::App;
use crate::recipes::require;

const COMPOSE: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: ${PG_PASSWORD}
      POSTGRES_DB: orders
  app:
    x-cove:
      run: [sleep, "300"]
    environment:
      DATABASE_URL: postgres://shop@pg:5432/orders
      PGPASSWORD: ${PG_PASSWORD}
    depends_on:
      pg: {condition: service_healthy}
"#;

/// `cove down` of the other projects of the test's checkout, whatever
/// happens (the default one is `App`'s).
struct Others<'a>(&'a App, &'a [&'a [&'a str]]);

impl Drop for Others<'_> {
    fn drop(&mut self) {
        for args in self.1 {
            let mut a = args.to_vec();
            a.push("down");
            let _ = self.0.merged(&a);
        }
    }
}

/// The `cove ps --format json` rows of the running replicas.
fn running_rows(app: &App, project: &[&str]) -> Vec<serde_json::Value> {
    let mut args = project.to_vec();
    args.extend(["ps", "--format", "json"]);
    let (code, out) = app.merged(&args);
    assert_eq!(code, Some(0), "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .filter(|r| r["state"] == "running")
        .collect()
}

fn running(app: &App, project: &[&str]) -> Vec<(String, String)> {
    running_rows(app, project)
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Each running replica's service and pid.
fn pids(app: &App, project: &[&str]) -> Vec<(String, u64)> {
    running_rows(app, project)
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `cove routes --format json` of `project`.
fn routes(app: &App, project: &[&str]) -> serde_json::Value {
    let mut args = project.to_vec();
    args.extend(["routes", "--format", "json"]);
    let (code, out) = app.merged(&args);
    assert_eq!(code, Some(0), "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `cove ls --format json` (with `--all`), this checkout's projects only.
fn ls(app: &App, all: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["ls", "--format", "json"];
    if all {
        args.push("--all");
    }
    let (code, out) = app.merged(&args);
    assert_eq!(code, Some(0), "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let here = fs_err::canonicalize(app.dir()).unwrap();
    rows.into_iter()
        .filter(|r| r["project_dir"].as_str() == Some(here.to_str().unwrap()))
        .collect()
}

#[test]
fn an_environment_and_another_project_name_leave_the_running_app_alone() {
    require(&["psql"]);
    let app = App::new(COMPOSE);
    let dir = app.dir();
    fs_err::write(dir.join(".env"), "PG_PASSWORD=dev-secret\n").unwrap();
    fs_err::write(dir.join(".env.prod"), "PG_PASSWORD=prod-secret\n").unwrap();
    let _others = Others(&app, &[&["--env", "prod"], &["-p", "shopprod"]]);
    let psql = |project: &[&str], sql: &str| {
        let mut args = project.to_vec();
        let command = format!("psql \"$DATABASE_URL\" -tA -c \"{sql}\"");
        args.extend(["run", "app", "sh", "-c", &command]);
        app.merged(&args)
    };

    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = psql(&[], "CREATE TABLE t (s text); INSERT INTO t VALUES ('dev')");
    assert_eq!(code, Some(0), "{out}");
    let dev = running(&app, &[]);

    // prod: its own database (initialised with its own password), at its
    // own addresses; dev's keeps running, with its password and data.
    let (code, out) = app.merged(&["--env", "prod", "up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = psql(&["--env", "prod"], "SELECT s FROM t");
    assert_ne!(code, Some(0), "prod sees dev's table: {out}");
    assert!(out.contains("does not exist"), "{out}");
    let (code, out) = psql(
        &["--env", "prod"],
        "CREATE TABLE t (s text); INSERT INTO t VALUES ('prod')",
    );
    assert_eq!(code, Some(0), "{out}");
    let prod = running(&app, &["--env", "prod"]);
    assert_eq!(
        running(&app, &[]),
        dev,
        "dev's replicas untouched by prod's up"
    );
    assert_eq!(prod.len(), 2, "{prod:?}");
    for (service, at) in &prod {
        assert!(
            dev.iter().all(|(_, d)| d != at),
            "prod's {service} at dev's address {at}"
        );
    }
    let (code, out) = psql(&[], "SELECT s FROM t");
    assert_eq!(code, Some(0), "dev's database after prod's up: {out}");
    assert!(out.lines().any(|l| l == "dev"), "{out}");

    // `cove ls` lists both, each with its replicas (other tests' projects
    // are there too: only this checkout's are looked at).
    let listed = ls(&app, false);
    let (dev_ls, prod_ls) = (
        listed.iter().find(|l| l["env"].is_null()),
        listed.iter().find(|l| l["env"] == "prod"),
    );
    assert_eq!(
        dev_ls.map(|l| l["running"].clone()),
        Some(2.into()),
        "{listed:?}"
    );
    assert_eq!(
        prod_ls.map(|l| l["status"].clone()),
        Some("running(2)".into()),
        "{listed:?}"
    );
    assert!(
        prod_ls.unwrap()["state_dir"]
            .as_str()
            .unwrap()
            .ends_with(".cove/env/prod"),
        "{listed:?}"
    );
    let (code, table) = app.merged(&["ls"]);
    assert_eq!(code, Some(0), "{table}");
    assert!(table.starts_with("NAME"), "{table}");

    // Another project name: nothing of the default app is its.
    assert_eq!(running(&app, &["-p", "shopprod"]), Vec::new());
    let (code, out) = app.merged(&["-p", "shopprod", "logs", "pg"]);
    assert!(
        code != Some(0) || !out.contains("database system is ready"),
        "shopprod shows the default app's logs: {out}"
    );

    // Once it runs: its own state directory, data and addresses; the
    // default app's replicas, routes and data untouched, before and after
    // its `down`.
    let dev_pids = pids(&app, &[]);
    let dev_routes = routes(&app, &[]);
    let (code, out) = app.merged(&["-p", "shopprod", "up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let state = dir.join(".cove/projects/shopprod");
    assert!(
        state.join("data/pg-1/pg/PG_VERSION").is_file(),
        "shopprod's database is not in {}",
        state.display()
    );
    let shopprod = running(&app, &["-p", "shopprod"]);
    assert_eq!(shopprod.len(), 2, "{shopprod:?}");
    for (service, at) in &shopprod {
        assert!(
            dev.iter().all(|(_, d)| d != at),
            "shopprod's {service} at dev's address {at}"
        );
    }
    let (code, out) = psql(&["-p", "shopprod"], "SELECT s FROM t");
    assert_ne!(code, Some(0), "shopprod sees dev's table: {out}");
    assert!(out.contains("does not exist"), "{out}");
    assert_eq!(
        pids(&app, &[]),
        dev_pids,
        "dev's replicas after shopprod's up"
    );
    assert_eq!(
        routes(&app, &[]),
        dev_routes,
        "dev's routes after shopprod's up"
    );
    let (code, out) = app.merged(&["-p", "shopprod", "down", "--volumes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!state.join("data/pg-1").exists(), "shopprod's data kept");
    assert_eq!(
        pids(&app, &[]),
        dev_pids,
        "dev's replicas after shopprod's down"
    );
    assert_eq!(
        routes(&app, &[]),
        dev_routes,
        "dev's routes after shopprod's down"
    );
    let (code, out) = psql(&[], "SELECT s FROM t");
    assert_eq!(code, Some(0), "dev's database after shopprod: {out}");
    assert!(out.lines().any(|l| l == "dev"), "{out}");

    // prod's `down --volumes` deletes prod's data only.
    let (code, out) = app.merged(&["--env", "prod", "down", "--volumes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleting the data of pg-1"), "{out}");
    // Down, it is listed by `ls --all` only.
    assert!(ls(&app, false).iter().all(|l| l["env"] != "prod"));
    let all = ls(&app, true);
    let prod_ls = all.iter().find(|l| l["env"] == "prod");
    assert_eq!(
        prod_ls.map(|l| l["status"].clone()),
        Some("stopped".into()),
        "{all:?}"
    );
    assert_eq!(running(&app, &[]), dev, "dev still runs");
    let (code, out) = psql(&[], "SELECT s FROM t");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().any(|l| l == "dev"), "{out}");
    assert!(dir.join(".cove/data/pg-1/pg/PG_VERSION").is_file());
}

/// Two environments may not share a gateway address: the second's `up`
/// says which project's gateway holds it.
#[test]
fn an_environment_on_a_taken_gateway_address_names_the_project_there() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = free.local_addr().unwrap();
    drop(free);
    let app = App::new(&format!(
        r#"
name: shop
services:
  web:
    x-cove:
      run: python3 -m http.server --bind $$HOST $$PORT
    expose: ["8000"]
x-cove:
  gateway: {{listen: "{at}"}}
"#
    ));
    fs_err::write(app.dir().join(".env.prod"), "X=1\n").unwrap();
    let _others = Others(&app, &[&["--env", "prod"]]);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["--env", "prod", "up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    let dir = fs_err::canonicalize(app.dir()).unwrap();
    assert!(
        out.contains(&format!(
            "the gateway cannot listen on {at}: the address is in use, by the gateway of cove project `shop` in {}",
            dir.display()
        )),
        "{out}"
    );
    assert!(out.contains("x-cove.gateway.listen"), "{out}");
    assert!(
        running(&app, &["--env", "prod"]).is_empty(),
        "nothing of prod started"
    );
}
