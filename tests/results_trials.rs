//! `admf trials` on the shipped parameter_optimization.yaml: the table's
//! renderings (snapshots), its figures against the sweep's own
//! `trials.json`, and bad `--filter` input.

mod common;

use common::Project;
use serde_json::Value;

const WF: &str = "workflows/parameter_optimization.yaml";

fn built() -> Project {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.repo_file(WF, WF);
    p.file(".admf", "");
    let out = p.admf(&["build", WF]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    p
}

fn trials(p: &Project, args: &[&str]) -> String {
    let mut all = vec!["trials", WF];
    all.extend(args);
    let out = p.admf(&all);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

#[test]
fn trials_table_renders() {
    let p = built();
    insta::assert_snapshot!("table", trials(&p, &[]));
    insta::assert_snapshot!(
        "top3_csv",
        trials(&p, &["--sort", "sharpe", "--top", "3", "--format", "csv"])
    );
    insta::assert_snapshot!(
        "filtered_markdown",
        trials(
            &p,
            &[
                "--filter",
                "sharpe > -0.06 and lookback >= 20",
                "--format",
                "markdown"
            ]
        )
    );
    insta::assert_snapshot!(
        "pivot",
        trials(&p, &["--pivot", "lookback,threshold", "--value", "sharpe"])
    );
}

#[test]
fn trials_json_matches_the_sweeps_own_record() {
    let p = built();
    let rows: Value = serde_json::from_str(&trials(&p, &["--json"])).unwrap();
    let rows = rows.as_array().unwrap();
    let shown: Value = serde_json::from_str(
        &p.admf(&["show", WF, "parameter_discovery", "--json"])
            .stdout,
    )
    .unwrap();
    let path = shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "trials.json")
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let record: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let record = record.as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for (row, rec) in rows.iter().zip(record) {
        assert_eq!(row["trial"], rec["index"]);
        assert_eq!(row["lookback"], rec["params"]["lookback"]);
        assert_eq!(row["threshold"], rec["params"]["threshold"]);
        assert_eq!(row["status"], "fresh");
        for m in ["sharpe", "total_return", "max_drawdown", "trades"] {
            assert_eq!(row[m], rec["metrics"][m], "{m}");
        }
    }
    // The best by Sharpe is the sweep's own `best`.
    let best: Value =
        serde_json::from_str(&trials(&p, &["--sort", "sharpe", "--top", "1", "--json"])).unwrap();
    let gather: Value = shown["metrics"].clone();
    assert_eq!(best[0]["trial"], gather["best"]["trial"]);
}

/// Trial 5 (lookback 30, threshold 0.02, fee 0.001) cut at bar
/// floor(0.8 × 5241) = 4192, computed with numpy from the `equity.csv` of
/// a backtest of the same parameters: Sharpe = mean / std(ddof=1) ×
/// sqrt(252) of the bar returns; the test curve rebased at bar 4191.
#[test]
fn train_and_test_figures_match_an_independent_computation() {
    let p = built();
    let rows: Value = serde_json::from_str(&trials(&p, &["--json"])).unwrap();
    let t5 = &rows[5];
    assert_eq!(
        (t5["lookback"].as_i64(), t5["threshold"].as_f64()),
        (Some(30), Some(0.02))
    );
    for (column, want) in [
        ("train_sharpe", -0.1713813365004308),
        ("test_sharpe", 0.8133489196812103),
        ("train_total_return", -0.2794745431525665),
        ("test_total_return", 0.31216115914758613),
    ] {
        let got = t5[column].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{column}: {got} vs {want}");
    }
    // The whole-sample figure is neither part.
    assert_ne!(t5["sharpe"], t5["train_sharpe"]);
    // Without a research phase there is no split, and no such columns.
    let q = Project::new();
    q.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    q.file(".admf", "");
    q.file(
        "sweep.yaml",
        "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}\nstrategy: {type: momentum}\nphases:\n  - s: {mode: signal_generation, grid: {lookback: [10, 20]}}\n",
    );
    let out = q.admf(&["trials", "sweep.yaml", "--format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("train_sharpe"), "{}", out.stdout);
}

#[test]
fn unbuilt_trials_show_missing_with_empty_metrics() {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.repo_file(WF, WF);
    p.file(".admf", "");
    let rows: Value = serde_json::from_str(&trials(&p, &["--format", "json"])).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "missing" && r["sharpe"].is_null())
    );
    let csv = trials(&p, &["--format", "csv"]);
    // Empty metrics; the train and test figures are computed from the
    // data when the table is printed, so they need no build.
    assert!(
        csv.lines().nth(1).unwrap().contains(",missing,,,,,,,,,,,-"),
        "{csv}"
    );
}

#[test]
fn bad_filter_sort_or_phase_is_a_usage_error() {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.repo_file(WF, WF);
    p.file(".admf", "");
    for (args, says) in [
        (vec!["--filter", "sharpe >"], "expected a value after `>`"),
        (vec!["--filter", "sharpe"], "no comparison"),
        (vec!["--filter", "sharp > 1"], "no column `sharp`"),
        (vec!["--sort", "sharp"], "no column `sharp` to sort by"),
        (vec!["report"], "not a grid phase"),
        (vec!["--pivot", "lookback"], "expected two parameters"),
    ] {
        let mut all = vec!["trials", WF];
        all.extend(&args);
        let out = p.admf(&all);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}
