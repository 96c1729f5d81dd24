//! Every workflow shipped under `workflows/` builds on the shipped data,
//! says where its report is, and runs nothing the second time.

mod common;
mod research;

use research::{WORKFLOWS, project, reports, workflow};

fn status<'a>(statuses: &'a [(String, String)], id: &str) -> &'a str {
    statuses
        .iter()
        .find(|(n, _)| n == id)
        .map(|(_, s)| s.as_str())
        .unwrap_or_else(|| panic!("no node `{id}` in {statuses:?}"))
}

#[test]
fn every_shipped_workflow_builds_then_is_fresh() {
    let p = project();
    for name in WORKFLOWS {
        let wf = workflow(name);
        let (out, statuses) = p.build(&[&wf]);
        assert_eq!(out.code, 0, "{name}:\n{}", out.stderr);
        // A node another shipped workflow already built (the same sweep)
        // is a cache hit; anything else runs.
        assert!(
            statuses
                .iter()
                .all(|(_, s)| s == "ran" || s == "skipped" || s == "cached")
                && statuses.iter().any(|(_, s)| s == "ran"),
            "{name}: {statuses:?}"
        );
        for report in reports(&out) {
            assert!(report.is_file(), "{name}: {}", report.display());
            assert!(report.starts_with(p.path("cache")), "{}", report.display());
        }
        let (again, statuses) = p.build(&[&wf]);
        assert_eq!(again.code, 0, "{name}:\n{}", again.stderr);
        assert!(
            statuses
                .iter()
                .all(|(_, s)| s == "cached" || s == "skipped"),
            "{name} second build: {statuses:?}"
        );
        assert_eq!(reports(&again), reports(&out), "{name}");
    }
}

#[test]
fn parameter_optimization_runs_the_seed_pipeline_and_names_its_report() {
    let p = project();
    let (out, statuses) = p.build(&[&workflow("parameter_optimization")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids: Vec<&str> = statuses.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "parameter_discovery[0]",
            "parameter_discovery[1]",
            "parameter_discovery[2]",
            "parameter_discovery[3]",
            "parameter_discovery[4]",
            "parameter_discovery[5]",
            "parameter_discovery",
            "regime_analysis",
            "ensemble_optimization",
            "report"
        ]
    );
    let report = reports(&out);
    assert_eq!(report.len(), 1, "{}", out.stderr);
    assert!(
        out.stderr.trim_end().ends_with(" (report)"),
        "the report's path is the last line:\n{}",
        out.stderr
    );
    let show = p.admf(&["show", &workflow("parameter_optimization"), "report"]);
    assert!(
        show.stdout
            .contains(report[0].parent().unwrap().to_str().unwrap()),
        "{}",
        show.stdout
    );
}

#[test]
fn composite_research_namespaces_its_included_phases() {
    let p = project();
    let (out, statuses) = p.build(&[&workflow("composite_research")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in [
        "morning_analysis/sweep[8]",
        "morning_analysis/sweep",
        "morning_analysis/regimes",
        "strategy_selection/ensemble",
        "risk_adjustment/stressed",
        "risk_adjustment/per_regime",
        "report",
    ] {
        assert_eq!(status(&statuses, id), "ran", "{id}");
    }
    let graph = p.admf(&["graph", &workflow("composite_research"), "--format", "json"]);
    let graph: serde_json::Value = serde_json::from_str(&graph.stdout).unwrap();
    let deps = |id: &str| {
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))["deps"]
            .clone()
    };
    // Depending on an include means depending on its sinks.
    assert_eq!(
        deps("strategy_selection/ensemble"),
        serde_json::json!(["morning_analysis/regimes"])
    );
    assert_eq!(
        deps("risk_adjustment/per_regime"),
        serde_json::json!(["morning_analysis/regimes"])
    );
    assert_eq!(
        deps("report"),
        serde_json::json!([
            "morning_analysis/regimes",
            "strategy_selection/ensemble",
            "risk_adjustment/stressed",
            "risk_adjustment/per_regime"
        ])
    );
    let html = std::fs::read_to_string(&reports(&out)[0]).unwrap();
    for section in [
        "morning_analysis/regimes",
        "strategy_selection/ensemble",
        "risk_adjustment/stressed",
    ] {
        assert!(html.contains(section), "{section}");
    }
}

#[test]
fn conditional_ensemble_runs_only_the_branch_that_clears_the_bar() {
    let p = project();
    let wf = workflow("conditional_ensemble");
    let (out, statuses) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(status(&statuses, "sma_ensemble"), "ran");
    assert_eq!(status(&statuses, "sma_report"), "ran");
    assert_eq!(status(&statuses, "momentum_ensemble"), "skipped");
    assert_eq!(status(&statuses, "momentum_report"), "skipped");
    let st = p.admf(&["status", &wf]).stdout;
    assert!(
        st.contains("skipped (condition `momentum_sweep.train_best.sharpe > 0.4` is false)"),
        "{st}"
    );
    // Lowering the bar runs the other branch, and nothing else.
    let ran = p.ran(&[
        &wf,
        "--set",
        "momentum_ensemble.when=momentum_sweep.train_best.sharpe > -0.1",
    ]);
    assert_eq!(ran, ["momentum_ensemble", "momentum_report"]);
}

#[test]
fn minute_research_reads_the_headerless_intraday_file() {
    let p = project();
    let wf = workflow("minute_research");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let show = p.admf(&["show", &wf, "ensemble_optimization"]).stdout;
    assert!(show.contains("14180 bars"), "{show}");
    assert!(show.contains("intraday"), "{show}");
    let metrics = std::fs::read_to_string(reports(&out)[0].with_file_name("metrics.json"));
    let metrics: serde_json::Value = serde_json::from_str(&metrics.unwrap()).unwrap();
    assert_eq!(metrics["sections"].as_array().unwrap().len(), 3);
}
