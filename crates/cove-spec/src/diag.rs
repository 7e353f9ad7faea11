//! Diagnostics: what went wrong, where, and a hint to fix it.
//!
//! The loader never stops at the first problem: every step pushes into a
//! [`Diagnostics`] collector, and the caller gets all of them at once. Rendering
//! is plain text (`error:` / `--> file:line:col` / the line with a caret /
//! `hint:`), readable without colour; the binary adds colour when allowed.

use std::fmt::Write as _;

use crate::source::{SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem found while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// What is wrong, in one sentence without a trailing period.
    pub message: String,
    /// Where; `None` only for problems that have no place in a file
    /// (e.g. "no compose file found").
    pub span: Option<Span>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: span.into(),
            hint: None,
        }
    }

    pub fn warning(span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            span: span.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic as text:
    ///
    /// ```text
    /// error: unknown key `depend_on` in service `web`
    ///   --> compose.yaml:5:5
    ///    |
    ///  5 |     depend_on: [db]
    ///    |     ^^^^^^^^^
    ///    = hint: did you mean `depends_on`?
    /// ```
    pub fn render(&self, sources: &SourceMap, style: &Style) -> String {
        let mut out = String::new();
        let (label, colour) = match self.severity {
            Severity::Error => ("error", style.red),
            Severity::Warning => ("warning", style.yellow),
        };
        let _ = writeln!(
            out,
            "{}{label}{}: {}{}{}",
            colour, style.reset, style.bold, self.message, style.reset
        );
        let mut gutter = 1;
        if let Some(span) = self.span {
            let path = sources.path(span.file);
            gutter = span.line.to_string().len();
            let pad = " ".repeat(gutter);
            let _ = writeln!(
                out,
                "{pad}{}-->{} {}:{}:{}",
                style.blue,
                style.reset,
                path.display(),
                span.line,
                span.col
            );
            if let Some(text) = sources.line(span.file, span.line) {
                let text = text.trim_end_matches('\r');
                let _ = writeln!(out, "{pad} {}|{}", style.blue, style.reset);
                let _ = writeln!(out, "{}{} |{} {}", style.blue, span.line, style.reset, text);
                let chars = text.chars().count() as u32;
                let start = span.col.saturating_sub(1).min(chars);
                let len = span.len.max(1).min(chars.saturating_sub(start).max(1));
                let lead: String = text
                    .chars()
                    .take(start as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(
                    out,
                    "{pad} {}|{} {lead}{}{}{}",
                    style.blue,
                    style.reset,
                    colour,
                    "^".repeat(len as usize),
                    style.reset
                );
            }
        }
        if let Some(hint) = &self.hint {
            let pad = " ".repeat(gutter);
            let _ = writeln!(
                out,
                "{pad} {}={} {}hint{}: {}",
                style.blue, style.reset, style.cyan, style.reset, hint
            );
        }
        out
    }
}

/// Terminal escape codes, empty when colour is off.
#[derive(Debug, Clone, Default)]
pub struct Style {
    pub red: &'static str,
    pub yellow: &'static str,
    pub blue: &'static str,
    pub cyan: &'static str,
    pub bold: &'static str,
    pub reset: &'static str,
}

impl Style {
    pub fn plain() -> Style {
        Style::default()
    }

    pub fn colour() -> Style {
        Style {
            red: "\x1b[1;31m",
            yellow: "\x1b[1;33m",
            blue: "\x1b[1;34m",
            cyan: "\x1b[1;36m",
            bold: "\x1b[1m",
            reset: "\x1b[0m",
        }
    }
}

/// Collects diagnostics through every loading step.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        if !self.items.contains(&d) {
            self.items.push(d);
        }
    }

    pub fn error(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Diagnostic::error(span, message));
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Orders diagnostics by file, line and column so output is stable.
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| {
            d.span
                .map(|s| (0, s.file, s.line, s.col))
                .unwrap_or((1, Default::default(), 0, 0))
        });
    }
}

/// Closest candidate to `word` by edit distance, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}
