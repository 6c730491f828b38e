//! Finding and parsing the Rust files the checks read, and telling test code
//! apart from the rest.

use std::path::{Path, PathBuf};
use syn::Attribute;

/// A file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not Rust that syn can parse.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        line: usize,
        /// What it expected.
        message: String,
    },
}

/// Directories never read: build output, dependencies, and test code, which
/// the checks leave alone (integration tests live in each crate's `tests/`).
const SKIPPED_DIRS: [&str; 3] = ["target", "tests", "node_modules"];

/// The test kit is test code although it is a library (ARCHITECTURE.md).
const TEST_CRATES: [&str; 1] = ["testkit"];

/// Reads and parses one file.
pub fn parse(path: &Path) -> Result<syn::File, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    parse_str(path, &text)
}

/// Parses `text` as the file `path`.
pub fn parse_str(path: &Path, text: &str) -> Result<syn::File, Error> {
    syn::parse_file(text).map_err(|e| Error::Parse {
        path: path.into(),
        line: e.span().start().line,
        message: e.to_string(),
    })
}

/// Whether an item is test code: `#[cfg(test)]` or `#[test]`.
pub fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

/// Every `.rs` file below `root` that is not test code, sorted.
pub fn rust_files(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let io = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                let test_crate = dir == root && TEST_CRATES.contains(&name);
                if !(name.starts_with('.') || SKIPPED_DIRS.contains(&name) || test_crate) {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The file of `mod name;` declared in `file`: beside a crate root or a
/// `mod.rs`, in the directory named after any other file.
pub fn module_file(file: &Path, name: &str) -> Option<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let own_dir = dir.join(stem);
    // A bench or fuzz target is a crate root without the name of one; the
    // directory beside it is tried after the one named after it.
    let dirs: Vec<&Path> = if matches!(stem, "lib" | "main" | "mod") {
        vec![dir]
    } else {
        vec![&own_dir, dir]
    };
    dirs.into_iter()
        .flat_map(|d| [d.join(format!("{name}.rs")), d.join(name).join("mod.rs")])
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_attributes() {
        let f = parse_str(
            Path::new("x.rs"),
            "#[cfg(test)] mod a {} #[test] fn b() {} #[cfg(unix)] fn c() {} #[cfg(not(test))] fn d() {}",
        )
        .unwrap();
        let tests: Vec<bool> = f
            .items
            .iter()
            .map(|i| match i {
                syn::Item::Mod(m) => is_test(&m.attrs),
                syn::Item::Fn(f) => is_test(&f.attrs),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(tests, [true, true, false, false]);
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let e = parse_str(Path::new("bad.rs"), "fn a() {}\nfn b( {}\n")
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("bad.rs:2: "), "{e}");
    }

    #[test]
    fn walks_code_but_not_tests_or_the_test_kit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a/src/lib.rs",
            "a/tests/it.rs",
            "target/x.rs",
            "testkit/src/lib.rs",
            "b/c.rs",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let found = rust_files(root).unwrap();
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap())
            .collect();
        assert_eq!(rel, [Path::new("a/src/lib.rs"), Path::new("b/c.rs")]);
    }
}
