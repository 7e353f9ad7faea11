//! `GET /v1/logs`: its query string, written by the CLI
//! ([`LogsRequest::to_query`]) and read by the daemon
//! ([`LogsRequest::parse`]); the answer is a [`LogPage`].
//!
//! | parameter      | meaning |
//! |----------------|---------|
//! | `source=S`     | a service (`api`) or replica (`api-2`); repeatable; all when none |
//! | `replica=N`    | only replica N |
//! | `since=MS`, `until=MS` | milliseconds since the epoch: lines at or after, before |
//! | `tail=N`       | the last N passing lines of each replica (first page only) |
//! | `grep=RE`, `level=L`, `where=F=V` (repeatable) | filters ([`cove_runtime::log_query::Filter`]) |
//! | `cursor=C`     | the lines after the page that gave `C` |
//! | `wait=MS`      | with `cursor`: when no line is there yet, wait for one up to MS (at most 60 s): a follow's long poll |
//!
//! Values are percent-encoded (UTF-8).

pub use cove_runtime::log_query::{Line as LogLine, Page as LogPage};

/// What `GET /v1/logs` was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsRequest {
    pub sources: Vec<String>,
    pub replica: Option<u32>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub tail: Option<usize>,
    pub grep: Option<String>,
    pub level: Option<String>,
    pub wheres: Vec<String>,
    pub cursor: Option<String>,
    pub wait_ms: Option<u64>,
}

impl LogsRequest {
    /// `/v1/logs?...`.
    pub fn to_query(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        let mut put = |k: &str, v: &str| q.push(format!("{k}={}", encode(v)));
        for s in &self.sources {
            put("source", s);
        }
        let num = |n: Option<u64>| n.map(|n| n.to_string());
        for (k, v) in [
            ("replica", num(self.replica.map(u64::from))),
            ("since", num(self.since_ms)),
            ("until", num(self.until_ms)),
            ("tail", num(self.tail.map(|n| n as u64))),
            ("grep", self.grep.clone()),
            ("level", self.level.clone()),
            ("cursor", self.cursor.clone()),
            ("wait", num(self.wait_ms)),
        ] {
            if let Some(v) = v {
                put(k, &v);
            }
        }
        for w in &self.wheres {
            put("where", w);
        }
        format!("/v1/logs?{}", q.join("&"))
    }

    /// The query string of a request; the error names the parameter.
    pub fn parse(query: &str) -> Result<LogsRequest, String> {
        let mut r = LogsRequest::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v).ok_or_else(|| format!("`{k}` is not percent-encoded UTF-8"))?;
            let number = || {
                v.parse::<u64>()
                    .map_err(|_| format!("`{k}` must be a number, not `{v}`"))
            };
            match k {
                "source" => r.sources.push(v.clone()),
                "replica" => {
                    r.replica = Some(
                        u32::try_from(number()?)
                            .map_err(|_| format!("`replica` {v} is too large"))?,
                    )
                }
                "since" => r.since_ms = Some(number()?),
                "until" => r.until_ms = Some(number()?),
                "tail" => r.tail = Some(number()? as usize),
                "grep" => r.grep = Some(v),
                "level" => r.level = Some(v),
                "where" => r.wheres.push(v),
                "cursor" => r.cursor = Some(v),
                "wait" => r.wait_ms = Some(number()?),
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        Ok(r)
    }
}

/// Percent-encodes all but `A-Z a-z 0-9 - . _ ~`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip() {
        let r = LogsRequest {
            sources: vec!["api".into(), "db-2".into()],
            replica: Some(2),
            since_ms: Some(1),
            until_ms: Some(2),
            tail: Some(10),
            grep: Some("a&b=c %d ü (x|y)+".into()),
            level: Some("warn".into()),
            wheres: vec!["user=ann&bob".into(), "level=error".into()],
            cursor: Some("1.2.3_4.5.6".into()),
            wait_ms: Some(60_000),
        };
        let q = r.to_query();
        let (_, query) = q.split_once('?').unwrap();
        assert_eq!(LogsRequest::parse(query), Ok(r));
        assert!(LogsRequest::parse("tail=x").unwrap_err().contains("`tail`"));
        assert!(LogsRequest::parse("grep=%zz").is_err());
        assert!(LogsRequest::parse("nope=1").is_err());
    }
}
