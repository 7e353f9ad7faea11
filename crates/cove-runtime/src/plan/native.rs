//! Services run as processes: their command (`x-cove.run`, or a recipe's:
//! built-in commands for well-known images) and health checks.

use std::time::Duration;

use cove_spec::App;
use cove_spec::model::Service;
use cove_spec::xcove::{Driver, ServiceExt, StringOrList};
use indexmap::IndexMap;

use super::container::driver_of;
use super::{Context, PlanError, recipe_of};
use crate::health::{HealthSpec, Probe};
use crate::recipe::Recipe;

/// The health check: the Compose one, or for a recipe its own probe with
/// the Compose timings (or quick defaults).
pub(super) fn health_of(
    s: &Service,
    recipe: Option<Recipe>,
    host: &crate::recipe::Host,
) -> Option<HealthSpec> {
    if let Some(probe) = s.x_cove.as_ref().and_then(|x| x.health.as_ref()) {
        let probe = match (&probe.http, probe.tcp) {
            (Some(path), _) => Probe::Http {
                path: path.clone(),
                port: probe.port,
            },
            (None, Some(port)) => Probe::Tcp { port },
            (None, None) => return None, // reported by the loader
        };
        return Some(HealthSpec::with_timings(probe, s.healthcheck.as_ref()));
    }
    let compose = s.healthcheck.as_ref().and_then(HealthSpec::from_compose);
    let Some(probe) = recipe.and_then(|r| r.probe(s, host)) else {
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

/// The recipe each service runs with: none for a native command or the
/// `docker` driver.
pub(crate) fn recipes(app: &App) -> IndexMap<&str, Option<Recipe>> {
    app.services
        .iter()
        .map(|(n, s)| {
            let native = s.x_cove.as_ref().is_some_and(|x| x.run.is_some());
            (
                n.as_str(),
                if native || driver_of(app, s) == Some(Driver::Docker) {
                    None
                } else {
                    Recipe::detect(s)
                },
            )
        })
        .collect()
}

impl Context<'_> {
    /// The command a service runs: its `x-cove.run`, its recipe's, or a
    /// container's `command`; `None` when it has none it can run.
    pub(super) fn command(
        &self,
        name: &str,
        svc: &Service,
        x: &ServiceExt,
        is_container: bool,
        err: &impl Fn(String, &str) -> PlanError,
        errors: &mut Vec<PlanError>,
    ) -> Option<Vec<String>> {
        let recipes = &self.recipes;
        let argv = match &x.run {
            _ if is_container => svc.command.clone().unwrap_or_default(),
            Some(StringOrList::List(l)) => l.clone(),
            // The loader refuses a string that does not split; an app that
            // did not come through it still gets the error.
            Some(StringOrList::String(s)) => match cove_spec::shell_words::split(s) {
                Ok(w) => w,
                Err(e) => {
                    errors.push(
                        err(
                            format!("`x-cove.run` cannot be split: {e}"),
                            "close the quote, or write a list",
                        )
                        .at(&["x-cove", "run"]),
                    );
                    return None;
                }
            },
            None if recipe_of(recipes, name).is_some() => {
                let recipe = recipe_of(recipes, name).unwrap_or(Recipe::Redis);
                if let Err((what, hint)) = recipe.check(svc, self.secrets) {
                    let field: &[&str] = if what.starts_with("publishes port") {
                        &["ports"]
                    } else if what.contains("RABBITMQ_DEFAULT")
                        || what.contains("ACTIVEMQ_CONNECTION")
                        || what.contains("`guest`")
                    {
                        &["environment"]
                    } else {
                        &["image"]
                    };
                    errors.push(err(what, &hint).at(field));
                    return None;
                }
                recipe.command(svc, &self.placement.host)
            }
            None => {
                let what = svc
                    .image
                    .as_deref()
                    .map(|i| format!("image `{i}`"))
                    .unwrap_or_else(|| "its build".into());
                errors.push(err(
                    format!("has no native command to run ({what} runs as a container, and its `x-cove.driver` is `native`)"),
                    "add `x-cove: {run: ...}` with the command that runs it on this machine, or let it run as a container (`driver: docker`)",
                ));
                return None;
            }
        };
        if argv.is_empty() && !is_container {
            errors.push(
                err("`x-cove.run` is empty".into(), "give the command to run")
                    .at(&["x-cove", "run"]),
            );
            return None;
        }
        Some(argv)
    }
}
