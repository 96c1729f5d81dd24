//! Outputs never lead admf to create, remove or rename a file outside the
//! workflow's directory, never replace the workflow file or the node's own
//! inputs, and a `**/*` input glob never sweeps up the store or the
//! node's own outputs.

mod common;

use std::fs;

use common::Project;

const COMMAND: &str = "phases:\n  - name: b\n    mode: command\n    run: \"echo made > build/out.txt\"\n    outputs: [build/out.txt]\n";

/// A directory outside the project holding a file named like the output
/// and a restore temp file of a dead process, which a sweep would remove.
fn outside_with_victims() -> tempfile::TempDir {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("out.txt"), "keep me").unwrap();
    fs::write(
        outside.path().join(".out.txt.admf-tmp.4000000000"),
        "keep me too",
    )
    .unwrap();
    outside
}

fn assert_untouched(outside: &tempfile::TempDir) {
    assert_eq!(
        fs::read_to_string(outside.path().join("out.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(
        fs::read_to_string(outside.path().join(".out.txt.admf-tmp.4000000000")).unwrap(),
        "keep me too"
    );
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 2);
}

#[test]
fn an_output_directory_symlinked_outside_fails_the_node_and_touches_nothing_there() {
    let p = Project::new();
    let outside = outside_with_victims();
    p.file("wf.yaml", COMMAND);
    std::os::unix::fs::symlink(outside.path(), p.path("build")).unwrap();
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("leads outside"), "{}", out.stderr);
    assert!(out.stderr.contains("build/out.txt"), "{}", out.stderr);
    assert_untouched(&outside);
}

#[test]
fn an_output_directory_that_an_upstream_command_symlinks_outside_fails_the_node() {
    let p = Project::new();
    let outside = outside_with_victims();
    p.file(
        "wf.yaml",
        &format!(
            "phases:\n  - name: a\n    mode: command\n    run: \"ln -sfn {} build && echo a > a.txt\"\n    outputs: [a.txt]\n  - name: b\n    mode: command\n    run: \"echo made > build/out.txt\"\n    outputs: [build/out.txt]\n",
            outside.path().display()
        ),
    );
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("leads outside"), "{}", out.stderr);
    assert_untouched(&outside);
}

#[test]
fn the_workflow_file_or_an_own_input_as_an_output_is_refused() {
    let p = Project::new();
    let wf = "phases:\n  - name: a\n    mode: command\n    run: \"echo gone > wf.yaml\"\n    outputs: [wf.yaml]\n";
    p.file("wf.yaml", wf);
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:5"), "{}", out.stderr);
    assert!(out.stderr.contains("workflow file"), "{}", out.stderr);
    assert_eq!(p.read("wf.yaml"), wf);
    p.file("in.txt", "input\n").file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"tr a-z A-Z < in.txt > in.txt\"\n    inputs: [in.txt]\n    outputs: [in.txt]\n",
    );
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("also an input"), "{}", out.stderr);
    assert_eq!(p.read("in.txt"), "input\n");
}

#[test]
fn an_output_path_climbing_out_is_refused() {
    let p = Project::new();
    p.file(
        "sub/wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"echo x > ../../x.txt\"\n    outputs: [\"../../x.txt\"]\n",
    );
    let out = p.admf(&["build", "sub/wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("outputs[0]"), "{}", out.stderr);
    assert!(!p.path("x.txt").exists());
}

#[test]
fn a_glob_over_the_whole_project_leaves_out_the_store_and_the_nodes_own_outputs() {
    let p = Project::new();
    p.file("data/a.txt", "a\n").file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"ls -R data > listing.txt\"\n    inputs: [\"**/*\"]\n    outputs: [listing.txt]\n",
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["a"]);
    // The store and listing.txt changed; the inputs did not.
    assert_eq!(p.ran(&["wf.yaml"]), Vec::<String>::new());
    p.file("data/b.txt", "b\n");
    assert_eq!(p.ran(&["wf.yaml"]), ["a"]);
    assert_eq!(p.ran(&["wf.yaml"]), Vec::<String>::new());
}
