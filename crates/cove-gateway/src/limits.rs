//! The gateway's limits: timeouts, head sizes, streams, hold and drain.

use std::time::Duration;

/// Limits that keep a client from holding the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a client to send a request's headers; also how long an
    /// idle kept-alive connection stays open.
    pub header_read: Duration,
    /// Time between two reads of a request's body (the gap, not the
    /// whole body: nginx's `client_body_timeout`): a client that stops
    /// sending its body mid-way is answered 408 and its connection closed.
    pub body_read: Duration,
    /// Time for an upstream to answer (headers).
    pub upstream_response: Duration,
    /// Time to connect to an upstream.
    pub upstream_connect: Duration,
    /// Largest request head, bytes.
    pub max_head: usize,
    /// Most header fields in a request head.
    pub max_headers: usize,
    /// Most requests at once on one HTTP/2 connection.
    pub max_streams: u32,
    /// How long a request waits for a target of a pool whose targets are
    /// on their way (a pool's `pending`, in the table).
    pub hold: Duration,
    /// Once the gateway stops accepting, how long connections have to
    /// finish their request in progress (idle ones close at once).
    pub drain: Duration,
    /// HTTP/1.1 requests over plain TCP take the fast path
    /// (`crate::proxy::h1`: heads parsed in place, bodies copied through);
    /// `false`: every request goes through hyper. The gateway's tests run
    /// both ways.
    pub fast_path: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            upstream_response: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(5),
            max_head: 64 * 1024,
            max_headers: 100,
            max_streams: 256,
            hold: Duration::from_secs(30),
            drain: Duration::from_millis(100),
            fast_path: true,
        }
    }
}
