//! Directory outputs (`outputs: [prepared/]`): stored and restored whole,
//! with the fast paths on.

mod common;
mod pipelines_support;

use common::Project;
use pipelines_support::{age, bad_input, build, settle};

const WF: &str = r#"phases:
  - prepare:
      mode: command
      inputs: [raw.txt]
      outputs: [prepared/]
      run: "mkdir -p prepared/sub && cut -c1-3 raw.txt > prepared/head.txt && wc -l < raw.txt | tr -d ' ' > prepared/sub/n.txt"
  - use:
      mode: command
      depends_on: []
      inputs: [prepared/sub/n.txt]
      outputs: [used.txt]
      run: "cat prepared/head.txt prepared/sub/n.txt > used.txt"
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WF).file("raw.txt", "abcdef\nghijkl\n");
    p
}

#[test]
fn a_directory_output_is_stored_and_restored_whole() {
    let p = project();
    // `use` reads a file inside the directory output: that is the edge.
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(first.ran(), ["prepare", "use"]);
    assert_eq!(p.read("used.txt"), "abc\nghi\n2\n");

    // A file edited inside the directory: restored, nothing runs.
    p.file("prepared/head.txt", "edited\n");
    let edited = build(&p, &["wf.yaml"]);
    assert!(!edited.fast, "an edited output answered from the record");
    assert!(edited.ran().is_empty(), "{}", edited.stderr);
    assert_eq!(p.read("prepared/head.txt"), "abc\nghi\n");

    // A stray file dropped in: the tree is put back as stored.
    age(p.dir.path());
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    assert!(build(&p, &["wf.yaml"]).fast);
    p.file("prepared/sub/stray.txt", "x");
    let stray = build(&p, &["wf.yaml"]);
    assert!(!stray.fast, "a stray file answered from the record");
    assert!(stray.ran().is_empty());
    assert!(!p.path("prepared/sub/stray.txt").exists());

    // The whole directory removed: restored from the store.
    std::fs::remove_dir_all(p.path("prepared")).unwrap();
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    assert_eq!(p.read("prepared/sub/n.txt"), "2\n");

    // An input edit that changes one file of the tree reruns the reader.
    p.file("raw.txt", "abcdef\nghijkl\nmnopqr\n");
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["prepare", "use"]);
    assert_eq!(p.read("used.txt"), "abc\nghi\nmno\n3\n");
}

#[test]
fn the_output_digest_covers_the_tree_so_an_identical_tree_cuts_off() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["prepare", "use"]);
    // Same first three characters per line, same line count: the same tree.
    p.file("raw.txt", "abcXYZ\nghiXYZ\n");
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["prepare"]);
}

#[test]
fn a_missing_directory_fails_the_node_and_overlaps_are_errors() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      outputs: [d/]\n      run: touch d\n",
    );
    let run = build(&p, &["wf.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("`d/` was not created as a directory"),
        "{}",
        run.stderr
    );
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      outputs: [d/]\n      run: mkdir d\n  - b:\n      mode: command\n      outputs: [d/x.txt]\n      run: touch d/x.txt\n",
    );
    let err = bad_input(&p, &["validate", "wf.yaml"]);
    assert!(err.contains("directory output"), "{err}");
    assert!(err.contains("wf.yaml:8:7"), "{err}");
}
