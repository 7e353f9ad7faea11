//! history: stores every room's messages from the broker in PostgreSQL and
//! serves a room's last N: `GET /api/history?room=R&limit=N`.
//!
//! Reads are in step with the broker: before answering, history sends a
//! marker through its own queue and waits (up to 5 s) until its consumer
//! has taken it, so every message the broker confirmed before the request
//! (which the gateway acknowledged to its sender) is stored by then and in
//! the answer. This needs the queue to have one consumer, in order: it is
//! consumed exclusively (a second replica would wait for the first to go).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use buffs_common::http::{error, serve};
use buffs_common::metrics::{Counter, Registry};
use buffs_common::{config, log};
use chat_common::{Broker, Error, HISTORY_QUEUE, Message, SYNC_KIND};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::oneshot;

/// Most messages one answer holds.
const MAX_LIMIT: i64 = 500;

struct App {
    db: PgPool,
    broker: Connection,
    publish: Channel,
    /// Markers sent, by id, each with who waits for it.
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    next_marker: AtomicU64,
    stored: Counter,
    invalid: Counter,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        chat_common::exit_with("history", &e);
    }
}

async fn run() -> Result<(), Error> {
    let metrics = Arc::new(Registry::default());
    let broker = Broker::from_env()?;
    let conn = broker.connect(config::seconds("AMQP_PATIENCE", 30)).await?;
    let db = database().await?;
    let publish = conn.create_channel().await?;
    chat_common::declare(&publish).await?;
    let consume = conn.create_channel().await?;
    consume.basic_qos(64, BasicQosOptions::default()).await?;
    let consumer = consume
        .basic_consume(
            HISTORY_QUEUE.into(),
            "history".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    log::info("consuming", json!({"queue": HISTORY_QUEUE}));
    let app = Arc::new(App {
        db,
        broker: conn,
        publish,
        waiting: Mutex::new(HashMap::new()),
        next_marker: AtomicU64::new(0),
        stored: metrics.counter("chat_history_stored_total", "Messages stored."),
        invalid: metrics.counter(
            "chat_history_invalid_total",
            "Deliveries dropped as not a valid message.",
        ),
    });
    let consuming = tokio::spawn(consume_all(app.clone(), consumer));
    let router = Router::new()
        .route("/health", get(health))
        .route("/api/history", get(history))
        .with_state(app.clone());
    tokio::select! {
        served = serve(router, metrics) => served?,
        ended = consuming => {
            return Err(format!("the broker's delivery stream ended: {}", match ended {
                Ok(Err(e)) => e.to_string(),
                _ => "closed".into(),
            }).into());
        }
    }
    let _ = app.broker.close(200, "shutting down".into()).await;
    app.db.close().await;
    Ok(())
}

/// PostgreSQL from `DATABASE_URL` and `DATABASE_PASSWORD(_FILE)`, retried
/// for `DATABASE_PATIENCE` seconds (30), with the table in place.
async fn database() -> Result<PgPool, Error> {
    let url = config::required(
        "DATABASE_URL",
        "set it to postgres://USER@HOST:5432/DATABASE (compose.yaml does)",
    )?;
    let mut options: sqlx::postgres::PgConnectOptions = url.parse()?;
    if let Some(pw) = config::secret("DATABASE_PASSWORD")? {
        options = options.password(&pw);
    }
    let pool = buffs_common::retry("database", config::seconds("DATABASE_PATIENCE", 30), || {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
    })
    .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS messages (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            room TEXT NOT NULL,
            author TEXT NOT NULL,
            body TEXT NOT NULL,
            ts TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS messages_room_seq ON messages (room, seq);",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

/// Stores each delivery (a message seen twice, as after a redelivery, is
/// stored once), acknowledging it to the broker only once stored; a marker
/// wakes who waits for it.
async fn consume_all(app: Arc<App>, mut consumer: lapin::Consumer) -> Result<(), lapin::Error> {
    use futures_util::StreamExt as _;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let kind = delivery.properties.kind().as_ref().map(|k| k.to_string());
        if kind.as_deref() == Some(SYNC_KIND) {
            let id = String::from_utf8_lossy(&delivery.data).into_owned();
            if let Some(tx) = app.lock_waiting().remove(&id) {
                let _ = tx.send(());
            }
            delivery.ack(BasicAckOptions::default()).await?;
            continue;
        }
        let parsed = serde_json::from_slice::<Message>(&delivery.data)
            .map_err(|e| e.to_string())
            .and_then(|m| m.check().map(|()| m));
        match parsed {
            Ok(m) => {
                // Until stored: the database may be restarting.
                let mut tries = 0u32;
                loop {
                    match store(&app.db, &m).await {
                        Ok(()) => break,
                        Err(e) if tries < 60 => {
                            tries += 1;
                            log::warn("cannot store; retrying", json!({"error": e.to_string()}));
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        // Not acknowledged: the broker delivers it again
                        // after this process ends.
                        Err(e) => return Err(lapin::Error::from(std::io::Error::other(e))),
                    }
                }
                app.stored.inc();
            }
            Err(e) => {
                app.invalid.inc();
                log::warn("dropped an invalid delivery", json!({"error": e}));
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

async fn store(db: &PgPool, m: &Message) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (id, room, author, body, ts) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.room)
    .bind(&m.user)
    .bind(&m.text)
    .bind(&m.ts)
    .execute(db)
    .await
    .map(drop)
}

impl App {
    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a marker through the history queue and waits until the
    /// consumer took it: everything queued before it is stored.
    async fn sync(&self) -> Result<(), String> {
        let id = format!(
            "{}-{}",
            std::process::id(),
            self.next_marker.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        self.lock_waiting().insert(id.clone(), tx);
        let sent = self
            .publish
            .basic_publish(
                "".into(),
                HISTORY_QUEUE.into(),
                BasicPublishOptions::default(),
                id.as_bytes(),
                BasicProperties::default().with_type(SYNC_KIND.into()),
            )
            .await;
        let done = match sent {
            Ok(_) => tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .map_err(|_| "the broker's queue did not catch up in 5 s".to_string())
                .and_then(|r| r.map_err(|_| "the consumer stopped".to_string())),
            Err(e) => Err(format!("cannot reach the broker: {e}")),
        };
        self.lock_waiting().remove(&id);
        done
    }
}

/// Healthy while connected to the broker and the database.
async fn health(State(app): State<Arc<App>>) -> Response {
    if !app.broker.status().connected() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the broker",
        );
    }
    match sqlx::query("SELECT 1").execute(&app.db).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")),
    }
}

/// A stored message: id, room, author, text, time.
type Row = (String, String, String, String, String);

#[derive(Deserialize)]
struct Params {
    room: Option<String>,
    limit: Option<String>,
}

/// `GET /api/history?room=R&limit=N` (N: 1 to 500, default 50): the
/// room's last N messages, oldest first, as `{"messages": [...]}`.
async fn history(State(app): State<Arc<App>>, Query(p): Query<Params>) -> Response {
    let Some(room) = p.room else {
        return error(StatusCode::BAD_REQUEST, "`room` is missing");
    };
    if let Err(e) = chat_common::check_name("room", &room) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let limit = match p.limit.as_deref().map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`limit` must be a number from 1 to {MAX_LIMIT}"),
            );
        }
    };
    if let Err(e) = app.sync().await {
        return error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    let rows: Result<Vec<Row>, _> = sqlx::query_as(
        "SELECT id, room, author, body, ts FROM
           (SELECT * FROM messages WHERE room = $1 ORDER BY seq DESC LIMIT $2) last
         ORDER BY seq",
    )
    .bind(&room)
    .bind(limit)
    .fetch_all(&app.db)
    .await;
    match rows {
        Ok(rows) => {
            let messages: Vec<Message> = rows
                .into_iter()
                .map(|(id, room, user, text, ts)| Message {
                    id,
                    room,
                    user,
                    text,
                    ts,
                })
                .collect();
            axum::Json(json!({"messages": messages})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")),
    }
}
