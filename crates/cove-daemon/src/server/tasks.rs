//! Work that survives a panic: a request's handler in a task of its own
//! ([`caught`]), background tasks run again after a pause
//! ([`spawn_restarting`]), a step given up ([`survive`]). What a panic said
//! goes to daemon.log.

use std::time::Duration;

/// Pause before a background task that panicked runs again; doubled after
/// each panic that came soon after the last, up to [`MAX_RESTART_PAUSE`]
/// (a task that panics on every turn fills daemon.log slowly).
const RESTART_PAUSE: Duration = Duration::from_millis(500);

/// Longest pause before a background task that panicked runs again.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(30);

/// A run of a background task this long starts its pauses afresh.
const RESTART_RESET: Duration = Duration::from_secs(60);

/// What a panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` as a task of its own: its output, or the message of the
/// panic that ended it. Dropped before it ends, the task is aborted.
pub(super) async fn caught<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    let task = tokio::spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    task.await.map_err(|e| match e.try_into_panic() {
        Ok(payload) => format!("panicked: {}", panic_message(&*payload)),
        Err(e) => e.to_string(),
    })
}

/// Runs the task `make` makes, and a new one whenever it panics: `log`
/// (daemon.log) gets what the panic said, and after a pause
/// ([`RESTART_PAUSE`], doubled while it keeps panicking) it runs again, so
/// that one bad turn of a background task (the autoscaler, a project's
/// gateway updater) does not end it for the daemon's life. Ends when a
/// run ends without a panic.
pub(super) fn spawn_restarting<F, Fut>(
    what: String,
    make: F,
    log: fn(&str),
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = RESTART_PAUSE;
        loop {
            let started = tokio::time::Instant::now();
            match tokio::spawn(make()).await {
                Err(e) if e.is_panic() => {
                    if started.elapsed() > RESTART_RESET {
                        pause = RESTART_PAUSE;
                    }
                    log(&format!(
                        "{what} panicked: {}; it runs again in {pause:?}",
                        panic_message(&*e.into_panic())
                    ));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RESTART_PAUSE);
                }
                _ => break,
            }
        }
    })
}

/// `f()`, or `None` when it panicked (what the panic said goes to `log`).
pub(super) fn survive<T>(what: &str, f: impl FnOnce() -> T, log: fn(&str)) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(payload) => {
            log(&format!("{what} panicked: {}", panic_message(&*payload)));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    /// What [`spawn_restarting`] and [`survive`] logged, in order.
    static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    fn keep(line: &str) {
        crate::lock(&LOGGED).push(line.to_string());
    }

    fn logged(what: &str) -> Vec<String> {
        crate::lock(&LOGGED)
            .iter()
            .filter(|l| l.starts_with(what))
            .cloned()
            .collect()
    }

    #[test]
    fn a_background_task_that_panics_is_logged_and_runs_again() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = runs.clone();
        rt.block_on(async {
            let task = spawn_restarting(
                "the test task".into(),
                move || {
                    let runs = counted.clone();
                    async move {
                        // Twice a panic, then an end.
                        let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if n < 2 {
                            panic!("deliberate panic {n}");
                        }
                    }
                },
                keep,
            );
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the task ran again after its panics, then ended")
                .unwrap();
        });
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(
            logged("the test task"),
            [
                "the test task panicked: deliberate panic 0; it runs again in 500ms",
                "the test task panicked: deliberate panic 1; it runs again in 1s",
            ]
        );
    }

    #[test]
    fn a_handler_that_panics_costs_its_request_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let failed = caught(async {
                let services: HashMap<String, u32> = HashMap::new();
                services["gone"]
            })
            .await;
            let why = failed.unwrap_err();
            assert!(why.starts_with("panicked: "), "{why}");
            assert_eq!(caught(async { 7 }).await, Ok(7));
            // Dropped (the connection closed), its task is aborted.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let waiting = caught(async move {
                let _tx = tx;
                std::future::pending::<()>().await
            });
            let _ = tokio::time::timeout(Duration::from_millis(50), waiting).await;
            tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .expect("the task of a dropped request ends")
                .unwrap_err();
        });
    }

    #[test]
    fn a_step_that_panics_is_logged_and_given_up() {
        assert_eq!(survive("the test step", || 1, keep), Some(1));
        let lost: Option<u32> = survive(
            "the test step",
            || panic!("deliberate panic in a batch"),
            keep,
        );
        assert_eq!(lost, None);
        assert_eq!(
            logged("the test step"),
            ["the test step panicked: deliberate panic in a batch"]
        );
    }

    #[test]
    fn a_poisoned_lock_is_taken_with_its_state() {
        let m = Arc::new(std::sync::Mutex::new(vec![1]));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut v = held.lock().unwrap();
            v.push(2);
            panic!("deliberate panic holding the lock");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*crate::lock(&m), [1, 2]);
    }
}
