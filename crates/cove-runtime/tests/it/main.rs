//! cove-runtime's integration tests: plans of real Compose files.

mod docker;
mod purity;
mod routes;
