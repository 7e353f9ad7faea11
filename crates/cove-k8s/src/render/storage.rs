//! Bind mounts → ConfigMaps; named volumes → PersistentVolumeClaims.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::{Ctx, RenderError, Rendered};

pub(super) fn mounts(
    _ctx: &Ctx,
    _pod: &mut PodSpec,
    _main: &mut Container,
    _out: &mut Rendered,
) -> Result<(), RenderError> {
    Ok(())
}
