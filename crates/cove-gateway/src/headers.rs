//! Header utilities of the proxy: hop-by-hop stripping, forwarding
//! headers, the host a request is for, upgrade requests, and the strict
//! rules a head must meet before it is forwarded ([`valid_host`],
//! [`framing`]).
//!
//! The rules work on bytes (names and values as they came), not on hyper
//! types, so that both paths apply them alike: hyper's (which hands the
//! fields over as a `HeaderMap`, see [`fields`]) and the HTTP/1.1 fast
//! path's (which has them in place).

use std::net::SocketAddr;

use hyper::Request;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Whether `req` asks to switch to WebSocket (HTTP/1.1 `Connection:
/// upgrade` with `Upgrade: websocket`), the one upgrade the gateway
/// forwards. Any other (`h2c`: RFC 9113 §3.1 deprecates it) is not an
/// upgrade here: its `Upgrade` (hop-by-hop) and `HTTP2-Settings` are
/// removed and the request goes on as a plain one.
pub(crate) fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == hyper::Version::HTTP_11
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| is_websocket(v.as_bytes()))
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether an `Upgrade` value names WebSocket alone (`websocket`, any
/// case): what an upgrade request must ask for, and a `101` must switch to.
pub(crate) fn is_websocket(upgrade: &[u8]) -> bool {
    trim_ows(upgrade).eq_ignore_ascii_case(b"websocket")
}

/// Headers that concern one connection, not the message: never forwarded
/// (either path; the names of the `Connection` field too). `name` in any
/// case.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    // By length first: most fields are compared with nothing.
    let is = |h: &[u8]| name.eq_ignore_ascii_case(h);
    match name.len() {
        2 => is(b"te"),
        7 => is(b"trailer") || is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        // h2c's settings (RFC 9113 §3.2.1 of old: connection-specific).
        14 => is(b"http2-settings"),
        16 => is(b"proxy-connection"),
        // The connection's framing: the next hop frames its own.
        17 => is(b"transfer-encoding"),
        18 => is(b"proxy-authenticate"),
        19 => is(b"proxy-authorization"),
        _ => false,
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Set on forwarded requests that have none.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[inline]
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none, or only `Connection`: one pass over the
    // names before any removal.
    let is_hop = |k: &HeaderName| is_hop_by_hop(k.as_str().as_bytes());
    if !headers.keys().any(is_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .chain(headers.keys().filter(|k| is_hop(k)).cloned())
        .collect();
    for n in named {
        headers.remove(n);
    }
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

/// The host a request is for: its URI's authority (HTTP/2, or an
/// absolute-form target: RFC 9110 §7.2, the target's authority wins over
/// `Host`), else its `Host` header.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// A head's fields as (name, value) bytes, for the rules below.
pub(crate) fn fields(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
}

/// Whether `host` is a valid `Host` value (or authority of a target):
/// RFC 9110 §7.2, `uri-host [ ":" port ]` of RFC 3986 — an IP literal in
/// brackets, or a name of unreserved characters, percent-escapes and
/// sub-delims; a port of digits. No userinfo (`@`), no path, query or
/// fragment, no whitespace. Empty is valid (a target without authority).
pub(crate) fn valid_host(host: &[u8]) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let ip_ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ip_ok {
            return false;
        }
        match &rest[end + 1..] {
            [] => (&b""[..], None),
            [b':', port @ ..] => (&b""[..], Some(port)),
            _ => return false,
        }
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    port_ok && reg_name(name)
}

/// RFC 3986 `reg-name` (also covers an IPv4 address).
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            b'%' if name.len() > i + 2
                && name[i + 1].is_ascii_hexdigit()
                && name[i + 2].is_ascii_hexdigit() =>
            {
                i += 2;
            }
            _ => return false,
        }
        i += 1;
    }
    true
}

/// How a message's body is framed (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`.
    None,
    Length(u64),
    Chunked,
}

/// Why a message's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// `Content-Length` and `Transfer-Encoding` together (RFC 9112 §6.1:
    /// "ought to be handled as an error"; smuggling's usual shape).
    LengthAndEncoding,
    /// `Content-Length` more than once (even equal), as a list, or not
    /// one number (1*DIGIT, fitting 64 bits).
    BadLength,
    /// `Transfer-Encoding` whose final coding is not `chunked`, or with
    /// `chunked` more than once (RFC 9112 §6.3, §7), or empty.
    NotChunked,
    /// `Transfer-Encoding` with a coding before the final `chunked` that
    /// the gateway does not implement (`gzip, chunked`): 501 for a
    /// request (RFC 9112 §6.1), an ambiguous answer from an upstream.
    UnknownCoding,
}

impl FramingError {
    /// What a client is answered for a request framed so.
    pub(crate) fn status(self) -> hyper::StatusCode {
        match self {
            FramingError::UnknownCoding => hyper::StatusCode::NOT_IMPLEMENTED,
            _ => hyper::StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn why(self) -> &'static str {
        match self {
            FramingError::LengthAndEncoding => "both Content-Length and Transfer-Encoding",
            FramingError::BadLength => "a Content-Length that is not exactly one number",
            FramingError::NotChunked => "a Transfer-Encoding whose final coding is not chunked",
            FramingError::UnknownCoding => "a transfer coding other than chunked",
        }
    }
}

/// The framing of a message from its fields (names in any case), strict:
/// exactly one `Content-Length` of digits, or a `Transfer-Encoding` that is
/// `chunked` alone, never both. The same rules for requests (refused 400,
/// or 501 for [`FramingError::UnknownCoding`]) and upstream answers
/// (502). HTTP/1.0 messages, which may not carry `Transfer-Encoding`, are
/// the caller's to refuse.
pub(crate) fn framing<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Framing, FramingError> {
    let mut length: Option<u64> = None;
    let mut lengths = 0usize;
    let mut encoded = false;
    let mut chunked = 0usize;
    let mut other = false;
    // Whether the last coding seen so far is `chunked`.
    let mut last_chunked = false;
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length = digits(trim_ows(value));
            if length.is_none() {
                return Err(FramingError::BadLength);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encoded = true;
            for coding in value.split(|&b| b == b',') {
                let coding = trim_ows(coding);
                if coding.is_empty() {
                    continue; // a list may have empty elements
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked += 1;
                    last_chunked = true;
                } else {
                    other = true;
                    last_chunked = false;
                }
            }
        }
    }
    if encoded && lengths > 0 {
        return Err(FramingError::LengthAndEncoding);
    }
    if lengths > 1 {
        return Err(FramingError::BadLength);
    }
    if encoded {
        if !last_chunked || chunked != 1 {
            return Err(FramingError::NotChunked);
        }
        if other {
            return Err(FramingError::UnknownCoding);
        }
        return Ok(Framing::Chunked);
    }
    Ok(length.map_or(Framing::None, Framing::Length))
}

/// `1*DIGIT` that fits 64 bits.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `v` without optional whitespace (SP, HTAB) on either side.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else {
        return &[];
    };
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &v[start..=end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fields: &[(&str, &str)]) -> Result<Framing, FramingError> {
        framing(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn framing_is_one_length_or_chunked_alone() {
        use FramingError::*;
        assert_eq!(f(&[]), Ok(Framing::None));
        assert_eq!(f(&[("Content-Length", " 12 ")]), Ok(Framing::Length(12)));
        assert_eq!(f(&[("transfer-encoding", "Chunked")]), Ok(Framing::Chunked));
        assert_eq!(
            f(&[("Transfer-Encoding", "chunked,")]),
            Ok(Framing::Chunked)
        );
        for bad in ["", "+3", "-3", "3 3", "3, 3", "0x3", "99999999999999999999"] {
            assert_eq!(f(&[("Content-Length", bad)]), Err(BadLength), "{bad:?}");
        }
        assert_eq!(
            f(&[("Content-Length", "3"), ("content-length", "3")]),
            Err(BadLength)
        );
        assert_eq!(
            f(&[("Content-Length", "3"), ("Transfer-Encoding", "chunked")]),
            Err(LengthAndEncoding)
        );
        assert_eq!(
            f(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]),
            Err(LengthAndEncoding)
        );
        for bad in ["gzip", "chunked, gzip", "chunked, chunked", "", " , "] {
            assert_eq!(f(&[("Transfer-Encoding", bad)]), Err(NotChunked), "{bad:?}");
        }
        assert_eq!(
            f(&[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked")
            ]),
            Err(NotChunked)
        );
        assert_eq!(
            f(&[
                ("Transfer-Encoding", "gzip"),
                ("Transfer-Encoding", "chunked")
            ]),
            Err(UnknownCoding)
        );
        assert_eq!(
            f(&[("Transfer-Encoding", "gzip, chunked")]),
            Err(UnknownCoding)
        );
    }

    #[test]
    fn hosts_are_a_name_or_ip_and_a_port() {
        for good in [
            "a",
            "a.test",
            "A.Test:8080",
            "127.0.0.1",
            "[::1]",
            "[::1]:80",
            "x-y_z.test.",
            "",
            "a:",
            "%41.test",
        ] {
            assert!(valid_host(good.as_bytes()), "{good:?}");
        }
        for bad in [
            "example.test/evil?x",
            "a b",
            "user@a.test",
            "a.test:8x",
            "a, b",
            "a\tb",
            "[::1",
            "[]",
            "[::1]x",
            "a.test#f",
            "a.test:123456",
            "a:b:c",
            "%4",
            "a\\b",
            "\"a\"",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn only_websocket_is_an_upgrade() {
        assert!(is_websocket(b"websocket"));
        assert!(is_websocket(b" WebSocket "));
        assert!(!is_websocket(b"h2c"));
        assert!(!is_websocket(b"websocket, h2c"));
    }
}
