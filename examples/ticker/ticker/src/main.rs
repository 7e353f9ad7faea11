//! ticker: price ticks over HTTP, stored in PostgreSQL, the latest price
//! cached in Redis (found through Sentinel).
//!
//! ```text
//! ticker [serve]    the HTTP service (HOST:PORT)
//! ticker create-db  the role and database of DATABASE_URL, as ADMIN_DATABASE_URL's superuser
//! ticker migrate    the schema (db/migrations), applied once each
//! ```
//!
//! HTTP:
//! - `POST /ticks` `{"symbol": "ACME", "price": 12.5, "time": "2026-01-02T03:04:05Z"}`
//!   stores a tick (201, the tick with its id); a bad one is a 400 saying why.
//! - `GET /ticks/{symbol}?limit=N` the newest N ticks (default 100, at most 1000).
//! - `GET /price/{symbol}` the latest tick, through the Redis cache
//!   (`x-cache: hit`, `miss`, or `off` when no Redis master answers).
//! - `GET /health` PostgreSQL (`SELECT 1` on the pool: 503 if it fails) and
//!   Redis (`PING` on the master Sentinel names: reported, not fatal, since
//!   the service answers without its cache).
//! - `GET /metrics` Prometheus text.
//!
//! Environment: `DATABASE_URL`, `DATABASE_PASSWORD[_FILE]`, `REDIS_*` (see
//! `cache.rs`), `HOST`/`PORT`; for `create-db`, `ADMIN_DATABASE_URL` and
//! `ADMIN_PASSWORD[_FILE]`.

mod cache;
mod db;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use buffs_common::metrics::{Counter, Registry};
use buffs_common::{http, log};
use serde_json::{Value, json};
use sqlx::PgPool;

struct App {
    db: PgPool,
    cache: cache::Cache,
    hits: Counter,
    misses: Counter,
    off: Counter,
    ingested: Counter,
    invalidation_failures: Counter,
}

#[tokio::main]
async fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let done = match cmd.as_str() {
        "serve" => serve().await,
        "create-db" => db::create_db().await,
        "migrate" => migrate().await,
        other => Err(format!(
            "unknown command `{other}`\n  hint: ticker [serve | create-db | migrate]"
        )
        .into()),
    };
    if let Err(e) = done {
        buffs_common::exit_with(&format!("ticker {cmd}"), &e);
    }
}

async fn migrate() -> Result<(), buffs_common::Error> {
    let pool = db::pool(db::app_options()?).await?;
    let applied = db::migrate(&pool).await?;
    log::info(
        "schema up to date",
        json!({"applied": applied, "known": db::MIGRATIONS.len()}),
    );
    Ok(())
}

async fn serve() -> Result<(), buffs_common::Error> {
    let cache = cache::Cache::from_env()?;
    let db = db::pool(db::app_options()?).await?;
    let metrics = Arc::new(Registry::default());
    let app = Arc::new(App {
        db,
        cache,
        hits: metrics.counter("ticker_cache_hits_total", "GET /price answered from Redis."),
        misses: metrics.counter(
            "ticker_cache_misses_total",
            "GET /price answered from PostgreSQL and cached.",
        ),
        off: metrics.counter(
            "ticker_cache_off_total",
            "GET /price answered from PostgreSQL because no Redis master answered.",
        ),
        ingested: metrics.counter("ticker_ticks_ingested_total", "Ticks stored."),
        invalidation_failures: metrics.counter(
            "ticker_cache_invalidation_failures_total",
            "Ingests whose cache invalidation failed (retried).",
        ),
    });
    if let Err(e) = app.cache.ping().await {
        log::warn("redis not ready yet", json!({"error": e}));
    }
    tokio::spawn(retry_invalidations(app.clone()));
    let router = Router::new()
        .route("/ticks", post(ingest))
        .route("/ticks/{symbol}", get(recent))
        .route("/price/{symbol}", get(price))
        .route("/health", get(health))
        .with_state(app);
    http::serve(router, metrics).await?;
    Ok(())
}

/// Invalidations that failed (no Redis master for a moment), retried
/// every 200 ms until they succeed.
async fn retry_invalidations(app: Arc<App>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for symbol in app.cache.pending() {
            if app.cache.invalidate(&symbol).await.is_err() {
                break;
            }
        }
    }
}

fn bad_request(msg: impl Into<String>) -> Response {
    http::error(StatusCode::BAD_REQUEST, msg)
}

fn internal(what: &str, e: impl std::fmt::Display) -> Response {
    log::error(what, json!({"error": e.to_string()}));
    http::error(StatusCode::INTERNAL_SERVER_ERROR, what)
}

/// A symbol: 1 to 16 of `A-Z 0-9 . -`.
fn check_symbol(s: &str) -> Result<(), String> {
    let ok = (1..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    ok.then_some(()).ok_or_else(|| {
        format!("`symbol` must be 1 to 16 characters of A-Z, 0-9, `.` and `-` (got {s:?})")
    })
}

/// A validated tick from a request's body.
fn parse_tick(body: &Value) -> Result<(String, f64, jiff::Timestamp), String> {
    let obj = body
        .as_object()
        .ok_or("the body must be a JSON object: {\"symbol\", \"price\", \"time\"}")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["symbol", "price", "time"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field `{k}` (a tick has `symbol`, `price`, `time`)"
        ));
    }
    let symbol = obj
        .get("symbol")
        .ok_or("`symbol` is missing")?
        .as_str()
        .ok_or("`symbol` must be a string")?;
    check_symbol(symbol)?;
    let price = obj
        .get("price")
        .ok_or("`price` is missing")?
        .as_f64()
        .ok_or("`price` must be a number")?;
    if !(price.is_finite() && price > 0.0) {
        return Err(format!("`price` must be above 0 (got {price})"));
    }
    let time = obj
        .get("time")
        .ok_or("`time` is missing")?
        .as_str()
        .ok_or("`time` must be a string (RFC 3339, e.g. 2026-01-02T03:04:05Z)")?;
    let time: jiff::Timestamp = time
        .parse()
        .map_err(|e| format!("`time` is not an RFC 3339 time with an offset ({time:?}): {e}"))?;
    Ok((symbol.to_string(), price, time))
}

async fn ingest(
    State(app): State<Arc<App>>,
    body: Result<axum::Json<Value>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(v)) => v,
        Err(e) => return bad_request(format!("the body is not a JSON tick: {}", e.body_text())),
    };
    let (symbol, price, time) = match parse_tick(&body) {
        Ok(t) => t,
        Err(e) => return bad_request(e),
    };
    let tick = match db::insert(&app.db, &symbol, price, time).await {
        Ok(t) => t,
        Err(e) => return internal("the tick could not be stored", e),
    };
    app.ingested.inc();
    if let Err(e) = app.cache.invalidate(&symbol).await {
        app.invalidation_failures.inc();
        log::warn(
            "cache invalidation failed; the symbol is read from PostgreSQL until it succeeds",
            json!({"symbol": symbol, "error": e}),
        );
    }
    (StatusCode::CREATED, axum::Json(tick)).into_response()
}

async fn recent(
    State(app): State<Arc<App>>,
    Path(symbol): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = check_symbol(&symbol) {
        return bad_request(e);
    }
    let given = query
        .iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("limit="));
    let limit = match given.map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return bad_request("`limit` must be a number from 1 to 1000"),
    };
    match db::recent(&app.db, &symbol, limit).await {
        Ok(ticks) => axum::Json(ticks).into_response(),
        Err(e) => internal("the ticks could not be read", e),
    }
}

async fn price(State(app): State<Arc<App>>, Path(symbol): Path<String>) -> Response {
    if let Err(e) = check_symbol(&symbol) {
        return bad_request(e);
    }
    let cached = app.cache.get(&symbol).await;
    if let Ok((Some(json), _)) = &cached {
        app.hits.inc();
        return answer(json.clone(), "hit");
    }
    let tick = match db::latest(&app.db, &symbol).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return http::error(StatusCode::NOT_FOUND, format!("no tick of {symbol} yet"));
        }
        Err(e) => return internal("the price could not be read", e),
    };
    let json = json!(tick).to_string();
    match cached {
        Ok((None, generation)) => {
            app.misses.inc();
            // A failed store only costs the next reader a miss.
            let _ = app.cache.put(&symbol, generation, &json).await;
            answer(json, "miss")
        }
        _ => {
            app.off.inc();
            answer(json, "off")
        }
    }
}

fn answer(json: String, cache: &'static str) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::HeaderName::from_static("x-cache"), cache),
        ],
        json,
    )
        .into_response()
}

/// PostgreSQL must answer `SELECT 1` (else 503: the gateway stops sending
/// this replica requests); Redis's master is pinged and reported.
async fn health(State(app): State<Arc<App>>) -> Response {
    let pg = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&app.db),
    )
    .await;
    let pg = match pg {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 2 s".to_string()),
    };
    let redis = match app.cache.ping().await {
        Ok(master) => json!({"ok": true, "master": master}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    let status = if pg.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let postgres = match pg {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    (
        status,
        axum::Json(json!({"postgres": postgres, "redis": redis})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_validated() {
        let ok = json!({"symbol": "ACME", "price": 12.5, "time": "2026-01-02T03:04:05Z"});
        let (s, p, _) = parse_tick(&ok).unwrap();
        assert_eq!((s.as_str(), p), ("ACME", 12.5));
        for (bad, says) in [
            (json!([1]), "JSON object"),
            (
                json!({"price": 1, "time": "2026-01-02T03:04:05Z"}),
                "`symbol` is missing",
            ),
            (
                json!({"symbol": "acme", "price": 1, "time": "2026-01-02T03:04:05Z"}),
                "A-Z",
            ),
            (
                json!({"symbol": "A", "price": -1, "time": "2026-01-02T03:04:05Z"}),
                "above 0",
            ),
            (
                json!({"symbol": "A", "price": "1", "time": "2026-01-02T03:04:05Z"}),
                "a number",
            ),
            (
                json!({"symbol": "A", "price": 1, "time": "yesterday"}),
                "RFC 3339",
            ),
            (
                json!({"symbol": "A", "price": 1, "time": "2026-01-02T03:04:05"}),
                "RFC 3339",
            ),
            (
                json!({"symbol": "A", "price": 1, "time": "2026-01-02T03:04:05Z", "x": 1}),
                "unknown field",
            ),
        ] {
            let e = parse_tick(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
