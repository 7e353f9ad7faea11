//! `extends`: a service built on another one, of the same file or another,
//! through a chain of any length (cycles reported once).

use std::path::{Path, PathBuf};

use super::{Loader, compose_validator, validate_xcove_of_service};
use crate::diag::Diagnostic;
use crate::interpolate::Vars;
use crate::merge::merge;
use crate::node::{Map, Node};
use crate::schema::Path as SchemaPath;
use crate::source::Span;

impl Loader {
    /// Resolves `extends` for every service of `doc`.
    pub(super) fn extends(&mut self, doc: &mut Node, file: &Path, vars: &Vars) {
        let Some(services) = doc
            .as_map()
            .and_then(|m| m.get("services"))
            .and_then(Node::as_map)
            .filter(|s| {
                s.iter()
                    .any(|(_, svc)| svc.as_map().is_some_and(|m| m.contains("extends")))
            })
            .cloned()
        else {
            return;
        };
        let mut resolved: Vec<(String, Node)> = Vec::new();
        for (name, svc) in services.iter() {
            if svc.as_map().is_some_and(|m| m.contains("extends")) {
                let mut chain = Vec::new();
                if let Some(node) =
                    self.resolve_service(file, name, &services, file, vars, &mut chain)
                {
                    resolved.push((name.to_string(), node));
                }
            }
        }
        if let Some(target) = doc
            .as_map_mut()
            .and_then(|m| m.get_mut("services"))
            .and_then(Node::as_map_mut)
        {
            for (name, node) in resolved {
                if let Some(slot) = target.get_mut(&name) {
                    *slot = node;
                }
            }
        }
    }

    /// The service `name` of `file` with its `extends` chain applied.
    /// `local` are the services of the document being loaded (`current`).
    fn resolve_service(
        &mut self,
        file: &Path,
        name: &str,
        local: &Map,
        current: &Path,
        vars: &Vars,
        chain: &mut Vec<(PathBuf, String, Span)>,
    ) -> Option<Node> {
        let svc = if file == current {
            local.get(name).cloned()?
        } else {
            let svc = self
                .extends_file(file, vars, None)?
                .as_map()?
                .get("services")?
                .as_map()?
                .get(name)?
                .clone();
            // An empty base (`nil:`) is an empty service.
            let svc = if svc.is_null() {
                Node::map(svc.span, Map::default())
            } else {
                svc
            };
            if self
                .validated_bases
                .insert((file.to_path_buf(), name.to_string()))
            {
                let path = SchemaPath::root(&format!("services.{name}"));
                compose_validator().validate_at(&svc, "#/$defs/service", &path, &mut self.diags);
                validate_xcove_of_service(name, &svc, &mut self.diags);
            }
            svc
        };
        let Some(ext) = svc.as_map().and_then(|m| m.get("extends")).cloned() else {
            return Some(svc);
        };
        let Some(ext_map) = ext.as_map() else {
            return Some(svc);
        };
        let Some(base_name) = ext_map
            .get("service")
            .and_then(Node::as_text)
            .map(str::to_string)
        else {
            self.diags.push(
                Diagnostic::error(
                    ext.span,
                    format!("`services.{name}.extends` needs `service`"),
                )
                .with_hint("write `extends: {service: base}` or `extends: base`"),
            );
            return Some(svc);
        };
        let base_file = ext_map
            .get("file")
            .and_then(Node::as_text)
            .map(PathBuf::from)
            .unwrap_or_else(|| file.to_path_buf());
        if let Some(pos) = chain
            .iter()
            .position(|(f, n, _)| *f == base_file && *n == base_name)
        {
            let mut names: Vec<String> = chain[pos..].iter().map(|(_, n, _)| n.clone()).collect();
            names.push(name.to_string());
            names.push(base_name.clone());
            let span = chain[pos].2;
            let mut key = names.clone();
            key.pop();
            key.sort();
            if self.reported_cycles.contains(&key) {
                return None;
            }
            self.reported_cycles.push(key);
            self.diags.push(
                Diagnostic::error(span, format!("`extends` cycle: {}", names.join(" → ")))
                    .with_hint("a service cannot extend itself, directly or through others"),
            );
            return None;
        }
        if base_file == file && base_name == name {
            self.diags.push(
                Diagnostic::error(ext.span, format!("service `{name}` extends itself"))
                    .with_hint("name another service in `extends.service`"),
            );
            return None;
        }
        chain.push((file.to_path_buf(), name.to_string(), ext.span));
        let file_span = ext_map.get("file").map(|n| n.span);
        let base = if base_file == current
            || self.extends_file(&base_file, vars, file_span).is_some()
        {
            let exists = if base_file == current {
                local.contains(&base_name)
            } else {
                self.extends_file(&base_file, vars, None)
                    .and_then(|d| {
                        d.as_map()?
                            .get("services")?
                            .as_map()
                            .map(|s| s.contains(&base_name))
                    })
                    .unwrap_or(false)
            };
            if !exists {
                let candidates: Vec<String> = if base_file == current {
                    local.keys().map(str::to_string).collect()
                } else {
                    self.extends_file(&base_file, vars, None)
                        .and_then(|d| {
                            d.as_map()?
                                .get("services")?
                                .as_map()
                                .map(|s| s.keys().map(str::to_string).collect())
                        })
                        .unwrap_or_default()
                };
                let span = ext_map.get("service").map(|n| n.span).unwrap_or(ext.span);
                let mut d = Diagnostic::error(
                    span,
                    format!(
                        "service `{name}` extends `{base_name}`, which is not defined in {}",
                        base_file.display()
                    ),
                );
                d.hint = Some(
                    match crate::diag::suggest(&base_name, candidates.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("services there: {}", candidates.join(", ")),
                    },
                );
                self.diags.push(d);
                chain.pop();
                return None;
            }
            self.resolve_service(&base_file, &base_name, local, current, vars, chain)
        } else {
            if base_file.is_file() {
                self.diags.push(
                    Diagnostic::error(
                        file_span.or(Some(ext.span)),
                        format!("`{}` defines no services", base_file.display()),
                    )
                    .with_hint("`extends.file` must name a compose file with the base service"),
                );
            }
            None
        };
        chain.pop();
        let base = base?;
        let mut child = svc;
        if let Some(m) = child.as_map_mut() {
            m.remove("extends");
        }
        let mut merged = merge(base, child, &["services", name]);
        if let Some(m) = merged.as_map_mut() {
            m.remove("extends");
        }
        Some(merged)
    }

    /// A file named by `extends.file`, prepared once (no include, extends unresolved).
    fn extends_file(&mut self, path: &Path, vars: &Vars, reference: Option<Span>) -> Option<&Node> {
        if !self.extends_files.contains_key(path) {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let docs = self.prepare_file(path, reference, vars, &dir, false);
            // `reduce`, not a fold onto an empty map: a single document keeps
            // its `!reset` tags, which apply when a service extends it.
            let merged = docs.and_then(|docs| docs.into_iter().reduce(|acc, d| merge(acc, d, &[])));
            self.extends_files.insert(path.to_path_buf(), merged);
        }
        self.extends_files.get(path).and_then(Option::as_ref)
    }
}
