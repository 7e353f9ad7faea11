//! The spanned YAML tree every loading step works on.
//!
//! Compose semantics (interpolation, merge, extends, normalisation) are defined
//! on the YAML tree, before any typing, so the loader works on this tree and
//! only converts to the typed [`crate::model`] at the end. Every node keeps its
//! [`Span`], and scalars keep their source text and whether they were quoted,
//! so `"8080"` stays a string and `8080` becomes a number as in YAML 1.2.

use serde_json::Value as Json;

use crate::source::Span;

/// A YAML node with the place it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
    /// `!reset` / `!override` (Compose merge tags), if present.
    pub tag: Option<MergeTag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeTag {
    /// `!reset`: drop the value inherited from earlier files.
    Reset,
    /// `!override`: replace the inherited value instead of merging.
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Map),
}

/// A scalar's text and whether it was written plain (unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub text: String,
    pub plain: bool,
}

/// A scalar resolved by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn resolve(&self) -> Resolved<'_> {
        if !self.plain {
            return Resolved::Str(&self.text);
        }
        resolve_plain(&self.text)
    }
}

/// YAML 1.2 core-schema resolution of a plain scalar.
pub fn resolve_plain(t: &str) -> Resolved<'_> {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(t) {
        return Resolved::Int(i);
    }
    if is_float(t)
        && let Ok(f) = t.parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str(t)
}

/// An integer as Compose's YAML library reads one (Go's literal syntax):
/// `0x1F`, `0o17`, `0b101`, and a leading zero for octal (`017` is 15,
/// as in YAML 1.1 and Compose; `09`, not octal, is 9), `_` between digits.
fn parse_int(t: &str) -> Option<i64> {
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    // Go's literals allow `_` between digits (`1_000`).
    let joined;
    let body = if body.contains('_') {
        if body.starts_with('_') || body.ends_with('_') || body.contains("__") {
            return None;
        }
        joined = body.replace('_', "");
        joined.as_str()
    } else {
        body
    };
    let radix_digits = |digits: &str, radix: u32| -> Option<i64> {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let v = i64::from_str_radix(digits, radix).ok()?;
        Some(if negative { -v } else { v })
    };
    if let Some(h) = body.strip_prefix("0x") {
        return radix_digits(h, 16);
    }
    if let Some(o) = body.strip_prefix("0o") {
        return radix_digits(o, 8);
    }
    if let Some(b) = body.strip_prefix("0b") {
        return radix_digits(b, 2);
    }
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if body.len() > 1
        && body.starts_with('0')
        && let Some(v) = radix_digits(&body[1..], 8)
    {
        return Some(v);
    }
    let v: i64 = body.parse().ok()?;
    Some(if negative { -v } else { v })
}

fn is_float(t: &str) -> bool {
    let s = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mantissa, None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && digits(int),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exp_ok && (frac.is_some() || exp.is_some())
}

/// An ordered mapping with spanned keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// Sets `key`, replacing an existing value in place or appending.
    pub fn insert(&mut self, key: impl Into<String>, key_span: Span, value: Node) {
        let key = key.into();
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = value,
            None => self.entries.push(Entry {
                key,
                key_span,
                value,
            }),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(i))
    }

    /// Replaces the value of `key` (in place) with `f(old value)`.
    pub fn update(&mut self, key: &str, f: impl FnOnce(Node) -> Node) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            let span = e.value.span;
            let old = std::mem::replace(&mut e.value, Node::null(span));
            e.value = f(old);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|e| (e.key.as_str(), &e.value))
    }
}

impl Node {
    pub fn new(span: Span, kind: Kind) -> Node {
        Node {
            span,
            kind,
            tag: None,
        }
    }

    pub fn null(span: Span) -> Node {
        Node::new(span, Kind::Null)
    }

    /// A string scalar (as if quoted).
    pub fn string(span: Span, text: impl Into<String>) -> Node {
        Node::new(
            span,
            Kind::Scalar(Scalar {
                text: text.into(),
                plain: false,
            }),
        )
    }

    /// A plain scalar, typed by YAML rules (`true`, `3`, ...).
    pub fn plain(span: Span, text: impl Into<String>) -> Node {
        Node::new(
            span,
            Kind::Scalar(Scalar {
                text: text.into(),
                plain: true,
            }),
        )
    }

    pub fn map(span: Span, map: Map) -> Node {
        Node::new(span, Kind::Map(map))
    }

    pub fn seq(span: Span, items: Vec<Node>) -> Node {
        Node::new(span, Kind::Seq(items))
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar's text, whatever its YAML type (`8080` gives `"8080"`).
    pub fn as_text(&self) -> Option<&str> {
        self.as_scalar().map(|s| s.text.as_str())
    }

    /// The scalar's text only if it resolves to a string.
    pub fn as_str(&self) -> Option<&str> {
        match self.as_scalar()?.resolve() {
            Resolved::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.as_scalar()?.resolve() {
            Resolved::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.as_scalar()?.resolve() {
            Resolved::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        match &self.kind {
            Kind::Null => true,
            Kind::Scalar(s) => s.resolve() == Resolved::Null,
            _ => false,
        }
    }

    /// A short name of the node's type, for messages ("a mapping", ...).
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar(s) => match s.resolve() {
                Resolved::Null => "null",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) => "an integer",
                Resolved::Float(_) => "a number",
                Resolved::Str(_) => "a string",
            },
        }
    }

    /// The node as JSON, scalars typed by YAML 1.2 rules.
    pub fn to_json(&self) -> Json {
        match &self.kind {
            Kind::Null => Json::Null,
            Kind::Scalar(s) => match s.resolve() {
                Resolved::Null => Json::Null,
                Resolved::Bool(b) => Json::Bool(b),
                Resolved::Int(i) => Json::from(i),
                Resolved::Float(f) => serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .unwrap_or_else(|| Json::String(s.text.clone())),
                Resolved::Str(t) => Json::String(t.to_string()),
            },
            Kind::Seq(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(m) => Json::Object(
                m.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Visits every node, depth first, with mutable access.
    pub fn walk_mut(&mut self, f: &mut impl FnMut(&mut Node)) {
        f(self);
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|n| n.walk_mut(f)),
            Kind::Map(m) => m.entries.iter_mut().for_each(|e| e.value.walk_mut(f)),
            _ => {}
        }
    }
}
