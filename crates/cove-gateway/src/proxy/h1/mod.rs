//! The HTTP/1.1 fast path: plain-TCP client connections whose requests
//! are parsed in place ([`head`], `httparse`), judged strictly (RFC 9112:
//! one valid `Host`, one unambiguous framing), edited only where they must
//! be (hop-by-hop fields out, `Host` and `X-Forwarded-*` and a request id
//! in, the route's prefix stripped) and written to a kept-alive upstream
//! socket ([`conns`]) with their body copied through as it came (checked
//! as it goes when chunked: [`chunked`]). Answers come back the same way:
//! a head with nothing to remove is passed on byte for byte.
//!
//! What it declines goes to hyper on the same connection, with the bytes
//! read so far (`Rewind`): HTTP/1.0, WebSocket upgrades, `Expect`,
//! `CONNECT`, `OPTIONS *`, HTTP/2 upstreams (gRPC). Both paths give the
//! same answers of the gateway's own and keep the same counters, access
//! log, retries, holds and passive health.

mod chunked;
mod conns;
mod head;
mod splice;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

pub(crate) use conns::Conns;
use head::{Framing, Refusal, RequestHead, ResponseHead};
pub(crate) use splice::Pipes;

use super::{AccessRecord, Gateway, Hold, Routed};
use crate::accept::Stopping;
use crate::balance;
use crate::preview;
use crate::table::{self, Route, Table, Target};

/// Answers read whole before they are passed on when the request may be
/// sent again (as on hyper's path).
const SMALL_ANSWER: u64 = 64 * 1024;
/// A connection's buffers, to begin with (small enough for the
/// allocator's per-thread cache).
const BUFFER: usize = 1000;
/// Header fields a connection's lists hold before they grow.
const FIELDS: usize = 16;
/// Largest answer head from an upstream.
const MAX_ANSWER_HEAD: usize = 64 * 1024;

/// One client connection.
struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// The peer's address as forwarded (`X-Forwarded-For`).
    peer_ip: String,
    /// The connection's local address, once a table with listener routes
    /// asked for it (it picks their route).
    local: Option<SocketAddr>,
    /// Bytes read from the client; a request head starts at 0.
    buf: Vec<u8>,
    /// The request as it leaves, then a buffer for body bytes.
    out: Vec<u8>,
    /// The upstream's answer.
    answer: Vec<u8>,
    /// Fields of the request head, and of the answer's.
    req_fields: Vec<head::Field>,
    ans_fields: Vec<head::Field>,
    /// Bounds the wait for a request head (and an idle connection).
    idle: Pin<Box<tokio::time::Sleep>>,
    /// Bounds the wait for an answer.
    wait: Pin<Box<tokio::time::Sleep>>,
}

/// How an exchange ended, for the connection.
enum After {
    /// The next request may come.
    Next,
    Close,
    /// hyper serves the rest of the connection (nothing consumed yet).
    Hyper,
}

/// An answer of the gateway's own.
fn own(status: u16, text: &str, close: bool) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut b = Vec::with_capacity(128 + text.len());
    let _ = write!(
        b,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{text}",
        text.len(),
        if close { "connection: close\r\n" } else { "" }
    );
    b
}

/// Appends a header field.
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the fields of a head (read into `buf`) that are forwarded.
fn kept_fields(out: &mut Vec<u8>, buf: &[u8], fields: &[head::Field]) {
    for f in fields.iter().filter(|f| f.keep) {
        field(out, &buf[f.name.clone()], &buf[f.value.clone()]);
    }
}

/// Appends `n` in decimal.
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// An address as `X-Forwarded-For` carries it (IPv4 without `fmt`: once
/// per connection, which is once per request without keep-alive).
fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut out = Vec::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(&mut out, u64::from(octet));
            }
            String::from_utf8(out).unwrap_or_default()
        }
        std::net::IpAddr::V6(_) => ip.to_string(),
    }
}

/// How a connection goes on after the fast path's requests.
enum Then {
    /// It ended (closed, refused, idle too long, or the gateway stops).
    End,
    /// Its next request is hyper's (nothing of it consumed).
    Hyper,
    /// To thread `.0` of the server, between two requests.
    Move(usize),
}

/// Why a read failed: the client or upstream went away, or was too slow.
type Io = std::io::Result<usize>;

impl Gateway {
    /// Serves a plain-TCP client connection on the fast path, handing it
    /// to hyper when a request is one the fast path declines.
    pub(super) async fn serve_h1(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: Stopping,
    ) {
        let mut c = Client {
            stream,
            peer,
            peer_ip: ip_text(peer.ip()),
            local: None,
            buf: Vec::with_capacity(BUFFER),
            out: Vec::with_capacity(BUFFER),
            answer: Vec::with_capacity(BUFFER),
            req_fields: Vec::with_capacity(FIELDS),
            ans_fields: Vec::with_capacity(FIELDS),
            idle: Box::pin(tokio::time::sleep(self.limits.header_read)),
            wait: Box::pin(tokio::time::sleep(self.limits.upstream_response)),
        };
        match self.serve_requests(&mut c, &stop).await {
            Then::End => {}
            Then::Hyper => self.to_hyper(c, stop).await,
            Then::Move(to) => {
                // Between two requests, nothing of the next one read: the
                // thread `to` serves the rest from the socket alone.
                if let Ok(stream) = c.stream.into_std() {
                    stop.move_to(to, stream, c.peer);
                }
            }
        }
    }

    /// The rest of the connection, served by hyper with the bytes read so
    /// far; boxed, and made in a plain function, so that the fast path's
    /// own future does not carry the size of hyper's.
    fn to_hyper(
        self: Arc<Self>,
        c: Client,
        stop: Stopping,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // The HTTP/2 preface (prior knowledge) reads as a request line of
        // version 2.0, which the fast path declines.
        let h2 = c.buf.starts_with(b"PRI * HTTP/2");
        let at = super::At {
            peer: c.peer,
            local: c.local.or_else(|| c.stream.local_addr().ok()),
        };
        let rewound = Rewind {
            pre: c.buf,
            at: 0,
            inner: c.stream,
        };
        Box::pin(self.serve_io(rewound, at, h2, false, stop))
    }

    /// Serves requests until the connection ends, one is for hyper (nothing
    /// of it consumed), or the connection would better be served by
    /// another thread.
    async fn serve_requests(&self, c: &mut Client, stop: &Stopping) -> Then {
        // Watched once for the whole connection (not once per request).
        let mut watch = stop.also();
        let stopped = watch.requested();
        tokio::pin!(stopped);
        let mut requests = 0u64;
        loop {
            let head = match self.read_head(c, stopped.as_mut()).await {
                Some(Ok(head)) => head,
                Some(Err(Refusal::Decline)) => return Then::Hyper,
                Some(Err(Refusal::Bad(status, why))) => {
                    let text = format!("cove gateway: {why}\n");
                    let _ = c.stream.write_all(&own(status, &text, true)).await;
                    return Then::End;
                }
                Some(Err(Refusal::Partial | Refusal::LaterMinor(_))) | None => return Then::End,
            };
            match self.exchange(c, &head).await {
                After::Next => {
                    if requests == 0 {
                        // A kept-alive connection: its answers must not wait
                        // for the client's acknowledgements (Nagle).
                        let _ = c.stream.set_nodelay(true);
                    }
                    requests += 1;
                    // What was read past this request is the next one's.
                    let used = head.len + self.body_in_buffer(c, &head);
                    c.buf.drain(..used.min(c.buf.len()));
                    if stop.is_requested() {
                        return Then::End;
                    }
                    if c.buf.is_empty()
                        && let Some(to) = stop.lighter()
                    {
                        return Then::Move(to);
                    }
                }
                // Everything sent was read: closing sends a FIN, no reset.
                After::Close => return Then::End,
                After::Hyper => return Then::Hyper,
            }
        }
    }

    /// Body bytes of `head`'s request that came with its head (all of them,
    /// once the exchange is over and the body was read to its end).
    fn body_in_buffer(&self, c: &Client, head: &RequestHead) -> usize {
        let after = c.buf.len() - head.len;
        match head.framing {
            Framing::Length(n) => after.min(usize::try_from(n).unwrap_or(usize::MAX)),
            Framing::Chunked => {
                let mut ch = chunked::Chunked::new();
                ch.feed(&c.buf[head.len..]).unwrap_or(after)
            }
            Framing::None | Framing::Close => 0,
        }
    }

    /// The next request's head: `None` when the connection ends first
    /// (closed, idle too long, too slow, or the gateway stops while it is
    /// idle).
    async fn read_head(
        &self,
        c: &mut Client,
        mut stopped: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Result<RequestHead, Refusal>> {
        let mut timed = false;
        loop {
            if !c.buf.is_empty() {
                match head::request(&c.buf, self.limits.max_headers, &mut c.req_fields) {
                    Err(Refusal::Partial) if c.buf.len() > self.limits.max_head => {
                        return Some(Err(Refusal::Bad(431, "request head too large")));
                    }
                    Err(Refusal::Partial) => {}
                    Ok(h) if h.len > self.limits.max_head => {
                        return Some(Err(Refusal::Bad(431, "request head too large")));
                    }
                    Err(Refusal::LaterMinor(at)) => {
                        // Read as HTTP/1.1, and answered as such.
                        c.buf[at] = b'1';
                        continue;
                    }
                    judged => return Some(judged),
                }
            }
            if c.buf.capacity() - c.buf.len() < 512 {
                c.buf.reserve(4096);
            }
            if !timed {
                // A later time than the last: no new timer, the old one is
                // moved on.
                c.idle
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.limits.header_read);
                timed = true;
            }
            let idle = c.buf.is_empty();
            // The read first: when the bytes are there, the timer is not
            // even looked at.
            let read: Io = tokio::select! {
                biased;
                r = c.stream.read_buf(&mut c.buf) => r,
                _ = c.idle.as_mut() => return None,
                _ = stopped.as_mut(), if idle => return None,
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// One request: routed, sent to a target (tried on others as hyper's
    /// path does), its answer passed on; counted and logged.
    async fn exchange(&self, c: &mut Client, head: &RequestHead) -> After {
        let started = Instant::now();
        let Client {
            stream,
            peer,
            peer_ip,
            local,
            buf,
            out,
            answer,
            req_fields,
            ans_fields,
            wait,
            ..
        } = c;
        let buf: &[u8] = buf;
        let (Ok(path), Ok(target)) = (
            std::str::from_utf8(&buf[head.path.clone()]),
            std::str::from_utf8(&buf[head.target.clone()]),
        ) else {
            let _ = stream
                .write_all(&own(400, "cove gateway: bad path\n", true))
                .await;
            return After::Close;
        };
        let host = head
            .host
            .clone()
            .and_then(|h| std::str::from_utf8(&buf[h]).ok());
        // The route, held while the pool it goes to has targets on their
        // way; the request's preview key is looked for once, and only on a
        // route where it matters.
        let mut table = self.table_here();
        let (mut hold, mut asked) = (Hold::default(), None);
        let index = loop {
            let Some(index) = self.route_here(&table, stream, local, host, path) else {
                let close = head.framing != Framing::None || head.close;
                return self.refuse(stream, 404, &no_route(host, path), close).await;
            };
            let route = table.route_at(index);
            let pool = if route.keyed() {
                route.pool_for(route.key(*asked.get_or_insert_with(|| asked_key(buf, req_fields))))
            } else {
                &route.pool
            };
            // Boxed, as what is rare is: every connection's future carries
            // the size of what it may await.
            if !Self::may_hold(pool) || !Box::pin(self.hold(pool, &mut hold)).await {
                break index;
            }
            table = self.table_here();
        };
        let asked = asked.flatten();
        let route = table.route_at(index);
        let key = if route.keyed() {
            route.key(asked)
        } else {
            None
        };
        let pool = route.pool_for(key);
        if pool.http2
            || route
                .preview
                .as_deref()
                .is_some_and(|k| !preview::valid_key(k))
        {
            return After::Hyper;
        }
        if let (Some(max), Framing::Length(n)) = (route.max_body, head.framing)
            && n > max
        {
            let text = format!(
                "cove gateway: the request body is larger than this route's limit ({max} bytes)\n"
            );
            let s = route.stats.clone();
            s.record(413, started.elapsed());
            return self.refuse(stream, 413, &text, true).await;
        }
        // The request as it leaves.
        self.upstream_head(out, buf, head, req_fields, route, target, host, peer_ip);
        let mut ex = Exchange {
            gw: self,
            route,
            pool,
            at: Routed {
                table: &table,
                index,
                key,
            },
            head,
            buf,
            started,
            sent_at: None,
            status: 0,
            bytes: 0,
            target: None,
            upstream_failed: false,
            close_after: false,
        };
        let after = ex.run(stream, out, answer, ans_fields, wait).await;
        let took = started.elapsed();
        let stats = &route.stats;
        stats.record(ex.status, took);
        if ex.upstream_failed {
            stats.upstream_error();
        }
        ex.log(*peer, target, took);
        after
    }

    /// The index of the route a request to `host` and `path` takes in
    /// `table`, on the connection `stream` (whose local address, `local`,
    /// is looked up once a table has listener routes).
    #[inline]
    fn route_here(
        &self,
        table: &Table,
        stream: &TcpStream,
        local: &mut Option<SocketAddr>,
        host: Option<&str>,
        path: &str,
    ) -> Option<usize> {
        if local.is_none() && table.has_listeners() {
            *local = stream.local_addr().ok();
        }
        table.find(*local, host, path)
    }

    /// Answers the client with the gateway's own `status`; `close`: the
    /// connection closes after it (what is left of the request must not
    /// be read as the next one).
    async fn refuse(&self, stream: &mut TcpStream, status: u16, text: &str, close: bool) -> After {
        if stream.write_all(&own(status, text, close)).await.is_err() || close {
            return After::Close;
        }
        After::Next
    }

    /// Writes the head of the request as its targets get it into `out`.
    #[allow(clippy::too_many_arguments)]
    fn upstream_head(
        &self,
        out: &mut Vec<u8>,
        buf: &[u8],
        head: &RequestHead,
        fields: &[head::Field],
        route: &Route,
        target: &str,
        host: Option<&str>,
        peer_ip: &str,
    ) {
        out.clear();
        out.extend_from_slice(&buf[head.method.clone()]);
        out.push(b' ');
        if route.strip_prefix {
            out.extend_from_slice(table::strip(&route.path, target).as_bytes());
        } else {
            out.extend_from_slice(target.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(h) = host {
            field(out, b"host", h.as_bytes());
        }
        match &route.preview {
            None => kept_fields(out, buf, fields),
            Some(key) => {
                // What the client sent of the key is replaced.
                let named = |f: &&head::Field, name: &str| {
                    buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes())
                };
                for f in fields
                    .iter()
                    .filter(|f| f.keep && !named(f, preview::HEADER) && !named(f, preview::BAGGAGE))
                {
                    field(out, &buf[f.name.clone()], &buf[f.value.clone()]);
                }
                field(out, preview::HEADER.as_bytes(), key.as_bytes());
                let client = fields
                    .iter()
                    .filter(|f| named(f, preview::BAGGAGE))
                    .map(|f| &buf[f.value.clone()]);
                field(
                    out,
                    preview::BAGGAGE.as_bytes(),
                    &preview::baggage_with(client, key),
                );
            }
        }
        if head.trailers {
            out.extend_from_slice(b"te: trailers\r\n");
        }
        if head.framing == Framing::Chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(prev) = &head.forwarded_for {
            out.extend_from_slice(&buf[prev.clone()]);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(peer_ip.as_bytes());
        out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
        if let Some(h) = host {
            field(out, b"x-forwarded-host", h.as_bytes());
        }
        if !head.request_id {
            let n = self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // `{prefix:016x}-{n}`, as on hyper's path, without `fmt`.
            out.extend_from_slice(b"x-request-id: ");
            for shift in (0..16).rev() {
                out.push(b"0123456789abcdef"[(self.id_prefix >> (shift * 4)) as usize & 15]);
            }
            out.push(b'-');
            decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The gateway's answer text when no route takes a request.
fn no_route(host: Option<&str>, path: &str) -> String {
    format!(
        "cove gateway: no route for {}{}\n",
        host.unwrap_or(""),
        path
    )
}

/// The preview key a request's `X-Cove-Preview` and `baggage` fields ask
/// for (see [`crate::preview`]).
fn asked_key<'b>(buf: &'b [u8], fields: &[head::Field]) -> Option<&'b str> {
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| &buf[f.value.clone()])
    };
    preview::request_key(named(preview::HEADER), named(preview::BAGGAGE))
}

/// One request's way through its tries.
struct Exchange<'a> {
    gw: &'a Gateway,
    route: &'a Route,
    /// The pool the request goes to: the route's, or a preview's (by its key).
    pool: &'a Arc<table::Pool>,
    /// Where it was routed (for a newer table's pool after failures).
    at: Routed<'a>,
    head: &'a RequestHead,
    /// The client's bytes: the head, then what came of the body.
    buf: &'a [u8],
    started: Instant,
    /// For the access log: how long the target took.
    sent_at: Option<Duration>,
    status: u16,
    bytes: u64,
    target: Option<SocketAddr>,
    upstream_failed: bool,
    /// The client's connection closes after this exchange.
    close_after: bool,
}

/// What one try came to.
enum Tried {
    /// Done: the client got an answer (or went away).
    Done(After),
    /// No connection: nothing sent; try another target.
    NotSent,
    /// Sent, and the target died before answering: another may take it
    /// when it may be sent again.
    Died(String),
}

impl Exchange<'_> {
    /// Hands the access log (if any) the record of the request, from
    /// `peer` to `target` (its path and query), done after `took`.
    fn log(&self, peer: SocketAddr, target: &str, took: Duration) {
        let Some(log) = &self.gw.access_log else {
            return;
        };
        let method = String::from_utf8_lossy(&self.buf[self.head.method.clone()]).into_owned();
        log(AccessRecord {
            time: std::time::SystemTime::now(),
            peer,
            method,
            path: crate::access::logged_path(target, self.gw.access_query()).into_owned(),
            status: self.status,
            route: Some(self.at.table.route_name(self.at.index)),
            service: Some(self.pool.name.clone()),
            preview: self.at.key.map(str::to_string),
            target: self.target,
            duration: took,
            upstream: self.sent_at,
            bytes: self.bytes,
        });
    }

    async fn run(
        &mut self,
        client: &mut TcpStream,
        out: &mut Vec<u8>,
        answer: &mut Vec<u8>,
        fields: &mut Vec<head::Field>,
        wait: &mut Pin<Box<tokio::time::Sleep>>,
    ) -> After {
        let gw = self.gw;
        let head = self.head;
        let bodiless = head.framing == Framing::None;
        let again = bodiless && head.is_idempotent(self.buf);
        // A newer table's pool, after every target failed (the route's
        // own is not cloned: its count is shared by every thread).
        let mut newer: Option<Arc<table::Pool>> = None;
        let mut attempts = self.pool.targets.len().clamp(2, 8);
        let mut attempt = 0;
        let mut rounds = 0;
        let mut avoid = None;
        let mut reached = false;
        let mut held = Hold::default();
        let mut random = balance::thread_random;
        let mut last = String::new();
        loop {
            if attempt == attempts {
                rounds += 1;
                if reached {
                    break;
                }
                match Box::pin(gw.after_failures(&self.at, &mut held, rounds)).await {
                    Some(pool) => {
                        attempts = pool.targets.len().clamp(2, 8);
                        newer = Some(pool);
                        (attempt, avoid) = (0, None);
                        continue;
                    }
                    None => break,
                }
            }
            let pool = newer.as_deref().unwrap_or(self.pool);
            let current = attempt;
            attempt += 1;
            let now = table::now_ms();
            pool.usage.touch(now);
            let Some(target) = balance::pick(pool, avoid, now, &mut random) else {
                if current > 0 {
                    attempt = attempts;
                    continue;
                }
                let why = gw.no_target(pool);
                self.status = 503;
                return gw.refuse(client, 503, &why, !bodiless || head.close).await;
            };
            self.target = Some(target.addr);
            let more = attempt < attempts;
            match self
                .try_target(target, client, out, answer, fields, wait, more && again)
                .await
            {
                Tried::Done(after) => return after,
                Tried::NotSent => {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                    avoid = Some(target.addr);
                }
                Tried::Died(why) if again && more => {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                    avoid = Some(target.addr);
                    reached = true;
                    last = why;
                }
                Tried::Died(why) => {
                    self.upstream_failed = true;
                    self.status = 502;
                    let text = format!("cove gateway: {} ({}): {why}\n", pool.name, target.addr);
                    return gw.refuse(client, 502, &text, !bodiless || head.close).await;
                }
            }
        }
        self.upstream_failed = true;
        self.status = 502;
        let pool = newer.as_deref().unwrap_or(self.pool);
        let text = if last.is_empty() {
            format!(
                "cove gateway: no target of `{}` could be reached\n",
                pool.name
            )
        } else {
            format!(
                "cove gateway: no target of `{}` could be reached ({last})\n",
                pool.name
            )
        };
        gw.refuse(client, 502, &text, !bodiless || head.close).await
    }

    /// One try on `target`; `retry`: a dying target means another try
    /// (small answers are then read whole before they are passed on).
    #[allow(clippy::too_many_arguments)]
    async fn try_target(
        &mut self,
        target: &Arc<Target>,
        client: &mut TcpStream,
        out: &mut Vec<u8>,
        answer: &mut Vec<u8>,
        fields: &mut Vec<head::Field>,
        wait: &mut Pin<Box<tokio::time::Sleep>>,
        retry: bool,
    ) -> Tried {
        let gw = self.gw;
        let head = self.head;
        let _guard = target.begin_here();
        let mut up = match gw.h1_conns.checkout(target.addr) {
            Some(s) => s,
            None => {
                // Given up when the active health check finds the target
                // down meanwhile: nothing was sent.
                let connect = Conns::connect(target.addr, gw.limits.upstream_connect);
                tokio::select! {
                    c = connect => match c {
                        Ok(s) => s,
                        Err(_) => return Tried::NotSent,
                    },
                    _ = target.gone_down() => return Tried::NotSent,
                }
            }
        };
        // The head, with what came of the body.
        let body_here = &self.buf[head.len..];
        let (first, mut left) = match head.framing {
            Framing::None | Framing::Close => (0, BodyLeft::None),
            Framing::Length(n) => {
                let here = body_here
                    .len()
                    .min(usize::try_from(n).unwrap_or(usize::MAX));
                let left = n - here as u64;
                (
                    here,
                    if left == 0 {
                        BodyLeft::None
                    } else {
                        BodyLeft::Length(left)
                    },
                )
            }
            Framing::Chunked => {
                let mut ch = chunked::Chunked::new();
                let fed = ch.feed(body_here);
                if let Some(max) = self.route.max_body
                    && ch.data > max
                {
                    return Tried::Done(self.too_large(client, max).await);
                }
                match fed {
                    Ok(n) if ch.is_done() => (n, BodyLeft::None),
                    Ok(n) => (n, BodyLeft::Chunked(ch)),
                    Err(chunked::Invalid(why)) => {
                        self.status = 400;
                        let text =
                            format!("cove gateway: the request's body could not be read: {why}\n");
                        return Tried::Done(gw.refuse(client, 400, &text, true).await);
                    }
                }
            }
        };
        let head_len = out.len();
        out.extend_from_slice(&body_here[..first]);
        let written = up.write_all(out).await;
        out.truncate(head_len);
        if written.is_err() {
            // A kept-alive connection the target closed meanwhile: nothing
            // of the body was read from the client yet.
            return Tried::NotSent;
        }
        // The rest of the body, from the client to the target.
        if !matches!(left, BodyLeft::None)
            && let Err(done) = Box::pin(self.stream_body(client, &mut up, out, &mut left)).await
        {
            return Tried::Done(done);
        }
        // The answer's head.
        let limit = self.route.timeout.unwrap_or(gw.limits.upstream_response);
        // A later time than the last (unless a route's own timeout is
        // shorter): the connection's timer is moved on, not made anew.
        wait.as_mut().reset(tokio::time::Instant::now() + limit);
        answer.clear();
        let ans = 'head: loop {
            if answer.capacity() - answer.len() < 1024 {
                answer.reserve(4096);
            }
            let read: Io = tokio::select! {
                biased;
                r = up.read_buf(answer) => r,
                // Its link is gone (the active health check says so): no
                // answer will come; another target may take the request.
                _ = target.gone_down(), if retry && answer.is_empty() => {
                    return Tried::Died("its health check failed".into());
                }
                _ = wait.as_mut() => {
                    self.upstream_failed = true;
                    self.status = 504;
                    let text = format!(
                        "cove gateway: {} ({}) did not answer within {limit:?}\n",
                        self.pool.name, target.addr
                    );
                    return Tried::Done(gw.refuse(client, 504, &text, true).await);
                }
            };
            match read {
                Ok(0) | Err(_) if answer.is_empty() => {
                    return Tried::Died("the connection closed before an answer".into());
                }
                Ok(0) | Err(_) => return Tried::Died("the answer was cut short".into()),
                Ok(_) => {}
            }
            // Informational answers are dropped, and what follows them
            // judged before anything more is read.
            loop {
                match self.judge_answer(client, target, answer, fields).await {
                    Ok(Judged::Whole(a)) => break 'head a,
                    Ok(Judged::Informational) if !answer.is_empty() => {}
                    Ok(Judged::Informational | Judged::Partial) => break,
                    Err(after) => return Tried::Done(after),
                }
            }
        };
        if gw.access_log.is_some() {
            self.sent_at = Some(self.started.elapsed());
        }
        // A small answer to a request that may go to another target is read
        // whole first: a target dying in its middle costs a retry.
        if retry
            && let Framing::Length(n) = ans.framing
            && n <= SMALL_ANSWER
        {
            let want = ans.len + n as usize;
            while answer.len() < want {
                answer.reserve(want - answer.len());
                match up.read_buf(answer).await {
                    Ok(0) | Err(_) => return Tried::Died("the answer was cut short".into()),
                    Ok(_) => {}
                }
            }
        }
        target.record(
            if ans.status >= 500 {
                table::Outcome::ServerError
            } else {
                table::Outcome::Ok
            },
            table::now_ms(),
        );
        self.status = ans.status;
        Tried::Done(
            self.pass_on(client, up, target, out, answer, fields, &ans)
                .await,
        )
    }

    /// What the start of `answer` is: a whole head, a part of one, or an
    /// informational answer (dropped from it: not passed on, as no
    /// `Expect` comes this way); `Err` when the exchange ended with the
    /// gateway's own 502.
    async fn judge_answer(
        &mut self,
        client: &mut TcpStream,
        target: &Target,
        answer: &mut Vec<u8>,
        fields: &mut Vec<head::Field>,
    ) -> Result<Judged, After> {
        match head::response(answer, self.head.is_head(self.buf), fields) {
            Ok(a) if (100..200).contains(&a.status) && a.status != 101 => {
                answer.drain(..a.len);
                Ok(Judged::Informational)
            }
            Ok(a) if a.status == 101 => Err(self
                .bad_answer(client, target, "an upgrade nobody asked for")
                .await),
            Ok(a) => Ok(Judged::Whole(a)),
            Err(head::Bad::Partial) if answer.len() > MAX_ANSWER_HEAD => Err(self
                .bad_answer(client, target, "answer head too large")
                .await),
            Err(head::Bad::Partial) => Ok(Judged::Partial),
            Err(head::Bad::Invalid(why)) => Err(self.bad_answer(client, target, why).await),
        }
    }

    /// Copies the rest of a request body from the client to the target.
    /// `Err`: the exchange ended (the client got an answer of the
    /// gateway's own, or went away).
    async fn stream_body(
        &mut self,
        client: &mut TcpStream,
        up: &mut TcpStream,
        scratch: &mut Vec<u8>,
        left: &mut BodyLeft,
    ) -> Result<(), After> {
        let max = self.route.max_body;
        if let BodyLeft::Length(rest) = *left
            && rest >= splice::SPLICE_FROM
        {
            return self.splice_body(client, up, rest).await;
        }
        loop {
            let want = match left {
                BodyLeft::None | BodyLeft::Close => return Ok(()),
                BodyLeft::Length(n) => usize::try_from(*n).unwrap_or(usize::MAX).min(64 * 1024),
                BodyLeft::Chunked(_) => 64 * 1024,
            };
            scratch.clear();
            scratch.reserve(want);
            let read = tokio::time::timeout(
                self.gw.limits.body_read,
                (&mut *client).take(want as u64).read_buf(scratch),
            )
            .await;
            let n = match read {
                Err(_) => {
                    self.status = 408;
                    let text = "cove gateway: the request's body did not come in time\n";
                    return Err(self.gw.refuse(client, 408, text, true).await);
                }
                Ok(Ok(0) | Err(_)) => {
                    // The client went away mid-body.
                    self.status = 400;
                    return Err(After::Close);
                }
                Ok(Ok(n)) => n,
            };
            match left {
                BodyLeft::Length(rest) => {
                    *rest -= n as u64;
                    if *rest == 0 {
                        *left = BodyLeft::None;
                    }
                }
                BodyLeft::Chunked(ch) => match ch.feed(&scratch[..n]) {
                    Ok(used) => {
                        // Bytes past the body: a pipelined request, which is
                        // not kept; the connection closes after this one.
                        if used < n {
                            self.close_after = true;
                        }
                        scratch.truncate(used);
                        if let Some(max) = max
                            && ch.data > max
                        {
                            return Err(self.too_large(client, max).await);
                        }
                        if ch.is_done() {
                            *left = BodyLeft::None;
                        }
                    }
                    Err(chunked::Invalid(why)) => {
                        self.status = 400;
                        let text =
                            format!("cove gateway: the request's body could not be read: {why}\n");
                        return Err(self.gw.refuse(client, 400, &text, true).await);
                    }
                },
                BodyLeft::None | BodyLeft::Close => {}
            }
            if up.write_all(scratch).await.is_err() {
                self.upstream_failed = true;
                self.status = 502;
                let text = format!(
                    "cove gateway: {} ({}): the target closed the connection during the request body\n",
                    self.pool.name,
                    self.target.map(|t| t.to_string()).unwrap_or_default()
                );
                return Err(self.gw.refuse(client, 502, &text, true).await);
            }
        }
    }

    /// The rest of a request body with a length, spliced from the client
    /// to the target.
    async fn splice_body(
        &mut self,
        client: &mut TcpStream,
        up: &mut TcpStream,
        rest: u64,
    ) -> Result<(), After> {
        let mut pipe = match self.gw.h1_pipes.take() {
            Ok(p) => p,
            Err(_) => {
                self.status = 503;
                let text = "cove gateway: out of file descriptors\n";
                return Err(self.gw.refuse(client, 503, text, true).await);
            }
        };
        let mut moved = 0;
        let relayed = pipe
            .relay(client, up, rest, Some(self.gw.limits.body_read), &mut moved)
            .await;
        self.gw.h1_pipes.give(pipe);
        match relayed {
            Ok(()) => Ok(()),
            Err(splice::Broke::From(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.status = 408;
                let text = "cove gateway: the request's body did not come in time\n";
                Err(self.gw.refuse(client, 408, text, true).await)
            }
            Err(splice::Broke::From(_)) => {
                // The client went away mid-body.
                self.status = 400;
                Err(After::Close)
            }
            Err(splice::Broke::To(e)) => {
                self.upstream_failed = true;
                self.status = 502;
                let text = format!(
                    "cove gateway: {} ({}): the request body could not be sent on: {e}\n",
                    self.pool.name,
                    self.target.map(|t| t.to_string()).unwrap_or_default()
                );
                Err(self.gw.refuse(client, 502, &text, true).await)
            }
        }
    }

    async fn too_large(&mut self, client: &mut TcpStream, max: u64) -> After {
        self.status = 413;
        let text = format!(
            "cove gateway: the request body is larger than this route's limit ({max} bytes)\n"
        );
        self.gw.refuse(client, 413, &text, true).await
    }

    /// A target's answer that cannot be passed on: 502, its connection
    /// dropped.
    async fn bad_answer(&mut self, client: &mut TcpStream, target: &Target, why: &str) -> After {
        self.upstream_failed = true;
        self.status = 502;
        target.record(table::Outcome::ServerError, table::now_ms());
        let text = format!(
            "cove gateway: {} ({}) gave an invalid answer: {why}\n",
            self.pool.name, target.addr
        );
        // Nothing of the answer went to the client, and the request was
        // all sent: its connection may serve the next one.
        let close = self.head.close || self.close_after;
        self.gw.refuse(client, 502, &text, close).await
    }

    /// Passes the answer on to the client: its head (byte for byte when
    /// nothing is to be removed), then its body as framed.
    #[allow(clippy::too_many_arguments)]
    async fn pass_on(
        &mut self,
        client: &mut TcpStream,
        mut up: TcpStream,
        target: &Target,
        out: &mut Vec<u8>,
        answer: &mut Vec<u8>,
        fields: &[head::Field],
        ans: &ResponseHead,
    ) -> After {
        let close = self.head.close || self.close_after || ans.framing == Framing::Close;
        let here = answer.len() - ans.len;
        // How much of what came belongs to the body, and what is left.
        let (body_first, mut left, reusable) = match ans.framing {
            Framing::None => (0, BodyLeft::None, here == 0),
            Framing::Length(n) => {
                let take = here.min(usize::try_from(n).unwrap_or(usize::MAX));
                let rest = n - take as u64;
                (
                    take,
                    if rest == 0 {
                        BodyLeft::None
                    } else {
                        BodyLeft::Length(rest)
                    },
                    here <= take,
                )
            }
            Framing::Chunked => {
                let mut ch = chunked::Chunked::new();
                match ch.feed(&answer[ans.len..]) {
                    Ok(used) if ch.is_done() => (used, BodyLeft::None, used == here),
                    Ok(used) => (used, BodyLeft::Chunked(ch), true),
                    Err(chunked::Invalid(why)) => {
                        return self.bad_answer(client, target, why).await;
                    }
                }
            }
            Framing::Close => (here, BodyLeft::Close, false),
        };
        let sent = if ans.verbatim && !close {
            client.write_all(&answer[..ans.len + body_first]).await
        } else {
            out.clear();
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(&answer[ans.status_line.clone()]);
            out.extend_from_slice(b"\r\n");
            kept_fields(out, answer, fields);
            if close {
                out.extend_from_slice(b"connection: close\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&answer[ans.len..ans.len + body_first]);
            client.write_all(out).await
        };
        if sent.is_err() {
            return After::Close;
        }
        self.bytes = body_first as u64;
        if !matches!(left, BodyLeft::None) {
            // Several writes: none waits for the client's acknowledgements.
            let _ = client.set_nodelay(true);
        }
        // The rest of the body: long ones spliced, socket to socket.
        if let BodyLeft::Length(rest) = left
            && rest >= splice::SPLICE_FROM
            && let Ok(mut pipe) = self.gw.h1_pipes.take()
        {
            let relayed = pipe.relay(&up, client, rest, None, &mut self.bytes).await;
            self.gw.h1_pipes.give(pipe);
            if relayed.is_err() {
                return After::Close; // cut short: so is the client's
            }
            left = BodyLeft::None;
        }
        loop {
            let want = match &left {
                BodyLeft::None => break,
                BodyLeft::Length(n) => usize::try_from(*n).unwrap_or(usize::MAX).min(64 * 1024),
                BodyLeft::Chunked(_) | BodyLeft::Close => 64 * 1024,
            };
            answer.clear();
            answer.reserve(want);
            let n = match (&mut up).take(want as u64).read_buf(answer).await {
                Ok(0) if matches!(left, BodyLeft::Close) => break,
                Ok(0) | Err(_) => return After::Close, // cut short: so is the client's
                Ok(n) => n,
            };
            match &mut left {
                BodyLeft::Length(rest) => {
                    *rest -= n as u64;
                    if *rest == 0 {
                        left = BodyLeft::None;
                    }
                }
                BodyLeft::Chunked(ch) => match ch.feed(&answer[..n]) {
                    Ok(used) => {
                        if used < n {
                            // Bytes past the answer: the connection is not
                            // reused.
                            answer.truncate(used);
                            let _ = client.write_all(answer).await;
                            return After::Close;
                        }
                        if ch.is_done() {
                            left = BodyLeft::None;
                        }
                    }
                    Err(_) => return After::Close,
                },
                BodyLeft::Close | BodyLeft::None => {}
            }
            self.bytes += n as u64;
            if client.write_all(answer).await.is_err() {
                return After::Close;
            }
        }
        if reusable && !ans.close && ans.framing != Framing::Close {
            self.gw.h1_conns.checkin(target.addr, up);
        }
        if close { After::Close } else { After::Next }
    }
}

/// What the start of an answer's bytes is.
enum Judged {
    Whole(ResponseHead),
    Partial,
    Informational,
}

/// What is left of a body to copy.
enum BodyLeft {
    None,
    Length(u64),
    Chunked(chunked::Chunked),
    /// Until the connection closes (answers only).
    Close,
}

/// A connection handed to hyper with the bytes the fast path read first.
struct Rewind {
    pre: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.pre.len() {
            let n = (self.pre.len() - self.at).min(out.remaining());
            let at = self.at;
            out.put_slice(&self.pre[at..at + n]);
            self.at += n;
            if self.at == self.pre.len() {
                self.pre = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_written_as_fmt_would() {
        for n in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.2.30.4",
            "::1",
            "fe80::1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
