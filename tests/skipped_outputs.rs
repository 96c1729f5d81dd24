//! When a `when:` turns false, the outputs an earlier build of the skipped
//! node left in the workspace are removed; they come back from the store
//! when it turns true again; a file edited since is left alone.

mod common;

use common::Project;

const WF: &str = r#"phases:
  - gate:
      mode: command
      run: "echo '{\"score\": 3}' > gate.json"
      outputs: [gate.json]
      metrics: gate.json
  - publish:
      mode: command
      when: "gate.score > 1"
      run: "echo published > published.txt"
      outputs: [published.txt]
  - after:
      mode: command
      run: "cp published.txt after.txt"
      outputs: [after.txt]
"#;

#[test]
fn a_skipped_node_leaves_no_stale_outputs() {
    let p = Project::new();
    p.file("wf.yaml", WF);
    assert_eq!(p.ran(&["wf.yaml"]), ["gate", "publish", "after"]);
    assert_eq!(p.read("published.txt"), "published\n");
    let skip = ["wf.yaml", "--set", "publish.when=gate.score > 5"];
    let (out, statuses) = p.build(&skip);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        statuses
            .iter()
            .all(|(id, s)| id == "gate" || s == "skipped"),
        "{statuses:?}"
    );
    assert!(!p.path("published.txt").exists(), "{}", out.stderr);
    assert!(!p.path("after.txt").exists(), "below a skip too");
    assert!(p.path("gate.json").exists());
    assert!(
        out.stderr.contains("published.txt (`publish` was skipped)"),
        "{}",
        out.stderr
    );
    // Back to true: restored from the store, nothing runs.
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    assert_eq!(p.read("published.txt"), "published\n");
    // A file edited since its build is the user's: it stays.
    p.file("published.txt", "mine\n");
    let (out, _) = p.build(&skip);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.read("published.txt"), "mine\n");
    assert!(!p.path("after.txt").exists());
}
