//! HTTP load for the tests across hosts: one GET on a connection of its
//! own ([`get`]), and clients sending them back to back ([`Load`]), every
//! request recorded with when it started and ended.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One `GET path` at `to` with `Host: host`, on a connection of its own:
/// the body of a 200 (trimmed), or what went wrong (the status line).
pub fn get(to: SocketAddr, path: &str, host: &str) -> Result<String, String> {
    get_with(to, path, host, "")
}

/// [`get`] with more header lines (`Name: value\r\n` each); what is not a
/// 200 comes with its body.
pub fn get_with(to: SocketAddr, path: &str, host: &str, headers: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if head.starts_with("HTTP/1.1 200 ") {
        Ok(body.trim().to_string())
    } else {
        let status = head.lines().next().unwrap_or("no answer");
        Err(if headers.is_empty() {
            status.to_string()
        } else {
            format!("{status} {}", body.trim())
        })
    }
}

/// One request of the load: when it started and ended (since the load
/// began), and what it came to.
pub struct Sample {
    pub start: Duration,
    pub end: Duration,
    pub result: Result<String, String>,
}

/// Clients sending requests back to back until [`Load::finish`], their
/// own bounds (requests each, time), or the load being dropped (also when
/// the test panics).
pub struct Load {
    pub began: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` threads, each sending `request()` at most
    /// `per_client` times and for at most `max`.
    pub fn start(
        clients: usize,
        per_client: usize,
        max: Duration,
        request: impl Fn() -> Result<String, String> + Send + Clone + 'static,
    ) -> Load {
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (stop, samples, request) = (stop.clone(), samples.clone(), request.clone());
                std::thread::spawn(move || {
                    for _ in 0..per_client {
                        if stop.load(Ordering::Relaxed) || began.elapsed() > max {
                            return;
                        }
                        let start = began.elapsed();
                        let result = request();
                        let end = began.elapsed();
                        samples.lock().unwrap().push(Sample { start, end, result });
                    }
                })
            })
            .collect();
        Load {
            began,
            stop,
            samples,
            clients,
        }
    }

    /// The samples so far.
    pub fn samples(&self) -> MutexGuard<'_, Vec<Sample>> {
        self.samples.lock().unwrap()
    }

    /// Stops the clients and waits for them.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            c.join().expect("a client thread panicked");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
