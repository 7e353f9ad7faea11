//! `cove --host ssh://USER@HOST:PORT` against a real OpenSSH server
//! (Debian's `/usr/sbin/sshd`, started by the test on 127.0.0.1 with its
//! own host key, an authorized key made for the test, and `SetEnv` giving
//! the remote `cove` on its PATH and the test's host daemon directory):
//! the replicas of an app that the host daemon runs are listed through
//! ssh; an unknown or changed host key is refused before anything runs
//! there; `logs` reads the host's logs through it; commands that need
//! this machine's files are refused; and `cove
//! server install` writes a unit whose ExecStart runs the daemon.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{App, HostDaemon, Out, eventually_ok, run_bounded};
use crate::sshd::Sshd;

/// A Compose file with its own name: found by name on the host, whatever
/// directory the client runs in.
const APP: &str = "name: remoteapp\nservices:\n  web:\n    x-cove: {run: [sh, -c, 'echo said by $$COVE_REPLICA; sleep 300 & wait']}\n    deploy: {replicas: 2}\n";

/// `cove ARGS` in `dir`, with `env` only for cove's own variables (no
/// COVE_DAEMON nor COVE_HOST_DIR: nothing local is asked).
fn cove(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("COVE_DAEMON")
            .env_remove("COVE_HOST_DIR")
            .env_remove("COVE_HOST")
            .envs(env.iter().copied()),
        60,
    )
}

/// (service, replica, state, pid) of each row of `ps --format json`.
pub(crate) fn replicas(json: &str) -> Vec<(String, u64, String, u64)> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).expect(json);
    rows.iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["replica"].as_u64().unwrap(),
                r["state"].as_str().unwrap().to_string(),
                r["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn ps_over_ssh_lists_the_replicas_the_host_daemon_runs() {
    let host = HostDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    let sshd = Sshd::start(host.dir.path());
    let ssh = sshd.ssh(&sshd.known_hosts());
    let url = sshd.url();
    let env = [("COVE_SSH", ssh.as_str())];
    // The client's checkout: the same file, another directory.
    let client = tempfile::tempdir().unwrap();
    fs_err::write(client.path().join("compose.yaml"), APP).unwrap();

    // No daemon runs there yet: said so, with how to start one.
    let out = cove(client.path(), &env, &["--host", &url, "ps"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("error: no cove daemon runs on {url}")),
        "{out}"
    );
    assert!(out.stderr.contains("cove server install"), "{out}");

    // The app, started on the host with its daemon.
    let app = App::with_env(
        APP,
        &[
            ("COVE_DAEMON", Path::new("host")),
            ("COVE_HOST_DIR", host.dir.path()),
        ],
    );
    let _down = Down(&app);
    let (code, text) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, here) = app.merged(&["ps", "--format", "json"]);
    assert_eq!(code, Some(0), "{here}");
    let here = replicas(&here);
    assert_eq!(here.len(), 2, "{here:?}");

    let out = cove(
        client.path(),
        &env,
        &["--host", &url, "ps", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        replicas(&out.stdout),
        here,
        "the host's replicas, pids and all"
    );
    assert!(
        sshd.ran().contains("system dial-stdio"),
        "through ssh: {}",
        sshd.ran()
    );
    // COVE_HOST is --host.
    let out = cove(
        client.path(),
        &[("COVE_SSH", ssh.as_str()), ("COVE_HOST", url.as_str())],
        &["ps", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(replicas(&out.stdout), here);
    // The table, too.
    let out = cove(client.path(), &env, &["--host", &url, "ps"]);
    assert!(
        out.stdout.starts_with("SERVICE  REPLICA")
            && out
                .stdout
                .lines()
                .filter(|l| l.starts_with("web  "))
                .count()
                == 2,
        "{out}"
    );
    // Without --host, this machine's daemon for the checkout: none runs.
    let out = cove(client.path(), &[], &["ps", "--format", "json"]);
    assert_eq!(out.stdout.trim(), "[]", "{out}");

    // `events` there: the replicas' starts, kept by the host's daemon.
    let out = cove(
        client.path(),
        &env,
        &[
            "--host", &url, "events", "--json", "--since", "10m", "--until", "0s",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let mut ready: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .filter(|e: &serde_json::Value| {
            e["attributes"]["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("ready"))
        })
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    ready.sort();
    assert_eq!(ready, ["web-1", "web-2"], "{out}");

    // `logs` there: the host daemon's log store, through ssh.
    let out = eventually_ok(30, "both replicas' lines over ssh", || {
        let out = cove(
            client.path(),
            &env,
            &[
                "--host", &url, "logs", "--format", "json", "--grep", "said by",
            ],
        );
        let mut sources: Vec<String> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["source"].as_str().unwrap_or_default().to_string())
            .collect();
        sources.sort();
        match out.code == Some(0) && sources == ["web-1", "web-2"] {
            true => Ok(out),
            false => Err(format!("{out}")),
        }
    });
    assert!(out.stdout.contains("\"text\":\"said by 1\""), "{out}");

    // `ls` and `version` there.
    let out = cove(
        client.path(),
        &env,
        &["--host", &url, "ls", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    assert_eq!(listed[0]["name"], "remoteapp", "{out}");
    assert_eq!(listed[0]["running"], 2, "{out}");
    let out = cove(
        client.path(),
        &env,
        &["--host", &url, "version", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    assert_eq!(v["server"]["host"], url.as_str(), "{out}");
    assert_eq!(
        v["server"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );

    // Another name: not run there, said so with what is.
    let out = cove(client.path(), &env, &["--host", &url, "-p", "other", "ps"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("does not run project `other`")
            && out.stderr.contains("it runs `remoteapp`"),
        "{out}"
    );

    // What needs this machine's files is refused, and nothing runs.
    let before = sshd.ran();
    for args in [&["up", "-d"][..], &["deploy"], &["exec", "web", "true"]] {
        let mut all = vec!["--host", url.as_str()];
        all.extend(args);
        let out = cove(client.path(), &env, &all);
        assert_eq!(out.code, Some(1), "{args:?}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "error: `cove {}` does not work over --host yet",
                args[0]
            )),
            "{out}"
        );
    }
    // `down`, `stop` run in the checkout `deploy --env` sends: they need
    // the environment (`logs` is the daemon's, above).
    for args in [&["down"][..], &["stop"]] {
        let mut all = vec!["--host", url.as_str()];
        all.extend(args);
        let out = cove(client.path(), &env, &all);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr.contains("name the environment") && out.stderr.contains("--env prod"),
            "{out}"
        );
    }
    assert_eq!(sshd.ran(), before, "nothing ran on the host");
    let (_, still) = app.merged(&["ps", "--format", "json"]);
    assert_eq!(replicas(&still), here);
}

/// `cove down` of the app, whatever happens.
struct Down<'a>(&'a App);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.merged(&["down"]);
    }
}

#[test]
fn an_unknown_or_changed_host_key_is_refused_before_anything_runs() {
    let host = HostDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    let sshd = Sshd::start(host.dir.path());
    let url = sshd.url();
    let client = tempfile::tempdir().unwrap();
    fs_err::write(client.path().join("compose.yaml"), APP).unwrap();

    // Unknown: an empty known_hosts.
    let empty = client.path().join("known_hosts.empty");
    fs_err::write(&empty, "").unwrap();
    let ssh = sshd.ssh(&empty);
    let out = cove(
        client.path(),
        &[("COVE_SSH", ssh.as_str())],
        &["--host", &url, "ps"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: the host key of {url} is not in known_hosts; nothing was run"
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains("  ssh: Host key verification failed."),
        "ssh's own line quoted: {out}"
    );
    assert!(
        out.stderr
            .contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port)),
        "{out}"
    );
    assert_eq!(out.stderr.matches("hint:").count(), 1, "one hint: {out}");
    // The file is as it was: no key was accepted on the way.
    assert_eq!(fs_err::read_to_string(&empty).unwrap(), "");

    // Changed: another key recorded for it.
    let other = client.path().join("other_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let key = fs_err::read_to_string(other.with_extension("pub")).unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    let wrong = client.path().join("known_hosts.wrong");
    fs_err::write(
        &wrong,
        format!("[127.0.0.1]:{} {}\n", sshd.port, key.join(" ")),
    )
    .unwrap();
    let ssh = sshd.ssh(&wrong);
    let out = cove(
        client.path(),
        &[("COVE_SSH", ssh.as_str())],
        &["--host", &url, "ps"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "error: the host key of {url} has changed since it was recorded in known_hosts"
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("ssh-keygen -R '[127.0.0.1]:{}'", sshd.port)),
        "{out}"
    );

    assert_eq!(sshd.ran(), "", "nothing ran on the host");

    // No cove on the host's PATH for commands run over ssh.
    let bare = Sshd::start_with(host.dir.path(), false);
    let ssh = bare.ssh(&bare.known_hosts());
    let out = cove(
        client.path(),
        &[("COVE_SSH", ssh.as_str())],
        &["--host", &bare.url(), "ps"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("error: cove is not installed on {}", bare.url()))
            && out.stderr.contains("host: ")
            && out.stderr.contains("cove server install"),
        "{out}"
    );

    // No ssh at all.
    let out = cove(
        client.path(),
        &[("COVE_SSH", "/nonexistent/ssh")],
        &["--host", &url, "ps"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("cannot run `/nonexistent/ssh`")
            && out.stderr.contains("openssh-client"),
        "{out}"
    );
    // Not an ssh:// address: a usage error.
    let out = cove(
        client.path(),
        &[],
        &["--host", "tcp://127.0.0.1:2375", "ps"],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("is not an ssh:// address"), "{out}");
}

/// The unit's `Environment=` pairs and `ExecStart=` words.
fn exec_start(unit: &str) -> (Vec<(String, String)>, Vec<String>) {
    let env = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect(kv);
            (k.to_string(), v.to_string())
        })
        .collect();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line")
        .split_whitespace()
        .map(String::from)
        .collect();
    (env, exec)
}

#[test]
fn server_install_writes_a_unit_whose_exec_start_runs_the_host_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (prefix, state) = (t.join("usr"), t.join("state"));
    let identity = t.join("config/cove/identity.txt");
    let units = t.join("units");
    let env = [
        ("COVE_IDENTITY", identity.to_str().unwrap()),
        ("COVE_SYSTEMD_DIR", units.to_str().unwrap()),
    ];
    let args = [
        "server",
        "install",
        "--prefix",
        prefix.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];

    // --print: the unit, and nothing changed.
    let mut print = args.to_vec();
    print.push("--print");
    let out = cove(t, &env, &print);
    assert_eq!(out.code, Some(0), "{out}");
    let unit = out.stdout.clone();
    assert!(
        unit.contains("\n[Service]\n") && unit.contains("\nUser=root\n"),
        "{unit}"
    );
    assert!(unit.contains("\nWantedBy=multi-user.target\n"), "{unit}");
    let (unit_env, exec) = exec_start(&unit);
    assert_eq!(
        exec,
        [
            prefix.join("bin/cove").to_str().unwrap(),
            "__daemon",
            "--state-dir",
            state.to_str().unwrap(),
            "--host"
        ]
    );
    for p in [&prefix, &state, &identity, &units] {
        assert!(!p.exists(), "--print made {}", p.display());
    }
    // A user without a home (as `nobody`'s /nonexistent): refused.
    let out = cove(
        t,
        &env,
        &["server", "install", "--print", "--user", "nobody"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("`nobody`'s home, /nonexistent, is not a directory")
            && out
                .stderr
                .contains("hint: give the daemon a user with a home"),
        "{out}"
    );
    let out = cove(
        t,
        &env,
        &["server", "install", "--print", "--user", "nosuchuser"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("no user `nosuchuser` on this host"),
        "{out}"
    );

    if Path::new("/run/systemd/system").exists() {
        // It would enable the unit on this machine's systemd.
        println!("note: systemd runs here: the install itself is not tried");
        return;
    }
    // The install: binary, state directory, identity, the same unit.
    let out = cove(t, &env, &args);
    assert_eq!(out.code, Some(0), "{out}");
    let recipient = out.stdout.trim().to_string();
    assert!(recipient.starts_with("age1"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("cove secrets recipients add {recipient}")),
        "{out}"
    );
    assert_eq!(
        fs_err::read_to_string(units.join("cove.service")).unwrap(),
        unit
    );
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&fs_err::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&identity), 0o600);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&prefix.join("bin/cove")), 0o755);
    let key = fs_err::read_to_string(&identity).unwrap();
    assert!(key.contains(&format!("# public key: {recipient}")), "{key}");
    // Again: the identity is kept.
    let out = cove(t, &env, &args);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), recipient, "the same identity");
    assert_eq!(fs_err::read_to_string(&identity).unwrap(), key);

    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("cove.service"))
        .output()
    {
        Ok(v) => {
            // It exits 0 on a line it ignores: its complaints name the file.
            let said = String::from_utf8_lossy(&v.stdout).into_owned()
                + &String::from_utf8_lossy(&v.stderr);
            assert!(
                v.status.success() && !said.contains("cove.service"),
                "systemd-analyze verify: {said}"
            );
        }
        Err(_) => println!("note: no systemd-analyze here: the unit is not verified"),
    }

    // ExecStart as written, with the unit's environment: the daemon
    // answers `cove --host` through ssh, in the unit's directory.
    let mut daemon = Command::new(&exec[0])
        .args(&exec[1..])
        .envs(unit_env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            fs_err::File::create(t.join("daemon.err"))
                .unwrap()
                .into_parts()
                .0,
        )
        .spawn()
        .unwrap();
    let sshd = Sshd::start(&state);
    let ssh = sshd.ssh(&sshd.known_hosts());
    let url = sshd.url();
    let answered = (|| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = cove(
                t,
                &[("COVE_SSH", ssh.as_str())],
                &["--host", &url, "version", "--format", "json"],
            );
            if out.code == Some(0) || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(
        answered.code,
        Some(0),
        "{answered}\ndaemon: {}",
        fs_err::read_to_string(t.join("daemon.err")).unwrap_or_default()
    );
    let v: serde_json::Value = serde_json::from_str(&answered.stdout).expect(&answered.stdout);
    assert_eq!(
        v["server"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
}
