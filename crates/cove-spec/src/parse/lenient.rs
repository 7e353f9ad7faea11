//! What PyYAML and Compose accept and the YAML 1.2 scanner refuses, or
//! reports in a place a reader would not look: flow collections whose
//! later lines sit at or left of their key's column (re-indented in a copy
//! of the text, [`reindent_flow`], with each line's added spaces kept to
//! map places back, [`unpad`]), and a key glued to its text
//! (`services:foo`) over indented lines ([`glued_key`]).

use std::collections::HashMap;

/// When the scanner finds a `key:` it cannot take on line `line`
/// (1-based) because the line above is `KEY:TEXT` (no space after the
/// colon: one plain text, which the indented lines would continue): that
/// line, the colon's column (1-based) and the key.
pub(super) fn glued_key(text: &str, line: u32) -> Option<(u32, u32, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let at = (line as usize).checked_sub(1)?;
    let (i, above) = lines[..at.min(lines.len())]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let content = above.trim_start();
    let content = content.strip_prefix("- ").unwrap_or(content);
    let colon = content.find(':')?;
    let key = &content[..colon];
    let after = content[colon + 1..].chars().next()?;
    let plain_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain_key || after.is_whitespace() || matches!(after, '/' | ':') {
        return None;
    }
    let col = above.len() - content.len() + colon + 1;
    Some((i as u32 + 1, col as u32, key.to_string()))
}

/// Column `col` (1-based) of `line` in the fixed text, in the file as written.
pub(super) fn unpad(pads: &HashMap<u32, u32>, line: u32, col: u32) -> u32 {
    match pads.get(&line) {
        Some(&pad) if col > pad => col - pad,
        Some(_) => 1,
        None => col,
    }
}

/// When line `line` (1-based) is inside a flow collection opened on an
/// earlier line: the text with that line and the rest of the collection's
/// lines indented past the column of the key that holds it, and the spaces
/// added to each line. `None` when it is not, or nothing would change.
pub(super) fn reindent_flow(text: &str, line: u32) -> Option<(String, Vec<(u32, u32)>)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = (line as usize).checked_sub(1)?;
    if at >= lines.len() || at == 0 {
        return None;
    }
    // Backwards: the line whose brackets are still open at `line`.
    let mut open = 0i32;
    let mut opening = None;
    for i in (0..at).rev() {
        open += balance(lines[i]);
        if open > 0 {
            opening = Some(i);
            break;
        }
    }
    let opening = opening?;
    // The key that holds the collection: the opening line's first
    // content past any `- ` of block sequence items.
    let first = lines[opening];
    let mut key_col = first.len() - first.trim_start_matches(' ').len();
    let mut rest = &first[key_col..];
    while let Some(r) = rest.strip_prefix("- ") {
        let r2 = r.trim_start_matches(' ');
        key_col += rest.len() - r2.len();
        rest = r2;
    }
    let want = key_col + 1;
    let mut out = String::with_capacity(text.len() + 64);
    let mut added = Vec::new();
    for l in &lines[..at] {
        out.push_str(l);
    }
    let mut depth = open;
    let mut i = at;
    while i < lines.len() {
        let l = lines[i];
        let indent = l.len() - l.trim_start_matches(' ').len();
        let blank = l.trim().is_empty();
        if depth > 0 && !blank && indent < want {
            let pad = want - indent;
            out.extend(std::iter::repeat_n(' ', pad));
            added.push((i as u32 + 1, pad as u32));
        }
        out.push_str(l);
        if depth > 0 {
            depth += balance(l);
        }
        i += 1;
    }
    (!added.is_empty()).then_some((out, added))
}

/// Flow brackets opened minus closed on `line`, outside quotes and comments.
fn balance(line: &str) -> i32 {
    let mut n = 0;
    let mut quote = None;
    let mut prev = ' ';
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
            }
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            // A quote opens a scalar only where one may start.
            (None, '\'' | '"') if matches!(prev, ' ' | '\t' | '[' | '{' | ',' | ':') => {
                quote = Some(c);
            }
            (None, '#') if prev == ' ' || prev == '\t' => break,
            (None, '[' | '{') => n += 1,
            (None, ']' | '}') => n -= 1,
            _ => {}
        }
        prev = c;
    }
    n
}
