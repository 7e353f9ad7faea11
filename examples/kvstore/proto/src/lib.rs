//! What kvstore's three programs share: the gRPC protocol generated from
//! `kv.proto` (no `protoc` needed: see `build.rs`), the limits every program
//! checks, JSON log lines, and how a server finds its address and learns to
//! stop.

pub mod limits;
pub mod log;
pub mod serve;

/// `kvstore.v1`: messages, client and server of the `KeyValue` service.
pub mod pb {
    tonic::include_proto!("kvstore.v1");
}

/// Response metadata naming the front-end replica that answered
/// (`server-2`): the client prints it, so balancing is visible.
pub const REPLICA_HEADER: &str = "x-kvstore-replica";
