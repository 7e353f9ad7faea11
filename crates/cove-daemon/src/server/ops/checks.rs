//! What commands on a running app check first: that it runs, and that the
//! services they name are the app's.

use std::sync::Arc;

use hyper::StatusCode;

use crate::server::registry::{Daemon, Project, Running};
use crate::server::reply::{Answer, error};

/// Checks `names` against the app; empty means all of its services.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
pub(super) fn known(run: &Running, names: &[String]) -> Result<Vec<String>, Answer> {
    let Some(desired) = &run.desired else {
        return Err(error(
            StatusCode::CONFLICT,
            "the app is not running",
            Some("start it with `cove up -d`".into()),
        ));
    };
    if let Some(unknown) = names
        .iter()
        .find(|s| !desired.app.services.contains_key(*s))
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no such service `{unknown}`"),
            Some(desired.app.services_hint()),
        ));
    }
    Ok(if names.is_empty() {
        desired.app.services.keys().cloned().collect()
    } else {
        names.to_vec()
    })
}

/// The project of `key`, or the answer that it runs nothing.
#[allow(clippy::result_large_err)] // an HTTP answer, built once per request
pub(super) fn running_project(daemon: &Daemon, key: &str) -> Result<Arc<Project>, Answer> {
    daemon.existing(key).ok_or_else(|| {
        error(
            StatusCode::CONFLICT,
            "the app is not running",
            Some("start it with `cove up -d`".into()),
        )
    })
}
