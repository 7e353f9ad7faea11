//! `cove backup` / `cove restore` by each method of `x-cove.backup.method`
//! against real services under `cove up`: `command` (a service's own dump
//! and restore commands, run in its environment), `files` (paused, and
//! stopped; Debian's `restic` restores the tree), `lmdb` (`mdb_copy`),
//! `rabbitmq-definitions`, `mariabackup`, `pg_basebackup`. Each round trip:
//! data written, backed up, changed, restored, equal to the backup's.
//! And a method that does not fit its service is refused, naming both.

use std::process::{Command, Stdio};

use crate::backup_app::{BackupApp, psql};
use crate::daemon::{Out, run_bounded};
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

    /// `cove backup SERVICE`, then its one backup's method checked.
    fn backup(&self, service: &str, method: &str) -> Out {
        let out = self.ok(&["backup", service]);
        let listed = self.backups();
        let last = listed.last().unwrap();
        assert_eq!(last["service"], service, "{listed:?}");
        assert_eq!(last["method"], method, "{listed:?}");
        out
    }
}

const PG_COMMAND: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "pg-cmd-secret-51"
      POSTGRES_DB: orders
    x-cove:
      backup:
        command: PGPASSWORD="$$POSTGRES_PASSWORD" pg_dump -h "$$HOST" -p "$$PORT" -U "$$POSTGRES_USER" -Fc "$$POSTGRES_DB"
        restore_command: PGPASSWORD="$$POSTGRES_PASSWORD" pg_restore --clean --if-exists --single-transaction -h "$$HOST" -p "$$PORT" -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"
"#;

fn pg_sum(f: &Fixture) -> String {
    psql(
        f,
        "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM items t",
    )
}

fn pg_fill(f: &Fixture) {
    psql(
        f,
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int); \
         INSERT INTO items SELECT g, 'item ' || g, g % 97 FROM generate_series(1, 20000) g",
    );
}

fn pg_change(f: &Fixture) {
    psql(
        f,
        "DELETE FROM items WHERE id % 3 = 0; UPDATE items SET qty = -1 WHERE id < 100",
    );
}

#[test]
fn command_round_trip_in_the_services_environment() {
    require(&["psql", "pg_dump", "pg_restore"]);
    let f = Fixture::new(PG_COMMAND);
    pg_fill(&f);
    let at_backup = pg_sum(&f);
    // `command` set: the default method is `command`, not the recipe's.
    f.backup("pg", "command");
    pg_change(&f);
    assert_ne!(pg_sum(&f), at_backup);
    f.ok(&["restore", "pg", "--yes"]);
    assert_eq!(pg_sum(&f), at_backup, "the data as it was at the backup");

    // A command that fails leaves no backup.
    psql(&f, "ALTER USER shop PASSWORD 'changed'");
    let out = f.cove(&["backup", "pg"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("no backup was kept"), "{out}");
    assert!(out.stderr.contains("`pg`"), "{out}");
    assert_eq!(f.backups().len(), 1);
}

/// The ROWS a drill printed for `table` (`BACKUP SERVICE TABLE ROWS ...`).
fn figure(stdout: &str, table: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.get(2) == Some(&table)).then(|| w.get(3)?.parse().ok())?
    })
}

const CHECKED: &str = r#"
services:
  app:
    x-cove:
      run: [sleep, "3000"]
      backup:
        method: command
        command: "echo 'orders v1'; seq 1 5000"
        verify: {command: "grep -q '^orders v1$$' \"$$COVE_VERIFY_PATH\" && test $$(wc -l < \"$$COVE_VERIFY_PATH\") = 5001"}
  unchecked:
    x-cove:
      run: [sleep, "3000"]
      backup: {method: command, command: "echo data"}
  wrong:
    x-cove:
      run: [sleep, "3000"]
      backup:
        method: command
        command: "echo data"
        verify: {command: "grep -q absent \"$$COVE_VERIFY_PATH\""}
"#;

#[test]
fn command_backups_are_drilled_by_the_services_own_check() {
    let f = Fixture::new(CHECKED);
    f.ok(&["backup", "app", "unchecked", "wrong"]);
    // Its check sees the restored dump: verified.
    let out = f.ok(&["backup", "verify", "--latest", "app"]);
    assert!(out.stderr.contains("verified"), "{out}");
    let verified = |service: &str| {
        f.backups()
            .iter()
            .any(|b| b["service"] == service && b["verified"].is_string())
    };
    assert!(verified("app"));
    // No check: it cannot be said to restore; not marked, with a hint.
    let out = f.cove(&["backup", "verify", "--latest", "unchecked"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("verify.command") && out.stderr.contains("COVE_VERIFY_PATH"),
        "{out}"
    );
    assert!(!verified("unchecked"));
    // A check that fails: the drill fails, naming it; not marked.
    let out = f.cove(&["backup", "verify", "--latest", "wrong"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("verify.command failed"), "{out}");
    assert!(!verified("wrong"));
}

#[test]
fn pg_basebackup_round_trip() {
    require(&["psql", "pg_basebackup"]);
    let yaml = POSTGRES_PHYSICAL;
    let f = Fixture::new(yaml);
    pg_fill(&f);
    let at_backup = pg_sum(&f);
    f.backup("pg", "pg_basebackup");
    // Its drill: pg_verifybackup on the restored tree, then marked.
    let out = f.ok(&["backup", "verify", "--latest", "pg"]);
    assert!(out.stderr.contains("verified"), "{out}");
    assert!(f.backups()[0]["verified"].is_string(), "{:?}", f.backups());
    pg_change(&f);
    psql(&f, "CREATE TABLE later (id int)");
    assert_ne!(pg_sum(&f), at_backup);
    let out = f.ok(&["restore", "pg", "--yes"]);
    assert!(out.stderr.contains("before-restore"), "{out}");
    assert_eq!(pg_sum(&f), at_backup, "the cluster as it was at the backup");
    assert_eq!(
        psql(
            &f,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'later'"
        )
        .trim(),
        "0"
    );
}

const POSTGRES_PHYSICAL: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "pg-phys-secret-52"
      POSTGRES_DB: orders
    x-cove:
      backup: {method: pg_basebackup}
"#;

const MARIADB_PHYSICAL: &str = r#"
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: "maria-phys-secret-53"
      MARIADB_DATABASE: shop
    x-cove:
      backup: {method: mariabackup}
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
fn mariabackup_round_trip() {
    require(&["mariadb", "mariabackup"]);
    let f = Fixture::new(MARIADB_PHYSICAL);
    mariadb(
        &f,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), qty INT) ENGINE=InnoDB; \
         INSERT INTO items SELECT seq, CONCAT('item ', seq), seq % 97 FROM seq_1_to_20000",
    );
    let sums = |f: &Fixture| mariadb(f, "CHECKSUM TABLE items EXTENDED");
    let at_backup = sums(&f);
    f.backup("db", "mariabackup");
    // Its drill: `mariabackup --prepare` of the restored tree.
    let out = f.ok(&["backup", "verify", "--latest", "db"]);
    assert!(out.stderr.contains("verified"), "{out}");
    mariadb(
        &f,
        "DELETE FROM items WHERE id % 3 = 0; UPDATE items SET qty = -1 WHERE id < 100",
    );
    assert_ne!(sums(&f), at_backup);
    let out = f.ok(&["restore", "db", "--yes"]);
    assert!(out.stderr.contains("mariabackup --prepare"), "{out}");
    assert_eq!(sums(&f), at_backup, "the data as it was at the backup");
}

const FILES: &str = r#"
services:
  alpha:
    x-cove:
      run: [sleep, "3000"]
      backup: {method: files, paths: [pdata]}
  beta:
    x-cove:
      run: [sleep, "3000"]
      backup: {method: files, quiesce: stop, paths: [sdata]}
"#;

fn data_of(service: &str) -> &'static str {
    if service == "alpha" { "pdata" } else { "sdata" }
}

/// Every file under the service's data directory with its content.
fn tree(f: &Fixture, service: &str) -> String {
    f.sh(
        service,
        &format!(
            "cd {} && find . -type f | sort | while read -r p; do echo \"$p $(md5sum < \"$p\")\"; done",
            data_of(service)
        ),
    )
}

#[test]
fn files_paused_and_stopped_round_trip_and_restic_restores_the_tree() {
    require(&["restic", "md5sum"]);
    let f = Fixture::new(FILES);
    for s in ["alpha", "beta"] {
        f.sh(
            s,
            &format!(
                "D={}; mkdir -p $D/sub/deeper && echo one > $D/a.txt && \
                 seq 1 50000 > $D/sub/numbers && echo deep > $D/sub/deeper/x",
                data_of(s)
            ),
        );
    }
    let before_a = tree(&f, "alpha");
    assert!(before_a.contains("./sub/deeper/x"), "{before_a}");
    let out = f.backup("alpha", "files");
    assert!(out.stderr.contains("paused (SIGSTOP)"), "{out}");
    assert!(out.stderr.contains("resumed"), "{out}");
    let before_b = tree(&f, "beta");
    let out = f.backup("beta", "files");
    assert!(
        out.stderr.contains("stopped while its files are read"),
        "{out}"
    );
    assert!(out.stderr.contains("started again and healthy"), "{out}");
    let ps = f.ok(&["ps"]).stdout;
    assert!(!ps.contains("paused"), "resumed after the backup: {ps}");

    for s in ["alpha", "beta"] {
        f.sh(
            s,
            &format!(
                "D={}; echo changed > $D/a.txt && rm -r $D/sub/deeper && echo new > $D/new",
                data_of(s)
            ),
        );
        f.ok(&["restore", s, "--yes"]);
    }
    assert_eq!(tree(&f, "alpha"), before_a, "the files as at the backup");
    assert_eq!(tree(&f, "beta"), before_b, "the files as at the backup");
    // What was there is kept aside.
    let kept: Vec<String> = fs_err::read_dir(f.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");

    // Debian's restic restores the tree as files.
    let pw = f
        .ok(&["secrets", "get", "COVE_BACKUP_PASSWORD"])
        .stdout
        .trim_end()
        .to_string();
    let pwfile = f.dir().join("restic-pw");
    fs_err::write(&pwfile, &pw).unwrap();
    let id = f.backups()[0]["id"].as_str().unwrap().to_string();
    let into = f.dir().join("restic-restored");
    let out = run_bounded(
        Command::new("restic")
            .arg("-r")
            .arg(f.dir().join(".cove/backups"))
            .arg("--password-file")
            .arg(&pwfile)
            .args(["--no-cache", "restore", &id, "--target"])
            .arg(&into)
            .stdin(Stdio::null()),
        300,
    );
    assert_eq!(out.code, Some(0), "{out}");
    let root = into.join("alpha.files");
    assert_eq!(fs_err::read_to_string(root.join("a.txt")).unwrap(), "one\n");
    assert_eq!(
        fs_err::read_to_string(root.join("sub/deeper/x")).unwrap(),
        "deep\n"
    );
    let numbers = fs_err::read_to_string(root.join("sub/numbers")).unwrap();
    assert_eq!(numbers.lines().count(), 50000);
    // Its drill: the tree restored whole (as many bytes as were read).
    let out = f.ok(&["backup", "verify", "--latest", "alpha"]);
    assert_eq!(figure(&out.stdout, "files"), Some(3), "{out}");
}

const LMDB: &str = r#"
services:
  kv:
    x-cove:
      run: [sleep, "3000"]
      backup: {method: lmdb, paths: [kvenv]}
"#;

#[test]
fn lmdb_round_trip() {
    require(&["mdb_copy", "mdb_load", "mdb_dump"]);
    let f = Fixture::new(LMDB);
    // An environment written by LMDB itself (`mdb_load`: key and value
    // lines).
    f.sh(
        "kv",
        "mkdir -p kvenv && for i in $(seq 1 3000); do echo \"key$i\"; echo \"value $i\"; done | mdb_load -T kvenv",
    );
    let dump = |f: &Fixture| f.sh("kv", "mdb_dump -p kvenv");
    let at_backup = dump(&f);
    assert!(at_backup.contains("value 2999"), "{at_backup}");
    f.backup("kv", "lmdb");
    // Its drill: `mdb_stat` opens the restored copy; its entries counted.
    let out = f.ok(&["backup", "verify", "--latest", "kv"]);
    assert!(
        figure(&out.stdout, "main") == Some(3000),
        "3000 entries: {out}"
    );
    f.sh(
        "kv",
        "printf 'key1\\nchanged\\nextra\\nmore\\n' | mdb_load -T kvenv",
    );
    assert_ne!(dump(&f), at_backup);
    f.ok(&["restore", "kv", "--yes"]);
    assert_eq!(dump(&f), at_backup, "the environment as at the backup");
}

const RABBITMQ: &str = r#"
services:
  mq:
    image: rabbitmq:3
    environment:
      RABBITMQ_DEFAULT_USER: app
      RABBITMQ_DEFAULT_PASS: "rabbit-secret-54"
"#;

/// `rabbitmqctl ARGS` against the node, as cove reaches it: `localhost`
/// is the replica's address (its distribution listens there only), at the
/// node's `DIST_PORT`.
fn rabbitmqctl(f: &Fixture, args: &str) -> String {
    f.sh(
        "mq",
        &format!(
            "rc=$(mktemp) && printf '{{host, {{%s}}, [\"localhost\"]}}.\\n{{lookup, [file, native]}}.\\n' \"$(echo $HOST | tr . ,)\" > $rc && \
             DIST_PORT=$(sed -n 's/^DIST_PORT=//p' \"$COVE_SECRETS/rabbitmq-env.conf\") && \
             HOME=\"$COVE_DATA\" RABBITMQ_CONF_ENV_FILE=\"$COVE_SECRETS/rabbitmq-env.conf\" ERL_INETRC=$rc \
             RABBITMQ_CTL_ERL_ARGS=\"-erl_epmd_port $DIST_PORT -dist_listen false\" \
             /usr/lib/rabbitmq/bin/rabbitmqctl -q {args}; s=$?; rm -f $rc; exit $s"
        ),
    )
}

#[test]
fn rabbitmq_definitions_round_trip() {
    require(&["rabbitmq-server"]);
    let f = Fixture::new(RABBITMQ);
    rabbitmqctl(&f, "add_vhost orders");
    rabbitmqctl(&f, "add_user reporter reporter-pw-55");
    rabbitmqctl(&f, "set_permissions -p orders reporter '^r.*' '' '.*'");
    let state = |f: &Fixture| {
        format!(
            "{}|{}",
            rabbitmqctl(f, "list_vhosts"),
            rabbitmqctl(f, "list_users"),
        )
    };
    let at_backup = state(&f);
    let perms = rabbitmqctl(&f, "list_permissions -p orders");
    assert!(perms.contains("reporter"), "{perms}");
    assert!(at_backup.contains("reporter"), "{at_backup}");
    // The recipe's default.
    f.backup("mq", "rabbitmq-definitions");
    // Its drill: the export parses as definitions; its parts counted.
    let out = f.ok(&["backup", "verify", "--latest", "mq"]);
    assert_eq!(figure(&out.stdout, "vhosts"), Some(2), "{out}");
    assert!(figure(&out.stdout, "users").unwrap_or(0) >= 2, "{out}");
    rabbitmqctl(&f, "delete_vhost orders");
    rabbitmqctl(&f, "delete_user reporter");
    assert_ne!(state(&f), at_backup);
    let out = f.ok(&["restore", "mq", "--yes"]);
    assert!(out.stderr.contains("messages are not in"), "{out}");
    assert_eq!(state(&f), at_backup, "the definitions as at the backup");
    assert_eq!(rabbitmqctl(&f, "list_permissions -p orders"), perms);
}

#[test]
fn a_method_that_does_not_fit_is_refused_naming_service_and_field() {
    let f = Fixture::new(
        r#"
services:
  web:
    x-cove:
      run: [sleep, "300"]
      backup: {method: pg_dump}
  worker:
    x-cove:
      run: [sleep, "300"]
      backup: {method: command}
"#,
    );
    let out = f.cove(&["backup", "web"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("service `web`"), "{out}");
    assert!(
        out.stderr.contains("x-cove.backup.method: pg_dump"),
        "{out}"
    );
    assert!(out.stderr.contains("postgres recipe"), "{out}");
    assert!(out.stderr.contains("hint"), "{out}");
    let out = f.cove(&["backup", "worker"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("service `worker`"), "{out}");
    assert!(out.stderr.contains("x-cove.backup.command"), "{out}");
    assert!(f.cove(&["backup", "ls", "--format", "json"]).stdout.trim() == "[]");
}

/// STOMP 1.2 against the replica's broker (`$HOST`, 61613): `send N
/// PREFIX` sends N persistent messages (the last with a receipt, so all are
/// stored when it answers); `take N` receives N (auto ack; a 60-second
/// bound), then whatever else comes in 3 seconds, and prints the bodies.
const STOMP: &str = r#"
import os, socket, sys
def frame(cmd, headers, body=""):
    return (cmd + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n" + body + "\0").encode()
buf = b""
def read(s):
    global buf
    while b"\0" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed")
        buf += chunk
    f, buf = buf.split(b"\0", 1)
    return f.decode().lstrip("\n")
s = socket.create_connection((os.environ["HOST"], 61613), 10)
s.sendall(frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": os.environ["ACTIVEMQ_CONNECTION_USER"], "passcode": os.environ["ACTIVEMQ_CONNECTION_PASSWORD"]}))
assert read(s).startswith("CONNECTED")
mode, n = sys.argv[1], int(sys.argv[2])
if mode == "send":
    for i in range(1, n + 1):
        h = {"destination": "/queue/orders", "persistent": "true"}
        if i == n:
            h["receipt"] = "last"
        s.sendall(frame("SEND", h, f"{sys.argv[3]}{i}"))
    assert read(s).startswith("RECEIPT")
else:
    s.sendall(frame("SUBSCRIBE", {"destination": "/queue/orders", "id": "0", "ack": "auto"}))
    got = []
    s.settimeout(60)
    while len(got) < n:
        got.append(read(s).split("\n\n", 1)[1])
    s.settimeout(3)
    try:
        while True:
            got.append(read(s).split("\n\n", 1)[1])
    except (socket.timeout, TimeoutError):
        pass
    print("\n".join(sorted(got)))
"#;

#[test]
fn activemq_files_stopped_round_trip_keeps_persistent_messages() {
    require(&["java", "python3"]);
    let f = Fixture::new(
        r#"
services:
  broker:
    image: apache/activemq-classic:5.18.3
    environment:
      ACTIVEMQ_CONNECTION_USER: app
      ACTIVEMQ_CONNECTION_PASSWORD: "amq-secret-56"
"#,
    );
    fs_err::write(f.dir().join("stomp.py"), STOMP).unwrap();
    f.ok(&["exec", "broker", "python3", "stomp.py", "send", "20", "m"]);
    // The recipe's default: files, with the broker stopped.
    let out = f.backup("broker", "files");
    assert!(
        out.stderr.contains("stopped while its files are read"),
        "{out}"
    );
    assert!(out.stderr.contains("started again and healthy"), "{out}");
    let mut expected: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    expected.sort();
    let taken = f
        .ok(&["exec", "broker", "python3", "stomp.py", "take", "20"])
        .stdout;
    assert_eq!(
        taken.lines().collect::<Vec<_>>(),
        expected,
        "kept across the stop"
    );
    f.ok(&[
        "exec", "broker", "python3", "stomp.py", "send", "3", "after",
    ]);
    f.ok(&["restore", "broker", "--yes"]);
    let taken = f
        .ok(&["exec", "broker", "python3", "stomp.py", "take", "20"])
        .stdout;
    assert_eq!(
        taken.lines().collect::<Vec<_>>(),
        expected,
        "the queue as at the backup: its 20 messages, not the later ones"
    );
}

/// Six nodes (three masters, three replicas) with `appendonly yes`, as
/// examples/buffs runs them; a failover needs a minute without the master
/// (the default is 15 s), so a restore's stop does not trigger one.
const REDIS_CLUSTER: &str = r#"
x-node: &node
  image: redis:7
  command: redis-server --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 60000 --appendonly yes
services:
  r0: *node
  r1: *node
  r2: *node
  r3: *node
  r4: *node
  r5: *node
  init:
    image: redis:7
    restart: "no"
    environment:
      NODES: r0:6379 r1:6379 r2:6379 r3:6379 r4:6379 r5:6379
    depends_on:
      r0: {condition: service_healthy}
      r1: {condition: service_healthy}
      r2: {condition: service_healthy}
      r3: {condition: service_healthy}
      r4: {condition: service_healthy}
      r5: {condition: service_healthy}
    x-cove:
      run:
        - sh
        - -c
        - >-
          redis-cli --cluster create $$NODES --cluster-replicas 1 --cluster-yes || exit 1;
          for i in $$(seq 300); do
          redis-cli -h r0 -p 6379 cluster info | grep -q cluster_state:ok && exit 0;
          sleep 0.1; done; exit 1
"#;

/// Every key of the master `service` with its value, sorted.
fn node_keys(f: &Fixture, service: &str) -> Vec<String> {
    let out = f.sh(
        service,
        "redis-cli -h \"$HOST\" -p \"$PORT\" --scan | while read -r k; do echo \"$k=$(redis-cli -h \"$HOST\" -p \"$PORT\" GET \"$k\")\"; done",
    );
    let mut keys: Vec<String> = out.lines().map(str::to_string).collect();
    keys.sort();
    keys
}

#[test]
fn redis_cluster_backs_up_and_restores_each_master() {
    require(&["redis-cli", "redis-server"]);
    let f = Fixture::new(REDIS_CLUSTER);
    // The cluster formed (init ran to its end before `up -d` returned?
    // wait for it, bounded).
    // Every node must say so: one that does not yet answers CLUSTERDOWN,
    // which `redis-cli` prints with exit status 0.
    let mut formed = false;
    for _ in 0..300 {
        formed = ["r0", "r1", "r2", "r3", "r4", "r5"].iter().all(|n| {
            f.sh(n, "redis-cli -h \"$HOST\" -p \"$PORT\" cluster info")
                .contains("cluster_state:ok")
        });
        if formed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(formed, "the cluster formed");
    // Each SET must answer OK (an error reply is not an exit status;
    // tried again for 5 s at most).
    f.sh(
        "r0",
        "for i in $(seq 1 300); do for t in $(seq 50); do r=$(redis-cli -c -h \"$HOST\" -p \"$PORT\" SET key:$i value-$i); [ \"$r\" = OK ] && break; sleep 0.1; done; [ \"$r\" = OK ] || { echo \"SET key:$i: $r\" >&2; exit 1; }; done",
    );
    // All 300 stored before the backup (told apart from any loss later).
    let info = f.sh("r0", "redis-cli --cluster info \"$HOST:$PORT\"");
    assert!(info.contains("300 keys in 3 masters"), "{info}");
    let out = f.ok(&["backup"]);
    let listed = f.backups();
    let masters: Vec<String> = listed
        .iter()
        .map(|b| b["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(masters.len(), 3, "one backup per master: {listed:?} {out}");
    assert!(listed.iter().all(|b| b["method"] == "redis-rdb"));
    assert_eq!(
        out.stderr.matches("is a Redis cluster replica").count(),
        3,
        "the replicas passed over, saying so: {out}"
    );
    let replica = ["r0", "r1", "r2", "r3", "r4", "r5"]
        .into_iter()
        .find(|s| !masters.iter().any(|m| m == s))
        .unwrap();
    let out = f.cove(&["backup", replica]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("service `{replica}` is a replica")),
        "{out}"
    );
    let out = f.cove(&["restore", replica, "--yes"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("restore its master"), "{out}");

    let at_backup: Vec<Vec<String>> = masters.iter().map(|m| node_keys(&f, m)).collect();
    let nodes = f.sh("r0", "redis-cli -h \"$HOST\" -p \"$PORT\" cluster nodes");
    assert_eq!(
        at_backup.iter().map(Vec::len).sum::<usize>(),
        300,
        "keys per master {masters:?}: {:?}; {nodes}",
        at_backup.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        at_backup.iter().all(|k| !k.is_empty()),
        "keys on every master"
    );
    f.sh(
        "r0",
        "for i in $(seq 1 300); do redis-cli -c -h \"$HOST\" -p \"$PORT\" SET key:$i changed > /dev/null || exit 1; done; \
         for i in $(seq 301 350); do redis-cli -c -h \"$HOST\" -p \"$PORT\" SET key:$i later > /dev/null || exit 1; done",
    );
    for m in &masters {
        let out = f.ok(&["restore", m, "--yes"]);
        assert!(out.stderr.contains("base of a new AOF"), "{out}");
    }
    let restored: Vec<Vec<String>> = masters.iter().map(|m| node_keys(&f, m)).collect();
    assert_eq!(restored, at_backup, "every master's keys as at the backup");
    // Still masters, the cluster whole.
    let info = f.sh("r0", "redis-cli -h \"$HOST\" -p \"$PORT\" cluster info");
    assert!(info.contains("cluster_state:ok"), "{info}");
}
