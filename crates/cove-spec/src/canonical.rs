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

use std::path::{Component, Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Kind, Map, Node, Resolved};
use crate::shell_words;
use crate::source::Span;

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
                service(svc, ctx, diags);
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
                }
            }
        }
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

fn service(svc: &mut Map, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
    if let Some(extends) = svc.get_mut("extends") {
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
    if let Some(build) = svc.get_mut("build") {
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
            }
        }
    }
    for key in ["command", "entrypoint"] {
        if let Some(n) = svc.get_mut(key) {
            command(n, key, diags);
        }
    }
    if let Some(n) = svc.get_mut("environment") {
        key_values(n, "environment", diags);
    }
    for key in ["labels", "annotations", "sysctls"] {
        if let Some(n) = svc.get_mut(key) {
            key_values(n, key, diags);
        }
    }
    if let Some(n) = svc.get_mut("env_file") {
        env_file(n, ctx);
    }
    for key in ["dns", "dns_search", "label_file", "tmpfs"] {
        if let Some(n) = svc.get_mut(key)
            && n.as_scalar().is_some()
        {
            *n = Node::seq(n.span, vec![n.clone()]);
        }
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
    if let Some(n) = svc.get_mut("expose")
        && let Kind::Seq(items) = &mut n.kind
    {
        for it in items {
            if let Some(t) = it.as_text().map(str::to_string) {
                *it = Node::string(it.span, t);
            }
        }
    }
    if let Some(n) = svc.get_mut("volumes") {
        volumes(n, ctx, diags);
    }
    for key in ["secrets", "configs"] {
        if let Some(Kind::Seq(items)) = svc.get_mut(key).map(|n| &mut n.kind) {
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
    }
    if let Some(hc) = svc.get_mut("healthcheck").and_then(Node::as_map_mut) {
        healthcheck(hc);
    }
    if let Some(watch) = svc
        .get_mut("develop")
        .and_then(Node::as_map_mut)
        .and_then(|d| d.get_mut("watch"))
        && let Kind::Seq(items) = &mut watch.kind
    {
        for w in items.iter_mut().filter_map(Node::as_map_mut) {
            if let Some(p) = w.get_mut("path") {
                resolve_path_node(p, ctx);
            }
            for key in ["ignore", "include"] {
                if let Some(n) = w.get_mut(key)
                    && n.as_scalar().is_some()
                {
                    *n = Node::seq(n.span, vec![n.clone()]);
                }
            }
        }
    }
    if let Some(x) = svc.get_mut("x-cove").and_then(Node::as_map_mut)
        && let Some(w) = x.get_mut("workdir")
    {
        resolve_path_node(w, ctx);
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

/// `[A=1, B]` or `{A: 1, B: null}` → `{A: "1", B: null}`.
fn key_values(n: &mut Node, what: &str, diags: &mut Diagnostics) {
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
                        _ => Node::string(e.value.span, s.text.clone()),
                    },
                    _ => e.value.clone(),
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

/// A port in long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    pub published: Option<String>,
    pub target: u16,
    pub protocol: String,
}

/// Parses `[IP:][HOST:]CONTAINER[/PROTO]`; ranges expand to one entry per
/// container port.
pub fn parse_port(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => {
            let p = p.to_ascii_lowercase();
            if !matches!(p.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!("invalid protocol `{p}` (use tcp, udp or sctp)"));
            }
            (r, p)
        }
        None => (spec, "tcp".to_string()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.len() {
        1 => (None, None, parts[0]),
        2 => (None, Some(parts[0]), parts[1]),
        n => (
            Some(parts[..n - 2].join(":")),
            Some(parts[n - 2]),
            parts[n - 1],
        ),
    };
    let ip = ip.map(|ip| ip.trim_start_matches('[').trim_end_matches(']').to_string());
    if let Some(ip) = &ip
        && !ip.is_empty()
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("invalid IP address `{ip}`"));
    }
    if container.is_empty() {
        return Err("no container port given".to_string());
    }
    let (c_start, c_end) =
        port_range(container).map_err(|e| format!("invalid container port: {e}"))?;
    let host = host.filter(|h| !h.is_empty());
    let host_range = match host {
        Some(h) => Some(port_range(h).map_err(|e| format!("invalid host port: {e}"))?),
        None => None,
    };
    let count = u32::from(c_end - c_start) + 1;
    let mut out = Vec::new();
    for i in 0..count {
        let target = c_start + i as u16;
        let published = match host_range {
            None => None,
            Some((hs, he)) if count == 1 => Some(if hs == he {
                hs.to_string()
            } else {
                format!("{hs}-{he}")
            }),
            Some((hs, he)) => {
                if u32::from(he - hs) + 1 != count {
                    return Err(format!(
                        "host range `{}` and container range `{container}` differ in length",
                        host.unwrap_or_default()
                    ));
                }
                Some((hs + i as u16).to_string())
            }
        };
        out.push(PortSpec {
            host_ip: ip.clone().filter(|s| !s.is_empty()),
            published,
            target,
            protocol: protocol.clone(),
        });
    }
    Ok(out)
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number (0-65535)"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(format!("range `{s}` ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

fn ports(n: &mut Node, diags: &mut Diagnostics) {
    let Kind::Seq(items) = &n.kind else {
        return;
    };
    let mut out = Vec::new();
    for it in items {
        let span = it.span;
        match &it.kind {
            Kind::Scalar(s) => match parse_port(&s.text) {
                Ok(specs) => {
                    for p in specs {
                        let mut m = Map::default();
                        if let Some(ip) = p.host_ip {
                            m.insert("host_ip", span, Node::string(span, ip));
                        }
                        m.insert("target", span, Node::plain(span, p.target.to_string()));
                        if let Some(pb) = p.published {
                            m.insert("published", span, Node::string(span, pb));
                        }
                        m.insert("protocol", span, Node::string(span, p.protocol));
                        out.push(Node::map(span, m));
                    }
                }
                Err(e) => diags.push(
                    Diagnostic::error(span, format!("invalid port `{}`: {e}", s.text)).with_hint(
                        "the short form is `[IP:][HOST:]CONTAINER[/PROTOCOL]`, e.g. `8080:80` or `127.0.0.1:5432:5432/tcp`",
                    ),
                ),
            },
            Kind::Map(m) => {
                let mut m = m.clone();
                if let Some(p) = m.get_mut("published")
                    && let Some(t) = p.as_text().map(str::to_string) {
                        *p = Node::string(p.span, t);
                    }
                out.push(Node::map(span, m));
            }
            _ => out.push(it.clone()),
        }
    }
    let tag = n.tag;
    *n = Node::seq(n.span, out);
    n.tag = tag;
}

/// A volume in long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub kind: &'static str,
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    pub nocopy: bool,
    pub propagation: Option<String>,
    pub selinux: Option<String>,
    /// Options Compose accepts and ignores (`cached`, unknown ones).
    pub ignored: Vec<String>,
}

/// Parses `[SOURCE:]TARGET[:OPTIONS]`.
pub fn parse_volume(spec: &str) -> Result<VolumeSpec, String> {
    if spec.is_empty() {
        return Err("empty volume".into());
    }
    let mut fields: Vec<String> = Vec::new();
    let mut buf = String::new();
    let chars: Vec<char> = spec.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ':' {
            let drive = buf.len() == 1
                && buf.chars().all(|x| x.is_ascii_alphabetic())
                && matches!(chars.get(i + 1), Some('\\') | Some('/'));
            if !drive {
                fields.push(std::mem::take(&mut buf));
                continue;
            }
        }
        buf.push(c);
    }
    fields.push(buf);
    if fields.iter().any(String::is_empty) {
        return Err("empty section between colons".into());
    }
    let (source, target, options) = match fields.len() {
        1 => (None, fields[0].clone(), None),
        2 => (Some(fields[0].clone()), fields[1].clone(), None),
        3 => (
            Some(fields[0].clone()),
            fields[1].clone(),
            Some(fields[2].clone()),
        ),
        _ => return Err("too many colons".into()),
    };
    let mut v = VolumeSpec {
        kind: "volume",
        source: source.clone(),
        target: clean_path(&target),
        read_only: false,
        nocopy: false,
        propagation: None,
        selinux: None,
        ignored: Vec::new(),
    };
    if let Some(src) = &source {
        let b = src.as_bytes();
        let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
        if src.starts_with(['.', '/', '~', '\\']) || drive {
            v.kind = "bind";
        }
    }
    for opt in options.iter().flat_map(|o| o.split(',')) {
        match opt {
            "ro" => v.read_only = true,
            "rw" => v.read_only = false,
            "nocopy" => v.nocopy = true,
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                v.propagation = Some(opt.to_string())
            }
            "z" | "Z" => v.selinux = Some(opt.to_string()),
            "cached" | "delegated" | "consistent" => {}
            other => v.ignored.push(other.to_string()),
        }
    }
    Ok(v)
}

fn volumes(n: &mut Node, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
    let Kind::Seq(items) = &mut n.kind else {
        return;
    };
    for it in items.iter_mut() {
        let span = it.span;
        if let Some(text) = it.as_text().map(str::to_string) {
            match parse_volume(&text) {
                Ok(v) => {
                    for opt in &v.ignored {
                        diags.push(
                            Diagnostic::warning(span, format!("unknown volume option `{opt}` is ignored"))
                                .with_hint("known options: ro, rw, nocopy, z, Z, and the propagation modes (shared, slave, private, ...)"),
                        );
                    }
                    let mut m = Map::default();
                    m.insert("type", span, Node::string(span, v.kind));
                    if let Some(s) = v.source {
                        m.insert("source", span, Node::string(span, s));
                    }
                    m.insert("target", span, Node::string(span, v.target));
                    if v.read_only {
                        m.insert("read_only", span, Node::plain(span, "true"));
                    }
                    if v.kind == "bind" {
                        let mut b = Map::default();
                        b.insert("create_host_path", span, Node::plain(span, "true"));
                        if let Some(p) = v.propagation {
                            b.insert("propagation", span, Node::string(span, p));
                        }
                        if let Some(s) = v.selinux {
                            b.insert("selinux", span, Node::string(span, s));
                        }
                        m.insert("bind", span, Node::map(span, b));
                    } else if v.nocopy {
                        let mut b = Map::default();
                        b.insert("nocopy", span, Node::plain(span, "true"));
                        m.insert("volume", span, Node::map(span, b));
                    }
                    *it = Node::map(span, m);
                }
                Err(e) => {
                    diags.push(
                        Diagnostic::error(span, format!("invalid volume `{text}`: {e}")).with_hint(
                            "the short form is `[SOURCE:]TARGET[:ro|rw|nocopy|z|Z]`, e.g. `./data:/data:ro` or `dbdata:/var/lib/mysql`",
                        ),
                    );
                    continue;
                }
            }
        }
        if let Some(m) = it.as_map_mut() {
            let is_bind = m.get("type").and_then(Node::as_text) == Some("bind");
            if is_bind && let Some(src) = m.get_mut("source") {
                resolve_path_node(src, ctx);
            }
            if let Some(t) = m.get_mut("target")
                && let Some(text) = t.as_text().map(clean_path)
            {
                *t = Node::string(t.span, text);
            }
        }
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

fn resolve_path_node(n: &mut Node, ctx: &Ctx<'_>) {
    if let Some(t) = n.as_text() {
        let resolved = resolve_path(t, ctx);
        let tag = n.tag;
        *n = Node::string(n.span, resolved);
        n.tag = tag;
    }
}

/// Makes `p` absolute against the base directory (`~` is the home directory).
pub fn resolve_path(p: &str, ctx: &Ctx<'_>) -> String {
    if is_windows_absolute(p) {
        return p.to_string();
    }
    let expanded: PathBuf = if p == "~" || p.starts_with("~/") {
        match ctx.home {
            Some(h) => Path::new(h).join(p.trim_start_matches('~').trim_start_matches('/')),
            None => PathBuf::from(p),
        }
    } else {
        PathBuf::from(p)
    };
    let abs = if expanded.is_absolute() {
        expanded
    } else {
        ctx.base_dir.join(expanded)
    };
    clean_path(&abs.to_string_lossy())
}

/// `C:\\x`, `C:/x` or `\\\\server\\share`: kept as written, as Compose does.
fn is_windows_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/'))
}

/// Lexically cleans a path: collapses `//`, `.` and `..` (like Go's `path.Clean`).
pub fn clean_path(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_short_form() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(p[0].published.as_deref(), Some("8080"));
        assert_eq!(p[0].target, 80);
        let p = parse_port("127.0.0.1:5432:5432/udp").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].protocol, "udp");
        let p = parse_port("[::1]:80:80").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("::1"));
        let p = parse_port("3000-3002:4000-4002").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[2].target, p[2].published.as_deref()),
            (4002, Some("3002"))
        );
        let p = parse_port("8000-8010:80").unwrap();
        assert_eq!(p[0].published.as_deref(), Some("8000-8010"));
        let p = parse_port("80").unwrap();
        assert_eq!(p[0].published, None);
        for bad in ["", "abc", "1:2:3:4x", "80/icmp", "99999", "10-5", "1-3:1-2"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_short_form() {
        let v = parse_volume("./data:/data:ro").unwrap();
        assert_eq!((v.kind, v.read_only), ("bind", true));
        let v = parse_volume("db:/var/lib/mysql/").unwrap();
        assert_eq!((v.kind, v.target.as_str()), ("volume", "/var/lib/mysql"));
        let v = parse_volume("/cache").unwrap();
        assert_eq!((v.kind, v.source), ("volume", None));
        let v = parse_volume("C:\\data:/data").unwrap();
        assert_eq!(v.kind, "bind");
        assert_eq!(parse_volume("data:/b:bogus").unwrap().ignored, ["bogus"]);
        for bad in ["", "a::b", "a:b:c:d"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(clean_path("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(clean_path("../x"), "../x");
        let ctx = Ctx {
            base_dir: Path::new("/p"),
            home: Some("/home/u"),
        };
        assert_eq!(resolve_path("./sub/../x", &ctx), "/p/x");
        assert_eq!(resolve_path("~/x", &ctx), "/home/u/x");
        assert_eq!(resolve_path("/abs", &ctx), "/abs");
        assert_eq!(
            resolve_path("C:\\docker\\project", &ctx),
            "C:\\docker\\project"
        );
    }
}
