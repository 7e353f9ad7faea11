//! Scheduled backups and retention end to end, with a real Redis under
//! `cove up`: a 6-field schedule makes the daemon take backups (seen in
//! `cove backup status` and `cove events`), `cove down` stops it, a
//! file without the schedule (`cove up`) has none; `keep: 2` leaves the
//! two newest and the newest verified backup; `forget --dry-run` removes
//! nothing; `forget` removes what the policy says and its prune frees the
//! bytes only the removed backup held.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::backup_app::BackupApp;
use crate::daemon::eventually_ok;
use crate::recipes::require;

/// An app with its own identity and secrets file, up ([`BackupApp`]).
struct Fixture(BackupApp);

impl std::ops::Deref for Fixture {
    type Target = BackupApp;
    fn deref(&self) -> &BackupApp {
        &self.0
    }
}

impl Fixture {
    fn new(yaml: &str) -> Fixture {
        Fixture(BackupApp::new(yaml))
    }

    fn write(&self, yaml: &str) {
        fs_err::write(self.dir().join("compose.yaml"), yaml).unwrap();
    }

    /// The ids of the backups, oldest first.
    fn ids(&self) -> Vec<String> {
        let out = self.ok(&["backup", "ls", "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.ok(&["backup", "status", "--format", "json"]);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// `INPUT | redis-cli ARGS` beside the replica.
    fn redis(&self, input: &str, args: &str) -> String {
        self.ok(&[
            "exec",
            "cache",
            "sh",
            "-c",
            &format!("{input} | redis-cli -h \"$HOST\" -p \"$PORT\" {args}"),
        ])
        .stdout
    }
}

fn app(backup: &str) -> String {
    format!(
        r#"
services:
  cache:
    image: redis:7
    x-cove:
      backup: {backup}
"#
    )
}

/// Bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    fs_err::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                bytes_under(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[test]
fn a_schedule_takes_backups_until_down_and_keep_forget_and_prune_act() {
    require(&["redis-cli", "redis-server"]);
    let f = Fixture::new(&app(r#"{schedule: "*/2 * * * * *", keep: 2}"#));

    // The daemon takes backups on its own: 3 runs that succeeded.
    let mut seen: Vec<String> = Vec::new();
    eventually_ok(240, "3 scheduled backups", || {
        let s = f.status();
        let row = &s[0];
        assert_eq!(row["service"], "cache", "{s}");
        assert_eq!(row["schedule"], "*/2 * * * * *", "{s}");
        if let Some(last) = row["last_backup"].as_object() {
            assert_eq!(last["ok"], true, "a scheduled backup failed: {s}");
            let started = last["started"].as_str().unwrap().to_string();
            if !seen.contains(&started) {
                seen.push(started);
            }
        }
        if seen.len() >= 3 {
            Ok(s)
        } else {
            Err(format!("{} so far: {s}", seen.len()))
        }
    });
    let table = f.ok(&["backup", "status"]).stdout;
    assert!(
        table.contains("cache") && table.contains("*/2 * * * * *") && table.contains(" ok"),
        "{table}"
    );
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]);
    assert!(
        events.stdout.contains("service backup cache"),
        "an event per scheduled backup: {events}"
    );
    // Their output is in the project's logs.
    let logs = f.ok(&["logs", "--no-color"]);
    assert!(
        logs.stdout.contains("cache-backup") && logs.stdout.contains("backed up cache"),
        "{logs}"
    );

    // `cove down` stops the schedule: no backup in the next 3 periods.
    f.ok(&["down"]);
    let after_down = f.ids();
    assert!(!after_down.is_empty());
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(f.ids(), after_down, "no backup after `cove down`");
    let s = f.ok(&["backup", "status"]).stdout;
    assert!(s.contains("not scheduled: the app is not up"), "{s}");

    // Up again without a schedule (keep stays): nothing is scheduled.
    f.write(&app("{keep: 2}"));
    f.ok(&["up", "-d"]);
    let s = f.status();
    assert_eq!(s[0]["schedule"], serde_json::Value::Null, "{s}");
    assert_eq!(s[0]["next_backup"], serde_json::Value::Null, "{s}");

    // keep: 2, with the older of the two newest verified (as a restore
    // drill marks it).
    let ids = f.ids();
    assert!(ids.len() >= 2, "{ids:?}");
    let verified = ids[ids.len() - 2].clone();
    let older = ids[ids.len() - 1].clone();
    let password = f
        .ok(&["secrets", "get", "COVE_BACKUP_PASSWORD"])
        .stdout
        .trim_end()
        .to_string();
    let store = cove_backup::Store::open_or_init(&f.repo(), &password).unwrap();
    store
        .mark_verified(&verified, "2026-01-01T00:00:00Z")
        .unwrap();
    // A megabyte only the next backup holds (random: no compression, no
    // deduplication with anything else).
    f.redis("head -c 786432 /dev/urandom | base64 -w0", "-x SET big");
    f.ok(&["backup", "cache"]);
    let holds_big = f.ids().last().unwrap().clone();
    f.redis("true", "DEL big");
    let out = f.ok(&["backup", "cache"]);
    let newest = f.ids().last().unwrap().clone();
    // The two newest and the newest verified: `older` went (it is neither).
    let mut left = f.ids();
    left.sort();
    let mut expected = vec![newest.clone(), holds_big.clone(), verified.clone()];
    expected.sort();
    assert_eq!(left, expected, "keep 2 + the newest verified: {out}");
    assert!(!left.contains(&older));
    // Status reads the repository too: its newest and newest verified.
    let s = f.status();
    assert_eq!(s[0]["newest"]["id"], newest.as_str(), "{s}");
    assert_eq!(s[0]["newest_verified"]["id"], verified.as_str(), "{s}");
    assert_eq!(
        s[0]["newest_verified"]["verified"], "2026-01-01T00:00:00Z",
        "{s}"
    );

    // keep: 1 now: a dry run says what would go and removes nothing.
    f.write(&app("{keep: 1}"));
    let dry = f.ok(&["backup", "forget", "--dry-run"]);
    let line = |id: &str| {
        dry.stdout
            .lines()
            .find(|l| l.contains(&id[..8]))
            .unwrap_or_else(|| panic!("{id} in {dry}"))
            .to_string()
    };
    assert!(line(&holds_big).trim_start().starts_with("remove"), "{dry}");
    assert!(line(&newest).contains("last"), "{dry}");
    assert!(line(&verified).contains("newest verified"), "{dry}");
    let mut now = f.ids();
    now.sort();
    assert_eq!(now, expected, "a dry run removes nothing");

    // Forget removes it, and the prune frees what only it held.
    let before = bytes_under(&f.repo().join("data"));
    let out = f.ok(&["backup", "forget"]);
    let after = bytes_under(&f.repo().join("data"));
    let mut left = f.ids();
    left.sort();
    let mut expected = vec![newest, verified];
    expected.sort();
    assert_eq!(left, expected, "{out}");
    eprintln!("forget + prune: data {before} -> {after} bytes");
    assert!(
        before > after && before - after >= 512 * 1024,
        "the removed backup's megabyte freed: {before} -> {after}: {out}"
    );
    // What is left reads back whole.
    f.ok(&["backup", "check"]);
}

/// How many times daemon.log says a missed time is run now.
fn catch_ups(f: &Fixture) -> usize {
    fs_err::read_to_string(f.dir().join(".cove/daemon.log"))
        .unwrap_or_default()
        .matches("was missed while the daemon was down")
        .count()
}

/// The `started` of the last scheduled backup, once it succeeded.
fn last_started(f: &Fixture) -> Result<String, String> {
    let s = f.status();
    match s[0]["last_backup"].as_object() {
        Some(last) if last["ok"] == true => Ok(last["started"].as_str().unwrap().to_string()),
        Some(_) => panic!("a scheduled backup failed: {s}"),
        None => Err(format!("none yet: {s}")),
    }
}

#[test]
fn times_missed_while_the_daemon_was_killed_run_once_and_none_after_a_down() {
    require(&["redis-cli", "redis-server"]);
    let f = Fixture::new(&app(r#"{schedule: "*/4 * * * * *"}"#));
    // A first scheduled backup: the record holds a time handled.
    let first = eventually_ok(120, "a scheduled backup", || last_started(&f));

    // The daemon SIGKILLed; two times or more pass while it is down.
    let daemon = f.app.daemon_pid().expect("a daemon runs");
    let killed = Command::new("kill")
        .args(["-9", &daemon.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    crate::daemon::eventually(10, "the daemon to die", || !crate::up::alive(daemon));
    std::thread::sleep(Duration::from_secs(9));
    assert_eq!(catch_ups(&f), 0);
    f.ok(&["up", "-d"]);
    // Once, not once per missed time; and scheduled runs go on after it.
    crate::daemon::eventually(60, "the catch-up of the missed times", || {
        catch_ups(&f) >= 1
    });
    let mut seen = vec![first];
    eventually_ok(120, "2 more scheduled backups after the catch-up", || {
        let s = last_started(&f)?;
        if !seen.contains(&s) {
            seen.push(s);
        }
        if seen.len() >= 3 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert_eq!(catch_ups(&f), 1, "one catch-up for the missed times");

    // `down`, then `up` after a while: the time it was down is not missed.
    f.ok(&["down"]);
    std::thread::sleep(Duration::from_secs(9));
    f.ok(&["up", "-d"]);
    let before = last_started(&f).unwrap();
    eventually_ok(120, "a scheduled backup after `up`", || {
        let s = last_started(&f)?;
        if s != before { Ok(()) } else { Err(s) }
    });
    assert_eq!(catch_ups(&f), 1, "no catch-up after `cove down`");
}

/// `x-cove.backup.verify` as a schedule: the daemon runs the restore drill
/// (`cove backup verify --latest SERVICE`) on its own, the newest backup is
/// marked verified, status and events say so; a drill that fails (its
/// check command exits 1) is recorded as failed and marks nothing.
#[test]
fn scheduled_drills_verify_the_newest_backup() {
    require(&["redis-cli", "redis-server"]);
    let f = Fixture::new(&app(r#"{verify: "*/3 * * * * *"}"#));
    f.redis("seq 1 50 | sed 's/.*/SET k& v&/'", "");
    f.ok(&["backup", "cache"]);
    let id = f.ids().last().unwrap().clone();
    let verified = || -> Result<String, String> {
        let out = f.ok(&["backup", "ls", "--format", "json"]);
        let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let b = all
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id.as_str())
            .cloned()
            .ok_or_else(|| format!("{id} gone: {all}"))?;
        b["verified"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("not verified yet: {b}"))
    };
    eventually_ok(180, "a scheduled drill to verify the backup", verified);
    let s = f.status();
    assert_eq!(s[0]["verify"], "*/3 * * * * *", "{s}");
    assert_eq!(s[0]["last_verify"]["ok"], true, "{s}");
    assert!(s[0]["next_verify"].is_string(), "{s}");
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]).stdout;
    assert!(
        events.contains("service verify cache"),
        "an event for the drill: {events}"
    );

    // A check that fails: the drill is recorded as failed, nothing marked.
    f.write(&app(
        r#"{verify: {schedule: "*/3 * * * * *", command: "exit 1"}}"#,
    ));
    f.ok(&["up", "-d"]);
    f.ok(&["backup", "cache"]);
    let second = f.ids().last().unwrap().clone();
    eventually_ok(180, "a scheduled drill to fail", || {
        let s = f.status();
        match s[0]["last_verify"]["ok"].as_bool() {
            Some(false) => Ok(()),
            _ => Err(format!("{s}")),
        }
    });
    let out = f.ok(&["backup", "ls", "--format", "json"]);
    let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let b = all
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == second.as_str())
        .unwrap();
    assert!(b["verified"].is_null(), "a failed drill marks nothing: {b}");
    let events = f.ok(&["events", "--since", "10m", "--until", "0s"]).stdout;
    assert!(events.contains("service verify-failed cache"), "{events}");
}
