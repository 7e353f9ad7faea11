//! The app's own test suite, against a running ticker and its database:
//! `cove run tests` (compose.yaml's `tests` service) runs it with
//! `DATABASE_URL`, `DATABASE_PASSWORD_FILE` and `TICKER_URL` set. Without
//! them there is nothing to test against, so these tests are ignored in
//! plain `cargo test` and run with `--ignored` by that service.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests with `cove run tests` (see compose.yaml)")
    })
}

/// One HTTP/1.1 request to `TICKER_URL`: (status, x-cache, body).
fn http(method: &str, path: &str, body: &str) -> (u16, String, String) {
    let url = env("TICKER_URL");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let cache = head
        .lines()
        .find_map(|l| l.strip_prefix("x-cache: "))
        .unwrap_or("")
        .to_string();
    (status, cache, body.to_string())
}

/// A symbol no other run uses.
fn symbol() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("T{}-{}", std::process::id(), nanos % 100_000)
}

fn scalar(sql: &'static str, symbol: Option<&str>) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = {
            let mut o: sqlx::postgres::PgConnectOptions = env("DATABASE_URL").parse().unwrap();
            let pw = fs_err::read_to_string(env("DATABASE_PASSWORD_FILE")).unwrap();
            o = o.password(pw.trim_end());
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(o)
                .await
                .unwrap()
        };
        let q = sqlx::query_scalar::<_, i64>(sql);
        let q = match symbol {
            Some(s) => q.bind(s.to_string()),
            None => q,
        };
        q.fetch_one(&pool).await.unwrap()
    })
}

#[test]
#[ignore = "needs the running app: `cove run tests`"]
fn the_schema_is_migrated_once() {
    assert_eq!(
        scalar("SELECT count(*) FROM schema_migrations", None),
        2,
        "both migrations recorded, once each"
    );
    assert_eq!(
        scalar(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'ticks_by_symbol_time'",
            None
        ),
        1
    );
}

#[test]
#[ignore = "needs the running app: `cove run tests`"]
fn ticks_are_stored_listed_and_the_price_follows_the_newest() {
    let sym = symbol();
    for (price, time) in [
        (10.5, "2026-01-02T03:04:05Z"),
        (11.0, "2026-01-02T03:04:06Z"),
    ] {
        let (status, _, body) = http(
            "POST",
            "/ticks",
            &json!({"symbol": sym, "price": price, "time": time}).to_string(),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (status, _, body) = http("GET", &format!("/ticks/{sym}"), "");
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    let prices: Vec<f64> = list.iter().map(|t| t["price"].as_f64().unwrap()).collect();
    assert_eq!(prices, [11.0, 10.5], "newest first");
    assert_eq!(list[0]["time"], "2026-01-02T03:04:06.000000Z");

    let (status, cache, body) = http("GET", &format!("/price/{sym}"), "");
    assert_eq!((status, cache.as_str()), (200, "miss"), "{body}");
    let (_, cache, body) = http("GET", &format!("/price/{sym}"), "");
    assert_eq!(cache, "hit");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["price"], 11.0);

    // A newer tick: the cached price is not served again.
    let (status, _, _) = http(
        "POST",
        "/ticks",
        &json!({"symbol": sym, "price": 12.25, "time": "2026-01-02T03:04:07+01:00"}).to_string(),
    );
    assert_eq!(status, 201);
    let (_, _, body) = http("GET", &format!("/price/{sym}"), "");
    // 03:04:07+01:00 is 02:04:07Z: older than the others, so not the latest.
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["price"], 11.0);
    let (status, _, _) = http(
        "POST",
        "/ticks",
        &json!({"symbol": sym, "price": 13.0, "time": "2026-01-02T04:00:00Z"}).to_string(),
    );
    assert_eq!(status, 201);
    let (_, cache, body) = http("GET", &format!("/price/{sym}"), "");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["price"],
        13.0,
        "{cache}"
    );
    assert_eq!(
        scalar("SELECT count(*) FROM ticks WHERE symbol = $1", Some(&sym)),
        4
    );
}

#[test]
#[ignore = "needs the running app: `cove run tests`"]
fn bad_ticks_are_refused_with_the_reason() {
    for (body, says) in [
        ("not json", "not a JSON tick"),
        (
            r#"{"symbol": "A", "price": 0, "time": "2026-01-02T03:04:05Z"}"#,
            "above 0",
        ),
        (r#"{"symbol": "A", "price": 1}"#, "`time` is missing"),
        (
            r#"{"symbol": "a b", "price": 1, "time": "2026-01-02T03:04:05Z"}"#,
            "A-Z",
        ),
    ] {
        let (status, _, answer) = http("POST", "/ticks", body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
    let (status, _, answer) = http("GET", "/price/NOSUCH-SYMBOL", "");
    assert_eq!(status, 404, "{answer}");
    let (status, _, answer) = http("GET", "/ticks/A?limit=0", "");
    assert_eq!(status, 400, "{answer}");
}
