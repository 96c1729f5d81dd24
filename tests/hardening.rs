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

#[test]
fn an_output_named_like_the_nodes_metrics_is_refused_when_metrics_names_another_file() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"echo '{\\\"x\\\": 1}' > m.json; echo '{\\\"y\\\": 2}' > metrics.json\"\n    outputs: [metrics.json, m.json]\n    metrics: m.json\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:5"), "{}", out.stderr);
    assert!(out.stderr.contains("outputs"), "{}", out.stderr);
    assert!(out.stderr.contains("metrics: m.json"), "{}", out.stderr);
    // Naming `metrics.json` itself as the metrics file is fine: it is the
    // same content.
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"echo '{\\\"y\\\": 2}' > metrics.json\"\n    outputs: [metrics.json]\n    metrics: metrics.json\n",
    );
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(statuses, [("a".to_string(), "ran".to_string())]);
    assert_eq!(p.read("metrics.json"), "{\"y\": 2}\n");
}
