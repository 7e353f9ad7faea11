//! The gateway against real upstreams on port 0, over real sockets, on
//! the HTTP/1.1 fast path (the default); `it_hyper.rs` runs the same
//! cases (`proxy/cases.rs`) with every request through hyper.

const FAST_PATH: bool = true;

include!("proxy/cases.rs");

include!("proxy/previews.rs");
