//! The sealed holdout (`data.holdout` and `mode: holdout`) through
//! `admf build` on the shipped data.

mod common;
mod research;

use research::{project, reports, workflow};
use serde_json::Value;

/// Momentum(20) with next-open fills and a fee, the bars from 2018 on
/// held out.
const BACKTEST_HOLDOUT: &str = "data:
  source: csv
  symbols: [SPY]
  path: ../data/SPY_D.csv
  holdout: 2018-01-01
strategy:
  type: momentum
  parameters: {lookback: 20}
costs: {fee: 0.001}
execution: {fill: next_open}
phases:
  - backtest:
      mode: backtest
  - sealed:
      mode: holdout
      depends_on: [backtest]
";

fn artifacts(p: &common::Project, wf: &str, node: &str) -> std::path::PathBuf {
    let show = p.admf(&["show", wf, node]).stdout;
    let dir = show
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("{show}"));
    std::path::PathBuf::from(dir.trim())
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The held-out figures against `scripts/reference_holdout.py` (numpy)
/// run once on the `equity.csv` of the same backtest without a holdout;
/// the backtest itself ends before the holdout; each build that looks is
/// counted.
#[test]
fn holdout_figures_match_the_reference_and_builds_are_counted() {
    let p = project();
    p.file("workflows/holdout.yaml", BACKTEST_HOLDOUT);
    let wf = workflow("holdout");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("sealed: holdout from 2018-01-02 (670 bars)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("seen by 1 build of this workflow\n"),
        "{}",
        out.stderr
    );
    let m: Value =
        serde_json::from_str(&read(&artifacts(&p, &wf, "sealed"), "metrics.json")).unwrap();
    assert_eq!(
        (&m["from_ts"], &m["bars"]),
        (&Value::from("2018-01-02"), &Value::from(670))
    );
    let close = |v: &Value, want: f64| {
        let got = v.as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    };
    close(&m["holdout"]["sharpe"], 0.829322111259517);
    close(&m["holdout"]["total_return"], 0.26827265130404476);
    // Nothing before the holdout phase saw a bar of 2018.
    let equity = read(&artifacts(&p, &wf, "backtest"), "equity.csv");
    assert!(
        equity.lines().last().unwrap().starts_with("2017-12-29,"),
        "the backtest ends on the last bar before the holdout"
    );
    assert!(!equity.contains("2018-"), "the backtest saw the holdout");
    // A second build looks again, served from the store.
    let (again, statuses) = p.build(&[&wf]);
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    assert!(
        again
            .stderr
            .contains("seen by 2 builds of this workflow, so it is no longer untouched"),
        "{}",
        again.stderr
    );
}

/// Rewriting every held-out price changes no artifact of any phase but
/// the holdout's (and the report over it): the holdout is sealed.
#[test]
fn held_out_bars_reach_no_other_phase() {
    let p = project();
    let text = p.read("workflows/parameter_optimization.yaml");
    let wf_text = text.replace(
        "  path: ../data/SPY_D.csv\n",
        "  path: ../data/SPY_D.csv\n  holdout: 0.1\n",
    ) + "  - sealed:\n      mode: holdout\n      depends_on: [parameter_discovery, ensemble_optimization]\n  - final_report:\n      mode: report\n      depends_on: [sealed]\n";
    p.file("workflows/sealed.yaml", &wf_text);
    let wf = workflow("sealed");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let nodes = [
        "parameter_discovery",
        "regime_analysis",
        "ensemble_optimization",
        "report",
    ];
    let snapshot = |p: &common::Project| -> Vec<(String, Vec<(String, String)>)> {
        nodes
            .iter()
            .map(|n| {
                let dir = artifacts(p, &wf, n);
                let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
                    .unwrap()
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        (name.clone(), read(&dir, &name))
                    })
                    .collect();
                files.sort();
                (n.to_string(), files)
            })
            .collect()
    };
    let before = snapshot(&p);
    let sealed_before = read(&artifacts(&p, &wf, "sealed"), "metrics.json");
    let html = std::fs::read_to_string(
        reports(&out)
            .iter()
            .find(|r| r.to_string_lossy().contains("views"))
            .unwrap(),
    )
    .unwrap();
    assert!(html.contains("the last 10% of the bars, sealed"), "header");
    // The last 10 % of 5241 bars: 524, from 2018-08-01 on. Halve their
    // closes.
    let data = p.read("data/SPY_D.csv");
    let mut lines: Vec<String> = data.lines().map(str::to_string).collect();
    let first_held = lines.len() - 524;
    assert!(
        lines[first_held].contains(",2018-08-01,"),
        "{}",
        lines[first_held]
    );
    for line in &mut lines[first_held..] {
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        // open, high, low, close
        for price in &mut f[2..=5] {
            let x: f64 = price.parse().unwrap();
            *price = format!("{}", x / 2.0);
        }
        *line = f.join(",");
    }
    p.file("data/SPY_D.csv", &(lines.join("\n") + "\n"));
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(snapshot(&p), before, "a phase before the holdout changed");
    assert_ne!(
        read(&artifacts(&p, &wf, "sealed"), "metrics.json"),
        sealed_before
    );
    let final_report = read(&artifacts(&p, &wf, "final_report"), "report.html");
    assert!(final_report.contains("the sealed holdout: 524 bars from 2018-08-01"));
}

#[test]
fn a_holdout_phase_needs_a_declared_holdout() {
    let p = project();
    p.file(
        "workflows/holdout.yaml",
        &BACKTEST_HOLDOUT.replace("  holdout: 2018-01-01\n", ""),
    );
    let out = p.admf(&["build", &workflow("holdout")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("data.holdout"), "{}", out.stderr);
    p.file(
        "workflows/holdout.yaml",
        &BACKTEST_HOLDOUT.replace("holdout: 2018-01-01", "holdout: 1.5"),
    );
    let out = p.admf(&["build", &workflow("holdout")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("holdout.yaml:5"), "{}", out.stderr);
}
