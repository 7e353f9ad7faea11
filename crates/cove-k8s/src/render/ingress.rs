//! `x-cove.routes` → Ingress.

use super::{Ctx, Rendered};

pub(super) fn service(_ctx: &Ctx, _out: &mut Rendered) {}
