//! Import cycles between the top-level modules of a crate.
//!
//! A module `a` uses module `b` when code in `a` (or below it) names a path
//! into `b`: `use crate::b::X`, `crate::b::f()`, or `super::b` from a top-level
//! module. Items of the crate root itself are not a module of their own, and
//! test code may use anything. A cycle among these edges means two modules
//! cannot be read, or changed, one before the other.

use crate::sources::{self, Error};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::{self, Visit};

/// Where one module first names another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The file holding the reference.
    pub file: PathBuf,
    /// Its line.
    pub line: usize,
}

/// The top-level modules of a crate and which of them use which.
#[derive(Debug, Default)]
pub struct Graph {
    /// `edges[a][b]`: where `a` first uses `b`.
    pub edges: BTreeMap<String, BTreeMap<String, Use>>,
}

/// A module of the crate with the items written in it (an inline module's
/// items are its own module's, not its parent's).
struct Module {
    /// From the crate root: `["orders", "queue"]`; empty for the root.
    path: Vec<String>,
    file: PathBuf,
    items: Vec<syn::Item>,
}

/// The module graph of the library whose root is `src/lib.rs`.
pub fn crate_graph(src: &Path) -> Result<Graph, Error> {
    let root = src.join("lib.rs");
    let ast = sources::parse(&root)?;
    let mut modules = Vec::new();
    collect(Vec::new(), &root, ast.items, &mut modules)?;
    Ok(graph(&modules))
}

/// The module graph of a one-file crate (for tests and fixtures).
pub fn source_graph(file: &Path, text: &str) -> Result<Graph, Error> {
    let ast = sources::parse_str(file, text)?;
    let mut modules = Vec::new();
    collect(Vec::new(), file, ast.items, &mut modules)?;
    Ok(graph(&modules))
}

/// Adds the module `path` (written in `file`) and its non-test submodules.
fn collect(
    path: Vec<String>,
    file: &Path,
    items: Vec<syn::Item>,
    out: &mut Vec<Module>,
) -> Result<(), Error> {
    for item in &items {
        let syn::Item::Mod(m) = item else { continue };
        if sources::is_test(&m.attrs) {
            continue;
        }
        let mut child = path.clone();
        child.push(m.ident.to_string());
        match &m.content {
            Some((_, inline)) => collect(child, file, inline.clone(), out)?,
            None => {
                let name = m.ident.to_string();
                let child_file = sources::module_file(file, &name).ok_or_else(|| Error::Io {
                    path: file.with_file_name(format!("{name}.rs")),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
                let ast = sources::parse(&child_file)?;
                collect(child, &child_file, ast.items, out)?;
            }
        }
    }
    out.push(Module {
        path,
        file: file.into(),
        items,
    });
    Ok(())
}

fn graph(modules: &[Module]) -> Graph {
    let tops: BTreeSet<&str> = modules
        .iter()
        .filter(|m| m.path.len() == 1)
        .map(|m| m.path[0].as_str())
        .collect();
    let mut g = Graph::default();
    for m in modules.iter().filter(|m| !m.path.is_empty()) {
        let mut refs = Refs {
            module: &m.path,
            found: Vec::new(),
        };
        for item in &m.items {
            refs.visit_item(item);
        }
        for (target, line) in refs.found {
            let from = &m.path[0];
            if &target != from && tops.contains(target.as_str()) {
                let uses = g.edges.entry(from.clone()).or_default();
                uses.entry(target).or_insert(Use {
                    file: m.file.clone(),
                    line,
                });
            }
        }
    }
    g
}

/// The top-level modules a module's paths lead into, with their lines.
struct Refs<'a> {
    module: &'a [String],
    found: Vec<(String, usize)>,
}

impl Refs<'_> {
    /// Records the top-level module that `segments` (a path as written in
    /// this module) starts in, if it is one of this crate's.
    fn path(&mut self, segments: &[&syn::Ident]) {
        let Some(first) = segments.first() else {
            return;
        };
        let line = first.span().start().line;
        let rest = segments.iter().map(|s| s.to_string());
        let mut resolved: Vec<String> = match first.to_string().as_str() {
            "crate" => rest.skip(1).collect(),
            "self" => self.module.iter().cloned().chain(rest.skip(1)).collect(),
            "super" => {
                let ups = segments.iter().take_while(|s| **s == "super").count();
                let keep = self.module.len().saturating_sub(ups);
                self.module[..keep]
                    .iter()
                    .cloned()
                    .chain(rest.skip(ups))
                    .collect()
            }
            _ => return,
        };
        if !resolved.is_empty() {
            self.found.push((resolved.swap_remove(0), line));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<syn::Ident>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.clone());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident),
            syn::UseTree::Glob(_) => self.path(&prefix.iter().collect::<Vec<_>>()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    fn use_leaf(&mut self, prefix: &[syn::Ident], last: &syn::Ident) {
        let segments: Vec<&syn::Ident> = prefix.iter().chain([last]).collect();
        self.path(&segments);
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Submodules are modules of their own (or tests).
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !sources::is_test(&f.attrs) {
            visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<&syn::Ident> = p.segments.iter().map(|s| &s.ident).collect();
        self.path(&segments);
        visit::visit_path(self, p);
    }
}

impl Graph {
    /// One cycle through each group of modules that use each other, as the
    /// modules in order with the place each uses the next; the last uses the
    /// first.
    pub fn cycles(&self) -> Vec<Vec<(String, Use)>> {
        let mut seen = BTreeSet::new();
        let mut cycles = Vec::new();
        for start in self.edges.keys() {
            if seen.contains(start) {
                continue;
            }
            if let Some(cycle) = self.cycle_from(start) {
                seen.extend(cycle.iter().map(|(m, _)| m.clone()));
                cycles.push(cycle);
            }
        }
        cycles
    }

    /// The shortest way from `start` back to itself, breadth first.
    fn cycle_from(&self, start: &str) -> Option<Vec<(String, Use)>> {
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(m) = queue.pop_front() {
            for next in self.edges.get(m).into_iter().flat_map(|e| e.keys()) {
                if next == start {
                    return Some(self.walk_back(start, m, &came_from));
                }
                if !came_from.contains_key(next.as_str()) {
                    came_from.insert(next, m);
                    queue.push_back(next);
                }
            }
        }
        None
    }

    fn walk_back(
        &self,
        start: &str,
        last: &str,
        came_from: &BTreeMap<&str, &str>,
    ) -> Vec<(String, Use)> {
        let mut order = vec![last];
        while let Some(prev) = came_from.get(order.last().copied().unwrap_or(start)) {
            order.push(prev);
        }
        if order.last() != Some(&start) {
            order.push(start);
        }
        order.reverse();
        let next = order.iter().skip(1).chain([&start]);
        order
            .iter()
            .zip(next)
            .map(|(m, n)| (m.to_string(), self.edges[*m][*n].clone()))
            .collect()
    }
}

/// A cycle as `a -> b (a.rs:3) -> a (b.rs:9)`.
pub fn describe(cycle: &[(String, Use)]) -> String {
    let mut out = cycle.first().map(|(m, _)| m.clone()).unwrap_or_default();
    let next = cycle.iter().skip(1).chain(cycle.first());
    for ((_, used), (to, _)) in cycle.iter().zip(next) {
        out.push_str(&format!(" -> {to} ({}:{})", used.file.display(), used.line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycles(src: &str) -> Vec<String> {
        let g = source_graph(Path::new("lib.rs"), src).unwrap();
        g.cycles().iter().map(|c| describe(c)).collect()
    }

    #[test]
    fn finds_a_cycle_through_use_and_paths() {
        let src = "mod a {\n    use crate::b::X;\n}\nmod b {\n    fn f() { crate::c::g(); }\n}\nmod c {\n    fn g() -> super::a::Y { todo!() }\n}\n";
        assert_eq!(
            cycles(src),
            ["a -> b (lib.rs:2) -> c (lib.rs:5) -> a (lib.rs:8)"]
        );
    }

    #[test]
    fn finds_cycles_in_groups_globs_and_nested_modules() {
        let src = "mod a { mod deep { use crate::{x, b::*}; } }\nmod b { use super::a; }\nmod x {}";
        assert_eq!(cycles(src), ["a -> b (lib.rs:1) -> a (lib.rs:2)"]);
    }

    #[test]
    fn layers_tests_and_the_root_are_no_cycle() {
        let src = "pub struct Root;\nmod a { use crate::Root; use self::inner::Z; mod inner { use super::super::b::f; pub struct Z; } }\nmod b { use crate::Root; pub fn f() {} #[cfg(test)] mod tests { use crate::a::Z; } #[test] fn t() { crate::a::Z; } }\n";
        assert_eq!(cycles(src), Vec::<String>::new());
        let g = source_graph(Path::new("lib.rs"), src).unwrap();
        assert_eq!(g.edges["a"].keys().collect::<Vec<_>>(), ["b"]);
    }
}
