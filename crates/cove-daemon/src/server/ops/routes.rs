//! `GET /v1/routes`: the project's gateway table, as `cove routes` shows it.

use hyper::StatusCode;

use crate::gateway::ProjectGateway;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};

/// The routes of `key`'s gateway, or a conflict when it has none running.
pub(in crate::server) fn routes(daemon: &Daemon, key: &str) -> Answer {
    let routes = daemon.existing(key).and_then(|p| {
        let gateway = crate::lock(&p.gateway);
        gateway.as_ref().map(ProjectGateway::describe)
    });
    match routes {
        Some(r) => json(StatusCode::OK, &r),
        None => error(
            StatusCode::CONFLICT,
            "the app's gateway is not running",
            None,
        ),
    }
}
