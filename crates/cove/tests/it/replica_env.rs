//! Shared-host safety tests (issue 26): see attack.rs. What replicas get
//! of the daemon's environment, secrets kept out of command lines, and the
//! warnings and access log settings that keep addresses, routes and
//! tokens from whoever should not see them. Real processes; every wait is
//! bounded; every app is brought down when its test ends, even on failure.

use std::path::Path;

use crate::attack::{as_nobody, as_root, text};
use crate::daemon::{App, eventually};
use crate::gateway::{http, json, wait_for_targets};

/// What the daemon's environment holds that no replica may see.
const LEAKS: [(&str, &str); 3] = [
    ("AWS_SECRET_ACCESS_KEY", "leak123"),
    ("COVE_IDENTITY", "/some/path"),
    ("SOME_RANDOM", "x"),
];

fn with_leaks(yaml: &str) -> App {
    let env: Vec<(&str, &Path)> = LEAKS.iter().map(|(k, v)| (*k, Path::new(v))).collect();
    App::with_env(yaml, &env)
}

/// The `NAME=value` lines of `text` that name a variable of [`LEAKS`].
fn leaked(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| LEAKS.iter().any(|(k, _)| l.contains(&format!("{k}="))))
        .collect()
}

const ENV_APP: &str = r#"
services:
  web:
    environment:
      GREETING: hello
    healthcheck:
      test: ["CMD", "sh", "-c", "env > probe-env.txt"]
      interval: 200ms
      retries: 50
    x-cove:
      build: [sh, -c, "env > build-env.txt"]
      run: [sh, -c, "env; echo listed; exec sleep 300"]
"#;

#[test]
fn replicas_probes_and_builds_get_an_allowlist_of_the_daemons_environment() {
    let app = with_leaks(ENV_APP);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let logs = || app.merged(&["logs", "web"]).1;
    eventually(30, "the replica lists its environment", || {
        logs().lines().any(|l| l.ends_with("| listed"))
    });
    let replica = logs();
    assert!(leaked(&replica).is_empty(), "{replica}");
    for wanted in ["| PATH=", "| HOME=", "| GREETING=hello"] {
        assert!(replica.contains(wanted), "no {wanted} in:\n{replica}");
    }
    for own in [
        "HOST=127.",
        "PORT=8080",
        "COVE_SERVICE=web",
        "COVE_PROJECT=",
    ] {
        assert!(replica.contains(own), "no {own} in:\n{replica}");
    }
    let probe = app.dir().join("probe-env.txt");
    eventually(30, "the health check ran", || probe.is_file());
    for file in [probe, app.dir().join("build-env.txt")] {
        let env = fs_err::read_to_string(&file).unwrap();
        assert!(leaked(&env).is_empty(), "{}:\n{env}", file.display());
        assert!(env.contains("PATH="), "{}:\n{env}", file.display());
        assert!(env.contains("GREETING=hello"), "{}:\n{env}", file.display());
    }
}

/// A secret, from a file, that the service also gets as `API_TOKEN`.
fn secret_app(run: &str) -> String {
    format!(
        r#"
services:
  web:
    secrets:
      - source: api_token
        x-cove: {{env: API_TOKEN}}
    x-cove:
      run: {run}
secrets:
  api_token:
    file: ./token.txt
"#
    )
}

const TOKEN: &str = "tok-3f9c51d2-argv";

/// Live processes whose environment names a project under `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let marker = format!("COVE_PROJECT={}", dir.display());
    crate::daemon::processes_whose_env(|v| v.starts_with(marker.as_bytes()))
}

#[test]
fn a_secret_variable_in_a_command_is_a_plan_error_and_nothing_starts() {
    let app = App::new(&secret_app(
        r#"[sh, -c, "curl -H 'Authorization: $$API_TOKEN' http://example.test; sleep 300"]"#,
    ));
    fs_err::write(app.dir().join("token.txt"), TOKEN).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    for part in [
        "service `web`",
        "`x-cove.run`",
        "`$API_TOKEN`",
        "secret `api_token`",
        "/proc/PID/cmdline",
        "hint: read `API_TOKEN` in the program",
        "$COVE_SECRETS/api_token",
    ] {
        assert!(out.contains(part), "no {part:?} in:\n{out}");
    }
    assert!(!out.contains(TOKEN), "{out}");
    assert!(!app.dir().join(".cove/daemon.pid").exists(), "{out}");
    assert!(processes_under(app.dir()).is_empty());
    // `cove config --addresses` plans the app too, and says the same.
    let (code, out) = app.merged(&["config", "--addresses"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("secret `api_token`"), "{out}");
    // In an exec health check (cove runs it and expands `$VAR` there too),
    // with a harmless command: the same refusal, naming the health check.
    let app = App::new(&secret_app(
        "[sleep, \"300\"]\n    healthcheck:\n      test: [CMD, sh, -c, \"echo $$API_TOKEN\"]",
    ));
    fs_err::write(app.dir().join("token.txt"), TOKEN).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    for part in [
        "service `web`",
        "`healthcheck.test` names `$API_TOKEN`",
        "secret `api_token`",
        "hint: read `API_TOKEN` in the program",
    ] {
        assert!(out.contains(part), "no {part:?} in:\n{out}");
    }
    assert!(!out.contains("`x-cove.run`"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
    assert!(!app.dir().join(".cove/daemon.pid").exists(), "{out}");
    assert!(processes_under(app.dir()).is_empty());
}

#[test]
fn no_command_line_holds_a_secret_value() {
    if !as_root("no_command_line_holds_a_secret_value") {
        return;
    }
    // The program reads the variable itself; the file's path (not its
    // value) may be on its command line.
    let app = App::new(&secret_app(
        r#"[python3, -c, "import os, sys, time; t = os.environ['API_TOKEN']; f = open(sys.argv[1]).read(); print('ready', t == f, flush=True); time.sleep(300)", /run/secrets/api_token]"#,
    ));
    fs_err::write(app.dir().join("token.txt"), TOKEN).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    eventually(30, "the replica read its secret", || {
        app.merged(&["logs", "web"]).1.contains("ready True")
    });
    let pids = app.processes();
    assert!(!pids.is_empty());
    // Every command line on the host, as an unprivileged user reads them.
    let attack = as_nobody(
        Path::new("/"),
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null",
    );
    let seen = String::from_utf8_lossy(&attack.stdout);
    assert!(
        seen.contains("/api_token"),
        "the replica's command line was read: {}",
        text(&attack)
    );
    assert!(!seen.contains(TOKEN), "{}", text(&attack));
    for pid in pids {
        let own = as_nobody(Path::new("/"), &format!("cat /proc/{pid}/cmdline"));
        assert!(!String::from_utf8_lossy(&own.stdout).contains(TOKEN));
    }
}

/// A replica's command (YAML flow list) that listens on `ports` of its
/// address, as a service declaring them must to be ready, and idles.
fn listens(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[python3, -c, \"import os, socket, sys, time; s = [socket.create_server((os.environ['HOST'], int(p))) for p in sys.argv[1:]]; time.sleep(300)\", {}]",
        ports.join(", ")
    )
}

#[test]
fn metrics_off_loopback_are_warned_about_by_up_and_config() {
    let yaml = |metrics: &str| {
        format!(
            "services:\n  web:\n    x-cove: {{run: {}}}\n    expose: [\"8000\"]\nx-cove:\n  gateway: {{listen: \"127.0.0.1:0\", metrics: \"{metrics}\"}}\n",
            listens(&[8000])
        )
    };
    let warning = "warning: `x-cove.gateway.metrics` listens on 0.0.0.0:0, not a loopback address";
    let open = App::new(&yaml("0.0.0.0:0"));
    let (code, out) = open.merged(&["config"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(warning), "{out}");
    assert!(out.contains("hint: listen on `127.0.0.1:0`"), "{out}");
    let (code, out) = open.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches(warning).count(), 1, "{out}");
    let local = App::new(&yaml("127.0.0.1:0"));
    for args in [&["config"][..], &["up", "-d"]] {
        let (code, out) = local.merged(args);
        assert_eq!(code, Some(0), "{out}");
        assert!(!out.contains("x-cove.gateway.metrics"), "{out}");
    }
}

#[test]
fn ports_on_every_address_are_named_once_at_up() {
    let yaml = |host_ip: &str| {
        format!(
            "services:\n  web:\n    x-cove: {{run: {}}}\n    ports: [\"{host_ip}0:8000\", \"{host_ip}0:8001\"]\n  api:\n    x-cove: {{run: {}}}\n    ports: [\"{host_ip}0:9000\"]\nx-cove:\n  gateway: {{listen: \"127.0.0.1:0\"}}\n",
            listens(&[8000, 8001]),
            listens(&[9000])
        )
    };
    let open = App::new(&yaml(""));
    let (code, out) = open.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let line = "warning: `ports` published on every address of this host";
    assert_eq!(out.matches(line).count(), 1, "{out}");
    for part in [
        "`web` on 0.0.0.0:0",
        "`api` on 0.0.0.0:0",
        "cove adds no authentication",
        "hint: to keep a port to this machine, give its address: `127.0.0.1:0:",
    ] {
        assert!(out.contains(part), "no {part:?} in:\n{out}");
    }
    let local = App::new(&yaml("127.0.0.1:"));
    let (code, out) = local.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("`ports` published"), "{out}");
}

#[test]
fn the_access_log_redacts_query_values_unless_told_to_keep_them() {
    let yaml = |access_log: &str| {
        format!(
            "services:\n  web:\n    x-cove: {{run: python3 server.py}}\n    expose: [\"8000\"]\nx-cove:\n  gateway: {{listen: \"127.0.0.1:0\"{access_log}}}\n"
        )
    };
    let app = crate::gateway::app(&yaml(""));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = wait_for_targets(&app, &[1]);
    let (status, _, body) = http(gw, "GET", "web.localhost", "/a?token=abc123&page=2", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["path"],
        "/a?token=abc123&page=2",
        "sent as it came"
    );
    let logs = || app.merged(&["logs", "gateway"]).1;
    eventually(10, "the request's access log line", || {
        logs().contains("\"/a?")
    });
    let log = logs();
    assert!(log.contains("\"path\":\"/a?token=***&page=***\""), "{log}");
    assert!(!log.contains("abc123"), "{log}");

    // `keep`, applied to the running gateway by another `up`.
    fs_err::write(
        app.dir().join("compose.yaml"),
        yaml(", access_log: {query: keep}"),
    )
    .unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = wait_for_targets(&app, &[1]);
    let (status, _, _) = http(gw, "GET", "web.localhost", "/b?token=kept456", b"");
    assert_eq!(status, 200);
    eventually(10, "the kept query string", || {
        logs().contains("\"path\":\"/b?token=kept456\"")
    });
}
