//! `cove k8s wait-for`: what the init containers of [`render`](crate::render)
//! run, so that a pod starts after its `depends_on`.
//!
//! - [`tcp`]: until `HOST:PORT` accepts a TCP connection (the name is
//!   resolved again on every try: the Service may not exist yet);
//! - [`job`]: until the Job has the condition `Complete` (through the
//!   API, with the pod's service account); a Job that has `Failed` ends
//!   the wait with an error at once.
//!
//! Both are bounded by a deadline; the init container then exits 1 and
//! the kubelet retries it (restartPolicy Always/OnFailure) or the pod
//! fails (Never).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between tries.
const PAUSE: Duration = Duration::from_millis(500);
/// How often a "still waiting" line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Waits until `addr` (`HOST:PORT`) accepts a TCP connection, or
/// `deadline`. `progress` gets a line now and then while it waits.
pub fn tcp(addr: &str, deadline: Instant, mut progress: impl FnMut(&str)) -> Result<(), String> {
    let started = Instant::now();
    let mut last_said = started;
    let mut last_error;
    loop {
        match try_connect(addr) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = e,
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "{addr} did not accept a connection within {}s: {last_error}",
                (now - started).as_secs()
            ));
        }
        if now - last_said >= PROGRESS_EVERY {
            last_said = now;
            progress(&format!(
                "waiting for {addr} ({}s): {last_error}",
                (now - started).as_secs()
            ));
        }
        std::thread::sleep(PAUSE.min(deadline - now));
    }
}

fn try_connect(addr: &str) -> Result<(), String> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve it: {e}"))?
        .collect();
    let mut error = "it resolves to no address".to_string();
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => error = format!("{a}: {e}"),
        }
    }
    Err(error)
}

/// A client of the API server kubectl would use (`KUBECONFIG`,
/// `~/.kube/config`), or, in a pod, of its cluster (service account).
pub async fn client() -> Result<kube::Client, String> {
    // rustls cannot choose between ring and aws-lc-rs (both are in the
    // workspace's tree): ring. Err: already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube::Client::try_default()
        .await
        .map_err(|e| format!("no Kubernetes API to read the Jobs from: {e}"))
}

/// Waits until Job `name` (in `namespace`, else the client's default)
/// completes, or `deadline`.
pub async fn job(
    client: kube::Client,
    namespace: Option<&str>,
    name: &str,
    deadline: Instant,
    mut progress: impl FnMut(&str),
) -> Result<(), String> {
    let jobs: kube::Api<Job> = match namespace {
        Some(ns) => kube::Api::namespaced(client, ns),
        None => kube::Api::default_namespaced(client),
    };
    let started = Instant::now();
    let mut last_said = started;
    let mut state;
    loop {
        match jobs.get_opt(name).await {
            Ok(Some(job)) => match outcome(&job) {
                Outcome::Complete => return Ok(()),
                Outcome::Failed(why) => return Err(format!("Job {name} failed: {why}")),
                Outcome::Running => state = "has not completed".to_string(),
            },
            Ok(None) => state = "does not exist yet".to_string(),
            Err(kube::Error::Api(e)) if e.code == 403 => {
                return Err(format!(
                    "may not read Job {name}: {}\n  hint: the pod's service account needs `get` on jobs (cove k8s render gives the waiting pods one)",
                    e.message
                ));
            }
            Err(e) => state = format!("cannot be read: {e}"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "Job {name} did not complete within {}s: it {state}",
                (now - started).as_secs()
            ));
        }
        if now - last_said >= PROGRESS_EVERY {
            last_said = now;
            progress(&format!(
                "waiting for Job {name} ({}s): it {state}",
                (now - started).as_secs()
            ));
        }
        tokio::time::sleep((PAUSE * 2).min(deadline - now)).await;
    }
}

enum Outcome {
    Complete,
    Failed(String),
    Running,
}

fn outcome(job: &Job) -> Outcome {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten();
    for c in conditions {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return Outcome::Complete,
            "Failed" => {
                return Outcome::Failed(
                    [c.reason.clone(), c.message.clone()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": "),
                );
            }
            _ => {}
        }
    }
    Outcome::Running
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_waits_for_a_listener_that_appears_later() {
        // A free port: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let listener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            // Accept the waiter's connection, then stop.
            let _ = l.accept();
        });
        let started = Instant::now();
        let result = tcp(&addr, Instant::now() + Duration::from_secs(60), |_| {});
        assert_eq!(result, Ok(()));
        assert!(
            started.elapsed() >= Duration::from_millis(1000),
            "it returned before the listener existed"
        );
        listener.join().unwrap();
    }

    #[test]
    fn tcp_gives_up_at_the_deadline() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = tcp(
            &format!("127.0.0.1:{port}"),
            Instant::now() + Duration::from_secs(1),
            |_| {},
        )
        .unwrap_err();
        assert!(e.contains("did not accept a connection"), "{e}");
    }
}
