//! Short forms → long forms, and relative paths → absolute, per file.
//!
//! Compose accepts many spellings of the same thing (`ports: ["8080:80"]`,
//! `depends_on: [db]`, `environment: [A=1]`, `build: ./dir`). Each file is
//! brought to the canonical (long) form right after interpolation and
//! validation, so merging, `extends` and the typed model only ever see one
//! form. Relative paths are made absolute against the file's base directory
//! here too, which is what makes `extends` and `include` from other
//! directories correct. The transforms are defensive: a shape they do not
//! recognise is left alone (the schema validator has already reported it).

mod paths;
mod ports;
mod service;
mod volumes;

use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Map, Node};

use paths::resolve_path_node;
pub use paths::{clean_path, resolve_path};
pub use ports::{PortSpec, parse_port};
pub use volumes::{VolumeSpec, parse_volume};

/// What the transforms need to know about the file being canonicalised.
pub struct Ctx<'a> {
    /// Relative paths are resolved against this directory.
    pub base_dir: &'a Path,
    /// `$HOME`, for `~` in paths.
    pub home: Option<&'a str>,
}

/// Canonicalises a whole Compose document in place.
pub fn canonicalize(root: &mut Node, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
    let Some(map) = root.as_map_mut() else {
        return;
    };
    if let Some(services) = map.get_mut("services").and_then(Node::as_map_mut) {
        for e in &mut services.entries {
            if let Some(svc) = e.value.as_map_mut() {
                service::service(svc, ctx, diags);
            }
        }
    }
    for section in ["secrets", "configs"] {
        if let Some(defs) = map.get_mut(section).and_then(Node::as_map_mut) {
            for e in &mut defs.entries {
                if let Some(def) = e.value.as_map_mut()
                    && let Some(file) = def.get_mut("file")
                {
                    resolve_path_node(file, ctx);
                }
            }
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        if let Some(defs) = map.get_mut(section).and_then(Node::as_map_mut) {
            for e in &mut defs.entries {
                if e.value.is_null() {
                    e.value = Node::map(e.value.span, Map::default());
                }
                if let Some(def) = e.value.as_map_mut() {
                    external_name(def, diags);
                    if section == "volumes" {
                        bind_device(def, ctx);
                    }
                    // `labels: ["a=b"]` → `labels: {a: b}`, as for services.
                    if let Some(labels) = def.get_mut("labels") {
                        service::key_values(labels, &format!("{section}.labels"), diags);
                        service::empty_for_null(labels);
                    }
                }
            }
        }
    }
}

/// A `local` volume that binds a host directory (`driver_opts.o: bind`):
/// its `device` made absolute against the file's directory, as Compose does
/// (a relative device would otherwise be relative to the engine's cwd).
fn bind_device(def: &mut Map, ctx: &Ctx<'_>) {
    if def.get("driver").and_then(Node::as_text) != Some("local") {
        return;
    }
    let Some(opts) = def.get_mut("driver_opts").and_then(Node::as_map_mut) else {
        return;
    };
    let binds = opts
        .get("o")
        .and_then(Node::as_text)
        .is_some_and(|o| o.split(',').any(|o| o.trim() == "bind"));
    if binds && let Some(device) = opts.get_mut("device") {
        resolve_path_node(device, ctx);
    }
}

/// `external: {name: x}` → `external: true` + `name: x`.
fn external_name(def: &mut Map, diags: &mut Diagnostics) {
    let Some(ext) = def.entry("external") else {
        return;
    };
    let Some(name) = ext.value.as_map().and_then(|m| m.get("name")).cloned() else {
        return;
    };
    let span = ext.value.span;
    let key_span = ext.key_span;
    diags.push(
        Diagnostic::warning(key_span, "`external.name` is deprecated")
            .with_hint("write `name: ...` beside `external: true`"),
    );
    if let Some(existing) = def.get("name")
        && existing.as_text() != name.as_text()
    {
        diags.push(
            Diagnostic::error(existing.span, "`name` and `external.name` conflict")
                .with_hint("keep only `name`"),
        );
    }
    def.insert("external", key_span, Node::plain(span, "true"));
    def.insert("name", key_span, name);
}
