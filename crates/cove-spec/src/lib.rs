//! cove-spec: a Compose file (plus `x-cove`) → a validated [`model::App`].
//!
//! Invariant: this crate does no I/O beyond reading the files it is given (and
//! the files they reference: overrides, `include`, `extends`, env files), has
//! no async runtime and no network. Loading never stops at the first error:
//! it returns every error, each with file, line, column, what is wrong and a
//! hint ([`diag::Diagnostic`]).
//!
//! Steps, in order: [`parse`] → [`interpolate`] → [`cast`] → [`schema`]
//! validation → [`canonical`] forms → `include`/`extends` ([`load`]) →
//! [`merge`] of files → [`resolve`] (profiles, dependencies, environment,
//! checks) → [`model::App`].

pub mod alert_rule;
pub mod canonical;
pub mod cast;
mod checks;
pub mod container;
pub mod cron;
pub mod diag;
pub mod dotenv;
pub mod gateway;
pub mod graph;
pub mod interpolate;
pub mod load;
pub mod locate;
pub mod merge;
pub mod model;
pub mod node;
pub mod parse;
pub mod pending;
pub mod policy;
pub mod project;
pub mod resolve;
pub mod schema;
pub mod shell_words;
pub mod source;
pub mod units;
pub mod xcove;
pub mod yaml_out;

pub use diag::{Diagnostic, Severity, Style};
pub use model::App;
pub use project::{LoadFailure, Options, Project, load, load_uninterpolated};
