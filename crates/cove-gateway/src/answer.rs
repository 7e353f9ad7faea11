//! The gateway's own answers (400, 404, 413, 502, 503, 504) and the body
//! type of every response it gives.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// The gateway's 504: `target` of `service` did not answer within `wait`.
pub(crate) fn timed_out(service: &str, target: SocketAddr, wait: Duration) -> Response<Body> {
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("cove gateway: {service} ({target}) did not answer within {wait:?}\n"),
    )
}

/// `resp`, closing the client's connection unless the request's body was
/// all read (`done`): what is left of it must not be read as a request.
pub(crate) fn closing(mut resp: Response<Body>, done: bool) -> Response<Body> {
    if !done {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

pub(crate) fn too_large(max: u64) -> Response<Body> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "cove gateway: the request body is larger than this route's limit ({max} bytes)\n"
        ),
    )
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
