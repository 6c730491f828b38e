//! Functions longer than a reader takes in at once (issue #18: at most 80
//! lines outside tests).

use crate::sources::{self, Error};
use std::path::{Path, PathBuf};
use syn::visit::{self, Visit};

/// The most lines a function outside tests may span.
pub const MAX_LINES: usize = 80;

/// A function over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongFn {
    /// The file it is in.
    pub file: PathBuf,
    /// Its name (`Type::name` for methods).
    pub name: String,
    /// The line of its `fn`.
    pub line: usize,
    /// Lines from its `fn` to its closing brace.
    pub lines: usize,
}

/// Every function over `max` lines in the non-test code below `root`, by file.
pub fn find(root: &Path, max: usize) -> Result<Vec<LongFn>, Error> {
    let mut long = Vec::new();
    let mut test_modules = Vec::new();
    let files = sources::rust_files(root)?;
    for file in &files {
        let ast = sources::parse(file)?;
        test_modules.extend(out_of_line_test_modules(file, &ast));
        long.extend(in_file(file, &ast, max));
    }
    long.retain(|f| !test_modules.contains(&f.file));
    Ok(long)
}

/// The functions over `max` lines in one parsed file, skipping test code.
pub fn in_file(file: &Path, ast: &syn::File, max: usize) -> Vec<LongFn> {
    let mut v = Finder {
        file,
        max,
        owner: Vec::new(),
        long: Vec::new(),
    };
    v.visit_file(ast);
    v.long
}

/// The files of `#[cfg(test)] mod name;` declarations.
fn out_of_line_test_modules(file: &Path, ast: &syn::File) -> Vec<PathBuf> {
    ast.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() && sources::is_test(&m.attrs) => {
                sources::module_file(file, &m.ident.to_string())
            }
            _ => None,
        })
        .collect()
}

struct Finder<'a> {
    file: &'a Path,
    max: usize,
    /// The `impl` or `trait` being read, to name methods `Type::name`.
    owner: Vec<String>,
    long: Vec<LongFn>,
}

impl Finder<'_> {
    fn check(&mut self, sig: &syn::Signature, close: proc_macro2::Span) {
        let line = sig.fn_token.span.start().line;
        let lines = close.end().line + 1 - line;
        if lines > self.max {
            let name = match self.owner.last() {
                Some(owner) => format!("{owner}::{}", sig.ident),
                None => sig.ident.to_string(),
            };
            self.long.push(LongFn {
                file: self.file.into(),
                name,
                line,
                lines,
            });
        }
    }
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !sources::is_test(&m.attrs) {
            visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let ty = &*i.self_ty;
        let name = match ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        self.owner.push(name.unwrap_or_else(|| "impl".into()));
        visit::visit_item_impl(self, i);
        self.owner.pop();
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.owner.push(t.ident.to_string());
        visit::visit_item_trait(self, t);
        self.owner.pop();
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !sources::is_test(&f.attrs) {
            self.check(&f.sig, f.block.brace_token.span.close());
            visit::visit_item_fn(self, f);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !sources::is_test(&f.attrs) {
            self.check(&f.sig, f.block.brace_token.span.close());
            visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(body) = &f.default {
            self.check(&f.sig, body.brace_token.span.close());
        }
        visit::visit_trait_item_fn(self, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function `name` of `body_lines` lines between its braces.
    fn function(name: &str, body_lines: usize) -> String {
        let body = "    let _ = \"{\\\\rtf\";\n".repeat(body_lines);
        format!("fn {name}() {{\n{body}}}\n")
    }

    fn long_in(src: &str, max: usize) -> Vec<(String, usize, usize)> {
        let ast = sources::parse_str(Path::new("f.rs"), src).unwrap();
        in_file(Path::new("f.rs"), &ast, max)
            .into_iter()
            .map(|f| (f.name, f.line, f.lines))
            .collect()
    }

    #[test]
    fn finds_a_long_function_with_braces_in_strings() {
        let src = format!(
            "{}\n{}\nstruct S;\nimpl S {{\n{}}}\n",
            function("short", 3),
            function("long", 4),
            function("method", 5)
        );
        assert_eq!(
            long_in(&src, 5),
            [("long".to_string(), 7, 6), ("S::method".to_string(), 16, 7)]
        );
        assert_eq!(long_in(&src, MAX_LINES), []);
    }

    #[test]
    fn counts_default_trait_methods_and_nested_functions() {
        let src = format!(
            "trait T {{\n{}}}\nfn outer() {{\n{}}}\n",
            function("default", 6),
            function("inner", 6)
        );
        let names: Vec<String> = long_in(&src, 6).into_iter().map(|f| f.0).collect();
        assert_eq!(names, ["T::default", "outer", "inner"]);
    }

    #[test]
    fn test_code_may_be_long() {
        let src = format!(
            "#[cfg(test)]\nmod tests {{\n{}}}\n#[test]\n{}",
            function("in_tests", 9),
            function("a_test", 9)
        );
        assert_eq!(long_in(&src, 5), []);
    }

    #[test]
    fn out_of_line_test_modules_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::write(src.join("lib.rs"), "mod a;\n").unwrap();
        std::fs::write(src.join("a.rs"), "#[cfg(test)]\nmod tests;\n").unwrap();
        std::fs::write(src.join("a/tests.rs"), function("t", 9)).unwrap();
        std::fs::write(src.join("b.rs"), function("b", 9)).unwrap();
        let long = find(dir.path(), 5).unwrap();
        let names: Vec<&str> = long.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }
}
