//! `depends_on` → init containers that wait.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::{Ctx, RenderError, Rendered};

pub(super) fn init_containers(
    _ctx: &Ctx,
    _pod: &mut PodSpec,
    _out: &mut Rendered,
) -> Result<Vec<Container>, RenderError> {
    Ok(Vec::new())
}
