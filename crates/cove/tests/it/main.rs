//! End-to-end tests of the `cove` binary: file discovery, environment
//! variables, output formats and exit codes.

pub mod attack;
mod buffs;
mod chaos;
mod claims;
mod cli_claims;
mod config;
mod container_settings;
mod containers;
mod daemon;
pub mod deploy;
pub mod gateway;
mod kvstore;
mod logs;
mod recipe_safety;
pub mod recipes;
mod reference;
mod replica_env;
mod secrets;
mod shared_host;
mod standalone_gateway;
pub mod up;
