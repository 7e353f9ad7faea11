//! Integration tests of the loader: one test binary, one module per concern.

mod corpus;
mod fixtures;
mod robustness;
mod schema_files;
mod support;
