//! Concurrent builds of one workflow with different configs share the
//! workspace paths their commands write: each stored entry must still hold
//! what its own config made, whichever build wrote the path last.

mod common;

use common::Project;

/// Starts one build of `wf.yaml` per value of `a.env.X`, `stagger_ms`
/// apart so that their commands overlap, and waits for all to succeed.
fn build_each_value_at_once(p: &Project, values: &[String], stagger_ms: u64) {
    let mut builds = Vec::new();
    for value in values {
        let set = format!("a.env.X={value}");
        builds.push(p.spawn(&["build", "wf.yaml", "--set", &set]));
        std::thread::sleep(std::time::Duration::from_millis(stagger_ms));
    }
    for build in builds {
        let out = build.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// After concurrent builds, each value's build again is a hit whose
/// restored output is the value's own, and `cache verify` is clean.
fn assert_each_entry_holds_its_own_value(p: &Project, values: &[String], rel: &str) {
    for value in values {
        let set = format!("a.env.X={value}");
        let (out, statuses) = p.build(&["wf.yaml", "--set", &set]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            statuses.iter().all(|(_, s)| s == "cached"),
            "X={value}: {statuses:?}"
        );
        assert_eq!(p.read(rel), format!("X={value}\n"), "entry of X={value}");
    }
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
}

#[test]
fn concurrent_builds_with_different_values_each_store_their_own_output() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"echo X=$X > out.txt; sleep 1\"\n    outputs: [out.txt]\n    env: {X: '0'}\n",
    );
    let values: Vec<String> = (1..=4).map(|i| i.to_string()).collect();
    build_each_value_at_once(&p, &values, 400);
    assert_each_entry_holds_its_own_value(&p, &values, "out.txt");
}

#[test]
fn a_downstream_command_reads_the_upstream_output_of_its_own_build() {
    // `b` reads `a`'s workspace output; another build's `a` rewrites that
    // path with its own value in between. Each `b` entry must still hold
    // what its own `a` made.
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"echo X=$X > a.txt\"\n    outputs: [a.txt]\n    env: {X: '0'}\n  - name: b\n    mode: command\n    run: \"sleep 1; cat a.txt > b.txt\"\n    outputs: [b.txt]\n",
    );
    let values: Vec<String> = (1..=3).map(|i| i.to_string()).collect();
    build_each_value_at_once(&p, &values, 300);
    assert_each_entry_holds_its_own_value(&p, &values, "b.txt");
    assert_each_entry_holds_its_own_value(&p, &values, "a.txt");
}
