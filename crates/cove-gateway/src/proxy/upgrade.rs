//! Upgraded connections (WebSocket and others): bytes both ways.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::{Body, Gateway};
use crate::answer::plain;
use crate::deadline::Deadlines;
use crate::headers::{is_websocket, strip_hop_by_hop};
use crate::table;
use crate::upstream::SendError;

impl Gateway {
    /// Forwards an upgrade request on a connection of its own; on `101`,
    /// joins the two upgraded streams (bytes both ways, the target counting
    /// it in flight until either side closes) and answers the client `101`.
    pub(super) async fn upgrade(
        &self,
        target: Arc<table::Target>,
        req: Request<Body>,
        guard: table::InFlight,
        client_side: hyper::upgrade::OnUpgrade,
        service: &str,
    ) -> Response<Body> {
        let deadline = self
            .deadlines
            .get_or_init(Deadlines::new)
            .start(self.limits.upstream_response);
        let sent = tokio::select! {
            r = self.upstreams.send_upgrade(target.addr, req) => r,
            _ = deadline.expired() => {
                return plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("cove gateway: {service} ({}) did not answer the upgrade\n", target.addr),
                );
            }
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, SendError::Connect(..)) {
                    target.record(table::Outcome::ConnectFailed, table::now_ms());
                }
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("cove gateway: {service} ({}): {e}\n", target.addr),
                );
            }
        };
        let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let why = if switched {
            // To WebSocket, what was asked, or to nothing.
            (!resp
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|v| is_websocket(v.as_bytes())))
            .then(|| "switched to another protocol than WebSocket".to_string())
        } else {
            super::tries::ambiguous(&resp)
        };
        if let Some(why) = why {
            // Never passed on (the connection is its own: dropped, closed).
            target.record(table::Outcome::ServerError, table::now_ms());
            return plain(
                StatusCode::BAD_GATEWAY,
                &format!("cove gateway: {service} ({}): {why}\n", target.addr),
            );
        }
        target.record(table::Outcome::Ok, table::now_ms());
        if !switched {
            // Refused: an ordinary answer.
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, crate::upstream::holding(body, guard));
        }
        let upstream_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let _guard = guard;
            if let (Ok(client), Ok(upstream)) = tokio::join!(client_side, upstream_side) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(upstream),
                )
                .await;
            }
        });
        // The 101 with its `Upgrade`/`Connection` headers, as the upstream
        // sent them.
        let (parts, _) = resp.into_parts();
        Response::from_parts(
            parts,
            http_body_util::Empty::new().map_err(|n| match n {}).boxed(),
        )
    }
}
