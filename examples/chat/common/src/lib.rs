//! What the two chat services share: the broker (RabbitMQ over TLS only:
//! `amqps://`, the broker's certificate checked against the CA file the
//! environment names), the topology both declare, and the chat message.
//! Configuration, JSON logs, metrics and HTTP serving are buffs-common's.

use std::time::Duration;

use buffs_common::{config, log};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The exchange every message is published to, the room as routing key.
pub const EXCHANGE: &str = "chat.messages";
/// The durable queue `history` consumes (every room). Declared by both
/// services, so a message published before `history` first started is kept.
pub const HISTORY_QUEUE: &str = "chat.history";
/// The AMQP `type` of the markers `history` sends itself through its queue.
pub const SYNC_KIND: &str = "chat.sync";

/// A service's start-up error.
pub type Error = Box<dyn std::error::Error>;

/// A chat message as stored, published and sent to clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    /// Chosen by the sending client (so a resend after a reconnect is the
    /// same message), else by the gateway.
    pub id: String,
    pub room: String,
    pub user: String,
    pub text: String,
    /// When the gateway accepted it (RFC 3339).
    pub ts: String,
}

/// Longest room and id (in characters), user name and text.
pub const MAX_NAME: usize = 64;
pub const MAX_USER: usize = 32;
pub const MAX_TEXT: usize = 2000;

/// A room name or message id: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn check_name(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().count() > MAX_NAME {
        return Err(format!("`{what}` must be 1 to {MAX_NAME} characters"));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{what}` may hold only letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

impl Message {
    /// Checks what a client or the broker gave.
    pub fn check(&self) -> Result<(), String> {
        check_name("id", &self.id)?;
        check_name("room", &self.room)?;
        let user = self.user.chars().count();
        if user == 0 || user > MAX_USER || self.user.chars().any(char::is_control) {
            return Err(format!(
                "`user` must be 1 to {MAX_USER} characters, none a control character"
            ));
        }
        let text = self.text.chars().count();
        if text == 0 || text > MAX_TEXT {
            return Err(format!("`text` must be 1 to {MAX_TEXT} characters"));
        }
        Ok(())
    }
}

/// Where the broker is and how to reach it, from the environment:
/// `AMQP_URL` (`amqps://USER@HOST:5671/VHOST`; `amqp://` is refused),
/// `AMQP_PASSWORD` or `AMQP_PASSWORD_FILE`, `AMQP_CA_FILE` (PEM: the CA
/// the broker's certificate must chain to) and `AMQP_TLS_NAME` (the name
/// the certificate must carry; default the URL's host).
#[derive(Clone)]
pub struct Broker {
    uri: AMQPUri,
    tls_name: String,
    tls: lapin::tcp::RustlsConnector,
}

impl Broker {
    pub fn from_env() -> Result<Broker, Error> {
        let url = config::required(
            "AMQP_URL",
            "set it to amqps://USER@HOST:5671/%2f (compose.yaml does)",
        )?;
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e| format!("AMQP_URL is not an AMQP URL: {e}"))?;
        if uri.scheme != AMQPScheme::AMQPS {
            return Err(
                "AMQP_URL is amqp://, without TLS: refusing to send the broker's password and \
                 the messages in the clear\n  hint: use amqps://HOST:5671 and name the broker's \
                 CA in AMQP_CA_FILE"
                    .into(),
            );
        }
        if let Some(pw) = config::secret("AMQP_PASSWORD")? {
            uri.authority.userinfo.password = pw;
        }
        let ca_file = config::required(
            "AMQP_CA_FILE",
            "set it to the PEM file of the CA that signed the broker's certificate",
        )?;
        let tls = tls_to(&fs_err::read(&ca_file)?)
            .map_err(|e| format!("AMQP_CA_FILE ({ca_file}): {e}"))?;
        let tls_name = config::or("AMQP_TLS_NAME", &uri.authority.host);
        Ok(Broker { uri, tls_name, tls })
    }

    /// Connects (TCP to the URL's host, TLS checked for `tls_name` against
    /// the CA), retrying for `patience` while the broker is not there yet.
    /// A refused login or a certificate that does not check out is not
    /// retried.
    pub async fn connect(&self, patience: Duration) -> Result<Connection, Error> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.connect_once().await {
                Ok(c) => return Ok(c),
                Err(e) if not_there_yet(&e) && tokio::time::Instant::now() < deadline => {
                    log::warn(
                        "broker not ready yet; retrying",
                        json!({"error": e.to_string()}),
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot connect to the broker at {}:{} as `{}`: {e}",
                        self.uri.authority.host,
                        self.uri.authority.port,
                        self.uri.authority.userinfo.username
                    )
                    .into());
                }
            }
        }
    }

    async fn connect_once(&self) -> lapin::Result<Connection> {
        let runtime = lapin::runtime::default_runtime()?;
        let name = self.tls_name.clone();
        let tls = self.tls.clone();
        let properties = ConnectionProperties::default();
        let connect = Connection::connector(
            self.uri.clone(),
            runtime,
            async move |uri, rt| {
                let target = (uri.authority.host.as_str(), uri.authority.port);
                let addr = tokio::net::lookup_host(target)
                    .await?
                    .next()
                    .ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
                    })?;
                let plain = lapin::AsyncTcpStream::connect(&rt, (addr.ip(), addr.port())).await?;
                Ok(plain.into_rustls(&tls, &name).await?)
            },
            properties,
        );
        tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 10 s"))?
    }
}

/// A TLS client that trusts the certificates of `ca_pem` only (not the
/// system's or any public CA), TLS 1.2 or 1.3, on ring.
fn tls_to(ca_pem: &[u8]) -> Result<lapin::tcp::RustlsConnector, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(lapin::tcp::RustlsConnector::from(config))
}

/// Whether connecting failed because nothing listens (yet).
fn not_there_yet(e: &lapin::Error) -> bool {
    use std::io::ErrorKind as K;
    match e.kind() {
        lapin::ErrorKind::IOError(io) => matches!(
            io.kind(),
            K::ConnectionRefused | K::TimedOut | K::AddrNotAvailable | K::NotFound
        ),
        _ => false,
    }
}

/// Declares what both services rely on: the exchange, the history queue
/// (durable, so acknowledged messages wait for `history`) and its binding.
pub async fn declare(channel: &Channel) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            HISTORY_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            HISTORY_QUEUE.into(),
            EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Logs `e` and ends the process with exit code 1.
pub fn exit_with(service: &str, e: &Error) -> ! {
    buffs_common::exit_with(service, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            id: "a1".into(),
            room: "lobby".into(),
            user: "ann".into(),
            text: "hi".into(),
            ts: String::new(),
        }
    }

    #[test]
    fn messages_are_checked() {
        assert_eq!(msg().check(), Ok(()));
        let bad = [
            Message {
                room: "a b".into(),
                ..msg()
            },
            Message {
                id: String::new(),
                ..msg()
            },
            Message {
                user: "x\n".into(),
                ..msg()
            },
            Message {
                text: "x".repeat(MAX_TEXT + 1),
                ..msg()
            },
            Message {
                text: String::new(),
                ..msg()
            },
        ];
        for m in bad {
            assert!(m.check().is_err(), "{m:?}");
        }
    }
}
