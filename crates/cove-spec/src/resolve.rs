//! After the merge: profiles, dependencies, environment, checks, defaults,
//! and the conversion of the canonical tree into the typed [`App`].
//!
//! Checks here are the ones that need the whole app: references between
//! services and to top-level resources, dependency cycles, services with
//! nothing to run. Like every step they report all problems, each at the
//! place in the file that causes it.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::diag::{Diagnostic, suggest};
use crate::graph::{Edge, Graph};
use crate::interpolate::Vars;
use crate::load::Loader;
use crate::model::App;
use crate::node::{Kind, Map, Node};
use crate::source::Span;
use crate::units;

type Disabled = IndexMap<String, Vec<String>>;

/// Turns the merged canonical tree into the App model, in steps:
/// profiles, each service's checks and defaults, the top-level sections,
/// the typed conversion.
pub fn resolve(
    mut root: Node,
    name: &str,
    profiles: &[String],
    vars: &Vars,
    project_dir: &Path,
    loader: &mut Loader,
) -> Option<(App, Disabled, Graph)> {
    let root_map = root.as_map_mut()?;
    root_map.remove("name");
    if root_map.entries.is_empty() {
        if !loader.diags.has_errors() {
            loader.diags.push(
                Diagnostic::error(None, "the compose file is empty")
                    .with_hint("add a `services:` section with at least one service"),
            );
        }
        return None;
    }
    let services_span = root_map.entry("services").map(|e| e.key_span);
    let mut services = match root_map.remove("services") {
        Some(e) => match e.value.kind {
            Kind::Map(m) => m,
            _ => Map::default(),
        },
        None => Map::default(),
    };
    let disabled = enabled_profiles(&mut services, profiles);
    if services.entries.is_empty() && disabled.is_empty() && services_span.is_none() {
        loader.diags.push(
            Diagnostic::error(None, "the app defines no services")
                .with_hint("add a `services:` section with at least one service"),
        );
    }
    let (graph, uses_default_network) = each_service(
        &mut services,
        root_map,
        &disabled,
        vars,
        project_dir,
        loader,
    );
    crate::checks::gateway(
        root_map.get("x-cove").and_then(Node::as_map),
        services.entries.iter().filter_map(|e| {
            let x = e.value.as_map()?.get("x-cove")?.as_map()?;
            Some((e.key.as_str(), x))
        }),
        &mut loader.diags,
    );
    crate::checks::notify(
        root_map.get("x-cove").and_then(Node::as_map),
        &mut loader.diags,
    );
    crate::checks::environments(
        root_map.get("x-cove").and_then(Node::as_map),
        &mut loader.diags,
    );
    crate::checks::backup_copies(
        root_map.get("x-cove").and_then(Node::as_map),
        services.entries.iter().filter_map(|e| {
            let x = e.value.as_map()?.get("x-cove")?.as_map()?;
            Some((e.key.as_str(), x))
        }),
        &mut loader.diags,
    );
    for cycle in graph.cycles() {
        let msg = if cycle.path.len() == 2 {
            format!("service `{}` depends on itself", cycle.path[0])
        } else {
            format!("dependency cycle: {}", cycle.path.join(" → "))
        };
        loader.diags.push(
            Diagnostic::error(cycle.span, msg)
                .with_hint("services start after their dependencies, so a cycle can never start; remove one of these `depends_on` entries"),
        );
    }

    top_level(root_map, name, uses_default_network, loader);
    // Typed conversion, services in dependency order.
    if loader.diags.has_errors() {
        return None;
    }
    let typed = typed_services(&services, &graph, loader);
    let mut app_json = match root.to_json() {
        Json::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    app_json.insert("name".into(), Json::String(name.to_string()));
    match serde_json::from_value::<App>(Json::Object(app_json)) {
        Ok(mut app) if !loader.diags.has_errors() => {
            app.services = typed;
            Some((app, disabled, graph))
        }
        Ok(_) => None,
        Err(e) => {
            loader.diags.push(
                Diagnostic::error(None, format!("the app could not be converted: {e}"))
                    .with_hint("check the top-level sections against the Compose specification"),
            );
            None
        }
    }
}

/// Keeps the services whose profiles are enabled; the others, with their
/// profiles.
fn enabled_profiles(services: &mut Map, profiles: &[String]) -> Disabled {
    let mut disabled: Disabled = IndexMap::new();
    services.entries.retain(|e| {
        let own: Vec<String> = e
            .value
            .as_map()
            .and_then(|m| m.get("profiles"))
            .and_then(Node::as_seq)
            .map(|s| {
                s.iter()
                    .filter_map(|p| p.as_text().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let enabled = own.is_empty() || profiles.iter().any(|p| p == "*" || own.contains(p));
        if !enabled {
            disabled.insert(e.key.clone(), own);
        }
        enabled
    });
    disabled
}

/// Each service's dependencies (the graph), environment, checks and
/// defaults; whether one joins the implicit `default` network.
fn each_service(
    services: &mut Map,
    root_map: &Map,
    disabled: &Disabled,
    vars: &Vars,
    project_dir: &Path,
    loader: &mut Loader,
) -> (Graph, bool) {
    let top = |key: &str, root: &Map| -> Vec<String> {
        root.get(key)
            .and_then(Node::as_map)
            .map(|m| m.keys().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let defined_networks = top("networks", root_map);
    let defined_volumes = top("volumes", root_map);
    let defined_secrets = top("secrets", root_map);
    let defined_configs = top("configs", root_map);

    let names: Vec<String> = services.keys().map(str::to_string).collect();
    let mut graph = Graph::default();
    let mut uses_default_network = false;
    for entry in &mut services.entries {
        let svc_name = entry.key.clone();
        let key_span = entry.key_span;
        let Some(svc) = entry.value.as_map_mut() else {
            continue;
        };
        implicit_dependencies(svc);
        let edges = dependencies(&svc_name, svc, &names, disabled, loader);
        graph.deps.insert(svc_name.clone(), edges);
        environment(&svc_name, svc, vars, loader);
        label_files(&svc_name, svc, vars, loader);
        build_defaults(svc, project_dir, vars);
        // `image: ${IMAGE}` with the variable unset is no image (Compose
        // then wants a `build`).
        if svc
            .get("image")
            .and_then(Node::as_text)
            .is_some_and(|i| i.trim().is_empty())
        {
            svc.entries.retain(|e| e.key != "image");
        }
        check_runnable(&svc_name, key_span, svc, loader);
        check_references(&svc_name, svc, "secrets", &defined_secrets, loader);
        check_references(&svc_name, svc, "configs", &defined_configs, loader);
        check_volumes(&svc_name, svc, &defined_volumes, loader);
        if check_networks(&svc_name, svc, &defined_networks, loader) {
            uses_default_network = true;
        }
        check_misc(&svc_name, svc, loader);
        crate::checks::policies(&svc_name, svc, &mut loader.diags);
        if let Some(x) = svc.get("x-cove").and_then(Node::as_map) {
            crate::checks::xcove_service(&svc_name, x, &mut loader.diags);
        }
        service_defaults(svc);
        units_pass(&svc_name, svc, loader);
        strip_x_fields_of_xcove(svc);
    }
    (graph, uses_default_network)
}

/// Top-level sections: the implicit default network, the names of
/// networks, volumes, secrets and configs (`<project>_<key>`, as Compose), `x-cove`'s own `x-` fields and durations.
fn top_level(root_map: &mut Map, name: &str, uses_default_network: bool, loader: &mut Loader) {
    let defined_networks: Vec<String> = root_map
        .get("networks")
        .and_then(Node::as_map)
        .map(|m| m.keys().map(str::to_string).collect())
        .unwrap_or_default();
    if uses_default_network && !defined_networks.iter().any(|n| n == "default") {
        let networks = ensure_map(root_map, "networks");
        networks.insert(
            "default",
            Span::default(),
            Node::map(Span::default(), Map::default()),
        );
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        if let Some(defs) = root_map.get_mut(section).and_then(Node::as_map_mut) {
            for e in &mut defs.entries {
                if let Some(def) = e.value.as_map_mut()
                    && !def.contains("name")
                {
                    let external = def.get("external").and_then(Node::as_bool) == Some(true);
                    let n = if external {
                        e.key.clone()
                    } else {
                        format!("{name}_{}", e.key)
                    };
                    def.insert("name", e.key_span, Node::string(e.key_span, n));
                }
            }
        }
    }
    if let Some(x) = root_map.get_mut("x-cove").and_then(Node::as_map_mut) {
        x.entries.retain(|e| !e.key.starts_with("x-"));
        for key in ["idle_after", "ttl"] {
            if let Some(n) = node_at(x, &["previews", key]) {
                duration(n, &format!("x-cove.previews.{key}"), loader);
            }
        }
        if let Some(n) = node_at(x, &["previews", "memory"])
            && let Some(t) = n.as_text()
            && let Err(e) = units::parse_bytes(t)
        {
            loader.diags.push(
                Diagnostic::error(
                    n.span,
                    format!("`x-cove.previews.memory` is not a size: {e}"),
                )
                .with_hint("write a number with a unit: `512MiB`, `2GiB`"),
            );
        }
    }
}

/// Each service converted on its own, in start order, so a conversion
/// problem names its service.
fn typed_services(
    services: &Map,
    graph: &Graph,
    loader: &mut Loader,
) -> IndexMap<String, crate::model::Service> {
    let mut typed = IndexMap::new();
    for svc_name in graph.order() {
        let Some(entry) = services.entry(&svc_name) else {
            continue;
        };
        match serde_json::from_value::<crate::model::Service>(entry.value.to_json()) {
            Ok(svc) => {
                typed.insert(svc_name, svc);
            }
            Err(e) => loader.diags.push(
                Diagnostic::error(entry.key_span, format!("service `{svc_name}`: {e}"))
                    .with_hint("check this service's fields against the Compose specification"),
            ),
        }
    }
    typed
}

fn ensure_map<'a>(m: &'a mut Map, key: &str) -> &'a mut Map {
    if m.get(key).and_then(Node::as_map).is_none() {
        m.insert(
            key,
            Span::default(),
            Node::map(Span::default(), Map::default()),
        );
    }
    m.get_mut(key)
        .and_then(Node::as_map_mut)
        .expect("just inserted")
}

/// `links`, `volumes_from` and `network_mode: service:x` imply `depends_on`.
fn implicit_dependencies(svc: &mut Map) {
    let mut implied: Vec<(String, Span, bool)> = Vec::new();
    if let Some(links) = svc.get("links").and_then(Node::as_seq) {
        for l in links {
            if let Some(t) = l.as_text() {
                implied.push((t.split(':').next().unwrap_or(t).to_string(), l.span, true));
            }
        }
    }
    if let Some(vf) = svc.get("volumes_from").and_then(Node::as_seq) {
        for v in vf {
            if let Some(t) = v.as_text()
                && !t.starts_with("container:")
            {
                implied.push((t.split(':').next().unwrap_or(t).to_string(), v.span, false));
            }
        }
    }
    for key in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(n) = svc.get(key)
            && let Some(s) = n.as_text().and_then(|t| t.strip_prefix("service:"))
        {
            implied.push((s.to_string(), n.span, true));
        }
    }
    if implied.is_empty() {
        return;
    }
    let deps = ensure_map(svc, "depends_on");
    for (target, span, restart) in implied {
        if !deps.contains(&target) {
            let mut m = Map::default();
            m.insert("condition", span, Node::string(span, "service_started"));
            m.insert(
                "restart",
                span,
                Node::plain(span, if restart { "true" } else { "false" }),
            );
            m.insert("required", span, Node::plain(span, "true"));
            deps.insert(target, span, Node::map(span, m));
        }
    }
}

fn dependencies(
    name: &str,
    svc: &mut Map,
    names: &[String],
    disabled: &Disabled,
    loader: &mut Loader,
) -> Vec<Edge> {
    let mut edges = Vec::new();
    let Some(deps) = svc.get_mut("depends_on").and_then(Node::as_map_mut) else {
        return edges;
    };
    let mut drop: Vec<String> = Vec::new();
    for e in &deps.entries {
        let required = e
            .value
            .as_map()
            .and_then(|m| m.get("required"))
            .and_then(Node::as_bool)
            != Some(false);
        if names.contains(&e.key) {
            edges.push(Edge {
                to: e.key.clone(),
                span: e.key_span,
            });
        } else if let Some(profiles) = disabled.get(&e.key) {
            if required {
                loader.diags.push(
                    Diagnostic::error(
                        e.key_span,
                        format!(
                            "service `{name}` depends on `{}`, which is not enabled",
                            e.key
                        ),
                    )
                    .with_hint(format!(
                        "enable it with {}, or mark the dependency `required: false`",
                        profiles
                            .iter()
                            .map(|p| format!("`--profile {p}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )),
                );
            }
            drop.push(e.key.clone());
        } else if required {
            let mut d = Diagnostic::error(
                e.key_span,
                format!("service `{name}` depends on undefined service `{}`", e.key),
            );
            d.hint = Some(match suggest(&e.key, names.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("defined services: {}", names.join(", ")),
            });
            loader.diags.push(d);
        } else {
            drop.push(e.key.clone());
        }
    }
    for k in drop {
        deps.remove(&k);
    }
    edges
}

/// `env_file` contents, then `environment` over them; value-less variables
/// come from the environment cove runs in.
fn environment(name: &str, svc: &mut Map, vars: &Vars, loader: &mut Loader) {
    let mut env: IndexMap<String, Option<String>> = IndexMap::new();
    let mut spans: IndexMap<String, Span> = IndexMap::new();
    if let Some(files) = svc.get("env_file").and_then(Node::as_seq) {
        for f in files {
            let Some(m) = f.as_map() else { continue };
            let Some(path) = m.get("path").and_then(Node::as_text) else {
                continue;
            };
            let required = m.get("required").and_then(Node::as_bool) != Some(false);
            let path = Path::new(path);
            if !path.is_file() {
                if required {
                    loader.diags.push(
                        Diagnostic::error(
                            f.span,
                            format!(
                                "env file `{}` of service `{name}` not found",
                                path.display()
                            ),
                        )
                        .with_hint(
                            "create it, fix the path, or use the long form with `required: false`",
                        ),
                    );
                }
                continue;
            }
            let Some(id) = loader.read(path, Some(f.span), "env file") else {
                continue;
            };
            let text = loader.sources.file(id).text.clone();
            let lookup = |n: &str| vars.get(n).map(str::to_string);
            let values = if m.get("format").and_then(Node::as_text) == Some("raw") {
                crate::dotenv::parse_raw(&text)
            } else {
                crate::dotenv::parse(id, &text, &lookup, &mut loader.diags)
            };
            for (k, v) in values {
                env.insert(k.clone(), Some(v));
                spans.insert(k, f.span);
            }
        }
    }
    if let Some(m) = svc.get("environment").and_then(Node::as_map) {
        for e in &m.entries {
            let value = match e.value.as_text() {
                Some(v) if !e.value.is_null() => Some(v.to_string()),
                _ => vars.get(&e.key).map(str::to_string),
            };
            env.insert(e.key.clone(), value);
            spans.insert(e.key.clone(), e.key_span);
        }
    }
    if env.is_empty() {
        return;
    }
    let span = svc.get("environment").map(|n| n.span).unwrap_or_default();
    let mut out = Map::default();
    for (k, v) in env {
        let s = spans.get(&k).copied().unwrap_or(span);
        out.insert(
            k,
            s,
            match v {
                Some(v) => Node::string(s, v),
                None => Node::null(s),
            },
        );
    }
    svc.insert("environment", span, Node::map(span, out));
}

/// `label_file` contents into `labels` (`labels` over them), as Compose
/// does: the key is gone once read.
fn label_files(name: &str, svc: &mut Map, vars: &Vars, loader: &mut Loader) {
    let Some(entry) = svc.remove("label_file") else {
        return;
    };
    let mut labels = Map::default();
    for f in entry.value.as_seq().into_iter().flatten() {
        let Some(path) = f.as_text().map(Path::new) else {
            continue;
        };
        if !path.is_file() {
            loader.diags.push(
                Diagnostic::error(
                    f.span,
                    format!(
                        "label file `{}` of service `{name}` not found",
                        path.display()
                    ),
                )
                .with_hint("create it, or fix the path (relative to the compose file)"),
            );
            continue;
        }
        let Some(id) = loader.read(path, Some(f.span), "label file") else {
            continue;
        };
        let text = loader.sources.file(id).text.clone();
        let lookup = |n: &str| vars.get(n).map(str::to_string);
        for (k, v) in crate::dotenv::parse(id, &text, &lookup, &mut loader.diags) {
            labels.insert(k, f.span, Node::string(f.span, v));
        }
    }
    let span = svc.get("labels").map_or(entry.value.span, |n| n.span);
    if let Some(written) = svc.get("labels").and_then(Node::as_map) {
        for e in &written.entries {
            labels.insert(e.key.clone(), e.key_span, e.value.clone());
        }
    }
    if !labels.entries.is_empty() {
        svc.insert("labels", span, Node::map(span, labels));
    }
}

fn build_defaults(svc: &mut Map, project_dir: &Path, vars: &Vars) {
    let Some(b) = svc.get_mut("build").and_then(Node::as_map_mut) else {
        return;
    };
    let span = Span::default();
    if !b.contains("context") {
        b.insert(
            "context",
            span,
            Node::string(span, project_dir.display().to_string()),
        );
    }
    if !b.contains("dockerfile") && !b.contains("dockerfile_inline") {
        b.insert("dockerfile", span, Node::string(span, "Dockerfile"));
    }
    if let Some(args) = b.get_mut("args").and_then(Node::as_map_mut) {
        args.entries.retain_mut(|e| {
            if e.value.is_null() {
                match vars.get(&e.key) {
                    Some(v) => {
                        e.value = Node::string(e.value.span, v);
                        true
                    }
                    None => false,
                }
            } else {
                true
            }
        });
    }
}

fn check_runnable(name: &str, key_span: Span, svc: &Map, loader: &mut Loader) {
    let has_run = svc
        .get("x-cove")
        .and_then(Node::as_map)
        .is_some_and(|x| x.contains("run"));
    // A failed `extends` or a misspelt `image`/`build` is reported already.
    let misspelt = svc
        .keys()
        .any(|k| k != "image" && k != "build" && suggest(k, ["image", "build"]).is_some());
    if !svc.contains("image")
        && !svc.contains("build")
        && !has_run
        && !svc.contains("provider")
        && !svc.contains("extends")
        && !misspelt
    {
        loader.diags.push(
            Diagnostic::error(key_span, format!("service `{name}` has nothing to run"))
                .with_hint("add `image:`, `build:`, or `x-cove: {run: ...}` for a native command"),
        );
    }
}

fn check_references(name: &str, svc: &Map, key: &str, defined: &[String], loader: &mut Loader) {
    let Some(items) = svc.get(key).and_then(Node::as_seq) else {
        return;
    };
    for it in items {
        let Some(source) = it.as_map().and_then(|m| m.get("source")) else {
            continue;
        };
        let Some(s) = source.as_text() else { continue };
        if !defined.iter().any(|d| d == s) {
            loader.diags.push(undefined(
                name,
                key.trim_end_matches('s'),
                s,
                source.span,
                defined,
                key,
            ));
        }
    }
}

fn undefined(
    service: &str,
    what: &str,
    name: &str,
    span: Span,
    defined: &[String],
    section: &str,
) -> Diagnostic {
    let mut d = Diagnostic::error(
        span,
        format!("service `{service}` uses undefined {what} `{name}`"),
    );
    d.hint = Some(match suggest(name, defined.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("declare it under the top-level `{section}:` section"),
    });
    d
}

fn check_volumes(name: &str, svc: &Map, defined: &[String], loader: &mut Loader) {
    let Some(items) = svc.get("volumes").and_then(Node::as_seq) else {
        return;
    };
    let mut targets: Vec<(&str, Span)> = Vec::new();
    for it in items {
        let Some(m) = it.as_map() else { continue };
        if m.get("type").and_then(Node::as_text) == Some("volume")
            && let Some(src) = m.get("source")
            && let Some(s) = src.as_text().filter(|s| !s.is_empty())
            && !defined.iter().any(|d| d == s)
        {
            loader
                .diags
                .push(undefined(name, "volume", s, src.span, defined, "volumes"));
        }
        if let Some(t) = m.get("target").and_then(Node::as_text) {
            if let Some((_, first)) = targets.iter().find(|(x, _)| *x == t) {
                loader.diags.push(
                    Diagnostic::error(
                        it.span,
                        format!("service `{name}` mounts two volumes at `{t}`"),
                    )
                    .with_hint(format!(
                        "the other mount is on line {}; keep one",
                        first.line
                    )),
                );
            } else {
                targets.push((t, it.span));
            }
        }
    }
}

/// Returns whether the service joins the implicit `default` network.
fn check_networks(name: &str, svc: &mut Map, defined: &[String], loader: &mut Loader) -> bool {
    if svc.contains("network_mode") {
        if let Some(n) = svc.entry("networks") {
            loader.diags.push(
                Diagnostic::error(
                    n.key_span,
                    format!("service `{name}` sets both `network_mode` and `networks`"),
                )
                .with_hint("they exclude each other; keep one"),
            );
        }
        return false;
    }
    if svc.contains("provider") {
        return false;
    }
    let empty = svc
        .get("networks")
        .and_then(Node::as_map)
        .is_none_or(|m| m.entries.is_empty());
    if empty {
        let span = Span::default();
        let mut m = Map::default();
        m.insert("default", span, Node::null(span));
        svc.insert("networks", span, Node::map(span, m));
        return true;
    }
    let mut uses_default = false;
    if let Some(m) = svc.get("networks").and_then(Node::as_map) {
        for e in &m.entries {
            if e.key == "default" {
                uses_default = true;
            } else if !defined.contains(&e.key) {
                loader.diags.push(undefined(
                    name, "network", &e.key, e.key_span, defined, "networks",
                ));
            }
        }
    }
    uses_default
}

fn check_misc(name: &str, svc: &Map, loader: &mut Loader) {
    if let (Some(scale), Some(replicas)) = (
        svc.get("scale"),
        svc.get("deploy")
            .and_then(Node::as_map)
            .and_then(|d| d.get("replicas")),
    ) && scale.as_int() != replicas.as_int()
    {
        loader.diags.push(
            Diagnostic::error(
                scale.span,
                format!("service `{name}` sets different `scale` and `deploy.replicas`"),
            )
            .with_hint(format!(
                "`deploy.replicas` is on line {}; keep one of them",
                replicas.span.line
            )),
        );
    }
    if let Some(test) = svc
        .get("healthcheck")
        .and_then(Node::as_map)
        .and_then(|h| h.get("test"))
        .and_then(Node::as_seq)
        && let Some(first) = test.first()
        && !matches!(first.as_text(), Some("CMD" | "CMD-SHELL" | "NONE"))
    {
        loader.diags.push(
                    Diagnostic::error(first.span, format!("`services.{name}.healthcheck.test` must start with `CMD`, `CMD-SHELL` or `NONE`"))
                        .with_hint("e.g. `test: [\"CMD\", \"curl\", \"-f\", \"http://localhost\"]`, or a string for a shell command"),
                );
    }
    if let Some(watch) = svc
        .get("develop")
        .and_then(Node::as_map)
        .and_then(|d| d.get("watch"))
        .and_then(Node::as_seq)
    {
        for w in watch.iter().filter_map(|w| w.as_map().map(|m| (w.span, m))) {
            let (span, m) = w;
            let action = m.get("action").and_then(Node::as_text).unwrap_or_default();
            if !matches!(action, "rebuild" | "restart") && !m.contains("target") {
                loader.diags.push(
                    Diagnostic::error(
                        span,
                        format!("`develop.watch` rule of service `{name}` needs a `target`"),
                    )
                    .with_hint(format!(
                        "action `{action}` copies files into the service; say where with `target:`"
                    )),
                );
            }
        }
    }
}

fn service_defaults(svc: &mut Map) {
    if let Some(Kind::Seq(ports)) = svc.get_mut("ports").map(|n| &mut n.kind) {
        for p in ports.iter_mut().filter_map(Node::as_map_mut) {
            let span = Span::default();
            if !p.contains("protocol") {
                p.insert("protocol", span, Node::string(span, "tcp"));
            }
            if !p.contains("mode") {
                p.insert("mode", span, Node::string(span, "ingress"));
            }
        }
    }
    if let Some(Kind::Seq(secrets)) = svc.get_mut("secrets").map(|n| &mut n.kind) {
        for s in secrets.iter_mut().filter_map(Node::as_map_mut) {
            if !s.contains("target")
                && let Some(src) = s.get("source").and_then(Node::as_text).map(str::to_string)
            {
                let span = Span::default();
                s.insert(
                    "target",
                    span,
                    Node::string(span, format!("/run/secrets/{src}")),
                );
            }
        }
    }
}

const DURATIONS: &[&[&str]] = &[
    &["stop_grace_period"],
    &["healthcheck", "interval"],
    &["healthcheck", "timeout"],
    &["healthcheck", "start_period"],
    &["healthcheck", "start_interval"],
    &["deploy", "restart_policy", "delay"],
    &["deploy", "restart_policy", "window"],
    &["deploy", "update_config", "delay"],
    &["deploy", "update_config", "monitor"],
    &["deploy", "rollback_config", "delay"],
    &["deploy", "rollback_config", "monitor"],
    &["x-cove", "autoscale", "scale_down_after"],
    &["x-cove", "ready_after"],
];

/// Checks a duration and writes it in normal form (`90s` → `1m30s`).
pub(crate) fn duration(n: &mut Node, what: &str, loader: &mut Loader) {
    let Some(t) = n.as_text().map(str::to_string) else {
        return;
    };
    match units::parse_duration(&t) {
        Ok(d) => *n = Node::string(n.span, units::format_duration(d)),
        Err(e) => loader.diags.push(
            Diagnostic::error(n.span, format!("`{what}` is not a valid duration: {e}"))
                .with_hint("write a number with a unit: `300ms`, `10s`, `1m30s`, `2h`"),
        ),
    }
}

fn node_at<'a>(m: &'a mut Map, path: &[&str]) -> Option<&'a mut Node> {
    let (last, parents) = path.split_last()?;
    let mut cur = m;
    for p in parents {
        cur = cur.get_mut(p)?.as_map_mut()?;
    }
    cur.get_mut(last)
}

/// Durations to their normal form; sizes to bytes; `cpus` to numbers.
fn units_pass(name: &str, svc: &mut Map, loader: &mut Loader) {
    for path in DURATIONS {
        if let Some(n) = node_at(svc, path) {
            duration(n, &format!("services.{name}.{}", path.join(".")), loader);
        }
    }
    if let Some(Kind::Seq(alerts)) = node_at(svc, &["x-cove", "alerts"]).map(|n| &mut n.kind) {
        for a in alerts.iter_mut().filter_map(Node::as_map_mut) {
            if let Some(n) = a.get_mut("for") {
                duration(n, &format!("services.{name}.x-cove.alerts.for"), loader);
            }
        }
    }
    for path in [
        &["x-cove", "backup", "schedule"][..],
        &["x-cove", "backup", "verify"],
        &["x-cove", "backup", "verify", "schedule"],
    ] {
        let Some(n) = node_at(svc, path) else {
            continue;
        };
        let Some(text) = n.as_text() else {
            continue;
        };
        if let Err(e) = crate::cron::Schedule::parse(text) {
            let place = path.join(".");
            loader.diags.push(
                Diagnostic::error(
                    n.span,
                    format!("`services.{name}.{place}` is not a schedule: {e}"),
                )
                .with_hint(crate::cron::HINT),
            );
        }
    }
    for set in ["limits", "reservations"] {
        for (key, is_size) in [("memory", true), ("cpus", false)] {
            let path = ["deploy", "resources", set, key];
            let Some(n) = node_at(svc, &path) else {
                continue;
            };
            let Some(t) = n.as_text().map(str::to_string) else {
                continue;
            };
            let parsed = if is_size {
                units::parse_bytes(&t).map(|b| b.to_string())
            } else {
                t.trim()
                    .parse::<f64>()
                    .map(|f| f.to_string())
                    .map_err(|_| format!("`{t}` is not a number of CPUs"))
            };
            match parsed {
                Ok(v) => *n = Node::plain(n.span, v),
                Err(e) => loader.diags.push(
                    Diagnostic::error(
                        n.span,
                        format!("`services.{name}.deploy.resources.{set}.{key}`: {e}"),
                    )
                    .with_hint(if is_size {
                        "e.g. `512m` or `1g`"
                    } else {
                        "e.g. `0.5` or `2`"
                    }),
                ),
            }
        }
    }
    // Printed as Compose prints them: a string of bytes (`"2147483648"` for
    // `2g`), which the schema accepts and loads back to the same size.
    for path in [
        &["mem_limit"][..],
        &["mem_reservation"],
        &["memswap_limit"],
        &["shm_size"],
        &["build", "shm_size"],
    ] {
        let key = path.join(".");
        let Some(n) = node_at(svc, path) else {
            continue;
        };
        let Some(t) = n.as_text().map(str::to_string) else {
            continue;
        };
        if key == "memswap_limit" && t.trim() == "-1" {
            *n = Node::string(n.span, "-1"); // unlimited swap
            continue;
        }
        match units::parse_bytes(&t) {
            Ok(b) => *n = Node::string(n.span, b.to_string()),
            Err(e) => loader.diags.push(
                Diagnostic::error(n.span, format!("`services.{name}.{key}`: {e}"))
                    .with_hint("e.g. `512m` or `1g`"),
            ),
        }
    }
    // A field and its `deploy.resources` twin must agree (Compose refuses
    // distinct values too): which one would a replica get?
    for (key, twin) in [
        ("mem_limit", ["deploy", "resources", "limits", "memory"]),
        (
            "mem_reservation",
            ["deploy", "resources", "reservations", "memory"],
        ),
        ("cpus", ["deploy", "resources", "limits", "cpus"]),
        ("pids_limit", ["deploy", "resources", "limits", "pids"]),
    ] {
        let value = |n: &Node| -> Option<f64> {
            let t = n.as_text()?;
            if key.starts_with("mem") {
                units::parse_bytes(t).ok().map(|b| b as f64)
            } else {
                t.trim().parse().ok()
            }
        };
        let Some((a, span)) = svc.get(key).and_then(|n| Some((value(n)?, n.span))) else {
            continue;
        };
        let Some(b) = node_at(svc, &twin).and_then(|n| value(n)) else {
            continue;
        };
        if a != b {
            loader.diags.push(
                Diagnostic::error(
                    span,
                    format!(
                        "`services.{name}.{key}` ({a}) and `{}` ({b}) differ",
                        twin.join(".")
                    ),
                )
                .with_hint("set only one of them (docker compose refuses distinct values too)"),
            );
        }
    }
}

/// `x-*` fields inside `x-cove` are the user's; the typed model skips them.
fn strip_x_fields_of_xcove(svc: &mut Map) {
    if let Some(x) = svc.get_mut("x-cove").and_then(Node::as_map_mut) {
        x.entries.retain(|e| !e.key.starts_with("x-"));
    }
}
