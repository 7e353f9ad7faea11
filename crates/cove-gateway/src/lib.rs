//! cove-gateway: one origin in front of every service.
//!
//! Invariant: it knows nothing about Compose. It is driven by a routing
//! [`table::Table`] (host and path prefix → a pool of targets), swapped
//! atomically; whoever owns the gateway (the daemon, or `cove gateway`
//! standalone) builds the table. Requests are streamed both ways, never
//! buffered whole.
//!
//! - [`table`]: routes, pools, targets (in-flight counts, draining),
//!   listener routes, preview pools.
//! - [`preview`]: preview keys (`X-Cove-Preview`, `baggage`).
//! - [`balance`]: power-of-two-choices on in-flight requests, round-robin.
//! - [`proxy`]: the HTTP server: the [`proxy::Gateway`], forwarding a
//!   request (request ids, retries on connect failure), holds, upgrades;
//!   `proxy::h1`, the HTTP/1.1 fast path (heads parsed in place, bodies
//!   copied or spliced through), hyper for the rest.
//! - `headers`: forwarding headers, hop-by-hop stripping, the strict head
//!   rules on bytes (Host, framing, upgrades).
//! - `answer`: the gateway's own answers (404, 502, 503, 504…).
//! - [`limits`]: the gateway's timeouts and size limits.
//! - [`upstream`]: kept-alive connections to the targets.
//! - [`health`]: active health checks (probes every interval; a target
//!   found down is left out, and idempotent requests waiting on it move).
//! - [`deadline`]: coarse upstream response deadlines.
//! - [`tcp`]: layer-4 routes.
//! - [`tls`]: TLS termination, SNI, the local CA.
//! - [`access`]: access log records, request body limits.
//! - `stats`: a route's counters ([`metrics::RouteStats`]).
//! - [`metrics`]: counters per route and target, Prometheus text.
//! - [`server`]: worker threads, sockets, the connection cap.
//! - `accept`: accept loops, the connection cap, stopping
//!   ([`server::Stopping`]).
//!
//! Modules depend on each other without cycles: leaves (`answer`,
//! `headers`, [`limits`], `stats`, `accept`, [`access`], [`deadline`],
//! [`preview`]) →
//! [`table`] → [`balance`], [`metrics`], [`upstream`], [`health`] → [`proxy`] →
//! [`tcp`], [`tls`] → [`server`].

mod accept;
pub mod access;
mod answer;
pub mod balance;
pub mod deadline;
mod headers;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod preview;
pub mod proxy;
pub mod server;
mod stats;
pub mod table;
pub mod tcp;
pub mod tls;
pub mod upstream;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

// The gateway runs inside the daemon: a panic while one of its locks is
// held (its table, idle connections, pipes, chosen certificates, pending
// deadlines) must cost that request only, not make every later one panic
// on the poisoned lock. What each keeps is whole between any two
// statements (a swap, a push, a pop, a clear), so its state is taken as
// it is (as the daemon's `lock` does).

/// Locks `m`, going on with its state when a panic poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for reading an `RwLock`.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for writing an `RwLock`.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
