//! Errors point at the key that is wrong: an unknown mode at its `mode:`
//! line with the valid modes, a bad grid value at the grid entry, a bad
//! `--set` value at the `--set` it came from.

mod common;

use common::Project;

fn project() -> Project {
    let p = Project::new();
    p.file(".admf", "");
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p
}

#[test]
fn an_unknown_mode_points_at_its_line_and_lists_the_modes() {
    let p = project();
    p.file(
        "wf.yaml",
        "phases:\n  - name: step\n    mode: comand\n    run: 'true'\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:3:5"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`mode`: unknown mode `comand`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "(modes: backtest, signal_generation, analysis, signal_replay, report, command, walk_forward, holdout)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `command`?"),
        "{}",
        out.stderr
    );
    // The alias `type:` is named as such.
    p.file("alias.yaml", "phases:\n  - step:\n      type: bactest\n");
    let out = p.admf(&["validate", "alias.yaml"]);
    assert!(out.stderr.contains("alias.yaml:3:7"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`type`: unknown mode `bactest`"),
        "{}",
        out.stderr
    );
}

const SWEEP: &str = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: sma_crossover, parameters: {fast: 10, slow: 50}}
phases:
  - sweep:
      mode: signal_generation
      grid:
        slow: [100, 200]
        fast: [20, 300]
";

#[test]
fn a_bad_grid_value_points_at_the_grid_entry() {
    let p = project();
    p.file("wf.yaml", SWEEP);
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:8:9"), "{}", out.stderr);
    assert!(out.stderr.contains("`grid.fast`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("(in trial sma_crossover_slow=100_fast=300)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_set_value_names_the_set() {
    let p = project();
    p.file("wf.yaml", SWEEP.replace("300", "30").as_str());
    assert_eq!(p.admf(&["validate", "wf.yaml"]).code, 0);
    let out = p.admf(&[
        "validate",
        "wf.yaml",
        "--set",
        "strategy.parameters.fast=-3",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`strategy.parameters.fast`: expected a whole number ≥ 1 (from `--set strategy.parameters.fast=-3`)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("wf.yaml:2"),
        "not the replaced value's line: {}",
        out.stderr
    );
    let out = p.admf(&["validate", "wf.yaml", "--set", "sweep.grid.fast=[0]"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("(from `--set sweep.grid.fast=[0]`)"),
        "{}",
        out.stderr
    );
}
