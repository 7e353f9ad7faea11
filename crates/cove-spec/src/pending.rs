//! `x-cove` fields the schema accepts and cove does not act on yet
//! (`preview` of a service; `previews` of the project; an alert whose
//! condition the daemon does not evaluate yet): a warning at the field,
//! saying so, rather than silence that reads as "done". Each goes when the
//! work that acts on it lands (`backup` went when the daemon's schedules
//! and `keep` did; `alerts` when its evaluator did, but for the figures
//! [`crate::alert_rule::Figure::evaluated`] says it does not read).

use crate::diag::Diagnostic;
use crate::locate::locate;
use crate::model::App;
use crate::source::SourceMap;

/// What a field would do, and what cove does instead today.
const PENDING: [(&str, &str); 2] = [
    ("preview", "there are no preview environments yet"),
    ("previews", "there are no preview environments yet"),
];

/// A warning for each pending field `app` uses, at the place it is written.
pub fn warnings(app: &App, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut conditions = Vec::new();
    let mut warn = |path: Vec<String>, field: &str| {
        let Some((_, instead)) = PENDING.iter().find(|(f, _)| *f == field) else {
            return;
        };
        let place = path.join(".");
        let message = format!("`{place}` is accepted but not acted on yet: {instead}");
        let hint = format!(
            "keep it for when cove acts on `x-cove.{field}`, or remove it; nothing happens because of it today"
        );
        out.push(Diagnostic::warning(locate(sources, &path), message).with_hint(hint));
    };
    for (name, svc) in &app.services {
        let Some(x) = &svc.x_cove else { continue };
        let at = |field: &str| {
            ["services", name.as_str(), "x-cove", field]
                .map(str::to_string)
                .to_vec()
        };
        if x.preview.is_some() {
            warn(at("preview"), "preview");
        }
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
    if app.x_cove.previews.is_some() {
        warn(
            ["x-cove", "previews"].map(str::to_string).to_vec(),
            "previews",
        );
    }
    out.extend(conditions);
    out
}
