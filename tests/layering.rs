//! The layering of `docs/architecture.md`, checked against the source: a
//! part uses only the parts listed above it, apart from the arrows that
//! the document lists as running back up, each of which must still exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";

/// An arrow from one part to another, with the file that draws it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Arrow {
    from: String,
    to: String,
    file: String,
}

/// The cells of the Markdown table rows that follow `heading`.
fn table_rows<'a>(doc: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("{DOC} has no section `## {heading}`"));
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // the header and the separator
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect()
}

/// The words written in backticks in `cell`.
fn quoted(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Parts from the ground up, and the part of each top-level module.
fn parts(doc: &str) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut names = Vec::new();
    let mut part_of = BTreeMap::new();
    for row in table_rows(doc, "Parts, from the ground up") {
        for module in quoted(row[1]) {
            let clash = part_of.insert(module.to_string(), names.len());
            assert!(clash.is_none(), "{DOC}: `{module}` is in two parts");
        }
        names.push(row[0].to_string());
    }
    (names, part_of)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `text` names as `crate::<module>`, outside
/// comments and the test module at the end of a file.
fn modules_named(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut named = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                named.insert(rest[..end].to_string());
            }
        }
    }
    named
}

/// Every arrow from a part to one listed below it in the document.
fn upward_arrows(src: &Path, names: &[String], part_of: &BTreeMap<String, usize>) -> Vec<Arrow> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut arrows = Vec::new();
    for path in files {
        let rel = path.strip_prefix(src).unwrap();
        // Test-only files (`mod tests;` beside the code) may use anything.
        if rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let top = top.strip_suffix(".rs").unwrap_or(top);
        let from = *part_of
            .get(top)
            .unwrap_or_else(|| panic!("src/{top} is in no part of {DOC}"));
        let text = std::fs::read_to_string(&path).unwrap();
        for module in modules_named(&text) {
            let Some(&to) = part_of.get(&module) else {
                continue; // a macro's `$crate::` path, or an item of lib.rs
            };
            if to > from {
                arrows.push(Arrow {
                    from: names[from].clone(),
                    to: names[to].clone(),
                    file: rel.to_str().unwrap().to_string(),
                });
            }
        }
    }
    arrows.sort();
    arrows.dedup();
    arrows
}

#[test]
fn no_part_uses_a_part_above_it_except_the_arrows_the_document_lists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join(DOC)).unwrap();
    let (names, part_of) = parts(&doc);
    let found = upward_arrows(&root.join("src"), &names, &part_of);
    let mut listed: Vec<Arrow> = table_rows(&doc, "Arrows that run back up")
        .iter()
        .map(|row| Arrow {
            from: row[0].to_string(),
            to: row[1].to_string(),
            file: quoted(row[2])
                .first()
                .copied()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    listed.sort();
    let new: Vec<&Arrow> = found.iter().filter(|a| !listed.contains(a)).collect();
    let gone: Vec<&Arrow> = listed.iter().filter(|a| !found.contains(a)).collect();
    assert!(
        new.is_empty(),
        "arrows running back up that {DOC} does not list: {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "arrows {DOC} lists that the source no longer draws: {gone:#?}"
    );
}

#[test]
fn the_scan_sees_a_use_a_path_and_ignores_comments_and_tests() {
    let text = "use crate::store::Store;\nfn f() { crate::graph::g(); } // crate::face\n#[cfg(test)]\nmod t { use crate::cli; }\n";
    let named: Vec<String> = modules_named(text).into_iter().collect();
    assert_eq!(named, ["graph", "store"]);
}
