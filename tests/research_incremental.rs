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

/// The gather node's `signals/trial_N.jsonl` are the trials' own files,
/// linked: a sweep stores each signal once.
#[cfg(unix)]
#[test]
fn the_gather_links_the_trials_signals_instead_of_copying_them() {
    use std::os::unix::fs::MetadataExt;
    let p = project();
    let wf = workflow("parameter_optimization");
    assert_eq!(p.ran(&[&wf]).len(), 10);
    let files: Vec<_> = walkdir::WalkDir::new(p.path("cache/objects"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    let inode = |path: &std::path::Path| std::fs::metadata(path).unwrap().ino();
    let trial_signals: std::collections::HashSet<u64> = files
        .iter()
        .filter(|f| f.ends_with("out/signal.jsonl"))
        .map(|f| inode(f))
        .collect();
    // The gather node's entry: the one whose manifest names the phase.
    let gather_dir = files
        .iter()
        .filter(|f| f.ends_with("manifest.json"))
        .find(|f| {
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            manifest["node"] == "parameter_discovery"
        })
        .and_then(|f| f.parent())
        .expect("the gather entry")
        .join("out/signals");
    let gathered: Vec<_> = files
        .iter()
        .filter(|f| f.starts_with(&gather_dir))
        .collect();
    assert_eq!(gathered.len(), 6, "one per trial of the 3 × 2 grid");
    for file in gathered {
        assert!(trial_signals.contains(&inode(file)), "{}", file.display());
    }
}
