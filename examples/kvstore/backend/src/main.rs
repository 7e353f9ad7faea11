//! kvstore-backend: the key-value store, served over gRPC (`kv.proto`'s
//! `KeyValue`, and the standard health service) and kept in LMDB.
//!
//! Configuration comes from the environment: `HOST` and `PORT` (what to
//! listen on; cove sets both; default `127.0.0.1:50051`) and `KV_DATA_DIR`
//! (the LMDB directory, created if missing; default `./data`). SIGTERM or
//! SIGINT: stop accepting, finish the calls in flight, exit 0.

mod service;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kvstore_proto::log;
use kvstore_proto::pb::key_value_server::KeyValueServer;
use kvstore_proto::serve;
use serde_json::json;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

const DEFAULT_PORT: u16 = 50051;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error("backend failed", json!({"error": format!("{e:#}")}));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let addr = serve::listen_addr(DEFAULT_PORT).map_err(anyhow::Error::msg)?;
    let dir = PathBuf::from(std::env::var_os("KV_DATA_DIR").unwrap_or_else(|| "./data".into()));
    let store = store::Store::open(&dir)?;
    let entries = store.len()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<KeyValueServer<service::Backend>>()
        .await;
    log::info(
        "listening",
        json!({
            "addr": addr.to_string(),
            "replica": serve::replica_name("kvstore-backend", addr),
            "data_dir": dir.display().to_string(),
            "entries": entries,
        }),
    );
    Server::builder()
        .add_service(health_service)
        .add_service(KeyValueServer::new(service::Backend::new(store)))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            serve::shutdown_signal().await;
            log::info("stopping: finishing the calls in flight", json!({}));
            health
                .set_not_serving::<KeyValueServer<service::Backend>>()
                .await;
        })
        .await
        .context("serving")?;
    log::info("stopped", json!({}));
    Ok(())
}
