//! Rebuilding the research pipeline reruns only what a change reaches:
//! new grid values run only their trials (plus the gather and what reads
//! it), new replay settings only the replay and the report.

mod common;
mod research;

use research::{project, workflow};

#[test]
fn adding_a_grid_value_runs_only_the_new_trials_and_downstream() {
    let p = project();
    let wf = workflow("parameter_optimization");
    assert_eq!(p.ran(&[&wf]).len(), 10);
    // lookback 40 adds the combinations (40, 0.01) and (40, 0.02): trials
    // 6 and 7 of the product, the last key varying fastest.
    let ran = p.ran(&[
        &wf,
        "--set",
        "parameter_discovery.grid.lookback=[10, 20, 30, 40]",
    ]);
    assert_eq!(
        ran,
        [
            "parameter_discovery[6]",
            "parameter_discovery[7]",
            "parameter_discovery",
            "regime_analysis",
            "ensemble_optimization",
            "report"
        ]
    );
    // A value at the front shifts every trial's index but changes no
    // trial's work: only the new one runs.
    let ran = p.ran(&[
        &wf,
        "--set",
        "parameter_discovery.grid.lookback=[5, 10, 20, 30, 40]",
    ]);
    assert_eq!(
        &ran[..2],
        ["parameter_discovery[0]", "parameter_discovery[1]"],
        "{ran:?}"
    );
    assert_eq!(ran.len(), 6, "{ran:?}");
}

#[test]
fn changing_the_replay_settings_reruns_only_the_replay_and_the_report() {
    let p = project();
    let wf = workflow("parameter_optimization");
    assert_eq!(p.ran(&[&wf]).len(), 10);
    let ran = p.ran(&[&wf, "--set", "ensemble_optimization.weights.step=0.25"]);
    assert_eq!(ran, ["ensemble_optimization", "report"]);
    let ran = p.ran(&[
        &wf,
        "--set",
        "ensemble_optimization.weights={method: random, samples: 500, seed: 7}",
    ]);
    assert_eq!(ran, ["ensemble_optimization", "report"]);
    // Back to the workflow as written: every entry is still in the store.
    assert!(p.ran(&[&wf]).is_empty());
}

#[test]
fn changing_the_data_file_reruns_everything_that_reads_it() {
    let p = project();
    let wf = workflow("simple_backtest");
    assert_eq!(p.ran(&[&wf]), ["backtest"]);
    let data = p.read("data/SPY_D.csv");
    p.file("data/SPY_D.csv", &data.replacen("136.5,", "136.4,", 1));
    assert_eq!(p.ran(&[&wf]), ["backtest"]);
    // The minute workflow does not read the daily file.
    assert_eq!(p.ran(&[&workflow("minute_research")]).len(), 10);
    p.file("data/SPY_D.csv", &data);
    assert!(p.ran(&[&workflow("minute_research")]).is_empty());
}
