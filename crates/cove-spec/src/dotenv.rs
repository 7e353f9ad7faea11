//! `.env` and `env_file` parsing, in the dotenv dialect Compose reads.
//!
//! `KEY=VALUE` lines, optional `export `, `#` comments, single quotes (literal),
//! double quotes (escapes, may span lines), and interpolation of `${VAR}` in
//! unquoted and double-quoted values from variables defined above or in the
//! lookup environment. A bare `KEY` takes its value from the lookup
//! environment, and is skipped when unset.

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::interpolate::{TemplateErrorKind, interpolate};
use crate::source::{FileId, Span};

/// Parses dotenv `text`; `lookup` supplies variables not defined in the file.
/// An `env_file` with `format: raw`, as Compose reads one: `KEY=VALUE` per
/// line, the value exactly as written (no quotes removed, no `${VAR}`
/// expanded, no escapes); blank lines and lines starting with `#` are
/// skipped, and so is a line without `=`.
pub fn parse_raw(text: &str) -> IndexMap<String, String> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

pub fn parse(
    file: FileId,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> IndexMap<String, String> {
    let mut vars: IndexMap<String, String> = IndexMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    while n < lines.len() {
        let line_no = n as u32 + 1;
        let raw = lines[n];
        n += 1;
        let trimmed = raw.trim_start();
        let indent = (raw.len() - trimmed.len()) as u32;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let key_col = indent + (trimmed.len() - body.len()) as u32 + 1;
        let (key, rest) = match body.find(['=', ':']) {
            Some(i) => (body[..i].trim_end(), Some(body[i + 1..].to_string())),
            None => (body.trim_end(), None),
        };
        let key_span = Span::new(file, line_no, key_col, key.chars().count().max(1) as u32);
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            diags.push(
                Diagnostic::error(key_span, format!("invalid variable name `{key}`")).with_hint(
                    "lines look like `NAME=value`; names use letters, digits, `_`, `.` and `-`",
                ),
            );
            continue;
        }
        let Some(rest) = rest else {
            if let Some(v) = vars.get(key).cloned().or_else(|| lookup(key)) {
                vars.insert(key.to_string(), v);
            }
            continue;
        };
        let value_text = rest.trim_start();
        let value = if let Some(inner) = value_text.strip_prefix('\'') {
            match inner.find('\'') {
                Some(end) => inner[..end].to_string(),
                None => {
                    diags.push(
                        Diagnostic::error(key_span, format!("value of `{key}` has no closing `'`"))
                            .with_hint("close the single-quoted value on the same line"),
                    );
                    continue;
                }
            }
        } else if let Some(inner) = value_text.strip_prefix('"') {
            // Double quotes may span lines.
            let mut acc = inner.to_string();
            let closed = loop {
                if let Some(end) = find_closing_quote(&acc) {
                    acc.truncate(end);
                    break true;
                }
                if n >= lines.len() {
                    break false;
                }
                acc.push('\n');
                acc.push_str(lines[n]);
                n += 1;
            };
            if !closed {
                diags.push(
                    Diagnostic::error(key_span, format!("value of `{key}` has no closing `\"`"))
                        .with_hint("close the double-quoted value"),
                );
                continue;
            }
            let unescaped = unescape(&acc);
            expand(&unescaped, key, key_span, &vars, lookup, diags)
        } else {
            let v = match value_text.find(" #") {
                Some(i) => &value_text[..i],
                None => value_text,
            };
            expand(v.trim_end(), key, key_span, &vars, lookup, diags)
        };
        vars.insert(key.to_string(), value);
    }
    vars
}

/// Reads a dotenv file for a quick look-up (the CLI reads `COMPOSE_FILE`
/// from `.env` before it knows which files to load). Problems in the file are
/// reported when the loader reads it properly.
pub fn read_values(
    path: &std::path::Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::io::Result<IndexMap<String, String>> {
    let text = fs_err::read_to_string(path)?;
    let mut ignored = Diagnostics::default();
    Ok(parse(FileId(0), &text, lookup, &mut ignored))
}

fn find_closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand(
    value: &str,
    key: &str,
    key_span: Span,
    vars: &IndexMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> String {
    let both = |name: &str| vars.get(name).cloned().or_else(|| lookup(name));
    match interpolate(value, &both) {
        Ok(done) => done.text,
        Err(e) => {
            let msg = match e.kind {
                TemplateErrorKind::Required { name, message } => {
                    format!("value of `{key}` needs variable `{name}`: {message}")
                }
                _ => format!("value of `{key}` is not a valid template"),
            };
            diags.push(
                Diagnostic::error(key_span, msg)
                    .with_hint("write `$$` for a literal `$`, or quote the value with `'`"),
            );
            value.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect() {
        let text = "# comment\nA=1\nexport B = two words # note\nC='lit ${A}'\nD=\"x\\ny ${A}\"\nE=${A}-${MISSING:-d}\nF=\"multi\nline\"\nHOME\nG=\n";
        let mut diags = Diagnostics::default();
        let lookup = |n: &str| (n == "HOME").then(|| "/root".to_string());
        let vars = parse(FileId(0), text, &lookup, &mut diags);
        assert!(!diags.has_errors(), "{diags:?}");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "lit ${A}");
        assert_eq!(vars["D"], "x\ny 1");
        assert_eq!(vars["E"], "1-d");
        assert_eq!(vars["F"], "multi\nline");
        assert_eq!(vars["HOME"], "/root");
        assert_eq!(vars["G"], "");
    }

    #[test]
    fn bad_lines_are_reported_with_their_line() {
        let mut diags = Diagnostics::default();
        let vars = parse(
            FileId(0),
            "OK=1\nnot valid=2\nQ='open\n",
            &|_| None,
            &mut diags,
        );
        assert_eq!(vars.len(), 1);
        let lines: Vec<u32> = diags.items().iter().map(|d| d.span.unwrap().line).collect();
        assert_eq!(lines, vec![2, 3]);
    }
}
