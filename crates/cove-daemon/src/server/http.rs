//! Where a request comes in: [`answer`] runs [`handle`] in a task of its
//! own; [`handle`] reads the project header and the body (bounded by
//! [`MAX_BODY`]) and routes each `(method, path)` to its handler in
//! [`crate::server::ops`].

use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::api::{DeployRequest, KillRequest, Names, RollbackRequest, ScaleRequest, UpRequest};
use crate::server::log::log;
use crate::server::ops::act::{exec_target, kill, pause};
use crate::server::ops::control::{Verb, control};
use crate::server::ops::deploy::deploy;
use crate::server::ops::down::down;
use crate::server::ops::events::events;
use crate::server::ops::history::history;
use crate::server::ops::logs::logs;
use crate::server::ops::ps::ps;
use crate::server::ops::rollback::rollback;
use crate::server::ops::routes::routes;
use crate::server::ops::scale::scale;
use crate::server::ops::status::status;
use crate::server::ops::up::up;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error};
use crate::server::tasks::caught;

/// Largest request body the API takes (an `up` carries the whole App
/// model, far smaller); a larger one is answered 413 without being read.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// [`handle`], in a task of its own: a panic in it (a bug) costs this
/// request only, answered 500 with the panic's message (also logged); the
/// daemon goes on serving. The task goes with the connection, as the
/// handler would.
pub(super) async fn answer(daemon: Arc<Daemon>, req: Request<Incoming>) -> Answer {
    let what = format!("{} {}", req.method(), req.uri().path());
    match caught(async move { handle(&daemon, req).await }).await {
        Ok(a) => a,
        Err(why) => {
            log(&format!("{what} failed: {why}"));
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the daemon failed on {what}: {why}"),
                Some(
                    "the daemon still runs; its log (.cove/daemon.log) says more: please report it"
                        .into(),
                ),
            )
        }
    }
}

async fn handle(daemon: &Daemon, req: Request<Incoming>) -> Answer {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let key = req
        .headers()
        .get(crate::PROJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::decode_header);
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body of {method} {path} is larger than the daemon takes ({MAX_BODY} bytes)"
            ),
            Some("an app this large is not expected; check what sends it".into()),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), None),
    };
    macro_rules! parse {
        ($t:ty) => {
            match serde_json::from_slice::<$t>(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("bad request body for {method} {path}: {e}"),
                        None,
                    )
                }
            }
        };
    }
    if (method.clone(), path.as_str()) == (Method::GET, "/v1/status") {
        return status(daemon, key.as_deref());
    }
    if (method.clone(), path.as_str()) == (Method::GET, "/v1/projects") {
        return crate::server::ops::ps::projects(daemon);
    }
    let Some(key) = key else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{method} {path} needs the `{}` header",
                crate::PROJECT_HEADER
            ),
            None,
        );
    };
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/ps") => ps(daemon, &key),
        (Method::GET, "/v1/events") => events(daemon, &key, &query).await,
        (Method::GET, "/v1/logs") => logs(daemon, &key, &query).await,
        (Method::GET, "/v1/routes") => routes(daemon, &key),
        (Method::GET, "/v1/previews") => crate::server::previews::list(daemon, &key).await,
        (Method::POST, "/v1/preview/sleep") => {
            crate::server::previews::sleep(daemon, &key, parse!(crate::api::PreviewSleep)).await
        }
        (Method::POST, "/v1/up") => up(daemon, &key, parse!(UpRequest)).await,
        (Method::POST, "/v1/stop") => control(daemon, &key, parse!(Names), Verb::Stop).await,
        (Method::POST, "/v1/start") => control(daemon, &key, parse!(Names), Verb::Start).await,
        (Method::POST, "/v1/restart") => control(daemon, &key, parse!(Names), Verb::Restart).await,
        (Method::POST, "/v1/down") => down(daemon, &key, parse!(Names)).await,
        (Method::POST, "/v1/deploy") => deploy(daemon, &key, parse!(DeployRequest)).await,
        (Method::POST, "/v1/scale") => scale(daemon, &key, parse!(ScaleRequest)).await,
        (Method::POST, "/v1/rollback") => rollback(daemon, &key, parse!(RollbackRequest)).await,
        (Method::GET, "/v1/history") => history(daemon, &key, &query).await,
        (Method::POST, "/v1/kill") => kill(daemon, &key, parse!(KillRequest)).await,
        (Method::POST, "/v1/pause") => pause(daemon, &key, parse!(Names), true).await,
        (Method::POST, "/v1/unpause") => pause(daemon, &key, parse!(Names), false).await,
        (Method::GET, "/v1/exec") => exec_target(daemon, &key, &query),
        (Method::GET, "/v1/backups") => crate::server::backups::status(daemon, &key),
        (Method::POST, "/v1/backups/outcome") => {
            crate::server::backups::outcome(daemon, &key, parse!(crate::api::BackupOutcome))
        }
        (Method::GET, "/v1/alerts") => crate::server::alerts::list(daemon, &key).await,
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such API call: {method} {path}"),
            None,
        ),
    }
}
