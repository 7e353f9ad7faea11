//! The database and broker recipes on a shared host (issue 26): a root
//! `cove` runs them, an unprivileged local user (uid 65534) attacks them,
//! and every attack fails. Real servers (Debian's mariadb-server,
//! postgresql, redis-server, rabbitmq-server, activemq).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::attack::{as_nobody, as_root, nobody, text};
use crate::daemon::App;
use crate::recipes::require;

/// The first replica of `service` in `cove ps --format json` output.
fn row<'a>(ps: &'a [serde_json::Value], service: &str) -> &'a serde_json::Value {
    ps.iter()
        .find(|r| r["service"] == service)
        .unwrap_or_else(|| panic!("no {service} in {ps:?}"))
}

/// A replica's address without the port.
fn host(row: &serde_json::Value) -> String {
    let addr = row["address"].as_str().unwrap();
    addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string()
}

fn pid(row: &serde_json::Value) -> u64 {
    row["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {row}"))
}

/// `address` (without the port) of the first replica of `service`.
fn address(app: &App, service: &str) -> String {
    host(row(&app.ps(), service))
}

/// The uid a process runs as (`Uid:` of /proc/PID/status, real).
fn uid_of(pid: u64) -> u32 {
    let status = fs_err::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

fn pid_of(app: &App, service: &str) -> u64 {
    pid(row(&app.ps(), service))
}

/// `(uid, gid)` of a system user.
fn user(name: &str) -> (u32, u32) {
    let passwd = fs_err::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("no user {name}"))
}

/// Opens the app's directories to others for traversal (0755), as a
/// project under /srv or /home would be, so that the attack meets the
/// recipe's own protections and not only a private parent.
fn open_parents(dir: &Path) {
    for d in [dir.to_path_buf(), dir.join(".cove"), dir.join(".cove/data")] {
        fs_err::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

const MARIADB: &str = r#"
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: rootpw-9f3
      MARIADB_DATABASE: shop
      MARIADB_USER: shop
      MARIADB_PASSWORD: shoppw-9f3
"#;

#[test]
fn mariadb_has_no_passwordless_account_runs_as_mysql_and_writes_files_nowhere() {
    if !as_root("mariadb_has_no_passwordless_account") {
        return;
    }
    require(&["mariadbd", "mariadb"]);
    let app = App::new(MARIADB);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let host = address(&app, "db");
    let client = |args: &str| {
        as_nobody(
            Path::new("/"),
            &format!(
                "mariadb --no-defaults --connect-timeout=5 {args} -N -e 'SELECT CURRENT_USER()'"
            ),
        )
    };
    // Over TCP, from 127.0.0.1 (as the gateway's TCP routes connect too):
    // no account answers without its password.
    for user in ["root", "cove-health", "''", "mysql", "mariadb.sys"] {
        let out = client(&format!("--protocol=tcp -h {host} -P 3306 -u {user}"));
        assert!(
            !out.status.success(),
            "{user} without a password: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Access denied"),
            "{user}: {}",
            text(&out)
        );
    }
    for from in ["127.0.0.1", "::1"] {
        // Even a client that connects from those addresses by name.
        let out = client(&format!(
            "--protocol=tcp -h {host} -P 3306 -u root --bind-address={from}"
        ));
        assert!(!out.status.success(), "root from {from}: {}", text(&out));
    }
    // The socket is out of reach, even with the project's directories open.
    open_parents(app.dir());
    let socket = app.dir().join(".cove/data/db-1/run/mysqld.sock");
    let out = client(&format!(
        "--protocol=socket --socket={} -u root",
        socket.display()
    ));
    assert!(!out.status.success(), "the socket: {}", text(&out));
    let data = app.dir().join(".cove/data/db-1");
    let meta = fs_err::metadata(&data).unwrap();
    let (mysql_uid, _) = user("mysql");
    assert_eq!(meta.uid(), mysql_uid, "the data directory is the server's");
    assert_eq!(meta.mode() & 0o777, 0o700);
    let out = as_nobody(Path::new("/"), &format!("ls {}", data.display()));
    assert!(!out.status.success(), "{}", text(&out));

    // The server is not root.
    let pid = pid_of(&app, "db");
    assert_eq!(uid_of(pid), mysql_uid, "mariadbd runs as mysql");

    // With root's password (anyone who has it, from anywhere), files go
    // only to the server's own directory, never where root could write.
    let target = format!("/tmp/cove-outfile-{}", std::process::id());
    let out = as_nobody(
        Path::new("/"),
        &format!(
            "mariadb --no-defaults --protocol=tcp -h {host} -P 3306 -u root -prootpw-9f3 \
             -e \"SELECT 'x' INTO OUTFILE '{target}'\""
        ),
    );
    assert!(!out.status.success(), "INTO OUTFILE: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secure-file-priv"),
        "{}",
        text(&out)
    );
    assert!(!Path::new(&target).exists());
    // The app's own account works.
    let out = client(&format!(
        "--protocol=tcp -h {host} -P 3306 -u shop -pshoppw-9f3 shop"
    ));
    assert!(out.status.success(), "the app's user: {}", text(&out));
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn mariadb_needs_a_root_password_at_first_start() {
    require(&["mariadbd"]);
    let app = App::new("services:\n  db:\n    image: mariadb:11\n");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("MARIADB_ROOT_PASSWORD"), "{out}");
    assert!(
        !app.dir().join(".cove/data/db-1/db/mysql").exists(),
        "nothing initialised"
    );
}

const POSTGRES: &str = r#"
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: pgpw-9f3
      POSTGRES_DB: orders
"#;

#[test]
fn postgres_asks_everyone_for_the_password_and_runs_as_postgres() {
    if !as_root("postgres_asks_everyone_for_the_password") {
        return;
    }
    require(&["psql"]);
    let app = App::new(POSTGRES);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let host = address(&app, "pg");
    // No password: refused over TCP.
    let out = as_nobody(
        Path::new("/"),
        &format!("psql -w -h {host} -p 5432 -U shop orders -tAc 'select 1'"),
    );
    assert!(
        !out.status.success(),
        "TCP without a password: {}",
        text(&out)
    );
    // The socket: out of reach, even with the project's directories open.
    open_parents(app.dir());
    let run = app.dir().join(".cove/data/pg-1/run");
    let out = as_nobody(
        Path::new("/"),
        &format!(
            "psql -w -h {} -p 5432 -U shop orders -tAc 'select 1'",
            run.display()
        ),
    );
    assert!(!out.status.success(), "the socket: {}", text(&out));
    let (pg_uid, _) = user("postgres");
    for d in [
        ".cove/data/pg-1",
        ".cove/data/pg-1/run",
        ".cove/data/pg-1/pg",
    ] {
        let meta = fs_err::metadata(app.dir().join(d)).unwrap();
        assert_eq!(meta.uid(), pg_uid, "{d} is the server's");
        assert_eq!(meta.mode() & 0o777, 0o700, "{d}");
    }
    // The server is postgres, not root: what a superuser makes it run
    // (`COPY ... TO PROGRAM`) runs as postgres.
    let pid = pid_of(&app, "pg");
    assert_eq!(uid_of(pid), pg_uid);
    let target = format!("/tmp/cove-copy-{}", std::process::id());
    let out = as_nobody(
        Path::new("/"),
        &format!(
            "PGPASSWORD=pgpw-9f3 psql -w -h {host} -p 5432 -U shop orders \
             -tAc \"COPY (SELECT 1) TO PROGRAM 'id -u > {target}'\""
        ),
    );
    assert!(out.status.success(), "{}", text(&out));
    let written = fs_err::read_to_string(&target).unwrap();
    let _ = fs_err::remove_file(&target);
    assert_eq!(
        written.trim(),
        pg_uid.to_string(),
        "the program ran as postgres"
    );
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_server_without_a_password_is_not_published_beyond_loopback() {
    require(&["redis-server"]);
    let loopback = "127.0.0.1:HOST:CONTAINER";
    for (yaml, what, hint) in [
        (
            "services:\n  cache:\n    image: redis:7\n    ports: [\"6379:6379\"]\n",
            "redis-server has no password",
            loopback,
        ),
        (
            "services:\n  mq:\n    image: apache/activemq-classic:5.18.3\n    ports: [\"0.0.0.0:61616:61616\"]\n",
            "the broker has no user",
            loopback,
        ),
        // A user without a password: the broker would turn nothing on, so
        // it is refused wherever it listens.
        (
            "services:\n  mq:\n    image: apache/activemq-classic:5.18.3\n    environment: {ACTIVEMQ_CONNECTION_USER: app}\n    ports: [\"0.0.0.0:61616:61616\"]\n",
            "sets `ACTIVEMQ_CONNECTION_USER` but not `ACTIVEMQ_CONNECTION_PASSWORD`",
            "the password from the secrets store",
        ),
    ] {
        let app = App::new(yaml);
        let (code, out) = app.merged(&["up", "-d"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(what), "{out}");
        assert!(out.contains(hint), "a hint: {out}");
        assert!(
            !app.dir().join(".cove").exists() || app.processes().is_empty(),
            "nothing started"
        );
    }
    // A configuration file counts only when it sets a password: one that
    // is not a secret cannot be read by the plan; one that is, is judged
    // once the secrets are read (by `up`'s daemon), by what it says.
    let app = App::new(
        "services:\n  cache:\n    image: redis:7\n    command: redis-server /usr/local/etc/redis/redis.conf\n    ports: [\"6379:6379\"]\n",
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("`/usr/local/etc/redis/redis.conf` is not one of its secrets"),
        "{out}"
    );
    assert!(out.contains("/run/secrets/redis.conf"), "a hint: {out}");
    let app = App::new(
        "services:\n  cache:\n    image: redis:7\n    command: redis-server /run/secrets/redis.conf\n    secrets: [redis.conf]\n    ports: [\"6379:6379\"]\nsecrets:\n  redis.conf: {file: ./redis.conf}\n",
    );
    fs_err::write(
        app.dir().join("redis.conf"),
        "appendonly yes\n# requirepass not-this-one\n",
    )
    .unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("`/run/secrets/redis.conf` (secret `redis.conf`) has no `requirepass`"),
        "{out}"
    );
    assert!(out.contains("127.0.0.1:HOST:CONTAINER"), "a hint: {out}");
    assert!(
        !app.dir().join(".cove").exists() || app.processes().is_empty(),
        "nothing started"
    );
    // On loopback, or with a password, it is.
    let app = App::new(
        "services:\n  cache:\n    image: redis:7\n    command: redis-server --requirepass pw-9f3-long\n    ports: [\"6380:6379\"]\n  local:\n    image: redis:7\n    ports: [\"127.0.0.1:6381:6379\"]\n",
    );
    let (code, out) = app.merged(&["config", "--addresses"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("has no password"), "{out}");
}

#[test]
fn rabbitmq_has_no_guest_account() {
    for env in [
        "",
        "    environment: {RABBITMQ_DEFAULT_USER: guest, RABBITMQ_DEFAULT_PASS: guest}\n",
    ] {
        let app = App::new(&format!(
            "services:\n  rabbit:\n    image: rabbitmq:3\n{env}"
        ));
        let (code, out) = app.merged(&["up", "-d"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("guest"), "{out}");
        assert!(out.contains("RABBITMQ_DEFAULT_USER"), "{out}");
    }
}

/// `initdb` reads the superuser's password from a file: one on the
/// replica's private tmpfs (seen by initdb, as postgres, at
/// `/run/cove-ns/private/pwfile`), never in the data directory, and gone
/// once the cluster is made. A stand-in `initdb` first on the daemon's
/// `PATH` records what it was given, then runs the real one.
#[test]
fn the_initdb_password_file_is_on_the_private_tmpfs_and_gone_after() {
    if !as_root("the_initdb_password_file_is_on_the_private_tmpfs") {
        return;
    }
    require(&["psql"]);
    let real = cove_runtime::recipe::find_in_path("initdb").expect("initdb is installed");
    // Where postgres (the user initdb runs as) may run the stand-in.
    let bin = tempfile::tempdir().unwrap();
    fs_err::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let stub = bin.path().join("initdb");
    fs_err::write(
        &stub,
        format!(
            r#"#!/bin/sh
for a in "$@"; do
  if [ -n "$next" ]; then d="$a"; next=; fi
  case "$a" in --pwfile=*) f="${{a#--pwfile=}}" ;; -D) next=1 ;; esac
done
{{
  echo "pwfile=$f"
  echo "fs=$(stat -f -c %T "$(dirname "$f")")"
  echo "content=$(cat "$f")"
  echo "uid=$(id -u)"
}} > "$(dirname "$d")/initdb-stub.log"
exec {} "$@"
"#,
            real.display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let app = App::with_env(POSTGRES, &[("PATH", Path::new(&path))]);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let data = app.dir().join(".cove/data/pg-1");
    let log = fs_err::read_to_string(data.join("initdb-stub.log")).expect("the stand-in ran");
    for want in [
        "pwfile=/run/cove-ns/private/pwfile\n".to_string(),
        "fs=tmpfs\n".to_string(),
        "content=pgpw-9f3\n".to_string(),
        format!("uid={}\n", user("postgres").0),
    ] {
        assert!(log.contains(&want), "no {want:?} in:\n{log}");
    }
    // Afterwards: in neither the data directory nor the replica's private
    // directory (where cove wrote it for the namespace's copy).
    let out = std::process::Command::new("find")
        .arg(app.dir())
        .args(["-name", "pwfile"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "a pwfile is left");
    let pid = pid_of(&app, "pg");
    let environ = fs_err::read(format!("/proc/{pid}/environ")).unwrap();
    let private = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"COVE_SECRETS="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("the server has COVE_SECRETS");
    assert!(Path::new(&private).is_dir(), "{private}");
    assert!(!Path::new(&private).join("pwfile").exists(), "{private}");
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn data_written_as_root_by_an_earlier_cove_is_handed_to_the_servers_user() {
    if !as_root("data_written_as_root_by_an_earlier_cove") {
        return;
    }
    require(&["psql", "mariadbd"]);
    let app = App::new(&format!(
        "{}{}",
        POSTGRES,
        MARIADB.trim_start_matches("\nservices:\n")
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    // As earlier versions left them: root's, readable by all.
    for d in ["pg-1", "db-1"] {
        let data = app.dir().join(".cove/data").join(d);
        let status = std::process::Command::new("chown")
            .args(["-R", "0:0"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success());
        fs_err::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // And the socket let in without a password (`initdb --auth-local=trust`).
    let hba = app.dir().join(".cove/data/pg-1/pg/pg_hba.conf");
    let trusting: String = fs_err::read_to_string(&hba)
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("local") {
            true => format!("{}\n", l.replace("scram-sha-256", "trust")),
            false => format!("{l}\n"),
        })
        .collect();
    assert!(trusting.contains("trust\n"), "{trusting}");
    fs_err::write(&hba, &trusting).unwrap();
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    // The socket asks for the password now, even of root; the file as it
    // was is kept beside it.
    let psql = |password: Option<&str>| {
        let mut cmd = std::process::Command::new("psql");
        cmd.arg("-w")
            .arg("-h")
            .arg(app.dir().join(".cove/data/pg-1/run"))
            .args(["-p", "5432", "-U", "shop", "orders", "-tAc", "select 1"])
            .env_remove("PGPASSWORD");
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.output().unwrap()
    };
    let out = psql(None);
    assert!(
        !out.status.success(),
        "the socket without a password: {}",
        text(&out)
    );
    let out = psql(Some("pgpw-9f3"));
    assert!(out.status.success(), "with the password: {}", text(&out));
    assert_eq!(
        fs_err::read_to_string(hba.with_file_name("pg_hba.conf.before-cove")).unwrap(),
        trusting
    );
    let meta = fs_err::metadata(&hba).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (user("postgres").0, 0o600)
    );
    for (d, owner) in [("pg-1/pg", "postgres"), ("db-1/db", "mysql")] {
        let meta = fs_err::metadata(app.dir().join(".cove/data").join(d)).unwrap();
        assert_eq!(meta.uid(), user(owner).0, "{d}");
        let meta =
            fs_err::metadata(app.dir().join(".cove/data").join(d).parent().unwrap()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700, "{d}");
    }
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn the_brokers_well_known_accounts_do_not_open_them() {
    require(&["java"]);
    let app = App::new(
        r#"
services:
  activemq:
    image: apache/activemq-classic:5.18.3
    environment:
      ACTIVEMQ_CONNECTION_USER: app
      ACTIVEMQ_CONNECTION_PASSWORD: mqpw-9f3
  rabbit:
    image: rabbitmq:3
    environment:
      RABBITMQ_DEFAULT_USER: app
      RABBITMQ_DEFAULT_PASS: mqpw-9f3
  stomp:
    x-cove:
      run: [python3, stomp.py]
    environment:
      MQ: activemq:61613
    depends_on:
      activemq: {condition: service_healthy}
  amqp:
    x-cove:
      run: [python3, amqp.py]
    environment:
      MQ: rabbit:5672
    depends_on:
      rabbit: {condition: service_healthy}
"#,
    );
    fs_err::write(app.dir().join("stomp.py"), crate::recipes::STOMP_CLIENT).unwrap();
    fs_err::write(app.dir().join("amqp.py"), crate::recipes::AMQP_CLIENT).unwrap();
    // ActiveMQ's stock accounts (web console, users.properties).
    for (login, pass) in [
        ("admin", "admin"),
        ("system", "manager"),
        ("guest", "password"),
        ("user", "password"),
    ] {
        let (code, out) = app.merged(&[
            "run",
            "-e",
            &format!("LOGIN={login}"),
            "-e",
            &format!("PASS={pass}"),
            "stomp",
        ]);
        assert_eq!(code, Some(1), "{login}/{pass}: {out}");
        assert!(crate::recipes::stomp_refused(&out), "{login}/{pass}: {out}");
    }
    let (code, out) = app.merged(&["run", "--no-deps", "-e", "PASS=mqpw-9f3", "stomp"]);
    assert_eq!(code, Some(0), "the configured user: {out}");
    // RabbitMQ's `guest`.
    let (code, out) = app.merged(&[
        "run",
        "-e",
        "AMQP_USER=guest",
        "-e",
        "AMQP_PASS=guest",
        "amqp",
    ]);
    assert_eq!(code, Some(1), "guest/guest: {out}");
    assert!(out.contains("refused"), "{out}");
    let (code, out) = app.merged(&[
        "run",
        "--no-deps",
        "-e",
        "AMQP_USER=app",
        "-e",
        "AMQP_PASS=mqpw-9f3",
        "amqp",
    ]);
    assert_eq!(code, Some(0), "the configured user: {out}");
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

/// `cove ARGS` as uid 65534 in `dir` (its own home there), bounded.
fn cove_as_nobody(cove: &Path, dir: &Path, args: &[&str]) -> crate::daemon::Out {
    crate::daemon::run_bounded(
        nobody(cove)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("HOME", dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("NO_COLOR", "1"),
        180,
    )
}

#[test]
fn recipes_run_as_an_ordinary_user_with_the_same_accounts() {
    if !as_root("recipes_run_as_an_ordinary_user") {
        return;
    }
    require(&["psql", "mariadbd", "mariadb"]);
    // A project of uid 65534's own, and a copy of cove it can run.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    fs_err::create_dir(&dir).unwrap();
    let cove = tmp.path().join("cove");
    fs_err::copy(env!("CARGO_BIN_EXE_cove"), &cove).unwrap();
    fs_err::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    fs_err::write(
        dir.join("compose.yaml"),
        format!(
            "{}{}",
            POSTGRES,
            MARIADB.trim_start_matches("\nservices:\n")
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(dir.join("compose.yaml"), Some(65534), Some(65534)).unwrap();
    /// Brings the app down as its user, even when the test fails.
    struct Down<'a>(&'a Path, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = cove_as_nobody(self.0, self.1, &["down"]);
        }
    }
    let _down = Down(&cove, &dir);
    let out = cove_as_nobody(&cove, &dir, &["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out}");
    let out = cove_as_nobody(&cove, &dir, &["ps", "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let ps: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    for svc in ["pg", "db"] {
        let pid = pid(row(&ps, svc));
        assert_eq!(uid_of(pid), 65534, "{svc} runs as the user who ran cove");
        let meta = fs_err::metadata(dir.join(".cove/data").join(format!("{svc}-1"))).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700, "{svc}'s data");
    }
    let (pg, db) = (host(row(&ps, "pg")), host(row(&ps, "db")));
    // The same accounts: the password is needed, and works.
    let sh = |script: &str| as_nobody(Path::new("/"), script);
    let out = sh(&format!(
        "psql -w -h {pg} -p 5432 -U shop orders -tAc 'select 1'"
    ));
    assert!(!out.status.success(), "{}", text(&out));
    let out = sh(&format!(
        "PGPASSWORD=pgpw-9f3 psql -w -h {pg} -p 5432 -U shop orders -tAc 'select 41 + 1'"
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("42"),
        "{}",
        text(&out)
    );
    let out = sh(&format!(
        "mariadb --no-defaults --protocol=tcp -h {db} -P 3306 -u root -e 'select 1'"
    ));
    assert!(!out.status.success(), "{}", text(&out));
    let out = sh(&format!(
        "mariadb --no-defaults --protocol=tcp -h {db} -P 3306 -u shop -pshoppw-9f3 shop -N -e 'select 41 + 1'"
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("42"),
        "{}",
        text(&out)
    );
    let out = cove_as_nobody(&cove, &dir, &["down"]);
    assert_eq!(out.code, Some(0), "{out}");
}
