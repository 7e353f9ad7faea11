//! The CLI's side of the API: one HTTP/1.1 request per connection over the
//! daemon's Unix socket, and starting the daemon when it is not running;
//! or, for another host's daemon ([`Client::over`]), requests over one
//! connection through ssh ([`crate::remote`]).

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::Paths;
use crate::api::{ApiError, DaemonStatus};

/// How long a request may take (stopping services waits for their grace
/// periods, so this is generous).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a starting daemon has to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub enum ClientError {
    /// No daemon answers on the socket.
    NotRunning,
    /// The daemon answered with an error.
    Api { status: StatusCode, error: ApiError },
    /// Anything else (I/O, bad answers, timeouts), in words.
    Other(String),
    /// Another host's daemon could not be reached (ssh failed, no cove or
    /// no daemon there): what happened and what to do.
    Unreachable(crate::remote::Failure),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning => f.write_str("cove is not running for this app"),
            ClientError::Api { error, .. } => f.write_str(&error.error),
            ClientError::Other(s) => f.write_str(s),
            ClientError::Unreachable(failure) => f.write_str(&failure.error),
        }
    }
}

impl std::error::Error for ClientError {}

#[derive(Debug, Clone)]
pub struct Client {
    /// The daemon's files.
    pub paths: Paths,
    /// The project its calls are about (its state directory).
    pub project: String,
    /// Whether the daemon is the host's (started with `--host`).
    pub host: bool,
    /// Another host's daemon, reached over ssh (then `paths` are not
    /// this machine's and nothing is started here).
    pub remote: Option<std::sync::Arc<crate::remote::Remote>>,
}

impl Client {
    pub fn new(paths: Paths, project: String, host: bool) -> Client {
        Client {
            paths,
            project,
            host,
            remote: None,
        }
    }

    /// The host daemon of `remote`, about the project `key` there (its
    /// state directory on that host; empty for calls about none).
    pub fn over(remote: std::sync::Arc<crate::remote::Remote>, key: String) -> Client {
        Client {
            paths: Paths::new(std::path::Path::new("/nonexistent/remote")),
            project: key,
            host: true,
            remote: Some(remote),
        }
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>, REQUEST_TIMEOUT)
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body), REQUEST_TIMEOUT)
            .await
    }

    /// `POST path`, waiting up to `timeout` for the answer (a deploy).
    pub async fn post_for<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body), timeout).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let other = |what: &str, e: &dyn std::fmt::Display| {
            ClientError::Other(format!("{what} {method} {path}: {e}"))
        };
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| other("cannot encode", &e))?,
            None => Vec::new(),
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", "cove")
            .header("content-type", "application/json")
            .header(crate::PROJECT_HEADER, crate::encode_header(&self.project))
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| other("cannot build", &e))?;
        if let Some(remote) = &self.remote {
            let exchange = async {
                let response = remote
                    .send(request)
                    .await
                    .map_err(ClientError::Unreachable)?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| other("failed:", &e))?
                    .to_bytes();
                Ok::<_, ClientError>((status, body))
            };
            let (status, body) = tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| other("no answer within", &format!("{timeout:?} for")))??;
            return answer(status, &body).map_err(|e| match e {
                ClientError::Other(why) => other("bad answer to", &why),
                e => e,
            });
        }
        let socket = self.paths.socket();
        let stream = match UnixStream::connect(&socket).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ClientError::NotRunning);
            }
            Err(e) => {
                return Err(ClientError::Other(format!(
                    "cannot reach the daemon at {}: {e}",
                    socket.display()
                )));
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| other("cannot send", &e))?;
        let conn = tokio::spawn(conn);
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| other("no answer within", &format!("{timeout:?} for")))?
            .map_err(|e| other("failed:", &e))?;
        conn.abort();
        answer(status, &body).map_err(|e| match e {
            ClientError::Other(why) => other("bad answer to", &why),
            e => e,
        })
    }

    /// The daemon's status, or `None` when none runs.
    pub async fn status(&self) -> Result<Option<DaemonStatus>, ClientError> {
        match self.get("/v1/status").await {
            Ok(s) => Ok(Some(s)),
            Err(ClientError::NotRunning) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Connects to the daemon, starting it (`exe __daemon --state-dir DIR`,
    /// its output appended to `daemon.log`) when none runs.
    /// Another host's daemon is never started from here: asked only.
    pub async fn ensure_running(&self, exe: &Path) -> Result<DaemonStatus, ClientError> {
        if self.remote.is_some() {
            return self.get("/v1/status").await;
        }
        // Asked past an exiting daemon: when none is left, one is started.
        if let Some(s) = past_exit(|| self.status()).await? {
            return Ok(s);
        }
        let socket = self.paths.socket();
        if socket.as_os_str().len() > 100 {
            return Err(ClientError::Other(format!(
                "the daemon's socket path {} is too long for a Unix socket (at most 100 bytes); \
                 hint: set `x-cove: {{state_dir: ...}}` to a shorter directory",
                socket.display()
            )));
        }
        cove_runtime::private::make_dir(&self.paths.state_dir)
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let log = cove_runtime::private::append_file(&self.paths.log())
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("__daemon")
            .arg("--state-dir")
            .arg(&self.paths.state_dir);
        if self.host {
            cmd.arg("--host");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(log.into_parts().0)
            .stderr(log2.into_parts().0)
            .spawn()
            .map_err(|e| {
                ClientError::Other(format!("cannot start the daemon ({}): {e}", exe.display()))
            })?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(s) = self.status().await? {
                return Ok(s);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Another CLI may have started one at the same moment.
                if let Some(s) = self.status().await? {
                    return Ok(s);
                }
                return Err(ClientError::Other(format!(
                    "the daemon exited ({status}) before answering; its log, {}, ends with:\n{}",
                    self.paths.log().display(),
                    tail(&self.paths.log(), 10)
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Other(format!(
                    "the daemon did not answer on {} within {START_TIMEOUT:?}; see {}",
                    socket.display(),
                    self.paths.log().display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An answer's body as `T`, or the daemon's error.
fn answer<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        let error = serde_json::from_slice(body).unwrap_or_else(|_| ApiError {
            error: format!("{status}: {}", String::from_utf8_lossy(body)),
            hint: None,
        });
        return Err(ClientError::Api { status, error });
    }
    serde_json::from_slice(body).map_err(|e| ClientError::Other(e.to_string()))
}

/// `call` to the daemon, made again (for 5 s at most) while its connection
/// breaks: a daemon that is exiting (nothing left to run) drops what it
/// had not accepted yet, and asked again it is gone (its socket removed:
/// `NotRunning`) or another answers.
pub async fn past_exit<T, F: std::future::Future<Output = Result<T, ClientError>>>(
    mut call: impl FnMut() -> F,
) -> Result<T, ClientError> {
    let finishing = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match call().await {
            Err(ClientError::Other(_)) if tokio::time::Instant::now() < finishing => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answer => return answer,
        }
    }
}

/// The last `n` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs_err::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
