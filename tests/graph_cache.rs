//! The graph cache (src/graph_cache.rs): a build whose workflow files are
//! unchanged takes the compiled graph from the cache, and decides exactly
//! what a build that compiled the YAML would decide.

mod common;

use common::{Project, TRACE, node_statuses, past_racy_window, with_status};

const FROM_CACHE: &str = "trace: graph from the graph cache";

/// `admf build --json` with tracing: exit code, stderr, ran node ids. A
/// rejected workflow (exit 2) prints no report, so it has no ids; any
/// other exit must come with the report.
fn build(p: &Project, args: &[&str]) -> (i32, String, Vec<String>) {
    let mut all = vec!["build", "--json"];
    all.extend_from_slice(args);
    let out = p.admf_env(&all, TRACE);
    let ran = if out.code == 2 {
        Vec::new()
    } else {
        with_status(&node_statuses(&out, "admf build --json"), "ran")
    };
    (out.code, out.stderr, ran)
}

const PIPELINE: &str = r#"phases:
  - name: count
    mode: command
    run: "cat in/*.txt | wc -l > out/count.txt"
    inputs: ["in/*.txt"]
    outputs: [out/count.txt]
  - name: shout
    mode: command
    run: "tr a-z A-Z < in/a.txt > out/shout.txt; echo $SUFFIX >> out/shout.txt"
    env: {SUFFIX: one}
    inputs: [in/a.txt]
    outputs: [out/shout.txt]
    depends_on: []
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", PIPELINE)
        .file("in/a.txt", "a\n")
        .file("in/b.txt", "b\n")
        .file("out/.keep", "");
    past_racy_window();
    p
}

#[test]
fn an_input_edit_keeps_the_graph_and_reruns_what_changed() {
    let p = project();
    let (code, stderr, ran) = build(&p, &["wf.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(FROM_CACHE), "{stderr}");
    assert_eq!(ran, ["count", "shout"]);
    past_racy_window();
    p.file("in/a.txt", "a\nmore\n");
    let (code, stderr, ran) = build(&p, &["wf.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(FROM_CACHE), "{stderr}");
    assert_eq!(ran, ["count", "shout"]);
    assert_eq!(p.read("out/shout.txt"), "A\nMORE\none\n");
    assert_eq!(p.read("out/count.txt").trim(), "3");
}

#[test]
fn a_workflow_edit_is_compiled_again() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).0, 0);
    past_racy_window();
    p.file("wf.yaml", &PIPELINE.replace("SUFFIX: one", "SUFFIX: two"));
    let (code, stderr, ran) = build(&p, &["wf.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains(FROM_CACHE),
        "a stale graph was used:\n{stderr}"
    );
    assert_eq!(ran, ["shout"]);
    assert_eq!(p.read("out/shout.txt"), "A\ntwo\n");
}

#[test]
fn a_new_file_under_an_input_glob_is_compiled_in() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).0, 0);
    past_racy_window();
    p.file("in/c.txt", "c\n");
    let (code, stderr, ran) = build(&p, &["wf.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(FROM_CACHE), "{stderr}");
    assert_eq!(ran, ["count"]);
    assert_eq!(p.read("out/count.txt").trim(), "3");
}

#[test]
fn a_deleted_input_is_the_same_error_as_without_the_cache() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).0, 0);
    past_racy_window();
    std::fs::remove_file(p.path("in/a.txt")).unwrap();
    let (code, stderr, _) = build(&p, &["wf.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains(FROM_CACHE), "{stderr}");
    assert!(stderr.contains("in/a.txt"), "{stderr}");
}

#[test]
fn another_set_value_or_directory_compiles_again() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).0, 0);
    past_racy_window();
    let (code, stderr, ran) = build(&p, &["wf.yaml", "--set", "shout.env.SUFFIX=three"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(FROM_CACHE), "{stderr}");
    assert_eq!(ran, ["shout"]);
    assert_eq!(p.read("out/shout.txt"), "A\nthree\n");
    // Back to the first invocation: its graph is compiled again (one cache
    // per workflow), and nothing runs.
    let (_, _, ran) = build(&p, &["wf.yaml"]);
    assert!(ran.is_empty(), "{ran:?}");
}

#[test]
fn a_corrupt_cache_means_compiling() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).0, 0);
    let cache = walkdir::WalkDir::new(p.path("cache/runs"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name() == "graph")
        .expect("a graph cache")
        .into_path();
    let good = std::fs::read(&cache).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    for bad in [
        b"admf-graph 1\ninvocation x\ngraph {".to_vec(),
        b"admf-graph 2\ninvocation x\ngraph {}\nsum 00\n".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 1].to_vec(),
        flipped,
    ] {
        std::fs::write(&cache, &bad).unwrap();
        let (code, stderr, ran) = build(&p, &["wf.yaml"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(!stderr.contains(FROM_CACHE), "{stderr}");
        assert!(ran.is_empty(), "{ran:?}");
        // The build wrote the cache whole again: the next one takes it.
        past_racy_window();
        p.file("in/a.txt", &format!("a {}\n", bad.len()));
        let (code, stderr, ran) = build(&p, &["wf.yaml"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(FROM_CACHE), "{stderr}");
        assert_eq!(ran, ["count", "shout"]);
    }
}
