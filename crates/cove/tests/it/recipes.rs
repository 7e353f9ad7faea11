//! Built-in native recipes against the real servers (Debian's
//! `redis-server` and `mariadb-server`, installed by `scripts/test`).

use std::path::Path;

use crate::daemon::{App, eventually};
use crate::up::Up;

pub fn require(bins: &[&str]) {
    for b in bins {
        let found = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .chain(["/usr/sbin".into()])
                    .any(|d| d.join(b).is_file())
            })
            .unwrap_or(false);
        assert!(
            found,
            "`{b}` is not installed: run `bash scripts/test`, which installs redis-server and mariadb-server"
        );
    }
}

const APP: &str = r#"
services:
  cache:
    image: redis:7
    command: redis-server --appendonly yes
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: rootpw
      MARIADB_DATABASE: shop
      MARIADB_USER: shop
      MARIADB_PASSWORD: "it's secret"
  check:
    x-cove:
      run: [sh, -c, "redis-cli -u redis://cache:6379 incr visits && mariadb --no-defaults --protocol=tcp -h $$DB_HOST -P 3306 -u shop -p\"$$DB_PASSWORD\" shop -N -e \"$$SQL\""]
    environment:
      DB_HOST: db
      DB_PASSWORD: "it's secret"
      SQL: ${SQL}
    depends_on:
      cache: {condition: service_healthy}
      db: {condition: service_healthy}
"#;

fn run_check(dir: &Path, sql: &str) -> Vec<String> {
    let mut up = Up::start_with_env(dir, &[], &[("SQL", sql)]);
    up.wait_for("check-1 completed", 120);
    assert_eq!(up.interrupt(), Some(0));
    up.seen
        .iter()
        .filter_map(|l| l.strip_prefix("check-1 | ").map(str::to_string))
        .collect()
}

#[test]
fn redis_and_mariadb_run_natively_initialise_once_and_keep_their_data() {
    require(&[
        "redis-server",
        "redis-cli",
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(tmp.path().join("compose.yaml"), APP).unwrap();
    let first = run_check(
        tmp.path(),
        "CREATE TABLE t (n INT); INSERT INTO t VALUES (42); SELECT n FROM t",
    );
    assert_eq!(first, ["1", "42"]);
    // Second run: the same data directories, no second initialisation.
    let second = run_check(tmp.path(), "SELECT n + 1 FROM t");
    assert_eq!(second, ["2", "43"]);
    for d in ["cache-1", "db-1"] {
        assert!(
            tmp.path().join(".cove/data").join(d).is_dir(),
            "{d} data kept"
        );
    }
    assert!(
        !tmp.path().join(".cove/data/db-1/init.sql").exists(),
        "the init file holds passwords: it is not kept with the data"
    );
}

#[test]
fn a_missing_server_binary_names_its_package() {
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(
        tmp.path().join("compose.yaml"),
        "services:\n  db:\n    image: mariadb:11\n",
    )
    .unwrap();
    let mut up = Up::start_with_env(tmp.path(), &[], &[("PATH", "/nonexistent")]);
    // Debian keeps daemons in /usr/sbin, which cove also searches; with an
    // empty PATH mariadb-admin (in /usr/bin) is still missing.
    assert_eq!(up.wait_exit(20), Some(1));
    let text = up.seen.join("\n");
    assert!(text.contains("which is not installed"), "{text}");
    assert!(text.contains("apt-get install mariadb-server"), "{text}");
}

const CLUSTER: &str = r#"
x-node: &node
  image: redis:7
  command: redis-server --cluster-enabled yes --cluster-config-file nodes.conf
services:
  r1: *node
  r2: *node
  r3: *node
  init:
    image: redis:7
    command: redis-cli --cluster create r1:6379 r2:6379 r3:6379 --cluster-replicas 0 --cluster-yes
    depends_on:
      r1: {condition: service_healthy}
      r2: {condition: service_healthy}
      r3: {condition: service_healthy}
  client:
    x-cove:
      # The cluster state turns `ok` on each node shortly after `--cluster
      # create` returns, and the nodes agree on the slots' owners a moment
      # later still: the read is tried again (50 times at most) until it
      # finds what was written (CI once read nil right after `ok`).
      run: [sh, -c, "for h in $$R1 $$R2 $$R3; do until redis-cli -h $$h -p 6379 cluster info | grep -q cluster_state:ok; do sleep 0.1; done; done; redis-cli -c -h $$R1 -p 6379 set greeting hello >/dev/null || exit 1; for i in $$(seq 50); do v=$$(redis-cli -c -h $$R3 -p 6379 get greeting); [ \"$$v\" = hello ] && break; sleep 0.1; done; echo \"$$v\""]
    environment: {R1: r1, R2: r2, R3: r3}
    depends_on:
      init: {condition: service_completed_successfully}
"#;

#[test]
fn a_redis_cluster_forms_natively() {
    require(&["redis-server", "redis-cli"]);
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(tmp.path().join("compose.yaml"), CLUSTER).unwrap();
    let mut up = Up::start(tmp.path(), &[]);
    // Output (stdout) and states (stderr) arrive in no fixed order.
    up.wait_for_all(
        &[
            "All 16384 slots covered",
            "init-1 completed",
            "client-1 | hello",
            "client-1 completed",
        ],
        120,
    );
    assert_eq!(up.interrupt(), Some(0));
}

const POSTGRES: &str = r#"
services:
  pg:
    image: postgres:16
    command: postgres -c max_connections=20
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: "it's secret"
      POSTGRES_DB: orders
  app:
    x-cove:
      run: [sleep, "300"]
    environment:
      DATABASE_URL: postgres://shop@pg:5432/orders
      PGPASSWORD: "it's secret"
    depends_on:
      pg: {condition: service_healthy}
"#;

#[test]
fn postgres_initialises_once_keeps_its_data_and_down_volumes_deletes_it() {
    require(&["psql"]);
    let app = App::new(POSTGRES);
    let dir = app.dir();
    let psql = |sql: &str| {
        app.merged(&[
            "run",
            "app",
            "sh",
            "-c",
            &format!("psql \"$DATABASE_URL\" -tA -c \"{sql}\""),
        ])
    };
    let (code, out) =
        psql("CREATE TABLE t (n int); INSERT INTO t VALUES (42); SHOW max_connections");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.lines().any(|l| l == "20"),
        "the command's options: {out}"
    );

    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        dir.join(".cove/data/pg-1/pg/PG_VERSION").is_file(),
        "data kept"
    );
    let (code, out) = psql("SELECT n + 1 FROM t");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.lines().any(|l| l == "43"),
        "the same data, not initialised again: {out}"
    );
    // The password is required over TCP.
    let (code, out) = app.merged(&[
        "run",
        "--no-deps",
        "-e",
        "PGPASSWORD=wrong",
        "app",
        "sh",
        "-c",
        "psql \"$DATABASE_URL\" -c 'select 1'",
    ]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("password authentication failed"), "{out}");

    let (code, out) = app.merged(&["down", "--volumes"]);
    assert_eq!(code, Some(0), "{out}");
    let data = fs_err::canonicalize(dir.join(".cove"))
        .unwrap()
        .join("data/pg-1");
    assert!(
        out.contains(&format!("deleting the data of pg-1: {}", data.display())),
        "{out}"
    );
    assert!(!data.exists());
}

/// A STOMP 1.2 client: CONNECT, SEND to a queue, SUBSCRIBE, print the message.
pub const STOMP_CLIENT: &str = r#"
import os, socket, sys
host, port = os.environ["MQ"].split(":")
def frame(cmd, headers, body=""):
    return (cmd + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n" + body + "\0").encode()
def read(s):
    buf = b""
    while b"\0" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\0")[0].decode()
s = socket.create_connection((host, int(port)), 10)
s.sendall(frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": os.environ.get("LOGIN", "app"), "passcode": os.environ["PASS"]}))
reply = read(s)
print(reply.splitlines()[0] if reply else "no answer")
if not reply.startswith("CONNECTED"):
    sys.exit(1)
s.sendall(frame("SEND", {"destination": "/queue/orders", "content-type": "text/plain"}, "order 42"))
s.sendall(frame("SUBSCRIBE", {"destination": "/queue/orders", "id": "0", "ack": "auto"}))
message = read(s)
print("received:", message.split("\n\n", 1)[1])
"#;

/// Whether `STOMP_CLIENT`'s output says the broker refused it: an `ERROR`
/// frame, or the connection closed with no frame at all (ActiveMQ may
/// close a failed login before its `ERROR` frame is written) — never
/// `CONNECTED`.
pub fn stomp_refused(out: &str) -> bool {
    !out.contains("CONNECTED") && (out.contains("ERROR") || out.contains("no answer"))
}

#[test]
fn activemq_serves_stomp_with_the_images_credentials() {
    require(&["java"]);
    assert!(
        Path::new("/usr/share/activemq/bin/activemq.jar").is_file(),
        "ActiveMQ is not installed: run `bash scripts/test`, which installs Debian's activemq"
    );
    let app = App::new(
        r#"
services:
  activemq:
    image: apache/activemq-classic:5.18.3
    environment:
      ACTIVEMQ_CONNECTION_USER: app
      ACTIVEMQ_CONNECTION_PASSWORD: "s3cret&<x>"
  worker:
    x-cove:
      run: [python3, stomp.py]
    environment:
      MQ: activemq:61613
    depends_on:
      activemq: {condition: service_healthy}
"#,
    );
    let dir = app.dir();
    fs_err::write(dir.join("stomp.py"), STOMP_CLIENT).unwrap();
    let (code, out) = app.merged(&["run", "-e", "PASS=s3cret&<x>", "worker"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("CONNECTED"), "{out}");
    assert!(out.contains("received: order 42"), "{out}");
    let (code, out) = app.merged(&["run", "--no-deps", "-e", "PASS=wrong", "worker"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(stomp_refused(&out), "a wrong password is refused: {out}");
    let (_, logs) = app.merged(&["logs", "activemq"]);
    assert!(logs.contains("Connector stomp started"), "{logs}");
}

/// A minimal AMQP 0-9-1 client: handshake with PLAIN credentials, open the
/// default vhost and a channel, declare a queue.
pub const AMQP_CLIENT: &str = r#"
import os, socket, struct, sys
host, port = os.environ["MQ"].split(":")
user, password = os.environ["AMQP_USER"], os.environ["AMQP_PASS"]
s = socket.create_connection((host, int(port)), 10)
def shortstr(v): v = v.encode(); return bytes([len(v)]) + v
def longstr(v): return struct.pack(">I", len(v)) + v
def send(channel, cls, meth, args=b""):
    payload = struct.pack(">HH", cls, meth) + args
    s.sendall(struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce")
def recv():
    head = b""
    while len(head) < 7:
        try:
            chunk = s.recv(7 - len(head))
        except ConnectionResetError:
            chunk = b""
        if not chunk: raise SystemExit("refused: connection closed by the broker")
        head += chunk
    kind, channel, size = struct.unpack(">BHI", head)
    body = b""
    while len(body) < size + 1: body += s.recv(size + 1 - len(body))
    if kind != 1: return recv()
    cls, meth = struct.unpack(">HH", body[:4])
    return cls, meth, body[4:size]
s.sendall(b"AMQP\x00\x00\x09\x01")
assert recv()[:2] == (10, 10), "Connection.Start"
send(0, 10, 11, struct.pack(">I", 0) + shortstr("PLAIN") + longstr(f"\0{user}\0{password}".encode()) + shortstr("en_US"))
cls, meth, args = recv()
if (cls, meth) != (10, 30):
    print("refused:", (cls, meth), args[2:2 + args[2] + 1][1:].decode(errors="replace") if len(args) > 3 else "")
    sys.exit(1)
channel_max, frame_max, heartbeat = struct.unpack(">HIH", args[:8])
send(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
send(0, 10, 40, shortstr("/") + shortstr("") + b"\x00")
assert recv()[:2] == (10, 41), "Connection.OpenOk"
send(1, 20, 10, shortstr(""))
assert recv()[:2] == (20, 11), "Channel.OpenOk"
send(1, 50, 10, struct.pack(">H", 0) + shortstr("orders") + b"\x00" + struct.pack(">I", 0))
cls, meth, args = recv()
assert (cls, meth) == (50, 11), "Queue.DeclareOk"
print("declared queue", args[1:1 + args[0]].decode())
"#;

#[test]
fn rabbitmq_speaks_amqp_with_the_images_credentials() {
    assert!(
        Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").is_file(),
        "RabbitMQ is not installed: run `bash scripts/test`, which installs Debian's rabbitmq-server"
    );
    let app = App::new(
        r#"
services:
  rabbit:
    image: rabbitmq:3-management
    environment:
      RABBITMQ_DEFAULT_USER: app
      RABBITMQ_DEFAULT_PASS: s3cret
  worker:
    x-cove:
      run: [python3, amqp.py]
    environment:
      MQ: rabbit:5672
      AMQP_USER: app
    depends_on:
      rabbit: {condition: service_healthy}
"#,
    );
    let dir = app.dir();
    fs_err::write(dir.join("amqp.py"), AMQP_CLIENT).unwrap();
    let (code, out) = app.merged(&["run", "-e", "AMQP_PASS=s3cret", "worker"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("declared queue orders"), "{out}");
    let (code, out) = app.merged(&["run", "--no-deps", "-e", "AMQP_PASS=wrong", "worker"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused"),
        "a wrong password is refused: {out}"
    );
    // The management plugin of a `*-management` image, on the replica's address.
    let (_, out) = app.merged(&[
            "run",
            "--no-deps",
            "worker",
            "python3",
            "-c",
            "import os,urllib.request,base64; h=os.environ['MQ'].split(':')[0]; r=urllib.request.Request(f'http://{h}:15672/api/whoami', headers={'Authorization': 'Basic '+base64.b64encode(b'app:s3cret').decode()}); print(urllib.request.urlopen(r, timeout=10).read().decode())",
        ],
    );
    assert!(out.contains("\"name\":\"app\""), "{out}");
    // Its port mapper (epmd) goes with the app.
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    eventually(10, "nothing of the app left running", || {
        app.processes().is_empty()
    });
}
