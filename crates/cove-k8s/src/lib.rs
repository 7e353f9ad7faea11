//! The same Compose app on Kubernetes.
//!
//! [`render`] turns the [`App`](cove_spec::App) model into typed
//! Kubernetes objects (k8s-openapi), never string templates; [`yaml`]
//! prints them as multi-document YAML, deterministically (same input,
//! byte-identical output). Applying them to a cluster, waiting for
//! rollouts, status, diff, rollback and delete are in [`cluster`].
//!
//! One concept per file: [`names`] (DNS-1123 names, the same in every
//! reference), [`object`] (the objects cove renders and their order),
//! `render/` (one file per part of the translation).

pub mod cluster;
pub mod names;
pub mod object;
pub mod render;
pub mod wait_for;
pub mod yaml;

pub use object::Object;
pub use render::{Options, RenderError, Rendered, render};

/// The label every object cove renders carries: the project's name.
pub const PROJECT_LABEL: &str = "app.kubernetes.io/part-of";
/// The label naming the Compose service an object belongs to.
pub const SERVICE_LABEL: &str = "cove.dev/service";
/// The field manager of cove's server-side applies.
pub const FIELD_MANAGER: &str = "cove";
