//! Work that must not run on the runtime's workers, which answer every
//! request: durable store commits (redb syncs the file), filesystem and
//! PATH probes (planning), sleeps. [`blocking`] runs it on tokio's
//! blocking pool; the store's writes have their wrappers here, so a
//! handler never calls a committing [`Store`] method itself.
//!
//! Reads of the store (a read transaction over pages the kernel caches)
//! stay where they are.

use std::sync::Arc;

use crate::store::{Desired, Revision, Store, StoreError};

/// `f()` on the blocking pool. A panic in `f` goes on in the caller, as
/// it would have had `f` run there (a request's task answers 500).
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime shuts down, which drops the caller too.
        Err(e) => panic!("blocking work cancelled: {e}"),
    }
}

/// [`Store::set_desired`], committed off the workers.
pub(super) async fn set_desired(
    store: &Arc<Store>,
    project: &str,
    desired: Option<&Desired>,
) -> Result<(), StoreError> {
    let (store, project, desired) = (store.clone(), project.to_string(), desired.cloned());
    blocking(move || store.set_desired(&project, desired.as_ref())).await
}

/// [`Store::add_revision`], committed off the workers.
pub(super) async fn add_revision(
    store: &Arc<Store>,
    project: &str,
    service: &str,
    rev: Revision,
) -> Result<(), StoreError> {
    let (store, project, service) = (store.clone(), project.to_string(), service.to_string());
    blocking(move || store.add_revision(&project, &service, &rev)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn blocking_work_leaves_the_worker_free() {
        // On a one-thread runtime a sleep on the worker would hold the
        // ticker; on the blocking pool the ticker goes on meanwhile.
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        blocking(|| std::thread::sleep(std::time::Duration::from_millis(200))).await;
        ticker.abort();
        assert!(
            ticks.load(std::sync::atomic::Ordering::SeqCst) >= 5,
            "the worker was held"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_goes_on_in_the_caller() {
        let caught = tokio::spawn(blocking(|| panic!("boom"))).await;
        let payload = caught.unwrap_err().into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let desired = Desired {
            app: cove_spec::App::default(),
            project_dir: "/p".into(),
            wanted: vec!["db".into()],
            orphans: vec![],
            scale: Default::default(),
            pinned: Default::default(),
            identity: None,
        };
        set_desired(&store, "/p/.cove", Some(&desired))
            .await
            .unwrap();
        assert_eq!(store.desired("/p/.cove").unwrap(), Some(desired));
        let rev = Revision {
            number: 1,
            time_ms: 1,
            message: String::new(),
            digest: String::new(),
            program: None,
            config: serde_json::json!({}),
        };
        add_revision(&store, "/p/.cove", "db", rev.clone())
            .await
            .unwrap();
        assert_eq!(store.revisions("/p/.cove", "db").unwrap(), [rev]);
        set_desired(&store, "/p/.cove", None).await.unwrap();
        assert_eq!(store.desired("/p/.cove").unwrap(), None);
    }
}
