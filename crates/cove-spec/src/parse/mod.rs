//! YAML text → [`Node`] trees, with spans, anchors, aliases and `<<` merges.
//!
//! Built directly on saphyr-parser's event stream (pure Rust, no panics on
//! bad input) so that every node keeps its line and column. A syntax error
//! stops this one file only; the loader goes on with the others.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Entry, Kind, Map, MergeTag, Node, Scalar};
use crate::source::{FileId, Span};

mod lenient;
#[cfg(test)]
mod tests;

use lenient::{glued_key, reindent_flow, unpad};

/// Aliases expanded beyond this many nodes are refused ("billion laughs").
const MAX_ALIAS_NODES: usize = 1_000_000;

/// Deeper nesting is refused: later steps recurse over the tree.
const MAX_DEPTH: usize = 128;

/// Flow collections re-indented per file, at most (each one a new pass).
const MAX_FLOW_FIXES: usize = 64;

/// Parses every YAML document in `text`. An empty file gives no document.
///
/// A flow collection (`[...]`, `{...}`) in a block whose later lines sit at
/// or left of its key's column (`command: [` … `]` at the key's column) is
/// refused by the YAML 1.2 scanner and accepted by PyYAML and Compose: such
/// lines are indented (in a copy of the text) and the file parsed again;
/// spans still point into the file as written.
pub fn parse(file: FileId, text: &str, diags: &mut Diagnostics) -> Vec<Node> {
    let mut fixed = std::borrow::Cow::Borrowed(text);
    let mut pads: HashMap<u32, u32> = HashMap::new();
    let mut fixes = 0;
    loop {
        let err = match attempt(file, &fixed, &pads, diags) {
            Ok(docs) => return docs,
            Err(None) => return Vec::new(),
            Err(Some(e)) => e,
        };
        let line = err.line;
        if fixes < MAX_FLOW_FIXES
            && err.info.starts_with("invalid indentation")
            && let Some((again, added)) = reindent_flow(&fixed, line)
        {
            fixes += 1;
            for (l, n) in added {
                *pads.entry(l).or_default() += n;
            }
            fixed = std::borrow::Cow::Owned(again);
            continue;
        }
        let tab = indentation_tab(text, line, &err.info);
        let glued = err
            .info
            .starts_with("mapping values are not allowed")
            .then(|| glued_key(text, line))
            .flatten();
        let diag = match (tab, glued) {
            (Some((line, col)), _) => Diagnostic::error(
                Span::new(file, line, col, 1),
                "invalid YAML: a tab is used for indentation; YAML does not allow tabs for indentation",
            )
            .with_hint("indent with spaces (replace the tab)"),
            (None, Some((line, col, key))) => Diagnostic::error(
                Span::new(file, line, col, 1),
                format!(
                    "invalid YAML: `{key}:` has no space after its colon, so this line is a text, not a key, and the lines under it cannot be its value"
                ),
            )
            .with_hint(format!(
                "write `{key}:` alone on its line when the lines under it are its value, or `{key}: value` with a space"
            )),
            (None, None) => Diagnostic::error(
                Span::new(file, line, unpad(&pads, line, err.col + 1), 1),
                format!("invalid YAML: {}", err.info),
            )
            .with_hint("check the indentation and quoting around this place"),
        };
        diags.push(diag);
        return Vec::new();
    }
}

/// A scanner error: 1-based line, 0-based column, what it says.
struct ScanFailure {
    line: u32,
    col: u32,
    info: String,
}

/// One pass over `text` (whose lines `pads` were indented by): the
/// documents, or the scanner's error (`None`: the builder's, reported).
fn attempt(
    file: FileId,
    text: &str,
    pads: &HashMap<u32, u32>,
    diags: &mut Diagnostics,
) -> Result<Vec<Node>, Option<ScanFailure>> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        expanded: 0,
        diags,
        failed: false,
    };
    let mut parser = Parser::new_from_str(text).keep_tags(true);
    loop {
        match parser.next_event() {
            None => return Ok(b.docs),
            Some(Err(e)) => {
                let m = e.marker();
                return Err(Some(ScanFailure {
                    line: m.line() as u32,
                    col: m.col() as u32,
                    info: e.info().to_string(),
                }));
            }
            Some(Ok((event, span))) => {
                let line = span.start.line() as u32;
                let span = Span::new(
                    file,
                    line,
                    unpad(pads, line, span.start.col() as u32 + 1),
                    span.end.index().saturating_sub(span.start.index()).max(1) as u32,
                );
                b.event(event, span);
                if b.failed {
                    return Err(None);
                }
            }
        }
    }
}

/// The place (1-based line and column) of a tab in the indentation of the
/// line a parse error was found on (`line`, 1-based) or the next one: the
/// scanner reports such a tab at the end of the previous value ("found a
/// tab") or says only that tabs are not allowed there. `None` when neither
/// line is indented with a tab, or the error is not about a tab and its
/// line has none.
fn indentation_tab(text: &str, line: u32, info: &str) -> Option<(u32, u32)> {
    let about_tab = info.contains("tab");
    let first = line.max(1);
    text.lines()
        .enumerate()
        .skip(first as usize - 1)
        .take(2)
        .find_map(|(i, l)| {
            let indent = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
            let at = indent.find('\t')?;
            // A tab in the indentation of the error's own line is its
            // cause; on the next line only when the scanner said so.
            (i + 1 == first as usize || about_tab)
                .then(|| (i as u32 + 1, indent[..at].chars().count() as u32 + 1))
        })
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        tag: Option<MergeTag>,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        tag: Option<MergeTag>,
        map: Map,
        /// Maps pulled in with `<<`, applied at the end (explicit keys win).
        merges: Vec<Map>,
        key: Option<(String, Span)>,
        merge_key: bool,
    },
}

struct Builder<'d> {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
    expanded: usize,
    diags: &'d mut Diagnostics,
    failed: bool,
}

fn merge_tag(tag: Option<&saphyr_parser::Tag>) -> Option<MergeTag> {
    let tag = tag?;
    if tag.handle == "!" {
        match tag.suffix.as_str() {
            "reset" => return Some(MergeTag::Reset),
            "override" => return Some(MergeTag::Override),
            _ => {}
        }
    }
    None
}

fn count(n: &Node) -> usize {
    1 + match &n.kind {
        Kind::Seq(items) => items.iter().map(count).sum(),
        Kind::Map(m) => m.entries.iter().map(|e| count(&e.value)).sum(),
        _ => 0,
    }
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !forced_str;
                let mut node = Node::new(
                    span,
                    Kind::Scalar(Scalar {
                        text: text.into_owned(),
                        plain,
                    }),
                );
                if plain && node.is_null() {
                    node.kind = Kind::Null;
                }
                node.tag = merge_tag(tag.as_deref());
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.value(node);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    self.expanded += count(node);
                    if self.expanded > MAX_ALIAS_NODES {
                        self.diags.push(
                            Diagnostic::error(span, "YAML aliases expand to too many nodes")
                                .with_hint("this looks like an alias bomb; reduce nested aliases"),
                        );
                        self.failed = true;
                        return;
                    }
                    let node = node.clone();
                    self.value(node);
                }
                None => {
                    self.diags
                        .push(Diagnostic::error(span, "alias refers to an unknown anchor"));
                    self.value(Node::null(span));
                }
            },
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.diags.push(
                    Diagnostic::error(
                        span,
                        format!("YAML is nested more than {MAX_DEPTH} levels deep"),
                    )
                    .with_hint(
                        "a compose file needs only a few levels; check for runaway brackets",
                    ),
                );
                self.failed = true;
            }
            Event::SequenceStart(anchor, tag) => self.stack.push(Frame::Seq {
                span,
                anchor,
                tag: merge_tag(tag.as_deref()),
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, tag) => self.stack.push(Frame::Map {
                span,
                anchor,
                tag: merge_tag(tag.as_deref()),
                map: Map::default(),
                merges: Vec::new(),
                key: None,
                merge_key: false,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    span,
                    anchor,
                    tag,
                    items,
                }) = self.stack.pop()
                {
                    let mut node = Node::seq(span, items);
                    node.tag = tag;
                    if anchor != 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.value(node);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    span,
                    anchor,
                    tag,
                    mut map,
                    merges,
                    ..
                }) = self.stack.pop()
                {
                    for merged in merges {
                        for e in merged.entries {
                            if !map.contains(&e.key) {
                                map.entries.push(e);
                            }
                        }
                    }
                    let mut node = Node::map(span, map);
                    node.tag = tag;
                    if anchor != 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.value(node);
                }
            }
            Event::DocumentEnd
            | Event::DocumentStart(_)
            | Event::StreamStart
            | Event::StreamEnd
            | Event::Nothing => {}
        }
    }

    /// Places a finished node into its parent (or as a document).
    fn value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                map,
                merges,
                key,
                merge_key,
                ..
            }) => match key.take() {
                None => {
                    let Kind::Scalar(s) = &node.kind else {
                        let text = if node.is_null() {
                            Some(String::new())
                        } else {
                            None
                        };
                        match text {
                            Some(t) => *key = Some((t, node.span)),
                            None => {
                                self.diags.push(
                                    Diagnostic::error(
                                        node.span,
                                        format!("a mapping key must be a string, not {}", node.type_name()),
                                    )
                                    .with_hint("Compose keys are plain names such as `services` or `image`"),
                                );
                                *key = Some((String::new(), node.span));
                            }
                        }
                        return;
                    };
                    *merge_key = s.plain && s.text == "<<";
                    *key = Some((s.text.clone(), node.span));
                }
                Some((k, key_span)) => {
                    if *merge_key {
                        *merge_key = false;
                        match node.kind {
                            Kind::Map(m) => merges.push(m),
                            Kind::Seq(items) => {
                                for item in items {
                                    match item.kind {
                                        Kind::Map(m) => merges.push(m),
                                        _ => self.diags.push(Diagnostic::error(
                                            item.span,
                                            "`<<` merge list items must be mappings",
                                        )),
                                    }
                                }
                            }
                            _ => self.diags.push(
                                Diagnostic::error(node.span, "`<<` merge value must be a mapping")
                                    .with_hint(
                                        "write `<<: *anchor` where `&anchor` names a mapping",
                                    ),
                            ),
                        }
                        return;
                    }
                    if let Some(first) = map.entry(&k) {
                        let first_line = first.key_span.line;
                        self.diags.push(
                            Diagnostic::error(key_span, format!("duplicate key `{k}`"))
                                .with_hint(format!(
                                    "`{k}` is already defined on line {first_line}; keep one of them"
                                )),
                        );
                        return;
                    }
                    map.entries.push(Entry {
                        key: k,
                        key_span,
                        value: node,
                    });
                }
            },
        }
    }
}
