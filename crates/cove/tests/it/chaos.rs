//! Nothing wedges the daemon: a deploy that drops a service from the app
//! (the autoscaler once indexed the app by that name, panicked holding the
//! gateway's lock, and every later request panicked on the poisoned lock),
//! and random sequences of commands over random edits of a small app
//! (`proptest`, bounded), after each of which the daemon still answers and
//! has not panicked; at the end `cove down` leaves nothing running.
//! Real daemons and processes, loopback only, every wait bounded; an app
//! whose daemon no longer answers is cleaned up by killing that daemon (its
//! PID from the pidfile; its reaper then stops the replicas).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{App, Out, eventually, run_bounded};
use crate::up::alive;

/// `cove ARGS` in `dir`, killed after `secs`.
fn cove_in(dir: &Path, secs: u64, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1"),
        secs,
    )
}

fn daemon_log(dir: &Path) -> String {
    fs_err::read_to_string(dir.join(".cove/daemon.log")).unwrap_or_default()
}

/// A daemon's log for a failure's message, which must stay readable in a
/// CI log: its lines that tell of a panic, then its last 8000 characters
/// (every check reads the log whole).
fn log_tail(log: &str) -> String {
    let panics: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("panicked"))
        .take(5)
        .collect();
    let tail = match log.char_indices().rev().nth(8000) {
        Some((at, _)) => format!("[... {at} bytes before ...]\n{}", &log[at..]),
        None => log.to_string(),
    };
    if panics.is_empty() {
        tail
    } else {
        format!("{}\n[...]\n{tail}", panics.join("\n"))
    }
}

/// An [`App`] that is cleaned up even when its daemon no longer answers:
/// `cove down`, and if that fails, SIGKILL to the daemon (by the PID it
/// wrote), whose reaper stops the replicas; then a bounded wait until no
/// process of the app is left.
struct Guarded(App);

impl Drop for Guarded {
    fn drop(&mut self) {
        let dir = self.0.dir().to_path_buf();
        if !dir.join(".cove").exists() {
            return;
        }
        let down = cove_in(&dir, 60, &["down"]);
        if down.code != Some(0)
            && let Some(pid) = crate::daemon::daemon_pid_in(&dir).filter(|p| alive(*p))
        {
            eprintln!("`cove down` failed ({down}); killing the daemon {pid}");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.0.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `a` answers HTTP behind the gateway and is autoscaled; `b` sleeps.
const TWO: &str = r#"
services:
  a:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
      autoscale: {min: 1, max: 2, target_concurrency: 4}
    expose: ["8000"]
  b:
    x-cove: {run: sleep 600}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

/// `b` removed; `a` may now sleep after 1 s without requests.
const ONE: &str = r#"
services:
  a:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
      autoscale: {min: 0, max: 2, target_concurrency: 4, scale_down_after: 1s}
    expose: ["8000"]
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

#[test]
fn deploying_after_a_service_left_the_app_wedges_nothing() {
    let app = Guarded(App::new(TWO));
    let dir = app.0.dir().to_path_buf();
    let out = cove_in(&dir, 60, &["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out}");
    fs_err::write(dir.join("compose.yaml"), ONE).unwrap();
    let out = cove_in(&dir, 60, &["deploy", "a"]);
    assert_eq!(out.code, Some(0), "{out}");

    // A few autoscaler ticks (every 500 ms) later, the daemon still
    // answers every call, and nothing in it panicked.
    std::thread::sleep(Duration::from_secs(2));
    let ps = cove_in(&dir, 30, &["ps"]);
    assert_eq!(ps.code, Some(0), "`cove ps` after the deploy: {ps}");
    let routes = cove_in(&dir, 30, &["routes"]);
    assert_eq!(
        routes.code,
        Some(0),
        "`cove routes` after the deploy: {routes}\ndaemon.log:\n{}",
        daemon_log(&dir)
    );
    let log = daemon_log(&dir);
    assert!(!log.contains("panicked"), "daemon.log:\n{log}");

    // The autoscaler still runs: idle, `a` goes to sleep.
    eventually(20, "`a` to be scaled to zero by the autoscaler", || {
        let out = cove_in(&dir, 30, &["ps", "--format", "json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
        out.code == Some(0) && !rows.iter().any(|r| r["service"] == "a")
    });
    let (_, logs) = app.0.merged(&["logs", "a"]);
    assert!(logs.contains("autoscale: 1 → 0 replicas"), "{logs}");

    // `b`, out of the app but still running, goes with `down`.
    let down = cove_in(&dir, 60, &["down"]);
    assert_eq!(down.code, Some(0), "{down}");
    eventually(10, "no process of the app left after `down`", || {
        app.0.processes().is_empty()
    });
    let log = daemon_log(&dir);
    assert!(!log.contains("panicked"), "daemon.log:\n{log}");
}

/// A service planned with no replica (`deploy.replicas: 0`) has nothing to
/// wait for: `cove start` and `cove up -d` of it end at once (the property
/// test below found them waiting out their 300 s timeout).
#[test]
fn starting_a_service_without_replicas_waits_for_nothing() {
    let app = Guarded(App::new(
        r#"
services:
  a:
    x-cove: {run: sleep 600}
  off:
    x-cove: {run: sleep 600}
    deploy: {replicas: 0}
"#,
    ));
    let dir = app.0.dir().to_path_buf();
    let out = cove_in(&dir, 60, &["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out}");
    for args in [
        &["start", "off"][..],
        &["up", "-d", "off"],
        &["restart", "off"],
    ] {
        let started = Instant::now();
        let out = cove_in(&dir, 30, args);
        assert_eq!(
            out.code,
            Some(0),
            "`cove {}` (killed after 30 s: exit None): {out}",
            args.join(" ")
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{out}");
    }
    let down = cove_in(&dir, 60, &["down"]);
    assert_eq!(down.code, Some(0), "{down}");
}

/// A compose file of `services` (name, body), the gateway on a free port.
fn file_of(services: &[(&str, &str)]) -> String {
    let mut yaml = String::from("services:\n");
    for (name, body) in services {
        yaml += &format!("  {name}:\n{body}");
    }
    yaml + "x-cove:\n  gateway: {listen: \"127.0.0.1:0\"}\n"
}

/// A step of a fixed sequence: `cove ARGS` in `dir` must succeed.
fn step(dir: &Path, args: &[&str]) {
    let out = cove_in(dir, STEP_SECS, args);
    assert_eq!(out.code, Some(0), "`cove {}`: {out}", args.join(" "));
}

/// `up -d` waits for the revision it converges a service to. The property
/// test below found this sequence: `b` left the file (an orphan still
/// running its sleep), came back as a web server in a file `deploy a`
/// stored whole, and `start a` planned it so without running it; the last
/// `up -d` replaced `b` but waited for its old revision, which no longer
/// ran, until killed.
#[test]
fn up_waits_for_a_changed_service_it_converges_not_for_its_old_revision() {
    const HTTP: &str = "    x-cove:\n      run: [\"sh\", \"-c\", \"exec python3 -m http.server --bind $$HOST $$PORT\"]\n    expose: [\"8000\"]\n";
    const SLEEP: &str = "    x-cove: {run: sleep 600}\n";
    let file = file_of;
    let app = Guarded(App::new(&file(&[("a", HTTP), ("b", SLEEP)])));
    let dir = app.0.dir().to_path_buf();
    let step = |args: &[&str]| step(&dir, args);
    step(&["up", "-d"]);
    fs_err::write(dir.join("compose.yaml"), file(&[("a", HTTP)])).unwrap();
    step(&["run", "a", "true"]);
    fs_err::write(dir.join("compose.yaml"), file(&[("a", HTTP), ("b", HTTP)])).unwrap();
    step(&["deploy", "a"]);
    fs_err::write(
        dir.join("compose.yaml"),
        file(&[("a", HTTP), ("b", HTTP), ("d", HTTP)]),
    )
    .unwrap();
    step(&["start", "a"]);
    step(&["up", "-d"]);
    let ps = cove_in(&dir, 30, &["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&ps.stdout).unwrap_or_default();
    let b: Vec<_> = rows.iter().filter(|r| r["service"] == "b").collect();
    assert!(
        b.len() == 1 && b[0]["revision"] == 2,
        "`b` runs its second revision once `up -d` returned: {ps}"
    );
    step(&["down"]);
}

/// `up -d` after a rollback that changed nothing that runs: `deploy a`
/// of a change the replicas do not see (`x-cove.autoscale`), `rollback a`
/// ("already running; nothing to do", the service held at revision 1
/// while its replicas keep number 2), then `up -d` once `b` left the file.
/// The property test found `up -d` waiting for revision 1 until killed
/// when a fix of the test above looked only at revision numbers.
#[test]
fn up_after_a_rollback_that_changed_nothing_waits_for_what_runs() {
    const A: &str = "    x-cove:\n      run: [\"sh\", \"-c\", \"exec python3 -m http.server --bind $$HOST $$PORT\"]\n    expose: [\"8000\"]\n";
    const A_SCALED: &str = "    x-cove:\n      run: [\"sh\", \"-c\", \"exec python3 -m http.server --bind $$HOST $$PORT\"]\n      autoscale: {min: 1, max: 2, target_concurrency: 4}\n    expose: [\"8000\"]\n";
    const SLEEP: &str = "    x-cove: {run: sleep 600}\n";
    let file = file_of;
    let app = Guarded(App::new(&file(&[("a", A), ("b", SLEEP)])));
    let dir = app.0.dir().to_path_buf();
    let step = |args: &[&str]| step(&dir, args);
    step(&["up", "-d"]);
    fs_err::write(
        dir.join("compose.yaml"),
        file(&[("a", A_SCALED), ("b", SLEEP)]),
    )
    .unwrap();
    step(&["deploy", "a"]);
    step(&["rollback", "a"]);
    fs_err::write(dir.join("compose.yaml"), file(&[("a", A_SCALED)])).unwrap();
    step(&["up", "-d"]);
    step(&["down"]);
}

/// Service names the random apps use.
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `sleep 600`.
    Sleep,
    /// A Python HTTP server behind the gateway.
    Http,
}

#[derive(Clone, Debug)]
struct Svc {
    kind: Kind,
    replicas: u32,
    autoscale: bool,
    /// A service it depends on (one before it in [`NAMES`]: no cycles).
    dep: Option<usize>,
}

/// The app: services by their index in [`NAMES`].
type Model = std::collections::BTreeMap<usize, Svc>;

/// A service a step names: mostly one of the app's (the `n`th, counted
/// round), sometimes any name, which the app may lack.
#[derive(Clone, Copy, Debug)]
enum Target {
    Nth(usize),
    Named(usize),
}

impl Target {
    /// Its index in [`NAMES`].
    fn of(self, model: &Model) -> usize {
        match self {
            Target::Nth(k) if !model.is_empty() => *model.keys().nth(k % model.len()).unwrap_or(&0),
            Target::Nth(k) | Target::Named(k) => k,
        }
    }
}

/// An edit of compose.yaml; one that makes no sense for the app (a name it
/// lacks) leaves it as it is, and it always keeps one service, so that
/// every file loads and a failure is the daemon's, not the file's.
#[derive(Clone, Debug)]
enum Edit {
    Keep,
    Add(usize, Kind),
    Remove(Target),
    Rename(Target, usize),
    Replicas(Target, u32),
    ToggleAutoscale(Target),
    Depend(Target, Option<usize>),
}

#[derive(Clone, Debug)]
enum Cmd {
    Up(Option<Target>),
    Deploy(Option<Target>),
    Scale(Target, u32),
    Rollback(Target),
    Stop(Option<Target>),
    Start(Option<Target>),
    Run(Target),
    Down,
}

fn first_app() -> Model {
    let svc = |kind| Svc {
        kind,
        replicas: 1,
        autoscale: false,
        dep: None,
    };
    Model::from([(0, svc(Kind::Http)), (1, svc(Kind::Sleep))])
}

fn apply(model: &mut Model, edit: &Edit) {
    match *edit {
        Edit::Keep => {}
        Edit::Add(n, kind) => {
            model.entry(n).or_insert(Svc {
                kind,
                replicas: 1,
                autoscale: false,
                dep: None,
            });
        }
        Edit::Remove(t) => {
            if model.len() > 1 {
                model.remove(&t.of(model));
            }
        }
        Edit::Rename(from, to) if !model.contains_key(&to) => {
            let from = from.of(model);
            if let Some(svc) = model.remove(&from) {
                model.insert(to, svc);
            }
            for s in model.values_mut() {
                if s.dep == Some(from) {
                    s.dep = Some(to);
                }
            }
        }
        Edit::Rename(..) => {}
        Edit::Replicas(t, r) => {
            if let Some(s) = model.get_mut(&t.of(model)) {
                s.replicas = r;
            }
        }
        Edit::ToggleAutoscale(t) => {
            if let Some(s) = model.get_mut(&t.of(model)) {
                s.autoscale = !s.autoscale;
            }
        }
        Edit::Depend(t, dep) => {
            if let Some(s) = model.get_mut(&t.of(model)) {
                s.dep = dep;
            }
        }
    }
    // Dependencies on services the app has, earlier in NAMES.
    let names: Vec<usize> = model.keys().copied().collect();
    for (n, s) in model.iter_mut() {
        s.dep = s.dep.filter(|d| d < n && names.contains(d));
    }
}

fn compose(model: &Model) -> String {
    let mut yaml = String::from("services:\n");
    for (n, s) in model {
        yaml += &format!("  {}:\n    x-cove:\n", NAMES[*n]);
        yaml += match s.kind {
            Kind::Sleep => "      run: sleep 600\n",
            Kind::Http => {
                "      run: [\"sh\", \"-c\", \"exec python3 -m http.server --bind $$HOST $$PORT\"]\n"
            }
        };
        if s.autoscale {
            yaml +=
                "      autoscale: {min: 0, max: 2, target_concurrency: 4, scale_down_after: 1s}\n";
        }
        if s.kind == Kind::Http {
            yaml += "    expose: [\"8000\"]\n";
        }
        yaml += &format!("    deploy: {{replicas: {}}}\n", s.replicas);
        if let Some(d) = s.dep {
            yaml += &format!("    depends_on: [{}]\n", NAMES[d]);
        }
    }
    yaml + "x-cove:\n  gateway: {listen: \"127.0.0.1:0\"}\n"
}

fn args(cmd: &Cmd, model: &Model) -> Vec<String> {
    let name = |t: &Target| NAMES[t.of(model)].to_string();
    let v = |words: &[&str], n: Option<&Target>| {
        words
            .iter()
            .map(|w| w.to_string())
            .chain(n.map(name))
            .collect::<Vec<_>>()
    };
    match cmd {
        Cmd::Up(n) => v(&["up", "-d"], n.as_ref()),
        Cmd::Deploy(n) => v(&["deploy"], n.as_ref()),
        Cmd::Scale(n, r) => vec!["scale".into(), format!("{}={r}", name(n))],
        Cmd::Rollback(n) => v(&["rollback"], Some(n)),
        Cmd::Stop(n) => v(&["stop"], n.as_ref()),
        Cmd::Start(n) => v(&["start"], n.as_ref()),
        Cmd::Run(n) => vec!["run".into(), name(n), "true".into()],
        Cmd::Down => vec!["down".into()],
    }
}

/// Longest any one command of a case may take (it is killed then, and the
/// case fails).
const STEP_SECS: u64 = 60;

/// One case: `up -d`, then each step (an edit, a command), after each of
/// which the daemon still answers and has not panicked; at the end `cove
/// down` succeeds and leaves no process of the app.
fn run_case(steps: &[(Edit, Cmd)]) {
    let mut model = first_app();
    let app = Guarded(App::new(&compose(&model)));
    let dir = app.0.dir().to_path_buf();
    let mut transcript = String::new();
    let run = |args: &[String], transcript: &mut String| {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = cove_in(&dir, STEP_SECS, &words);
        let last = out.stderr.lines().last().unwrap_or_default().to_string();
        *transcript += &format!(
            "$ cove {} → exit {:?} in {:?}: {last}\n",
            words.join(" "),
            out.code,
            started.elapsed()
        );
        assert!(
            out.code.is_some(),
            "`cove {}` did not end within {STEP_SECS}s\n{transcript}",
            words.join(" ")
        );
        for broken in [
            "connection closed before message completed",
            "the daemon failed on",
        ] {
            assert!(
                !out.stderr.contains(broken),
                "`cove {}`: {broken}\n{transcript}\n{out}\ndaemon.log:\n{}",
                words.join(" "),
                log_tail(&daemon_log(&dir))
            );
        }
        // The daemon still answers, and nothing in it panicked.
        let ps = cove_in(&dir, 30, &["ps"]);
        assert_eq!(
            ps.code,
            Some(0),
            "`cove ps` after the steps:\n{transcript}\n{ps}\ndaemon.log:\n{}",
            log_tail(&daemon_log(&dir))
        );
        let log = daemon_log(&dir);
        assert!(
            !log.contains("panicked"),
            "the daemon panicked; steps:\n{transcript}\ndaemon.log:\n{}",
            log_tail(&log)
        );
    };
    run(&["up".into(), "-d".into()], &mut transcript);
    for (edit, cmd) in steps {
        apply(&mut model, edit);
        fs_err::write(dir.join("compose.yaml"), compose(&model)).unwrap();
        transcript += &format!(
            "# {edit:?}: {:?}\n",
            model.keys().map(|n| NAMES[*n]).collect::<Vec<_>>()
        );
        run(&args(cmd, &model), &mut transcript);
    }
    let down = cove_in(&dir, STEP_SECS, &["down"]);
    assert_eq!(
        down.code,
        Some(0),
        "the last `cove down`:\n{transcript}\n{down}\ndaemon.log:\n{}",
        log_tail(&daemon_log(&dir))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.0.processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = app.0.processes();
    assert!(
        left.is_empty(),
        "processes of the app left 10 s after `cove down`: {left:?}\n{transcript}"
    );
    let log = daemon_log(&dir);
    assert!(
        !log.contains("panicked"),
        "the daemon panicked; steps:\n{transcript}\ndaemon.log:\n{}",
        log_tail(&log)
    );
}

mod random {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed, TestRunner};

    use super::{Cmd, Edit, Kind, NAMES, Target, run_case};

    fn name() -> impl Strategy<Value = usize> {
        0..NAMES.len()
    }

    /// Mostly a service of the app, sometimes any name.
    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            4 => name().prop_map(Target::Nth),
            1 => name().prop_map(Target::Named),
        ]
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let kind = prop_oneof![Just(Kind::Sleep), Just(Kind::Http)];
        prop_oneof![
            2 => Just(Edit::Keep),
            2 => (name(), kind).prop_map(|(n, k)| Edit::Add(n, k)),
            2 => target().prop_map(Edit::Remove),
            2 => (target(), name()).prop_map(|(a, b)| Edit::Rename(a, b)),
            1 => (target(), 0..=3u32).prop_map(|(n, r)| Edit::Replicas(n, r)),
            1 => target().prop_map(Edit::ToggleAutoscale),
            1 => (target(), proptest::option::of(name())).prop_map(|(n, d)| Edit::Depend(n, d)),
        ]
    }

    fn cmd() -> impl Strategy<Value = Cmd> {
        prop_oneof![
            2 => proptest::option::of(target()).prop_map(Cmd::Up),
            3 => proptest::option::of(target()).prop_map(Cmd::Deploy),
            1 => (target(), 0..=3u32).prop_map(|(n, r)| Cmd::Scale(n, r)),
            1 => target().prop_map(Cmd::Rollback),
            1 => proptest::option::of(target()).prop_map(Cmd::Stop),
            1 => proptest::option::of(target()).prop_map(Cmd::Start),
            1 => target().prop_map(Cmd::Run),
            1 => Just(Cmd::Down),
        ]
    }

    /// Random sequences (`up -d`, then 1 to 7 steps) of commands over
    /// random edits of a small app; 24 cases (`PROPTEST_CASES` to change
    /// it), a few shrinking steps at most (each is a real app).
    #[test]
    fn random_commands_over_random_edits_never_wedge_the_daemon() {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(24);
        // A seed of its own, printed with a failure: `PROPTEST_RNG_SEED=N`
        // runs the same cases again.
        let seed = std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
        let mut runner = TestRunner::new(Config {
            cases,
            max_shrink_iters: 12,
            max_shrink_time: 120_000,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            ..Config::default()
        });
        let started = std::time::Instant::now();
        let result = runner.run(
            &proptest::collection::vec((edit(), cmd()), 1..=7),
            |steps| {
                run_case(&steps);
                Ok(())
            },
        );
        eprintln!(
            "{cases} random case(s) in {:?} (PROPTEST_RNG_SEED={seed})",
            started.elapsed()
        );
        if let Err(e) = result {
            panic!("{e}\n(again: PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases})");
        }
    }
}
