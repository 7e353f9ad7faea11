//! `cove up --watch`: Compose's `develop.watch` rules, mapped to native
//! services. Files change in place natively, so `sync` has nothing to copy:
//!
//! | action | natively |
//! |---|---|
//! | `rebuild` | `cove deploy SERVICE`: its build, then a rolling replacement |
//! | `sync+restart`, `restart` | every replica replaced (rolling), no build |
//! | `sync`, `sync+exec` | nothing (the service reads the files in place) |
//!
//! Changes are debounced ([`QUIET`] without a new one); then each service
//! gets its strongest action once. Always ignored: `.git`, `target` (a
//! build would trigger itself) and cove's state directory; a rule's
//! `ignore` patterns are relative to its `path` (`*` within a name, `**`
//! across directories, a directory ignores what is under it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cove_spec::App;

/// Quiet time after the last change before acting.
pub const QUIET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Nothing to do natively.
    Sync,
    Restart,
    Rebuild,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub service: String,
    pub path: PathBuf,
    pub action: Action,
    pub ignore: Vec<String>,
}

/// The rules of `services`; the problem in words when there is none.
pub fn rules(app: &App, services: &[String]) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for name in services {
        let Some(develop) = app.services.get(name).and_then(|s| s.develop.as_ref()) else {
            continue;
        };
        for w in &develop.watch {
            let action = match w.action.as_str() {
                "rebuild" => Action::Rebuild,
                "restart" | "sync+restart" => Action::Restart,
                _ => Action::Sync,
            };
            out.push(Rule {
                service: name.clone(),
                path: PathBuf::from(&w.path),
                action,
                ignore: w.ignore.clone(),
            });
        }
    }
    if out.is_empty() {
        return Err("none of the selected services has `develop.watch` rules".into());
    }
    Ok(out)
}

/// Whether `pattern` (with `*` and `**`) matches `path` (`/`-separated).
fn glob(pattern: &str, path: &str) -> bool {
    fn parts(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => parts(&p[1..], s) || (!s.is_empty() && parts(p, &s[1..])),
            (Some(pp), Some(ss)) => name(pp, ss) && parts(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn name(p: &str, s: &str) -> bool {
        match p.split_once('*') {
            None => p == s,
            Some((pre, rest)) => {
                s.starts_with(pre)
                    && (0..=s.len() - pre.len()).any(|i| {
                        s.is_char_boundary(pre.len() + i) && name(rest, &s[pre.len() + i..])
                    })
            }
        }
    }
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    // A pattern naming a directory covers what is under it.
    (1..=s.len()).any(|n| parts(&p, &s[..n]))
}

impl Rule {
    /// Whether a change of `file` concerns this rule.
    pub fn matches(&self, file: &Path, state_dir: &Path) -> bool {
        let Ok(rel) = file.strip_prefix(&self.path) else {
            return false;
        };
        if file.starts_with(state_dir) {
            return false;
        }
        let rel = rel.to_string_lossy().replace('\\', "/");
        let always = rel.split('/').any(|c| c == ".git" || c == "target");
        !always && !self.ignore.iter().any(|p| glob(p, &rel))
    }
}

/// Changes gathered until things are quiet.
#[derive(Debug, Default)]
pub struct Debouncer {
    pending: BTreeMap<String, (Action, usize)>,
    last: Option<Instant>,
}

impl Debouncer {
    pub fn change(&mut self, rules: &[Rule], file: &Path, state_dir: &Path, now: Instant) {
        for r in rules.iter().filter(|r| r.matches(file, state_dir)) {
            let e = self
                .pending
                .entry(r.service.clone())
                .or_insert((r.action, 0));
            e.0 = e.0.max(r.action);
            e.1 += 1;
            self.last = Some(now);
        }
    }

    /// What to do, by service (with the number of changes), once quiet.
    pub fn ready(&mut self, now: Instant) -> Vec<(String, Action, usize)> {
        match self.last {
            Some(t) if now.duration_since(t) >= QUIET => {
                self.last = None;
                std::mem::take(&mut self.pending)
                    .into_iter()
                    .map(|(s, (a, n))| (s, a, n))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(glob("*.tmp", "a.tmp"));
        assert!(!glob("*.tmp", "a.tmpx"));
        assert!(
            glob("node_modules", "node_modules/x/y.js"),
            "a directory covers its files"
        );
        assert!(glob("**/*.log", "a/b/c.log"));
        assert!(glob("**/*.log", "c.log"));
        assert!(glob("docs/", "docs/index.md"));
        assert!(!glob("docs", "src/docs.rs"));
    }

    #[test]
    fn changes_are_debounced_per_service_with_the_strongest_action() {
        let rule = |service: &str, path: &str, action, ignore: &[&str]| Rule {
            service: service.into(),
            path: path.into(),
            action,
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        };
        let rules = [
            rule("api", "/p/api", Action::Restart, &["*.tmp"]),
            rule("api", "/p/api/src", Action::Rebuild, &[]),
            rule("web", "/p/web", Action::Sync, &[]),
        ];
        let state = Path::new("/p/.cove");
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        d.change(&rules, Path::new("/p/api/conf.toml"), state, t0);
        d.change(&rules, Path::new("/p/api/x.tmp"), state, t0);
        d.change(&rules, Path::new("/p/api/target/debug/api"), state, t0);
        d.change(
            &rules,
            Path::new("/p/api/src/main.rs"),
            state,
            t0 + QUIET / 2,
        );
        d.change(&rules, Path::new("/p/.cove/logs/x"), state, t0 + QUIET / 2);
        assert!(d.ready(t0 + QUIET).is_empty(), "not quiet yet");
        let ready = d.ready(t0 + QUIET * 2);
        assert_eq!(ready, [("api".to_string(), Action::Rebuild, 3)]);
        assert!(d.ready(t0 + QUIET * 3).is_empty(), "once");
    }
}
