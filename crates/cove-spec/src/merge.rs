//! Compose's merge rules, on canonical trees.
//!
//! Used for override files (`-f a.yaml -f b.yaml`), multi-document files,
//! `extends` and `include`. Mappings merge key by key; scalars are replaced;
//! sequences are appended, except where Compose keys them: ports by
//! `ip:published:target/protocol`, volumes by target, secrets and configs by
//! mount target, env files by path, and plain string lists (`cap_add`, `dns`,
//! `profiles`, ...) by value, where a later item replaces an earlier one in
//! place. `command`, `entrypoint` and `healthcheck.test` are replaced whole.
//! `!reset` removes an inherited value; `!override` replaces it without merging.

use crate::node::{Kind, MergeTag, Node};

/// Merges `over` onto `base`; `path` is where they sit (`services.web`).
pub fn merge(base: Node, over: Node, path: &[&str]) -> Node {
    if over.tag == Some(MergeTag::Override) {
        return strip(over);
    }
    match (base.kind, over.kind) {
        (Kind::Map(mut b), Kind::Map(o)) => {
            if matches_path(path, &["services", "*", "logging"]) {
                let driver = |m: &crate::node::Map| {
                    m.get("driver").and_then(Node::as_text).map(str::to_string)
                };
                if let (Some(bd), Some(od)) = (driver(&b), driver(&o))
                    && bd != od
                {
                    return strip(Node {
                        kind: Kind::Map(o),
                        ..over
                    });
                }
            }
            if matches_path(path, &["services", "*", "ulimits", "*"]) {
                return strip(Node {
                    kind: Kind::Map(o),
                    ..over
                });
            }
            for e in o.entries {
                match e.value.tag {
                    Some(MergeTag::Reset) => {
                        b.remove(&e.key);
                    }
                    Some(MergeTag::Override) => b.insert(e.key, e.key_span, strip(e.value)),
                    None => {
                        let mut child: Vec<&str> = path.to_vec();
                        child.push(&e.key);
                        if b.contains(&e.key) {
                            b.update(&e.key, |existing| merge(existing, e.value, &child));
                        } else {
                            b.entries.push(crate::node::Entry {
                                key: e.key,
                                key_span: e.key_span,
                                value: strip(e.value),
                            });
                        }
                    }
                }
            }
            Node {
                span: base.span,
                kind: Kind::Map(b),
                tag: None,
            }
        }
        (Kind::Seq(b), Kind::Seq(o)) => {
            if replaces_whole(path) {
                return strip(Node {
                    kind: Kind::Seq(o),
                    ..over
                });
            }
            let o: Vec<Node> = o
                .into_iter()
                .filter(|n| n.tag != Some(MergeTag::Reset))
                .map(strip)
                .collect();
            let items = match unicity_key(path) {
                Some(key) => merge_keyed(b, o, key),
                None => {
                    let mut b = b;
                    b.extend(o);
                    b
                }
            };
            Node {
                span: base.span,
                kind: Kind::Seq(items),
                tag: None,
            }
        }
        (b, Kind::Null) => Node {
            span: base.span,
            kind: b,
            tag: None,
        },
        (_, o) => strip(Node { kind: o, ..over }),
    }
}

fn merge_keyed(base: Vec<Node>, over: Vec<Node>, key: fn(&Node) -> Option<String>) -> Vec<Node> {
    let mut out = base;
    for item in over {
        let k = key(&item);
        let existing = k
            .as_ref()
            .and_then(|k| out.iter().position(|n| key(n).as_ref() == Some(k)));
        match existing {
            Some(i) => out[i] = item,
            None => out.push(item),
        }
    }
    out
}

/// Removes `!reset` nodes and clears tags in a value that is taken as is.
pub fn strip(mut node: Node) -> Node {
    node.tag = None;
    match &mut node.kind {
        Kind::Map(m) => {
            m.entries.retain(|e| e.value.tag != Some(MergeTag::Reset));
            for e in &mut m.entries {
                let v = std::mem::replace(&mut e.value, Node::null(Default::default()));
                e.value = strip(v);
            }
        }
        Kind::Seq(items) => {
            items.retain(|n| n.tag != Some(MergeTag::Reset));
            for it in items.iter_mut() {
                let span = it.span;
                let v = std::mem::replace(it, Node::null(span));
                *it = strip(v);
            }
        }
        _ => {}
    }
    node
}

fn matches_path(path: &[&str], pattern: &[&str]) -> bool {
    path.len() == pattern.len() && path.iter().zip(pattern).all(|(p, q)| *q == "*" || p == q)
}

fn replaces_whole(path: &[&str]) -> bool {
    ["command", "entrypoint"]
        .iter()
        .any(|k| matches_path(path, &["services", "*", k]))
        || matches_path(path, &["services", "*", "healthcheck", "test"])
}

fn text_of(n: &Node, key: &str) -> Option<String> {
    n.as_map()?.get(key)?.as_text().map(str::to_string)
}

fn port_key(n: &Node) -> Option<String> {
    Some(format!(
        "{}:{}:{}/{}",
        text_of(n, "host_ip").unwrap_or_else(|| "0.0.0.0".into()),
        text_of(n, "published").unwrap_or_default(),
        text_of(n, "target")?,
        text_of(n, "protocol").unwrap_or_else(|| "tcp".into())
    ))
}

fn volume_key(n: &Node) -> Option<String> {
    text_of(n, "target")
}

fn secret_key(n: &Node) -> Option<String> {
    text_of(n, "target").or_else(|| Some(format!("/run/secrets/{}", text_of(n, "source")?)))
}

fn config_key(n: &Node) -> Option<String> {
    text_of(n, "target").or_else(|| Some(format!("/{}", text_of(n, "source")?)))
}

fn env_file_key(n: &Node) -> Option<String> {
    text_of(n, "path")
}

fn value_key(n: &Node) -> Option<String> {
    let t = n.as_text()?;
    Some(t.split_once('=').map(|(k, _)| k).unwrap_or(t).to_string())
}

fn exact_key(n: &Node) -> Option<String> {
    n.as_text().map(str::to_string)
}

fn unicity_key(path: &[&str]) -> Option<fn(&Node) -> Option<String>> {
    if path.len() != 3 || path[0] != "services" {
        if matches_path(path, &["services", "*", "build", "tags"]) {
            return Some(value_key);
        }
        return None;
    }
    Some(match path[2] {
        "ports" => port_key,
        "volumes" => volume_key,
        "secrets" => secret_key,
        "configs" => config_key,
        "env_file" => env_file_key,
        "cap_add" | "cap_drop" | "dns" | "dns_opt" | "dns_search" | "links" | "profiles"
        | "tmpfs" | "expose" => value_key,
        "extra_hosts" => exact_key,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostics;
    use crate::source::FileId;

    fn yaml(s: &str) -> Node {
        let mut d = Diagnostics::default();
        crate::parse::parse(FileId(0), s, &mut d).remove(0)
    }

    #[test]
    fn rules() {
        let base = yaml(
            "services:\n  a:\n    image: x\n    command: [a, b]\n    cap_add: [A, B]\n    volumes: [{type: volume, source: v, target: /d}]\n    environment: {A: '1', B: '2'}\n",
        );
        let over = yaml(
            "services:\n  a:\n    image: y\n    command: [c]\n    cap_add: [B, C]\n    volumes: [{type: bind, source: /h, target: /d}]\n    environment: {B: '3'}\n",
        );
        let m = merge(base, over, &[]).to_json();
        let a = &m["services"]["a"];
        assert_eq!(a["image"], "y");
        assert_eq!(a["command"], serde_json::json!(["c"]));
        assert_eq!(a["cap_add"], serde_json::json!(["A", "B", "C"]));
        assert_eq!(a["volumes"][0]["type"], "bind");
        assert_eq!(a["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(a["environment"], serde_json::json!({"A": "1", "B": "3"}));
    }

    #[test]
    fn reset_and_override() {
        let base = yaml(
            "services:\n  a:\n    image: x\n    ports: [{target: 80}]\n    environment: {A: '1'}\n",
        );
        let over =
            yaml("services:\n  a:\n    ports: !reset []\n    environment: !override {B: '2'}\n");
        let m = merge(base, over, &[]).to_json();
        let a = &m["services"]["a"];
        assert!(a.get("ports").is_none());
        assert_eq!(a["environment"], serde_json::json!({"B": "2"}));
    }
}
