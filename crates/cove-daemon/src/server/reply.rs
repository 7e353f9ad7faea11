//! Answers: JSON bodies, errors as `{error, hint}` with their status, and
//! the plain "accepted" of a command that changed what should run.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::api::{Accepted, ApiError};
use crate::server::registry::Daemon;

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

pub(super) fn error(status: StatusCode, error: impl Into<String>, hint: Option<String>) -> Answer {
    json(
        status,
        &ApiError {
            error: error.into(),
            hint,
        },
    )
}

pub(super) fn accepted(daemon: &Daemon) -> Answer {
    json(
        StatusCode::OK,
        &Accepted {
            seq: *daemon.seq.borrow(),
            events: Vec::new(),
            revisions: Default::default(),
        },
    )
}
