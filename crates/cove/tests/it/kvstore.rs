//! The kvstore example (`examples/kvstore`) end to end: its own
//! `compose.yaml`, in a temporary directory, with an override file that
//! runs the programs cargo built (instead of `cargo run`, which needs the
//! workspace) and lets the gateway take a free port. The client speaks
//! gRPC (HTTP/2 without TLS) to the gateway, which balances the calls over
//! the two `server` replicas; the backend keeps its LMDB data in the
//! project's `.cove/data/backend-1`, inside the temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::daemon::{App, Out, cargo_build, run_bounded};
use crate::gateway::wait_for_targets;

const COMPOSE: &str = include_str!("../../../../examples/kvstore/compose.yaml");

/// The three programs, built once per test process by
/// `cargo build -p kvstore-backend -p kvstore-server -p kvstore-client` —
/// the example's own `x-cove.build` — so they are current whichever way
/// the tests were started; cargo says where it put them.
struct Programs {
    backend: PathBuf,
    server: PathBuf,
    client: PathBuf,
}

fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let mut found = cargo_build(&["kvstore-backend", "kvstore-server", "kvstore-client"]);
        let mut take = |name: &str| {
            found
                .remove(name)
                .unwrap_or_else(|| panic!("cargo built no `{name}`"))
        };
        Programs {
            backend: take("kvstore-backend"),
            server: take("kvstore-server"),
            client: take("kvstore-client"),
        }
    })
}

/// The example app in a temporary directory, its programs run from where
/// cargo built them, its gateway on a free port.
fn kvstore_app() -> App {
    let p = programs();
    let app = App::new(COMPOSE);
    let quoted = |path: &Path| serde_json::to_string(&path.display().to_string()).unwrap();
    let overrides = format!(
        "services:\n  backend:\n    x-cove: {{run: [{}], build: !reset null}}\n  server:\n    x-cove: {{run: [{}], build: !reset null}}\nx-cove:\n  gateway: {{listen: \"127.0.0.1:0\"}}\n",
        quoted(&p.backend),
        quoted(&p.server),
    );
    fs_err::write(app.dir().join("compose.override.yaml"), overrides).unwrap();
    app
}

/// `cove up -d`; the gateway's address once both routes reach both
/// `server` replicas.
fn up(app: &App) -> SocketAddr {
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("backend-1 healthy"), "{out}");
    assert!(out.contains("server-2 healthy"), "{out}");
    wait_for_targets(app, &[2, 2])
}

/// What `kvstore-client --addr http://GATEWAY ARGS` did (killed after 60 s).
fn client(gateway: SocketAddr, args: &[&str]) -> Out {
    run_bounded(
        Command::new(&programs().client)
            .arg("--addr")
            .arg(format!("http://{gateway}"))
            .args(args)
            .env_remove("KV_ADDR"),
        60,
    )
}

#[test]
fn kvstore_client_round_trip_through_the_gateways_grpc_route() {
    let app = kvstore_app();
    let gw = up(&app);
    let (code, table) = app.merged(&["routes"]);
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("/kvstore.v1.KeyValue"), "{table}");
    assert!(table.contains("grpc"), "{table}");
    assert!(
        !table.contains("backend"),
        "the backend is internal: {table}"
    );

    let run = client(gw, &["batch", "20"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout
            .contains("batch: 20 puts, 20 gets, 20 read back what was put"),
        "{run}"
    );
    assert_eq!(run.stdout.matches("put key-").count(), 20, "{run}");
    assert!(run.stdout.contains("get key-20: \"value-20-"), "{run}");
    for replica in ["[server-1]", "[server-2]"] {
        assert!(run.stdout.contains(replica), "both replicas answer: {run}");
    }

    // Errors come back as gRPC statuses, through the gateway, named by the
    // replica that refused them.
    let run = client(gw, &["get", "no-such-key"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("error: get no-such-key: NotFound: no key `no-such-key` [server-"),
        "{run}"
    );
    let run = client(gw, &["put", "", "v"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("InvalidArgument: the key is empty"),
        "{run}"
    );
    let big = app.dir().join("big");
    fs_err::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let run = client(gw, &["put", "big", &format!("@{}", big.display())]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("InvalidArgument: the value is 1048577 bytes; at most 1048576"),
        "{run}"
    );

    // The standard health service, routed too.
    let run = client(gw, &["health"]);
    assert_eq!(
        (run.code, run.stdout.trim()),
        (Some(0), "health: SERVING"),
        "{run}"
    );

    // The gateway logged the calls as gRPC requests to `server`.
    let (_, logs) = app.merged(&["logs", "gateway"]);
    assert!(
        logs.contains(r#""path":"/kvstore.v1.KeyValue/Put","status":200,"route":"*/kvstore.v1.KeyValue","service":"server""#),
        "{logs}"
    );
}

#[test]
fn kvstore_backend_restart_keeps_the_data() {
    let app = kvstore_app();
    let gw = up(&app);
    let run = client(gw, &["put", "kept", "across restarts", "gone", "soon"]);
    assert_eq!(run.code, Some(0), "{run}");
    let run = client(gw, &["delete", "gone"]);
    assert_eq!(run.code, Some(0), "{run}");
    let data = app.dir().join(".cove/data/backend-1");
    assert!(
        data.join("data.mdb").is_file(),
        "LMDB's file in the project"
    );

    let backend_pid = |app: &App| {
        app.ps()
            .into_iter()
            .find(|r| r["service"] == "backend")
            .and_then(|r| r["pid"].as_u64())
            .unwrap()
    };
    let before = backend_pid(&app);
    let (code, out) = app.merged(&["restart", "backend"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("backend-1 healthy"), "{out}");
    assert_ne!(backend_pid(&app), before, "a new backend process");
    let (_, logs) = app.merged(&["logs", "backend"]);
    assert!(
        logs.contains(r#""msg":"stopped""#),
        "a graceful stop: {logs}"
    );
    assert!(
        logs.contains(r#""entries":1"#),
        "reopened with the data: {logs}"
    );

    // The front end reconnects on its own; the data is still there.
    let run = client(gw, &["get", "kept", "gone"]);
    assert_eq!(run.code, Some(1), "`gone` stays deleted: {run}");
    assert!(
        run.stdout
            .contains("get kept: \"across restarts\" [server-"),
        "{run}"
    );
    assert!(run.stderr.contains("get gone: NotFound"), "{run}");

    // The volume is deleted only on request.
    let (code, out) = app.merged(&["down", "--volumes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleting the data of backend-1"), "{out}");
    assert!(!data.exists());
}
