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
    let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
        .current_dir(dir)
        .arg("secrets")
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
