//! Services run as processes: their recipes (built-in commands for
//! well-known images) and health checks.

use std::time::Duration;

use cove_spec::model::Service;
use indexmap::IndexMap;

use crate::health::{HealthSpec, Probe};
use crate::recipe::Recipe;

/// The recipe of service `name` (looked up, never indexed: a name the map
/// lacks has none).
pub(super) fn recipe_of(recipes: &IndexMap<&str, Option<Recipe>>, name: &str) -> Option<Recipe> {
    recipes.get(name).copied().flatten()
}

/// The health check: the Compose one, or for a recipe its own probe with
/// the Compose timings (or quick defaults).
pub(super) fn health_of(s: &Service, recipe: Option<Recipe>) -> Option<HealthSpec> {
    if let Some(probe) = s.x_cove.as_ref().and_then(|x| x.health.as_ref()) {
        let probe = match (&probe.http, probe.tcp) {
            (Some(path), _) => Probe::Http {
                path: path.clone(),
                port: probe.port,
            },
            (None, Some(port)) => Probe::Tcp { port },
            (None, None) => return None, // reported by `plan`
        };
        return Some(HealthSpec::with_timings(probe, s.healthcheck.as_ref()));
    }
    let compose = s.healthcheck.as_ref().and_then(HealthSpec::from_compose);
    let Some(probe) = recipe.and_then(|r| r.probe(s)) else {
        return compose;
    };
    if s.healthcheck
        .as_ref()
        .is_some_and(|h| !h.is_enabled() && h.disable)
    {
        return None;
    }
    Some(match compose {
        Some(c) => HealthSpec { probe, ..c },
        None => HealthSpec {
            probe,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            retries: 30,
            // Brokers and databases may boot slowly on a busy machine:
            // failures before the first success count after 2 minutes.
            start_period: Duration::from_secs(120),
            start_interval: Duration::from_millis(500),
        },
    })
}
