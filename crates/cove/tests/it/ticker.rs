//! The ticker example end to end, as a user runs it: `cove up -d` on
//! examples/ticker/compose.yaml (real PostgreSQL through the postgres
//! recipe; a Redis master, two replicas and three sentinels through the
//! redis recipe; two ticker replicas behind the gateway). The example's
//! file is used as it is; an override only moves the state to a temporary
//! directory and the gateway to a free port.
//!
//! - one `up` creates the database, migrates it and serves; a second `up`
//!   runs `create-db` and `migrate` again, harmlessly;
//! - `cove run tests` runs the app's own suite against the same database;
//! - the Redis master is killed (SIGKILL, its pid from `cove ps`) under
//!   load through the gateway: Sentinel promotes a replica, the service
//!   keeps answering; the failed requests and the time the cache was off
//!   are printed (`--nocapture`), and bounded: at most the requests in
//!   flight at the kill (one per client) may fail, none before it;
//! - the same app in `--env prod` runs beside it with its own database
//!   and secrets: no data shared.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::buffs::{build, gateway};
use crate::daemon::{App, eventually, kill9, run_bounded};
use crate::gateway::json;
use crate::recipes::require;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example with its state under `tmp`, as project `name`, in the
/// environment `env` if given.
fn example(tmp: &Path, name: &str, env: Option<&str>) -> App {
    let overrides = tmp.join("override.yaml");
    fs_err::write(
        &overrides,
        format!(
            "x-cove:\n  state_dir: {}\n  gateway: {{listen: \"127.0.0.1:0\"}}\n",
            tmp.join("state").display()
        ),
    )
    .unwrap();
    let file = repo().join("examples/ticker/compose.yaml");
    let files = format!("{}:{}", file.display(), overrides.display());
    // The example's secrets are encrypted for the published demo identity.
    let identity = repo().join("examples/buffs/demo-identity.txt");
    let mut vars: Vec<(&str, &Path)> = vec![
        ("COMPOSE_FILE", Path::new(&files)),
        ("COMPOSE_PROJECT_NAME", Path::new(name)),
        ("COVE_IDENTITY", &identity),
    ];
    if let Some(e) = env {
        vars.push(("COVE_ENV", Path::new(e)));
    }
    App::with_env("services: {}\n", &vars)
}

/// One request, `Connection: close`: (status, x-cache), or why none.
fn request(
    gw: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String, String), String> {
    let mut s =
        TcpStream::connect_timeout(&gw, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let cache = head
        .lines()
        .find_map(|l| l.strip_prefix("x-cache: "))
        .unwrap_or("")
        .to_string();
    Ok((status, cache, body.to_string()))
}

fn post_tick(gw: SocketAddr, symbol: &str, price: f64) -> (u16, String) {
    let body =
        format!(r#"{{"symbol": "{symbol}", "price": {price}, "time": "2026-01-02T03:04:05Z"}}"#);
    let (status, _, body) = request(gw, "POST", "/ticks", &body).unwrap();
    (status, body)
}

fn price(gw: SocketAddr, symbol: &str) -> (u16, String, serde_json::Value) {
    let (status, cache, body) = request(gw, "GET", &format!("/price/{symbol}"), "").unwrap();
    let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, cache, v)
}

/// The rows of `cove ps --format json` of `service`.
fn rows(app: &App, service: &str) -> Vec<serde_json::Value> {
    app.ps()
        .into_iter()
        .filter(|r| r["service"] == service)
        .collect()
}

/// What a ticker replica's `/health` says of the Redis master, asked
/// directly (not through the gateway, which routes no `/health`).
fn master_seen(app: &App) -> Option<String> {
    let addr: SocketAddr = rows(app, "ticker")
        .first()?
        .get("address")?
        .as_str()?
        .parse()
        .ok()?;
    let (_, _, body) = request(addr, "GET", "/health", "").ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["redis"]["master"].as_str().map(String::from)
}

const CLIENTS: usize = 4;

/// One answered (or failed) request of the load: when it started and
/// ended (since the load began), its status (0: no answer) and `x-cache`.
#[derive(Debug, Clone)]
struct Sample {
    start: Duration,
    end: Duration,
    status: u16,
    cache: String,
}

#[test]
fn ticker_creates_migrates_serves_fails_over_and_runs_in_a_second_environment() {
    require(&["redis-server", "redis-cli", "psql"]);
    build(&["ticker"]);
    // `cove run tests` compiles the app's test suite: compile it now, so
    // that the run is not bounded by a compiler.
    let built = run_bounded(
        std::process::Command::new(
            std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string()),
        )
        .current_dir(repo())
        .args(["test", "-q", "-p", "ticker", "--test", "app", "--no-run"]),
        600,
    );
    assert_eq!(built.code, Some(0), "{built}");

    let tmp = tempfile::tempdir().unwrap();
    let app = example(tmp.path(), "ticker-e2e", None);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    for job in ["create-db", "migrate"] {
        let r = rows(&app, job);
        assert_eq!(r.len(), 1, "{job}: {r:?}");
        assert_eq!(r[0]["state"], "completed", "{job}: {r:?}");
    }
    let gw = gateway(&app);

    // Created, migrated, serving through the gateway.
    let (status, body) = post_tick(gw, "ACME", 12.5);
    assert_eq!(status, 201, "{body}");
    let (status, cache, tick) = price(gw, "ACME");
    assert_eq!((status, cache.as_str()), (200, "miss"), "{tick}");
    assert_eq!(tick["price"], 12.5);
    let (status, cache, _) = price(gw, "ACME");
    assert_eq!((status, cache.as_str()), (200, "hit"));
    let (status, _, body) = request(gw, "POST", "/ticks", r#"{"symbol": "ACME"}"#).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`price` is missing"), "{body}");

    // A second `up`: the one-shots run again, change nothing.
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("create-db-1 completed") && out.contains("migrate-1 completed"),
        "the one-shots ran again: {out}"
    );
    let (code, logs) = app.merged(&["logs", "migrate", "create-db"]);
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        logs.matches(r#""role_created":false,"database":"ticker","database_created":false"#)
            .count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches(r#""applied":0,"known":2"#).count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches(r#""applied":2,"known":2"#).count(),
        1,
        "{logs}"
    );
    let (_, _, ticks) = request(gw, "GET", "/ticks/ACME", "").unwrap();
    assert_eq!(json(&ticks).as_array().map(Vec::len), Some(1), "{ticks}");

    // The brief's `run tests`.
    let (code, out) = app.merged(&["run", "--rm", "tests"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 passed"), "{out}");

    failover_under_load(&app, gw);

    // The same app in `--env prod`, beside it: its own database (and
    // passwords), nothing shared.
    let prod = example(tmp.path(), "ticker-e2e", Some("prod"));
    let (code, out) = prod.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let pgw = gateway(&prod);
    assert_ne!(pgw, gw);
    let (status, body) = post_tick(pgw, "PRODONLY", 3.0);
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = price(pgw, "ACME");
    assert_eq!(status, 404, "prod has no tick of the default environment's");
    let (status, _, _) = price(gw, "PRODONLY");
    assert_eq!(status, 404, "the default environment has no tick of prod's");
    let (status, _, tick) = price(gw, "ACME");
    assert_eq!((status, &tick["price"]), (200, &serde_json::json!(12.5)));
    let addr_of = |a: &App| rows(a, "postgres")[0]["address"].clone();
    assert_ne!(addr_of(&app), addr_of(&prod), "two PostgreSQL servers");
    let (c1, dev_pw) = app.merged(&["secrets", "get", "DB_PASSWORD"]);
    let (c2, prod_pw) = prod.merged(&["secrets", "get", "DB_PASSWORD"]);
    assert_eq!((c1, c2), (Some(0), Some(0)));
    assert_ne!(dev_pw, prod_pw, "prod has its own secrets");
    let (code, out) = prod.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
}

/// Kills the Redis master under load through the gateway.
fn failover_under_load(app: &App, gw: SocketAddr) {
    let master = rows(app, "redis-master");
    let old = master[0]["address"].as_str().unwrap().to_string();
    let pid = master[0]["pid"].as_u64().unwrap() as u32;
    eventually(30, "the service uses the master", || {
        master_seen(app).as_deref() == Some(old.as_str())
    });
    let replicas: Vec<String> = ["redis-replica-1", "redis-replica-2"]
        .iter()
        .map(|s| rows(app, s)[0]["address"].as_str().unwrap().to_string())
        .collect();

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let begun = Instant::now();
    // Bounded: 12 s, and at most 5,000 requests per client.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let samples = samples.clone();
            std::thread::spawn(move || {
                for n in 0..5_000u32 {
                    if begun.elapsed() > Duration::from_secs(12) {
                        break;
                    }
                    let start = begun.elapsed();
                    let answer = if n % 4 == 0 {
                        let body = format!(
                            r#"{{"symbol": "LOAD{c}", "price": {}, "time": "2026-01-02T03:04:05Z"}}"#,
                            n + 1
                        );
                        request(gw, "POST", "/ticks", &body)
                    } else {
                        request(gw, "GET", &format!("/price/LOAD{c}"), "")
                    };
                    let (status, cache) = match answer {
                        Ok((s, c, _)) => (s, c),
                        Err(e) => (0, e),
                    };
                    samples.lock().unwrap().push(Sample {
                        start,
                        end: begun.elapsed(),
                        status,
                        cache,
                    });
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let killed = begun.elapsed();
    kill9(pid);
    for c in clients {
        c.join().unwrap();
    }
    let samples = samples.lock().unwrap().clone();

    let ok = |s: &Sample| s.status == 200 || s.status == 201;
    let failed: Vec<&Sample> = samples.iter().filter(|s| !ok(s)).collect();
    // The failover, as the service saw it: from the kill to the last
    // answer given without the cache.
    let off: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.cache == "off" && s.end >= killed)
        .collect();
    let window_end = off.iter().map(|s| s.end).max().unwrap_or(killed);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.start > window_end).collect();
    eprintln!(
        "ticker failover: {} requests through the gateway ({CLIENTS} clients), {} failed; \
         Redis master killed at {:.3} s, cache off for {:.3} s ({} answers from PostgreSQL), \
         {} requests after, {} of them cache hits",
        samples.len(),
        failed.len(),
        killed.as_secs_f64(),
        (window_end - killed).as_secs_f64(),
        off.len(),
        after.len(),
        after.iter().filter(|s| s.cache == "hit").count(),
    );
    assert!(
        failed
            .iter()
            .all(|s| s.end >= killed && s.start <= window_end),
        "failures only during the failover: {failed:?}"
    );
    assert!(
        failed.len() <= CLIENTS,
        "at most the requests in flight at the kill fail: {failed:?}"
    );
    assert!(
        !off.is_empty(),
        "the kill was seen by the service (cache off)"
    );
    assert!(
        after.iter().all(|s| ok(s)),
        "every request after the failover succeeds"
    );

    // Sentinel promoted a replica; the service uses it, and its cache.
    let mut now = String::new();
    eventually(30, "the service uses a promoted replica", || {
        now = master_seen(app).unwrap_or_default();
        replicas.contains(&now)
    });
    assert_ne!(now, old);
    eventually(30, "the cache answers again", || {
        let (status, cache, _) = price(gw, "ACME");
        status == 200 && cache == "hit"
    });

    // The old master, started again, is made a replica of the new one.
    let (code, out) = app.merged(&["start", "redis-master"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, password) = app.merged(&["secrets", "get", "REDIS_PASSWORD"]);
    assert_eq!(code, Some(0));
    let (host, port) = old.rsplit_once(':').unwrap();
    let mut role = String::new();
    // Sentinel converts a master that comes back on its own clock (it
    // must reconnect, see the old role reported for a while, then send
    // REPLICAOF): ~10-20 s alone, over 60 s once in a loaded CI run.
    let converting = std::time::Instant::now();
    eventually(180, "the old master turned replica of the new one", || {
        let out = run_bounded(
            std::process::Command::new("redis-cli")
                .args(["-h", host, "-p", port, "role"])
                .env("REDISCLI_AUTH", password.trim_end()),
            10,
        );
        role = out.stdout;
        let (new_host, new_port) = now.rsplit_once(':').unwrap();
        role.starts_with("slave\n") && role.contains(&format!("{new_host}\n{new_port}\n"))
    });
    eprintln!(
        "ticker: the old master was a replica of the new one {:.1} s after it started again",
        converting.elapsed().as_secs_f64()
    );
}
