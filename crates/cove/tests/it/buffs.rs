//! The buffs example end to end, as a user runs it: `cove up -d` on
//! examples/buffs/compose.yaml (real MariaDB, a 6-node Redis cluster and
//! ActiveMQ through the native recipes, the two Rust services), then HTTP
//! through the gateway's one origin. The example's file is used as it is;
//! an override only moves the state to a temporary directory and the
//! gateway to a free port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::daemon::{App, cargo_build, eventually};
use crate::gateway::{http, json};
use crate::recipes::require;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds example binaries the way their `x-cove.build` does (one
/// `cargo build -p` each), so `up -d` does not wait for a compiler.
pub fn build(packages: &[&str]) {
    for p in packages {
        cargo_build(&[p]);
    }
}

/// The example app with its state in `tmp`, under project name `name`.
pub fn example(example: &str, tmp: &Path, name: &str) -> App {
    let overrides = tmp.join("override.yaml");
    fs_err::write(
        &overrides,
        format!(
            "x-cove:\n  state_dir: {}\n  gateway: {{listen: \"127.0.0.1:0\"}}\n",
            tmp.join("state").display()
        ),
    )
    .unwrap();
    let file = repo().join("examples").join(example).join("compose.yaml");
    let files = format!("{}:{}", file.display(), overrides.display());
    // The examples' secrets are encrypted for their published demo identity.
    let identity = repo().join("examples/buffs/demo-identity.txt");
    App::with_env(
        "services: {}\n",
        &[
            ("COMPOSE_FILE", Path::new(&files)),
            ("COMPOSE_PROJECT_NAME", Path::new(name)),
            ("COVE_IDENTITY", &identity),
        ],
    )
}

pub fn gateway(app: &App) -> SocketAddr {
    let (code, out) = app.merged(&["routes", "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let url = json(&out)["url"].as_str().unwrap().to_string();
    url.trim_start_matches("http://").parse().unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `GET /buffs`: the list and the `X-Cache` header.
fn buffs(gw: SocketAddr) -> (Vec<serde_json::Value>, String) {
    let (status, head, body) = http(gw, "GET", "localhost", "/buffs", b"");
    assert_eq!(status, 200, "{head}\n{body}");
    let cache = header(&head, "x-cache").unwrap_or("").to_string();
    (json(&body).as_array().unwrap().clone(), cache)
}

/// `POST /buff` with `body`: the status and the answer's body.
fn post(gw: SocketAddr, body: &[u8]) -> (u16, String) {
    let (status, _, answer) = http(gw, "POST", "localhost", "/buff", body);
    (status, answer)
}

fn questions(list: &[serde_json::Value]) -> Vec<&str> {
    list.iter()
        .map(|b| b["question"].as_str().unwrap())
        .collect()
}

#[test]
fn buffs_are_created_read_through_the_cache_and_invalidated_by_events_and_survive_a_broker_outage()
{
    require(&["redis-server", "redis-cli", "mariadbd"]);
    assert!(
        Path::new("/usr/share/activemq/bin/activemq.jar").is_file(),
        "ActiveMQ is not installed: run `bash scripts/test`, which installs it"
    );
    build(&["buffs-server", "buffs-dashboard"]);
    let tmp = tempfile::tempdir().unwrap();
    let app = example("buffs", tmp.path(), "buffs-e2e");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let gw = gateway(&app);

    let (list, _) = buffs(gw);
    assert!(list.is_empty(), "a fresh state has no buffs: {list:?}");

    // Create through the gateway (dashboard), read back (server).
    let (status, body) = post(gw, br#"{"question": "who", "answers": ["me", "you"]}"#);
    assert_eq!((status, body.as_str()), (200, ""));
    let mut last = Vec::new();
    eventually(10, "the buff read back, then served from the cache", || {
        let (list, cache) = buffs(gw);
        last = list.clone();
        questions(&list) == ["who"] && cache == "hit"
    });
    let b = &last[0];
    assert_eq!(b["answers"], serde_json::json!(["me", "you"]));
    assert_eq!(
        b["DeletedAt"],
        serde_json::json!({"Time": "0001-01-01T00:00:00Z", "Valid": false})
    );
    assert!(b["ID"].as_u64().is_some(), "{b}");
    for k in ["CreatedAt", "UpdatedAt"] {
        let t = b[k].as_str().unwrap();
        assert!(t.ends_with('Z') && t.contains('T'), "{k}: {t}");
    }

    // A second buff shows up without waiting for the cache's TTL (300 s):
    // its event bumped the cache's generation, so the next read misses.
    let (status, _) = post(gw, br#"{"question": "what", "answers": ["this"]}"#);
    assert_eq!(status, 200);
    let mut seen_by = String::new();
    eventually(
        5,
        "the second buff, after the event invalidated the cache",
        || {
            let (list, cache) = buffs(gw);
            seen_by = cache;
            questions(&list) == ["who", "what"]
        },
    );
    assert_eq!(seen_by, "miss", "the new list came from MariaDB");

    // Bad input: 400 with a JSON error, nothing stored.
    let oversized = format!(
        r#"{{"question": "{}", "answers": ["a"]}}"#,
        "x".repeat(20 * 1024)
    );
    for (body, want) in [
        (&br#"{"answers": ["a"]}"#[..], "`question` is missing"),
        (br#"{"question": "q", "answers": []}"#, "`answers` is empty"),
        (br#"{"question": 1, "answers": ["a"]}"#, "must be a string"),
        (br#"{"question": "q", "answers": [1]}"#, "must be a string"),
        (br#"{"question": "q", "answers": "a"}"#, "must be an array"),
        (b"{not json", "not valid JSON"),
        (oversized.as_bytes(), "larger than"),
    ] {
        let (status, answer) = post(gw, body);
        assert_eq!(status, 400, "{answer}");
        let err = json(&answer)["error"].as_str().unwrap().to_string();
        assert!(err.contains(want), "{err}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (list, _) = buffs(gw);
    assert_eq!(
        questions(&list),
        ["who", "what"],
        "bad input stored nothing"
    );

    // The broker goes away: readers bypass the cache (events could be
    // missed), writes still store; when it is back, the servers subscribe
    // again, start a new cache generation and use the cache.
    let (code, out) = app.merged(&["stop", "activemq"]);
    assert_eq!(code, Some(0), "{out}");
    eventually(10, "reads bypass the cache without the broker", || {
        buffs(gw).1 == "bypass"
    });
    let (status, _) = post(gw, br#"{"question": "outage", "answers": ["stored"]}"#);
    assert_eq!(status, 200, "stored even though the event is not published");
    assert_eq!(questions(&buffs(gw).0), ["who", "what", "outage"]);
    let (code, out) = app.merged(&["start", "activemq"]);
    assert_eq!(code, Some(0), "{out}");
    eventually(20, "the cache in use again", || {
        let (list, cache) = buffs(gw);
        cache == "hit" && questions(&list) == ["who", "what", "outage"]
    });

    // The passwords come from the example's encrypted store. The broker
    // refuses a client without its password; no file of the app's state,
    // log or listing holds one.
    let passwords: Vec<String> = ["DB_ROOT_PASSWORD", "DB_PASSWORD", "BROKER_PASSWORD"]
        .iter()
        .map(|n| {
            let (code, value) = app.merged(&["secrets", "get", n]);
            assert_eq!(code, Some(0), "{value}");
            assert!(value.len() >= 16, "a generated password");
            value
        })
        .collect();
    let broker = app
        .ps()
        .into_iter()
        .find(|r| r["service"] == "activemq")
        .unwrap();
    let host = broker["address"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let stomp = |login: &str| {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect((host.as_str(), 61613)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(format!("CONNECT\naccept-version:1.2\nhost:localhost\n{login}\n\0").as_bytes())
            .unwrap();
        let mut answer = [0u8; 256];
        let n = s.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    assert!(
        stomp("").starts_with("ERROR"),
        "anonymous clients are refused"
    );
    assert!(
        stomp(&format!("login:buffs\npasscode:{}\n", passwords[2])).starts_with("CONNECTED"),
        "the store's password is the broker's"
    );
    let (_, logs) = app.merged(&["logs"]);
    let (_, ps) = app.merged(&["ps", "--format", "json"]);
    let (_, config) = app.merged(&["config"]);
    for pw in &passwords {
        for (what, text) in [("logs", &logs), ("ps", &ps), ("config", &config)] {
            assert!(
                !text.contains(pw.as_str()),
                "`cove {what}` shows a password"
            );
        }
        let mut todo = vec![tmp.path().to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs_err::read_dir(&d).unwrap().flatten() {
                let (p, meta) = (e.path(), e.metadata().unwrap());
                if meta.is_dir() {
                    todo.push(p);
                } else if let Ok(bytes) = fs_err::read(&p) {
                    let found = bytes.windows(pw.len()).any(|w| w == pw.as_bytes());
                    assert!(!found, "{} holds a password in the clear", p.display());
                }
            }
        }
    }

    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}
