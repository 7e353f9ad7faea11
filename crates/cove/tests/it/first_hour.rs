//! Issue 17, "the first hour": what a Compose user expects works, or gets a
//! fix instead of a mystery — builds from the project root, native
//! replicas' addresses in health checks and commands, `down` right after
//! Ctrl-C, `down --volumes` and the logs. Every wait is bounded; every app
//! is brought down, even when a test fails.

use std::path::Path;
use std::process::Command;

use crate::daemon::{App, eventually};
use crate::deploy::cove_ok;

/// The container's program: for each argument, a path, whether it exists;
/// then it sleeps.
const LISTER: &str = r#"
fn main() {
    let seen: Vec<String> = std::env::args()
        .skip(1)
        .map(|p| format!("{p}={}", std::path::Path::new(&p).exists()))
        .collect();
    println!("files: {}", seen.join(" "));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
"#;

const BUILD_HERE: &str = r#"
services:
  keeper:
    x-cove: {run: [sleep, "300"]}
  files:
    build: .
    command: [/ctx/app, /ctx/secret.txt, /ctx/notes/keep.md, /ctx/notes/drop.md, /ctx/notes/other.txt, /ctx/.cove, /ctx/Dockerfile, /ctx/.dockerignore]
"#;

#[test]
fn a_build_from_the_project_root_leaves_out_the_state_dir_and_what_dockerignore_says() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    let app = App::new(BUILD_HERE);
    let dir = app.dir();
    crate::containers::static_binary(dir, LISTER);
    fs_err::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY . /ctx\nENTRYPOINT [\"/ctx/app\"]\n",
    )
    .unwrap();
    fs_err::write(
        dir.join(".dockerignore"),
        "# what never goes in the image\nsecret.txt\n**/*.md\n!notes/keep.md\nDockerfile\n.dockerignore\n",
    )
    .unwrap();
    fs_err::write(dir.join("secret.txt"), "s3cret").unwrap();
    fs_err::create_dir_all(dir.join("notes")).unwrap();
    for f in ["keep.md", "drop.md", "other.txt"] {
        fs_err::write(dir.join("notes").join(f), f).unwrap();
    }
    // The daemon runs (its socket is in the context) before anything builds.
    cove_ok(&app, &["up", "-d", "keeper"]);
    assert!(dir.join(".cove/daemon.sock").exists());
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    eventually(15, "the container's list of files", || {
        app.merged(&["logs", "files"]).1.contains("files: ")
    });
    let logs = app.merged(&["logs", "files"]).1;
    for expected in [
        "/ctx/secret.txt=false",
        "/ctx/notes/keep.md=true",
        "/ctx/notes/drop.md=false",
        "/ctx/notes/other.txt=true",
        "/ctx/.cove=false",
        // Excluded, yet sent (the engine needs them), as Docker does; the
        // engine then leaves them out of `COPY`.
        "/ctx/Dockerfile=false",
        "/ctx/.dockerignore=false",
    ] {
        assert!(logs.contains(expected), "no `{expected}` in:\n{logs}");
    }
}

/// `cove down` at once after Ctrl-C of a foreground `cove up`, while its
/// daemon may still be exiting: `down` waits for it to let go of the store
/// instead of failing on the store's lock.
#[test]
fn down_right_after_ctrl_c_of_a_foreground_up_succeeds() {
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::write(
            tmp.path().join("compose.yaml"),
            "services:\n  web:\n    x-cove: {run: [sh, -c, 'trap \"sleep 0.5; exit 0\" TERM; sleep 300 & wait']}\n  other:\n    x-cove: {run: [sleep, '300']}\n",
        )
        .unwrap();
        let mut up = crate::up::Up::start(tmp.path(), &[]);
        up.wait_for_all(&["web-1 running", "other-1 running"], 30);
        assert_eq!(up.interrupt(), Some(0), "round {round}: {:#?}", up.seen);
        let out = crate::daemon::run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .current_dir(tmp.path())
                .arg("down")
                .env("NO_COLOR", "1"),
            60,
        );
        assert_eq!(out.code, Some(0), "round {round}: {out}");
    }
}

/// `down` keeps the logs (`cove logs` shows the last run's lines);
/// `down --volumes` deletes them with the data: the next run's `cove logs`
/// starts afresh.
#[test]
fn down_keeps_the_logs_and_down_volumes_deletes_them() {
    logs_kept_and_deleted(&App::new(TALKER));
}

/// The same under a host's daemon, which stays up (and keeps writing the
/// next run's lines where `cove logs` reads them).
#[test]
fn down_volumes_deletes_the_logs_under_a_host_daemon_too() {
    let host = crate::daemon::HostDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    let env = [
        ("COVE_DAEMON", Path::new("host")),
        ("COVE_HOST_DIR", host.dir.path()),
    ];
    logs_kept_and_deleted(&App::with_env(TALKER, &env));
}

const TALKER: &str =
    "services:\n  talker:\n    x-cove: {run: [sh, -c, 'echo said at $$(cat run); sleep 300']}\n";

fn logs_kept_and_deleted(app: &App) {
    let said = |n: &str| {
        fs_err::write(app.dir().join("run"), n).unwrap();
        cove_ok(app, &["up", "-d"]);
        eventually(15, &format!("run {n}'s line in `cove logs`"), || {
            app.merged(&["logs"]).1.contains(&format!("said at {n}"))
        });
    };
    said("one");
    cove_ok(app, &["down"]);
    let (code, kept) = app.merged(&["logs"]);
    assert_eq!(code, Some(0), "{kept}");
    assert!(
        kept.contains("said at one"),
        "`down` keeps the logs:\n{kept}"
    );
    said("two");
    let down = cove_ok(app, &["down", "--volumes"]);
    assert!(down.contains("deleting the logs"), "{down}");
    let (_, gone) = app.merged(&["logs"]);
    assert!(!gone.contains("said at"), "after `down --volumes`:\n{gone}");
    said("three");
    let (_, fresh) = app.merged(&["logs"]);
    assert!(
        !fresh.contains("said at one") && !fresh.contains("said at two"),
        "only the run after `down --volumes`:\n{fresh}"
    );
}

/// Health checks written for a container (`localhost`, `127.0.0.1`) pass
/// natively: they probe the replica's own address, where it listens.
#[test]
fn a_healthcheck_on_localhost_probes_the_replica_address() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: [python3, -m, http.server, --bind, $$HOST, $$PORT]
    expose: ["8080"]
    healthcheck:
      test: [CMD, curl, -fsS, -o, /dev/null, "http://localhost:8080/"]
      interval: 1s
      start_period: 60s
      start_interval: 200ms
  api:
    x-cove:
      run: [python3, -m, http.server, --bind, $$HOST, $$PORT]
    expose: ["8081"]
    healthcheck:
      test: [CMD-SHELL, "curl -fsS -o /dev/null http://127.0.0.1:8081/ || exit 1"]
      interval: 1s
      start_period: 60s
      start_interval: 200ms
"#,
    );
    let (code, out) = app.merged(&["up", "-d", "--wait-timeout", "60"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("web-1 healthy") && out.contains("api-1 healthy"),
        "{out}"
    );
}

/// A command that names a service as a host, as in a container
/// (`redis-cli -h cache`, `--host=cache`), reaches that service natively;
/// inside a script, where cove does not rewrite it, `up` says so and how
/// to fix it.
#[test]
fn a_service_named_as_a_host_in_a_command_is_its_address() {
    let app = App::new(
        r#"
services:
  cache:
    image: redis:7
  ping:
    x-cove:
      run: [redis-cli, -h, cache, ping]
    depends_on: {cache: {condition: service_healthy}}
  ping2:
    x-cove:
      run: [sh, -c, 'echo "ping2 $$(redis-cli -h "$${1#--host=}" ping)"', sh, --host=cache]
    depends_on: {cache: {condition: service_healthy}}
  script:
    x-cove:
      run: [sh, -c, 'redis-cli -h cache ping || true']
    depends_on: {cache: {condition: service_healthy}}
"#,
    );
    let (code, out) = app.merged(&["up", "-d", "--wait-timeout", "60"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning: service `script`: `x-cove.run` names service `cache` as a host (`-h cache`) inside a script")
            && out.contains("`environment: {CACHE_HOST: cache}`"),
        "{out}"
    );
    crate::daemon::eventually_ok(15, "the answers in `cove logs`", || {
        let logs = app.merged(&["logs", "ping", "ping2"]).1;
        match logs
            .lines()
            .any(|l| l.starts_with("ping-1 ") && l.ends_with("| PONG"))
            && logs.contains("ping2 PONG")
        {
            true => Ok(()),
            false => Err(logs),
        }
    });
}

/// The major version of the host's PostgreSQL server, as its recipe runs it.
fn host_postgres_major() -> u32 {
    let out = Command::new("postgres")
        .arg("--version")
        .output()
        .or_else(|_| {
            let mut found: Vec<u32> = fs_err::read_dir("/usr/lib/postgresql")?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            found.sort();
            let newest = found
                .last()
                .expect("a PostgreSQL under /usr/lib/postgresql");
            Command::new(format!("/usr/lib/postgresql/{newest}/bin/postgres"))
                .arg("--version")
                .output()
        })
        .expect("PostgreSQL installed (package postgresql)");
    let text = String::from_utf8_lossy(&out.stdout);
    // `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)`
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no version in `{text}`"))
}

/// `image: postgres:N` run natively by the host's PostgreSQL of another
/// major version: `up` warns, once, naming both.
#[test]
fn an_image_tag_other_than_the_host_binary_version_is_warned_about() {
    let have = host_postgres_major();
    let wanted = have + 1;
    let app = App::new(&format!(
        "services:\n  pg:\n    image: postgres:{wanted}\n    environment:\n      POSTGRES_PASSWORD: pw\n"
    ));
    let (code, out) = app.merged(&["up", "-d", "--wait-timeout", "120"]);
    assert_eq!(code, Some(0), "{out}");
    let warning = format!(
        "warning: service `pg`: `image: postgres:{wanted}` asks for version {wanted}, but natively it runs this machine's postgres {have} ("
    );
    assert_eq!(out.matches(&warning).count(), 1, "{out}");
    assert!(
        out.contains(&format!("write `image: postgres:{have}`")),
        "{out}"
    );
}

/// A program that binds 0.0.0.0:PORT, as in a container: natively its
/// replicas share the port, so the second dies with "address already in
/// use". `up` and `cove logs` say what to do: bind `$HOST`.
#[test]
fn binding_all_addresses_natively_gets_the_fix_not_a_mystery() {
    let app = App::new(
        r#"
services:
  web:
    x-cove:
      run: [python3, -c, "import os, socket, time; s = socket.socket(); s.bind(('0.0.0.0', int(os.environ['PORT']))); s.listen(); open('bound-' + os.environ['COVE_REPLICA'], 'w').close(); time.sleep(300)"]
    # Healthy once this replica has bound (not when another one answers
    # on its address).
    healthcheck:
      test: [CMD, test, -e, "bound-$$COVE_REPLICA"]
      interval: 1s
      start_period: 60s
      start_interval: 200ms
    deploy: {replicas: 2}
"#,
    );
    let (code, out) = app.merged(&["up", "-d", "--wait-timeout", "60"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Address already in use"), "{out}");
    let hint = |text: &str| {
        text.lines()
            .find(|l| l.contains("bind `$HOST` (this replica's address, 127."))
            .map(|l| l.contains("), not 0.0.0.0"))
            .unwrap_or(false)
    };
    assert!(hint(&out), "`up` says what to do:\n{out}");
    let (_, logs) = app.merged(&["logs", "web"]);
    assert!(hint(&logs), "`cove logs` says it too:\n{logs}");
}
