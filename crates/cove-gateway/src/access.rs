//! Request bodies with a size limit, and response bodies that write the
//! access log record of their request when they end.
//!
//! A record is one JSON line: `time` (RFC 3339, UTC), `peer`, `method`,
//! `path` (its query string's values redacted unless told otherwise: see
//! [`QueryLog`]), `status`, `route`, `service`, `preview` (the preview key
//! the request was routed by; only when it had one), `target` (the
//! replica's address),
//! `bytes` (response body bytes sent), `duration_ms` (request head to
//! response head), `upstream_ms` (the upstream's share). Records are handed
//! to an [`AccessLog`] callback when the response body is done (or given
//! up), so `bytes` is what was really sent.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::sync::Notify;

/// Where records go (a file writer, a channel, stdout).
pub type AccessLog = Arc<dyn Fn(AccessRecord) + Send + Sync>;

/// One request, as the access log has it.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub time: SystemTime,
    pub peer: SocketAddr,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `host/path` of the route (`*` for any host); `None`: no route.
    pub route: Option<String>,
    pub service: Option<String>,
    /// The preview key the request was routed by, if any (whether or not
    /// a preview of that key ran its service).
    pub preview: Option<String>,
    pub target: Option<SocketAddr>,
    pub duration: Duration,
    pub upstream: Option<Duration>,
    pub bytes: u64,
}

impl AccessRecord {
    /// The record as one JSON line (without the newline).
    pub fn to_json(&self) -> String {
        fn s(v: &str) -> String {
            let mut out = String::with_capacity(v.len() + 2);
            out.push('"');
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        let opt = |v: &Option<String>| v.as_deref().map_or("null".to_string(), s);
        let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
        format!(
            "{{\"time\":{},\"peer\":{},\"method\":{},\"path\":{},\"status\":{},\"route\":{},\"service\":{},{}\"target\":{},\"bytes\":{},\"duration_ms\":{},\"upstream_ms\":{}}}",
            s(&rfc3339(self.time)),
            s(&self.peer.to_string()),
            s(&self.method),
            s(&self.path),
            self.status,
            opt(&self.route),
            opt(&self.service),
            self.preview
                .as_deref()
                .map_or(String::new(), |p| format!("\"preview\":{},", s(p))),
            opt(&self.target.map(|t| t.to_string())),
            self.bytes,
            ms(self.duration),
            self.upstream.map_or("null".to_string(), ms),
        )
    }
}

/// What a record's `path` keeps of the request's query string: tokens in
/// URLs (`?token=...`, `?code=...`) would otherwise end up in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueryLog {
    /// Each parameter's name, its value `***`: `?token=***&page=***`. A
    /// parameter without `=` (`?abc123`) is `***` whole.
    #[default]
    Redact,
    /// The query string as sent.
    Keep,
    /// No query string (the path only).
    Drop,
}

/// `path_and_query` as the access log keeps it under `query`.
pub fn logged_path(path_and_query: &str, query: QueryLog) -> Cow<'_, str> {
    let Some((path, q)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    match query {
        QueryLog::Keep => Cow::Borrowed(path_and_query),
        QueryLog::Drop => Cow::Borrowed(path),
        QueryLog::Redact => {
            let params: Vec<Cow<str>> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((_, "")) => Cow::Borrowed(p),
                    Some((name, _)) => Cow::Owned(format!("{name}=***")),
                    None if p.is_empty() => Cow::Borrowed(p),
                    None => Cow::Borrowed("***"),
                })
                .collect();
            Cow::Owned(format!("{path}?{}", params.join("&")))
        }
    }
}

/// `2026-11-23T23:52:27.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        d.subsec_millis()
    )
}

/// Year, month, day of `days` since 1970-01-01 (Howard Hinnant's
/// algorithm).
pub(crate) fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A response body that counts its bytes and hands its record to the log
/// when it is done or dropped.
pub struct Logged<B> {
    inner: B,
    record: Option<AccessRecord>,
    log: AccessLog,
}

impl<B> Logged<B> {
    pub fn new(inner: B, record: AccessRecord, log: AccessLog) -> Logged<B> {
        Logged {
            inner,
            record: Some(record),
            log,
        }
    }

    fn finish(&mut self) {
        if let Some(r) = self.record.take() {
            (self.log)(r);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Logged<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(r)) = (frame.data_ref(), self.record.as_mut()) {
                    r.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A request body cut off at `left` bytes: past it, `over` is notified and
/// the body never yields again (the request is then abandoned, so the
/// upstream never sees a complete body).
pub struct Capped {
    inner: Incoming,
    left: u64,
    over: Arc<Notify>,
    tripped: bool,
}

impl Capped {
    pub fn new(inner: Incoming, max: u64, over: Arc<Notify>) -> Capped {
        Capped {
            inner,
            left: max,
            over,
            tripped: false,
        }
    }
}

impl Body for Capped {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.tripped {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            if n > self.left {
                self.tripped = true;
                self.over.notify_one();
                return Poll::Pending;
            }
            self.left -= n;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_redacted_names_kept() {
        let r = |p| logged_path(p, QueryLog::Redact).into_owned();
        assert_eq!(r("/a?token=abc123"), "/a?token=***");
        assert_eq!(r("/a?token=abc123&page=2"), "/a?token=***&page=***");
        assert_eq!(r("/a?code=x=y&state=s"), "/a?code=***&state=***");
        assert_eq!(r("/a?abc123"), "/a?***", "a bare parameter may be a token");
        assert_eq!(r("/a?empty=&&x=1"), "/a?empty=&&x=***");
        assert_eq!(r("/a?"), "/a?");
        assert_eq!(r("/a/b"), "/a/b");
        assert!(matches!(
            logged_path("/no/query", QueryLog::Redact),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn query_kept_or_dropped() {
        let p = "/a?token=abc123";
        assert_eq!(logged_path(p, QueryLog::Keep), p);
        assert_eq!(logged_path(p, QueryLog::Drop), "/a");
        assert_eq!(logged_path("/a", QueryLog::Drop), "/a");
        assert_eq!(QueryLog::default(), QueryLog::Redact);
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_392_000_123);
        assert_eq!(rfc3339(t), "2026-11-23T00:00:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn records_are_json_lines() {
        let r = AccessRecord {
            time: SystemTime::UNIX_EPOCH,
            peer: "127.0.0.1:5000".parse().unwrap(),
            method: "GET".into(),
            path: "/a?\"b\"".into(),
            status: 200,
            route: Some("*/".into()),
            service: Some("web".into()),
            preview: None,
            target: None,
            duration: Duration::from_micros(1500),
            upstream: None,
            bytes: 12,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["path"], "/a?\"b\"");
        assert_eq!(v["target"], serde_json::Value::Null);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["bytes"], 12);
    }
}
