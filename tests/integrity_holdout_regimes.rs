//! The sealed holdout of an ensemble whose weights are chosen per
//! volatility regime: every held-out bar votes with the weights its
//! regime chose on the train part, labelled by the analysis's classifier
//! from bars up to its own.

mod common;
mod research;

use research::{project, workflow};
use serde_json::Value;

/// The sweep, regimes and ensemble of parameter_optimization.yaml with
/// weights per volatility regime, the train part ending with 2014 and
/// the bars from 2018 on held out.
const REGIME_HOLDOUT: &str = "data:
  source: csv
  symbols: [SPY]
  path: ../data/SPY_D.csv
  holdout: 2018-01-01
strategy:
  type: momentum
  parameters: {lookback: 20, threshold: 0.0}
costs: {fee: 0.001}
split: {train: 2014-12-31}
phases:
  - parameter_discovery:
      mode: signal_generation
      grid: {lookback: [10, 20, 30], threshold: [0.01, 0.02]}
  - regime_analysis:
      mode: analysis
      classifiers: [volatility, momentum]
  - ensemble_optimization:
      mode: signal_replay
      depends_on: [parameter_discovery, regime_analysis]
      weights: {method: grid, step: 0.1}
      per_regime: volatility
  - sealed:
      mode: holdout
      depends_on: [parameter_discovery, regime_analysis, ensemble_optimization]
";

fn artifacts(p: &common::Project, wf: &str, node: &str) -> std::path::PathBuf {
    let show = p.admf(&["show", wf, node]).stdout;
    let dir = show
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("{show}"));
    std::path::PathBuf::from(dir.trim())
}

fn json(dir: &std::path::Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

/// Figures of `scripts/reference_holdout_regimes.py` (numpy), run once on
/// the `weights.json` this build's replay writes.
#[test]
fn per_regime_weights_are_held_out_and_match_the_reference() {
    let p = project();
    p.file("workflows/regimes.yaml", REGIME_HOLDOUT);
    let wf = workflow("regimes");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let weights = json(&artifacts(&p, &wf, "ensemble_optimization"), "weights.json");
    // The search chose different weights for some regime: the holdout
    // below is not the global weighting's.
    let regimes = &weights["per_regime"]["regimes"];
    assert!(
        ["low", "normal", "high"]
            .iter()
            .any(|r| regimes[*r]["weights_used"] == "regime"),
        "{weights}"
    );
    let m = json(&artifacts(&p, &wf, "sealed"), "metrics.json");
    assert_eq!(m["from_ts"], "2018-01-02");
    assert_eq!(m["bars"], 670);
    assert_eq!(m["per_regime"]["classifier"], "volatility");
    let close = |v: &Value, want: f64| {
        let got = v.as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    };
    // from 2018-01-02 bars 670 per regime {'low': 182, 'normal': 282,
    // 'high': 206}
    for (regime, bars) in [("low", 182), ("normal", 282), ("high", 206)] {
        assert_eq!(m["per_regime"]["bars"][regime], bars, "{regime}");
    }
    close(&m["holdout"]["sharpe"], 1.4216791898121544);
    close(&m["holdout"]["total_return"], 0.46213265804493053);
}

/// A per-regime ensemble held out without the analysis it read the
/// regimes of is refused, naming what to add.
#[test]
fn per_regime_holdout_needs_the_analysis() {
    let p = project();
    p.file(
        "workflows/regimes.yaml",
        &REGIME_HOLDOUT.replace(
            "depends_on: [parameter_discovery, regime_analysis, ensemble_optimization]",
            "depends_on: [parameter_discovery, ensemble_optimization]",
        ),
    );
    let (out, _) = p.build(&[&workflow("regimes")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "the holdout needs the analysis it read the regimes of as a direct upstream too"
        ),
        "{}",
        out.stderr
    );
}
