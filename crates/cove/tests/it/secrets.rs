//! `cove secrets`: two people (two identities, chosen by COVE_IDENTITY),
//! one app's secrets file. Values go in on standard input only; the file
//! never holds them in the clear; a recipient removed can no longer read.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::daemon::Out;

/// `cove secrets ARGS` in `dir` as the person whose identity is `who`,
/// with `stdin` as its input.
fn secrets(dir: &Path, who: &Path, args: &[&str], stdin: &[u8]) -> Out {
    secrets_with(dir, who, args, stdin, &[])
}

fn secrets_with(dir: &Path, who: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &Path)]) -> Out {
    let args: Vec<&str> = std::iter::once("secrets")
        .chain(args.iter().copied())
        .collect();
    cove_as(dir, who, &args, stdin, env)
}

/// `cove ARGS` in `dir` as the person whose identity is `who`, with
/// `stdin` as its input.
pub(crate) fn cove_as(
    dir: &Path,
    who: &Path,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &Path)],
) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("COVE_IDENTITY", who)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn recipient(init: &Out) -> String {
    init.stderr
        .lines()
        .find_map(|l| l.strip_prefix("cove: your recipient (public key): "))
        .unwrap_or_else(|| panic!("{init}"))
        .to_string()
}

#[test]
fn secrets_round_trip_and_follow_their_recipients() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(
        dir.join("compose.yaml"),
        "services:\n  db:\n    image: mariadb:11\n",
    )
    .unwrap();
    let (alice, bob) = (
        tmp.path().join("alice/id.txt"),
        tmp.path().join("bob/id.txt"),
    );

    let init = secrets(&dir, &alice, &["init"], b"");
    assert_eq!(init.code, Some(0), "{init}");
    let alice_key = recipient(&init);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs_err::metadata(&alice).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the identity is private");

    let set = secrets(&dir, &alice, &["set", "DB_PASSWORD"], b"s3cr3t-pw\n");
    assert_eq!(set.code, Some(0), "{set}");
    let get = secrets(&dir, &alice, &["get", "DB_PASSWORD"], b"");
    assert_eq!(
        (get.code, get.stdout.as_str()),
        (Some(0), "s3cr3t-pw"),
        "{get}"
    );
    let file = fs_err::read_to_string(dir.join("cove.secrets.yaml")).unwrap();
    assert!(!file.contains("s3cr3t"), "never in the clear: {file}");
    assert!(
        file.contains("DB_PASSWORD: age:") && file.contains(&alice_key),
        "{file}"
    );
    let ls = secrets(&dir, &alice, &["ls"], b"");
    assert_eq!(ls.stdout, "DB_PASSWORD\n");

    // Bob has an identity, but is not a recipient yet.
    let init = secrets(&dir, &bob, &["init"], b"");
    assert!(
        init.stderr.contains("you are not one of its recipients"),
        "{init}"
    );
    let bob_key = recipient(&init);
    let denied = secrets(&dir, &bob, &["get", "DB_PASSWORD"], b"");
    assert_eq!(denied.code, Some(1), "{denied}");
    assert!(
        denied.stderr.contains("not one of the file's recipients"),
        "{denied}"
    );
    assert!(denied.stderr.contains("hint:"), "{denied}");
    assert!(!denied.stderr.contains("s3cr3t"), "{denied}");

    // Alice adds him: both read it; she removes him: he cannot.
    let add = secrets(
        &dir,
        &alice,
        &["recipients", "add", &bob_key, "--comment", "bob"],
        b"",
    );
    assert_eq!(add.code, Some(0), "{add}");
    let get = secrets(&dir, &bob, &["get", "DB_PASSWORD"], b"");
    assert_eq!(get.stdout, "s3cr3t-pw", "{get}");
    let list = secrets(&dir, &alice, &["recipients"], b"");
    assert!(list.stdout.contains(&format!("{bob_key}  # bob")), "{list}");
    let rm = secrets(&dir, &alice, &["recipients", "rm", &bob_key], b"");
    assert_eq!(rm.code, Some(0), "{rm}");
    let denied = secrets(&dir, &bob, &["get", "DB_PASSWORD"], b"");
    assert_eq!(denied.code, Some(1), "{denied}");

    // A value from a file, kept as it is; a name that is not there.
    fs_err::write(tmp.path().join("key.pem"), "-----BEGIN KEY-----\nabc\n").unwrap();
    let key = tmp.path().join("key.pem").display().to_string();
    let set = secrets(&dir, &alice, &["set", "BROKER_KEY", "--file", &key], b"");
    assert_eq!(set.code, Some(0), "{set}");
    let get = secrets(&dir, &alice, &["get", "BROKER_KEY"], b"");
    assert_eq!(get.stdout, "-----BEGIN KEY-----\nabc\n");
    let missing = secrets(&dir, &alice, &["get", "DB_PASWORD"], b"");
    assert_eq!(missing.code, Some(1), "{missing}");
    assert!(
        missing.stderr.contains("DB_PASSWORD"),
        "did you mean: {missing}"
    );
    let rm = secrets(&dir, &alice, &["rm", "DB_PASSWORD"], b"");
    assert_eq!(rm.code, Some(0), "{rm}");
    assert_eq!(secrets(&dir, &alice, &["ls"], b"").stdout, "BROKER_KEY\n");
}

#[test]
fn edit_changes_what_the_editor_changed_and_leaves_no_plaintext_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    let scratch = tmp.path().join("tmp");
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::create_dir_all(&scratch).unwrap();
    fs_err::write(
        dir.join("compose.yaml"),
        "services:\n  db:\n    image: mariadb:11\n",
    )
    .unwrap();
    let me = tmp.path().join("id.txt");
    assert_eq!(secrets(&dir, &me, &["init"], b"").code, Some(0));
    for (name, value) in [
        ("DB_PASSWORD", "old"),
        ("BROKER_KEY", "k"),
        ("KEEP", "same"),
    ] {
        let out = secrets(&dir, &me, &["set", name], value.as_bytes());
        assert_eq!(out.code, Some(0), "{out}");
    }
    let before = fs_err::read_to_string(dir.join("cove.secrets.yaml")).unwrap();
    let keep_line = before
        .lines()
        .find(|l| l.contains("KEEP:"))
        .unwrap()
        .to_string();

    // An editor that fails: nothing changes, nothing is left in TMPDIR.
    let failing = tmp.path().join("failing.sh");
    fs_err::write(
        &failing,
        "#!/bin/sh\nsed -i 's/=old/=oops/' \"$1\"\nexit 3\n",
    )
    .unwrap();
    let editor = format!("sh {}", failing.display());
    let out = secrets_with(
        &dir,
        &me,
        &["edit"],
        b"",
        &[("EDITOR", Path::new(&editor)), ("TMPDIR", &scratch)],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("nothing changed"), "{out}");
    assert_eq!(
        fs_err::read_to_string(dir.join("cove.secrets.yaml")).unwrap(),
        before
    );
    assert_eq!(
        fs_err::read_dir(&scratch).unwrap().count(),
        0,
        "no plaintext left"
    );

    // One changed (to two lines), one removed, one added, one untouched.
    let editing = tmp.path().join("edit.sh");
    fs_err::write(
        &editing,
        "#!/bin/sh\nsed -i -e 's/^DB_PASSWORD=old$/DB_PASSWORD=new\\\\npw/' -e '/^BROKER_KEY=/d' \"$1\"\necho 'NEW_ONE=x' >> \"$1\"\n",
    )
    .unwrap();
    let editor = format!("sh {}", editing.display());
    let out = secrets_with(
        &dir,
        &me,
        &["edit"],
        b"",
        &[("EDITOR", Path::new(&editor)), ("TMPDIR", &scratch)],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("1 changed, 1 added, 1 removed"),
        "{out}"
    );
    assert_eq!(
        fs_err::read_dir(&scratch).unwrap().count(),
        0,
        "no plaintext left"
    );
    assert_eq!(
        secrets(&dir, &me, &["get", "DB_PASSWORD"], b"").stdout,
        "new\npw"
    );
    assert_eq!(secrets(&dir, &me, &["get", "NEW_ONE"], b"").stdout, "x");
    assert_eq!(
        secrets(&dir, &me, &["ls"], b"").stdout,
        "DB_PASSWORD\nKEEP\nNEW_ONE\n"
    );
    let after = fs_err::read_to_string(dir.join("cove.secrets.yaml")).unwrap();
    assert!(
        after.contains(&keep_line),
        "an untouched secret keeps its line: {after}"
    );
}

/// A replica that reports what it got: its secrets reversed (so that the
/// report itself holds no value), file modes, where the directory is and
/// on which file system; then prints the values, which cove must scrub.
const REPORTER: &str = r#"
import json, os, sys, time
d = os.environ["COVE_SECRETS"]
pw = open(os.environ["DB_PASSWORD_FILE"]).read()
key_path = os.path.join(d, "etc/ssl/private/key.pem")
key = open(key_path).read()
token = os.environ["API_TOKEN"]
mounts = [l.split()[1:3] for l in open("/proc/mounts")]
fs = max((m for m in mounts if d.startswith(m[0])), key=lambda m: len(m[0]))[1]
mode = lambda p: oct(os.stat(p).st_mode & 0o777)
report = {
    "pw": pw[::-1], "token": token[::-1], "key": key[::-1], "dir": d, "fs": fs,
    "dir_mode": mode(d), "pw_mode": mode(os.environ["DB_PASSWORD_FILE"]),
    "key_mode": mode(key_path), "argv": sys.argv[1:],
}
tmp = "report.json.tmp"
json.dump(report, open(tmp, "w"))
os.rename(tmp, "report.json")
print("password is " + pw, flush=True)
print("token=" + token + ";", flush=True)
sys.stdout.write(key)
print("reported", flush=True)
time.sleep(3600)
"#;

const SECRET_APP: &str = r#"
services:
  web:
    environment:
      DB_PASSWORD_FILE: /run/secrets/db_password
      SHOWN: ${LEAK:-nothing}
    x-cove:
      run: python3 -u reporter.py /run/secrets/db_password
    secrets:
      - db_password
      - source: api_token
        x-cove: {env: API_TOKEN}
      - source: tls_key
        target: /etc/ssl/private/key.pem
        mode: 0440
secrets:
  db_password:
    x-cove: {store: DB_PASSWORD}
  api_token:
    x-cove: {store: API_TOKEN}
  tls_key:
    x-cove: {store: TLS_KEY}
"#;

/// Every file under `dir` (recursively) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs_err::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = fs_err::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else if meta.is_file()
                && fs_err::read(&p)
                    .map(|b| b.windows(needle.len()).any(|w| w == needle))
                    .unwrap_or(false)
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn replicas_get_secrets_as_private_files_and_no_output_shows_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = (tmp.path().join("alice.txt"), tmp.path().join("bob.txt"));
    let app = crate::daemon::App::with_env(SECRET_APP, &[("COVE_IDENTITY", &alice)]);
    let dir = app.dir();
    fs_err::write(dir.join("reporter.py"), REPORTER).unwrap();
    let pw = "pw-8d1c0b7e-alpha";
    let token = "tok-5e9a44f2-beta";
    let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    assert_eq!(secrets(dir, &alice, &["init"], b"").code, Some(0));
    for (name, value) in [("DB_PASSWORD", pw), ("API_TOKEN", token), ("TLS_KEY", key)] {
        let set = secrets(dir, &alice, &["set", name], value.as_bytes());
        assert_eq!(set.code, Some(0), "{set}");
    }
    assert_eq!(secrets(dir, &bob, &["init"], b"").code, Some(0));

    // Bob is not a recipient: a clear error naming the secret and the file.
    let cove = |who: &Path, args: &[&str], env: &[(&str, &str)]| {
        crate::daemon::run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .current_dir(dir)
                .args(args)
                .env("NO_COLOR", "1")
                .env("COVE_IDENTITY", who)
                .envs(env.iter().copied()),
            120,
        )
    };
    let denied = cove(&bob, &["up", "-d"], &[]);
    assert_eq!(denied.code, Some(1), "{denied}");
    for part in [
        "secret `db_password`",
        "cove.secrets.yaml",
        "recipients",
        "hint",
    ] {
        assert!(denied.stderr.contains(part), "`{part}` in: {denied}");
    }
    assert!(!denied.stderr.contains("panick"), "{denied}");

    let up = cove(&alice, &["up", "-d"], &[]);
    assert_eq!(up.code, Some(0), "{up}");
    let report_path = dir.join("report.json");
    crate::daemon::eventually(30, "the replica's report", || report_path.is_file());
    crate::daemon::eventually(10, "its output", || {
        cove(&alice, &["logs", "web"], &[])
            .stdout
            .contains("reported")
    });
    let report: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&report_path).unwrap()).unwrap();
    let rev = |s: &str| s.chars().rev().collect::<String>();
    assert_eq!(report["pw"], rev(pw));
    assert_eq!(report["token"], rev(token));
    assert_eq!(
        report["key"],
        rev(key.trim_end()),
        "stdin's last line break is not kept"
    );
    assert_eq!(
        (&report["dir_mode"], &report["pw_mode"], &report["key_mode"]),
        (&"0o700".into(), &"0o400".into(), &"0o440".into())
    );
    assert_eq!(report["fs"], "tmpfs", "{report}");
    let secrets_dir = std::path::PathBuf::from(report["dir"].as_str().unwrap());
    assert_eq!(
        report["argv"][0].as_str().unwrap(),
        secrets_dir.join("db_password").display().to_string(),
        "the target in the command is the real file"
    );

    // Scrubbed from the captured output; in no output of cove.
    let logs = cove(&alice, &["logs", "web"], &[]);
    for line in ["password is ***", "token=***;"] {
        assert!(logs.stdout.contains(line), "`{line}` in: {logs}");
    }
    let leak = LeakCheck::new(&[pw, token, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "PRIVATE KEY"]);
    leak.assert_none(&logs.to_string(), "cove logs");
    for args in [
        &["ps"][..],
        &["ps", "--format", "json"],
        &["history", "web", "--format", "json"],
        &["routes"],
        &["logs"],
    ] {
        let out = cove(&alice, args, &[]);
        assert_eq!(out.code, Some(0), "{out}");
        leak.assert_none(&out.to_string(), &format!("cove {}", args.join(" ")));
    }
    // `cove config` masks a value that reaches the model some other way.
    let config = cove(&alice, &["config"], &[("LEAK", pw)]);
    assert_eq!(config.code, Some(0), "{config}");
    assert!(config.stdout.contains("SHOWN: \"***\""), "{config}");
    leak.assert_none(&config.to_string(), "cove config");
    // No process's arguments; no file left in the clear.
    for pid in app.processes() {
        let cmdline = fs_err::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        leak.assert_none(
            &String::from_utf8_lossy(&cmdline),
            &format!("argv of {pid}"),
        );
    }
    // The app's directory holds its state (`.cove/state.redb`), the
    // daemon's log and the replicas' captured output: the scan reaches
    // them (it finds the replica's own line in its log) and finds no value.
    let state = dir.join(".cove");
    for part in ["state.redb", "daemon.log"] {
        assert!(state.join(part).is_file(), "{part} in {}", state.display());
    }
    let logged = files_holding(dir, b"reported");
    assert!(
        logged.iter().any(|p| p.starts_with(&state)),
        "the scan sees the captured output under {}: {logged:?}",
        state.display()
    );
    for needle in [pw, token, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"] {
        for scanned in [dir, tmp.path()] {
            assert_eq!(
                files_holding(scanned, needle.as_bytes()),
                Vec::<std::path::PathBuf>::new(),
                "a secret's value in the clear under {}",
                scanned.display()
            );
        }
    }

    // `cove run` gets them too, in a directory of its own, gone after.
    let run = cove(
        &alice,
        &[
            "run",
            "--no-deps",
            "web",
            "python3",
            "-c",
            "import os; print(open(os.environ['DB_PASSWORD_FILE']).read()[::-1]); print(os.environ['API_TOKEN'][::-1]); print(os.environ['COVE_SECRETS'])",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[..2], [rev(pw), rev(token)], "{run}");
    assert_ne!(Path::new(lines[2]), secrets_dir);
    assert!(
        !Path::new(lines[2]).exists(),
        "removed after the command: {run}"
    );

    // A new value reaches the replicas with the next deploy.
    let set = secrets(dir, &alice, &["set", "DB_PASSWORD"], b"pw-rotated-gamma");
    assert_eq!(set.code, Some(0), "{set}");
    fs_err::remove_file(&report_path).unwrap();
    let deploy = cove(&alice, &["deploy", "web"], &[]);
    assert_eq!(deploy.code, Some(0), "{deploy}");
    crate::daemon::eventually(30, "the new replica's report", || report_path.is_file());
    let report: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["pw"], rev("pw-rotated-gamma"));
    let new_dir = std::path::PathBuf::from(report["dir"].as_str().unwrap());
    crate::daemon::eventually(15, "the old replica's secrets gone", || {
        !secrets_dir.exists() || secrets_dir == new_dir
    });

    // The daemon SIGKILLed: its reaper stops the replica; started again, it
    // decrypts the values again (with the identity the CLI named) and hands
    // them out anew.
    crate::daemon::kill9(app.daemon_pid().expect("a daemon runs"));
    crate::daemon::eventually(15, "the replica stopped by the reaper", || {
        app.processes().is_empty()
    });
    fs_err::remove_file(&report_path).unwrap();
    let up = cove(&alice, &["up", "-d"], &[]);
    assert_eq!(up.code, Some(0), "{up}");
    crate::daemon::eventually(30, "the report after the restart", || report_path.is_file());
    let report: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["pw"], rev("pw-rotated-gamma"));
    let new_dir = std::path::PathBuf::from(report["dir"].as_str().unwrap());

    let down = cove(&alice, &["down"], &[]);
    assert_eq!(down.code, Some(0), "{down}");
    assert!(!new_dir.exists(), "secrets removed with the replicas");

    // A tampered value: a clear error naming the secret and the file, and
    // nothing starts.
    let file = dir.join("cove.secrets.yaml");
    let text = fs_err::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("DB_PASSWORD: age:"))
        .unwrap();
    let mut bad: Vec<char> = line.chars().collect();
    let mid = bad.len() / 2;
    bad[mid] = if bad[mid] == 'A' { 'B' } else { 'A' };
    let bad: String = bad.into_iter().collect();
    fs_err::write(&file, text.replace(line, &bad)).unwrap();
    let tampered = cove(&alice, &["up", "-d"], &[]);
    assert_eq!(tampered.code, Some(1), "{tampered}");
    for part in ["secret `db_password`", "DB_PASSWORD", "cove.secrets.yaml"] {
        assert!(tampered.stderr.contains(part), "`{part}` in: {tampered}");
    }
    assert!(!tampered.stderr.contains("panick"), "{tampered}");
    assert_eq!(app.processes(), Vec::<u32>::new(), "nothing started");
}

/// Values that must not show anywhere.
struct LeakCheck(Vec<String>);

impl LeakCheck {
    fn new(values: &[&str]) -> LeakCheck {
        LeakCheck(values.iter().map(|v| v.to_string()).collect())
    }

    fn assert_none(&self, text: &str, what: &str) {
        for v in &self.0 {
            assert!(!text.contains(v.as_str()), "{what} shows a secret: {text}");
        }
    }
}

#[test]
fn an_environment_adds_its_files_and_its_own_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let who = dir.join("id.txt");
    fs_err::write(
        dir.join("compose.yaml"),
        "services:\n  web:\n    x-cove: {run: sleep 100}\n    environment:\n      LEVEL: ${LEVEL:-debug}\n      WHERE: laptop\n    secrets: [db]\nsecrets:\n  db:\n    x-cove: {store: DB}\n",
    )
    .unwrap();
    fs_err::write(dir.join(".env"), "LEVEL=info\n").unwrap();
    fs_err::write(dir.join(".env.prod"), "LEVEL=warn\n").unwrap();
    fs_err::write(
        dir.join("compose.prod.yaml"),
        "services:\n  web:\n    environment:\n      WHERE: server\n",
    )
    .unwrap();
    let config = |env: &[(&str, &str)], args: &[&str]| {
        crate::daemon::run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .current_dir(dir)
                .args(args)
                .env("NO_COLOR", "1")
                .env("COVE_IDENTITY", &who)
                .env_remove("COVE_ENV")
                .envs(env.iter().copied()),
            60,
        )
    };
    let plain = config(&[], &["config"]);
    assert!(
        plain.stdout.contains("LEVEL: info") && plain.stdout.contains("WHERE: laptop"),
        "{plain}"
    );
    for (env, args) in [
        (&[][..], &["--env", "prod", "config"][..]),
        (&[("COVE_ENV", "prod")][..], &["config"][..]),
    ] {
        let prod = config(env, args);
        assert_eq!(prod.code, Some(0), "{prod}");
        for part in ["LEVEL: warn", "WHERE: server", "env: prod"] {
            assert!(prod.stdout.contains(part), "`{part}` in: {prod}");
        }
    }
    // Each environment has its own secrets file.
    assert_eq!(config(&[], &["secrets", "init"]).code, Some(0));
    assert_eq!(
        config(&[], &["--env", "prod", "secrets", "init"]).code,
        Some(0)
    );
    let out = cove_as(
        dir,
        &who,
        &["--env", "prod", "secrets", "set", "DB"],
        b"prod-value",
        &[],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(dir.join("cove.secrets.prod.yaml").is_file());
    let ls = config(&[("COVE_ENV", "prod")], &["secrets", "ls"]);
    assert_eq!(ls.stdout, "DB\n", "{ls}");
    let ls = config(&[], &["secrets", "ls"]);
    assert_eq!(
        ls.stdout, "",
        "the default environment has its own file: {ls}"
    );
    // The laptop's file has no DB: `cove config` says so, and still prints.
    let warned = config(&[], &["config"]);
    assert_eq!(warned.code, Some(0), "{warned}");
    assert!(
        warned.stderr.contains("secret `db`") && warned.stderr.contains("DB"),
        "{warned}"
    );

    let unknown = config(&[], &["--env", "staging", "config"]);
    assert_eq!(unknown.code, Some(1), "{unknown}");
    assert!(
        unknown
            .stderr
            .contains("environment `staging` is not defined")
            && unknown.stderr.contains("compose.staging.yaml"),
        "{unknown}"
    );
}
