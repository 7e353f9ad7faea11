//! `x-cove.autoscale` → HorizontalPodAutoscaler (autoscaling/v2).

use super::{Ctx, RenderError, Rendered};
use crate::Object;

pub(super) fn service(
    _ctx: &Ctx,
    _workload: &Object,
    _out: &mut Rendered,
) -> Result<(), RenderError> {
    Ok(())
}
