//! `GET /v1/events?after=SEQ&wait=MS`: a project's events after a sequence
//! number, long-polled.

use std::time::Duration;

use hyper::StatusCode;

use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};

/// Longest long poll of `/v1/events`.
const MAX_WAIT: Duration = Duration::from_secs(10);

pub(in crate::server) async fn events(daemon: &Daemon, key: &str, query: &str) -> Answer {
    let mut after = 0u64;
    let mut wait = Duration::ZERO;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(n) = v.parse::<u64>() else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`{k}` must be a number, not `{v}`"),
                None,
            );
        };
        match k {
            "after" => after = n,
            "wait" => wait = Duration::from_millis(n).min(MAX_WAIT),
            _ => {}
        }
    }
    // Until one of this project's events comes, or the wait is over.
    let deadline = tokio::time::Instant::now() + wait;
    let mut seq = daemon.seq.clone();
    loop {
        let evs = match daemon.store.events_after(key, after, 1000) {
            Ok(evs) => evs,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
        };
        if !evs.is_empty() || tokio::time::Instant::now() >= deadline {
            return json(StatusCode::OK, &evs);
        }
        let last = *seq.borrow_and_update();
        let _ = tokio::time::timeout_at(deadline, seq.wait_for(|s| *s > last)).await;
    }
}
