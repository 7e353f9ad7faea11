//! buffs `dashboard`: `POST /buff` stores a buff in MariaDB and publishes a
//! "buff created" event to ActiveMQ over STOMP.
//!
//! Environment: `DATABASE_URL` (mysql://user:password@host:port/db),
//! `STOMP_URL` (stomp://[user:password@]host:port), `HOST`/`PORT`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use buffs_common::metrics::{Counter, Registry};
use buffs_common::{EVENTS_TOPIC, buff, http, log, stomp};
use serde_json::json;
use sqlx::MySqlPool;
use tokio::sync::Mutex;

/// How long one broker operation may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

struct App {
    db: MySqlPool,
    broker: stomp::Url,
    publisher: Mutex<Option<stomp::Client>>,
    created: Counter,
    published: Counter,
    publish_failed: Counter,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        buffs_common::exit_with("dashboard", &e);
    }
}

async fn run() -> Result<(), buffs_common::Error> {
    let broker = buffs_common::broker_from_env()?;
    let db = buffs_common::database_from_env().await?;
    let metrics = Arc::new(Registry::default());
    let app = Arc::new(App {
        db,
        broker,
        publisher: Mutex::new(None),
        created: metrics.counter("buffs_created_total", "Buffs stored."),
        published: metrics.counter("buffs_events_published_total", "Events the broker acknowledged."),
        publish_failed: metrics.counter(
            "buffs_events_publish_failed_total",
            "Events that could not be published (the buff is stored; readers see it after the cache's TTL).",
        ),
    });
    // Connect early so the first request does not pay for it; a broker that
    // is not there yet is retried on the first publish.
    if let Err(e) = app.publisher().await {
        log::warn("broker not reachable yet", json!({"error": e.to_string()}));
    }
    let router = Router::new()
        .route("/buff", post(create))
        .route("/health", get(health))
        .with_state(app.clone());
    http::serve(router, metrics).await?;
    if let Some(client) = app.publisher.lock().await.take() {
        match client.disconnect().await {
            Ok(()) => log::info("broker session closed", json!({})),
            Err(e) => log::warn(
                "broker session did not close cleanly",
                json!({"error": e.to_string()}),
            ),
        }
    }
    Ok(())
}

impl App {
    /// Makes sure a publishing session is open.
    async fn publisher(&self) -> Result<(), stomp::Error> {
        let mut guard = self.publisher.lock().await;
        if guard.is_none() {
            *guard = Some(stomp::Client::connect(&self.broker, BROKER_TIMEOUT).await?);
        }
        Ok(())
    }

    /// Publishes `body`, reconnecting once if the session broke.
    async fn publish(&self, body: &[u8]) -> Result<(), stomp::Error> {
        let mut guard = self.publisher.lock().await;
        for attempt in 0..2 {
            if guard.is_none() {
                match stomp::Client::connect(&self.broker, BROKER_TIMEOUT).await {
                    Ok(c) => *guard = Some(c),
                    Err(e) if attempt == 0 => {
                        log::warn(
                            "broker connect failed; retrying",
                            json!({"error": e.to_string()}),
                        );
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let client = guard.as_mut().expect("connected above");
            match client.send(EVENTS_TOPIC, "application/json", body).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    *guard = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                    log::warn(
                        "publish failed; reconnecting",
                        json!({"error": e.to_string()}),
                    );
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

async fn create(State(app): State<Arc<App>>, body: Body) -> Response {
    let bytes: Bytes = match axum::body::to_bytes(body, buff::MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return http::error(
                StatusCode::BAD_REQUEST,
                format!("the body is larger than {} bytes", buff::MAX_BODY),
            );
        }
    };
    let new = match buff::validate(&bytes) {
        Ok(b) => b,
        Err(msg) => return http::error(StatusCode::BAD_REQUEST, msg),
    };
    let id = match buff::insert(&app.db, &new).await {
        Ok(id) => id,
        Err(e) => {
            log::error("insert failed", json!({"error": e.to_string()}));
            return http::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not store the buff",
            );
        }
    };
    app.created.inc();
    match app.publish(&buff::created_event(id)).await {
        Ok(()) => app.published.inc(),
        Err(e) => {
            app.publish_failed.inc();
            log::error(
                "event not published",
                json!({"id": id, "error": e.to_string()}),
            );
        }
    }
    StatusCode::OK.into_response()
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&app.db),
    )
    .await;
    match ping {
        Ok(Ok(_)) => axum::Json(json!({"status": "ok"})).into_response(),
        Ok(Err(e)) => http::error(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")),
        Err(_) => http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "database: no answer within 2s",
        ),
    }
}
