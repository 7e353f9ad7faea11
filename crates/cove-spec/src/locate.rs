//! Where a field of the app was written: for problems found after loading
//! (the runtime's plan works on the App model, which keeps no places), the
//! span of a path of keys in the files the app was loaded from.

use crate::diag::Diagnostics;
use crate::node::{Kind, Node};
use crate::source::{SourceMap, Span};

/// The place of `path` (keys from the top of a Compose file; list indexes
/// as numbers) in the files of `sources`: the value at the whole path, or
/// the key of the longest part of it that is written. Later files (an
/// override) win over earlier ones when they go as deep. `None` when no
/// file has even the first key.
pub fn locate(sources: &SourceMap, path: &[String]) -> Option<Span> {
    let mut best: Option<(usize, Span)> = None;
    for (id, file) in sources.files() {
        let mut diags = Diagnostics::default();
        for doc in crate::parse::parse(id, &file.text, &mut diags) {
            if let Some((depth, span)) = walk(&doc, path)
                && best.is_none_or(|(d, _)| depth >= d)
            {
                best = Some((depth, span));
            }
        }
    }
    best.map(|(_, span)| span)
}

/// How many keys of `path` `node` has, and the place of the last one found
/// (its value, when the whole path is there).
fn walk(node: &Node, path: &[String]) -> Option<(usize, Span)> {
    let (first, rest) = path.split_first()?;
    let (key_span, value) = match &node.kind {
        Kind::Map(m) => {
            let e = m.entry(first)?;
            (e.key_span, &e.value)
        }
        Kind::Seq(items) => {
            let item = items.get(first.parse::<usize>().ok()?)?;
            (item.span, item)
        }
        _ => return None,
    };
    if rest.is_empty() {
        return Some((1, value.span));
    }
    Some(match walk(value, rest) {
        Some((depth, span)) => (depth + 1, span),
        None => (1, key_span),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn finds_the_value_else_the_deepest_key_and_the_last_file_wins() {
        let mut sources = SourceMap::default();
        sources.add(
            "compose.yaml".into(),
            "services:\n  web:\n    restart: allways\n    x-cove:\n      routes:\n        - {path: /a}\n".into(),
        );
        let at = |p: &str| locate(&sources, &path(p)).map(|s| (s.file.0, s.line, s.col));
        assert_eq!(at("services.web.restart"), Some((0, 3, 14)));
        assert_eq!(at("services.web.x-cove.routes.0"), Some((0, 6, 11)));
        // Not written: the service's key.
        assert_eq!(at("services.web.stop_signal"), Some((0, 2, 3)));
        assert_eq!(at("x-cove.gateway"), None);
        sources.add(
            "compose.override.yaml".into(),
            "services:\n  web:\n    restart: never\n".into(),
        );
        let at = |p: &str| locate(&sources, &path(p)).map(|s| (s.file.0, s.line, s.col));
        assert_eq!(at("services.web.restart"), Some((1, 3, 14)));
        assert_eq!(at("services.web.x-cove"), Some((0, 5, 7)));
    }
}
