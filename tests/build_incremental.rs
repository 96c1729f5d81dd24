//! Rebuilds run exactly the nodes whose key changed, with early cutoff.

mod common;
mod store_support;

use common::{DIAMOND, Project};

fn diamond() -> Project {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    p
}

#[test]
fn first_build_runs_everything_second_runs_nothing() {
    let p = diamond();
    assert_eq!(p.ran(&["wf.yaml"]), ["a", "b", "c", "d"]);
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
    assert!(p.ran(&["wf.yaml"]).is_empty());
}

#[test]
fn changing_an_input_reruns_its_downstream_with_early_cutoff() {
    let p = diamond();
    p.ran(&["wf.yaml"]);
    // Same first letter: c's output is unchanged, so only b's change reaches d.
    p.file("in/a.txt", "howdy\n");
    assert_eq!(p.ran(&["wf.yaml"]), ["a", "b", "c", "d"]);
    assert_eq!(p.read("out/d.txt"), "HOWDY\nh");
    // A change that leaves a's output identical stops right there.
    p.file(
        "wf.yaml",
        &DIAMOND.replace("cat in/a.txt > out/a.txt", "cat < in/a.txt > out/a.txt"),
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["a"]);
}

#[test]
fn early_cutoff_spares_nodes_below_an_unchanged_output() {
    let p = diamond();
    p.ran(&["wf.yaml"]);
    // c's command changes but produces the same byte: d stays cached.
    p.file(
        "wf.yaml",
        &DIAMOND.replace("head -c 1 out/a.txt", "cut -c 1 out/a.txt | head -c 1"),
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["c"]);
}

#[test]
fn changing_one_command_reruns_that_node_and_below() {
    let p = diamond();
    p.ran(&["wf.yaml"]);
    p.file("wf.yaml", &DIAMOND.replace("tr a-z A-Z", "tr a-y A-Y"));
    assert_eq!(p.ran(&["wf.yaml"]), ["b"]);
    p.file(
        "wf.yaml",
        &DIAMOND.replace(
            "tr a-z A-Z < out/a.txt > out/b.txt",
            "rev out/a.txt > out/b.txt",
        ),
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["b", "d"]);
}

#[test]
fn deleted_workspace_outputs_are_restored_from_the_store() {
    let p = diamond();
    p.ran(&["wf.yaml"]);
    std::fs::remove_file(p.path("out/b.txt")).unwrap();
    p.file("out/d.txt", "tampered");
    assert!(p.ran(&["wf.yaml"]).is_empty());
    assert_eq!(p.read("out/b.txt"), "HELLO\n");
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
}

#[test]
fn force_and_targets() {
    let p = diamond();
    assert_eq!(p.ran(&["wf.yaml", "c"]), ["a", "c"]);
    assert_eq!(p.ran(&["wf.yaml", "--force", "b"]), ["b", "d"]);
    assert_eq!(p.ran(&["wf.yaml", "--force-all"]), ["a", "b", "c", "d"]);
}

#[test]
fn set_overrides_enter_the_key() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: greet\n    mode: command\n    run: \"echo $WHO > out.txt\"\n    env: {WHO: world}\n    outputs: [out.txt]\n",
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["greet"]);
    assert_eq!(p.read("out.txt"), "world\n");
    assert_eq!(
        p.ran(&["wf.yaml", "--set", "greet.env.WHO=admf"]),
        ["greet"]
    );
    assert_eq!(p.read("out.txt"), "admf\n");
    assert_eq!(
        p.ran(&["wf.yaml"]),
        Vec::<String>::new(),
        "the first entry is still stored"
    );
    assert_eq!(p.read("out.txt"), "world\n");
}

#[test]
fn artifacts_are_identical_for_j1_and_j2() {
    let a = diamond();
    let b = diamond();
    a.ran(&["wf.yaml", "-j", "1"]);
    b.ran(&["wf.yaml", "-j", "2"]);
    // Manifests hold timings; the artifacts themselves must match byte for byte.
    let artifacts = |p: &Project| store_support::artifacts(&p.path("cache"));
    assert_eq!(artifacts(&a).len(), 4);
    assert!(
        artifacts(&a) == artifacts(&b),
        "artifacts differ between -j1 and -j2"
    );
    assert_eq!(common::tree(&a.path("out")), common::tree(&b.path("out")));
    let plan = |p: &Project| {
        p.read(&format!(
            "cache/runs/{}/events.jsonl",
            only_dir(&p.path("cache/runs"))
        ))
        .lines()
        .next()
        .unwrap()
        .to_string()
    };
    assert_eq!(plan(&a), plan(&b));
    assert_eq!(plan(&a), r#"{"event":"plan","order":["a","b","c","d"]}"#);
}

fn only_dir(path: &std::path::Path) -> String {
    let entries: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(entries.len(), 1);
    entries[0].file_name().to_string_lossy().into_owned()
}

#[test]
fn status_and_explain_name_the_changed_ingredient() {
    let p = diamond();
    p.ran(&["wf.yaml"]);
    let status = p.admf(&["status", "wf.yaml"]).stdout;
    assert!(status.lines().all(|l| l.ends_with("fresh")), "{status}");
    p.file("in/a.txt", "bye\n");
    let status = p.admf(&["status", "wf.yaml"]).stdout;
    assert!(
        status.contains("a  stale (input in/a.txt changed"),
        "{status}"
    );
    let explain = p.admf(&["explain", "wf.yaml", "d"]).stdout;
    let lines: Vec<&str> = explain.lines().collect();
    assert_eq!(lines[0], "d would run: upstream `b` would run");
    assert_eq!(lines[1], "  b would run: upstream `a` would run");
    assert!(lines[3].contains("input in/a.txt changed"), "{explain}");
    p.file("wf.yaml", &DIAMOND.replace("tr a-z A-Z", "tr a-y A-Y"));
    p.file("in/a.txt", "hello\n");
    let explain = p.admf(&["explain", "wf.yaml", "b"]).stdout;
    assert!(explain.contains("config.run: \"tr a-z A-Z < out/a.txt > out/b.txt\" → \"tr a-y A-Y < out/a.txt > out/b.txt\""), "{explain}");
}

#[test]
fn dry_run_prints_the_plan_and_runs_nothing() {
    let p = diamond();
    let out = p.admf(&["build", "wf.yaml", "--dry-run"]);
    assert_eq!(out.code, 0);
    let steps: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(steps.len(), 4);
    assert!(
        steps[0].contains("1. run     a  (never built)"),
        "{}",
        out.stdout
    );
    assert!(!p.path("out/a.txt").exists());
}

#[test]
fn show_prints_artifacts_and_log() {
    let p = diamond();
    p.ran(&["wf.yaml"]);
    let out = p.admf(&["show", "wf.yaml", "b"]).stdout;
    assert!(out.contains("node:      b"), "{out}");
    assert!(out.contains("out/b.txt"), "{out}");
}

#[test]
fn forced_rerun_replaces_the_stored_outputs() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: stamp, mode: command, run: 'od -An -N8 -tx8 /dev/urandom > s.txt', outputs: [s.txt]}\n",
    );
    p.ran(&["wf.yaml"]);
    let first = p.read("s.txt");
    assert_eq!(p.ran(&["wf.yaml", "--force", "stamp"]), ["stamp"]);
    let forced = p.read("s.txt");
    assert_ne!(first, forced);
    // The store now holds the forced result: a no-op build keeps it.
    assert!(p.ran(&["wf.yaml"]).is_empty());
    assert_eq!(p.read("s.txt"), forced);
}

#[test]
fn inherited_data_paths_stay_relative_to_the_file_that_wrote_them() {
    let p = Project::new();
    p.file(
        "data/prices.csv",
        "date,open,high,low,close,volume\n2020-01-02,1,1,1,1,1\n2020-01-03,1,1,1,1,1\n2020-01-06,1,1,1,1,1\n",
    );
    p.file(
        "wf.yaml",
        "data: {source: csv, symbols: [SPY], path: data/prices.csv}\nphases:\n  - name: inner\n    workflow: configs/inner.yaml\n",
    )
    .file(
        "configs/inner.yaml",
        "phases:\n  - {name: bt, mode: backtest, strategy: {type: momentum, parameters: {lookback: 1}}}\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The path is rebased for the included file, so its key names the same
    // file the root meant.
    let dry = p.admf(&["build", "wf.yaml", "--dry-run"]);
    assert!(dry.stdout.contains("inner/bt"), "{}", dry.stdout);
}
