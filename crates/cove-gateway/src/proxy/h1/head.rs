//! Request and response heads, parsed in place (`httparse`) and judged
//! strictly (RFC 9112): what a forwarded message needs is kept as byte
//! ranges of the buffer it was read into, nothing is copied.

use std::ops::Range;

use crate::headers::{self, valid_host};

/// How a message's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (a request without `Content-Length` or `Transfer-Encoding`).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (a response with neither).
    Close,
}

/// Why a request head is refused, or handed to hyper.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not whole yet: read more.
    Partial,
    /// Answer with this status and text, then close the connection.
    Bad(u16, &'static str),
    /// Served by hyper instead (WebSocket upgrade, `Expect`, HTTP/1.0,
    /// `CONNECT`…).
    Decline,
    /// HTTP/1.x with x above 1, the minor digit at this offset: served as
    /// HTTP/1.1 (RFC 9110 §2.5), the highest minor version it knows.
    LaterMinor(usize),
}

/// A header field, as ranges of the buffer.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) name: Range<usize>,
    pub(super) value: Range<usize>,
    /// Forwarded as it is (false: hop-by-hop, or rewritten by the gateway).
    pub(super) keep: bool,
}

/// A request head that the fast path forwards.
#[derive(Debug)]
pub(super) struct RequestHead {
    /// Bytes of the head, blank line included.
    pub(super) len: usize,
    pub(super) method: Range<usize>,
    /// The path and query (origin form; taken out of an absolute form).
    pub(super) target: Range<usize>,
    /// The path alone.
    pub(super) path: Range<usize>,
    /// The `Host` value, or the absolute form's authority.
    pub(super) host: Option<Range<usize>>,
    /// `X-Forwarded-For` as received.
    pub(super) forwarded_for: Option<Range<usize>>,
    pub(super) request_id: bool,
    /// `TE: trailers` was asked for (passed on).
    pub(super) trailers: bool,
    pub(super) framing: Framing,
    /// The client asked to close after this exchange.
    pub(super) close: bool,
}

impl RequestHead {
    pub(super) fn is_head(&self, buf: &[u8]) -> bool {
        &buf[self.method.clone()] == b"HEAD"
    }

    /// RFC 9110's idempotent methods.
    pub(super) fn is_idempotent(&self, buf: &[u8]) -> bool {
        matches!(
            &buf[self.method.clone()],
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }
}

/// A response head from an upstream.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub(super) len: usize,
    pub(super) status: u16,
    pub(super) framing: Framing,
    /// The upstream closes after it (or spoke HTTP/1.0).
    pub(super) close: bool,
    /// Forwarded byte for byte: HTTP/1.1 and no field to remove.
    pub(super) verbatim: bool,
    /// The status line without its version (`200 OK`).
    pub(super) status_line: Range<usize>,
}

fn range(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Tokens of a comma-separated field value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Marks the fields that `Connection` names (`named`) as not forwarded;
/// whether any was.
fn drop_named(buf: &[u8], fields: &mut [Field], named: &[Range<usize>]) -> bool {
    let mut dropped = false;
    for f in fields.iter_mut().filter(|f| f.keep) {
        if named
            .iter()
            .any(|t| buf[t.clone()].eq_ignore_ascii_case(&buf[f.name.clone()]))
        {
            f.keep = false;
            dropped = true;
        }
    }
    dropped
}

/// Most header fields in a head (the fast path's own bound; a lower
/// `Limits::max_headers` applies to requests).
const MAX_FIELDS: usize = 128;

/// Where the minor digit of an `HTTP/1.x` request line (x from 2 to 9)
/// is; `None` for anything else (HTTP/2's preface, say).
fn later_minor(buf: &[u8]) -> Option<usize> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let version = line.get(line.len().checked_sub(9)?..)?;
    (version.starts_with(b" HTTP/1.") && (b'2'..=b'9').contains(&version[8]))
        .then_some(line.len() - 1)
}

/// Parses a request head at the start of `buf` (at most `max_headers`
/// fields, kept in `fields`) and judges it.
pub(super) fn request(
    buf: &[u8],
    max_headers: usize,
    fields: &mut Vec<Field>,
) -> Result<RequestHead, Refusal> {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let max = max_headers.min(MAX_FIELDS);
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers[..max]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(Refusal::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Bad(431, "too many header fields"));
        }
        Err(httparse::Error::Version) => {
            return Err(later_minor(buf).map_or(Refusal::Decline, Refusal::LaterMinor));
        }
        Err(_) => return Err(Refusal::Bad(400, "malformed request head")),
    };
    if req.version != Some(1) {
        return Err(Refusal::Decline);
    }
    let method = req.method.unwrap_or_default().as_bytes();
    if method == b"CONNECT" || method == b"PRI" {
        return Err(Refusal::Decline);
    }
    let raw_target = req.path.unwrap_or_default().as_bytes();
    // The absolute form: its authority is the host (RFC 9110 §7.2).
    let (authority, target) = if let Some(rest) = raw_target
        .strip_prefix(b"http://")
        .or_else(|| raw_target.strip_prefix(b"https://"))
    {
        let end = rest
            .iter()
            .position(|b| *b == b'/' || *b == b'?')
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || !valid_host(authority) {
            return Err(Refusal::Bad(400, "invalid authority in the request target"));
        }
        (Some(authority), &rest[end..])
    } else if raw_target.first() == Some(&b'/') {
        (None, raw_target)
    } else {
        // `*` (OPTIONS) or an authority form: hyper's.
        return Err(Refusal::Decline);
    };
    let path_end = target
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(target.len());

    let mut host = None;
    let mut hosts = 0;
    let mut close = false;
    let mut connection: Vec<Range<usize>> = Vec::new();
    let mut forwarded_for = None;
    let mut request_id = false;
    let mut trailers = false;
    let mut upgrade = false;
    fields.clear();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        let mut keep = !headers::is_hop_by_hop(name);
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                host = Some(value);
                keep = false;
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for t in tokens(value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                        connection.push(range(buf, t));
                    }
                }
            }
            15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => {
                if forwarded_for.is_some() {
                    // Two fields: merged by the upstream's reading; keep
                    // them both and append ours as a third.
                    keep = true;
                } else {
                    forwarded_for = Some(range(buf, value));
                    keep = false;
                }
            }
            17 if name.eq_ignore_ascii_case(b"x-forwarded-proto") => keep = false,
            16 if name.eq_ignore_ascii_case(b"x-forwarded-host") => keep = false,
            12 if name.eq_ignore_ascii_case(b"x-request-id") => request_id = true,
            2 if name.eq_ignore_ascii_case(b"te") => {
                trailers = tokens(value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade = true,
            6 if name.eq_ignore_ascii_case(b"expect") => return Err(Refusal::Decline),
            _ => {}
        }
        fields.push(Field {
            name: range(buf, name),
            value: range(buf, value),
            keep,
        });
    }
    // The same framing rules as on hyper's path.
    let framing = headers::framing(req.headers.iter().map(|h| (h.name.as_bytes(), h.value)))
        .map_err(|e| Refusal::Bad(e.status().as_u16(), e.why()))?;
    if hosts > 1 {
        return Err(Refusal::Bad(400, "more than one Host field"));
    }
    let host = match (authority, host) {
        (Some(a), _) => Some(range(buf, a)),
        (None, Some(h)) if valid_host(h) => Some(range(buf, h)),
        (None, Some(_)) => return Err(Refusal::Bad(400, "invalid Host")),
        (None, None) => return Err(Refusal::Bad(400, "no Host field (RFC 9112 §3.2)")),
    };
    if upgrade {
        // A WebSocket upgrade goes to hyper; any other (h2c above all) is
        // not forwarded: the request goes on without it.
        let websocket = connection
            .iter()
            .any(|t| buf[t.clone()].eq_ignore_ascii_case(b"upgrade"))
            && req.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("upgrade")
                    && tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"websocket"))
            });
        if websocket {
            return Err(Refusal::Decline);
        }
    }
    drop_named(buf, fields, &connection);
    let target = range(buf, target);
    Ok(RequestHead {
        len,
        method: range(buf, method),
        path: target.start..target.start + path_end,
        target,
        host,
        forwarded_for,
        request_id,
        trailers,
        framing: match framing {
            headers::Framing::None => Framing::None,
            headers::Framing::Length(n) => Framing::Length(n),
            headers::Framing::Chunked => Framing::Chunked,
        },
        close,
    })
}

/// Why a response head is not forwarded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bad {
    Partial,
    /// Ambiguous or malformed: 502, the upstream connection closed.
    Invalid(&'static str),
}

/// Parses a response head at the start of `buf` (its fields kept in
/// `fields`); `head`: it answers a `HEAD` request.
pub(super) fn response(
    buf: &[u8],
    head: bool,
    fields: &mut Vec<Field>,
) -> Result<ResponseHead, Bad> {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(Bad::Partial),
        Err(_) => return Err(Bad::Invalid("malformed answer head")),
    };
    let status = resp.code.unwrap_or_default();
    let http11 = resp.version == Some(1);
    let mut close = !http11;
    let mut connection: Vec<Range<usize>> = Vec::new();
    fields.clear();
    let mut verbatim = http11;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        let keep = !headers::is_hop_by_hop(name);
        if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                    connection.push(range(buf, t));
                }
            }
        }
        // Transfer-Encoding: chunked and Content-Length pass through as
        // they are (the body is copied as framed).
        let through = keep
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"content-length");
        verbatim &= through;
        fields.push(Field {
            name: range(buf, name),
            value: range(buf, value),
            keep: through,
        });
    }
    // The same framing rules as on hyper's path: anything ambiguous is a
    // 502.
    let framed = headers::framing(resp.headers.iter().map(|h| (h.name.as_bytes(), h.value)))
        .map_err(|e| Bad::Invalid(e.why()))?;
    if drop_named(buf, fields, &connection) {
        verbatim = false;
    }
    let framing = if head || status < 200 || status == 204 || status == 304 {
        Framing::None
    } else {
        match framed {
            headers::Framing::Chunked => Framing::Chunked,
            headers::Framing::Length(n) => Framing::Length(n),
            headers::Framing::None => Framing::Close,
        }
    };
    // The status line without `HTTP/1.x `.
    let line_end = buf
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(0);
    let status_line = 9.min(line_end)..line_end;
    Ok(ResponseHead {
        len,
        status,
        framing,
        close,
        verbatim,
        status_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<RequestHead, Refusal> {
        request(s.as_bytes(), 100, &mut Vec::new())
    }

    #[test]
    fn requests_are_judged_strictly() {
        let ok = req("GET /a?b HTTP/1.1\r\nHost: x.test\r\n\r\n").unwrap();
        assert_eq!(ok.framing, Framing::None);
        let bad = |s: &str| match req(s) {
            Err(Refusal::Bad(400, _)) => {}
            other => panic!("{s:?}: {other:?}"),
        };
        bad("GET / HTTP/1.1\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: example.test/evil?x\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n");
        bad(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        bad(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        bad("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost : a\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n");
        assert!(matches!(
            req("GET / HTTP/1.1\r\nHost: a\r\n"),
            Err(Refusal::Partial)
        ));
        assert!(matches!(
            req("GET / HTTP/1.0\r\n\r\n"),
            Err(Refusal::Decline)
        ));
        assert!(matches!(
            req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
            Err(Refusal::Decline)
        ));
    }

    #[test]
    fn absolute_targets_give_the_host() {
        let s = "GET http://a.test:8080/x?y HTTP/1.1\r\nHost: b.test\r\n\r\n";
        let h = req(s).unwrap();
        assert_eq!(&s[h.host.clone().unwrap()], "a.test:8080");
        assert_eq!(&s[h.target.clone()], "/x?y");
        assert_eq!(&s[h.path.clone()], "/x");
    }

    #[test]
    fn h2c_upgrades_are_dropped_with_what_connection_names() {
        let s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\nX-Keep: 1\r\n\r\n";
        let mut fields = Vec::new();
        request(s.as_bytes(), 100, &mut fields).unwrap();
        let kept: Vec<&str> = fields
            .iter()
            .filter(|f| f.keep)
            .map(|f| &s[f.name.clone()])
            .collect();
        assert_eq!(kept, ["X-Keep"]);
    }

    #[test]
    fn ambiguous_answers_are_refused() {
        let r = |s: &str| response(s.as_bytes(), false, &mut Vec::new());
        assert!(matches!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Bad::Invalid(_))
        ));
        assert!(matches!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(Bad::Invalid(_))
        ));
        assert!(matches!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(Bad::Invalid(_))
        ));
        let ok = r("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert!(ok.verbatim);
        assert_eq!(ok.framing, Framing::Length(2));
        let close = r("HTTP/1.0 200 OK\r\n\r\nok").unwrap();
        assert!(close.close && !close.verbatim);
        assert_eq!(close.framing, Framing::Close);
        let hop = r("HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(!hop.verbatim);
        assert_eq!(hop.framing, Framing::None);
    }
}
