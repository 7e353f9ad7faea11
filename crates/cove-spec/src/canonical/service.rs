//! A service's short forms: `extends`, `build`, commands, key/value lists,
//! `env_file`, `depends_on`, secrets and configs, `develop.watch`.

use super::{Ctx, ports::ports, resolve_path_node, volumes::volumes};
use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Kind, Map, Node, Resolved};
use crate::shell_words;
use crate::source::Span;

pub(super) fn service(svc: &mut Map, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
    if let Some(n) = svc.get_mut("extends") {
        extends(n, ctx);
    }
    if let Some(n) = svc.get_mut("build") {
        build(n, ctx, diags);
    }
    for key in ["command", "entrypoint"] {
        if let Some(n) = svc.get_mut(key) {
            command(n, key, diags);
        }
    }
    // Lifecycle hooks' commands are split as `command` is (Compose does).
    for key in ["post_start", "pre_stop", "pre_start"] {
        if let Some(Kind::Seq(hooks)) = svc.get_mut(key).map(|n| &mut n.kind) {
            for hook in hooks.iter_mut().filter_map(Node::as_map_mut) {
                if let Some(n) = hook.get_mut("command") {
                    command(n, &format!("{key}.command"), diags);
                }
            }
        }
    }
    if let Some(n) = svc.get_mut("environment") {
        key_values(n, "environment", diags);
    }
    for key in ["labels", "annotations", "sysctls"] {
        if let Some(n) = svc.get_mut(key) {
            key_values(n, key, diags);
            if key != "sysctls" {
                empty_for_null(n);
            }
        }
    }
    if let Some(n) = svc.get_mut("env_file") {
        env_file(n, ctx);
    }
    for key in ["dns", "dns_search", "label_file", "tmpfs"] {
        if let Some(n) = svc.get_mut(key) {
            one_item_list(n);
        }
    }
    if let Some(Kind::Seq(files)) = svc.get_mut("label_file").map(|n| &mut n.kind) {
        files.iter_mut().for_each(|f| resolve_path_node(f, ctx));
    }
    // `gpus: all` is every GPU: `[{count: -1}]`, as Compose gives it.
    if let Some(n) = svc.get_mut("gpus")
        && n.as_text() == Some("all")
    {
        let span = n.span;
        let mut all = Map::default();
        all.insert("count", span, Node::plain(span, "-1"));
        *n = Node::seq(span, vec![Node::map(span, all)]);
    }
    // Group names and ids alike are strings (Compose prints `"1001"`).
    if let Some(Kind::Seq(groups)) = svc.get_mut("group_add").map(|n| &mut n.kind) {
        for g in groups.iter_mut() {
            if let Some(t) = g.as_text().map(str::to_string) {
                *g = Node::string(g.span, t);
            }
        }
    }
    if let Some(n) = svc.get_mut("extra_hosts") {
        extra_hosts(n);
    }
    if let Some(n) = svc.get_mut("depends_on") {
        depends_on(n);
    }
    if let Some(n) = svc.get_mut("networks") {
        list_to_null_map(n);
    }
    if let Some(n) = svc.get_mut("ports") {
        ports(n, diags);
    }
    if let Some(n) = svc.get_mut("expose") {
        expose(n);
    }
    if let Some(n) = svc.get_mut("volumes") {
        volumes(n, ctx, diags);
    }
    for key in ["secrets", "configs"] {
        if let Some(n) = svc.get_mut(key) {
            file_refs(n);
        }
    }
    if let Some(hc) = svc.get_mut("healthcheck").and_then(Node::as_map_mut) {
        healthcheck(hc);
    }
    if let Some(watch) = svc
        .get_mut("develop")
        .and_then(Node::as_map_mut)
        .and_then(|d| d.get_mut("watch"))
    {
        develop_watch(watch, ctx, diags);
    }
    if let Some(x) = svc.get_mut("x-cove").and_then(Node::as_map_mut)
        && let Some(w) = x.get_mut("workdir")
    {
        resolve_path_node(w, ctx);
    }
}

/// `extra_hosts: {host: ip}` (or `{host: [ip, ip]}`) → `["host:ip", ...]`,
/// the list form, so both forms merge alike (Compose lists them too).
fn extra_hosts(n: &mut Node) {
    let span = n.span;
    let Some(m) = n.as_map() else {
        return;
    };
    let mut items = Vec::new();
    for e in &m.entries {
        let addresses: Vec<&Node> = match &e.value.kind {
            Kind::Seq(ips) => ips.iter().collect(),
            _ => vec![&e.value],
        };
        for ip in addresses {
            if let Some(ip) = ip.as_text() {
                items.push(Node::string(e.value.span, format!("{}:{ip}", e.key)));
            }
        }
    }
    *n = Node::seq(span, items);
}

/// `extends: name` → `extends: {service: name}`; its `file` made absolute.
fn extends(extends: &mut Node, ctx: &Ctx<'_>) {
    if let Some(s) = extends.as_text().map(str::to_string) {
        let span = extends.span;
        let mut m = Map::default();
        m.insert("service", span, Node::string(span, s));
        *extends = Node::map(span, m);
    }
    if let Some(file) = extends.as_map_mut().and_then(|m| m.get_mut("file")) {
        resolve_path_node(file, ctx);
    }
}

/// `build: dir` → `build: {context: dir}`; a local context made absolute,
/// `args` and `labels` as maps.
fn build(build: &mut Node, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
    if let Some(s) = build.as_text().map(str::to_string) {
        let span = build.span;
        let mut m = Map::default();
        m.insert("context", span, Node::string(span, s));
        *build = Node::map(span, m);
    }
    if let Some(b) = build.as_map_mut() {
        if let Some(c) = b.get_mut("context")
            && c.as_text().is_some_and(|t| !is_remote_context(t))
        {
            resolve_path_node(c, ctx);
        }
        if let Some(args) = b.get_mut("args") {
            key_values(args, "build.args", diags);
        }
        if let Some(labels) = b.get_mut("labels") {
            key_values(labels, "build.labels", diags);
            empty_for_null(labels);
        }
        // Named contexts: a directory (made absolute, as `context` is), or
        // an image, a service, a URL (kept).
        if let Some(extra) = b.get_mut("additional_contexts") {
            key_values(extra, "build.additional_contexts", diags);
            if let Some(m) = extra.as_map_mut() {
                for e in &mut m.entries {
                    if e.value.as_text().is_some_and(|t| !is_remote_context(t)) {
                        resolve_path_node(&mut e.value, ctx);
                    }
                }
            }
        }
    }
}

/// A single value → a list of it.
fn one_item_list(n: &mut Node) {
    if n.as_scalar().is_some() {
        *n = Node::seq(n.span, vec![n.clone()]);
    }
}

/// `expose`: every port a string.
fn expose(n: &mut Node) {
    if let Kind::Seq(items) = &mut n.kind {
        for it in items {
            if let Some(t) = it.as_text().map(str::to_string) {
                *it = Node::string(it.span, t);
            }
        }
    }
}

/// A service's `secrets` or `configs`: `name` → `{source: name}`, and
/// `mode` read as octal.
fn file_refs(n: &mut Node) {
    let Kind::Seq(items) = &mut n.kind else {
        return;
    };
    for it in items {
        if let Some(t) = it.as_text().map(str::to_string) {
            let span = it.span;
            let mut m = Map::default();
            m.insert("source", span, Node::string(span, t));
            *it = Node::map(span, m);
        }
        // `mode: 0440` is octal, as file modes are written.
        if let Some(mode) = it.as_map_mut().and_then(|m| m.get_mut("mode")) {
            let text = mode.as_text().unwrap_or_default().to_string();
            let octal = text.strip_prefix("0o").or_else(|| text.strip_prefix('0'));
            if let Some(v) = octal.and_then(|o| u32::from_str_radix(o, 8).ok()) {
                *mode = Node::plain(mode.span, v.to_string());
            }
        }
    }
}

/// `develop.watch`: each `path` made absolute, `ignore` and `include` lists,
/// `exec.command` split as `command` is.
fn develop_watch(watch: &mut Node, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
    let Kind::Seq(items) = &mut watch.kind else {
        return;
    };
    for w in items.iter_mut().filter_map(Node::as_map_mut) {
        if let Some(p) = w.get_mut("path") {
            resolve_path_node(p, ctx);
        }
        for key in ["ignore", "include"] {
            if let Some(n) = w.get_mut(key) {
                one_item_list(n);
            }
        }
        if let Some(n) = w
            .get_mut("exec")
            .and_then(Node::as_map_mut)
            .and_then(|e| e.get_mut("command"))
        {
            command(n, "develop.watch.exec.command", diags);
        }
    }
}

fn is_remote_context(t: &str) -> bool {
    t.contains("://")
        || t.starts_with("service:")
        || t.starts_with("github.com/")
        || t.starts_with("git@")
}

/// A string command is split into words; a list is kept.
fn command(n: &mut Node, key: &str, diags: &mut Diagnostics) {
    let Some(text) = n.as_text().map(str::to_string) else {
        return;
    };
    let span = n.span;
    match shell_words::split(&text) {
        Ok(words) => {
            // No shell runs it (as in Compose): an operator is an argument.
            let operators = [
                "&&", "||", "|", ";", "&", ">", ">>", "<", "2>&1", "2>", "1>",
            ];
            if let Some(op) = words.iter().find(|w| operators.contains(&w.as_str())) {
                diags.push(
                    Diagnostic::warning(
                        span,
                        format!(
                            "`{key}` is split into words and run without a shell: `{op}` is passed to the program as an argument"
                        ),
                    )
                    .with_hint(format!(
                        "to run it in a shell, write `{key}: [\"sh\", \"-c\", \"...\"]`"
                    )),
                );
            }
            *n = Node::seq(
                span,
                words.into_iter().map(|w| Node::string(span, w)).collect(),
            );
        }
        Err(e) => diags.push(
            Diagnostic::error(span, format!("`{key}` cannot be split into words: {e}"))
                .with_hint("close the quote, or write the command as a list"),
        ),
    }
}

/// A label (or annotation) with a key and no value (`["com.example.flag"]`,
/// `flag:`) is `""`, as Compose gives it: unlike `environment`, where no
/// value means "from the shell".
pub(super) fn empty_for_null(n: &mut Node) {
    if let Some(m) = n.as_map_mut() {
        for e in &mut m.entries {
            if matches!(e.value.kind, Kind::Null) {
                e.value = Node::string(e.value.span, "");
            }
        }
    }
}

/// `f` as Go prints a float64 (`%v`, which Compose uses): the shortest
/// text that reads back, with an exponent (`1e+21`, `1e-05`) outside
/// 1e-4 ≤ |f| < 1e21.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let a = f.abs();
    if a == 0.0 || (1e-4..1e21).contains(&a) {
        return format!("{f}");
    }
    let text = format!("{f:e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// `[A=1, B]` or `{A: 1, B: null}` → `{A: "1", B: null}`.
pub(super) fn key_values(n: &mut Node, what: &str, diags: &mut Diagnostics) {
    let span = n.span;
    let mut out = Map::default();
    match &n.kind {
        Kind::Seq(items) => {
            for it in items {
                let Some(t) = it.as_text() else {
                    continue;
                };
                let (k, v) = match t.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (t, None),
                };
                if k.ends_with(' ') || k.ends_with('\t') {
                    diags.push(
                        Diagnostic::error(
                            it.span,
                            format!(
                                "{what} variable `{}` is declared with a trailing space",
                                k.trim_end()
                            ),
                        )
                        .with_hint("remove the space before `=`"),
                    );
                }
                let value = match v {
                    Some(v) => Node::string(it.span, v),
                    None => Node::null(it.span),
                };
                out.insert(k, it.span, value);
            }
        }
        Kind::Map(m) => {
            for e in &m.entries {
                let value = match &e.value.kind {
                    Kind::Null => Node::null(e.value.span),
                    Kind::Scalar(s) => match s.resolve() {
                        Resolved::Null => Node::null(e.value.span),
                        // A YAML boolean or number written as such is
                        // passed as Compose passes it (`True` → `true`,
                        // `1.50` → `1.5`); text (quoted, interpolated)
                        // as written.
                        Resolved::Bool(b) if what == "environment" => {
                            Node::string(e.value.span, b.to_string())
                        }
                        Resolved::Int(i) if what == "environment" => {
                            Node::string(e.value.span, i.to_string())
                        }
                        Resolved::Float(f) if what == "environment" => {
                            Node::string(e.value.span, go_float(f))
                        }
                        _ => Node::string(e.value.span, s.text.clone()),
                    },
                    _ => e.value.clone(),
                };
                // `KEY: !reset` must still remove an inherited KEY at the merge.
                let value = Node {
                    tag: e.value.tag,
                    ..value
                };
                out.entries.push(crate::node::Entry {
                    key: e.key.clone(),
                    key_span: e.key_span,
                    value,
                });
            }
        }
        _ => return,
    }
    let tag = n.tag;
    *n = Node::map(span, out);
    n.tag = tag;
}

fn env_file(n: &mut Node, ctx: &Ctx<'_>) {
    let span = n.span;
    let items: Vec<Node> = match &n.kind {
        Kind::Scalar(_) => vec![n.clone()],
        Kind::Seq(items) => items.clone(),
        _ => return,
    };
    let mut out = Vec::new();
    for it in items {
        let mut m = match it.kind {
            Kind::Scalar(ref s) => {
                let mut m = Map::default();
                m.insert("path", it.span, Node::string(it.span, s.text.clone()));
                m
            }
            Kind::Map(m) => m,
            _ => continue,
        };
        if !m.contains("required") {
            m.insert("required", it.span, Node::plain(it.span, "true"));
        }
        if let Some(p) = m.get_mut("path") {
            resolve_path_node(p, ctx);
        }
        out.push(Node::map(it.span, m));
    }
    let tag = n.tag;
    *n = Node::seq(span, out);
    n.tag = tag;
}

fn depends_on(n: &mut Node) {
    let span = n.span;
    let tag = n.tag;
    match &mut n.kind {
        Kind::Seq(items) => {
            let mut m = Map::default();
            for it in items.iter() {
                if let Some(t) = it.as_text() {
                    m.insert(t, it.span, dependency(it.span, Map::default()));
                }
            }
            *n = Node::map(span, m);
            n.tag = tag;
        }
        Kind::Map(m) => {
            for e in &mut m.entries {
                if let Kind::Map(inner) = &e.value.kind {
                    let inner = inner.clone();
                    e.value = dependency(e.value.span, inner);
                } else if e.value.is_null() {
                    e.value = dependency(e.value.span, Map::default());
                }
            }
        }
        _ => {}
    }
}

fn dependency(span: Span, mut m: Map) -> Node {
    if !m.contains("condition") {
        m.insert("condition", span, Node::string(span, "service_started"));
    }
    if !m.contains("required") {
        m.insert("required", span, Node::plain(span, "true"));
    }
    Node::map(span, m)
}

fn list_to_null_map(n: &mut Node) {
    if let Kind::Seq(items) = &n.kind {
        let mut m = Map::default();
        for it in items {
            if let Some(t) = it.as_text() {
                m.insert(t, it.span, Node::null(it.span));
            }
        }
        let tag = n.tag;
        *n = Node::map(n.span, m);
        n.tag = tag;
    }
}

fn healthcheck(hc: &mut Map) {
    if let Some(test) = hc.get_mut("test")
        && let Some(t) = test.as_text().map(str::to_string)
    {
        let span = test.span;
        let tag = test.tag;
        *test = Node::seq(
            span,
            vec![Node::string(span, "CMD-SHELL"), Node::string(span, t)],
        );
        test.tag = tag;
    }
}

#[cfg(test)]
mod float_tests {
    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, text) in [
            (1.5, "1.5"),
            (1.50, "1.5"),
            (1000.0, "1000"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (-2.25, "-2.25"),
        ] {
            assert_eq!(super::go_float(f), text);
        }
    }
}
