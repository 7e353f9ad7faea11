//! Compose's flags of the lifecycle commands (issue 19), end to end: `up`,
//! `down`, `stop`/`restart`, `run`, `build`, and the project options after
//! the subcommand. Real native processes; the container paths (`run` in a
//! container, `build --no-cache`, `down --rmi`) against the real engine
//! that `scripts/test` starts (`DOCKER_HOST`), with images built
//! `FROM scratch` around a static binary compiled here.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{App, eventually};
use crate::deploy::cove_ok;
use crate::up::Up;

/// `api` runs; `job` ends with code 3 after `api` is up; `stubborn`
/// ignores SIGTERM (only SIGKILL ends it) and has a long grace period.
const APP: &str = r#"
services:
  api:
    environment: {VERSION: "1"}
    x-cove:
      run: ["sh", "-c", "echo api up $$VERSION; exec sleep 300"]
  job:
    depends_on: [api]
    x-cove:
      run: ["sh", "-c", "sleep 1; echo job done; exit 3"]
      # Its exit always comes before it would count as ready.
      ready_after: 5s
  stubborn:
    profiles: [slow]
    stop_grace_period: 60s
    x-cove:
      run: ["sh", "-c", "trap '' TERM; echo stubborn up; while true; do sleep 0.2; done"]
"#;

fn pid_of(app: &App, service: &str) -> Option<u64> {
    app.ps()
        .into_iter()
        .find(|r| r["service"] == service && r["state"] == "running")
        .and_then(|r| r["pid"].as_u64())
}

fn running(app: &App, service: &str) -> usize {
    app.ps()
        .into_iter()
        .filter(|r| r["service"] == service && r["state"] == "running")
        .count()
}

/// `cove ARGS` in `dir`, stdout and stderr apart (killed after 120 s).
fn cove_in(dir: &Path, args: &[&str]) -> crate::daemon::Out {
    crate::daemon::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1"),
        120,
    )
}

#[test]
fn project_options_work_after_the_subcommand() {
    let app = App::new(APP);
    let dir = app.dir();
    fs_err::write(
        dir.join("other.yaml"),
        "services:\n  solo:\n    x-cove: {run: [\"sh\", \"-c\", \"echo solo $$WORD; exec sleep 300\"]}\n    environment: {WORD: \"${WORD:-unset}\"}\n",
    )
    .unwrap();
    fs_err::write(dir.join("words.env"), "WORD=from-env-file\n").unwrap();
    // `-f`, `--env-file`, `--profile`, `--project-directory` after it.
    let out = cove_ok(&app, &["config", "-f", "other.yaml", "--services"]);
    assert_eq!(out.trim(), "solo", "{out}");
    let out = cove_ok(
        &app,
        &[
            "config",
            "-f",
            "other.yaml",
            "--env-file",
            "words.env",
            "--format",
            "json",
        ],
    );
    assert!(out.contains("from-env-file"), "{out}");
    let out = cove_ok(&app, &["config", "--services", "--profile", "slow"]);
    assert!(out.contains("stubborn"), "{out}");
    let out = cove_ok(&app, &["config", "--services"]);
    assert!(!out.contains("stubborn"), "{out}");
    // The project directory's `.env` is read (run from elsewhere).
    fs_err::create_dir_all(dir.join("sub")).unwrap();
    fs_err::write(dir.join("sub/.env"), "WORD=from-dot-env\n").unwrap();
    let out = cove_in(
        dir,
        &[
            "config",
            "--format",
            "json",
            "--project-directory",
            "sub",
            "-f",
            "other.yaml",
            "-p",
            "pd",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("from-dot-env"), "{out}");
    // `up -f`, then `ps -p NAME` names that project (`-p` is not ps's).
    let out = cove_ok(&app, &["up", "-f", "other.yaml", "-p", "elsewhere", "-d"]);
    assert!(out.contains("solo-1"), "{out}");
    let out = cove_ok(
        &app,
        &[
            "ps",
            "-p",
            "elsewhere",
            "-f",
            "other.yaml",
            "--format",
            "json",
        ],
    );
    assert!(out.contains("\"solo\""), "{out}");
    // The default project (compose.yaml) runs nothing.
    assert!(app.ps().is_empty());
    cove_ok(&app, &["down", "-f", "other.yaml", "-p", "elsewhere"]);
    let out = cove_ok(
        &app,
        &[
            "ps",
            "-p",
            "elsewhere",
            "-f",
            "other.yaml",
            "--format",
            "json",
        ],
    );
    assert!(!out.contains("\"solo\""), "{out}");
    // `logs -f` stays logs' follow: `-f` takes no file there (it would
    // fail on `api` as a file name otherwise), and it follows until killed.
    let start = Instant::now();
    let followed = crate::daemon::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(["logs", "-f", "api"])
            .env("NO_COLOR", "1"),
        3,
    );
    assert!(
        followed.code.is_none() && start.elapsed() >= Duration::from_secs(3),
        "followed until killed: {followed}"
    );
    // An unknown option is still refused, by clap, naming it.
    let (code, out) = app.merged(&["ps", "--no-such-flag"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--no-such-flag"), "{out}");
}

#[test]
fn run_takes_composes_options_before_service_and_the_command_after_it() {
    let app = App::new(APP);
    // `--rm` accepted; what follows SERVICE is the command, flags and all.
    let out = cove_in(
        app.dir(),
        &[
            "run",
            "--rm",
            "--no-deps",
            "job",
            "echo",
            "hi",
            "--flag",
            "-p",
            "-f",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), "hi --flag -p -f", "{out}");
    assert!(!out.stderr.contains("-- --rm"), "{out}");
    // A command after SERVICE whose first word is a flag of run's.
    let out = cove_in(app.dir(), &["run", "--no-deps", "job", "--rm"]);
    assert_ne!(out.code, Some(0), "`--rm` is the command: {out}");
    assert!(out.stderr.contains("cannot run `--rm`"), "{out}");
    // -w, -e, --name, -T, -i, --entrypoint.
    let tmp = tempfile::tempdir().unwrap();
    let out = cove_in(
        app.dir(),
        &[
            "run",
            "-T",
            "-i",
            "--no-deps",
            "-w",
            &tmp.path().display().to_string(),
            "-e",
            "X=1",
            "--name",
            "once",
            "job",
            "sh",
            "-c",
            "pwd; echo $X $COVE_REPLICA",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout.trim(),
        format!(
            "{}\n1 once",
            fs_err::canonicalize(tmp.path()).unwrap().display()
        ),
        "{out}"
    );
    let out = cove_in(
        app.dir(),
        &[
            "run",
            "--no-deps",
            "--entrypoint",
            "echo entry",
            "job",
            "a",
            "b",
        ],
    );
    assert_eq!(out.stdout.trim(), "entry a b", "{out}");
    // The one-off's exit code is cove's; its dependencies are started.
    let out = cove_in(app.dir(), &["run", "job"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stdout.contains("job done"), "{out}");
    assert_eq!(running(&app, "api"), 1);
    // -u: as root, another user (nobody); else only oneself.
    let me = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let who = if me.trim() == "0" {
        "nobody"
    } else {
        me.trim()
    };
    let out = cove_in(
        app.dir(),
        &["run", "--no-deps", "-u", who, "-w", "/", "job", "id", "-un"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let expected = String::from_utf8(
        Command::new("id")
            .args(["-un", who])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(out.stdout.trim(), expected.trim(), "{out}");
    let out = cove_in(
        app.dir(),
        &["run", "--no-deps", "-u", "no-such-user-x", "job", "true"],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("no user `no-such-user-x`"), "{out}");
    // -d: in the background, its pid printed.
    let marker = app.dir().join("detached.txt");
    let out = cove_in(
        app.dir(),
        &[
            "run",
            "-d",
            "--no-deps",
            "job",
            "sh",
            "-c",
            &format!("sleep 0.5; echo bg > {}", marker.display()),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.trim().parse::<u32>().is_ok(), "a pid: {out}");
    eventually(10, "the detached one-off's file", || marker.exists());
    // What has no meaning for a process is said, in one line each.
    let out = cove_in(
        app.dir(),
        &[
            "run",
            "--no-deps",
            "-p",
            "8080:80",
            "--service-ports",
            "-l",
            "a=b",
            "job",
            "true",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    for flag in ["cove: -p:", "cove: --service-ports:", "cove: -l:"] {
        assert_eq!(out.stderr.matches(flag).count(), 1, "{flag}: {out}");
    }
    // Bad values: what is wrong, with an example.
    let out = cove_in(
        app.dir(),
        &["run", "--no-deps", "-p", "x:80", "job", "true"],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("e.g. `-p 8080:80`"), "{out}");
    let out = cove_in(
        app.dir(),
        &["run", "--no-deps", "-l", "nolabel", "job", "true"],
    );
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn up_exit_code_from_and_abort_on_container_exit_stop_everything() {
    let app = App::new(APP);
    let mut up = Up::start(app.dir(), &["--exit-code-from", "job"]);
    assert_eq!(up.wait_exit(60), Some(3), "{}", up.seen.join("\n"));
    assert!(
        up.seen
            .iter()
            .any(|l| l.contains("job-1 exited; stopping every service")),
        "{}",
        up.seen.join("\n")
    );
    assert!(app.processes().is_empty(), "api stopped too");
    // Without --exit-code-from: the exit code of the replica that ended.
    let mut up = Up::start(app.dir(), &["--abort-on-container-exit"]);
    assert_eq!(up.wait_exit(60), Some(3), "{}", up.seen.join("\n"));
    // Not a service of ours: refused before anything starts.
    let (code, out) = app.merged(&["up", "--exit-code-from", "nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--exit-code-from: no service `nope`"), "{out}");
}

#[test]
fn up_output_flags_shape_the_foreground() {
    let app = App::new(APP);
    let mut up = Up::start(
        app.dir(),
        &[
            "--no-log-prefix",
            "--no-color",
            "--no-attach",
            "job",
            "api",
            "job",
        ],
    );
    up.wait_for("api-1 running", 30);
    up.wait_for("job-1 failed", 30);
    up.interrupt();
    assert!(
        up.seen.iter().any(|l| l == "api up 1"),
        "{}",
        up.seen.join("\n")
    );
    assert!(
        !up.seen.iter().any(|l| l.contains("job done")),
        "job's output is not attached: {}",
        up.seen.join("\n")
    );
    let mut up = Up::start(app.dir(), &["--attach", "job", "api", "job"]);
    up.wait_for("job-1 failed", 30);
    up.interrupt();
    assert!(
        up.seen.iter().any(|l| l.ends_with("| job done")),
        "{}",
        up.seen.join("\n")
    );
    assert!(
        !up.seen.iter().any(|l| l.contains("| api up")),
        "{}",
        up.seen.join("\n")
    );
}

/// `cove up ARGS` on a terminal (util-linux `script`), colours allowed;
/// what it printed there.
fn up_on_a_terminal(app: &App, args: &str) -> String {
    let out = crate::daemon::run_bounded(
        Command::new("script")
            .args([
                "-qec",
                &format!("{} up {args}", env!("CARGO_BIN_EXE_cove")),
                "/dev/null",
            ])
            .current_dir(app.dir())
            .env_remove("NO_COLOR"),
        60,
    );
    assert_eq!(out.code, Some(3), "{out}");
    out.stdout
}

#[test]
fn up_no_color_on_a_terminal() {
    let app = App::new(APP);
    let coloured = up_on_a_terminal(&app, "--exit-code-from job");
    assert!(
        coloured.contains("\x1b[33mjob-1 |\x1b[0m job done"),
        "{coloured:?}"
    );
    let plain = up_on_a_terminal(&app, "--no-color --exit-code-from job");
    assert!(plain.contains("job-1 | job done"), "{plain:?}");
    assert!(!plain.contains("\x1b[3"), "{plain:?}");
}

#[test]
fn up_wait_scale_no_deps_and_no_start() {
    let app = App::new(APP);
    // --no-start: checked and planned; nothing runs, no daemon.
    let out = cove_ok(&app, &["up", "--no-start"]);
    assert!(out.contains("cove: --no-start:"), "{out}");
    assert!(app.daemon_pid().is_none(), "{out}");
    // --no-deps: job alone (api, its dependency, not started).
    let (code, out) = app.merged(&["up", "-d", "--no-deps", "job"]);
    assert_eq!(code, Some(1), "job exits 3: {out}");
    assert!(out.contains("job-1 failed: exited with code 3"), "{out}");
    assert!(!out.contains("api-1"), "{out}");
    assert_eq!(running(&app, "api"), 0);
    // --wait (as -d) with --wait-timeout, and --scale.
    let out = cove_ok(
        &app,
        &[
            "up",
            "--wait",
            "--wait-timeout",
            "60",
            "--scale",
            "api=3",
            "api",
        ],
    );
    assert!(out.contains("api-3 running"), "{out}");
    assert_eq!(running(&app, "api"), 3);
    // --wait-timeout bounds --wait.
    let never = App::new(
        "services:\n  never:\n    x-cove: {run: [\"sleep\", \"300\"]}\n    healthcheck: {test: [\"CMD\", \"false\"], interval: 1s, retries: 1000}\n",
    );
    let start = Instant::now();
    let (code, out) = never.merged(&["up", "--wait", "--wait-timeout", "2"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}: {out}",
        start.elapsed()
    );
    let (code, out) = app.merged(&["up", "--scale", "api", "api"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("is not SERVICE=N"), "{out}");
    let (code, out) = app.merged(&["up", "--scale", "nope=2"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no service `nope`"), "{out}");
}

#[test]
fn up_force_recreate_and_no_recreate() {
    let app = App::new(APP);
    cove_ok(&app, &["up", "-d", "api"]);
    let first = pid_of(&app, "api").unwrap();
    // Nothing changed: `up` leaves it; --force-recreate replaces it.
    cove_ok(&app, &["up", "-d", "api"]);
    assert_eq!(pid_of(&app, "api"), Some(first));
    cove_ok(&app, &["up", "-d", "--force-recreate", "api"]);
    let second = pid_of(&app, "api").unwrap();
    assert_ne!(second, first, "-d waits for the new replica");
    // Its definition changed: --no-recreate leaves it; `up` replaces it.
    let changed = APP.replace("VERSION: \"1\"", "VERSION: \"2\"");
    fs_err::write(app.dir().join("compose.yaml"), changed).unwrap();
    cove_ok(&app, &["up", "-d", "--no-recreate", "api"]);
    assert_eq!(pid_of(&app, "api"), Some(second));
    cove_ok(&app, &["up", "-d", "api"]);
    eventually(30, "api replaced with VERSION 2", || {
        pid_of(&app, "api").is_some_and(|p| p != second)
            && app.merged(&["logs", "api"]).1.contains("api up 2")
    });
    let (code, out) = app.merged(&["up", "--force-recreate", "--no-recreate"]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn the_stop_timeout_of_stop_restart_down_and_up() {
    let app = App::new(APP);
    let quick = |args: &[&str]| {
        let start = Instant::now();
        cove_ok(&app, args);
        let took = start.elapsed();
        // Its own grace is 60 s: only -t 1 ends it this soon.
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
    };
    cove_ok(&app, &["--profile", "slow", "up", "-d", "stubborn"]);
    quick(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(running(&app, "stubborn"), 0);
    cove_ok(&app, &["start", "stubborn"]);
    let before = pid_of(&app, "stubborn").unwrap();
    quick(&["restart", "--timeout", "1", "stubborn"]);
    assert_ne!(pid_of(&app, "stubborn"), Some(before));
    // `up -t`: the replicas it replaces (its definition changed).
    let old = pid_of(&app, "stubborn").unwrap();
    let changed = APP.replace("echo stubborn up;", "echo stubborn up again;");
    fs_err::write(app.dir().join("compose.yaml"), changed).unwrap();
    quick(&["--profile", "slow", "up", "-d", "-t", "1", "stubborn"]);
    eventually(10, "the replaced replica killed after 1 s", || {
        !crate::up::alive(u32::try_from(old).unwrap())
    });
    fs_err::write(app.dir().join("compose.yaml"), APP).unwrap();
    quick(&["down", "-t", "1"]);
    assert!(app.processes().is_empty());
    // `up -t`: the foreground's stop at Ctrl-C.
    let mut up = Up::start(app.dir(), &["--profile", "slow", "-t", "1", "stubborn"]);
    up.wait_for("stubborn up", 30);
    let start = Instant::now();
    assert_eq!(up.interrupt(), Some(0), "{}", up.seen.join("\n"));
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

/// A native service whose `x-cove.build` counts its runs.
const BUILT: &str = r#"
services:
  web:
    x-cove:
      build: ["sh", "-c", "echo building; echo x >> builds.txt"]
      run: ["sh", "-c", "echo web up; exec sleep 300"]
  broken:
    profiles: [broken]
    x-cove:
      build: ["sh", "-c", "echo step one; echo it broke >&2; exit 4"]
      run: ["sleep", "300"]
"#;

fn builds(app: &App) -> usize {
    fs_err::read_to_string(app.dir().join("builds.txt"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn build_runs_native_builds_and_up_build_builds_again() {
    let app = App::new(BUILT);
    // `cove build`: the native `x-cove.build` here, nothing started.
    let out = cove_ok(&app, &["build"]);
    assert!(
        out.contains("web | building") && out.contains("cove: built web"),
        "{out}"
    );
    assert_eq!(builds(&app), 1);
    assert!(app.daemon_pid().is_none());
    let out = cove_in(app.dir(), &["build", "-q", "web"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr.trim(), "", "-q prints nothing: {out}");
    assert_eq!(builds(&app), 2);
    let out = cove_in(app.dir(), &["build", "--no-cache", "--pull", "web"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("cove: --no-cache/--pull:"), "{out}");
    // A failed build: its exit code, and with -q its last lines.
    let out = cove_in(app.dir(), &["--profile", "broken", "build", "-q", "broken"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("broken | it broke") && out.stderr.contains("exited with code 4"),
        "{out}"
    );
    // `up` builds at a first start, not for what runs; `--build` does.
    let n = builds(&app);
    cove_ok(&app, &["up", "-d"]);
    assert_eq!(builds(&app), n + 1);
    let pid = pid_of(&app, "web").unwrap();
    cove_ok(&app, &["up", "-d"]);
    assert_eq!(builds(&app), n + 1);
    // `up -d --build` returns once what ran is built again and rolled out
    // (or found unchanged), not before.
    let out = cove_ok(&app, &["up", "-d", "--build"]);
    assert_eq!(builds(&app), n + 2, "{out}");
    assert!(out.contains("cove: web: "), "the rollout's outcome: {out}");
    // Flags about images: said, in one line each, natively.
    let out = cove_ok(
        &app,
        &["up", "-d", "--no-build", "--pull", "always", "--quiet-pull"],
    );
    for flag in ["cove: --no-build:", "cove: --pull:", "cove: --quiet-pull:"] {
        assert_eq!(out.matches(flag).count(), 1, "{flag}: {out}");
    }
    let _ = pid;
    let out = cove_ok(&app, &["down", "--rmi", "all"]);
    assert!(
        out.contains("cove: --rmi: no service runs as a container"),
        "{out}"
    );
}

/// The one-off container's program: prints its arguments, working
/// directory, user and a variable; with `serve`, listens on port 80.
const PROBE: &str = r#"
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let l = std::net::TcpListener::bind("0.0.0.0:80").unwrap();
        println!("serving");
        for c in l.incoming() {
            use std::io::Write;
            let mut c = c.unwrap();
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nfrom the one-off");
        }
        return;
    }
    let cwd = std::env::current_dir().unwrap();
    let uid = std::fs::read_to_string("/proc/self/status").unwrap().lines()
        .find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap().to_string();
    println!("args={} cwd={} uid={} x={}", args.join(" "), cwd.display(), uid,
        std::env::var("X").unwrap_or_default());
    eprintln!("to stderr");
    std::process::exit(args.first().and_then(|a| a.strip_prefix("exit=")).and_then(|c| c.parse().ok()).unwrap_or(0));
}
"#;

const CONTAINERS: &str = r#"
services:
  tool:
    build: ./tool
    ports: ["PUBLISHED:80"]
    entrypoint: ["/app"]
    command: ["default"]
  pulled:
    profiles: [pull]
    image: cove-flags-nowhere:1
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loopback port free now (for a file to name).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn run_build_and_down_rmi_in_containers() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    let published = free_port();
    let app = App::new(&CONTAINERS.replace("PUBLISHED", &published.to_string()));
    let dir = app.dir();
    crate::containers::static_binary(&dir.join("tool"), PROBE);
    fs_err::write(
        dir.join("tool/Dockerfile"),
        "FROM scratch\nCOPY app /app\nWORKDIR /work\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    // `build`: the engine's cache, then --no-cache.
    let out = cove_ok(&app, &["build", "tool"]);
    assert!(out.contains("cove: built cove-"), "{out}");
    let out = cove_ok(&app, &["build", "tool"]);
    assert!(out.contains("Using cache"), "{out}");
    let out = cove_ok(&app, &["build", "--no-cache", "tool"]);
    assert!(
        out.contains("COPY app /app") && !out.contains("Using cache"),
        "{out}"
    );
    // `run` in a container: the command after SERVICE, its exit code,
    // stdout and stderr apart; removed when it ends.
    let out = cove_in(
        dir,
        &[
            "run", "--rm", "-e", "X=1", "-w", "/tmp", "-u", "1234", "tool", "exit=5", "--flag",
        ],
    );
    let project = fs_err::canonicalize(dir.join(".cove")).unwrap();
    let label = format!("label=dev.cove.project={}", project.display());
    assert_eq!(out.code, Some(5), "{out}");
    assert_eq!(
        out.stdout.trim(),
        "args=exit=5 --flag cwd=/tmp uid=1234 x=1",
        "{out}"
    );
    assert_eq!(out.stderr.trim().lines().last(), Some("to stderr"), "{out}");
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &label]),
        "",
        "nothing left"
    );
    // The service's command when none is given.
    let out = cove_in(dir, &["run", "tool"]);
    assert!(out.stdout.contains("args=default cwd=/work"), "{out}");
    // --entrypoint.
    let out = cove_in(dir, &["run", "--entrypoint", "/app entry", "tool", "x"]);
    assert!(out.stdout.contains("args=entry x"), "{out}");
    // -d, --name, -l, -p: a container of that name, labelled, published.
    let port = free_port();
    let out = cove_in(
        dir,
        &[
            "run",
            "-d",
            "--name",
            "flags-oneoff",
            "-l",
            "team=blue",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "tool",
            "serve",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), "flags-oneoff", "{out}");
    assert_eq!(
        docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"team\"}} {{.State.Running}}",
            "flags-oneoff"
        ]),
        "blue true"
    );
    let answer = crate::daemon::run_bounded(
        Command::new("docker").args([
            "inspect",
            "--format",
            "{{json .HostConfig.PortBindings}}",
            "flags-oneoff",
        ]),
        30,
    );
    assert!(
        answer.stdout.contains(&format!("\"HostPort\":\"{port}\"")),
        "{answer}"
    );
    // --service-ports: the service's `ports:`.
    let out = cove_in(
        dir,
        &[
            "run",
            "-d",
            "--name",
            "flags-ports",
            "--service-ports",
            "tool",
            "serve",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let bindings = docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig.PortBindings}}",
        "flags-ports",
    ]);
    assert!(
        bindings.contains(&format!("\"HostPort\":\"{published}\"")),
        "{bindings}"
    );
    // `down` removes the one-offs left; `--rmi local` the image built here.
    let image = docker(&[
        "images",
        "--filter",
        &label,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert!(image.contains("cove-"), "{image}");
    let out = cove_ok(&app, &["down", "--rmi", "local"]);
    assert!(out.contains("cove: removing the image cove-"), "{out}");
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &label]),
        "",
        "one-offs removed"
    );
    assert_eq!(
        docker(&["images", "-q", "--filter", &label]),
        "",
        "the built images removed"
    );
    // `up --no-start`: the missing image built, nothing started.
    let out = cove_ok(&app, &["up", "--no-start"]);
    assert!(
        out.contains("cove: building tool") && out.contains("cove: --no-start:"),
        "{out}"
    );
    assert_ne!(docker(&["images", "-q", "--filter", &label]), "");
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "");
    assert!(app.daemon_pid().is_none(), "{out}");
    // `--pull never` refuses a missing image; `--pull always` pulls it
    // (here there is no registry: it fails, saying so), quietly with
    // `--quiet-pull`.
    let (code, out) = app.merged(&["up", "--profile", "pull", "--pull", "never", "-d", "pulled"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--pull never forbids pulling it"), "{out}");
    let (code, out) = app.merged(&[
        "up",
        "--profile",
        "pull",
        "--pull",
        "always",
        "-d",
        "pulled",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cove: pulling cove-flags-nowhere:1"), "{out}");
    let (code, out) = app.merged(&[
        "up",
        "--profile",
        "pull",
        "--pull",
        "always",
        "--quiet-pull",
        "-d",
        "pulled",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("cove: pulling"), "{out}");
    // `--rmi all`: every image of theirs.
    let out = cove_ok(&app, &["down", "--rmi", "all"]);
    assert!(out.contains("cove: removing the image cove-"), "{out}");
    assert_eq!(docker(&["images", "-q", "--filter", &label]), "");
}
