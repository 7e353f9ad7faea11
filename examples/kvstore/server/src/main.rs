//! kvstore-server: the gRPC front end. Serves `kv.proto`'s `KeyValue` (and
//! the standard health service), checking each call and passing it to the
//! backend; cove's gateway balances clients over its replicas.
//!
//! Configuration comes from the environment: `HOST` and `PORT` (what to
//! listen on; cove sets both; default `127.0.0.1:50052`) and `BACKEND_ADDR`
//! (the backend's URL, `http://backend:50051` in the Compose file, which
//! cove rewrites to the backend's address; a bare `host:port` is taken as
//! `http://host:port`; default `http://127.0.0.1:50051`). SIGTERM or SIGINT:
//! stop accepting, finish the calls in flight, exit 0.

mod frontend;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use kvstore_proto::log;
use kvstore_proto::pb::key_value_server::KeyValueServer;
use kvstore_proto::serve;
use serde_json::json;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};

const DEFAULT_PORT: u16 = 50052;
const DEFAULT_BACKEND: &str = "http://127.0.0.1:50051";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error("server failed", json!({"error": format!("{e:#}")}));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let addr = serve::listen_addr(DEFAULT_PORT).map_err(anyhow::Error::msg)?;
    let replica = serve::replica_name("kvstore-server", addr);
    let backend_url =
        backend_url(&std::env::var("BACKEND_ADDR").unwrap_or_else(|_| DEFAULT_BACKEND.into()));
    // Connected on first use, and again whenever the connection is lost,
    // so the front end starts (and keeps running) while the backend restarts.
    let backend = Endpoint::from_shared(backend_url.clone())
        .with_context(|| format!("BACKEND_ADDR `{backend_url}` is not a URL"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<KeyValueServer<frontend::Frontend>>()
        .await;
    log::info(
        "listening",
        json!({"addr": addr.to_string(), "replica": replica, "backend": backend_url}),
    );
    Server::builder()
        .add_service(health_service)
        .add_service(KeyValueServer::new(frontend::Frontend::new(
            backend, &replica,
        )))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            serve::shutdown_signal().await;
            log::info("stopping: finishing the calls in flight", json!({}));
            health
                .set_not_serving::<KeyValueServer<frontend::Frontend>>()
                .await;
        })
        .await
        .context("serving")?;
    log::info("stopped", json!({}));
    Ok(())
}

/// `BACKEND_ADDR` as a URL: `host:port` becomes `http://host:port`.
fn backend_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backend_addresses_become_urls() {
        assert_eq!(
            super::backend_url("127.64.0.1:50051"),
            "http://127.64.0.1:50051"
        );
        assert_eq!(super::backend_url("http://b:1"), "http://b:1");
    }
}
