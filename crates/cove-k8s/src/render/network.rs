//! Networks → NetworkPolicies, when the app defines more than one.

use cove_spec::App;

use super::{Options, Rendered};

pub(super) fn project(_app: &App, _opts: &Options, _out: &mut Rendered) {}
