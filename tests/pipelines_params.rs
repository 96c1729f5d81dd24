//! `params: {file, keys}`: only the listed values enter a node's key; a
//! command sees them as ADMF_PARAM_* and `{params.a.b}`; `--set
//! params.a.b=V` overrides one; mistakes name the file, line and key.

mod common;

use common::Project;
use common::fast_paths::build;

const WF: &str = r#"phases:
  - fit:
      mode: command
      params: {file: params.yaml, keys: [train.n_est, train.grid, name]}
      outputs: [fit.txt]
      run: "echo $ADMF_PARAM_TRAIN_N_EST {params.train.n_est} $ADMF_PARAM_NAME $ADMF_PARAM_TRAIN_GRID > fit.txt"
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WF).file(
        "params.yaml",
        "train:\n  n_est: 10\n  grid: {a: 1}\n  other: 5\nname: m1\n",
    );
    p
}

#[test]
fn values_reach_the_command_and_only_listed_keys_rerun_it() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["fit"]);
    assert_eq!(p.read("fit.txt"), "10 10 m1 {\"a\":1}\n");
    p.file(
        "params.yaml",
        "train:\n  n_est: 10\n  grid: {a: 1}\n  other: 6\nname: m1\n",
    );
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    let set = build(&p, &["wf.yaml", "--set", "params.train.n_est=12"]);
    assert_eq!(set.ran(), ["fit"]);
    assert_eq!(p.read("fit.txt"), "12 12 m1 {\"a\":1}\n");
}

#[test]
fn mistakes_name_the_file_line_and_key() {
    let p = project();
    p.file("wf.yaml", &WF.replace("name]", "nme]"));
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("params.yaml has no key `nme`"), "{err}");
    assert!(err.contains("wf.yaml:4:"), "{err}");

    p.file(
        "wf.yaml",
        &WF.replace("file: params.yaml", "file: nope.yaml"),
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("cannot read") && err.contains("nope.yaml"),
        "{err}"
    );

    p.file(
        "wf.yaml",
        &WF.replace("{params.train.n_est}", "{params.train.other}"),
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("`{params.train.other}` is not one of the `params:` keys"),
        "{err}"
    );
    assert!(err.contains("wf.yaml:6:"), "{err}");

    p.file("wf.yaml", WF);
    let err = p.bad_input(&["build", "wf.yaml", "--set", "params.train.other=1"]);
    assert!(err.contains("no phase reads `train.other`"), "{err}");
}

#[test]
fn an_include_takes_vars_substituted_in_its_strings() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - a:
      workflow: sample.yaml
      vars: {sample: A, n: 2}
  - b:
      workflow: sample.yaml
      vars: {sample: B, n: 3}
      depends_on: []
"#,
    )
    .file(
        "sample.yaml",
        r#"phases:
  - prep:
      mode: command
      outputs: ["out/{sample}.txt"]
      run: "mkdir -p out && seq {n} | awk '{print \"{sample}\", $1}' > out/{sample}.txt"
"#,
    );
    let run = build(&p, &["wf.yaml"]);
    assert_eq!(run.ran(), ["a/prep", "b/prep"]);
    assert_eq!(p.read("out/A.txt"), "A 1\nA 2\n");
    assert_eq!(p.read("out/B.txt"), "B 1\nB 2\nB 3\n");
    p.file("wf.yaml", &p.read("wf.yaml").replace("n: 3", "n: [3]"));
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("`vars.n`") && err.contains("wf.yaml:7:"),
        "{err}"
    );
}
