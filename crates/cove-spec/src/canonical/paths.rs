//! Paths: relative ones made absolute against the file's directory, `~`
//! expanded, all cleaned lexically.

use std::path::{Component, Path, PathBuf};

use super::Ctx;
use crate::node::Node;

pub(super) fn resolve_path_node(n: &mut Node, ctx: &Ctx<'_>) {
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
