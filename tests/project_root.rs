//! One project-root rule for every command: the nearest `.admf` or `.git`,
//! else the nearest `cache/`, else the starting directory. A copy of the
//! repository without `.git` builds its shipped workflows; a stray
//! `cache/` cannot move the root; read-only commands create no store.

mod common;

use common::Project;

/// The repository's shipped workflows and data, copied without `.git`
/// (as a release tarball or a zip download would hold them).
fn tarball() -> Project {
    let p = Project::new();
    p.repo_file(".admf", ".admf");
    p.repo_file(
        "workflows/simple_backtest.yaml",
        "workflows/simple_backtest.yaml",
    );
    p.repo_file(
        "workflows/parameter_optimization.yaml",
        "workflows/parameter_optimization.yaml",
    );
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p
}

#[test]
fn a_copy_without_git_builds_its_shipped_workflow() {
    let p = tarball();
    assert!(!p.path(".git").exists());
    let out = p.admf(&["build", "workflows/simple_backtest.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The store is the project's, beside the marker, not beside the workflow.
    assert!(p.path("cache/index").is_dir());
    assert!(!p.path("workflows/cache").exists());
}

#[test]
fn the_stray_cache_sequence_leaves_the_root_where_it_was() {
    let p = tarball();
    let out = p.admf(&["build", "workflows/simple_backtest.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // `cd workflows && admf cache ls` lists the project's store and
    // creates nothing in workflows/.
    let ls = common::admf_in(&p.path("workflows"), &["cache", "ls"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    assert!(ls.stdout.contains("backtest"), "{}", ls.stdout);
    assert!(!p.path("workflows/cache").exists());
    for action in [&["cache", "verify"][..], &["cache", "gc", "--dry-run"]] {
        let out = common::admf_in(&p.path("workflows"), action);
        assert_eq!(out.code, 0, "{action:?}: {}", out.stderr);
        assert!(!p.path("workflows/cache").exists(), "{action:?}");
    }
    let out = p.admf(&["build", "workflows/parameter_optimization.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Even a stray store left by an older version cannot move a marked root.
    std::fs::create_dir_all(p.path("workflows/cache/objects")).unwrap();
    let out = p.admf(&["build", "workflows/simple_backtest.yaml", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\"cached\""), "{}", out.stdout);
}

#[test]
fn read_only_commands_create_no_store() {
    let p = tarball();
    let wf = "workflows/simple_backtest.yaml";
    for args in [
        vec!["status", wf],
        vec!["graph", wf, "--status"],
        vec!["validate", wf],
        vec!["explain", wf, "backtest"],
        vec!["cache", "ls"],
        vec!["cache", "verify"],
        vec!["cache", "gc"],
    ] {
        let out = p.admf(&args);
        assert!(out.code == 0 || out.code == 1, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!p.path("cache").exists(), "{args:?} created a store");
        assert!(!p.path("workflows/cache").exists(), "{args:?}");
    }
    let out = p.admf(&["status", wf]);
    assert_eq!(out.stdout.trim(), "backtest  missing", "{}", out.stderr);
}

#[test]
fn cache_dir_is_accepted_after_the_action() {
    let p = tarball();
    let out = p.admf(&[
        "build",
        "workflows/simple_backtest.yaml",
        "--cache-dir",
        "elsewhere",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = p.admf(&["cache", "ls", "--cache-dir", "elsewhere"]);
    let before = p.admf(&["cache", "--cache-dir", "elsewhere", "ls"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(after.stdout.contains("backtest"), "{}", after.stdout);
    assert_eq!(after.stdout, before.stdout);
    let verify = p.admf(&["cache", "verify", "--cache-dir", "elsewhere"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify.stderr.contains("checked 1 entries"),
        "{}",
        verify.stderr
    );
    assert!(!p.path("cache").exists());
}

#[test]
fn the_outside_root_error_names_the_root_and_why() {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.repo_file(
        "workflows/simple_backtest.yaml",
        "workflows/simple_backtest.yaml",
    );
    // No marker: the workflow's directory is the root, and `../data` is out.
    let out = p.admf(&["validate", "workflows/simple_backtest.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let root = std::fs::canonicalize(p.path("workflows")).unwrap();
    assert!(
        out.stderr
            .contains(&format!("{} (no ancestor holds `.admf`", root.display())),
        "{}",
        out.stderr
    );
    // With the marker the same file is inside, and the error says so when not.
    p.file(".admf", "");
    let out = p.admf(&["validate", "workflows/simple_backtest.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    p.file(
        "workflows/out.yaml",
        "data: {path: /etc/hostname}\nstrategy: {type: momentum}\n",
    );
    let out = p.admf(&["validate", "workflows/out.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("it holds `.admf`"), "{}", out.stderr);
}
