//! A JSON Schema validator over spanned [`Node`]s.
//!
//! The Compose Specification publishes its grammar as a JSON Schema; validating
//! against it (and against our generated `x-cove` schema) catches unknown keys,
//! wrong types and bad enum values everywhere, with one mechanism. Unlike a
//! generic validator it reports *every* problem at the exact node, with a hint:
//! the closest valid key, the valid values, or the accepted forms.
//!
//! Supported keywords: `$ref` (local), `type`, `properties`,
//! `patternProperties`, `additionalProperties`, `required`, `enum`, `const`,
//! `oneOf`/`anyOf` (as "any of"), `allOf`, `items`, `uniqueItems`, `minimum`,
//! `maximum`, `minItems`, `pattern`. Unknown keywords are ignored.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use regex::Regex;
use serde_json::Value as Json;

use crate::diag::{Diagnostic, Diagnostics, suggest};
use crate::node::{Kind, Map, Node, Resolved};

/// A schema as a JSON object.
type JsonObject = serde_json::Map<String, Json>;

/// A path inside the document, for messages: `services.web.ports[0]`.
#[derive(Debug, Clone, Default)]
pub struct Path(Vec<String>);

impl Path {
    pub fn root(first: &str) -> Path {
        Path(vec![first.to_string()])
    }

    fn key(&self, k: &str) -> Path {
        let mut p = self.0.clone();
        p.push(format!(".{k}"));
        Path(p)
    }

    fn index(&self, i: usize) -> Path {
        let mut p = self.0.clone();
        p.push(format!("[{i}]"));
        Path(p)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: String = self.0.concat();
        f.write_str(s.trim_start_matches('.'))
    }
}

/// Validates nodes against one JSON schema document.
pub struct Validator {
    root: Json,
    regexes: Mutex<HashMap<String, Option<Regex>>>,
}

impl Validator {
    pub fn new(root: Json) -> Validator {
        Validator {
            root,
            regexes: Mutex::new(HashMap::new()),
        }
    }

    /// Validates `node` against the root schema.
    pub fn validate_root(&self, node: &Node, path: &Path, diags: &mut Diagnostics) {
        self.validate(node, &self.root, path, diags);
    }

    /// Validates `node` against the schema at `pointer` (`#/$defs/service`).
    pub fn validate_at(&self, node: &Node, pointer: &str, path: &Path, diags: &mut Diagnostics) {
        if let Some(schema) = self.resolve_ref(pointer) {
            self.validate(node, schema, path, diags);
        }
    }

    fn resolve_ref(&self, r: &str) -> Option<&Json> {
        let pointer = r.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// Follows `$ref`s until a schema without one.
    fn deref<'a>(&'a self, mut schema: &'a Json) -> &'a Json {
        for _ in 0..32 {
            match schema.get("$ref").and_then(Json::as_str) {
                Some(r) => match self.resolve_ref(r) {
                    Some(s) => schema = s,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    /// Whether `text` matches `pattern` (compiled once, cached).
    fn matches(&self, pattern: &str, text: &str) -> bool {
        let mut cache = self.regexes.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(text))
    }

    fn validate(&self, node: &Node, schema: &Json, path: &Path, diags: &mut Diagnostics) {
        // `!reset` says "nothing here": its value is never used (the merge
        // removes it), so it is not checked, as Compose does not.
        if node.tag == Some(crate::node::MergeTag::Reset) {
            return;
        }
        let schema = self.deref(schema);
        let Some(obj) = schema.as_object() else {
            return; // `true` / `{}`-like schemas accept anything
        };
        if let Some(all) = obj.get("allOf").and_then(Json::as_array) {
            for s in all {
                self.validate(node, s, path, diags);
            }
        }
        let any = obj
            .get("oneOf")
            .or_else(|| obj.get("anyOf"))
            .and_then(Json::as_array);
        if let Some(branches) = any {
            self.validate_any(node, branches, path, diags);
        }
        if let Some(types) = obj.get("type")
            && !type_matches(node, types)
        {
            diags.push(
                Diagnostic::error(
                    node.span,
                    format!(
                        "`{path}` must be {}, not {}",
                        describe_types(types),
                        node.type_name()
                    ),
                )
                .with_hint(type_hint(node, types, path)),
            );
            return;
        }
        if let Some(values) = obj.get("enum").and_then(Json::as_array) {
            let v = node.to_json();
            if !values.iter().any(|e| json_eq(e, &v)) {
                diags.push(enum_error(node, path, values));
            }
        }
        if let Some(c) = obj.get("const")
            && !json_eq(c, &node.to_json())
        {
            diags.push(
                Diagnostic::error(node.span, format!("`{path}` must be {}", show(c)))
                    .with_hint(format!("write {}", show(c))),
            );
        }
        match &node.kind {
            Kind::Map(map) => self.validate_map(node, map, obj, path, diags),
            Kind::Seq(items) => self.validate_seq(node, items, obj, path, diags),
            Kind::Scalar(_) | Kind::Null => self.validate_scalar(node, obj, path, diags),
        }
    }

    /// A map's keys: `properties`, `patternProperties`,
    /// `additionalProperties`, `required`.
    fn validate_map(
        &self,
        node: &Node,
        map: &Map,
        obj: &JsonObject,
        path: &Path,
        diags: &mut Diagnostics,
    ) {
        let props = obj.get("properties").and_then(Json::as_object);
        let patterns = obj.get("patternProperties").and_then(Json::as_object);
        let additional = obj.get("additionalProperties");
        for entry in &map.entries {
            let key = entry.key.as_str();
            let child = path.key(key);
            let mut matched = false;
            if let Some(s) = props.and_then(|p| p.get(key)) {
                matched = true;
                self.validate(&entry.value, s, &child, diags);
            }
            if let Some(patterns) = patterns {
                for (pattern, s) in patterns {
                    if self.matches(pattern, key) {
                        matched = true;
                        self.validate(&entry.value, s, &child, diags);
                    }
                }
            }
            if matched {
                continue;
            }
            match additional {
                Some(Json::Bool(false)) => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    diags.push(unknown_key(key, entry.key_span, path, &known, patterns));
                }
                Some(s @ Json::Object(_)) => {
                    self.validate(&entry.value, s, &child, diags);
                }
                _ => {}
            }
        }
        if let Some(required) = obj.get("required").and_then(Json::as_array) {
            for r in required.iter().filter_map(Json::as_str) {
                if !map.contains(r) {
                    diags.push(
                        Diagnostic::error(
                            node.span,
                            format!("`{path}` is missing the required key `{r}`"),
                        )
                        .with_hint(format!("add `{r}:` here")),
                    );
                }
            }
        }
    }

    /// A list's items: `items`, `uniqueItems`, `minItems`.
    fn validate_seq(
        &self,
        node: &Node,
        items: &[Node],
        obj: &JsonObject,
        path: &Path,
        diags: &mut Diagnostics,
    ) {
        if let Some(s) = obj.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.validate(item, s, &path.index(i), diags);
            }
        }
        if obj.get("uniqueItems") == Some(&Json::Bool(true)) {
            let values: Vec<Json> = items.iter().map(Node::to_json).collect();
            for (i, v) in values.iter().enumerate() {
                if let Some(first) = values[..i].iter().position(|w| w == v) {
                    diags.push(
                        Diagnostic::error(
                            items[i].span,
                            format!("`{path}` lists {} twice", show(v)),
                        )
                        .with_hint(format!(
                            "remove one of the duplicates (the first is item {})",
                            first + 1
                        )),
                    );
                }
            }
        }
        if let Some(min) = obj.get("minItems").and_then(Json::as_u64)
            && (items.len() as u64) < min
        {
            diags.push(
                Diagnostic::error(
                    node.span,
                    format!("`{path}` must have at least {min} item(s)"),
                )
                .with_hint("add the missing items, or remove the key"),
            );
        }
    }

    /// A scalar's value: `minimum`, `maximum`, `pattern`.
    fn validate_scalar(&self, node: &Node, obj: &JsonObject, path: &Path, diags: &mut Diagnostics) {
        let v = node.to_json();
        if let Some(n) = v.as_f64() {
            if let Some(min) = obj.get("minimum").and_then(Json::as_f64)
                && n < min
            {
                diags.push(
                    Diagnostic::error(
                        node.span,
                        format!("`{path}` must be at least {min}, got {n}"),
                    )
                    .with_hint(format!("use a value of {min} or more")),
                );
            }
            if let Some(max) = obj.get("maximum").and_then(Json::as_f64)
                && n > max
            {
                diags.push(
                    Diagnostic::error(
                        node.span,
                        format!("`{path}` must be at most {max}, got {n}"),
                    )
                    .with_hint(format!("use a value of {max} or less")),
                );
            }
        }
        if let (Some(pattern), Some(s)) = (obj.get("pattern").and_then(Json::as_str), v.as_str())
            && !self.matches(pattern, s)
        {
            diags.push(
                Diagnostic::error(
                    node.span,
                    format!("`{path}` has an invalid value {}", show(&v)),
                )
                .with_hint(format!("the value must match the pattern `{pattern}`")),
            );
        }
    }

    /// What a schema accepts, in words ("a string", "a list", ...).
    fn describe_branch(&self, b: &Json) -> Vec<String> {
        let b = self.deref(b);
        if let Some(t) = b.get("type") {
            return vec![describe_types(t)];
        }
        if let Some(inner) = b
            .get("oneOf")
            .or_else(|| b.get("anyOf"))
            .and_then(Json::as_array)
        {
            return inner.iter().flat_map(|i| self.describe_branch(i)).collect();
        }
        if let Some(c) = single_value(b) {
            return vec![show(&c)];
        }
        vec!["a value".to_string()]
    }

    /// `oneOf`/`anyOf`: pick the branches whose type fits the node and report
    /// the errors of the best one, or say which forms are accepted.
    fn validate_any(&self, node: &Node, branches: &[Json], path: &Path, diags: &mut Diagnostics) {
        let fitting: Vec<&Json> = branches
            .iter()
            .map(|b| self.deref(b))
            .filter(|b| branch_fits(self, node, b))
            .collect();
        if fitting.is_empty() {
            let mut kinds: Vec<String> = Vec::new();
            for b in branches {
                for d in self.describe_branch(b) {
                    if !kinds.contains(&d) {
                        kinds.push(d);
                    }
                }
            }
            diags.push(
                Diagnostic::error(
                    node.span,
                    format!(
                        "`{path}` must be {}, not {}",
                        kinds.join(" or "),
                        node.type_name()
                    ),
                )
                .with_hint(type_hint(node, &Json::Null, path)),
            );
            return;
        }
        let consts: Vec<Json> = fitting.iter().filter_map(|b| single_value(b)).collect();
        if !consts.is_empty() && consts.len() == fitting.len() {
            let v = node.to_json();
            if !consts.iter().any(|c| json_eq(c, &v)) {
                diags.push(enum_error(node, path, &consts));
            }
            return;
        }
        let mut best: Option<Diagnostics> = None;
        for b in fitting {
            let mut local = Diagnostics::default();
            self.validate(node, b, path, &mut local);
            if !local.has_errors() {
                return;
            }
            if best
                .as_ref()
                .is_none_or(|x| local.error_count() < x.error_count())
            {
                best = Some(local);
            }
        }
        for d in best.unwrap_or_default().into_vec() {
            diags.push(d);
        }
    }
}

/// The one value a `{const: x}` or `{enum: [x]}` branch allows.
fn single_value(b: &Json) -> Option<Json> {
    if let Some(c) = b.get("const") {
        return Some(c.clone());
    }
    match b.get("enum").and_then(Json::as_array) {
        Some(values) if values.len() == 1 => Some(values[0].clone()),
        _ => None,
    }
}

fn enum_error(node: &Node, path: &Path, values: &[Json]) -> Diagnostic {
    let v = node.to_json();
    let valid: Vec<String> = values.iter().map(show).collect();
    let mut d = Diagnostic::error(
        node.span,
        format!("`{path}` has an invalid value {}", show(&v)),
    );
    let mut hint = format!("valid values: {}", valid.join(", "));
    if let Some(s) = v.as_str() {
        let names: Vec<&str> = values.iter().filter_map(Json::as_str).collect();
        if let Some(best) = suggest(s, names) {
            hint = format!("did you mean `{best}`? ({hint})");
        }
    }
    d.hint = Some(hint);
    d
}

fn branch_fits(v: &Validator, node: &Node, branch: &Json) -> bool {
    match branch.get("type") {
        Some(t) => type_matches(node, t),
        None => match branch
            .get("oneOf")
            .or_else(|| branch.get("anyOf"))
            .and_then(Json::as_array)
        {
            Some(inner) => inner.iter().any(|b| branch_fits(v, node, v.deref(b))),
            None => true,
        },
    }
}

fn type_matches(node: &Node, types: &Json) -> bool {
    match types {
        Json::String(t) => one_type_matches(node, t),
        Json::Array(ts) => ts
            .iter()
            .filter_map(Json::as_str)
            .any(|t| one_type_matches(node, t)),
        _ => true,
    }
}

fn one_type_matches(node: &Node, t: &str) -> bool {
    let resolved = match &node.kind {
        Kind::Map(_) => return t == "object",
        Kind::Seq(_) => return t == "array",
        Kind::Null => return t == "null",
        Kind::Scalar(s) => s.resolve(),
    };
    match (t, resolved) {
        ("null", Resolved::Null) => true,
        ("boolean", Resolved::Bool(_)) => true,
        ("integer", Resolved::Int(_)) => true,
        ("integer", Resolved::Float(f)) => f.fract() == 0.0 && f.is_finite(),
        ("number", Resolved::Int(_) | Resolved::Float(_)) => true,
        // As in Compose, `user: 1000` is not a string: it must be quoted.
        ("string", Resolved::Str(_)) => true,
        _ => false,
    }
}

fn describe_types(types: &Json) -> String {
    let one = |t: &str| match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "null" => "null",
        _ => "a value",
    };
    match types {
        Json::String(t) => one(t).to_string(),
        Json::Array(ts) => {
            let v: Vec<&str> = ts.iter().filter_map(Json::as_str).map(one).collect();
            v.join(" or ")
        }
        _ => "a value".to_string(),
    }
}

fn type_hint(node: &Node, types: &Json, path: &Path) -> String {
    if path.0.iter().any(|p| p.contains("x-cove")) {
        return "see the x-cove reference, docs/reference/x-cove.md".to_string();
    }
    match (&node.kind, types) {
        (Kind::Map(_), _) => "remove the nested keys, or check the indentation".to_string(),
        (Kind::Seq(_), _) => "write a single value instead of a list".to_string(),
        (Kind::Scalar(_), Json::String(t)) if t == "string" => {
            "quote the value to make it a string".to_string()
        }
        _ => "see the Compose specification for the accepted forms".to_string(),
    }
}

fn unknown_key(
    key: &str,
    span: crate::source::Span,
    path: &Path,
    known: &[&str],
    patterns: Option<&serde_json::Map<String, Json>>,
) -> Diagnostic {
    let location = match path.to_string().as_str() {
        "" => "at the top level".to_string(),
        p => {
            let parts: Vec<&str> = p.splitn(3, '.').collect();
            match parts.as_slice() {
                ["services", name] => format!("in service `{name}`"),
                _ => format!("in `{p}`"),
            }
        }
    };
    let mut d = Diagnostic::error(span, format!("unknown key `{key}` {location}"));
    let extensions = patterns.is_some_and(|p| p.contains_key("^x-"));
    let mut hint = String::new();
    if let Some(best) = suggest(key, known.iter().copied()) {
        let _ = write!(hint, "did you mean `{best}`?");
    } else if !known.is_empty() && known.len() <= 12 {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        let _ = write!(hint, "valid keys here: {}", list.join(", "));
    } else if known.is_empty() && patterns.is_some() {
        let list: Vec<String> = patterns
            .into_iter()
            .flat_map(|p| p.keys())
            .map(|k| format!("`{k}`"))
            .collect();
        let _ = write!(hint, "keys here must match {}", list.join(" or "));
    } else {
        let _ = write!(
            hint,
            "see the Compose specification for the keys allowed here"
        );
    }
    if extensions && !hint.starts_with("did you mean") {
        let _ = write!(hint, "; custom fields must start with `x-`");
    }
    d.hint = Some(hint);
    d
}

fn show(v: &Json) -> String {
    match v {
        Json::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
