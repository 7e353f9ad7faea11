//! Type casts after interpolation, at the paths where Compose does them.
//!
//! `replicas: "${REPLICAS:-2}"` is a string after interpolation; Compose casts
//! values at a fixed list of paths to integers, numbers or booleans
//! (compose-go `interpolateTypeCastMapping`). A value that does not cast is an
//! error at its place; `yes`/`no`/`on`/`off` booleans are accepted with a
//! warning, as YAML 1.2 no longer knows them.

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Kind, Node, Resolved};

#[derive(Clone, Copy)]
enum Want {
    Int,
    Float,
    Bool,
}

const CASTS: &[(&str, Want)] = &[
    ("services.*.cpu_count", Want::Int),
    ("services.*.cpu_period", Want::Int),
    ("services.*.cpu_quota", Want::Int),
    ("services.*.cpu_rt_period", Want::Int),
    ("services.*.cpu_rt_runtime", Want::Int),
    ("services.*.cpu_shares", Want::Int),
    ("services.*.oom_score_adj", Want::Int),
    ("services.*.pids_limit", Want::Int),
    ("services.*.deploy.replicas", Want::Int),
    ("services.*.deploy.update_config.parallelism", Want::Int),
    ("services.*.deploy.rollback_config.parallelism", Want::Int),
    ("services.*.deploy.restart_policy.max_attempts", Want::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Want::Int,
    ),
    ("services.*.healthcheck.retries", Want::Int),
    ("services.*.ports.[].target", Want::Int),
    ("services.*.scale", Want::Int),
    ("services.*.ulimits.*", Want::Int),
    ("services.*.ulimits.*.hard", Want::Int),
    ("services.*.ulimits.*.soft", Want::Int),
    ("services.*.cpu_percent", Want::Float),
    ("services.*.cpus", Want::Float),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Want::Float,
    ),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Want::Float,
    ),
    ("services.*.init", Want::Bool),
    ("services.*.depends_on.*.required", Want::Bool),
    ("services.*.depends_on.*.restart", Want::Bool),
    ("services.*.healthcheck.disable", Want::Bool),
    ("services.*.oom_kill_disable", Want::Bool),
    ("services.*.privileged", Want::Bool),
    ("services.*.read_only", Want::Bool),
    ("services.*.stdin_open", Want::Bool),
    ("services.*.tty", Want::Bool),
    ("services.*.volumes.[].read_only", Want::Bool),
    ("services.*.volumes.[].volume.nocopy", Want::Bool),
    ("networks.*.external", Want::Bool),
    ("networks.*.internal", Want::Bool),
    ("networks.*.attachable", Want::Bool),
    ("networks.*.enable_ipv4", Want::Bool),
    ("networks.*.enable_ipv6", Want::Bool),
    ("volumes.*.external", Want::Bool),
    ("secrets.*.external", Want::Bool),
    ("configs.*.external", Want::Bool),
];

/// Casts string values at the known paths of a Compose document.
pub fn cast(root: &mut Node, diags: &mut Diagnostics) {
    for (pattern, want) in CASTS {
        let segments: Vec<&str> = pattern.split('.').collect();
        at_path(root, &segments, &mut Vec::new(), &mut |node, path| {
            cast_scalar(node, path, *want, diags)
        });
    }
}

/// Calls `f` on every node at `segments` (`*`: any key, `[]`: any item).
fn at_path(
    node: &mut Node,
    segments: &[&str],
    path: &mut Vec<String>,
    f: &mut dyn FnMut(&mut Node, &[String]),
) {
    let Some((first, rest)) = segments.split_first() else {
        f(node, path);
        return;
    };
    match (&mut node.kind, *first) {
        (Kind::Map(m), "*") => {
            for e in &mut m.entries {
                path.push(e.key.clone());
                at_path(&mut e.value, rest, path, f);
                path.pop();
            }
        }
        (Kind::Map(m), key) => {
            if let Some(child) = m.get_mut(key) {
                path.push(key.to_string());
                at_path(child, rest, path, f);
                path.pop();
            }
        }
        (Kind::Seq(items), "[]") => {
            for it in items {
                path.push("[]".to_string());
                at_path(it, rest, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

fn cast_scalar(node: &mut Node, path: &[String], want: Want, diags: &mut Diagnostics) {
    match &mut node.kind {
        Kind::Scalar(s) => {
            let Resolved::Str(text) = s.resolve() else {
                return;
            };
            let text = text.trim().to_string();
            let shown = path.join(".").replace(".[]", "[]");
            let ok = match want {
                Want::Int => text.parse::<i64>().is_ok(),
                Want::Float => text.parse::<f64>().is_ok(),
                Want::Bool => match text.to_ascii_lowercase().as_str() {
                    "true" | "false" => true,
                    legacy @ ("y" | "yes" | "on" | "n" | "no" | "off") => {
                        let v = matches!(legacy, "y" | "yes" | "on");
                        diags.push(
                            Diagnostic::warning(
                                node.span,
                                format!("`{text}` as a boolean is not YAML 1.2"),
                            )
                            .with_hint(format!("write `{v}`")),
                        );
                        s.text = v.to_string();
                        s.plain = true;
                        return;
                    }
                    _ => false,
                },
            };
            if ok {
                s.text = match want {
                    Want::Bool => text.to_ascii_lowercase(),
                    _ => text,
                };
                s.plain = true;
            } else {
                let expected = match want {
                    Want::Int => "an integer",
                    Want::Float => "a number",
                    Want::Bool => "a boolean (`true` or `false`)",
                };
                diags.push(
                    Diagnostic::error(
                        node.span,
                        format!("`{shown}` must be {expected}, got `{text}`"),
                    )
                    .with_hint("check the value, or the variable that sets it"),
                );
            }
        }
        Kind::Null | Kind::Seq(_) | Kind::Map(_) => {}
    }
}
