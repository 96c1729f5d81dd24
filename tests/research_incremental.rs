//! Rebuilding the research pipeline reruns only what a change reaches:
//! new grid values run only their trials (plus the gather and what reads
//! it), new replay settings only the replay and the report.

mod common;
mod research;

use research::{project, store_support, workflow};

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

/// The gather node's `signals/trial_N.jsonl` are the trials' own blobs:
/// a sweep stores each signal once, and adds no file per trial.
#[test]
fn the_gather_stores_no_second_copy_of_the_trials_signals() {
    let p = project();
    let wf = workflow("parameter_optimization");
    assert_eq!(p.ran(&[&wf]).len(), 10);
    let cache = p.path("cache");
    let keys = store_support::action_keys(&cache);
    let mut trial_signals = std::collections::HashSet::new();
    let mut gathered = Vec::new();
    for key in &keys {
        for (name, digest) in store_support::outputs(&cache, key) {
            if name == "signal.jsonl" {
                trial_signals.insert(digest);
            } else if name.starts_with("signals/") {
                gathered.push(digest);
            }
        }
    }
    assert_eq!(trial_signals.len(), 6, "one per trial of the 3 × 2 grid");
    assert!(gathered.len() >= 6);
    for digest in &gathered {
        assert!(trial_signals.contains(digest), "{digest}");
    }
    // Each blob is stored once, and the sweep's small outputs are no files.
    let inline = store_support::sql_strings(&cache, "SELECT digest FROM blobs");
    let files = store_support::blob_files(&cache);
    assert_eq!(
        inline.len() + files.len(),
        inline
            .iter()
            .cloned()
            .chain(
                files
                    .iter()
                    .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            )
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    for digest in &trial_signals {
        assert!(!store_support::blob_file(&cache, digest).exists());
    }
}
