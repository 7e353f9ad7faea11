//! JSON values → block-style YAML text, for `cove config`.
//!
//! Strings are quoted (JSON-style double quotes, valid YAML) whenever a plain
//! scalar would read back as something else, so the output round-trips.

use serde_json::Value as Json;

/// Renders `v` as a YAML document.
pub fn to_yaml(v: &Json) -> String {
    let mut out = String::new();
    match v {
        Json::Object(m) if !m.is_empty() => write_map(m, 0, &mut out),
        Json::Array(a) if !a.is_empty() => write_seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn write_map(m: &serde_json::Map<String, Json>, level: usize, out: &mut String) {
    for (k, v) in m {
        indent(level, out);
        out.push_str(&string(k));
        out.push(':');
        write_child(v, level, out);
    }
}

fn write_seq(a: &[Json], level: usize, out: &mut String) {
    for v in a {
        indent(level, out);
        out.push('-');
        match v {
            Json::Object(m) if !m.is_empty() => {
                // First key on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, val) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(level + 2, out);
                    }
                    out.push_str(&string(k));
                    out.push(':');
                    write_child(val, level + 2, out);
                }
            }
            Json::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(inner, level + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn write_child(v: &Json, level: usize, out: &mut String) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(m, level + 2, out);
        }
        Json::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(a, level + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => string(s),
        Json::Array(_) => "[]".into(),
        Json::Object(_) => "{}".into(),
    }
}

fn string(s: &str) -> String {
    if needs_quotes(s) {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        s.to_string()
    }
}

fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return true;
    }
    if !matches!(crate::node::resolve_plain(s), crate::node::Resolved::Str(_)) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "on" | "off") {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-x` and `:x` style plain scalars are legal, but quoting is clearer.
        return true;
    }
    s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_the_parser() {
        let v = json!({
            "name": "demo",
            "services": {"web": {
                "command": ["sh", "-c", "echo hi: there # x"],
                "environment": {"A": "1", "B": "true", "C": "", "D": null, "E": "line\nbreak", "F": "yes"},
                "ports": [{"target": 80, "published": "8080"}],
                "empty": [], "nested": [[1, 2], []], "map": {}
            }}
        });
        let text = to_yaml(&v);
        let mut d = crate::diag::Diagnostics::default();
        let back = crate::parse::parse(crate::source::FileId(0), &text, &mut d);
        assert!(!d.has_errors(), "{text}\n{d:?}");
        assert_eq!(back[0].to_json(), v, "{text}");
    }
}
