//! Generates the Rust code of `kv.proto` (messages, client, server) with
//! protox, a protobuf compiler written in Rust (no `protoc` needed), and
//! tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=kv.proto");
    let descriptors = protox::compile(["kv.proto"], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
