//! Source checks that keep the public API clean: no test hook outside the `test-hooks`
//! feature, and a `lib.rs` that only declares modules and re-exports.
//!
//! They read the crate's sources (as `sys`'s layering test does) rather than the built
//! API, so they hold whatever features the test run has on.

use std::path::{Path, PathBuf};

/// `src/` of this crate, and every `.rs` file under it.
fn sources() -> (PathBuf, Vec<PathBuf>) {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    (root, files)
}

/// The code of a line: what comes before a `//` comment (doc comments are all comment).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap()
}

/// The attributes and doc comments right above line `i` (and the line itself): the lines
/// that belong to the item it starts or is an attribute of, up to the item's first line.
fn attribute_group(lines: &[&str], i: usize) -> Vec<usize> {
    let is_attr = |l: &str| {
        let t = l.trim_start();
        t.starts_with("#[") || t.starts_with("///")
    };
    let mut start = i;
    while start > 0 && is_attr(lines[start - 1]) {
        start -= 1;
    }
    let mut end = i;
    while end + 1 < lines.len() && is_attr(lines[end]) {
        end += 1;
    }
    (start..=end).collect()
}

/// A test hook is a `pub` item named `inject_*` (a field, a method) or anything hidden
/// from the docs with `doc(hidden)`: each must carry `#[cfg(feature = "test-hooks")]`
/// itself, so that without the feature it is not in the API at all.
#[test]
fn test_hooks_exist_only_under_the_test_hooks_feature() {
    // Built from pieces, so this file's own source does not match.
    let hidden = ["doc", "(hidden)"].concat();
    let gate = ["cfg(feature = ", "\"test-hooks\")"].concat();
    let (root, files) = sources();
    let mut gated_hooks = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let c = code(line).trim_start();
            let public_hook = (c.starts_with("pub fn inject_") || c.starts_with("pub inject_"))
                || c.contains(&hidden);
            if !public_hook {
                continue;
            }
            let gated = attribute_group(&lines, i)
                .into_iter()
                .any(|j| code(lines[j]).contains(&gate));
            assert!(
                gated,
                "{}:{}: a test hook in the public API without #[{gate}]: {}",
                f.strip_prefix(&root).unwrap().display(),
                i + 1,
                line.trim()
            );
            if c.starts_with("pub") {
                gated_hooks += 1;
            }
        }
    }
    // The scan sees the hooks there are (so it is not looking at nothing).
    assert!(gated_hooks >= 4, "{gated_hooks} hooks found");
}

/// `lib.rs` declares modules and re-exports, with the crate docs and lints; every item
/// lives in the module it belongs to.
#[test]
fn lib_rs_only_declares_modules_and_re_exports() {
    let (root, _) = sources();
    let text = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let code: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("//") || t.starts_with("#![") || t.starts_with("#["))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut statements = 0;
    for statement in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let module = ["mod ", "pub mod ", "pub(crate) mod "]
            .iter()
            .any(|p| statement.starts_with(p))
            && !statement.contains('{');
        let re_export = ["pub use ", "pub(crate) use "]
            .iter()
            .any(|p| statement.starts_with(p));
        assert!(
            module || re_export,
            "lib.rs may only declare modules and re-export: {statement}"
        );
        statements += 1;
    }
    assert!(statements > 10, "{statements} statements in lib.rs");
}
