//! Path safety: includes, `inputs:` and data paths stay inside the workflow
//! root (the project root: nearest ancestor with `.git` or `cache/`) unless
//! the root file sets `allow_outside: true`; restoring outputs never
//! writes through a symlink.

mod common;
mod store_support;

use std::os::unix::fs::symlink;

use common::Project;

/// `proj/` (a project root, with `.git`) beside `outside/`.
fn layout() -> Project {
    let p = Project::new();
    std::fs::create_dir_all(p.path("proj/.git")).unwrap();
    p.file("outside/secret.txt", "secret\n");
    p.file(
        "outside/inc.yaml",
        "phases:\n  - {name: x, mode: command, run: 'true'}\n",
    );
    p.repo_file("data/SPY_D.csv", "outside/SPY.csv");
    p
}

fn validate(p: &Project, wf: &str) -> common::Output {
    let out = p.admf(&["validate", wf]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

fn refused(p: &Project, wf: &str, at: &str, key: &str) {
    let out = validate(p, wf);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("outside the workflow root"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(at), "want {at}:\n{}", out.stderr);
    assert!(out.stderr.contains(key), "want {key}:\n{}", out.stderr);
    assert!(out.stderr.contains("allow_outside: true"), "{}", out.stderr);
}

#[test]
fn inputs_includes_and_data_may_not_leave_the_root() {
    let p = layout();
    symlink(p.path("outside"), p.path("proj/link")).unwrap();
    p.file(
        "proj/dots.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: 'true'\n    inputs: [../outside/secret.txt]\n",
    );
    refused(&p, "proj/dots.yaml", "dots.yaml:5:", "inputs");
    p.file(
        "proj/glob.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: 'true'\n    inputs: ['link/*.txt']\n",
    );
    refused(&p, "proj/glob.yaml", "glob.yaml:5:", "inputs");
    p.file(
        "proj/inc.yaml",
        "phases:\n  - name: i\n    workflow: link/inc.yaml\n",
    );
    refused(&p, "proj/inc.yaml", "inc.yaml:3:", "workflow");
    p.file(
        "proj/data.yaml",
        "data: {source: csv, symbols: [SPY], path: ../outside/SPY.csv}\nstrategy: {type: momentum, parameters: {lookback: 20}}\n",
    );
    refused(&p, "proj/data.yaml", "data.yaml:1:", "data.path");
    p.file(
        "proj/dir.yaml",
        "data: {source: csv, symbols: [SPY], dir: link}\nstrategy: {type: momentum, parameters: {lookback: 20}}\n",
    );
    refused(&p, "proj/dir.yaml", "dir.yaml:1:", "data.dir");
    // Nothing was built or stored.
    assert!(store_support::action_keys(&p.path("proj/cache")).is_empty());
}

#[test]
fn allow_outside_lifts_the_rule_from_the_root_file_only() {
    let p = layout();
    p.file(
        "proj/wf.yaml",
        "allow_outside: true\nphases:\n  - name: a\n    mode: command\n    run: 'cat ../outside/secret.txt > got.txt'\n    inputs: [../outside/secret.txt]\n    outputs: [got.txt]\n  - name: i\n    workflow: ../outside/inc.yaml\n",
    );
    assert_eq!(validate(&p, "proj/wf.yaml").code, 0);
    let ran = p.ran(&["proj/wf.yaml"]);
    assert_eq!(ran, ["a", "i/x"]);
    assert_eq!(p.read("proj/got.txt"), "secret\n");

    p.file(
        "proj/bad.yaml",
        "allow_outside: yes please\nphases:\n  - {name: a, mode: command, run: 'true'}\n",
    );
    let out = validate(&p, "proj/bad.yaml");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bad.yaml:1:") && out.stderr.contains("must be true or false"));

    p.file(
        "proj/sub/inner.yaml",
        "allow_outside: true\nphases:\n  - {name: x, mode: command, run: 'true'}\n",
    );
    p.file(
        "proj/outer.yaml",
        "phases:\n  - name: i\n    workflow: sub/inner.yaml\n",
    );
    let out = validate(&p, "proj/outer.yaml");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("inner.yaml:1:") && out.stderr.contains("only the root workflow file"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_workflow_in_a_subdirectory_reads_the_project_s_data() {
    // The shipped layout: workflows/x.yaml reading ../data/SPY.csv.
    let p = layout();
    std::fs::create_dir_all(p.path("proj/data")).unwrap();
    std::fs::copy(p.path("outside/SPY.csv"), p.path("proj/data/SPY.csv")).unwrap();
    p.file(
        "proj/workflows/bt.yaml",
        "data: {source: csv, symbols: [SPY], path: ../data/SPY.csv}\nstrategy: {type: momentum, parameters: {lookback: 20}}\n",
    );
    assert_eq!(validate(&p, "proj/workflows/bt.yaml").code, 0);
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    for wf in ["simple_backtest.yaml", "parameter_optimization.yaml"] {
        let out = p.admf(&["validate", shipped.join(wf).to_str().unwrap()]);
        assert_eq!(out.code, 0, "{wf}: {}", out.stderr);
    }
}

#[test]
fn restoring_never_writes_through_a_symlink() {
    let p = layout();
    p.file(
        "proj/wf.yaml",
        "phases:\n  - {name: a, mode: command, run: 'echo fresh > out.txt', outputs: [out.txt]}\n  - {name: b, mode: command, run: 'mkdir -p d && echo deep > d/o.txt', outputs: [d/o.txt]}\n",
    );
    assert_eq!(p.ran(&["proj/wf.yaml"]).len(), 2);
    // Replace the output with a symlink to a file outside: a hit restores
    // a plain file in its place and leaves the target alone.
    std::fs::remove_file(p.path("proj/out.txt")).unwrap();
    symlink(p.path("outside/secret.txt"), p.path("proj/out.txt")).unwrap();
    assert!(p.ran(&["proj/wf.yaml"]).is_empty());
    assert_eq!(p.read("outside/secret.txt"), "secret\n");
    let meta = std::fs::symlink_metadata(p.path("proj/out.txt")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(p.read("proj/out.txt"), "fresh\n");
    // A symlinked directory leading out: the restore is refused, the
    // node fails and nothing is written outside.
    std::fs::remove_dir_all(p.path("proj/d")).unwrap();
    std::fs::create_dir(p.path("outside/d")).unwrap();
    symlink(p.path("outside/d"), p.path("proj/d")).unwrap();
    let out = p.admf(&["build", "proj/wf.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("leads outside"), "{}", out.stderr);
    assert!(
        std::fs::read_dir(p.path("outside/d"))
            .unwrap()
            .next()
            .is_none()
    );
}
