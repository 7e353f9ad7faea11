//! cove-runtime's integration tests: plans of real Compose files.

mod docker;
mod previews;
mod purity;
mod routes;
