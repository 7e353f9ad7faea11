//! Volumes: the short form `[SOURCE:]TARGET[:OPTIONS]` and its long form.

use super::{Ctx, clean_path, resolve_path_node};
use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Kind, Map, Node};

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

pub(super) fn volumes(n: &mut Node, ctx: &Ctx<'_>, diags: &mut Diagnostics) {
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
                    } else {
                        if v.nocopy {
                            let mut b = Map::default();
                            b.insert("nocopy", span, Node::plain(span, "true"));
                            m.insert("volume", span, Node::map(span, b));
                        }
                        // `:z`/`:Z` on a named volume: kept where Compose
                        // keeps it (`bind.selinux`), not dropped.
                        if let Some(s) = v.selinux {
                            let mut b = Map::default();
                            b.insert("selinux", span, Node::string(span, s));
                            m.insert("bind", span, Node::map(span, b));
                        }
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
            // `tmpfs.size: 64m` in bytes, as Compose prints it.
            if let Some(size) = m
                .get_mut("tmpfs")
                .and_then(Node::as_map_mut)
                .and_then(|t| t.get_mut("size"))
                && let Some(bytes) = size
                    .as_text()
                    .and_then(|t| crate::units::parse_bytes(t).ok())
            {
                *size = Node::string(size.span, bytes.to_string());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
