//! The chat example end to end, as a user runs it: `cove up -d` on
//! examples/chat/compose.yaml (a real RabbitMQ speaking TLS only and
//! PostgreSQL through the native recipes, the two Rust services), then
//! WebSockets and HTTP through the gateway's one origin. The example's file
//! is used as it is; an override only moves the state to a temporary
//! directory and the gateway to a free port (and, for the deploy, changes
//! the gateway's environment so that there is a new revision).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;

use crate::buffs::{build, gateway};
use crate::daemon::{App, cargo_build, eventually, run_bounded};
use crate::gateway::{http, json};
use crate::recipes::require;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The state directory and gateway of the example, moved for a test.
fn overrides(tmp: &Path, extra: &str) {
    fs_err::write(
        tmp.join("override.yaml"),
        format!(
            "x-cove:\n  state_dir: {}\n  gateway: {{listen: \"127.0.0.1:0\"}}\n{extra}",
            tmp.join("state").display()
        ),
    )
    .unwrap();
}

/// The environment `cove` runs with for examples/chat with its state in
/// `tmp`, project `name`, the demo identity.
fn example_env(tmp: &Path, name: &str) -> Vec<(&'static str, PathBuf)> {
    let file = repo().join("examples/chat/compose.yaml");
    let files = format!("{}:{}", file.display(), tmp.join("override.yaml").display());
    vec![
        ("COMPOSE_FILE", PathBuf::from(files)),
        ("COMPOSE_PROJECT_NAME", PathBuf::from(name)),
        (
            "COVE_IDENTITY",
            repo().join("examples/chat/demo-identity.txt"),
        ),
    ]
}

/// examples/chat with its state in `tmp`, project `name`, the demo identity.
fn example(tmp: &Path, name: &str) -> App {
    overrides(tmp, "");
    let env = example_env(tmp, name);
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    App::with_env("services: {}\n", &env)
}

/// `cove ARGS` for the example in `tmp`, killed after `secs`: exit code,
/// stdout then stderr (`run_bounded`, which reads output of any size as it
/// comes: `cove logs` of this app outgrows a pipe's buffer). The time may be
/// longer than `App`'s 120 s (a deploy with WebSockets open: cove's gateway
/// lets each old replica's connections drain for up to 30 s).
fn cove_for(app: &App, tmp: &Path, name: &str, args: &[&str], secs: u64) -> (Option<i32>, String) {
    let out = run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(app.dir())
            .args(args)
            .env("NO_COLOR", "1")
            .envs(example_env(tmp, name)),
        secs,
    );
    (out.code, out.stdout + &out.stderr)
}

/// Everything the tests need, built and started: the gateway's address.
fn up(app: &App) -> SocketAddr {
    require(&["postgres", "initdb", "pg_isready"]);
    assert!(
        Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").is_file(),
        "RabbitMQ is not installed: run `bash scripts/test`, which installs Debian's rabbitmq-server"
    );
    build(&["chat-gateway", "chat-history"]);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    gateway(app)
}

type Socket = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

/// A WebSocket client of the chat gateway.
struct Client {
    ws: Socket,
}

impl Client {
    /// Joins `room` through the gateway; the server's `hello` read. The
    /// upgrade's answer must carry no CORS header.
    fn join(gw: SocketAddr, room: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(gw).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let url = format!("ws://{gw}/ws?room={room}");
        let (ws, answer) = tungstenite::client(url.as_str(), MaybeTlsStream::Plain(stream))
            .map_err(|e| format!("upgrade: {e}"))?;
        assert!(
            !answer
                .headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "the upgrade carries a CORS header: {answer:?}"
        );
        let mut c = Client { ws };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(f) = c.next()? {
                assert_eq!(f["type"], "hello", "{f}");
                assert_eq!(f["room"], room, "{f}");
                return Ok(c);
            }
        }
        Err("no hello in 10 s".into())
    }

    fn send(&mut self, frame: &Value) -> Result<(), String> {
        self.ws
            .send(tungstenite::Message::text(frame.to_string()))
            .map_err(|e| e.to_string())
    }

    /// The next JSON frame, `None` after 200 ms without one; an error
    /// when the socket closed (the close frame's code and reason).
    fn next(&mut self) -> Result<Option<Value>, String> {
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => Ok(Some(json(t.as_str()))),
            Ok(tungstenite::Message::Close(f)) => Err(format!("closed: {f:?}")),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads frames until one satisfies `want` (up to `secs`).
    fn until(&mut self, secs: u64, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(f) = self.next().unwrap()
                && want(&f)
            {
                return f;
            }
        }
        panic!("not within {secs}s: {what}");
    }
}

fn send_frame(id: &str, text: &str) -> Value {
    json!({"type": "send", "id": id, "user": "ann", "text": text})
}

/// `GET path` through the gateway: status, head, body; the answer has no
/// CORS header.
fn get(gw: SocketAddr, path: &str) -> (u16, String, String) {
    let (status, head, body) = http(gw, "GET", "localhost", path, b"");
    assert!(
        !head.to_ascii_lowercase().contains("access-control-"),
        "GET {path} answers with a CORS header:\n{head}"
    );
    (status, head, body)
}

/// The ids of a room's last `limit` messages in history.
fn history_ids(gw: SocketAddr, room: &str, limit: u32) -> Result<Vec<String>, String> {
    let (status, _, body) = get(gw, &format!("/api/history?room={room}&limit={limit}"));
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(json(&body)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect())
}

#[test]
fn chat_messages_go_between_websockets_over_a_tls_broker_into_history_on_one_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let app = example(tmp.path(), "chat-e2e");
    let gw = up(&app);

    // The page, on the same origin as the APIs: no host or port in it.
    let (status, head, page) = get(gw, "/");
    assert_eq!(status, 200, "{head}");
    assert!(page.contains("<script src=\"chat.js\"></script>"), "{page}");
    let (status, _, script) = get(gw, "/chat.js");
    assert_eq!(status, 200);
    for text in [&page, &script] {
        for hard_coded in ["127.0.0.1", "localhost", ":8080", ":2683"] {
            assert!(!text.contains(hard_coded), "the client names {hard_coded}");
        }
    }
    assert!(script.contains("location.host"), "{script}");

    // Two clients in a room: one sends, both get it; the sender an ack.
    let mut ann = Client::join(gw, "e2e").unwrap();
    let mut bob = Client::join(gw, "e2e").unwrap();
    let mut other = Client::join(gw, "elsewhere").unwrap();
    ann.send(&send_frame("m1", "hello over TLS")).unwrap();
    // Ann gets her ack and her own message (in either order).
    let (mut acked, mut echoed) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(acked && echoed) && Instant::now() < deadline {
        if let Some(f) = ann.next().unwrap() {
            acked |= f["type"] == "ack" && f["id"] == "m1";
            echoed |= f["type"] == "message" && f["message"]["id"] == "m1";
        }
    }
    assert!(acked && echoed, "ann's ack: {acked}, her message: {echoed}");
    let got = bob.until(10, "bob gets m1", |f| f["type"] == "message");
    let m = &got["message"];
    assert_eq!(
        (&m["id"], &m["room"], &m["user"], &m["text"]),
        (
            &json!("m1"),
            &json!("e2e"),
            &json!("ann"),
            &json!("hello over TLS")
        )
    );
    assert!(m["ts"].as_str().unwrap().ends_with('Z'), "{m}");
    // A message without an id gets one from the gateway.
    ann.send(&json!({"type": "send", "user": "ann", "text": "no id"}))
        .unwrap();
    let ack = ann.until(10, "an ack with the gateway's id", |f| f["type"] == "ack");
    let given = ack["id"].as_str().unwrap().to_string();

    // History has them, in order (it answers in step with the broker: no
    // waiting needed after the acks).
    assert_eq!(history_ids(gw, "e2e", 10).unwrap(), ["m1", given.as_str()]);
    assert_eq!(history_ids(gw, "e2e", 1).unwrap(), [given.as_str()]);
    assert!(history_ids(gw, "elsewhere", 10).unwrap().is_empty());
    // The other room heard nothing.
    for _ in 0..5 {
        if let Some(f) = other.next().unwrap() {
            panic!("another room got {f}");
        }
    }

    // Bad input: errors, nothing published or stored.
    for (frame, want) in [
        (json!({"type": "send", "user": "", "text": "x"}), "`user`"),
        (json!({"type": "send", "user": "ann", "text": ""}), "`text`"),
        (
            json!({"type": "send", "id": "a b", "user": "ann", "text": "x"}),
            "`id`",
        ),
        (
            json!({"type": "shout", "user": "ann", "text": "x"}),
            "unknown message type",
        ),
        (json!({"text": "x"}), "not a valid message"),
    ] {
        ann.send(&frame).unwrap();
        let e = ann.until(10, "an error", |f| f["type"] == "error");
        assert!(e["error"].as_str().unwrap().contains(want), "{e}");
    }
    for (path, want) in [
        ("/api/history", "`room` is missing"),
        ("/api/history?room=a%20b", "`room` may hold only"),
        ("/api/history?room=e2e&limit=0", "`limit` must be"),
        ("/api/history?room=e2e&limit=x", "`limit` must be"),
    ] {
        let (status, _, body) = get(gw, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(want),
            "{body}"
        );
    }
    let (status, _, body) = get(gw, "/ws");
    assert!(status == 400 || status == 426, "{status} {body}");
    assert_eq!(history_ids(gw, "e2e", 10).unwrap().len(), 2);

    // A cross-origin preflight gets no CORS header either (the browser
    // refuses: only the one origin is meant to call these APIs).
    let (_, head, _) = http(gw, "OPTIONS", "localhost", "/api/history?room=e2e", b"");
    assert!(
        !head.to_ascii_lowercase().contains("access-control-"),
        "{head}"
    );

    // Metrics and health, through the gateway (chat-gateway's).
    let (status, _, metrics) = get(gw, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("chat_messages_published_total"),
        "{metrics}"
    );
    assert_eq!(get(gw, "/health").0, 200);
    // Logs are JSON lines.
    let (_, logs) = app.merged(&["logs", "history"]);
    let line = logs
        .lines()
        .find(|l| l.contains("\"msg\":\"consuming\""))
        .unwrap_or_else(|| panic!("{logs}"));
    let fields = json(line.split_once(" | ").unwrap().1);
    assert_eq!(fields["service"], "history", "{fields}");

    // The broker speaks TLS only: nothing listens for plain AMQP.
    let rows = app.ps();
    let broker = rows.iter().find(|r| r["service"] == "rabbitmq").unwrap();
    let addr: SocketAddr = broker["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr.port(), 5671, "{broker}");
    let plain =
        TcpStream::connect_timeout(&SocketAddr::new(addr.ip(), 5672), Duration::from_secs(5));
    assert!(plain.is_err(), "plain AMQP (5672) is open");

    // The services refuse a broker URL without TLS, a wrong password and a
    // certificate for another name — each a clear error and exit 1.
    let ca = tmp.path().join("ca.pem");
    let (code, pem) = app.merged(&["secrets", "get", "BROKER_CA"]);
    assert_eq!(code, Some(0));
    fs_err::write(&ca, pem).unwrap();
    let password = app.merged(&["secrets", "get", "AMQP_PASSWORD"]).1;
    let bins = cargo_build(&["chat-gateway", "chat-history"]);
    let ip = addr.ip();
    let run = |bin: &str, url: String, password: &str, name: &str| {
        let out = run_bounded(
            std::process::Command::new(&bins[bin])
                .env_clear()
                .env("AMQP_URL", url)
                .env("AMQP_PASSWORD", password)
                .env("AMQP_CA_FILE", &ca)
                .env("AMQP_TLS_NAME", name)
                .env("DATABASE_URL", "postgres://chat@127.0.0.1:1/chat")
                .env("HOST", "127.0.0.1")
                .env("PORT", "0"),
            60,
        );
        (out.code, out.stdout + &out.stderr)
    };
    for bin in ["chat-gateway", "chat-history"] {
        let (code, out) = run(
            bin,
            format!("amqp://chat@{ip}:5672/%2f"),
            &password,
            "rabbitmq.chat.internal",
        );
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("AMQP_URL is amqp://, without TLS"), "{out}");
        let (code, out) = run(
            bin,
            format!("amqps://chat@{ip}:5671/%2f"),
            "wrong-password",
            "rabbitmq.chat.internal",
        );
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("ACCESS_REFUSED"), "{out}");
        let (code, out) = run(
            bin,
            format!("amqps://chat@{ip}:5671/%2f"),
            &password,
            "elsewhere.example",
        );
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("certificate not valid for name"), "{out}");
    }

    // The broker goes away: the gateway replicas close their sockets
    // (1012) and end; cove starts them again once it is back, and the
    // chat works again, history intact.
    let mut carol = Client::join(gw, "e2e").unwrap();
    let (code, out) = app.merged(&["stop", "rabbitmq"]);
    assert_eq!(code, Some(0), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        match carol.next() {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => panic!("the socket stayed open without the broker"),
        }
    };
    assert!(ended.contains("Restart"), "{ended}");
    let (code, out) = app.merged(&["start", "rabbitmq"]);
    assert_eq!(code, Some(0), "{out}");
    let back = Instant::now();
    let mut dave = crate::daemon::eventually_ok(120, "the chat back after the broker", || {
        Client::join(gw, "e2e")
    });
    dave.send(&send_frame("m3", "after the outage")).unwrap();
    dave.until(10, "dave's ack", |f| f["type"] == "ack" && f["id"] == "m3");
    eprintln!(
        "chat: back {:.1}s after the broker's start",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(
        history_ids(gw, "e2e", 10).unwrap(),
        ["m1", given.as_str(), "m3"]
    );

    // Nothing secret in the clear: not in logs, listings or the state.
    let key = app.merged(&["secrets", "get", "BROKER_KEY"]).1;
    let key_line = key
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .unwrap()
        .to_string();
    let (code, logs) = cove_for(&app, tmp.path(), "chat-e2e", &["logs"], 60);
    assert_eq!(code, Some(0));
    let (_, ps) = app.merged(&["ps", "--format", "json"]);
    for s in [&password, &key_line] {
        assert!(!logs.contains(s.as_str()) && !ps.contains(s.as_str()));
        let mut todo = vec![tmp.path().join("state")];
        while let Some(d) = todo.pop() {
            for e in fs_err::read_dir(&d).unwrap().flatten() {
                let (p, meta) = (e.path(), e.metadata().unwrap());
                if meta.is_dir() {
                    todo.push(p);
                } else if let Ok(bytes) = fs_err::read(&p) {
                    // std's (optimised) search: the needles are ASCII,
                    // which a lossy conversion keeps as they are.
                    let found = String::from_utf8_lossy(&bytes).contains(s.as_str());
                    assert!(!found, "{} holds a secret in the clear", p.display());
                }
            }
        }
    }
    // The repository holds none either: only ciphertext and the demo key.
    let tracked = std::process::Command::new("git")
        .args([
            "grep",
            "-l",
            "-e",
            "BEGIN PRIVATE KEY",
            "-e",
            "BEGIN CERTIFICATE",
            "--",
            "examples/chat",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let files = String::from_utf8_lossy(&tracked.stdout);
    assert!(
        files.is_empty(),
        "key or certificate in the clear in: {files}"
    );

    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

/// What the deploy test's clients saw.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<String>,
    received: BTreeSet<String>,
    by_catch_up: usize,
    /// How the sockets ended (the close frame, or the error).
    ends: Vec<String>,
}

#[test]
fn a_rolling_deploy_of_chat_gateway_loses_no_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let app = example(tmp.path(), "chat-deploy");
    let gw = up(&app);
    let room = "deploy";
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_receiving = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicUsize::new(0));

    // The sender: a message every 50 ms, each waited for until acked;
    // after a reconnect the one not acked is sent again (same id).
    let sender = {
        let (seen, stop, reconnects) = (seen.clone(), stop.clone(), reconnects.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let started = Instant::now();
            let mut client: Option<Client> = None;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed)
                && i < 3000
                && started.elapsed() < Duration::from_secs(240)
            {
                let id = format!("d{i}");
                let c = match &mut client {
                    Some(c) => c,
                    None => {
                        let c = Client::join(gw, room)?;
                        client.insert(c)
                    }
                };
                let sent = c.send(&send_frame(&id, &format!("message {i}")));
                let deadline = Instant::now() + Duration::from_secs(15);
                let mut acked = false;
                while sent.is_ok() && Instant::now() < deadline {
                    match c.next() {
                        Ok(Some(f)) if f["type"] == "ack" && f["id"] == id.as_str() => {
                            acked = true;
                            break;
                        }
                        Ok(Some(f)) if f["type"] == "error" => return Err(format!("{f}")),
                        Ok(_) => {}
                        Err(e) => {
                            seen.lock().unwrap().ends.push(e);
                            break;
                        }
                    }
                }
                if acked {
                    seen.lock().unwrap().acked.insert(id);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(50));
                } else {
                    // Closed (the replica is restarting): join again.
                    client = None;
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
    };
    // The receiver: live messages, and on each (re)join history's last
    // 500 of the room (the client's catch-up, as the web client's).
    let receiver = {
        let (seen, stop, reconnects) = (seen.clone(), stop_receiving.clone(), reconnects.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
                let mut c = Client::join(gw, room)?;
                let caught = history_ids(gw, room, 500)?;
                {
                    let mut s = seen.lock().unwrap();
                    for id in caught {
                        if s.received.insert(id) {
                            s.by_catch_up += 1;
                        }
                    }
                }
                loop {
                    match c.next() {
                        Ok(Some(f)) if f["type"] == "message" => {
                            let id = f["message"]["id"].as_str().unwrap().to_string();
                            seen.lock().unwrap().received.insert(id);
                        }
                        Ok(_) if stop.load(Ordering::Relaxed) => return Ok(()),
                        Ok(_) => {}
                        Err(e) => {
                            seen.lock().unwrap().ends.push(e);
                            break;
                        }
                    }
                }
                reconnects.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    eventually(30, "the first messages acknowledged", || {
        seen.lock().unwrap().acked.len() >= 20
    });
    // A new revision of chat-gateway (its environment changed), rolled
    // out replica by replica (start-first) with both clients connected.
    // Its replicas run `cargo run`, which waits for the workspace's build
    // lock while other tests build: a start period of 5 minutes, not the
    // example's 60 s, so that a busy machine is not taken for a failed
    // revision (the deploy is bounded at 400 s below).
    overrides(
        tmp.path(),
        "services:\n  chat-gateway:\n    environment:\n      CHAT_REVISION: \"2\"\n    healthcheck:\n      start_period: 300s\n",
    );
    let started = Instant::now();
    let (code, out) = cove_for(
        &app,
        tmp.path(),
        "chat-deploy",
        &["deploy", "chat-gateway"],
        400,
    );
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("revision 2"), "{out}");
    // A few more after the deploy, then stop sending.
    let after = seen.lock().unwrap().acked.len() + 20;
    eventually(30, "messages acknowledged after the deploy", || {
        seen.lock().unwrap().acked.len() >= after
    });
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap().unwrap();
    eventually(20, "every acknowledged message received", || {
        let s = seen.lock().unwrap();
        s.acked.is_subset(&s.received)
    });
    stop_receiving.store(true, Ordering::Relaxed);
    receiver.join().unwrap().unwrap();
    let s = seen.lock().unwrap();
    let missing: Vec<_> = s.acked.difference(&s.received).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never received: {missing:?}"
    );
    let reconnects = reconnects.load(Ordering::Relaxed);
    assert!(
        reconnects >= 2,
        "both clients were on replicas the deploy replaced: {reconnects} reconnects"
    );
    // The old replicas closed the sockets themselves, on SIGTERM, with
    // 1012 (service restart), not by dropping the connection.
    assert!(
        !s.ends.is_empty() && s.ends.iter().all(|e| e.contains("Restart")),
        "sockets ended otherwise: {:?}",
        s.ends
    );
    // Every replica runs revision 2.
    let rows = app.ps();
    let gateways: Vec<_> = rows
        .iter()
        .filter(|r| r["service"] == "chat-gateway")
        .collect();
    assert!(
        !gateways.is_empty() && gateways.iter().all(|r| r["revision"] == 2),
        "{gateways:#?}"
    );
    eprintln!(
        "chat deploy: {} messages acknowledged, all received ({} through history's catch-up); \
         {reconnects} reconnects; the deploy took {:.1}s",
        s.acked.len(),
        s.by_catch_up,
        took.as_secs_f64()
    );
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn chat_works_in_a_real_browser_two_pages_and_a_reload() {
    // Installed by `bash scripts/browser-deps` (scripts/test runs it); a
    // missing piece fails the test, in CI and elsewhere alike.
    let script_dir = repo().join("examples/chat/browser");
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: install Node.js 20 or later, then run `bash scripts/browser-deps`"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: run `bash scripts/browser-deps`"
    );
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `bash scripts/browser-deps`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let app = example(tmp.path(), "chat-browser");
    let gw = up(&app);
    let artifacts = repo().join("target/chat-browser");
    let out = run_bounded(
        std::process::Command::new("node")
            .arg("chat.mjs")
            .current_dir(&script_dir)
            .env("CHAT_URL", format!("http://{gw}"))
            .env("CHAT_ARTIFACTS", &artifacts),
        180,
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let summary = json(out.stdout.trim());
    assert_eq!(summary["ok"], true, "{summary}");
    for shot in ["alice-sent.png", "bob-received.png", "bob-reloaded.png"] {
        let len = fs_err::metadata(artifacts.join(shot)).unwrap().len();
        assert!(len > 1000, "{shot}: {len} bytes");
    }
    eprintln!("chat in chromium: {summary}");
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}
