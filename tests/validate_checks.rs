//! `admf validate` catches, with exit 2 and the key's file:line, what
//! would otherwise fail (or produce nothing) only at run time.

mod common;

use common::Project;

fn project() -> Project {
    let p = Project::new();
    p.file(".admf", "");
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p
}

/// `validate` of `yaml` fails with exit 2, at `at`, saying `says`.
fn refused(yaml: &str, at: &str, says: &str) -> String {
    let p = project();
    p.file("wf.yaml", yaml);
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stderr.contains(at), "want {at}:\n{}", out.stderr);
    assert!(out.stderr.contains(says), "want {says}:\n{}", out.stderr);
    out.stderr
}

const HEAD: &str = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20}}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: [10, 20, 30]}
";

#[test]
fn a_weight_step_that_does_not_divide_one() {
    let yaml = format!(
        "{HEAD}  - ensemble:\n      mode: signal_replay\n      weights: {{method: grid, step: 0.3}}\n"
    );
    let err = refused(&yaml, "wf.yaml:9:", "0.3 does not divide 1");
    assert!(err.contains("`weights.step`"), "{err}");
    // A step that divides 1 passes.
    let p = project();
    p.file("ok.yaml", &yaml.replace("0.3", "0.25"));
    assert_eq!(p.admf(&["validate", "ok.yaml"]).code, 0);
}

#[test]
fn grids_above_their_bound_say_how_big_they_would_be() {
    // 30 signals at step 0.01: C(129, 29) weightings.
    let yaml = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20}}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: \"range(10, 39, 1)\"}
  - ensemble:
      mode: signal_replay
      weights: {method: grid, step: 0.01}
";
    let err = refused(
        yaml,
        "wf.yaml:9:",
        "(30 signals, step 0.01), above the bound of 1000000",
    );
    assert!(err.contains("would have "), "{err}");
    let grid = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20}}
phases:
  - sweep:
      mode: signal_generation
      grid:
        lookback: \"range(1, 2000, 1)\"
        threshold: \"range(0, 0.999, 0.001)\"
";
    refused(
        grid,
        "wf.yaml:6:",
        "the grid has 2000000 combinations (2000 lookback × 1000 threshold), above the bound of 1000000",
    );
}

#[test]
fn a_when_path_the_upstream_never_writes() {
    let yaml = format!(
        "{HEAD}  - publish:\n      mode: command\n      depends_on: [sweep]\n      when: \"sweep.best.sharp > 0.5\"\n      run: 'true'\n"
    );
    refused(&yaml, "wf.yaml:10:", "never holds `best.sharp`");
    let yaml = format!(
        "{HEAD}  - publish:\n      mode: command\n      depends_on: [sweep]\n      when: \"sweep.sharpe > 0.5\"\n      run: 'true'\n"
    );
    let err = refused(&yaml, "wf.yaml:10:", "never holds `sharpe`");
    assert!(err.contains("trials, strategy, best"), "{err}");
    // The documented path passes.
    let p = project();
    p.file(
        "ok.yaml",
        &format!("{HEAD}  - publish:\n      mode: command\n      depends_on: [sweep]\n      when: \"sweep.best.sharpe > 0.5\"\n      run: 'true'\n"),
    );
    assert_eq!(p.admf(&["validate", "ok.yaml"]).code, 0);
}

#[test]
fn a_when_path_into_walk_forward_metrics() {
    let walk = format!(
        "{HEAD}  - walk:\n      mode: walk_forward\n      windows: {{train: 100, test: 50}}\n"
    );
    let publish = |when: &str| {
        format!(
            "{walk}  - publish:\n      mode: command\n      depends_on: [walk]\n      when: \"{when}\"\n      run: 'true'\n"
        )
    };
    for ok in [
        "walk.oos.sharpe > 0.5",
        "walk.folds >= 3 and walk.oos.max_drawdown > -0.2",
        "walk.windows.purge == 0",
    ] {
        let p = project();
        p.file("ok.yaml", &publish(ok));
        let out = p.admf(&["validate", "ok.yaml"]);
        assert_eq!(out.code, 0, "{ok}: {}", out.stderr);
    }
    let err = refused(
        &publish("walk.oos.sharp > 0.5"),
        "wf.yaml:13:",
        "never holds `oos.sharp`",
    );
    assert!(err.contains("did you mean `sharpe`?"), "{err}");
    // The stitched curve's metrics sit under `oos`, not at the top.
    let err = refused(
        &publish("walk.sharpe > 0.5"),
        "wf.yaml:13:",
        "never holds `sharpe`",
    );
    assert!(
        err.contains("oos, folds, objective, windows, per_fold"),
        "{err}"
    );
}

#[test]
fn signal_replay_without_a_sweep_upstream() {
    let yaml = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum}
phases:
  - base:
      mode: backtest
  - ensemble:
      mode: signal_replay
      depends_on: [base]
";
    let err = refused(
        yaml,
        "wf.yaml:8:",
        "reads the signals of an upstream `signal_generation`",
    );
    assert!(err.contains("it depends on `base` (backtest)"), "{err}");
}

#[test]
fn a_data_path_that_is_a_directory() {
    let yaml = "data: {source: csv, symbols: [SPY], path: data}
strategy: {type: momentum}
";
    refused(yaml, "wf.yaml:1:", "is a directory, not a file");
}

#[test]
fn symbols_that_do_not_match_the_file_or_are_empty() {
    let yaml = "data: {source: csv, symbols: [QQQ], path: data/SPY_D.csv}
strategy: {type: momentum}
";
    let err = refused(
        yaml,
        "wf.yaml:1:",
        "`QQQ` is not the symbol of `data/SPY_D.csv`, whose name says `SPY`",
    );
    assert!(err.contains("`data.symbols`"), "{err}");
    let yaml = "data: {source: csv, symbols: [], path: data/SPY_D.csv}
strategy: {type: momentum}
";
    refused(yaml, "wf.yaml:1:", "lists no symbol");
}

#[test]
fn a_lookback_longer_than_the_data() {
    let yaml = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 6000}}
";
    refused(yaml, "wf.yaml:2:", "`lookback` 6000 needs more bars than `");
    let yaml = HEAD.replace("[10, 20, 30]", "[10, 9000]");
    let err = refused(&yaml, "wf.yaml:6:", "`lookback` 9000 needs more bars");
    assert!(err.contains("`grid.lookback`"), "{err}");
    assert!(err.contains("(5241)"), "{err}");
}

#[test]
fn analysis_without_a_sweep_upstream() {
    let yaml = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum}
phases:
  - regimes:
      mode: analysis
";
    refused(yaml, "wf.yaml:4:", "it depends on nothing");
}
