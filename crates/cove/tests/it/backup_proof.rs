//! What must hold of backups (issue 25), against real PostgreSQL, MariaDB
//! and Redis under `cove up`:
//!
//! - a backup taken while a writer commits transactions restores exactly a
//!   prefix of them, checked against the writer's log: every transaction
//!   acknowledged before the backup started is there, none begun after it
//!   ended is, no gap, transfers balanced, and every table's checksum equals
//!   the source's over exactly the restored transactions;
//! - a backup killed while it stores (SIGKILL of `cove backup` once the
//!   repository grows) or whose target's disk fills (a small tmpfs) is never
//!   listed, by cove nor by `restic snapshots`; `restic check` finds nothing
//!   but unreferenced packs; the next backup succeeds and restores; a full
//!   scratch disk leaves no dump behind;
//! - a host that lost its data directories comes back with one command,
//!   `cove restore --all --yes`, healthy, with no password on any command
//!   line meanwhile.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backup_app::{BackupApp, restic};
use crate::daemon::{Out, eventually, kill9, run_bounded};
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

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cove"));
        cmd.current_dir(self.dir())
            .args(args)
            .env("NO_COLOR", "1")
            .env("COVE_IDENTITY", &self.identity)
            .stdin(Stdio::null());
        cmd
    }

    fn cove(&self, args: &[&str]) -> Out {
        run_bounded(&mut self.command(args), 900)
    }

    /// `cove backup ls --format json` of `target` (or the default).
    fn backups(&self, target: Option<&Path>) -> Vec<serde_json::Value> {
        let mut args = vec!["backup", "ls", "--format", "json"];
        let t;
        if let Some(dir) = target {
            t = dir.display().to_string();
            args.extend(["--target", &t]);
        }
        let out = self.ok(&args);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// `HOST PORT` of `service`'s replica.
    fn address(&self, service: &str) -> (String, String) {
        let out = self.ok(&["exec", service, "sh", "-c", "echo \"$HOST $PORT\""]);
        let (h, p) = out.stdout.trim().split_once(' ').unwrap();
        (h.to_string(), p.to_string())
    }
}

fn restic_snapshots(repo: &Path, password: &str) -> usize {
    let out = restic(repo, password, &["snapshots", "--json"], 600);
    assert_eq!(out.code, Some(0), "{out}");
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

/// `restic check` passes, or finds nothing but packs no index refers to
/// (what a backup stopped while storing leaves: data of no snapshot).
fn restic_check_clean(repo: &Path, password: &str) -> Out {
    let out = restic(repo, password, &["check"], 600);
    if out.code != Some(0) {
        let text = format!("{}{}", out.stdout, out.stderr);
        let bad: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("error") || l.contains("Fatal") || l.contains("damaged"))
            .filter(|l| !l.contains("not referenced in any index"))
            .filter(|l| !l.contains("repository contains errors"))
            .collect();
        assert!(
            bad.is_empty() && text.contains("not referenced in any index"),
            "restic check found more than unreferenced packs: {out}"
        );
    }
    out
}

/// Packs in the repository's `data` directory.
fn packs(repo: &Path) -> Vec<PathBuf> {
    let Ok(subs) = fs_err::read_dir(repo.join("data")) else {
        return Vec::new();
    };
    subs.flatten()
        .filter_map(|s| fs_err::read_dir(s.path()).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .collect()
}

fn snapshot_files(repo: &Path) -> usize {
    fs_err::read_dir(repo.join("snapshots"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs_err::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A child killed (SIGKILL) and reaped when dropped, if still running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A tmpfs of `size` mounted on `dir` (made), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs_err::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "these tests fill a disk: a tmpfs must be mountable (run as root with CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, should something still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------- engines

const PG_PASSWORD: &str = "proof-pg-secret-2b8e";
const MARIA_ROOT: &str = "proof-maria-secret-6c0d";
const REDIS_PASSWORD: &str = "proof-redis-secret-93af";

const POSTGRES: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "proof-pg-secret-2b8e"
      POSTGRES_DB: orders
"#;

const MARIADB: &str = r#"
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: "proof-maria-secret-6c0d"
      MARIADB_DATABASE: shop
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Pg,
    Maria,
}

/// A database client run here against a replica's address, the password in
/// its environment.
#[derive(Clone)]
struct Sql {
    engine: Engine,
    host: String,
    port: String,
}

impl Sql {
    fn of(f: &Fixture, engine: Engine) -> Sql {
        let (host, port) = f.address(match engine {
            Engine::Pg => "pg",
            Engine::Maria => "db",
        });
        Sql { engine, host, port }
    }

    /// Runs `sql` (one transaction at most, by its own statements).
    fn run(&self, sql: &str) -> Out {
        let mut cmd = match self.engine {
            Engine::Pg => {
                let mut c = Command::new("psql");
                c.args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"])
                    .args([
                        "-h", &self.host, "-p", &self.port, "-U", "shop", "-d", "orders",
                    ])
                    .arg("-c")
                    .arg(sql)
                    .env("PGPASSWORD", PG_PASSWORD);
                c
            }
            Engine::Maria => {
                let mut c = Command::new("mariadb");
                c.args(["--no-defaults", "--protocol=tcp", "-N", "-B", "-uroot"])
                    .args(["-h", &self.host, "-P", &self.port, "shop", "-e"])
                    .arg(sql)
                    .env("MYSQL_PWD", MARIA_ROOT);
                c
            }
        };
        run_bounded(cmd.stdin(Stdio::null()), 300)
    }

    fn query(&self, sql: &str) -> String {
        let out = self.run(sql);
        assert_eq!(out.code, Some(0), "{sql}: {out}");
        out.stdout.trim().to_string()
    }

    fn begin(&self) -> &'static str {
        match self.engine {
            Engine::Pg => "BEGIN",
            Engine::Maria => "START TRANSACTION",
        }
    }

    /// `count:digest` of `table`'s rows (`cols`, in id order) with `cond`.
    fn digest(&self, table: &str, cols: &str, cond: &str) -> String {
        match self.engine {
            Engine::Pg => self.query(&format!(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(concat_ws('|', {cols}), ',' ORDER BY id)), '') FROM {table} WHERE {cond}"
            )),
            Engine::Maria => self.query(&format!(
                "SET SESSION group_concat_max_len = 1073741824; SELECT CONCAT(COUNT(*), ':', COALESCE(MD5(GROUP_CONCAT(CONCAT_WS('|', {cols}) ORDER BY id SEPARATOR ',')), '')) FROM {table} WHERE {cond}"
            )),
        }
    }
}

// ------------------------------------------------- round trip under load

const ACCOUNTS: u64 = 10;
const OPENING: i64 = 1000;
/// The writer's bounds: transactions, and seconds.
const MAX_TX: u64 = 20_000;
const MAX_WRITE_SECS: u64 = 300;
/// Transactions the writer begins after the backup ended, which the
/// restore must not have.
const AFTER_END: u64 = 15;

/// Transaction `i`: `amount` from account `from` to account `to`.
fn transfer(i: u64) -> (u64, u64, i64) {
    let from = i % ACCOUNTS + 1;
    let mut to = (i * 7 + 3) % ACCOUNTS + 1;
    if to == from {
        to = from % ACCOUNTS + 1;
    }
    (from, to, (i % 50 + 1) as i64)
}

/// One committed transaction, as the writer logged it.
#[derive(Debug, Clone, Copy)]
struct Logged {
    id: u64,
    began: Instant,
    acked: Instant,
}

/// Commits transactions 1, 2, ... one at a time until `AFTER_END` of them
/// began after `ended` was set (or the bounds): the log of those
/// acknowledged.
fn writer(sql: Sql, ended: Arc<Mutex<Option<Instant>>>, log: Arc<Mutex<Vec<Logged>>>) {
    let start = Instant::now();
    let mut after_end = 0;
    for i in 1..=MAX_TX {
        if start.elapsed() > Duration::from_secs(MAX_WRITE_SECS) {
            break;
        }
        let began = Instant::now();
        if ended.lock().unwrap().is_some_and(|e| began > e) {
            after_end += 1;
            if after_end > AFTER_END {
                break;
            }
        }
        let (from, to, amount) = transfer(i);
        let out = sql.run(&format!(
            "{}; INSERT INTO ledger (id, src, dst, amt, note) VALUES ({i}, {from}, {to}, {amount}, 'transfer {i}'); \
             UPDATE accounts SET balance = balance - {amount} WHERE id = {from}; \
             UPDATE accounts SET balance = balance + {amount} WHERE id = {to}; COMMIT;",
            sql.begin()
        ));
        assert_eq!(out.code, Some(0), "transaction {i}: {out}");
        log.lock().unwrap().push(Logged {
            id: i,
            began,
            acked: Instant::now(),
        });
    }
}

fn round_trip_under_load(engine: Engine) {
    let (yaml, service) = match engine {
        Engine::Pg => (POSTGRES, "pg"),
        Engine::Maria => (MARIADB, "db"),
    };
    let f = Fixture::new(yaml);
    let sql = Sql::of(&f, engine);
    // A ledger of transfers between accounts, and a static table large
    // enough that the backup takes a while.
    match engine {
        Engine::Pg => sql.query(&format!(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amt bigint NOT NULL, note text); \
             CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL); \
             INSERT INTO accounts SELECT g, {OPENING} FROM generate_series(1, {ACCOUNTS}) g; \
             CREATE TABLE filler (id bigint PRIMARY KEY, a text, b text); \
             INSERT INTO filler SELECT g, md5(g::text), md5((g * 7)::text) FROM generate_series(1, 300000) g"
        )),
        Engine::Maria => sql.query(&format!(
            "CREATE TABLE ledger (id BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amt BIGINT NOT NULL, note TEXT) ENGINE=InnoDB; \
             CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB; \
             INSERT INTO accounts SELECT seq, {OPENING} FROM seq_1_to_{ACCOUNTS}; \
             CREATE TABLE filler (id BIGINT PRIMARY KEY, a VARCHAR(32), b VARCHAR(32)) ENGINE=InnoDB; \
             INSERT INTO filler SELECT seq, MD5(seq), MD5(seq * 7) FROM seq_1_to_300000"
        )),
    };
    let ended: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let log: Arc<Mutex<Vec<Logged>>> = Arc::new(Mutex::new(Vec::new()));
    let handle = {
        let (sql, ended, log) = (sql.clone(), ended.clone(), log.clone());
        std::thread::spawn(move || writer(sql, ended, log))
    };
    // Under load: the writer is committing when the backup starts.
    eventually(120, "the writer committed 20 transactions", || {
        log.lock().unwrap().len() >= 20 || handle.is_finished()
    });
    let started = Instant::now();
    let out = f.cove(&["backup", service]);
    let finished = Instant::now();
    *ended.lock().unwrap() = Some(finished);
    let joined = handle.join();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(joined.is_ok(), "the writer failed (see above)");
    let log = log.lock().unwrap().clone();
    let during = log
        .iter()
        .filter(|t| t.began > started && t.acked < finished)
        .count();
    let before = log.iter().filter(|t| t.acked < started).count();
    let after = log.iter().filter(|t| t.began > finished).count();
    eprintln!(
        "{engine:?}: {} transactions: {before} acknowledged before the backup, {during} within it ({:.1} s), {after} begun after it",
        log.len(),
        (finished - started).as_secs_f64()
    );
    assert!(
        during > 0,
        "no transaction was committed while the backup ran"
    );
    assert!(after > 0, "the writer went on after the backup");

    // The source as it is now (everything committed), kept in tables the
    // backup does not have (so the restore leaves them), to compute its
    // checksums at whichever transaction the backup stopped.
    let copy = |t: &str| match engine {
        Engine::Pg => format!("CREATE TABLE src_{t} AS SELECT * FROM {t}; "),
        Engine::Maria => {
            format!("CREATE TABLE src_{t} LIKE {t}; INSERT INTO src_{t} SELECT * FROM {t}; ")
        }
    };
    sql.query(&format!(
        "{}{}{}",
        copy("ledger"),
        copy("accounts"),
        copy("filler")
    ));
    // Then the data is spoiled, so that the restore has to do it all.
    sql.query(
        "DELETE FROM ledger WHERE id > 5; UPDATE accounts SET balance = 0; DELETE FROM filler WHERE id % 2 = 0",
    );

    f.ok(&["restore", service, "--yes"]);

    // A prefix: ids 1..=k, no gap.
    let shape = sql.query(
        "SELECT CONCAT(COUNT(*), ' ', COALESCE(MIN(id), 0), ' ', COALESCE(MAX(id), 0)) FROM ledger",
    );
    let nums: Vec<u64> = shape
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (count, min, k) = (nums[0], nums[1], nums[2]);
    assert!(count > 0 && min == 1 && count == k, "not a prefix: {shape}");
    // Everything acknowledged before the backup started is there; nothing
    // begun after it ended is.
    let last_acked_before = log
        .iter()
        .filter(|t| t.acked < started)
        .map(|t| t.id)
        .max()
        .unwrap();
    assert!(
        k >= last_acked_before,
        "transaction {last_acked_before} was acknowledged before the backup started, and the restore ends at {k}"
    );
    let first_begun_after = log
        .iter()
        .filter(|t| t.began > finished)
        .map(|t| t.id)
        .min()
        .unwrap();
    assert!(
        k < first_begun_after,
        "transaction {first_begun_after} began after the backup ended, and the restore has up to {k}"
    );
    eprintln!(
        "{engine:?}: restored transactions 1..={k} (acknowledged before: up to {last_acked_before}; begun after: from {first_begun_after})"
    );
    // Balanced, and as the log's transfers 1..=k leave the accounts.
    let mut want = vec![OPENING; ACCOUNTS as usize + 1];
    for i in 1..=k {
        let (from, to, amount) = transfer(i);
        want[from as usize] -= amount;
        want[to as usize] += amount;
    }
    let balances: Vec<i64> = sql
        .query("SELECT balance FROM accounts ORDER BY id")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(balances, want[1..].to_vec(), "the balances after 1..={k}");
    assert_eq!(
        balances.iter().sum::<i64>(),
        OPENING * ACCOUNTS as i64,
        "transfers balance"
    );
    // Every table's checksum equals the source's over exactly 1..=k.
    assert_eq!(
        sql.digest("ledger", "id, src, dst, amt, note", "1 = 1"),
        sql.digest(
            "src_ledger",
            "id, src, dst, amt, note",
            &format!("id <= {k}")
        ),
        "ledger"
    );
    assert_eq!(
        sql.digest("filler", "id, a, b", "1 = 1"),
        sql.digest("src_filler", "id, a, b", "1 = 1"),
        "filler"
    );
    sql.query(&format!(
        "CREATE TABLE at_k AS SELECT a.id, a.balance \
           + COALESCE((SELECT SUM(l.amt) FROM src_ledger l WHERE l.src = a.id AND l.id > {k}), 0) \
           - COALESCE((SELECT SUM(l.amt) FROM src_ledger l WHERE l.dst = a.id AND l.id > {k}), 0) AS balance \
         FROM src_accounts a"
    ));
    assert_eq!(
        sql.digest("accounts", "id, balance", "1 = 1"),
        sql.digest("at_k", "id, balance", "1 = 1"),
        "accounts: the source's, transactions after {k} taken back"
    );
}

#[test]
fn postgres_backup_under_load_restores_a_consistent_prefix_of_the_log() {
    require(&["psql", "pg_dump", "pg_restore"]);
    round_trip_under_load(Engine::Pg);
}

#[test]
fn mariadb_backup_under_load_restores_a_consistent_prefix_of_the_log() {
    require(&["mariadb", "mariadb-dump"]);
    round_trip_under_load(Engine::Maria);
}

// --------------------------------------------------------- killed, full

fn pg_items_digest(sql: &Sql) -> String {
    sql.digest("items", "id, a, b", "1 = 1")
}

#[test]
fn a_backup_killed_while_it_stores_is_never_listed_and_the_next_succeeds() {
    require(&["psql", "pg_dump", "pg_restore", "restic"]);
    let f = Fixture::new(POSTGRES);
    let sql = Sql::of(&f, Engine::Pg);
    sql.query("CREATE TABLE items (id bigint PRIMARY KEY, a text, b text); INSERT INTO items SELECT g, 'x', 'y' FROM generate_series(1, 10) g");
    f.ok(&["backup", "pg"]);
    let repo = f.dir().join(".cove/backups");
    let pw = f.repo_password();
    // A dump of ~100 MB of hex: it takes seconds to store.
    sql.query("INSERT INTO items SELECT g, md5(g::text), md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(11, 1200000) g");
    let at_backup = pg_items_digest(&sql);
    let packs_before = packs(&repo);
    let snaps_before = snapshot_files(&repo);

    let mut child = Reaped(
        f.command(&["backup", "pg"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Killed once the repository grows: the dump runs, and its packs are
    // being written (one target: stored while taken, no file between).
    let deadline = Instant::now() + Duration::from_secs(600);
    let scratch = f.dir().join(".cove/backup-scratch");
    let mut dumped = false;
    loop {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "`cove backup` ended before its repository grew: the window was missed (a faster machine needs a larger dump)"
        );
        dumped |= !entries(&scratch).is_empty();
        if packs(&repo).len() > packs_before.len() {
            kill9(child.0.id());
            break;
        }
        assert!(Instant::now() < deadline, "the repository never grew");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.0.wait();
    assert!(
        !dumped,
        "a dump for one target is streamed, never in the scratch directory"
    );
    let new_packs = packs(&repo).len() - packs_before.len();
    eprintln!("killed with {new_packs} new pack(s) in the repository");

    // Not listed, by cove nor by restic; no snapshot file.
    assert_eq!(f.backups(None).len(), 1, "only the first backup");
    assert_eq!(snapshot_files(&repo), snaps_before);
    assert_eq!(restic_snapshots(&repo, &pw), 1);
    let check = restic_check_clean(&repo, &pw);
    eprintln!("restic check after the kill: {check}");

    // A restore picks the first backup (the only one there is).
    sql.query("DELETE FROM items WHERE id > 5");
    f.ok(&["restore", "pg", "--yes"]);
    assert_eq!(sql.query("SELECT count(*) FROM items"), "10");

    // The next backup succeeds, and restores the data as it was.
    sql.query("INSERT INTO items SELECT g, md5(g::text), md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(11, 1200000) g");
    assert_eq!(pg_items_digest(&sql), at_backup);
    f.ok(&["backup", "pg"]);
    assert_eq!(f.backups(None).len(), 2);
    assert_eq!(restic_snapshots(&repo, &pw), 2);
    assert!(entries(&scratch).is_empty(), "{:?}", entries(&scratch));
    f.ok(&["backup", "check", "--latest"]);
    sql.query("DELETE FROM items WHERE id % 2 = 0");
    f.ok(&["restore", "pg", "--yes"]);
    assert_eq!(pg_items_digest(&sql), at_backup);
}

#[test]
fn a_full_target_or_scratch_disk_leaves_no_backup_and_the_next_succeeds() {
    require(&["psql", "pg_dump", "pg_restore", "restic"]);
    let f = Fixture::new(POSTGRES);
    let sql = Sql::of(&f, Engine::Pg);
    sql.query("CREATE TABLE items (id bigint PRIMARY KEY, a text, b text); INSERT INTO items SELECT g, 'x', 'y' FROM generate_series(1, 10) g");
    let target = f.dir().join("small-disk");
    let _disk = Tmpfs::mount(&target, "48m");
    let t = target.display().to_string();
    f.ok(&["backup", "pg", "--target", &t]);
    let pw = f.repo_password();
    // ~40 MB left taken: some 8 MB free, less than the next backup needs.
    let filler = target.join("filler");
    fs_err::write(&filler, vec![7u8; 40 << 20]).unwrap();
    sql.query("INSERT INTO items SELECT g, md5(g::text), md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(11, 400000) g");
    let at_backup = pg_items_digest(&sql);

    let out = f.cove(&["backup", "pg", "--target", &t]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("no space left on the backup target") && out.stderr.contains(&t),
        "says the target is full, naming it: {out}"
    );
    eprintln!("a full target: {}", out.stderr.trim());
    assert_eq!(f.backups(Some(&target)).len(), 1, "only the first backup");
    assert_eq!(restic_snapshots(&target, &pw), 1);
    let check = restic_check_clean(&target, &pw);
    eprintln!("restic check after the full disk: {check}");
    let scratch = f.dir().join(".cove/backup-scratch");
    assert!(entries(&scratch).is_empty(), "{:?}", entries(&scratch));

    // Space freed: the next backup succeeds, and restores.
    fs_err::remove_file(&filler).unwrap();
    f.ok(&["backup", "pg", "--target", &t]);
    assert_eq!(f.backups(Some(&target)).len(), 2);
    assert_eq!(restic_snapshots(&target, &pw), 2);
    sql.query("DELETE FROM items WHERE id % 3 = 0");
    f.ok(&["restore", "pg", "--yes", "--target", &t]);
    assert_eq!(pg_items_digest(&sql), at_backup);

    // The scratch directory's disk full: a backup to one target does not
    // use it (streamed); one to two (`local`, then the small disk) dumps
    // there first, so it fails, says where, and leaves nothing there.
    let _small_scratch = Tmpfs::mount(&scratch, "4m");
    f.ok(&["backup", "pg", "--target", &t]);
    assert_eq!(f.backups(Some(&target)).len(), 3);
    fs_err::write(
        f.dir().join("compose.yaml"),
        format!(
            "{POSTGRES}x-cove:\n  backup:\n    targets:\n      small: {{url: \"{t}\"}}\n    copies: [local, small]\n"
        ),
    )
    .unwrap();
    let out = f.cove(&["backup", "pg"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("no space left in") && out.stderr.contains(".cove/backup-scratch"),
        "says the scratch directory is full, naming it: {out}"
    );
    eprintln!("a full scratch disk: {}", out.stderr.trim());
    assert!(entries(&scratch).is_empty(), "{:?}", entries(&scratch));
    assert_eq!(f.backups(Some(&target)).len(), 3);
}

// ------------------------------------------------------------ restore all

const WHOLE_APP: &str = r#"
services:
  cache:
    image: redis:7
    command: redis-server --requirepass proof-redis-secret-93af
    depends_on: [db]
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: "proof-maria-secret-6c0d"
      MARIADB_DATABASE: shop
    depends_on: [pg]
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "proof-pg-secret-2b8e"
      POSTGRES_DB: orders
"#;

fn redis_cli(host: &str, port: &str, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .env("REDISCLI_AUTH", REDIS_PASSWORD)
            .stdin(Stdio::null()),
        60,
    );
    assert_eq!(out.code, Some(0), "{out}");
    out.stdout
}

fn redis_state(f: &Fixture) -> Vec<String> {
    let (h, p) = f.address("cache");
    let mut keys: Vec<String> = redis_cli(&h, &p, &["--scan"])
        .lines()
        .map(|k| format!("{k}={}", redis_cli(&h, &p, &["GET", k]).trim()))
        .collect();
    keys.sort();
    keys
}

/// While `f` runs, every process's command line is read again and again:
/// none may hold any of `secrets` (but Redis's server, whose command line is
/// the app's).
fn watched<T>(secrets: &[&str], f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            let (mut seen, mut scans) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                scans += 1;
                for e in fs_err::read_dir("/proc").unwrap().flatten() {
                    let Ok(cmdline) = fs_err::read(e.path().join("cmdline")) else {
                        continue;
                    };
                    let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    // Redis's own command line holds its `--requirepass`,
                    // as the app's compose file wrote it: not cove's doing.
                    if line.starts_with("redis-server ") {
                        continue;
                    }
                    if secrets.iter().any(|s| line.contains(s.as_str())) {
                        seen.push(line);
                    }
                }
            }
            (seen, scans)
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    let (seen, scans) = watcher.join().unwrap();
    assert!(scans > 1, "the command lines were read while it ran");
    assert!(seen.is_empty(), "a password on a command line: {seen:?}");
    out
}

#[test]
fn a_host_that_lost_its_data_is_restored_by_one_command_and_healthy() {
    require(&[
        "psql",
        "pg_dump",
        "pg_restore",
        "mariadb",
        "mariadb-dump",
        "redis-cli",
        "redis-server",
    ]);
    let f = Fixture::new(WHOLE_APP);
    let pg = Sql::of(&f, Engine::Pg);
    let maria = Sql::of(&f, Engine::Maria);
    pg.query("CREATE TABLE items (id bigint PRIMARY KEY, a text, b text); INSERT INTO items SELECT g, md5(g::text), 'pg' FROM generate_series(1, 20000) g");
    maria.query("CREATE TABLE items (id BIGINT PRIMARY KEY, a VARCHAR(32), b VARCHAR(8)) ENGINE=InnoDB; INSERT INTO items SELECT seq, MD5(seq), 'maria' FROM seq_1_to_20000");
    {
        let (h, p) = f.address("cache");
        for i in 0..50 {
            redis_cli(&h, &p, &["SET", &format!("key:{i}"), &format!("value-{i}")]);
        }
    }
    let want = (
        pg_items_digest(&pg),
        maria.digest("items", "id, a, b", "1 = 1"),
        redis_state(&f),
    );
    assert_eq!(want.2.len(), 50);
    f.ok(&["backup"]);
    assert_eq!(f.backups(None).len(), 3);

    // The host loses its data: the app down, every data directory gone.
    f.ok(&["down"]);
    let data = f.dir().join(".cove/data");
    assert!(
        data.is_dir(),
        "the native recipes' data is in {}",
        data.display()
    );
    fs_err::remove_dir_all(&data).unwrap();

    // Without --yes and without a terminal: refused before anything.
    let out = f.cove(&["restore", "--all"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("--yes"), "{out}");
    let out = f.cove(&["restore", "--all", "pg"]);
    assert_eq!(
        out.code,
        Some(2),
        "--all with a service is a usage error: {out}"
    );

    // One command.
    let out = watched(&[PG_PASSWORD, MARIA_ROOT, REDIS_PASSWORD], || {
        f.cove(&["restore", "--all", "--yes"])
    });
    if out.code != Some(0) {
        // What the services said, to tell a failed start from a failed restore.
        let logs = f.cove(&["logs", "--no-color", "--tail", "60"]);
        panic!("cove restore --all --yes: {out}\nlogs: {logs}");
    }
    eprintln!("cove restore --all --yes:\n{}", out.stderr);
    // In dependency order: pg, then db (depends on pg), then cache.
    let at = |s: &str| {
        out.stderr
            .find(&format!("restored {s} from backup"))
            .unwrap_or_else(|| panic!("`{s}` restored: {out}"))
    };
    assert!(at("pg") < at("db") && at("db") < at("cache"), "{out}");

    // Healthy, and the data is back.
    let rows = f.app.ps();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows {
        assert_eq!(r["state"], "running", "{r}");
        assert_eq!(r["ready"], true, "{r}");
        assert_ne!(r["health"], "unhealthy", "{r}");
    }
    let pg = Sql::of(&f, Engine::Pg);
    let maria = Sql::of(&f, Engine::Maria);
    assert_eq!(pg_items_digest(&pg), want.0, "postgres");
    assert_eq!(
        maria.digest("items", "id, a, b", "1 = 1"),
        want.1,
        "mariadb"
    );
    assert_eq!(redis_state(&f), want.2, "redis");
}

const PG_AND_REDIS: &str = r#"
services:
  cache:
    image: redis:7
    command: redis-server --requirepass proof-redis-secret-93af
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "proof-pg-secret-2b8e"
      POSTGRES_DB: orders
"#;

#[test]
fn restore_all_refuses_a_damaged_backup_before_changing_anything() {
    require(&["psql", "pg_dump", "pg_restore", "redis-cli", "redis-server"]);
    let f = Fixture::new(PG_AND_REDIS);
    let pg = Sql::of(&f, Engine::Pg);
    pg.query("CREATE TABLE items (id bigint PRIMARY KEY, a text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    let (h, p) = f.address("cache");
    redis_cli(&h, &p, &["SET", "k", "at-backup"]);
    f.ok(&["backup"]);
    assert_eq!(f.backups(None).len(), 2);
    // Changed since, then every pack of the repository damaged.
    pg.query("DELETE FROM items WHERE id > 10");
    redis_cli(&h, &p, &["SET", "k", "after"]);
    let names = f.flip_a_byte();
    let out = f.cove(&["restore", "--all", "--yes"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        names.iter().any(|n| out.stderr.contains(n.as_str())),
        "names the damaged file: {out}"
    );
    assert!(out.stderr.contains("nothing was"), "{out}");
    assert!(!out.stderr.contains("restored pg"), "{out}");
    // Nothing changed.
    assert_eq!(pg.query("SELECT count(*) FROM items"), "10");
    assert_eq!(redis_cli(&h, &p, &["GET", "k"]).trim(), "after");
}
