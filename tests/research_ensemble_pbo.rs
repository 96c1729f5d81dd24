//! The probability of backtest overfitting of the ensemble's weight
//! search (`pbo: true`), through `admf build` on the shipped data.

mod common;
mod research;

use research::{project, workflow};

/// 37 of the 70 in-sample choices of the 3,003-weighting grid of
/// `parameter_optimization.yaml` pick a weighting at or below the median
/// out of sample: `scripts/reference_ensemble_pbo.py` (numpy, from the
/// sweep's saved signals and the data) gives 0.5285714285714286 too.
#[test]
fn the_weight_search_pbo_matches_the_reference() {
    let p = project();
    let wf = workflow("parameter_optimization");
    let (out, _) = p.build(&[&wf, "--set", "ensemble_optimization.pbo=true"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let show = p.admf(&["show", &wf, "ensemble_optimization"]).stdout;
    let dir = show
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap()
        .trim()
        .to_string();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/metrics.json")).unwrap())
            .unwrap();
    let o = &m["overfitting"];
    assert_eq!(o["pbo"].as_f64(), Some(37.0 / 70.0), "{o}");
    assert_eq!(
        (&o["pbo_blocks"], &o["pbo_combinations"]),
        (&8.into(), &70.into())
    );
    // Without the key the statistic is not computed at all.
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let show = p.admf(&["show", &wf, "ensemble_optimization"]).stdout;
    assert!(!show.contains("\"pbo\""), "{show}");
}
