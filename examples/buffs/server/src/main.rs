//! buffs `server`: `GET /buffs` answers every buff, read through a cache in
//! the Redis cluster; the cache is invalidated by the "buff created" events
//! `dashboard` publishes to ActiveMQ.
//!
//! The cache is generational: readers use `{buffs}:list:<gen>`, an event
//! bumps `{buffs}:gen`. A reader that loaded the table before an insert and
//! stores its copy after the bump writes under the old generation, which no
//! one reads again, so a stale list is never served after the event.
//!
//! Environment: `DATABASE_URL`, `REDIS_NODES` (host:port,...), `STOMP_URL`,
//! `CACHE_TTL` (seconds, default 300), `HOST`/`PORT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use buffs_common::metrics::{Counter, Registry};
use buffs_common::{EVENTS_TOPIC, buff, config, http, log, stomp};
use redis::AsyncCommands;
use redis::cluster_async::ClusterConnection;
use serde_json::json;
use sqlx::MySqlPool;
use tokio::sync::watch;

const GEN_KEY: &str = "{buffs}:gen";
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

struct App {
    db: MySqlPool,
    cache: ClusterConnection,
    ttl: u64,
    /// Subscribed to the events now: the cache can be trusted.
    subscribed: AtomicBool,
    /// Subscribed once: ready to serve (a broker outage later only turns
    /// the cache off).
    ready: AtomicBool,
    hits: Counter,
    misses: Counter,
    cache_errors: Counter,
    events: Counter,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        buffs_common::exit_with("server", &e);
    }
}

async fn run() -> Result<(), buffs_common::Error> {
    let nodes = config::required(
        "REDIS_NODES",
        "set it to the cluster's nodes, HOST:PORT,HOST:PORT,... (compose.yaml does)",
    )?;
    let broker = buffs_common::broker_from_env()?;
    let ttl = config::seconds("CACHE_TTL", 300).as_secs().max(1);
    let db = buffs_common::database_from_env().await?;
    let cache = redis_cluster(&nodes, config::seconds("REDIS_PATIENCE", 60)).await?;
    let metrics = Arc::new(Registry::default());
    let app = Arc::new(App {
        db,
        cache,
        ttl,
        subscribed: AtomicBool::new(false),
        ready: AtomicBool::new(false),
        hits: metrics.counter(
            "buffs_cache_hits_total",
            "GET /buffs answered from the cache.",
        ),
        misses: metrics.counter(
            "buffs_cache_misses_total",
            "GET /buffs answered from MariaDB.",
        ),
        cache_errors: metrics.counter(
            "buffs_cache_errors_total",
            "Cache operations that failed (the answer came from MariaDB).",
        ),
        events: metrics.counter(
            "buffs_events_consumed_total",
            "Events consumed from the broker.",
        ),
    });
    let (stop, stopped) = watch::channel(false);
    let consumer = tokio::spawn(consume(app.clone(), broker, stopped));
    let router = Router::new()
        .route("/buffs", get(list))
        .route("/health", get(health))
        .with_state(app.clone());
    let served = http::serve(router, metrics).await;
    let _ = stop.send(true);
    match tokio::time::timeout(BROKER_TIMEOUT * 2, consumer).await {
        Ok(_) => {}
        Err(_) => log::warn("broker session did not close in time", json!({})),
    }
    served?;
    Ok(())
}

/// Connects to the cluster, waiting for it to be formed and serving.
async fn redis_cluster(
    nodes: &str,
    patience: Duration,
) -> Result<ClusterConnection, redis::RedisError> {
    let urls: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| format!("redis://{n}"))
        .collect();
    buffs_common::retry("redis cluster", patience, || async {
        let client = redis::cluster::ClusterClient::new(urls.clone())?;
        let mut conn = client.get_async_connection().await?;
        // A write proves the slots are served (the cluster is formed).
        let _: i64 = conn.incr(GEN_KEY, 0).await?;
        Ok(conn)
    })
    .await
}

/// Consumes the broker's events until `stopped`, reconnecting when the
/// session breaks; closes the session on the way out.
async fn consume(app: Arc<App>, broker: stomp::Url, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        let mut client = match subscribe(&broker).await {
            Ok(c) => c,
            Err(e) => {
                app.subscribed.store(false, Ordering::Relaxed);
                log::warn(
                    "broker not reachable; retrying",
                    json!({"error": e.to_string()}),
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped.changed() => break,
                }
            }
        };
        // Events published while no session was open are lost: start a new
        // generation before trusting the cache again.
        app.invalidate(json!({"type": "subscribed"})).await;
        app.subscribed.store(true, Ordering::Relaxed);
        app.ready.store(true, Ordering::Relaxed);
        log::info("subscribed", json!({"destination": EVENTS_TOPIC}));
        loop {
            tokio::select! {
                frame = client.next() => match frame {
                    Ok(f) if f.command == "MESSAGE" => app.on_event(&f.body).await,
                    Ok(_) => {}
                    Err(e) => {
                        app.subscribed.store(false, Ordering::Relaxed);
                        log::warn("broker session broke; reconnecting", json!({"error": e.to_string()}));
                        break;
                    }
                },
                _ = stopped.changed() => {
                    match client.disconnect().await {
                        Ok(()) => log::info("broker session closed", json!({})),
                        Err(e) => log::warn("broker session did not close cleanly", json!({"error": e.to_string()})),
                    }
                    return;
                }
            }
        }
    }
}

async fn subscribe(broker: &stomp::Url) -> Result<stomp::Client, stomp::Error> {
    let mut client = stomp::Client::connect(broker, BROKER_TIMEOUT).await?;
    client.subscribe("buffs-events", EVENTS_TOPIC).await?;
    Ok(client)
}

impl App {
    async fn on_event(&self, body: &[u8]) {
        self.events.inc();
        self.invalidate(serde_json::from_slice(body).unwrap_or_default())
            .await;
    }

    /// Starts a new cache generation; `event` says why.
    async fn invalidate(&self, event: serde_json::Value) {
        let mut cache = self.cache.clone();
        match cache.incr::<_, _, i64>(GEN_KEY, 1).await {
            Ok(generation) => log::info(
                "cache invalidated",
                json!({"event": event, "generation": generation}),
            ),
            Err(e) => {
                self.cache_errors.inc();
                log::error(
                    "cache not invalidated",
                    json!({"event": event, "error": e.to_string()}),
                );
            }
        }
    }

    /// The cached list for the current generation, if any.
    async fn cached(&self) -> Result<(i64, Option<String>), redis::RedisError> {
        let mut cache = self.cache.clone();
        let generation: Option<i64> = cache.get(GEN_KEY).await?;
        let generation = generation.unwrap_or(0);
        let list: Option<String> = cache.get(list_key(generation)).await?;
        Ok((generation, list))
    }
}

fn list_key(generation: i64) -> String {
    format!("{{buffs}}:list:{generation}")
}

fn json_response(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-cache"), cache),
        ],
        body,
    )
        .into_response()
}

async fn list(State(app): State<Arc<App>>) -> Response {
    // Without the events, a cached list could be stale: read MariaDB.
    let cached = if app.subscribed.load(Ordering::Relaxed) {
        Some(app.cached().await)
    } else {
        None
    };
    let generation = match cached {
        Some(Ok((_, Some(body)))) => {
            app.hits.inc();
            return json_response(body, "hit");
        }
        Some(Ok((generation, None))) => Some(generation),
        Some(Err(e)) => {
            app.cache_errors.inc();
            log::warn("cache read failed", json!({"error": e.to_string()}));
            None
        }
        None => None,
    };
    app.misses.inc();
    let body = match buff::list(&app.db).await {
        Ok(v) => v.to_string(),
        Err(e) => {
            log::error("query failed", json!({"error": e.to_string()}));
            return http::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not read the buffs",
            );
        }
    };
    let Some(generation) = generation else {
        return json_response(body, "bypass");
    };
    let mut cache = app.cache.clone();
    if let Err(e) = cache
        .set_ex::<_, _, ()>(list_key(generation), &body, app.ttl)
        .await
    {
        app.cache_errors.inc();
        log::warn("cache write failed", json!({"error": e.to_string()}));
    }
    json_response(body, "miss")
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&app.db),
    )
    .await;
    if !matches!(ping, Ok(Ok(_))) {
        return http::error(StatusCode::SERVICE_UNAVAILABLE, "database not answering");
    }
    if !app.ready.load(Ordering::Relaxed) {
        return http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not subscribed to the broker's events yet",
        );
    }
    axum::Json(json!({"status": "ok"})).into_response()
}
