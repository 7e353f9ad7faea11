//! `x-cove` fields the schema accepts and cove does not act on yet (an
//! alert whose condition the daemon does not evaluate yet; `hosts_at_once`
//! above 1): a warning at the field, saying so, rather than silence that
//! reads as "done". Each goes when the work that acts on it lands
//! (`backup` went when the daemon's schedules and `keep` did; `preview`
//! and `previews` with `cove preview`; `alerts` when its evaluator did,
//! but for the figures [`crate::alert_rule::Figure::evaluated`] says it
//! does not read).

use crate::diag::Diagnostic;
use crate::locate::locate;
use crate::model::App;
use crate::source::SourceMap;

/// A warning for each pending field `app` uses, at the place it is written.
pub fn warnings(app: &App, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut conditions = Vec::new();
    for (name, svc) in &app.services {
        let Some(x) = &svc.x_cove else { continue };
        let at = |field: &str| {
            ["services", name.as_str(), "x-cove", field]
                .map(str::to_string)
                .to_vec()
        };
        for (i, a) in x.alerts.iter().enumerate() {
            let Ok(c) = a.when.parse::<crate::alert_rule::Condition>() else {
                continue;
            };
            if c.figure.evaluated() {
                continue;
            }
            let mut path = at("alerts");
            path.extend([i.to_string(), "when".to_string()]);
            let place = format!("services.{name}.x-cove.alerts[{i}].when");
            conditions.push(
                Diagnostic::warning(
                    locate(sources, &path),
                    format!(
                        "`{place}`: `{}` is accepted but not evaluated yet: this alert never fires",
                        c.figure.name()
                    ),
                )
                .with_hint("docs/guides/alerts.md lists the figures the daemon evaluates"),
            );
        }
    }
    for (env, e) in &app.x_cove.environments {
        if let Some(n) = e.rollout.as_ref().and_then(|r| r.hosts_at_once)
            && n > 1
        {
            let path: Vec<String> = ["x-cove", "environments", env, "rollout", "hosts_at_once"]
                .map(str::to_string)
                .to_vec();
            conditions.push(
                Diagnostic::warning(
                    locate(sources, &path),
                    format!("`x-cove.environments.{env}.rollout.hosts_at_once: {n}` is accepted but not acted on yet: hosts are deployed one at a time"),
                )
                .with_hint("keep it for when cove deploys several hosts at once, or remove it"),
            );
        }
    }
    conditions
}
