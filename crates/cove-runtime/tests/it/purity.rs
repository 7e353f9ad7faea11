//! A plan is a function of the app and its placement
//! ([`cove_runtime::plan::plan_at`]): it looks at no file, no `PATH` and no
//! engine; what the machine lacks is [`cove_runtime::preflight`]'s to say.

use std::path::{Path, PathBuf};
use std::process::Command;

use cove_runtime::plan::{Placement, plan_at};
use cove_runtime::recipe::Host;

/// Set in the child process [`a_plan_is_the_same_without_path`] starts:
/// the directory of the app to plan.
const CHILD: &str = "COVE_PURITY_CHILD";

/// An app whose every service asks something of the machine: a recipe
/// (its programs), a build (its context), a config (its file), a native
/// command (`x-cove.run`).
const APP: &str = "services:
  cache:
    image: redis:7
  db:
    image: postgres:16
  sql:
    image: mariadb:11
  mq:
    image: apache/activemq-classic:6
  web:
    build: ./missing-context
    configs: [site]
  api:
    x-cove:
      run: ./api --port 8080
    expose: [\"8080\"]
configs:
  site:
    file: ./missing-site.conf
";

fn load(dir: &Path) -> cove_spec::App {
    let file = dir.join("compose.yaml");
    cove_spec::project::load(&cove_spec::project::Options {
        files: vec![file],
        project_name: Some("pure".into()),
        ..Default::default()
    })
    .unwrap_or_else(|f| panic!("{}", f.render(&Default::default())))
    .app
}

fn placement(dir: &Path) -> Placement {
    Placement {
        project_dir: dir.to_path_buf(),
        net: 7,
        secrets_root: PathBuf::from("/nowhere/secrets"),
        host: Host::default(),
        external: Default::default(),
        entry: true,
    }
}

/// The plan of the app in `dir`, as text.
fn planned(dir: &Path) -> String {
    let app = load(dir);
    match plan_at(&app, &placement(dir), None) {
        Ok(plan) => format!("{plan:#?}"),
        Err(errors) => panic!("{errors:?}"),
    }
}

/// Prints the plan when run as [`a_plan_is_the_same_without_path`]'s
/// child; else does nothing.
#[test]
fn print_the_plan_in_a_child() {
    if let Some(dir) = std::env::var_os(CHILD) {
        println!("<plan>{}</plan>", planned(Path::new(&dir)));
    }
}

#[test]
fn a_plan_is_the_same_without_path() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("compose.yaml"), APP).unwrap();
    let here = planned(dir.path());
    // Neither the build context nor the config's file exists, and
    // redis may not be installed: the plan is made all the same.
    assert!(here.contains("missing-context"), "{here}");
    assert!(here.contains("missing-site.conf"), "{here}");
    // Recipes name their programs as the placement's host has them: here
    // none was looked up, so by their bare names.
    assert!(here.contains("\"postgres\""), "{here}");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "purity::print_the_plan_in_a_child",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD, dir.path())
        .env("PATH", "")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{out}");
    let there = out
        .split_once("<plan>")
        .and_then(|(_, rest)| rest.split_once("</plan>"))
        .map(|(plan, _)| plan)
        .unwrap_or_else(|| panic!("no plan printed: {out}"));
    assert_eq!(here, there, "the plan depends on PATH");
}

#[test]
fn the_machine_s_problems_are_preflight_s() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("compose.yaml"), APP).unwrap();
    let app = load(dir.path());
    let problems: Vec<String> = cove_runtime::preflight::check(&app)
        .iter()
        .map(|e| e.to_string())
        .collect();
    let context = dir.path().join("missing-context");
    let site = dir.path().join("missing-site.conf");
    assert!(
        problems.contains(&format!(
            "service `web`: `build.context` {} is not a directory",
            context.display()
        )),
        "{problems:?}"
    );
    assert!(
        problems.contains(&format!(
            "service `web`: config `site`: {} is not a file",
            site.display()
        )),
        "{problems:?}"
    );
    fs_err::create_dir(&context).unwrap();
    fs_err::write(&site, "server {}").unwrap();
    let problems = cove_runtime::preflight::check(&app);
    assert!(
        problems.iter().all(|e| e.service != "web" && e.machine),
        "only recipes' programs may be missing here: {problems:?}"
    );
}

#[test]
fn recipes_name_programs_and_users_as_the_placement_says() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("compose.yaml"), APP).unwrap();
    let app = load(dir.path());
    let host = Host {
        programs: [("postgres".to_string(), "/opt/pg/bin/postgres".to_string())].into(),
        users: [("postgres".to_string(), (70, 70))].into(),
    };
    let rooted = Placement {
        host,
        ..placement(dir.path())
    };
    let plan = plan_at(&app, &rooted, None).unwrap();
    let db = plan.services.iter().find(|s| s.name == "db").unwrap();
    // As its system user: in a mount namespace, then the program found.
    assert_eq!(db.argv[0], "unshare", "{:?}", db.argv);
    assert!(
        db.argv.iter().any(|a| a == "/opt/pg/bin/postgres"),
        "{:?}",
        db.argv
    );
    let plain = plan_at(&app, &placement(dir.path()), None).unwrap();
    let db = plain.services.iter().find(|s| s.name == "db").unwrap();
    assert_eq!(db.argv[0], "postgres", "{:?}", db.argv);
}
