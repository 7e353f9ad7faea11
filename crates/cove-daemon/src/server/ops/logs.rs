//! `GET /v1/logs`: a page of a project's logs (its replicas' lines merged
//! in time order, filtered), read from its log store by
//! [`cove_runtime::log_query`] on the blocking pool; with `cursor` and
//! `wait`, a follow's long poll that answers as soon as lines come (the
//! recorder says when it wrote some) or the wait is over. The query
//! parameters are in [`crate::api::LogsRequest`]'s doc.
//!
//! Bounded: a page holds at most [`Limits`]'s lines and bytes whatever the
//! logs' size; a long poll waits at most [`MAX_WAIT`], and ends with its
//! connection when the client goes away (the request's task is dropped
//! with it). Lines were scrubbed of secret values before they were
//! written (the supervisor scrubs a replica's output), so what is served
//! is what is stored.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cove_runtime::log_query::{self, Cursor, Filter, Limits, Query};
use hyper::StatusCode;

use crate::api::LogsRequest;
use crate::server::offload::blocking;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};

/// Longest long poll of `/v1/logs`.
pub(in crate::server) const MAX_WAIT: Duration = Duration::from_secs(60);

pub(in crate::server) async fn logs(daemon: &Daemon, key: &str, query: &str) -> Answer {
    let req = match LogsRequest::parse(query) {
        Ok(r) => r,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("GET /v1/logs: {why}"),
                Some("the parameters are source, replica, since, until, tail, grep, level, where, cursor and wait".into()),
            );
        }
    };
    let filter = match Filter::new(req.grep.as_deref(), req.level.as_deref(), &req.wheres) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.what, Some(e.hint)),
    };
    let mut cursor = match req.cursor.as_deref().map(Cursor::decode) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "`cursor` {} is not one this daemon gave",
                    req.cursor.as_deref().unwrap_or_default()
                ),
                Some("give back the `cursor` of the last page as it came".into()),
            );
        }
    };
    if !Path::new(key).is_absolute() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{key}` is not a project's state directory"),
            None,
        );
    }
    let dir = cove_runtime::logs::Writer::dir_of(Path::new(key));
    let query = Arc::new(Query {
        sources: req.sources,
        replica: req.replica,
        since_ms: req.since_ms,
        until_ms: req.until_ms,
        tail: req.tail,
        filter,
    });
    let wait = match (&cursor, req.wait_ms) {
        (Some(_), Some(ms)) => Duration::from_millis(ms).min(MAX_WAIT),
        _ => Duration::ZERO,
    };
    let _following = (!wait.is_zero()).then(|| Following::new(&daemon.log_follows));
    let deadline = tokio::time::Instant::now() + wait;
    let mut lines = daemon.lines.clone();
    // Bounded by the deadline: each turn waits for the recorder's next
    // batch, or the deadline.
    loop {
        lines.borrow_and_update();
        let (at, q, from) = (dir.clone(), query.clone(), cursor.clone());
        let page =
            blocking(move || log_query::page(&at, &q, from.as_ref(), Limits::default())).await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read the logs in {}: {e}", dir.display()),
                    None,
                );
            }
        };
        if !page.lines.is_empty() || page.more || tokio::time::Instant::now() >= deadline {
            return json(StatusCode::OK, &page);
        }
        // The lines read that did not pass are not read again.
        cursor = Cursor::decode(&page.cursor);
        let _ = tokio::time::timeout_at(deadline, lines.changed()).await;
    }
}

/// Counts the long polls in progress ([`crate::api::DaemonStatus`]'s
/// `log_follows`), while it lives.
struct Following(Arc<AtomicUsize>);

impl Following {
    fn new(count: &Arc<AtomicUsize>) -> Following {
        count.fetch_add(1, Ordering::SeqCst);
        Following(count.clone())
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
