//! `${VAR}` interpolation, as the Compose Specification defines it.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+replacement}`,
//! `${VAR+replacement}`, and `$$` for a literal `$`. Defaults and
//! replacements may themselves contain interpolations (`${A:-${B}}`).
//! Only values are interpolated, never keys.

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Kind, Node};
use crate::source::Span;

/// Where a variable's value came from, to name it in hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Process,
    File(std::path::PathBuf),
}

/// The variables interpolation sees: the process environment over `.env`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: IndexMap<String, (String, Origin)>,
    /// The env files that were read, for hints about missing variables.
    pub files: Vec<std::path::PathBuf>,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }

    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.values.get(name).map(|(_, o)| o)
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>, origin: Origin) {
        self.values.insert(name.into(), (value.into(), origin));
    }

    /// Sets a variable unless it is already set (process env wins over files).
    pub fn set_default(&mut self, name: &str, value: String, origin: Origin) {
        if !self.values.contains_key(name) {
            self.values.insert(name.to_string(), (value, origin));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.as_str()))
    }
}

/// A problem inside one template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Character offset of the offending `$` in the string.
    pub offset: usize,
    pub kind: TemplateErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// `${VAR:?msg}` / `${VAR?msg}` with the variable unset (or empty for `:?`).
    Required { name: String, message: String },
    /// `${` without its closing `}`.
    Unclosed,
    /// `${...}` whose content is not `NAME` followed by an operator.
    BadName(String),
    /// Defaults nested deeper than [`MAX_NESTING`].
    TooDeep,
}

/// Deepest nesting of defaults (`${A:-${B:-...}}`) accepted.
pub const MAX_NESTING: usize = 16;

/// Outcome of interpolating one string.
#[derive(Debug, Default)]
pub struct Interpolated {
    pub text: String,
    /// Variables that were used but not set (each gives a warning).
    pub unset: Vec<(String, usize)>,
}

/// Interpolates `input` with `lookup`.
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, TemplateError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Interpolated::default();
    let mut i = 0;
    expand(&chars, &mut i, None, lookup, &mut out, 0, 0)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands `chars[*i..]` until `stop` (a closing `}` at depth 0) or the end.
fn expand(
    chars: &[char],
    i: &mut usize,
    stop: Option<char>,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
    base: usize,
    depth: usize,
) -> Result<(), TemplateError> {
    if depth > MAX_NESTING {
        return Err(TemplateError {
            offset: base,
            kind: TemplateErrorKind::TooDeep,
        });
    }
    while *i < chars.len() {
        let c = chars[*i];
        if Some(c) == stop {
            return Ok(());
        }
        if c != '$' {
            out.text.push(c);
            *i += 1;
            continue;
        }
        let start = *i;
        match chars.get(start + 1) {
            Some('$') => {
                out.text.push('$');
                *i += 2;
            }
            Some('{') => {
                *i += 2;
                braced(chars, i, start, lookup, out, depth)?;
            }
            Some(&n) if is_name_start(n) => {
                let mut j = start + 1;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start + 1..j].iter().collect();
                match lookup(&name) {
                    Some(v) => out.text.push_str(&v),
                    None => out.unset.push((name, start)),
                }
                *i = j;
            }
            // Compose leaves a `$` before anything else literal (`cost $5`).
            _ => {
                out.text.push('$');
                *i += 1;
            }
        }
    }
    if stop.is_some() {
        return Err(TemplateError {
            offset: base,
            kind: TemplateErrorKind::Unclosed,
        });
    }
    Ok(())
}

/// The error for `${...}` whose content is not `NAME[op word]`: the content
/// up to the closing `}`, or "unclosed" when there is none.
fn bad_braced(chars: &[char], content_start: usize, dollar: usize) -> TemplateError {
    let end = chars[content_start..]
        .iter()
        .position(|c| *c == '}')
        .map(|p| content_start + p);
    TemplateError {
        offset: dollar,
        kind: match end {
            Some(end) => TemplateErrorKind::BadName(chars[content_start..end].iter().collect()),
            None => TemplateErrorKind::Unclosed,
        },
    }
}

/// Handles `${...}`; `*i` is just after `${`, `start` at the `$`.
fn braced(
    chars: &[char],
    i: &mut usize,
    start: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
    depth: usize,
) -> Result<(), TemplateError> {
    let name_start = *i;
    while *i < chars.len() && is_name_char(chars[*i]) {
        *i += 1;
    }
    let name: String = chars[name_start..*i].iter().collect();
    let unclosed = TemplateError {
        offset: start,
        kind: TemplateErrorKind::Unclosed,
    };
    let Some(&next) = chars.get(*i) else {
        return Err(unclosed);
    };
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(bad_braced(chars, name_start, start));
    }
    if next == '}' {
        *i += 1;
        match lookup(&name) {
            Some(v) => out.text.push_str(&v),
            None => out.unset.push((name, start)),
        }
        return Ok(());
    }
    // Operator: `:-`, `-`, `:?`, `?`, `:+`, `+`.
    let colon = next == ':';
    let op_at = if colon { *i + 1 } else { *i };
    let Some(&op) = chars.get(op_at) else {
        return Err(unclosed);
    };
    if !matches!(op, '-' | '?' | '+') {
        return Err(bad_braced(chars, name_start, start));
    }
    *i = op_at + 1;
    // The word after the operator is itself a template, expanded lazily.
    let mut word = Interpolated::default();
    expand(chars, i, Some('}'), lookup, &mut word, start, depth + 1)?;
    if chars.get(*i) != Some(&'}') {
        return Err(unclosed);
    }
    *i += 1;
    let value = lookup(&name);
    let is_set = value.is_some();
    let is_set_non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let present = if colon { is_set_non_empty } else { is_set };
    match op {
        '-' => {
            if present {
                out.text.push_str(value.as_deref().unwrap_or_default());
            } else {
                out.text.push_str(&word.text);
                out.unset.extend(word.unset);
            }
        }
        '+' => {
            if present {
                out.text.push_str(&word.text);
                out.unset.extend(word.unset);
            }
        }
        _ => {
            if present {
                out.text.push_str(value.as_deref().unwrap_or_default());
            } else {
                return Err(TemplateError {
                    offset: start,
                    kind: TemplateErrorKind::Required {
                        name,
                        message: word.text,
                    },
                });
            }
        }
    }
    Ok(())
}

/// Line and column (from the scalar's first line and indentation) of
/// `offset` in the text of a block scalar whose lines are the file's (a
/// literal `|` block). A folded block keeps only some breaks, so its places
/// are approximate.
fn block_position(text: &str, offset: usize) -> Option<(u32, u32)> {
    let before = text.get(..offset)?;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() as u32;
    Some((line, before[start..].chars().count() as u32))
}

/// Interpolates every scalar value under `node` (keys are left alone).
pub fn interpolate_node(node: &mut Node, vars: &Vars, diags: &mut Diagnostics) {
    let lookup = |name: &str| vars.get(name).map(str::to_string);
    node.walk_mut(&mut |n: &mut Node| {
        let span = n.span;
        let Kind::Scalar(s) = &mut n.kind else {
            return;
        };
        if !s.text.contains('$') {
            return;
        }
        let quoted = !s.plain;
        let single_line = !s.text.contains('\n');
        let at = |offset: usize, len: u32| -> Span {
            if single_line {
                Span {
                    col: span.col + offset as u32 + u32::from(quoted),
                    len,
                    ..span
                }
            } else if let Some((line, col)) = block_position(&s.text, offset) {
                // A block scalar's lines are the file's lines, from the span's.
                Span {
                    line: span.line + line,
                    col: span.col + col,
                    len,
                    ..span
                }
            } else {
                span
            }
        };
        match interpolate(&s.text, &lookup) {
            Ok(done) => {
                for (name, offset) in &done.unset {
                    let mut d = Diagnostic::warning(
                        at(*offset, name.len() as u32 + 1),
                        format!("variable `{name}` is not set; using an empty string"),
                    );
                    d.hint = Some(missing_var_hint(name, vars));
                    diags.push(d);
                }
                s.text = done.text;
                // As in Compose, an interpolated value is a string; `cast`
                // types it where the specification expects a number or boolean.
                s.plain = false;
            }
            Err(e) => {
                let d = match e.kind {
                    TemplateErrorKind::Required { name, message } => {
                        let msg = if message.is_empty() {
                            format!("required variable `{name}` is not set")
                        } else {
                            format!("required variable `{name}` is not set: {message}")
                        };
                        Diagnostic::error(at(e.offset, name.len() as u32 + 3), msg)
                            .with_hint(missing_var_hint(&name, vars))
                    }
                    TemplateErrorKind::Unclosed => {
                        Diagnostic::error(at(e.offset, 2), "`${` is never closed with `}`")
                            .with_hint(
                                "close the variable with `}`, or write `$$` for a literal `$`",
                            )
                    }
                    TemplateErrorKind::TooDeep => Diagnostic::error(
                        at(e.offset, 2),
                        format!("variables are nested more than {MAX_NESTING} levels deep"),
                    )
                    .with_hint("simplify the nested `${...:-${...}}` defaults"),
                    TemplateErrorKind::BadName(content) => Diagnostic::error(
                        at(e.offset, content.chars().count() as u32 + 3),
                        format!("invalid interpolation `${{{content}}}`"),
                    )
                    .with_hint(
                        "use `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, \
                         `${NAME?error}`, `${NAME:+value}` or `${NAME+value}`; names are letters, \
                         digits and `_`",
                    ),
                };
                diags.push(d);
            }
        }
    });
}

fn missing_var_hint(name: &str, vars: &Vars) -> String {
    if vars.files.is_empty() {
        format!("set `{name}` in the environment or in a `.env` file next to the compose file")
    } else {
        let files: Vec<String> = vars.files.iter().map(|p| p.display().to_string()).collect();
        format!("set `{name}` in the environment or in {}", files.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> Result<String, TemplateErrorKind> {
        let lookup = |n: &str| match n {
            "SET" => Some("value".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        interpolate(s, &lookup).map(|i| i.text).map_err(|e| e.kind)
    }

    #[test]
    fn forms() {
        assert_eq!(run("a ${SET} $SET b").unwrap(), "a value value b");
        assert_eq!(run("${UNSET}").unwrap(), "");
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${SET:+x}").unwrap(), "x");
        assert_eq!(run("${EMPTY:+x}").unwrap(), "");
        assert_eq!(run("${EMPTY+x}").unwrap(), "x");
        assert_eq!(run("${UNSET+x}").unwrap(), "");
        assert_eq!(run("$$SET $${SET}").unwrap(), "$SET ${SET}");
        assert_eq!(run("${UNSET:-${SET}}").unwrap(), "value");
        assert_eq!(run("${UNSET:-a${UNSET:-b}c}").unwrap(), "abc");
        assert_eq!(run("${SET?boom}").unwrap(), "value");
        assert_eq!(run("${EMPTY?boom}").unwrap(), "");
        assert_eq!(run("${UNSET:-}").unwrap(), "");
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("${UNSET:?need it}"),
            Err(TemplateErrorKind::Required {
                name: "UNSET".into(),
                message: "need it".into()
            })
        );
        assert!(matches!(
            run("${EMPTY:?x}"),
            Err(TemplateErrorKind::Required { .. })
        ));
        assert_eq!(run("${SET"), Err(TemplateErrorKind::Unclosed));
        assert_eq!(run("${UNSET:-abc"), Err(TemplateErrorKind::Unclosed));
        assert_eq!(run("cost $5 and $ end $").unwrap(), "cost $5 and $ end $");
        assert!(matches!(run("${1A}"), Err(TemplateErrorKind::BadName(_))));
        assert!(matches!(run("${A B}"), Err(TemplateErrorKind::BadName(_))));
        let deep = format!("{}x{}", "${U:-".repeat(100), "}".repeat(100));
        assert_eq!(run(&deep), Err(TemplateErrorKind::TooDeep));
        let ok = format!("{}x{}", "${U:-".repeat(10), "}".repeat(10));
        assert_eq!(run(&ok).unwrap(), "x");
    }
}
