//! `cove backup verify` (the restore drill) and `cove restore --to-new`
//! against real PostgreSQL, MariaDB and Redis under `cove up`: a good
//! backup passes, is marked verified (`backup ls`, restic's tag); a backup
//! whose stream is stored intact but is not a loadable dump, or whose
//! recorded figures do not match what it restores, fails, named, and is
//! not marked; a flipped byte in the repository fails, naming the file;
//! the running service's data is the same before and after; `--to-new`
//! gives a reachable instance holding the backup's rows while the service
//! keeps its newer ones, and `--drop` removes it.

use std::process::{Command, Stdio};

use cove_backup::{Meta, Store};

use crate::backup_app::{BackupApp, pg_checksums, psql};
use crate::daemon::{eventually, run_bounded};
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

    fn backups(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["backup", "ls", "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn backup(&self, id: &str) -> serde_json::Value {
        self.backups()
            .into_iter()
            .find(|b| b["id"].as_str().unwrap().starts_with(id))
            .unwrap_or_else(|| panic!("no backup {id}"))
    }

    /// The repository, opened as cove does (its password from the secrets).
    fn store(&self) -> Store {
        let pw = self.ok(&["secrets", "get", "COVE_BACKUP_PASSWORD"]).stdout;
        Store::open_or_init(&self.repo(), pw.trim_end()).unwrap()
    }

    /// Stores `bytes` as a backup like `like` (same service and method),
    /// with `description`: intact in the repository, whatever it holds.
    fn store_stream(
        &self,
        like: &serde_json::Value,
        bytes: &[u8],
        description: Option<String>,
    ) -> String {
        let meta: Meta = serde_json::from_value(like.clone()).unwrap();
        let file = self.dir().join("planted-stream");
        fs_err::write(&file, bytes).unwrap();
        let argv = ["cat".to_string(), file.display().to_string()];
        let env = [("PATH".to_string(), std::env::var("PATH").unwrap())];
        let b = self
            .store()
            .backup_command_described(
                &meta,
                &argv,
                &env,
                &self.dir().join(".cove/backup-scratch"),
                || description,
            )
            .unwrap();
        b.id
    }

    /// The stream of backup `id`, as cove stored it.
    fn stream(&self, id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.store().restore(id, &mut out).unwrap();
        out
    }

    /// Nothing left of drills under `.cove/drill`.
    fn assert_no_drill_left(&self) {
        let left: Vec<_> = fs_err::read_dir(self.dir().join(".cove/drill"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "the scratch instances' files are removed: {left:?}"
        );
    }

    fn restic_tags(&self) -> Vec<String> {
        let pw = self.ok(&["secrets", "get", "COVE_BACKUP_PASSWORD"]).stdout;
        let pwfile = self.dir().join("restic-pw");
        fs_err::write(&pwfile, pw.trim_end()).unwrap();
        let out = run_bounded(
            Command::new("restic")
                .arg("-r")
                .arg(self.repo())
                .arg("--password-file")
                .arg(&pwfile)
                .args(["--no-cache", "snapshots", "--json"])
                .stdin(Stdio::null()),
            300,
        );
        assert_eq!(out.code, Some(0), "{out}");
        let snaps: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        snaps
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
            })
            .collect()
    }
}

/// A restored instance, dropped (`cove restore --drop`) even if a test fails.
struct NewInstance<'a> {
    f: &'a Fixture,
    name: &'static str,
}

impl NewInstance<'_> {
    fn info(&self) -> serde_json::Value {
        let text = fs_err::read_to_string(
            self.f
                .dir()
                .join(format!(".cove/restored/{}/instance.json", self.name)),
        )
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for NewInstance<'_> {
    fn drop(&mut self) {
        let path = self
            .f
            .dir()
            .join(format!(".cove/restored/{}/instance.json", self.name));
        if path.exists() {
            let _ = self.f.cove(&["restore", "--drop", self.name]);
        }
    }
}

fn alive(pid: u64) -> bool {
    fs_err::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

const POSTGRES: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "pg-verify-secret-51b0"
      POSTGRES_DB: orders
    x-cove:
      backup:
        verify:
          command: 'PGPASSWORD="$$COVE_VERIFY_PASSWORD" psql -h "$$COVE_VERIFY_HOST" -p "$$COVE_VERIFY_PORT" -U "$$COVE_VERIFY_USER" -d "$$COVE_VERIFY_DATABASE" -tAc "SELECT count(*) FROM items" > verify-command-saw'
"#;

#[test]
fn postgres_drill_marks_verified_fails_bad_backups_and_restores_beside() {
    require(&["psql", "pg_dump", "pg_restore", "restic"]);
    let f = Fixture::new(POSTGRES);
    psql(
        &f,
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, at timestamptz DEFAULT now(), price float8); \
         INSERT INTO items SELECT g, 'item ' || g, g % 97, now(), g / 7.0 FROM generate_series(1, 20000) g; \
         CREATE TABLE notes (id int PRIMARY KEY, body text); \
         INSERT INTO notes SELECT g, repeat('n', g % 50) FROM generate_series(1, 3000) g",
    );
    f.ok(&["backup", "pg"]);
    let good = f.backups()[0]["id"].as_str().unwrap().to_string();
    // Newer rows in the service: the drill checks the backup's, not these.
    psql(
        &f,
        "INSERT INTO items (id, name, qty) SELECT g, 'new', 0 FROM generate_series(20001, 20100) g",
    );
    let before = pg_checksums(&f);

    let out = f.ok(&["backup", "verify"]);
    let items = out
        .stdout
        .lines()
        .find(|l| l.contains("public.items"))
        .unwrap_or_else(|| panic!("the figures are printed: {out}"));
    assert!(
        items.contains(" 20000 ") && items.ends_with(" equal"),
        "{items}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("public.notes") && l.contains(" 3000 ")),
        "{out}"
    );
    assert_eq!(
        fs_err::read_to_string(f.dir().join("verify-command-saw"))
            .unwrap()
            .trim(),
        "20000",
        "the service's verify command ran against the scratch instance (the backup's rows)"
    );
    assert_eq!(
        pg_checksums(&f),
        before,
        "the running service's data is untouched"
    );
    f.assert_no_drill_left();
    let verified = f.backup(&good)["verified"].clone();
    assert!(verified.is_string(), "marked verified: {verified}");
    let ls = f.ok(&["backup", "ls"]).stdout;
    assert!(ls.lines().next().unwrap().contains("VERIFIED"), "{ls}");
    let row = ls.lines().find(|l| l.starts_with(&good[..8])).unwrap();
    assert!(row.contains(&verified.as_str().unwrap()[..19]), "{ls}");
    assert!(
        f.restic_tags().iter().any(|t| t.starts_with("verified=")),
        "restic sees the tag"
    );

    // The same stream with figures that do not match what it restores.
    let stream = f.stream(&good);
    let like = f.backup(&good);
    let wrong_figures = serde_json::json!({
        "source": {"how": "pg_export_snapshot", "database": "orders", "user": "shop", "figures": {
            "public.items": {"rows": 20000, "sum": "12345"},
            "public.notes": {"rows": 3000, "sum": "1"}
        }}
    });
    // The good backup's real figures, with one table's changed.
    let mismatched = f.store_stream(&like, &stream, Some(wrong_figures.to_string()));
    let out = f.cove(&["backup", "verify", &mismatched[..8]]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("public.items") && out.stderr.contains("checksum"),
        "names the table: {out}"
    );
    assert!(f.backup(&mismatched)["verified"].is_null(), "not marked");
    f.assert_no_drill_left();

    // A stream stored intact that is not a dump pg_restore can load.
    let garbage = f.store_stream(&like, b"PGDMP this is not an archive, just bytes", None);
    let out = f.cove(&["backup", "verify", "--latest"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("does not load") && out.stderr.contains("pg_restore"),
        "{out}"
    );
    assert!(out.stderr.contains(&garbage[..8]), "{out}");
    assert!(f.backup(&garbage)["verified"].is_null(), "not marked");
    assert_eq!(
        pg_checksums(&f),
        before,
        "the running service's data is untouched"
    );

    // The service's verify command failing fails the drill.
    let failing = fs_err::read_to_string(f.dir().join("compose.yaml"))
        .unwrap()
        .replace("> verify-command-saw", "| grep -qx 99");
    fs_err::write(f.dir().join("compose.yaml"), failing).unwrap();
    let out = f.cove(&["backup", "verify", &good[..8]]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("verify.command failed"), "{out}");

    // Restored beside the running service: the backup's rows there, the
    // service's newer ones here.
    let inst = NewInstance {
        f: &f,
        name: "pg-old",
    };
    let out = f.ok(&["restore", "pg", "--to-new", "pg-old", "--from", &good[..8]]);
    let info = inst.info();
    let port = info["port"].as_u64().unwrap();
    assert!(
        out.stdout
            .contains(&format!("psql -h 127.0.0.1 -p {port} -U shop orders")),
        "{out}"
    );
    let pgpass = f.dir().join(".cove/restored/pg-old/pgpass");
    let count = |sql: &str| {
        let out = run_bounded(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "shop",
                    "-d",
                    "orders",
                    "-tA",
                    "-c",
                    sql,
                ])
                .env("PGPASSFILE", &pgpass)
                .stdin(Stdio::null()),
            60,
        );
        assert_eq!(out.code, Some(0), "{out}");
        out.stdout.trim().to_string()
    };
    assert_eq!(count("SELECT count(*) FROM items"), "20000");
    assert_eq!(psql(&f, "SELECT count(*) FROM items").trim(), "20100");
    let list = f.ok(&["restore", "--list-new"]).stdout;
    let row = list
        .lines()
        .find(|l| l.starts_with("pg-old"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("running") && row.contains(&format!("127.0.0.1:{port}")),
        "{list}"
    );
    let taken = f.cove(&["restore", "pg", "--to-new", "pg-old"]);
    assert_eq!(taken.code, Some(1), "the name is taken: {taken}");
    let pid = info["pid"].as_u64().unwrap();
    assert!(alive(pid));
    f.ok(&["restore", "--drop", "pg-old"]);
    assert!(!alive(pid), "stopped");
    assert!(
        !f.dir().join(".cove/restored/pg-old").exists(),
        "its data deleted"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_err());
    drop(inst);

    // A flipped byte in the repository: the drill fails naming the file.
    let packs = f.flip_a_byte();
    let out = f.cove(&["backup", "verify", &good[..8]]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        packs
            .iter()
            .any(|p| out.stderr.contains(&format!("data/{}/{p}", &p[..2]))),
        "names the file: {out}"
    );
    assert_eq!(
        pg_checksums(&f),
        before,
        "the running service's data is untouched"
    );
    f.assert_no_drill_left();
}

const MARIADB: &str = r#"
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: "maria-verify-secret-0a7e"
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
fn mariadb_drill_and_restore_beside() {
    require(&["mariadb", "mariadb-dump", "mariadbd"]);
    let f = Fixture::new(MARIADB);
    mariadb(
        &f,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), qty INT) ENGINE=InnoDB; \
         INSERT INTO items SELECT seq, CONCAT('item ', seq), seq % 97 FROM seq_1_to_20000",
    );
    // Nothing writes now: the source's checksum is the backup's.
    let at_backup = mariadb(&f, "CHECKSUM TABLE items EXTENDED");
    let sum = at_backup.split_whitespace().last().unwrap().to_string();
    f.ok(&["backup", "db"]);
    let good = f.backups()[0]["id"].as_str().unwrap().to_string();
    mariadb(&f, "DELETE FROM items WHERE id > 19000");
    let before = mariadb(&f, "CHECKSUM TABLE items EXTENDED");

    let out = f.ok(&["backup", "verify", "db"]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains("shop.items"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains(" 20000 ") && row.contains(&format!(" {sum} ")),
        "the backup's checksum: {row} vs {at_backup}"
    );
    assert!(f.backup(&good)["verified"].is_string());
    assert_eq!(
        mariadb(&f, "CHECKSUM TABLE items EXTENDED"),
        before,
        "untouched"
    );
    f.assert_no_drill_left();

    let like = f.backup(&good);
    let garbage = f.store_stream(&like, b"THIS IS NOT SQL AT ALL;\n", None);
    let out = f.cove(&["backup", "verify", &garbage[..8]]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("does not load") && out.stderr.contains("mariadb"),
        "{out}"
    );
    assert!(f.backup(&garbage)["verified"].is_null());

    let inst = NewInstance {
        f: &f,
        name: "db-old",
    };
    let out = f.ok(&["restore", "db", "--to-new", "db-old", "--from", &good[..8]]);
    assert!(
        out.stdout.contains("mariadb --defaults-extra-file="),
        "{out}"
    );
    let cnf = f.dir().join(".cove/restored/db-old/client.cnf");
    let out = run_bounded(
        Command::new("mariadb")
            .arg(format!("--defaults-extra-file={}", cnf.display()))
            .args(["-N", "-B", "shop", "-e", "SELECT COUNT(*) FROM items"])
            .stdin(Stdio::null()),
        60,
    );
    assert_eq!(out.stdout.trim(), "20000", "{out}");
    assert_eq!(mariadb(&f, "SELECT COUNT(*) FROM items").trim(), "19000");
    let pid = inst.info()["pid"].as_u64().unwrap();
    f.ok(&["restore", "--drop", "db-old"]);
    assert!(!alive(pid));
    assert!(!f.dir().join(".cove/restored/db-old").exists());
}

const REDIS_PASSWORD: &str = "redis-verify-secret-77c3";

const REDIS: &str = r#"
services:
  cache:
    image: redis:7
    command: redis-server --requirepass redis-verify-secret-77c3 --appendonly yes
    x-cove:
      backup:
        verify:
          command: "while [ -e hold ]; do sleep 0.1; done"
"#;

fn redis(f: &Fixture, args: &str) -> String {
    f.sh(
        "cache",
        &format!("REDISCLI_AUTH={REDIS_PASSWORD} redis-cli -h \"$HOST\" -p \"$PORT\" {args}"),
    )
}

#[test]
fn redis_drill_and_restore_beside() {
    require(&["redis-cli", "redis-server"]);
    let f = Fixture::new(REDIS);
    for i in 0..40 {
        redis(&f, &format!("SET key:{i} value-{i}"));
    }
    f.ok(&["backup", "cache"]);
    let good = f.backups()[0]["id"].as_str().unwrap().to_string();
    redis(&f, "SET after backup");
    let before = redis(&f, "DBSIZE");

    let out = f.ok(&["backup", "verify", "--latest"]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(" db0 "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(" 40 "), "{row}");
    assert!(out.stdout.lines().any(|l| l.contains(" dataset ")), "{out}");
    assert!(f.backup(&good)["verified"].is_string());
    assert_eq!(redis(&f, "DBSIZE"), before, "untouched");
    f.assert_no_drill_left();

    let like = f.backup(&good);
    let mut rdb = f.stream(&good);
    // An RDB whose CRC no longer matches its bytes.
    let mid = rdb.len() / 2;
    rdb[mid] ^= 0x01;
    let bad = f.store_stream(&like, &rdb, None);
    let out = f.cove(&["backup", "verify", &bad[..8]]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("exited"),
        "Redis refused to load it: {out}"
    );
    assert!(f.backup(&bad)["verified"].is_null());

    // A cove killed in the middle of a drill leaves its scratch server
    // running; the next drill stops it and removes its files.
    fs_err::write(f.dir().join("hold"), "").unwrap();
    let mut killed = {
        use std::os::unix::process::CommandExt as _;
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(f.dir())
            .args(["backup", "verify", &good[..8]])
            .env("NO_COLOR", "1")
            .env("COVE_IDENTITY", &f.identity)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let group = killed.id();
    let kill_group = || {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{group}")])
            .status();
    };
    let mut server = None;
    eventually(120, "the drill's scratch server runs", || {
        server = fs_err::read_dir(f.dir().join(".cove/drill"))
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs_err::read_to_string(e.path().join("i/server.pid")).ok())
            .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
            .find(|p| alive(*p));
        server.is_some() || killed.try_wait().unwrap().is_some()
    });
    kill_group();
    let _ = killed.wait();
    let server = server.expect("the drill started its server");
    struct Kill(u64);
    impl Drop for Kill {
        fn drop(&mut self) {
            if alive(self.0) {
                let _ = Command::new("kill")
                    .args(["-9", &self.0.to_string()])
                    .status();
            }
        }
    }
    let _guard = Kill(server);
    assert!(alive(server), "left running by the killed cove");
    fs_err::remove_file(f.dir().join("hold")).unwrap();
    let out = f.ok(&["backup", "verify", &good[..8]]);
    assert!(out.stderr.contains("removing a drill left"), "{out}");
    assert!(!alive(server), "the leftover server is stopped");
    f.assert_no_drill_left();

    let inst = NewInstance {
        f: &f,
        name: "cache-old",
    };
    let out = f.ok(&[
        "restore",
        "cache",
        "--to-new",
        "cache-old",
        "--from",
        &good[..8],
    ]);
    let port = inst.info()["port"].as_u64().unwrap();
    assert!(
        out.stdout
            .contains(&format!("redis-cli -h 127.0.0.1 -p {port}")),
        "{out}"
    );
    let pw = fs_err::read_to_string(f.dir().join(".cove/restored/cache-old/password")).unwrap();
    let out = run_bounded(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "DBSIZE"])
            .env("REDISCLI_AUTH", pw.trim())
            .stdin(Stdio::null()),
        60,
    );
    assert_eq!(out.stdout.trim(), "40", "the backup's keys: {out}");
    assert_eq!(redis(&f, "DBSIZE").trim(), "41");
    let down = f.ok(&["down"]);
    assert!(
        down.stderr.contains("cache-old"),
        "cove down says the instance still runs: {down}"
    );
    f.ok(&["restore", "--drop", "cache-old"]);
    assert!(!f.dir().join(".cove/restored/cache-old").exists());
}
