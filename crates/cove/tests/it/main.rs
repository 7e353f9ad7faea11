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
mod converge;
mod daemon;
pub mod deploy;
mod first_hour;
mod flags;
pub mod gateway;
mod guide;
mod isolation;
mod kvstore;
mod leases;
mod logs;
mod orphans;
mod plan_checks;
mod readiness;
mod recipe_safety;
pub mod recipes;
mod reference;
mod replica_env;
mod responsive;
mod revisions;
mod secrets;
mod shared_gateway;
mod shared_host;
mod shrink;
mod standalone_gateway;
mod store_upgrade;
pub mod up;
