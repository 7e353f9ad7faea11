//! End-to-end tests of the `cove` binary: file discovery, environment
//! variables, output formats and exit codes.

mod buffs;
mod config;
mod containers;
mod daemon;
pub mod deploy;
pub mod gateway;
mod kvstore;
mod logs;
pub mod recipes;
mod reference;
mod secrets;
pub mod up;
