//! HTTP serving: the listen address from the environment, a JSON access log
//! line and metrics for every request, `GET /metrics`, and graceful shutdown
//! on SIGTERM or SIGINT (stop accepting, finish the requests in flight).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::metrics::Registry;

/// A JSON error body: `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Serves `app` (plus `/metrics`) on `HOST:PORT` until SIGTERM or SIGINT,
/// then lets the requests in flight finish.
pub async fn serve(app: Router, metrics: Arc<Registry>) -> std::io::Result<()> {
    let addr = crate::config::listen();
    let scraped = metrics.clone();
    let app = app
        .route("/metrics", get(move || render(scraped.clone())))
        .layer(middleware::from_fn_with_state(metrics, observe));
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    crate::log::info("listening", json!({"addr": addr}));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    crate::log::info("stopped accepting; requests in flight finished", json!({}));
    Ok(())
}

async fn render(metrics: Arc<Registry>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

async fn observe(State(metrics): State<Arc<Registry>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let took = start.elapsed();
    let status = resp.status().as_u16();
    metrics.request(&route, &method, status, took);
    // Health and metrics scrapes would drown the log.
    if route != "/health" && route != "/metrics" {
        crate::log::info(
            "request",
            json!({"method": method, "path": path, "status": status,
                   "duration_ms": (took.as_secs_f64() * 1e6).round() / 1e3}),
        );
    }
    resp
}

/// Resolves on SIGTERM (what cove and Docker send) or SIGINT.
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    crate::log::info("shutting down", json!({"signal": name}));
}
