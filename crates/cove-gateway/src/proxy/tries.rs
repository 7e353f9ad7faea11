//! The tries of one request: on one target of its pool after another
//! until one answers, then on the same route's pool in a newer table while
//! no target got it (every one refused the connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt as _, Full};
use hyper::header;
use hyper::{Request, Response, StatusCode};

use super::forward::{Outgoing, Replay, Terms};
use super::handle::Served;
use super::{Body, Gateway, Hold, Routed};
use crate::answer::{closing, plain, timed_out, too_large};
use crate::balance;
use crate::deadline::{Deadline, Deadlines};
use crate::headers::{fields, framing, strip_hop_by_hop};
use crate::table::{self, Pool, Target};
use crate::upstream::SendError;

/// One try: a target of a pool; `more`: another try may follow.
struct Try<'a> {
    pool: &'a Pool,
    target: &'a Arc<Target>,
    more: bool,
}

/// What comes after one try.
enum Next {
    /// This is the client's answer.
    Answer(Response<Body>),
    /// The request goes to another target; `reached`: the one just tried
    /// got it (and died under it).
    Retry { req: Request<Body>, reached: bool },
}

/// Where the tries of one request are. A request that could not be sent
/// (no connection) goes to each other target in turn (each failed one is
/// ejected, so it is not picked again); so does one sent to a target that
/// died under it, when it is idempotent and has no body (as nginx does).
struct Tries {
    /// The pool tried: the route's, or the same route's in a newer table
    /// (after every target failed, see [`Gateway::after_failures`]).
    pool: Arc<Pool>,
    attempts: usize,
    attempt: usize,
    rounds: u32,
    /// The target that just failed.
    avoid: Option<SocketAddr>,
    /// A target got the request (and died under it).
    reached: bool,
}

impl Tries {
    fn new(pool: Arc<Pool>) -> Tries {
        let attempts = pool.targets.len().clamp(2, 8);
        Tries {
            pool,
            attempts,
            attempt: 0,
            rounds: 0,
            avoid: None,
            reached: false,
        }
    }

    /// The next round, on a newer table's pool.
    fn again_on(&mut self, pool: Arc<Pool>) {
        self.attempts = pool.targets.len().clamp(2, 8);
        self.pool = pool;
        (self.attempt, self.avoid) = (0, None);
    }
}

impl Gateway {
    /// Tries the targets of `pool` (the pool of the route `at`, for its
    /// preview key; then the same route's in newer tables while no target
    /// got the request) until one answers.
    #[inline]
    pub(super) async fn send(
        &self,
        at: &Routed<'_>,
        pool: Arc<Pool>,
        out: Outgoing,
        served: &mut Served,
    ) -> Response<Body> {
        let Outgoing {
            mut req,
            mut upgrade,
            terms,
        } = out;
        let mut random = balance::thread_random;
        let mut tries = Tries::new(pool);
        let mut held = Hold::default();
        loop {
            if tries.attempt == tries.attempts {
                // Every target failed to take a request that no target got:
                // replicas that died are on their way out of the table.
                tries.rounds += 1;
                if tries.reached {
                    break;
                }
                match self.after_failures(at, &mut held, tries.rounds).await {
                    Some(newer) => {
                        tries.again_on(newer);
                        continue;
                    }
                    None => break,
                }
            }
            let current = tries.attempt;
            tries.attempt += 1;
            let pool = &tries.pool;
            let now = table::now_ms();
            pool.usage.touch(now);
            let Some(target) = balance::pick(pool, tries.avoid, now, &mut random).cloned() else {
                if current > 0 {
                    tries.attempt = tries.attempts; // no other target to try
                    continue;
                }
                let why = self.no_target(pool);
                return closing(
                    plain(StatusCode::SERVICE_UNAVAILABLE, &why),
                    terms.replayable,
                );
            };
            served.target = Some(target.addr);
            if let Some(client_side) = upgrade.take() {
                // The target counts the request until the upgraded
                // connection closes.
                let guard = target.begin();
                return self
                    .upgrade(target, req, guard, client_side, &pool.name)
                    .await;
            }
            let at = Try {
                pool,
                target: &target,
                more: tries.attempt < tries.attempts,
            };
            match self.try_target(&at, req, &terms, served).await {
                Next::Answer(resp) => return resp,
                Next::Retry {
                    req: again,
                    reached,
                } => {
                    req = again;
                    tries.reached |= reached;
                    tries.avoid = Some(target.addr);
                }
            }
        }
        served.upstream_failed = true;
        closing(
            plain(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "cove gateway: no target of `{}` could be reached\n",
                    tries.pool.name
                ),
            ),
            terms.replayable,
        )
    }

    /// Why `pool` has no target for a request (the 503's text).
    pub(super) fn no_target(&self, pool: &Pool) -> String {
        if let Some(why) = &pool.unavailable {
            format!("cove gateway: {why}\n")
        } else if pool.wake.is_some() {
            format!(
                "cove gateway: `{}` was scaled to zero and no replica was ready within {:?}\n",
                pool.name, self.limits.hold
            )
        } else {
            format!("cove gateway: no healthy target for `{}`\n", pool.name)
        }
    }

    /// One try: `req` sent to the target and its answer awaited.
    #[inline]
    async fn try_target(
        &self,
        at: &Try<'_>,
        req: Request<Body>,
        terms: &Terms,
        served: &mut Served,
    ) -> Next {
        let Try { pool, target, more } = *at;
        // The target counts the request until its response body is done.
        let guard = target.begin();
        // Made on first use, inside the runtime that serves.
        let deadline = self.deadlines.get_or_init(Deadlines::new).start(terms.wait);
        // For the access log only: a clock read costs.
        let sent_at = self.access_log.as_ref().map(|_| Instant::now());
        let send = async {
            if pool.http2 {
                self.upstreams.send_h2(target.addr, req, guard).await
            } else {
                self.upstreams.send(target.addr, req, guard).await
            }
        };
        let stalled = async {
            match &terms.stalled {
                Some(s) => s.notified().await,
                None => std::future::pending().await,
            }
        };
        // The active health check finds the target down (its link is
        // gone: no answer will come): a request that may be sent again
        // leaves it for another target.
        let may_leave = more && terms.again.is_some();
        let sent = tokio::select! {
            r = send => Ok(r),
            _ = deadline.expired() => Err(Cut::Deadline),
            _ = terms.over.notified() => Err(Cut::TooLarge),
            _ = stalled => Err(Cut::Stalled),
            _ = target.gone_down(), if may_leave => Err(Cut::Down),
        };
        served.upstream = sent_at.map(|t| t.elapsed());
        let failed = || target.record(table::Outcome::ConnectFailed, table::now_ms());
        match sent {
            Ok(Ok(resp)) => self.answered(resp, at, terms, &deadline, served).await,
            Ok(Err(SendError::Connect(_, req))) => {
                failed();
                // Nothing was sent: the same request, to another target.
                Next::Retry {
                    req: *req,
                    reached: false,
                }
            }
            Ok(Err(SendError::Upstream(e))) if e.is_user() => {
                // The client's own body failed as it was passed on (bad
                // chunked framing, or the client went away): the client's
                // fault, not the target's.
                let why = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |cause| cause.to_string());
                Next::Answer(closing(
                    plain(
                        StatusCode::BAD_REQUEST,
                        &format!("cove gateway: the request's body could not be read: {why}\n"),
                    ),
                    false,
                ))
            }
            Ok(Err(SendError::Upstream(_))) if more && let Some(again) = &terms.again => {
                failed();
                // It reached a target that died under it: never sent
                // again to replicas still to come (it may be what killed
                // it).
                Next::Retry {
                    req: replay(again),
                    reached: true,
                }
            }
            Ok(Err(e)) => {
                if matches!(e, SendError::Connect(..)) {
                    failed();
                }
                served.upstream_failed = true;
                Next::Answer(closing(
                    plain(
                        StatusCode::BAD_GATEWAY,
                        &format!("cove gateway: {} ({}): {e}\n", pool.name, target.addr),
                    ),
                    terms.replayable,
                ))
            }
            Err(Cut::TooLarge) => Next::Answer(too_large(terms.max_body.unwrap_or_default())),
            // The client's fault: neither an upstream error nor a mark
            // against the target.
            Err(Cut::Stalled) => Next::Answer(closing(
                plain(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "cove gateway: the request's body stopped coming for {:?}\n",
                        self.limits.body_read
                    ),
                ),
                false,
            )),
            Err(Cut::Down) => match &terms.again {
                Some(again) => Next::Retry {
                    req: replay(again),
                    reached: true,
                },
                None => unreachable!("only requests that may be sent again leave a target"),
            },
            Err(Cut::Deadline) => {
                served.upstream_failed = true;
                Next::Answer(closing(
                    timed_out(&pool.name, target.addr, terms.wait),
                    terms.replayable,
                ))
            }
        }
    }

    /// A target's answer, passed on. A small answer to a request that may
    /// be sent again is read whole first: a target dying between its head
    /// and its body then costs a retry, not a broken answer.
    #[inline]
    async fn answered(
        &self,
        mut resp: Response<Body>,
        at: &Try<'_>,
        terms: &Terms,
        deadline: &Deadline,
        served: &mut Served,
    ) -> Next {
        let Try { pool, target, more } = *at;
        if let Some(why) = ambiguous(&resp) {
            // Never passed on: its end is not known, so neither is where
            // a next answer would start (response splitting). Dropped
            // unread, its connection is closed, not pooled.
            drop(resp);
            target.record(table::Outcome::ServerError, table::now_ms());
            served.upstream_failed = true;
            return Next::Answer(closing(
                plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("cove gateway: {} ({}): {why}\n", pool.name, target.addr),
                ),
                terms.replayable,
            ));
        }
        if more
            && small(&resp)
            && let Some(again) = &terms.again
        {
            let (parts, body) = resp.into_parts();
            let whole = tokio::select! {
                b = body.collect() => Some(b.ok()),
                _ = deadline.expired() => None,
            };
            match whole {
                Some(Some(b)) => {
                    resp = Response::from_parts(
                        parts,
                        Full::new(b.to_bytes())
                            .map_err(|never| match never {})
                            .boxed(),
                    );
                }
                Some(None) => {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                    return Next::Retry {
                        req: replay(again),
                        reached: true,
                    };
                }
                None => {
                    served.upstream_failed = true;
                    return Next::Answer(timed_out(&pool.name, target.addr, terms.wait));
                }
            }
        }
        let outcome = if resp.status().is_server_error() {
            table::Outcome::ServerError
        } else {
            table::Outcome::Ok
        };
        target.record(outcome, table::now_ms());
        strip_hop_by_hop(resp.headers_mut());
        Next::Answer(resp)
    }
}

/// Why a target's answer (to a request that asked for no upgrade) cannot
/// be passed on: ambiguous framing (RFC 9112 §6.3: `Content-Length` with
/// `Transfer-Encoding`, several lengths, a coding other than `chunked`
/// alone), or a `101` the client did not ask for.
pub(super) fn ambiguous<B>(resp: &Response<B>) -> Option<String> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Some("switched protocols unasked (101)".to_string());
    }
    framing(fields(resp.headers()))
        .err()
        .map(|e| format!("an answer with {}", e.why()))
}

/// Why a try was cut short before an answer.
enum Cut {
    /// The target did not answer in time.
    Deadline,
    /// The request's body is over the route's limit.
    TooLarge,
    /// The client stopped sending the body.
    Stalled,
    /// The active health check found the target down.
    Down,
}

/// The same bodiless request again.
fn replay((method, uri, headers): &Replay) -> Request<Body> {
    let mut req = Request::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    req
}

/// Answers read whole before they are passed on (when they may be retried).
const SMALL_ANSWER: u64 = 64 * 1024;

/// Whether `resp` says its body is at most [`SMALL_ANSWER`] bytes.
fn small(resp: &Response<Body>) -> bool {
    resp.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n <= SMALL_ANSWER)
}
