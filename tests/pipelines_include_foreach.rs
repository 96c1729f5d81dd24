//! `foreach:` and `matrix:` on an include: the file is included once per
//! item, as `name[item=A]/phase`, with the bound names templated into its
//! `workflow:` path and `vars:` and passed as vars themselves.

mod common;

use common::Project;
use common::fast_paths::{build, settle};

const WF: &str = r#"phases:
  - sample:
      workflow: sample.yaml
      foreach: {values: [A, B], as: name}
      vars: {reads: "reads/{name}.txt"}
  - merge:
      mode: command
      depends_on: [sample]
      outputs: [merged.txt]
      run: "cat counted/A.txt counted/B.txt > merged.txt"
"#;

const SAMPLE: &str = r#"phases:
  - count:
      mode: command
      inputs: ["{reads}"]
      outputs: ["counted/{name}.txt"]
      run: "mkdir -p counted && echo {name} $(wc -l < {reads} | tr -d ' ') > counted/{name}.txt"
  - check:
      mode: command
      inputs: ["counted/{name}.txt"]
      outputs: ["checked/{name}.txt"]
      run: "mkdir -p checked && cp counted/{name}.txt checked/{name}.txt"
"#;

fn project(list: &str) -> Project {
    let p = Project::new();
    p.file("wf.yaml", &WF.replace("[A, B]", list))
        .file("sample.yaml", SAMPLE)
        .file("reads/A.txt", "1\n2\n")
        .file("reads/B.txt", "1\n")
        .file("reads/C.txt", "1\n2\n3\n");
    p
}

#[test]
fn an_include_is_instantiated_once_per_item() {
    let p = project("[A, B]");
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(
        first.ran(),
        [
            "sample[name=A]/count",
            "sample[name=A]/check",
            "sample[name=B]/count",
            "sample[name=B]/check",
            "merge"
        ]
    );
    assert_eq!(p.read("merged.txt"), "A 2\nB 1\n");
    // `merge` depends on the sinks of every instance.
    let graph = p.admf(&["graph", "wf.yaml"]).stdout;
    assert!(
        graph.contains("<- sample[name=A]/check, sample[name=B]/check\n"),
        "{graph}"
    );

    // One sample's reads edited: that instance and the gather only.
    p.file("reads/B.txt", "1\n2\n3\n4\n");
    let edit = build(&p, &["wf.yaml"]);
    assert!(!edit.fast, "{}", edit.stderr);
    assert_eq!(
        edit.ran(),
        ["sample[name=B]/count", "sample[name=B]/check", "merge"]
    );
    assert_eq!(p.read("merged.txt"), "A 2\nB 4\n");

    // An item added: its instance runs, nothing of the others.
    p.file(
        "wf.yaml",
        &p.read("wf.yaml")
            .replace("[A, B]", "[A, B, C]")
            .replace("counted/B.txt >", "counted/B.txt counted/C.txt >"),
    );
    let added = build(&p, &["wf.yaml"]);
    assert_eq!(
        added.ran(),
        ["sample[name=C]/count", "sample[name=C]/check", "merge"]
    );
    assert_eq!(p.read("merged.txt"), "A 2\nB 4\nC 3\n");

    // Targets reach into one instance.
    let one = build(&p, &["wf.yaml", "--force", "sample[name=A]/count"]);
    assert_eq!(one.ran(), ["sample[name=A]/count"]);
}

#[test]
fn an_include_path_may_take_the_item_and_mistakes_name_their_line() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - per:
      workflow: "steps/{item}.yaml"
      foreach: [one, two]
"#,
    )
    .file(
        "steps/one.yaml",
        "phases:\n  - s:\n      mode: command\n      outputs: [one.txt]\n      run: echo {item} > one.txt\n",
    )
    .file(
        "steps/two.yaml",
        "phases:\n  - s:\n      mode: command\n      outputs: [two.txt]\n      run: echo {item} > two.txt\n",
    );
    assert_eq!(
        build(&p, &["wf.yaml"]).ran(),
        ["per[item=one]/s", "per[item=two]/s"]
    );
    assert_eq!(p.read("steps/two.txt"), "two\n");

    // A name the include does not bind, in its vars.
    p.file(
        "wf.yaml",
        "phases:\n  - per:\n      workflow: \"steps/{item}.yaml\"\n      foreach: [one]\n      vars: {x: \"{sample}\"}\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("wf.yaml:5:") && err.contains("`vars.x`") && err.contains("{sample}"),
        "{err}"
    );
    // Reaching into the group without naming an instance.
    p.file(
        "wf.yaml",
        "phases:\n  - per:\n      workflow: \"steps/{item}.yaml\"\n      foreach: [one]\n  - after:\n      mode: command\n      depends_on: [per/s]\n      run: \"true\"\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("wf.yaml:7:") && err.contains("name one instance"),
        "{err}"
    );
    // A bad foreach on an include is reported like one on a phase.
    p.file(
        "wf.yaml",
        "phases:\n  - per:\n      workflow: steps/one.yaml\n      foreach: {values: []}\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("wf.yaml:4:") && err.contains("`foreach`"),
        "{err}"
    );
}
