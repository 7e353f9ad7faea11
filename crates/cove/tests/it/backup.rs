//! `cove backup`, `cove backup ls|check`, `cove restore` against real
//! PostgreSQL, MariaDB and Redis under `cove up`: each round trip restores
//! the data as it was at the backup (per-table checksums, key sets); no
//! password is on any process's command line while a backup runs, nor in
//! `backup ls`; a flipped byte in the repository is found by `check` and
//! refuses `restore`; a failed dump leaves no backup; Debian's `restic`
//! lists and dumps what cove stored.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backup_app::{BackupApp, pg_checksums, psql, restic};
use crate::daemon::Out;
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

    /// `cove backup ARGS`, while another thread reads every process's
    /// command line: none may hold any of `secrets`.
    fn backup_watched(&self, args: &[&str], secrets: &[String]) -> Out {
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let stop = stop.clone();
            let secrets = secrets.to_vec();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut scans = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    scans += 1;
                    for e in fs_err::read_dir("/proc").unwrap().flatten() {
                        let Ok(cmdline) = fs_err::read(e.path().join("cmdline")) else {
                            continue;
                        };
                        let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                        if secrets.iter().any(|s| line.contains(s.as_str())) {
                            seen.push(line);
                        }
                    }
                }
                (seen, scans)
            })
        };
        let mut all = vec!["backup"];
        all.extend(args);
        let out = self.cove(&all);
        stop.store(true, Ordering::Relaxed);
        let (seen, scans) = watcher.join().unwrap();
        assert!(scans > 1, "the command lines were read while it ran");
        assert!(seen.is_empty(), "a password on a command line: {seen:?}");
        out
    }

    fn backups(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["backup", "ls", "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

const PG_PASSWORD: &str = "pg-backup-secret-7f3a";

const POSTGRES: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "pg-backup-secret-7f3a"
      POSTGRES_DB: orders
"#;

#[test]
fn postgres_round_trip_check_corruption_failed_dump_and_restic() {
    require(&["psql", "pg_dump", "pg_restore", "restic"]);
    let f = Fixture::new(POSTGRES);
    psql(
        &f,
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int); \
         INSERT INTO items SELECT g, 'item ' || g, g % 97 FROM generate_series(1, 20000) g; \
         CREATE TABLE notes (id int PRIMARY KEY, body text); \
         INSERT INTO notes SELECT g, repeat('n', g % 50) FROM generate_series(1, 3000) g",
    );
    let at_backup = pg_checksums(&f);

    let out = f.backup_watched(&["pg"], &[PG_PASSWORD.to_string()]);
    assert_eq!(out.code, Some(0), "{out}");
    let repo_pw = f.repo_password();
    assert_eq!(repo_pw.len(), 64, "a random password, made at first use");
    // A second backup, watched for the repository's password too.
    let out = f.backup_watched(&[], &[PG_PASSWORD.to_string(), repo_pw.clone()]);
    assert_eq!(
        out.code,
        Some(0),
        "the default: every service with data: {out}"
    );
    let listed = f.backups();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for b in &listed {
        assert_eq!(b["service"], "pg");
        assert_eq!(b["method"], "pg_dump");
        assert!(b["size"].as_u64().unwrap() > 0);
    }
    let ls = f.ok(&["backup", "ls", "--format", "json"]).stdout + &f.ok(&["backup", "ls"]).stdout;
    assert!(!ls.contains(PG_PASSWORD) && !ls.contains(&repo_pw), "{ls}");

    // Changed after the backup: rows deleted, updated, a table dropped.
    psql(
        &f,
        "DELETE FROM items WHERE id % 3 = 0; UPDATE items SET qty = -1 WHERE id < 100; DROP TABLE notes",
    );
    // Without a terminal and without --yes: refused, nothing changed.
    let out = f.cove(&["restore", "pg"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("--yes"), "{out}");
    assert_eq!(psql(&f, "SELECT count(*) FROM items").trim(), "13334");

    f.ok(&["restore", "pg", "--yes"]);
    assert_eq!(
        pg_checksums(&f),
        at_backup,
        "the data as it was at the backup"
    );

    // Debian's restic lists cove's backups and dumps the same stream.
    let repo = f.dir().join(".cove/backups");
    let out = restic(&repo, &repo_pw, &["snapshots", "--json"], 300);
    assert_eq!(out.code, Some(0), "{out}");
    let snaps: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for b in &listed {
        assert!(ids.contains(&b["id"].as_str().unwrap()), "{ids:?}");
    }
    // To a file (a pipe would fill): bounded by `timeout`.
    let dumped = f.dir().join("restic-dump");
    let pwfile = f.dir().join("restic-pw");
    fs_err::write(&pwfile, &repo_pw).unwrap();
    let status = Command::new("timeout")
        .arg("300")
        .arg("restic")
        .arg("-r")
        .arg(&repo)
        .arg("--password-file")
        .arg(&pwfile)
        .args(["--no-cache", "dump", "latest", "/pg.pg_dump"])
        .stdin(Stdio::null())
        .stdout(fs_err::File::create(&dumped).unwrap().into_parts().0)
        .status()
        .unwrap();
    assert!(status.success(), "restic dump: {status}");
    let bytes = fs_err::read(&dumped).unwrap();
    assert!(
        bytes.starts_with(b"PGDMP"),
        "a pg_dump custom-format archive"
    );
    assert_eq!(
        bytes.len() as u64,
        listed[1]["size"].as_u64().unwrap(),
        "the whole stream"
    );
    let out = restic(&repo, "wrong password", &["snapshots"], 300);
    assert_ne!(out.code, Some(0), "{out}");

    // A dump that fails (its account's password changed) leaves no backup.
    psql(&f, "ALTER USER shop PASSWORD 'changed-pw'");
    let out = f.cove(&["backup", "pg"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("no backup was kept"), "{out}");
    assert_eq!(f.backups().len(), 2);
    // Nor any dump left in the scratch directory (one target: streamed,
    // the directory not even made; else each is removed once stored, or
    // once its command failed).
    let scratch: Vec<_> = match fs_err::read_dir(f.dir().join(".cove/backup-scratch")) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{e}"),
    };
    assert!(scratch.is_empty(), "{scratch:?}");
    let out = restic(&repo, &repo_pw, &["snapshots", "--json"], 300);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2,
        "not even a pending snapshot: {out}"
    );
    f.sh(
        "pg",
        &format!(
            "PGPASSWORD=changed-pw psql -h \"$HOST\" -p \"$PORT\" -U shop -d orders -c \"ALTER USER shop PASSWORD '{PG_PASSWORD}'\""
        ),
    );

    // A flipped byte: `check` finds it and names the file; `restore`
    // refuses and changes nothing.
    f.ok(&["backup", "check"]);
    psql(&f, "DELETE FROM items WHERE id > 10");
    let packs = f.flip_a_byte();
    let names_one = |text: &str| {
        packs
            .iter()
            .any(|p| text.contains(&format!("data/{}/{p}", &p[..2])))
    };
    let out = f.cove(&["backup", "check", "--latest"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(names_one(&out.stderr), "names the file: {out}");
    let out = f.cove(&["restore", "pg", "--yes"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(names_one(&out.stderr), "names the file: {out}");
    assert_eq!(psql(&f, "SELECT count(*) FROM items").trim(), "10");

    // `cove down --volumes` deletes the data, never the backups.
    f.ok(&["down", "--volumes"]);
    assert!(repo.join("config").is_file());
}

const MARIA_ROOT: &str = "maria-root-secret-91c2";

const MARIADB: &str = r#"
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: "maria-root-secret-91c2"
      MARIADB_DATABASE: shop
"#;

fn mariadb(f: &Fixture, sql: &str) -> String {
    f.sh(
        "db",
        &format!(
            "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb --no-defaults --protocol=tcp -h \"$HOST\" -P \"$PORT\" -uroot -N -B shop -e \"{sql}\""
        ),
    )
}

#[test]
fn mariadb_round_trip() {
    require(&["mariadb", "mariadb-dump"]);
    let f = Fixture::new(MARIADB);
    mariadb(
        &f,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), qty INT) ENGINE=InnoDB; \
         INSERT INTO items SELECT seq, CONCAT('item ', seq), seq % 97 FROM seq_1_to_20000; \
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB; \
         INSERT INTO notes SELECT seq, REPEAT('n', seq % 50) FROM seq_1_to_3000",
    );
    let sums = |f: &Fixture| mariadb(f, "CHECKSUM TABLE items, notes EXTENDED");
    let at_backup = sums(&f);
    assert!(at_backup.contains("shop.items"), "{at_backup}");

    let out = f.backup_watched(&["db"], &[MARIA_ROOT.to_string()]);
    assert_eq!(out.code, Some(0), "{out}");
    let listed = f.backups();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["method"], "mariadb-dump");

    mariadb(
        &f,
        "DELETE FROM items WHERE id % 3 = 0; UPDATE items SET qty = -1 WHERE id < 100; DROP TABLE notes",
    );
    f.ok(&["restore", "db", "--yes"]);
    assert_eq!(sums(&f), at_backup, "the data as it was at the backup");
}

const REDIS_PASSWORD: &str = "redis-secret-4d1e";

const REDIS: &str = r#"
services:
  cache:
    image: redis:7
    command: redis-server --requirepass redis-secret-4d1e
"#;

fn redis(f: &Fixture, args: &str) -> String {
    f.sh(
        "cache",
        &format!("REDISCLI_AUTH={REDIS_PASSWORD} redis-cli -h \"$HOST\" -p \"$PORT\" {args}"),
    )
}

/// Every key with its value (string keys), sorted.
fn redis_state(f: &Fixture) -> Vec<String> {
    let keys = redis(f, "--scan");
    let mut out: Vec<String> = keys
        .lines()
        .map(|k| format!("{k}={}", redis(f, &format!("GET {k}")).trim()))
        .collect();
    out.sort();
    out
}

#[test]
fn redis_round_trip() {
    require(&["redis-cli", "redis-server"]);
    let f = Fixture::new(REDIS);
    for i in 0..40 {
        redis(&f, &format!("SET key:{i} value-{i}"));
    }
    let at_backup = redis_state(&f);
    assert_eq!(at_backup.len(), 40);

    let out = f.backup_watched(&[], &[REDIS_PASSWORD.to_string()]);
    assert_eq!(out.code, Some(0), "{out}");
    let listed = f.backups();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["method"], "redis-rdb");
    assert_eq!(listed[0]["service"], "cache");

    redis(&f, "FLUSHALL");
    redis(&f, "SET after backup");
    f.ok(&["restore", "cache", "--yes"]);
    assert_eq!(
        redis_state(&f),
        at_backup,
        "the keys as they were at the backup"
    );
}

#[test]
fn a_service_without_a_method_is_named_with_the_hint() {
    let f = Fixture::new(
        r#"
services:
  web:
    x-cove:
      run: [sleep, "300"]
"#,
    );
    let out = f.cove(&["backup", "web"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("`web`"), "{out}");
    assert!(out.stderr.contains("x-cove.backup.command"), "{out}");
    let out = f.cove(&["backup"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("no service to back up"), "{out}");
}
