//! Healthchecks → readiness and liveness probes.

use k8s_openapi::api::core::v1::Container;

use super::{Ctx, Rendered};

pub(super) fn apply(_ctx: &Ctx, _main: &mut Container, _out: &mut Rendered) {}
