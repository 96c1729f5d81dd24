//! The shipped examples build through the real binary.

mod common;

use common::{Project, example};

#[test]
fn conditional_skips_below_a_false_condition_and_runs_when_true() {
    let p = example("conditional");
    let (out, statuses) = p.build(&["workflow.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = |id: &str| statuses.iter().find(|(n, _)| n == id).unwrap().1.clone();
    assert_eq!(status("score"), "ran");
    assert_eq!(status("publish"), "skipped");
    assert_eq!(status("announce"), "skipped");
    assert!(!p.path("published.txt").exists());
    let st = p.admf(&["status", "workflow.yaml"]).stdout;
    assert!(
        st.contains("publish   skipped (condition `score.sharpe > 0.5` is false)"),
        "{st}"
    );
    assert!(
        st.contains("announce  skipped (upstream `publish` is skipped)"),
        "{st}"
    );
    let graph = p
        .admf(&["graph", "workflow.yaml", "--status", "--format", "json"])
        .stdout;
    let graph: serde_json::Value = serde_json::from_str(&graph).unwrap();
    assert_eq!(graph["nodes"][1]["status"]["state"], "skipped");

    let ran = p.ran(&["workflow.yaml", "--set", "score.env.SCORE=0.9"]);
    assert_eq!(ran, ["score", "publish", "announce"]);
    assert_eq!(p.read("published.txt"), "published\n");
}

#[test]
fn composite_nests_includes_and_rebuilds_nothing_the_second_time() {
    let p = example("composite");
    let ran = p.ran(&["workflow.yaml"]);
    assert_eq!(
        ran,
        [
            "morning_analysis/ingest",
            "morning_analysis/features/momentum",
            "strategy_selection/pick",
            "risk_adjustment"
        ]
    );
    assert_eq!(
        p.read("risk.txt"),
        "SPY 350.58\nmomentum up\nmax position 0.5\n"
    );
    assert!(p.ran(&["workflow.yaml"]).is_empty());
}

#[test]
fn command_pipeline_reruns_only_what_reads_a_changed_input() {
    let p = example("command_pipeline");
    assert_eq!(p.ran(&["workflow.yaml"]).len(), 4);
    assert_eq!(p.read("build/summary.txt"), "rows 5, last close 350.58\n");
    // A comment line changes the input file but not the cleaned rows:
    // `clean` reruns, everything below it is cut off.
    let prices = p.read("src/prices.csv");
    p.file("src/prices.csv", &format!("# SPY closes\n{prices}"));
    assert_eq!(p.ran(&["workflow.yaml"]), ["clean"]);
}

#[test]
fn graph_renders_are_stable() {
    let p = example("composite");
    for format in ["text", "dot", "mermaid", "json"] {
        let out = p.admf(&["graph", "workflow.yaml", "--format", format]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        insta::assert_snapshot!(
            format!("composite_{format}"),
            out.stdout.replace(p.dir.path().to_str().unwrap(), "<tmp>")
        );
    }
}

#[test]
fn completions_are_generated() {
    let p = Project::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = p.admf(&["completions", shell]);
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("explain"), "{shell}");
    }
}
