//! Directory outputs (`outputs: [prepared/]`): stored and restored whole,
//! with the fast paths on.

mod common;

use common::Project;
use common::fast_paths::{age, build, settle};

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
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("directory output"), "{err}");
    assert!(err.contains("wf.yaml:8:7"), "{err}");
}

/// `split` writes one file per book into a directory output; `count` and
/// `firsts` read it through globs, `other` reads something else. On a
/// cold build nothing matches the globs yet: they stand for the whole
/// directory, so they make the edges (the only ones: every phase says
/// `depends_on: []`) and the readers run after `split`.
const GLOB_INTO_DIR: &str = r#"phases:
  - split:
      mode: command
      inputs: ["books/*.txt"]
      outputs: [chunks/]
      run: "mkdir -p chunks && for f in books/*.txt; do b=$(basename $f .txt); cut -c1-2 $f > chunks/$b.csv; done"
  - count:
      mode: command
      depends_on: []
      inputs: ["chunks/*.csv"]
      outputs: [count.txt]
      run: "cat chunks/*.csv | wc -l | tr -d ' ' > count.txt"
  - firsts:
      mode: command
      depends_on: []
      inputs: ["chunks/**/*.csv"]
      outputs: [firsts.txt]
      run: "cat chunks/*.csv | cut -c1 | sort | tr -d '\n' > firsts.txt"
  - other:
      mode: command
      depends_on: []
      inputs: [notes.txt]
      outputs: [other.txt]
      run: "cp notes.txt other.txt"
"#;

#[test]
fn a_glob_into_a_directory_output_works_on_a_cold_build() {
    let p = Project::new();
    p.file("wf.yaml", GLOB_INTO_DIR)
        .file("books/a.txt", "alpha\n")
        .file("books/b.txt", "beta\n")
        .file("notes.txt", "n\n");
    let graph = p.admf(&["graph", "wf.yaml"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    assert!(
        graph.stdout.contains("count   command  <- split\n")
            && graph.stdout.contains("firsts  command  <- split\n"),
        "{}",
        graph.stdout
    );
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(first.ran(), ["split", "count", "firsts", "other"]);
    assert_eq!(p.read("count.txt"), "2\n");
    assert_eq!(p.read("firsts.txt"), "ab");

    // A book dropped in: `split` writes one more chunk, both readers rerun.
    p.file("books/c.txt", "gamma\n");
    let dropped = build(&p, &["wf.yaml"]);
    assert!(!dropped.fast, "{}", dropped.stderr);
    assert_eq!(dropped.ran(), ["split", "count", "firsts"]);
    assert_eq!(p.read("count.txt"), "3\n");
    assert_eq!(p.read("firsts.txt"), "abg");

    // A book edited past what `split` keeps: the tree is the same, so
    // nothing below it reruns.
    age(p.dir.path());
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    assert!(build(&p, &["wf.yaml"]).fast);
    p.file("books/a.txt", "alps\n");
    let edited = build(&p, &["wf.yaml"]);
    assert!(!edited.fast, "{}", edited.stderr);
    assert_eq!(edited.ran(), ["split"]);

    // The same workflow compiled cold and warm has the same graph.
    let warm = p.admf(&["graph", "wf.yaml"]).stdout;
    assert_eq!(warm, graph.stdout);
}
