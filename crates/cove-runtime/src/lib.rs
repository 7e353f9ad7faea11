//! cove-runtime: runs an [`cove_spec::App`] natively.
//!
//! Invariant: the App model is the only input; nothing here reads YAML. The
//! process driver runs every replica in its own process group and stops the
//! whole group (signal, grace period, then SIGKILL), and where cove may make
//! cgroups in a [`cgroup`] of its own, killed whole when the replica stops,
//! so no descendant outlives a stop, however it forked. Time-dependent decisions (backoff, health thresholds) are
//! pure functions of the instants they are given, tested without sleeping.
//!
//! Steps: [`plan`] turns the App into what to run (and [`routes`] into the
//! gateway's routes); [`process`] spawns and
//! stops replicas; [`health`] probes them; [`backoff`] paces restarts;
//! [`supervisor`] starts the dependency closure in order, honours
//! `depends_on` conditions, restarts what fails, and stops everything.

pub mod artifact;
pub mod backoff;
pub mod cgroup;
pub mod context;
pub mod docker;
pub mod driver;
pub mod environ;
mod fnv;
pub mod habits;
pub mod health;
pub mod lease;
pub mod log_fields;
pub mod log_query;
pub mod logs;
pub mod output;
pub mod plan;
pub mod plan_error;
pub mod preflight;
pub mod private;
pub mod process;
pub mod recipe;
pub mod routes;
pub mod secrets;
pub mod supervisor;
pub mod vars;
