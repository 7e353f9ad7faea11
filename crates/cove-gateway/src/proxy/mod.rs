//! The proxy: an HTTP/1.1 server that forwards each request to a target of
//! its route's pool over a pool of kept-alive upstream connections,
//! streaming bodies both ways.
//!
//! Forwarded requests get `X-Forwarded-For` (appended), `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Request-Id` (when absent); hop-by-hop headers
//! (and those named in `Connection`, and `HTTP2-Settings`) are removed both
//! ways. A request that could not be sent (no connection) is tried on each
//! other target in turn (at most 8 tries); one that was sent and got no
//! answer (the target died) is sent on the same way only when it is
//! idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and has no body.
//!
//! Heads are strict before anything is routed (`forward::refused_head`,
//! over the byte rules of `crate::headers`, which the HTTP/1.1 fast path
//! shares): 431 a head over [`Limits::max_head`]; 400 an HTTP/1.1 request
//! without `Host`, with more than one, or with an invalid one (RFC 9112
//! §3.2); 400 ambiguous framing (RFC 9112 §6: several or listed lengths,
//! a `Transfer-Encoding` that is not `chunked` alone), 501 an unknown
//! transfer coding; each closes the connection. An absolute-form target's
//! authority wins over `Host` and becomes the forwarded `Host` (RFC 9110
//! §7.2).
//!
//! Upgrades: only WebSocket (`Upgrade: websocket`) is forwarded as one.
//! Any other, `h2c` above all (RFC 9113 §3.1 deprecates it), is not
//! refused but dropped: its `Upgrade` and `HTTP2-Settings` go, and it is
//! forwarded as a plain request. A `101` the client did not ask for (or to
//! another protocol than WebSocket) is answered 502, so no later request
//! on the connection can reach a target raw.
//!
//! Answers of the gateway itself: 400 a request body that cannot be read
//! (bad chunking: the client's fault, not counted against the target), 404
//! no route, 408 a body that stopped coming for [`Limits::body_read`], 502
//! upstream failed or answered with ambiguous framing (never passed on;
//! its connection is closed, not pooled), 503 no target (at once, saying
//! why, when the pool's replicas run but refuse connections:
//! [`crate::table::Pool::unavailable`]), 504 timeout; they close the
//! client's connection when the request's body may be left unread.

mod forward;
mod h1;
mod handle;
mod hold;
mod serve;
mod tries;
mod upgrade;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

pub use crate::access::{AccessLog, AccessRecord, QueryLog};
pub use crate::answer::Body;
pub use crate::limits::Limits;
pub(crate) use hold::Hold;
pub use serve::At;

use crate::balance;
use crate::deadline::Deadlines;
use crate::table::Table;
use crate::upstream::Upstreams;

/// Where a request was routed: its table, its route's index there
/// ([`Table::route_at`]), its preview key.
pub(crate) struct Routed<'a> {
    pub(crate) table: &'a Arc<Table>,
    pub(crate) index: usize,
    pub(crate) key: Option<&'a str>,
}

/// The table, shared by a gateway's siblings, and its generation (read
/// without writing anything shared: see [`Gateway::table_here`]).
struct Current {
    table: RwLock<Arc<Table>>,
    generation: AtomicU64,
}

/// The shared table, held by one thread: its own reference count.
pub(crate) struct TableHere(Arc<Table>);

impl std::ops::Deref for TableHere {
    type Target = Arc<Table>;

    fn deref(&self) -> &Arc<Table> {
        &self.0
    }
}

pub struct Gateway {
    /// Shared by the gateway's siblings (one per thread).
    table: Arc<Current>,
    /// This thread's view of it: the generation it saw, and a reference
    /// counted here, so that taking it touches no count another core
    /// shares.
    here: std::sync::Mutex<(u64, Arc<TableHere>)>,
    /// Bumped at every new table (shared by siblings too).
    changed: Arc<watch::Sender<u64>>,
    /// Where access log records go, if anywhere.
    access_log: Option<AccessLog>,
    /// What records keep of query strings ([`QueryLog`] as a `u8`; shared
    /// by siblings).
    access_query: Arc<AtomicU8>,
    upstreams: Arc<Upstreams>,
    /// The fast path's kept-alive upstream connections.
    h1_conns: h1::Conns,
    /// The fast path's pipes, for long bodies.
    h1_pipes: h1::Pipes,
    /// Upstream response deadlines, checked coarsely (see [`crate::deadline`]).
    deadlines: std::sync::OnceLock<Arc<Deadlines>>,
    limits: Limits,
    /// Request ids: a random prefix and a counter.
    id_prefix: u64,
    ids: AtomicU64,
}

impl Gateway {
    pub fn new(table: Table, limits: Limits) -> Arc<Gateway> {
        Gateway::with_access_log(table, limits, None)
    }

    /// A gateway that hands a record of every request to `access_log`.
    pub fn with_access_log(
        table: Table,
        limits: Limits,
        access_log: Option<AccessLog>,
    ) -> Arc<Gateway> {
        Gateway::with_table(
            Arc::new(Current {
                table: RwLock::new(Arc::new(table)),
                generation: AtomicU64::new(0),
            }),
            Arc::new(watch::channel(0).0),
            access_log,
            Arc::new(AtomicU8::new(QueryLog::default() as u8)),
            limits,
        )
    }

    /// A gateway for another thread: the same table (and targets, so
    /// in-flight counts are shared), its own upstream connections.
    pub fn sibling(&self) -> Arc<Gateway> {
        Gateway::with_table(
            self.table.clone(),
            self.changed.clone(),
            self.access_log.clone(),
            self.access_query.clone(),
            self.limits,
        )
    }

    /// What access log records keep of query strings from now on, here
    /// and in every sibling (default: [`QueryLog::Redact`]).
    pub fn set_access_query(&self, query: QueryLog) {
        self.access_query.store(query as u8, Ordering::Relaxed);
    }

    fn access_query(&self) -> QueryLog {
        match self.access_query.load(Ordering::Relaxed) {
            q if q == QueryLog::Keep as u8 => QueryLog::Keep,
            q if q == QueryLog::Drop as u8 => QueryLog::Drop,
            _ => QueryLog::Redact,
        }
    }

    fn with_table(
        table: Arc<Current>,
        changed: Arc<watch::Sender<u64>>,
        access_log: Option<AccessLog>,
        access_query: Arc<AtomicU8>,
        limits: Limits,
    ) -> Arc<Gateway> {
        let here = std::sync::Mutex::new((
            table.generation.load(Ordering::Acquire),
            Arc::new(TableHere(crate::read(&table.table).clone())),
        ));
        Arc::new(Gateway {
            table,
            here,
            changed,
            access_log,
            access_query,
            upstreams: Upstreams::new(limits.upstream_connect),
            h1_conns: h1::Conns::default(),
            h1_pipes: h1::Pipes::default(),
            deadlines: std::sync::OnceLock::new(),
            limits,
            id_prefix: balance::thread_random(),
            ids: AtomicU64::new(0),
        })
    }

    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        crate::read(&self.table.table).clone()
    }

    /// The current table as this thread holds it: no lock or count that
    /// other cores share is written (a load of the generation, then this
    /// thread's own copy; the shared table is read only after a change).
    pub(crate) fn table_here(&self) -> Arc<TableHere> {
        let generation = self.table.generation.load(Ordering::Acquire);
        let mut here = crate::lock(&self.here);
        if here.0 != generation {
            *here = (generation, Arc::new(TableHere(self.table())));
        }
        here.1.clone()
    }

    /// Replaces the table at once: requests already routed finish on the old one.
    pub fn set_table(&self, table: Table) {
        *crate::write(&self.table.table) = Arc::new(table);
        // After the table: a thread that sees the new generation reads a
        // table at least as new.
        self.table.generation.fetch_add(1, Ordering::Release);
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }
}
