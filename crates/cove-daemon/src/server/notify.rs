//! Delivering one alert notification to one sink of `x-cove.notify`: a
//! webhook (`POST` of the JSON [`Notification`], or Slack's `{"text"}`),
//! a command (the JSON on stdin, [`COMMAND_LIMIT`] to exit 0), or an
//! Alertmanager (its API v2, `POST /api/v2/alerts`). Each try is bounded
//! ([`HTTP_LIMIT`], [`COMMAND_LIMIT`]) and says only whether it worked:
//! retries, backoff and what was delivered are the evaluator's
//! ([`crate::alert`]), so a sink that hangs or refuses never holds the
//! daemon.

use std::path::Path;
use std::time::Duration;

use cove_spec::xcove::{HttpUrl, NotifyFormat};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use crate::alert::Status;

/// Longest an HTTP delivery may take, connection to answer.
pub(super) const HTTP_LIMIT: Duration = Duration::from_secs(10);

/// Longest a notification command may run; then it is killed.
pub(super) const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// One notification, as a webhook and a command get it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Notification {
    /// `firing` or `resolved`.
    pub status: &'static str,
    pub alert: String,
    pub service: String,
    pub project: String,
    /// `--env NAME`, or `default`.
    pub environment: String,
    /// `when:` as written.
    pub condition: String,
    /// What the figure was (when it fired; when it resolved, why).
    pub value: String,
    /// When it fired (RFC 3339, UTC).
    pub since: String,
    /// When it resolved (RFC 3339, UTC); none while it fires.
    pub ended: Option<String>,
}

impl Notification {
    /// Slack's incoming webhooks (and Mattermost's): one line of text.
    fn slack(&self) -> serde_json::Value {
        let text = match self.ended {
            None => format!(
                "[FIRING] {} — {} of {} ({}): {} since {} ({})",
                self.alert,
                self.service,
                self.project,
                self.environment,
                self.condition,
                self.since,
                self.value
            ),
            Some(ref ended) => format!(
                "[RESOLVED] {} — {} of {} ({}): {} from {} to {} ({})",
                self.alert,
                self.service,
                self.project,
                self.environment,
                self.condition,
                self.since,
                ended,
                self.value
            ),
        };
        serde_json::json!({ "text": text })
    }

    /// Alertmanager's API v2 body: a list of one alert.
    fn alertmanager(&self, status: Status) -> serde_json::Value {
        let mut alert = serde_json::json!({
            "labels": {
                "alertname": self.alert,
                "service": self.service,
                "project": self.project,
                "environment": self.environment,
                "severity": "critical",
            },
            "annotations": {
                "summary": format!("{}: {}", self.service, self.condition),
                "description": self.value,
            },
            "startsAt": self.since,
        });
        if status == Status::Resolved
            && let Some(ended) = &self.ended
        {
            alert["endsAt"] = ended.clone().into();
        }
        serde_json::json!([alert])
    }
}

/// RFC 3339 (UTC) of milliseconds since the Unix epoch.
pub(super) fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `POST`s the notification to a webhook in `format`.
pub(super) async fn webhook(
    url: &str,
    format: NotifyFormat,
    n: &Notification,
) -> Result<(), String> {
    let body = match format {
        NotifyFormat::Json => serde_json::to_vec(n),
        NotifyFormat::Slack => serde_json::to_vec(&n.slack()),
    }
    .map_err(|e| e.to_string())?;
    post(url, None, body).await
}

/// Posts the alert to an Alertmanager (`base`: `http://HOST:PORT[/PREFIX]`).
pub(super) async fn alertmanager(
    base: &str,
    status: Status,
    n: &Notification,
) -> Result<(), String> {
    let body = serde_json::to_vec(&n.alertmanager(status)).map_err(|e| e.to_string())?;
    post(base, Some("api/v2/alerts"), body).await
}

/// `POST`s `body` (JSON) to `url` (with `suffix` appended to its path):
/// `Ok` on a 2xx answer, within [`HTTP_LIMIT`].
async fn post(url: &str, suffix: Option<&str>, body: Vec<u8>) -> Result<(), String> {
    let u = HttpUrl::parse(url)?;
    let path = match suffix {
        Some(s) => format!("{}/{s}", u.path.trim_end_matches('/')),
        None => u.path.clone(),
    };
    let host = u
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let work = async move {
        let stream = tokio::net::TcpStream::connect((host.as_str(), u.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", u.host, u.port))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::post(path.as_str())
            .header(hyper::header::HOST, format!("{}:{}", u.host, u.port))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "cove")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let answer = sender.send_request(req).await.map_err(|e| e.to_string());
        let out = match answer {
            Ok(res) => {
                let status = res.status();
                // Read (a bounded part of) the answer, for the error.
                let text = http_body_util::Limited::new(res.into_body(), 4096)
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
                    .unwrap_or_default();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("{url} answered {status}: {text}"))
                }
            }
            Err(e) => Err(format!("{url}: {e}")),
        };
        conn.abort();
        out
    };
    tokio::time::timeout(HTTP_LIMIT, work)
        .await
        .unwrap_or_else(|_| Err(format!("{url} did not answer within {HTTP_LIMIT:?}")))
}

/// Runs `argv` in `dir` with the notification on stdin; `Ok` when it
/// exits 0 within [`COMMAND_LIMIT`] (else it is killed).
pub(super) async fn command(argv: &[String], dir: &Path, n: &Notification) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("`{program}`: {e}"))?;
    let mut stdin = child.stdin.take();
    let run = async {
        if let Some(mut s) = stdin.take() {
            // A command that does not read its input still runs.
            let _ = s.write_all(&body).await;
            let _ = s.write_all(b"\n").await;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(COMMAND_LIMIT, run).await {
        Err(_) => Err(format!(
            "`{program}` ran longer than {COMMAND_LIMIT:?}; it was killed"
        )),
        Ok(Err(e)) => Err(format!("`{program}`: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("").trim();
            Err(format!("`{program}` {}: {last}", out.status))
        }
    }
}
