//! Secrets → Secret objects, mounted as files at their targets.

use cove_spec::App;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::{Ctx, Options, RenderError, Rendered};

pub(super) fn mounts(
    _ctx: &Ctx,
    _pod: &mut PodSpec,
    _main: &mut Container,
    _out: &mut Rendered,
) -> Result<(), RenderError> {
    Ok(())
}

/// The project's Secret objects.
pub(super) fn project(_app: &App, _opts: &Options, _out: &mut Rendered) -> Result<(), RenderError> {
    Ok(())
}
