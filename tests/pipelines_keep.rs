//! Outputs kept otherwise than stored and restored: `temp:` (stored,
//! in the workspace only while a reader may run) and `cache: false`
//! (in the workspace only, its digest in the entry). Through the binary,
//! with the fast paths on.

mod common;

use common::Project;
use common::fast_paths::{age, build, settle};

const TEMP: &str = r#"phases:
  - sort:
      mode: command
      foreach: [A, B]
      inputs: ["reads/{item}.txt"]
      temp: ["sorted/{item}.txt"]
      run: "mkdir -p sorted && sort reads/{item}.txt > sorted/{item}.txt"
  - first:
      mode: command
      foreach: [A, B]
      inputs: ["sorted/{item}.txt"]
      outputs: ["first/{item}.txt"]
      run: "mkdir -p first && head -n 1 sorted/{item}.txt > first/{item}.txt"
  - count:
      mode: command
      depends_on: []
      inputs: [{expand: "sorted/{item}.txt", over: sort}]
      outputs: [count.txt]
      run: "cat sorted/A.txt sorted/B.txt | wc -l | tr -d ' ' > count.txt"
"#;

fn temp_project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", TEMP)
        .file("reads/A.txt", "c\na\nb\n")
        .file("reads/B.txt", "z\ny\n");
    p
}

fn no_temps(p: &Project) {
    for f in ["sorted/A.txt", "sorted/B.txt"] {
        assert!(!p.path(f).exists(), "{f} is still in the workspace");
    }
}

#[test]
fn temp_outputs_leave_the_workspace_once_their_readers_ran() {
    let p = temp_project();
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(
        first.ran(),
        [
            "sort[item=A]",
            "sort[item=B]",
            "first[item=A]",
            "first[item=B]",
            "count"
        ]
    );
    // The no-op builds of `settle` did not bring them back either.
    no_temps(&p);
    assert_eq!(p.read("first/A.txt"), "a\n");
    assert_eq!(p.read("first/B.txt"), "y\n");
    assert_eq!(p.read("count.txt"), "5\n");

    // An input edit reruns the producer and its readers; the temp goes
    // again.
    p.file("reads/A.txt", "c\n0\nb\n");
    let edit = build(&p, &["wf.yaml"]);
    assert!(!edit.fast, "{}", edit.stderr);
    assert_eq!(edit.ran(), ["sort[item=A]", "first[item=A]", "count"]);
    assert_eq!(p.read("first/A.txt"), "0\n");
    no_temps(&p);

    // A reader that reruns while its producer is up to date gets the
    // temp output back from the store, on the node trace's path too.
    age(p.dir.path());
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    assert!(build(&p, &["wf.yaml"]).fast);
    let forced = build(&p, &["wf.yaml", "--force", "first[item=B]"]);
    assert!(
        forced.stderr.contains("graph from the graph cache"),
        "{}",
        forced.stderr
    );
    assert_eq!(forced.ran(), ["first[item=B]"]);
    assert_eq!(p.read("first/B.txt"), "y\n");
    no_temps(&p);

    // A reader whose own definition changed: the producers are hits.
    p.file(
        "wf.yaml",
        &TEMP.replace("head -n 1 sorted", "tail -n 1 sorted"),
    );
    let changed = build(&p, &["wf.yaml"]);
    assert_eq!(changed.ran(), ["first[item=A]", "first[item=B]"]);
    assert_eq!(p.read("first/A.txt"), "c\n");
    assert_eq!(p.read("first/B.txt"), "z\n");
    no_temps(&p);

    // A producer built alone, with no reader in the build, keeps no temp.
    let alone = build(&p, &["wf.yaml", "sort[item=A]"]);
    assert!(alone.ran().is_empty(), "{}", alone.stderr);
    no_temps(&p);
}

#[test]
fn a_temp_output_declared_twice_is_bad_input() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      outputs: [x.txt]\n      temp: [x.txt]\n      run: touch x.txt\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("wf.yaml:5:") && err.contains("`temp[0]`") && err.contains("declared twice"),
        "{err}"
    );
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      temp: [../x.txt]\n      run: touch x.txt\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("wf.yaml:4:") && err.contains("`temp[0]`"),
        "{err}"
    );
}

const UNCACHED: &str = r#"phases:
  - train:
      mode: command
      inputs: [data.txt]
      outputs: [model.txt, {path: plot.txt, cache: false}]
      run: "wc -c < data.txt | tr -d ' ' > model.txt && echo plot-$(cut -c1-2 data.txt) > plot.txt"
  - report:
      mode: command
      inputs: [plot.txt]
      outputs: [report.txt]
      run: "cat plot.txt plot.txt > report.txt"
"#;

#[test]
fn a_cache_false_output_is_checked_not_stored() {
    let p = Project::new();
    p.file("wf.yaml", UNCACHED).file("data.txt", "abcd\n");
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(first.ran(), ["train", "report"]);
    assert_eq!(p.read("report.txt"), "plot-ab\nplot-ab\n");

    // The store holds the model and the plot's digest, not the plot.
    let out = p.path("exported");
    let export = p.admf(&["export", "wf.yaml", "train", out.to_str().unwrap()]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(out.join("train/model.txt").is_file(), "{}", export.stderr);
    assert!(!out.join("train/plot.txt").exists());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("train/uncached.json")).unwrap())
            .unwrap();
    assert_eq!(record["plot.txt"]["size"], 8);

    // A stored output removed is restored; nothing runs.
    std::fs::remove_file(p.path("model.txt")).unwrap();
    let restored = build(&p, &["wf.yaml"]);
    assert!(!restored.fast, "{}", restored.stderr);
    assert!(restored.ran().is_empty());
    assert_eq!(p.read("model.txt"), "5\n");

    // The plot removed: the dry run says why, and the node runs again;
    // the same plot comes out, so the report is not rerun.
    std::fs::remove_file(p.path("plot.txt")).unwrap();
    let plan = p.admf(&["build", "wf.yaml", "--dry-run"]);
    assert!(
        plan.stdout
            .contains("run     train  (`plot.txt` is missing (`cache: false`))"),
        "{}",
        plan.stdout
    );
    let removed = build(&p, &["wf.yaml"]);
    assert!(!removed.fast, "{}", removed.stderr);
    assert_eq!(removed.ran(), ["train"]);
    assert_eq!(p.read("plot.txt"), "plot-ab\n");

    // Edited, with both fast paths armed: the same.
    age(p.dir.path());
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    assert!(build(&p, &["wf.yaml"]).fast);
    p.file("plot.txt", "hand-made\n");
    let edited = build(&p, &["wf.yaml"]);
    assert!(!edited.fast, "{}", edited.stderr);
    assert_eq!(edited.ran(), ["train"]);
    assert_eq!(p.read("plot.txt"), "plot-ab\n");

    // An input edit that changes the plot reruns its reader.
    p.file("data.txt", "xyzw\n");
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["train", "report"]);
    assert_eq!(p.read("report.txt"), "plot-xy\nplot-xy\n");
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
}

/// A command whose `cache: false` output differs at each run: running it
/// again replaces the entry, so its readers see the new digest and the
/// build after is a no-op.
#[test]
fn a_rerun_for_a_cache_false_output_replaces_the_entry() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - stamp:
      mode: command
      outputs: [{path: stamp.txt, cache: false}]
      run: "date +%s%N > stamp.txt"
  - copy:
      mode: command
      inputs: [stamp.txt]
      outputs: [copy.txt]
      run: "cp stamp.txt copy.txt"
"#,
    );
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["stamp", "copy"]);
    std::fs::remove_file(p.path("stamp.txt")).unwrap();
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["stamp", "copy"]);
    assert_eq!(p.read("copy.txt"), p.read("stamp.txt"));
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
}

#[test]
fn bad_cache_false_outputs_are_bad_input() {
    let p = Project::new();
    let wf = |item: &str| {
        format!(
            "phases:\n  - a:\n      mode: command\n      outputs:\n        - a.txt\n        - {item}\n      run: touch a.txt\n"
        )
    };
    p.file("wf.yaml", &wf("{path: b.txt, cache: maybe}"));
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("wf.yaml:6:") && err.contains("`outputs[1].cache`"),
        "{err}"
    );
    p.file("wf.yaml", &wf("{path: b.txt, cahce: false}"));
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("`outputs[1].cahce`"), "{err}");
    p.file("wf.yaml", &wf("{cache: false}"));
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("`outputs[1]`"), "{err}");
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      outputs: [{path: b.txt, cache: false}, uncached.json]\n      run: touch b.txt\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("`outputs[1]`") && err.contains("uncached.json"),
        "{err}"
    );
}
