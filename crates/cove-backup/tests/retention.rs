//! Retention against a real repository on disk: the policy's choice is
//! what is removed, the newest verified backup stays, a prune frees the
//! removed backups' bytes and the packs a killed backup left unindexed,
//! and Debian's `restic` finds the repository sound afterwards.

use std::process::Command;

use cove_backup::retention::{Policy, Reason, dir_bytes};
use cove_backup::{Meta, Store};
use jiff::tz::TimeZone;

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

/// 3 MiB that no other backup shares (random): each backup adds its own
/// packs, which a prune can free.
fn random_cmd() -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        "head -c 3145728 /dev/urandom".into(),
    ]
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
}

#[test]
fn keep_last_2_removes_the_rest_but_the_newest_verified_and_prune_frees_their_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let scratch = tmp.path().join("scratch");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let b = store
            .backup_command(&meta("db"), &random_cmd(), &path_env(), &scratch)
            .unwrap();
        ids.push(b.id);
    }
    // Another service's backup: never touched by db's policy.
    let other = store
        .backup_command(&meta("cache"), &random_cmd(), &path_env(), &scratch)
        .unwrap();
    // The second oldest is verified, then the oldest (so the newest
    // verified is ids[1]).
    store
        .mark_verified(&ids[0], "2026-01-01T00:00:00Z")
        .unwrap();
    store
        .mark_verified(&ids[1], "2026-01-02T00:00:00Z")
        .unwrap();
    let policy = Policy {
        last: Some(2),
        ..Policy::default()
    };
    let plan = store
        .retention("demo", "default", "db", &policy, None, &TimeZone::UTC)
        .unwrap();
    let keep: Vec<&str> = plan
        .iter()
        .filter(|p| !p.reasons.is_empty())
        .map(|p| p.backup.id.as_str())
        .collect();
    assert_eq!(keep, [&ids[4], &ids[3], &ids[1]]);
    assert_eq!(plan[3].reasons, [Reason::NewestVerified]);
    let remove: Vec<String> = plan
        .iter()
        .filter(|p| p.reasons.is_empty())
        .map(|p| p.backup.id.clone())
        .collect();
    assert_eq!(remove, [ids[2].clone(), ids[0].clone()]);

    // A backup killed while storing: a pack no index lists.
    let stray_dir = dir.join("data").join("ab");
    fs_err::create_dir_all(&stray_dir).unwrap();
    let stray = stray_dir.join(format!("ab{}", "0".repeat(62)));
    fs_err::write(&stray, vec![7u8; 1 << 20]).unwrap();

    assert_eq!(store.forget(&remove).unwrap(), 2);
    let left: Vec<String> = store.list().unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(
        left,
        [
            ids[1].clone(),
            ids[3].clone(),
            ids[4].clone(),
            other.id.clone()
        ]
    );
    let before = dir_bytes(&dir.join("data"));
    let pruned = store.prune().unwrap();
    let after = dir_bytes(&dir.join("data"));
    eprintln!(
        "prune: {} pack(s), data {} -> {} bytes",
        pruned.packs, pruned.bytes_before, pruned.bytes_after
    );
    assert_eq!((pruned.bytes_before, pruned.bytes_after), (before, after));
    // Two 3 MiB backups and the 1 MiB stray pack are gone (compression
    // cannot shrink random bytes).
    assert!(
        before - after >= 7 * (1 << 20),
        "freed {} bytes",
        before - after
    );
    assert!(!stray.exists());
    // What is left reads back whole, and restic finds the repository sound.
    for id in &left {
        store.check(id).unwrap();
    }
    let pw = tmp.path().join("pw");
    fs_err::write(&pw, PASSWORD).unwrap();
    let out = Command::new("restic")
        .arg("-r")
        .arg(&dir)
        .arg("--password-file")
        .arg(&pw)
        .args(["--no-cache", "check"])
        .output()
        .expect("restic runs (Debian's `restic` package; scripts/test installs it)");
    assert!(
        out.status.success(),
        "restic check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_newest_backup_is_kept_even_by_a_policy_of_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let scratch = tmp.path().join("scratch");
    let store = Store::open_or_init(&dir, PASSWORD).unwrap();
    let a = store
        .backup_command(&meta("db"), &random_cmd(), &path_env(), &scratch)
        .unwrap();
    let b = store
        .backup_command(&meta("db"), &random_cmd(), &path_env(), &scratch)
        .unwrap();
    let zero = Policy {
        last: Some(0),
        ..Policy::default()
    };
    let plan = store
        .retention("demo", "default", "db", &zero, Some(&b.id), &TimeZone::UTC)
        .unwrap();
    assert_eq!(plan[0].backup.id, b.id);
    assert_eq!(plan[0].reasons, [Reason::JustTaken]);
    assert_eq!(plan[1].backup.id, a.id);
    assert!(plan[1].reasons.is_empty());
}
