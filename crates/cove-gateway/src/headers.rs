//! Header utilities of the proxy: hop-by-hop stripping, forwarding
//! headers, the host a request is for, upgrade requests.

use std::net::SocketAddr;

use hyper::Request;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Whether `req` asks to switch protocols (HTTP/1.1 `Connection: upgrade`
/// with an `Upgrade` header).
pub(crate) fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == hyper::Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Headers that concern one connection, not the request. Removed by
/// name, not by text: a text is parsed again at every lookup.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Set on forwarded requests that have none.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[inline]
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none, or only `Connection`: one pass over the
    // names (comparisons of known names are cheap) before any removal.
    let is_hop = |k: &HeaderName| {
        *k == header::CONNECTION
            || *k == header::TE
            || *k == header::TRAILER
            || *k == header::UPGRADE
            || *k == header::TRANSFER_ENCODING
            || *k == header::PROXY_AUTHENTICATE
            || *k == header::PROXY_AUTHORIZATION
            || matches!(k.as_str(), "keep-alive" | "proxy-connection")
    };
    if !headers.keys().any(is_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    // Transfer-Encoding is the connection's too; the client sets its own.
    headers.remove(header::TRANSFER_ENCODING);
}

#[inline]
pub(crate) fn forwarding_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    host: Option<HeaderValue>,
    secure: bool,
) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    // From a `String`: no copy.
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    let proto = if secure { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
}

/// The host a request is for: its `Host` header, else its URI's authority
/// (HTTP/2, absolute form).
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}
