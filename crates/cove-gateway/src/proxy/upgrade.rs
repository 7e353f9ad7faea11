//! Upgraded connections (WebSocket and others): bytes both ways.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{Body, Gateway};
use crate::answer::plain;
use crate::deadline::Deadlines;
use crate::headers::strip_hop_by_hop;
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
        target.record(table::Outcome::Ok, table::now_ms());
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
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
