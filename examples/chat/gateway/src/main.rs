//! chat-gateway: the web client (`/`, `/chat.js`) and the WebSocket
//! endpoint `/ws?room=R` that publishes a room's messages to the broker and
//! sends each client every message of its room.
//!
//! The protocol, JSON text frames:
//! - server → client, first: `{"type": "hello", "room": R}` (the client
//!   is subscribed from then on);
//! - client → server: `{"type": "send", "id": ID, "user": U, "text": T}`
//!   (`id` optional: the client's, so that a resend is the same message);
//! - server → client: `{"type": "ack", "id": ID}` once the broker has
//!   confirmed the message (publisher confirms: it is in the durable history
//!   queue, so history will store it), or `{"type": "error", "id": ID,
//!   "error": ...}`; `{"type": "message", "message": {...}}` for each
//!   message of the room, the client's own included.
//!
//! On SIGTERM the server stops accepting, and each WebSocket is closed
//! with code 1012 (service restart): clients reconnect, through cove's
//! gateway, to another replica, and catch up from history.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use buffs_common::http::{error, serve};
use buffs_common::metrics::{Counter, Registry};
use buffs_common::{config, log};
use chat_common::{Broker, EXCHANGE, Error, Message};
use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const CHAT_JS: &str = include_str!("../../web/chat.js");

/// Close codes: the server is restarting (reconnect), or is in trouble.
const CLOSE_RESTART: u16 = 1012;
const CLOSE_TRY_LATER: u16 = 1013;

struct App {
    broker: Arc<Connection>,
    publish: Channel,
    feed: broadcast::Sender<Arc<Message>>,
    stopping: watch::Receiver<bool>,
    /// Never sent on: shutdown waits until every holder of the app is gone.
    _open: mpsc::Sender<()>,
    next_id: AtomicU64,
    published: Counter,
    delivered: Counter,
    opened: Counter,
    closed: Counter,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        chat_common::exit_with("chat-gateway", &e);
    }
}

async fn run() -> Result<(), Error> {
    let metrics = Arc::new(Registry::default());
    let broker = Broker::from_env()?;
    let conn = broker.connect(config::seconds("AMQP_PATIENCE", 30)).await?;
    let publish = conn.create_channel().await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    chat_common::declare(&publish).await?;
    // This replica's own queue, gone with its connection: every room's
    // messages, for its clients.
    let consume = conn.create_channel().await?;
    let queue = consume
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    consume
        .queue_bind(
            queue.name().clone(),
            EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer = consume
        .basic_consume(
            queue.name().clone(),
            "chat-gateway".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let (feed, _) = broadcast::channel(1024);
    let (stop, stopping) = watch::channel(false);
    let stop = Arc::new(stop);
    let (open, mut all_closed) = mpsc::channel(1);
    let app = Arc::new(App {
        broker: Arc::new(conn),
        publish,
        feed: feed.clone(),
        stopping,
        _open: open,
        next_id: AtomicU64::new(0),
        published: metrics.counter(
            "chat_messages_published_total",
            "Messages the broker confirmed (acknowledged to their sender).",
        ),
        delivered: metrics.counter(
            "chat_messages_delivered_total",
            "Messages sent to WebSocket clients.",
        ),
        opened: metrics.counter("chat_websockets_opened_total", "WebSockets opened."),
        closed: metrics.counter("chat_websockets_closed_total", "WebSockets closed."),
    });
    let mut feeding = tokio::spawn(feed_from(consumer, feed));
    // SIGTERM: every WebSocket gets its close frame while `serve` stops
    // accepting (both hear the signal).
    let on_signal = stop.clone();
    tokio::spawn(async move {
        buffs_common::http::shutdown().await;
        let _ = on_signal.send(true);
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/chat.js", get(script))
        .route("/ws", get(ws))
        .route("/health", get(health))
        .with_state(app.clone());
    tokio::select! {
        served = serve(router, metrics) => served?,
        ended = &mut feeding => {
            // The broker is gone: close the sockets as on SIGTERM (the
            // clients reconnect to a replica that has one), then end with
            // an error; cove restarts the replica (`restart:`).
            let _ = stop.send(true);
            drop(app);
            let _ = tokio::time::timeout(Duration::from_secs(2), all_closed.recv()).await;
            return Err(format!("the broker's delivery stream ended: {}", match ended {
                Ok(Err(e)) => e.to_string(),
                _ => "closed".into(),
            }).into());
        }
    }
    // Each WebSocket (and publish) task holds the app, and with it a
    // sender of `open`: `recv` ends when the last has ended.
    let broker_conn = app.broker.clone();
    drop(app);
    let waited = tokio::time::timeout(Duration::from_secs(5), all_closed.recv()).await;
    log::info("WebSockets closed", json!({"in_time": waited.is_ok()}));
    let _ = broker_conn.close(200, "shutting down".into()).await;
    Ok(())
}

/// Passes each message the broker delivers to this replica's sockets.
async fn feed_from(
    mut consumer: lapin::Consumer,
    feed: broadcast::Sender<Arc<Message>>,
) -> Result<(), lapin::Error> {
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        match serde_json::from_slice::<Message>(&delivery.data) {
            Ok(m) => {
                // No socket open: nobody to tell.
                let _ = feed.send(Arc::new(m));
            }
            Err(e) => log::warn(
                "dropped an invalid delivery",
                json!({"error": e.to_string()}),
            ),
        }
    }
    Ok(())
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CHAT_JS,
    )
        .into_response()
}

/// Healthy while connected to the broker.
async fn health(State(app): State<Arc<App>>) -> Response {
    match app.broker.status().connected() {
        true => (StatusCode::OK, "ok\n").into_response(),
        false => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the broker",
        ),
    }
}

#[derive(Deserialize)]
struct Join {
    room: Option<String>,
}

async fn ws(
    State(app): State<Arc<App>>,
    Query(join): Query<Join>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(room) = join.room else {
        return error(StatusCode::BAD_REQUEST, "`room` is missing");
    };
    if let Err(e) = chat_common::check_name("room", &room) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    upgrade
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| client(app, room, socket))
}

#[derive(Deserialize)]
struct Send {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    user: String,
    text: String,
}

/// One client: its room's messages out, its messages published.
async fn client(app: Arc<App>, room: String, mut socket: WebSocket) {
    app.opened.inc();
    let mut feed = app.feed.subscribe();
    let mut stopping = app.stopping.clone();
    // Answers to this client's sends, from the publishing tasks.
    let (answers, mut answered) = mpsc::channel::<serde_json::Value>(64);
    let hello = json!({"type": "hello", "room": room});
    let mut close = None;
    if socket
        .send(Frame::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        close = loop {
            tokio::select! {
                _ = stopping.changed() => {
                    break Some((CLOSE_RESTART, "the server is restarting; reconnect"));
                }
                frame = socket.recv() => match frame {
                    Some(Ok(Frame::Text(text))) => {
                        match accept(&app, &room, &text) {
                            Ok(m) => {
                                tokio::spawn(publish(app.clone(), m, answers.clone()));
                            }
                            Err(e) => {
                                let e = json!({"type": "error", "error": e});
                                if socket.send(Frame::Text(e.to_string().into())).await.is_err() {
                                    break None;
                                }
                            }
                        }
                    }
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break None,
                    Some(Ok(_)) => {}
                },
                Some(answer) = answered.recv() => {
                    if socket.send(Frame::Text(answer.to_string().into())).await.is_err() {
                        break None;
                    }
                }
                m = feed.recv() => match m {
                    Ok(m) if m.room == room => {
                        let out = json!({"type": "message", "message": &*m});
                        if socket.send(Frame::Text(out.to_string().into())).await.is_err() {
                            break None;
                        }
                        app.delivered.inc();
                    }
                    Ok(_) => {}
                    // Too slow to follow: reconnect and catch up.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        break Some((CLOSE_TRY_LATER, "too far behind; reconnect"));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        break Some((CLOSE_RESTART, "the server is restarting; reconnect"));
                    }
                },
            }
        };
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = socket.send(Frame::Close(Some(frame))).await;
        // The client's close frame answers ours (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(f)) = socket.recv().await {
                if matches!(f, Frame::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    app.closed.inc();
}

/// A client's send as a message of its room; an error says what is wrong.
fn accept(app: &App, room: &str, text: &str) -> Result<Message, String> {
    let send: Send = serde_json::from_str(text).map_err(|e| format!("not a valid message: {e}"))?;
    if send.kind != "send" {
        return Err(format!("unknown message type `{}`", send.kind));
    }
    let id = send.id.unwrap_or_else(|| {
        let now = jiff::Timestamp::now().as_nanosecond();
        let n = app.next_id.fetch_add(1, Ordering::Relaxed);
        format!("g{now:x}-{:x}-{n:x}", std::process::id())
    });
    let m = Message {
        id,
        room: room.to_string(),
        user: send.user,
        text: send.text,
        ts: jiff::Timestamp::now().to_string(),
    };
    m.check()?;
    Ok(m)
}

/// Publishes `m` (persistent, the room as routing key) and answers the
/// client once the broker has confirmed it, or with the error.
async fn publish(app: Arc<App>, m: Message, answers: mpsc::Sender<serde_json::Value>) {
    let body = serde_json::to_vec(&m).unwrap_or_default();
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(m.id.as_str().into());
    let confirmed = async {
        let confirm = app
            .publish
            .basic_publish(
                EXCHANGE.into(),
                m.room.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        confirm.await
    };
    let answer = match tokio::time::timeout(Duration::from_secs(10), confirmed).await {
        Ok(Ok(c)) if c.is_ack() => {
            app.published.inc();
            json!({"type": "ack", "id": m.id})
        }
        Ok(Ok(_)) => {
            json!({"type": "error", "id": m.id, "error": "the broker refused the message"})
        }
        Ok(Err(e)) => {
            log::warn("publish failed", json!({"error": e.to_string()}));
            json!({"type": "error", "id": m.id, "error": "the broker is unavailable"})
        }
        Err(_) => {
            json!({"type": "error", "id": m.id, "error": "the broker did not confirm in 10 s"})
        }
    };
    let _ = answers.send(answer).await;
}
