//! `GET /v1/history?service=NAME`: a service's recorded revisions.

use hyper::StatusCode;

use crate::api::{History, RevisionInfo};
use crate::server::offload::blocking;
use crate::server::registry::Daemon;
use crate::server::reply::{Answer, error, json};
use crate::server::revisions::current_revision;

/// `cove history SERVICE`.
pub(in crate::server) async fn history(daemon: &Daemon, key: &str, query: &str) -> Answer {
    let service = query
        .split('&')
        .find_map(|p| p.strip_prefix("service="))
        .unwrap_or_default()
        .to_string();
    // With whether each one's program is still kept (a file probe).
    let revs = {
        let (store, key, service) = (daemon.store.clone(), key.to_string(), service.clone());
        blocking(move || {
            let revs = store.revisions(&key, &service)?;
            Ok::<_, crate::store::StoreError>(
                revs.into_iter()
                    .map(|r| {
                        let kept = r.program.as_ref().is_some_and(|p| p.is_file());
                        (r, kept)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await
    };
    let revs = match revs {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    let (current, pinned) = match daemon.existing(key) {
        Some(p) => {
            let (_, desired) = p.view();
            (
                current_revision(&p.states.borrow(), &service),
                desired
                    .as_ref()
                    .and_then(|d| d.pinned.get(&service).copied()),
            )
        }
        None => (None, None),
    };
    if revs.is_empty() && current.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("`{service}` has no recorded revision"),
            Some("a revision is recorded when a service starts or is deployed".into()),
        );
    }
    json(
        StatusCode::OK,
        &History {
            service,
            current,
            revisions: revs
                .into_iter()
                .map(|(r, kept)| RevisionInfo {
                    number: r.number,
                    time_ms: r.time_ms,
                    message: r.message,
                    digest: r.digest,
                    kept,
                    pinned: pinned == Some(r.number),
                })
                .collect(),
        },
    )
}
