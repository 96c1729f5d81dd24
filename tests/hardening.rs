//! Bounds on what a workflow may ask for: refused at load with exit 2 and
//! the key, before anything runs.

mod common;

use common::Project;

#[test]
fn a_phase_name_too_long_for_a_file_name_is_refused_at_its_key() {
    let p = Project::new();
    let name = "n".repeat(129);
    p.file(
        "wf.yaml",
        &format!("phases:\n  - name: {name}\n    mode: command\n    run: \"true\"\n"),
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:2"), "{}", out.stderr);
    assert!(out.stderr.contains("129 bytes"), "{}", out.stderr);
    let ok = "n".repeat(128);
    p.file(
        "wf.yaml",
        &format!("phases:\n  - name: {ok}\n    mode: command\n    run: \"true\"\n"),
    );
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(statuses, [(ok, "ran".to_string())]);
}

#[test]
fn retries_beyond_the_bound_are_refused_at_their_key() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n    retries: 1000000000\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:5"), "{}", out.stderr);
    assert!(out.stderr.contains("0 to 100"), "{}", out.stderr);
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n    retries: 100\n",
    );
    assert_eq!(p.admf(&["validate", "wf.yaml"]).code, 0);
}
