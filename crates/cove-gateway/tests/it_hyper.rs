//! The cases of `it.rs` (`proxy/cases.rs`) with `Limits::fast_path` off:
//! every request through hyper, the path HTTP/2, upgrades and TLS take.

const FAST_PATH: bool = false;

include!("proxy/cases.rs");

include!("proxy/previews.rs");
