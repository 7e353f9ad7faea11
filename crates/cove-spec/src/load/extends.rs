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

/// The services an `extends` chain went through: file, name, and the
/// span of its `extends`.
type Chain = Vec<(PathBuf, String, Span)>;

/// What a service's `extends` names.
struct Base {
    file: PathBuf,
    service: String,
    /// Of `extends`, `extends.service` (else `extends`), `extends.file`.
    span: Span,
    service_span: Span,
    file_span: Option<Span>,
}

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
                let mut chain = Chain::new();
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
        chain: &mut Chain,
    ) -> Option<Node> {
        let svc = self.service_node(file, name, local, current, vars)?;
        let Some(ext) = svc.as_map().and_then(|m| m.get("extends")).cloned() else {
            return Some(svc);
        };
        let Some(ext_map) = ext.as_map() else {
            return Some(svc);
        };
        let Some(service) = ext_map
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
        let base = Base {
            file: ext_map
                .get("file")
                .and_then(Node::as_text)
                .map(PathBuf::from)
                .unwrap_or_else(|| file.to_path_buf()),
            service,
            span: ext.span,
            service_span: ext_map.get("service").map(|n| n.span).unwrap_or(ext.span),
            file_span: ext_map.get("file").map(|n| n.span),
        };
        if self.extends_loop(file, name, &base, chain) {
            return None;
        }
        chain.push((file.to_path_buf(), name.to_string(), ext.span));
        let resolved = self.base_service(name, &base, local, current, vars, chain);
        chain.pop();
        let base = resolved?;
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

    /// The service `name` of `file` as written (`local`, when `file` is the
    /// document being loaded); one of another file is validated, once.
    fn service_node(
        &mut self,
        file: &Path,
        name: &str,
        local: &Map,
        current: &Path,
        vars: &Vars,
    ) -> Option<Node> {
        if file == current {
            return local.get(name).cloned();
        }
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
        Some(svc)
    }

    /// Whether `name` of `file` extending `base` closes a loop: a cycle
    /// through `chain` (reported once) or a service extending itself.
    fn extends_loop(&mut self, file: &Path, name: &str, base: &Base, chain: &Chain) -> bool {
        if let Some(pos) = chain
            .iter()
            .position(|(f, n, _)| *f == base.file && *n == base.service)
        {
            let mut names: Vec<String> = chain[pos..].iter().map(|(_, n, _)| n.clone()).collect();
            names.push(name.to_string());
            names.push(base.service.clone());
            let span = chain[pos].2;
            let mut key = names.clone();
            key.pop();
            key.sort();
            if self.reported_cycles.contains(&key) {
                return true;
            }
            self.reported_cycles.push(key);
            self.diags.push(
                Diagnostic::error(span, format!("`extends` cycle: {}", names.join(" → ")))
                    .with_hint("a service cannot extend itself, directly or through others"),
            );
            return true;
        }
        if base.file == file && base.service == name {
            self.diags.push(
                Diagnostic::error(base.span, format!("service `{name}` extends itself"))
                    .with_hint("name another service in `extends.service`"),
            );
            return true;
        }
        false
    }

    /// The service `base` names, its own `extends` applied; `None` (said
    /// why) when its file has no services or it is not there.
    fn base_service(
        &mut self,
        name: &str,
        base: &Base,
        local: &Map,
        current: &Path,
        vars: &Vars,
        chain: &mut Chain,
    ) -> Option<Node> {
        if base.file != current
            && self
                .extends_file(&base.file, vars, base.file_span)
                .is_none()
        {
            if base.file.is_file() {
                self.diags.push(
                    Diagnostic::error(
                        base.file_span.or(Some(base.span)),
                        format!("`{}` defines no services", base.file.display()),
                    )
                    .with_hint("`extends.file` must name a compose file with the base service"),
                );
            }
            return None;
        }
        // The services of the base's file (to find it, or suggest one).
        let services: Vec<String> = if base.file == current {
            local.keys().map(str::to_string).collect()
        } else {
            self.extends_file(&base.file, vars, None)
                .and_then(|d| {
                    d.as_map()?
                        .get("services")?
                        .as_map()
                        .map(|s| s.keys().map(str::to_string).collect())
                })
                .unwrap_or_default()
        };
        if services.is_empty() && base.file != current {
            self.diags.push(
                Diagnostic::error(
                    base.file_span.or(Some(base.span)),
                    format!(
                        "service `{name}` extends `{}` from {}, which has no services",
                        base.service,
                        base.file.display()
                    ),
                )
                .with_hint(format!(
                    "`extends.file` must name a compose file whose `services:` holds `{}`",
                    base.service
                )),
            );
            return None;
        }
        if !services.contains(&base.service) {
            let mut d = Diagnostic::error(
                base.service_span,
                format!(
                    "service `{name}` extends `{}`, which is not defined in {}",
                    base.service,
                    base.file.display()
                ),
            );
            d.hint = Some(
                match crate::diag::suggest(&base.service, services.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("services there: {}", services.join(", ")),
                },
            );
            self.diags.push(d);
            return None;
        }
        self.resolve_service(&base.file, &base.service, local, current, vars, chain)
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
