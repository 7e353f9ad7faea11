//! The service dependency graph: order, cycles, closures.
//!
//! Services start dependencies first; a cycle makes that impossible, so every
//! cycle is reported with its full path (`a → b → c → a`). The same graph
//! gives the dependency closure `cove up SERVICE` starts.

use indexmap::{IndexMap, IndexSet};

use crate::source::Span;

/// One edge: `from` depends on `to`, declared at `span`.
#[derive(Debug, Clone)]
pub struct Edge {
    pub to: String,
    pub span: Span,
}

/// Dependencies of every service, in declaration order.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub deps: IndexMap<String, Vec<Edge>>,
}

/// A cycle: the services in order, first repeated at the end, and the span of
/// the edge that closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub path: Vec<String>,
    pub span: Span,
}

impl Graph {
    /// Every elementary cycle reachable by depth-first search, each reported
    /// once (rotations are the same cycle). Visits services in sorted order,
    /// as Compose does, so the report is stable.
    pub fn cycles(&self) -> Vec<Cycle> {
        let mut names: Vec<&String> = self.deps.keys().collect();
        names.sort();
        let mut found: Vec<Cycle> = Vec::new();
        let mut seen_sets: Vec<Vec<String>> = Vec::new();
        let mut done: IndexSet<String> = IndexSet::new();
        for start in names {
            let mut stack: Vec<String> = Vec::new();
            self.dfs(start, &mut stack, &mut done, &mut found, &mut seen_sets);
        }
        found
    }

    fn dfs(
        &self,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut IndexSet<String>,
        found: &mut Vec<Cycle>,
        seen: &mut Vec<Vec<String>>,
    ) {
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        let mut edges: Vec<&Edge> = self
            .deps
            .get(node)
            .map(|e| e.iter().collect())
            .unwrap_or_default();
        edges.sort_by(|a, b| a.to.cmp(&b.to));
        for e in edges {
            if let Some(pos) = stack.iter().position(|s| *s == e.to) {
                let mut path: Vec<String> = stack[pos..].to_vec();
                let mut key = path.clone();
                key.sort();
                if !seen.contains(&key) {
                    seen.push(key);
                    path.push(e.to.clone());
                    found.push(Cycle { path, span: e.span });
                }
            } else if self.deps.contains_key(&e.to) {
                self.dfs(&e.to, stack, done, found, seen);
            }
        }
        stack.pop();
        done.insert(node.to_string());
    }

    /// Services with dependencies first; ties keep declaration order (the
    /// earliest declared service that is ready goes next). Services on a
    /// cycle come last, in declaration order.
    pub fn order(&self) -> Vec<String> {
        let index: IndexMap<&str, usize> = self
            .deps
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut waiting: Vec<usize> = vec![0; index.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); index.len()];
        for (i, edges) in self.deps.values().enumerate() {
            for e in edges {
                if let Some(&j) = index.get(e.to.as_str()) {
                    waiting[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..index.len()).filter(|&i| waiting[i] == 0).collect();
        let mut placed = vec![false; index.len()];
        let mut out = Vec::with_capacity(index.len());
        while let Some(i) = ready.pop_first() {
            placed[i] = true;
            out.push(
                self.deps
                    .get_index(i)
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default(),
            );
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        out.extend(
            self.deps
                .keys()
                .enumerate()
                .filter(|(i, _)| !placed[*i])
                .map(|(_, k)| k.clone()),
        );
        out
    }

    /// `roots` and everything they depend on, transitively, in start order.
    pub fn closure(&self, roots: &[String]) -> Vec<String> {
        let mut want: IndexSet<String> = IndexSet::new();
        let mut todo: Vec<String> = roots.to_vec();
        while let Some(n) = todo.pop() {
            if want.insert(n.clone())
                && let Some(edges) = self.deps.get(&n)
            {
                todo.extend(edges.iter().map(|e| e.to.clone()));
            }
        }
        self.order()
            .into_iter()
            .filter(|n| want.contains(n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let mut g = Graph::default();
        for (from, tos) in edges {
            g.deps.insert(
                from.to_string(),
                tos.iter()
                    .map(|t| Edge {
                        to: t.to_string(),
                        span: Span::default(),
                    })
                    .collect(),
            );
        }
        g
    }

    #[test]
    fn order_and_closure() {
        let g = graph(&[
            ("web", &["api"]),
            ("api", &["db", "cache"]),
            ("db", &[]),
            ("cache", &[]),
            ("other", &[]),
        ]);
        assert_eq!(g.order(), ["db", "cache", "api", "web", "other"]);
        assert_eq!(g.closure(&["api".into()]), ["db", "cache", "api"]);
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn cycles_have_full_paths() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["d"])]);
        let c: Vec<Vec<String>> = g.cycles().into_iter().map(|c| c.path).collect();
        assert_eq!(c, vec![vec!["a", "b", "c", "a"], vec!["d", "d"]]);
    }
}
