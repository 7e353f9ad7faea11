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

/// Headers that concern one connection, not the request.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

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
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
    // Transfer-Encoding is the connection's too; the client sets its own.
    headers.remove(header::TRANSFER_ENCODING);
}

pub(crate) fn forwarding_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    host: Option<HeaderValue>,
    secure: bool,
) {
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    // From a `String`: no copy.
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert("x-forwarded-for", v);
    }
    let proto = if secure { "https" } else { "http" };
    headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    if let Some(h) = host {
        headers.insert("x-forwarded-host", h);
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
