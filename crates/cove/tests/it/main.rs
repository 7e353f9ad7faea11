//! End-to-end tests of the `cove` binary: file discovery, environment
//! variables, output formats and exit codes.

mod config;
mod daemon;
mod gateway;
mod kvstore;
mod logs;
mod recipes;
mod reference;
pub mod up;
