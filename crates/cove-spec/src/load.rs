//! Loading: files → one canonical tree, in Compose's named steps.
//!
//! Per file and per YAML document: parse (spans) → interpolate → cast →
//! validate (Compose schema and `x-cove` schema) → canonicalise (long forms,
//! absolute paths) → `include` → `extends`. Then every file merges onto the
//! previous ones, and `resolve.rs` turns the tree into the App model.
//! Every step records problems in one [`Diagnostics`] and goes on, so one run
//! reports everything that is wrong.
//!
//! The `extends` step (chains across files, cycles) is the child module
//! `load/extends.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::canonical::{self, Ctx};
use crate::diag::{Diagnostic, Diagnostics};
use crate::interpolate::{Origin, Vars, interpolate_node};
use crate::merge::merge;
use crate::node::{Kind, Map, Node};
use crate::schema::{Path as SchemaPath, Validator};
use crate::source::{SourceMap, Span};
use crate::{cast, dotenv, parse, xcove};

mod extends;

/// The Compose Specification's JSON schema (compose-spec/compose-go,
/// Apache-2.0), embedded so the binary needs no files beside it.
pub const COMPOSE_SCHEMA: &str = include_str!("../schema/compose-spec.json");

fn compose_validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        Validator::new(serde_json::from_str(COMPOSE_SCHEMA).unwrap_or(Json::Bool(true)))
    })
}

fn xcove_validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(xcove::json_schema()))
}

/// Reads and merges Compose files; owns the sources and the diagnostics.
pub struct Loader {
    pub sources: SourceMap,
    pub diags: Diagnostics,
    home: Option<String>,
    /// Files loaded only as `extends` bases: canonical, extends unresolved.
    extends_files: HashMap<PathBuf, Option<Node>>,
    /// Files being included, outermost first, to detect include cycles.
    include_stack: Vec<PathBuf>,
    /// `extends` cycles already reported (sorted names), to report each once.
    reported_cycles: Vec<Vec<String>>,
    /// Services of `extends` files already validated.
    validated_bases: std::collections::HashSet<(PathBuf, String)>,
    /// False for `cove config --no-interpolate`: `${...}` kept as written.
    pub interpolate: bool,
}

impl Loader {
    pub fn new(home: Option<String>) -> Loader {
        Loader {
            sources: SourceMap::default(),
            diags: Diagnostics::default(),
            home,
            extends_files: HashMap::new(),
            include_stack: Vec::new(),
            reported_cycles: Vec::new(),
            validated_bases: Default::default(),
            interpolate: true,
        }
    }

    /// Reads a file into the source map; a missing file is an error at
    /// `reference` (the key that named it), or without a place.
    pub fn read(
        &mut self,
        path: &Path,
        reference: Option<Span>,
        what: &str,
    ) -> Option<crate::source::FileId> {
        match fs_err::read_to_string(path) {
            Ok(text) => Some(self.sources.add(path.to_path_buf(), text)),
            Err(e) => {
                let msg = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("{what} `{}` not found", path.display())
                } else {
                    format!("cannot read {what} `{}`: {}", path.display(), io_reason(&e))
                };
                self.diags.push(Diagnostic::error(reference, msg).with_hint(
                    "check the path; relative paths are resolved from the project directory",
                ));
                None
            }
        }
    }

    /// Loads env files into `vars` (values already set win).
    /// Among the files, a later one overrides an earlier one; all of them
    /// lose to variables already set (the process environment).
    pub fn read_env_files(&mut self, vars: &mut Vars, files: &[PathBuf], reference: Option<Span>) {
        let mut batch: indexmap::IndexMap<String, (String, PathBuf)> = indexmap::IndexMap::new();
        for path in files {
            let Some(id) = self.read(path, reference, "env file") else {
                continue;
            };
            let text = self.sources.file(id).text.clone();
            let lookup = |n: &str| {
                vars.get(n)
                    .map(str::to_string)
                    .or_else(|| batch.get(n).map(|(v, _)| v.clone()))
            };
            let values = dotenv::parse(id, &text, &lookup, &mut self.diags);
            for (k, v) in values {
                batch.insert(k, (v, path.clone()));
            }
            vars.files.push(path.clone());
        }
        for (k, (v, path)) in batch {
            vars.set_default(&k, v, Origin::File(path));
        }
    }

    /// Loads `files` in order and merges them (Compose override semantics).
    /// Relative paths resolve against `base_dir`.
    pub fn load_files(
        &mut self,
        files: &[(PathBuf, Option<Span>)],
        vars: &Vars,
        base_dir: &Path,
    ) -> Node {
        let mut acc = Node::map(Span::default(), Map::default());
        for (path, reference) in files {
            for doc in self.load_file(path, *reference, vars, base_dir) {
                acc = merge(acc, doc, &[]);
            }
        }
        acc
    }

    fn load_file(
        &mut self,
        path: &Path,
        reference: Option<Span>,
        vars: &Vars,
        base_dir: &Path,
    ) -> Vec<Node> {
        let Some(mut docs) = self.prepare_file(path, reference, vars, base_dir, true) else {
            return Vec::new();
        };
        for doc in &mut docs {
            self.includes(doc, vars, base_dir);
            self.extends(doc, path, vars);
        }
        docs
    }

    /// Parse, interpolate, cast, validate and canonicalise one file.
    /// `validate: false` is for files read only as `extends` bases: as in
    /// Compose, only the services actually used from them are validated.
    fn prepare_file(
        &mut self,
        path: &Path,
        reference: Option<Span>,
        vars: &Vars,
        base_dir: &Path,
        validate: bool,
    ) -> Option<Vec<Node>> {
        let id = self.read(path, reference, "compose file")?;
        let text = self.sources.file(id).text.clone();
        let mut docs = Vec::new();
        for mut doc in parse::parse(id, &text, &mut self.diags) {
            if doc.is_null() {
                continue;
            }
            if doc.as_map().is_none() {
                self.diags.push(
                    Diagnostic::error(
                        doc.span,
                        format!(
                            "the top level of a compose file must be a mapping, not {}",
                            doc.type_name()
                        ),
                    )
                    .with_hint("start the file with keys such as `services:`"),
                );
                continue;
            }
            if self.interpolate {
                interpolate_node(&mut doc, vars, &mut self.diags);
            }
            cast::cast(&mut doc, &mut self.diags);
            if let Some(map) = doc.as_map_mut()
                && let Some(e) = map.remove("version")
            {
                self.diags.push(
                    Diagnostic::warning(e.key_span, "the `version` key is obsolete and ignored")
                        .with_hint("remove it; the Compose Specification needs no version"),
                );
            }
            if validate {
                self.validate(&doc);
            }
            let ctx = Ctx {
                base_dir,
                home: self.home.as_deref(),
            };
            canonical::canonicalize(&mut doc, &ctx, &mut self.diags);
            docs.push(doc);
        }
        Some(docs)
    }

    fn validate(&mut self, doc: &Node) {
        compose_validator().validate_root(doc, &SchemaPath::default(), &mut self.diags);
        let Some(map) = doc.as_map() else {
            return;
        };
        let x = xcove_validator();
        if let Some(top) = map.get("x-cove") {
            x.validate_root(top, &SchemaPath::root("x-cove"), &mut self.diags);
            if let Some(v) = top.as_map().and_then(|m| m.get("version"))
                && v.as_int().is_some_and(|n| n != i64::from(xcove::VERSION))
            {
                self.diags.push(
                    Diagnostic::error(
                        v.span,
                        format!(
                            "unsupported x-cove version {}",
                            v.as_text().unwrap_or_default()
                        ),
                    )
                    .with_hint(format!(
                        "this cove understands version {}; upgrade cove",
                        xcove::VERSION
                    )),
                );
            }
        }
        if let Some(services) = map.get("services").and_then(Node::as_map) {
            for (name, svc) in services.iter() {
                validate_xcove_of_service(name, svc, &mut self.diags);
            }
        }
        if let Some(secrets) = map.get("secrets").and_then(Node::as_map) {
            for (name, secret) in secrets.iter() {
                if let Some(ext) = secret.as_map().and_then(|m| m.get("x-cove")) {
                    let path = SchemaPath::root(&format!("secrets.{name}.x-cove"));
                    x.validate_at(ext, "#/x-secret", &path, &mut self.diags);
                }
            }
        }
    }

    /// `include:`: loads each included project and imports its resources;
    /// definitions in the including file win, merged over the imported ones.
    fn includes(&mut self, doc: &mut Node, vars: &Vars, base_dir: &Path) {
        let Some(map) = doc.as_map_mut() else {
            return;
        };
        let Some(entry) = map.remove("include") else {
            return;
        };
        let Some(items) = entry.value.as_seq() else {
            return; // the schema reported it
        };
        for item in items {
            let (paths, project_dir, env_files) = match &item.kind {
                Kind::Scalar(s) => (vec![(s.text.clone(), item.span)], None, None),
                Kind::Map(m) => {
                    let paths = m.get("path").map(texts_with_spans).unwrap_or_default();
                    let pd = m
                        .get("project_directory")
                        .and_then(|n| n.as_text().map(str::to_string));
                    let env = m.get("env_file").map(texts_with_spans);
                    (paths, pd, env)
                }
                _ => continue,
            };
            if let Some((p, span)) = paths
                .iter()
                .find(|(p, _)| p.contains("://") || p.starts_with("git@"))
            {
                self.diags.push(
                    Diagnostic::error(*span, format!("remote include `{p}` is not supported"))
                        .with_hint(
                            "cove reads local files only; download it and include the local copy",
                        ),
                );
                continue;
            }
            if paths.is_empty() {
                self.diags.push(
                    Diagnostic::error(item.span, "`include` entry has no `path`")
                        .with_hint("write `- path: other/compose.yaml`"),
                );
                continue;
            }
            let home = self.home.clone();
            let ctx = Ctx {
                base_dir,
                home: home.as_deref(),
            };
            let files: Vec<(PathBuf, Option<Span>)> = paths
                .iter()
                .map(|(p, s)| (PathBuf::from(canonical::resolve_path(p, &ctx)), Some(*s)))
                .collect();
            if let Some((first, span)) = files.iter().find(|(p, _)| self.include_stack.contains(p))
            {
                let mut chain: Vec<String> = self
                    .include_stack
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let start = self
                    .include_stack
                    .iter()
                    .position(|p| p == first)
                    .unwrap_or(0);
                chain.drain(..start);
                chain.push(first.display().to_string());
                self.diags
                    .push(Diagnostic::error(*span, "include cycle").with_hint(format!(
                        "these files include each other: {}",
                        chain.join(" → ")
                    )));
                continue;
            }
            let sub_dir = match project_dir {
                Some(pd) => PathBuf::from(canonical::resolve_path(&pd, &ctx)),
                None => files[0]
                    .0
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            };
            let mut sub_vars = vars.clone();
            match env_files {
                Some(list) => {
                    for (p, span) in list {
                        let path = PathBuf::from(canonical::resolve_path(&p, &ctx));
                        if path == Path::new("/dev/null") {
                            continue;
                        }
                        self.read_env_files(&mut sub_vars, &[path], Some(span));
                    }
                }
                None => {
                    let default = sub_dir.join(".env");
                    if default.is_file() {
                        self.read_env_files(&mut sub_vars, &[default], None);
                    }
                }
            }
            self.include_stack
                .extend(files.iter().map(|(p, _)| p.clone()));
            let included = self.load_files(&files, &sub_vars, &sub_dir);
            self.include_stack
                .truncate(self.include_stack.len() - files.len());
            import(doc, included);
        }
    }
}

/// A string or a list of strings, each with its span.
fn texts_with_spans(n: &Node) -> Vec<(String, Span)> {
    match &n.kind {
        Kind::Scalar(s) => vec![(s.text.clone(), n.span)],
        Kind::Seq(items) => items
            .iter()
            .filter_map(|p| p.as_text().map(|t| (t.to_string(), p.span)))
            .collect(),
        _ => Vec::new(),
    }
}

fn validate_xcove_of_service(name: &str, svc: &Node, diags: &mut Diagnostics) {
    if let Some(ext) = svc.as_map().and_then(|m| m.get("x-cove")) {
        let path = SchemaPath::root(&format!("services.{name}.x-cove"));
        xcove_validator().validate_at(ext, "#/x-service", &path, diags);
    }
    let refs = svc.as_map().and_then(|m| m.get("secrets"));
    if let Some(Kind::Seq(refs)) = refs.map(|n| &n.kind) {
        for (i, ext) in refs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.as_map()?.get("x-cove")?)))
        {
            let path = SchemaPath::root(&format!("services.{name}.secrets[{i}].x-cove"));
            xcove_validator().validate_at(ext, "#/x-secret-ref", &path, diags);
        }
    }
}

/// Imports an included project's resources into `doc`; `doc`'s own
/// definitions are merged over the imported ones.
fn import(doc: &mut Node, included: Node) {
    let (Some(map), Kind::Map(inc)) = (doc.as_map_mut(), included.kind) else {
        return;
    };
    for section in inc.entries {
        if !matches!(
            section.key.as_str(),
            "services" | "networks" | "volumes" | "secrets" | "configs" | "models"
        ) {
            continue;
        }
        let Kind::Map(defs) = section.value.kind else {
            continue;
        };
        if !map.contains(&section.key) {
            map.insert(
                section.key.clone(),
                section.key_span,
                Node::map(section.value.span, Map::default()),
            );
        }
        let Some(target) = map.get_mut(&section.key).and_then(Node::as_map_mut) else {
            continue;
        };
        for def in defs.entries {
            let path = [section.key.as_str(), def.key.as_str()];
            if target.contains(&def.key) {
                target.update(&def.key, |existing| merge(def.value, existing, &path));
            } else {
                target.entries.push(def);
            }
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    // fs-err already names the path; keep only the OS reason.
    s.rsplit_once(": ").map(|(_, r)| r.to_string()).unwrap_or(s)
}
