//! The store against a real repository on disk, and Debian's `restic`
//! reading what it wrote.

use std::path::Path;
use std::process::Command;

use cove_backup::{Meta, Store};

const PASSWORD: &str = "correct horse battery staple";

fn meta(service: &str) -> Meta {
    Meta {
        project: "demo".into(),
        environment: "default".into(),
        service: service.into(),
        method: "test-stream".into(),
        cove_version: "0.1.0".into(),
    }
}

/// A command writing `n` pseudo-random-ish bytes (a 16 MiB stream by
/// default: several packs), deterministic.
fn stream_cmd(bytes: u64) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("yes 'cove backup stream line' | head -c {bytes}; seq 1 200000"),
    ]
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
}

fn restic(repo: &Path, pwfile: &Path, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(pwfile)
        .arg("--no-cache")
        .args(args)
        .output()
        .expect("restic runs (Debian's `restic` package; scripts/test installs it)")
}

fn expected(bytes: u64) -> Vec<u8> {
    let out = Command::new("sh")
        .args(stream_cmd(bytes).split_off(1))
        .output()
        .unwrap();
    out.stdout
}

#[test]
fn round_trip_list_and_restic_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let b = store
        .backup_command(&meta("db"), &stream_cmd(16 << 20), &path_env(), tmp.path())
        .unwrap();
    let want = expected(16 << 20);
    assert_eq!(b.size, want.len() as u64);
    let listed = store.list().unwrap();
    assert_eq!(listed, vec![b.clone()]);
    let mut got = Vec::new();
    store.restore(&b.id[..8], &mut got).unwrap();
    assert!(got == want, "the restored stream differs");

    // A second store on the same directory opens it; a wrong password does not.
    assert_eq!(
        Store::open_or_init(&dir, PASSWORD)
            .unwrap()
            .list()
            .unwrap()
            .len(),
        1
    );
    let wrong = Store::open_or_init(&dir, "nope").expect_err("wrong password refused");
    assert!(wrong.to_string().contains("cannot open"), "{wrong}");

    // Debian's restic lists it, with cove's tags, and dumps the same bytes.
    let pwfile = tmp.path().join("pw");
    fs_err::write(&pwfile, PASSWORD).unwrap();
    let out = restic(&dir, &pwfile, &["snapshots", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["id"], b.id.as_str());
    let tags: Vec<&str> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"service=db"), "{tags:?}");
    let out = restic(&dir, &pwfile, &["dump", &b.id, &b.path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == want, "restic dumps other bytes");
    let out = restic(&dir, &pwfile, &["check", "--read-data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second identical backup adds (almost) nothing: deduplicated.
    let b2 = store
        .backup_command(&meta("db"), &stream_cmd(16 << 20), &path_env(), tmp.path())
        .unwrap();
    assert!(
        b2.added < 64 * 1024,
        "a repeated stream added {} bytes",
        b2.added
    );
}

#[test]
fn a_failed_or_killed_command_leaves_no_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    for script in [
        "yes partial | head -c 3000000; exit 3",
        "yes partial | head -c 3000000; kill -9 $$",
    ] {
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into()];
        let err = store
            .backup_command(&meta("db"), &argv, &path_env(), tmp.path())
            .expect_err("a failed command is an error");
        assert!(err.to_string().contains("no backup was kept"), "{err}");
        assert!(store.list().unwrap().is_empty());
    }
    // Not even restic sees one (no pending snapshot left behind).
    let pwfile = tmp.path().join("pw");
    fs_err::write(&pwfile, PASSWORD).unwrap();
    let out = restic(&dir, &pwfile, &["snapshots", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(0), "{snaps}");
    // And the next one succeeds.
    store
        .backup_command(&meta("db"), &stream_cmd(1 << 20), &path_env(), tmp.path())
        .unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

fn data_packs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in fs_err::read_dir(dir.join("data")).unwrap() {
        for f in fs_err::read_dir(sub.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn a_flipped_byte_is_found_by_check_and_refused_by_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let b = store
        .backup_command(&meta("db"), &stream_cmd(8 << 20), &path_env(), tmp.path())
        .unwrap();
    store.check(&b.id).unwrap();
    // The largest pack holds data blobs; flip a byte in its middle.
    let pack = data_packs(&dir)
        .into_iter()
        .max_by_key(|p| fs_err::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs_err::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    // Packs are read-only on disk, as restic leaves them.
    let mut perm = fs_err::metadata(&pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs_err::set_permissions(&pack, perm).unwrap();
    fs_err::write(&pack, &bytes).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap();

    let err = store.check(&b.id).expect_err("check finds the damage");
    assert!(err.to_string().contains(name), "{err}");
    let mut out = Vec::new();
    let err = store
        .restore(&b.id, &mut out)
        .expect_err("restore refuses a damaged backup");
    assert!(err.to_string().contains(name), "{err}");
    assert!(out.is_empty(), "nothing is written from a damaged backup");
}

#[test]
fn marking_verified_keeps_the_id_and_restic_sees_the_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let b = store
        .backup_command(&meta("db"), &stream_cmd(1 << 20), &path_env(), tmp.path())
        .unwrap();
    assert_eq!(b.verified, None);
    let v = store
        .mark_verified(&b.id[..8], "2026-12-07T07:00:00Z")
        .unwrap();
    assert_eq!(v.id, b.id, "the id shown stays the first version's");
    let again = store.mark_verified(&b.id, "2026-12-08T07:00:00Z").unwrap();
    assert_eq!(again.id, b.id);
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, b.id);
    assert_eq!(listed[0].verified.as_deref(), Some("2026-12-08T07:00:00Z"));
    let mut got = Vec::new();
    store.restore(&b.id[..8], &mut got).unwrap();
    assert_eq!(got, expected(1 << 20));

    let pw = tmp.path().join("pw");
    fs_err::write(&pw, PASSWORD).unwrap();
    let out = restic(
        &dir,
        &pw,
        &[
            "snapshots",
            "--json",
            "--tag",
            "verified=2026-12-08T07:00:00Z",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    assert_eq!(snaps[0]["original"].as_str(), Some(b.id.as_str()));
}

fn streamed(store: &Store, argv: &[String]) -> cove_backup::Result<cove_backup::Backup> {
    let env = path_env();
    let cmd = cove_backup::DumpCommand {
        argv,
        env: &env,
        filter: None,
    };
    store.stream_command(&meta("db"), &cmd, || Some("{\"figures\":1}".into()))
}

fn restic_snapshots(dir: &Path, pwfile: &Path) -> Vec<serde_json::Value> {
    let out = restic(dir, pwfile, &["snapshots", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    snaps.as_array().unwrap().clone()
}

#[test]
fn a_streamed_backup_round_trips_and_restic_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let b = streamed(&store, &stream_cmd(16 << 20)).unwrap();
    let want = expected(16 << 20);
    assert_eq!(b.size, want.len() as u64);
    assert_eq!(b.description.as_deref(), Some("{\"figures\":1}"));
    assert_eq!(store.list().unwrap(), vec![b.clone()]);
    let mut got = Vec::new();
    store.restore(&b.id[..8], &mut got).unwrap();
    assert!(got == want, "the restored stream differs");
    // restic sees one snapshot (the pending one is gone), cove's id, and
    // dumps the same bytes.
    let pwfile = tmp.path().join("pw");
    fs_err::write(&pwfile, PASSWORD).unwrap();
    let snaps = restic_snapshots(&dir, &pwfile);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["id"], b.id.as_str());
    let out = restic(&dir, &pwfile, &["dump", "latest", &b.path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == want, "restic dumps other bytes");
    // The same stream again deduplicates, as from a file.
    let b2 = streamed(&store, &stream_cmd(16 << 20)).unwrap();
    assert!(b2.added < 64 * 1024, "a repeated stream added {}", b2.added);
    // And a file-stored backup of the same stream shares its chunks.
    let b3 = store
        .backup_command(&meta("db"), &stream_cmd(16 << 20), &path_env(), tmp.path())
        .unwrap();
    assert!(
        b3.added < 64 * 1024,
        "the same stream from a file added {}",
        b3.added
    );
    // Marking it verified keeps its id.
    let v = store.mark_verified(&b.id, "2026-12-07T10:00:00Z").unwrap();
    assert_eq!(v.id, b.id);
    assert_eq!(store.list().unwrap().len(), 3);
}

#[test]
fn a_failed_streamed_command_is_never_listed_and_its_leftovers_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let pwfile = tmp.path().join("pw");
    fs_err::write(&pwfile, PASSWORD).unwrap();
    for script in [
        "yes partial | head -c 3000000; exit 3",
        "yes partial | head -c 3000000; kill -9 $$",
        "echo oops >&2; exit 1",
    ] {
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into()];
        let err = streamed(&store, &argv).expect_err("a failed command is an error");
        assert!(err.to_string().contains("no backup was kept"), "{err}");
        assert!(store.list().unwrap().is_empty());
        assert!(
            restic_snapshots(&dir, &pwfile).is_empty(),
            "the pending snapshot is removed"
        );
    }
    // A pending snapshot left by a backup killed before it could remove
    // it (made here by hand, as the killed run left it): never listed,
    // and removed by the next streamed backup.
    let argv = stream_cmd(1 << 20);
    streamed(&store, &argv).unwrap();
    let out = restic(
        &dir,
        &pwfile,
        &[
            "tag",
            "--add",
            cove_backup::stream::PENDING_TAG,
            "--remove",
            "cove",
            "latest",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        store.list().unwrap().is_empty(),
        "a pending snapshot is not listed: {:?}",
        restic_snapshots(&dir, &pwfile)
    );
    assert_eq!(restic_snapshots(&dir, &pwfile).len(), 1);
    let next = streamed(&store, &argv).unwrap();
    assert_eq!(store.list().unwrap(), vec![next]);
    assert_eq!(
        restic_snapshots(&dir, &pwfile).len(),
        1,
        "the leftover is gone"
    );
}
