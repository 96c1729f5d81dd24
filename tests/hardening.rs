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

#[test]
fn an_input_edited_while_its_phase_runs_is_not_stored_under_the_old_content() {
    let p = Project::new();
    p.file("in/a.txt", "original\n").file(
        "wf.yaml",
        "phases:\n  - name: copy\n    mode: command\n    run: \"sleep 1; cat in/a.txt > out.txt\"\n    inputs: [in/a.txt]\n    outputs: [out.txt]\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(150));
    let build = std::process::Command::new(assert_cmd::cargo::cargo_bin("admf"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .args(["build", "wf.yaml"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    p.file("in/a.txt", "edited while running\n");
    let out = build.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in/a.txt changed while the phase ran"),
        "{stderr}"
    );
    // Back to the original text: nothing was stored for it, so the node
    // runs again and the output is made from the original.
    p.file("in/a.txt", "original\n");
    assert_eq!(p.ran(&["wf.yaml"]), ["copy"]);
    assert_eq!(p.read("out.txt"), "original\n");
}

/// A document of 40,000 aliases of a 20,000-item list: 100 KB that
/// stands for 800 million values.
fn alias_bomb() -> String {
    let items = vec!["1"; 20_000].join(",");
    let aliases = vec!["*a"; 20_000].join(",");
    format!(
        "x: &a [{items}]\ny: [{aliases}]\nphases:\n  - name: a\n    mode: command\n    run: \"true\"\n"
    )
}

#[test]
fn aliases_that_expand_past_the_bound_are_refused_before_they_are_built() {
    let p = Project::new();
    p.file("wf.yaml", &alias_bomb());
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("more than 1000000 values once aliases are expanded"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("wf.yaml:2:"), "{}", out.stderr);
    // Aliases within the bound are fine.
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n    env: &e {A: \"1\"}\n  - name: b\n    mode: command\n    run: \"true\"\n    env: *e\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn an_alias_bomb_in_a_set_value_is_refused() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n",
    );
    let items = vec!["1"; 2_000].join(",");
    let aliases = vec!["*a"; 2_000].join(",");
    let set = format!("a.env=[&a [{items}], [{aliases}]]");
    let out = p.admf(&["validate", "wf.yaml", "--set", &set]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("aliases are expanded"),
        "{}",
        out.stderr
    );
}

#[test]
fn nesting_past_the_bound_is_refused_at_its_line() {
    let p = Project::new();
    // Flow collections 100,000 deep, and block mappings 200 deep.
    p.file(
        "flow.yaml",
        &format!("phases: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let out = p.admf(&["validate", "flow.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("nested more than 64 deep"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("flow.yaml:1:"), "{}", out.stderr);
    let block: String = (1..200)
        .map(|i| format!("{}a:\n", "  ".repeat(i)))
        .collect();
    p.file("block.yaml", &format!("phases:\n{block}"));
    let out = p.admf(&["validate", "block.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("block.yaml:65:"), "{}", out.stderr);
}
