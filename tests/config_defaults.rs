//! Every mode keys its config in normal form: a key left out and the same
//! key written with its default give the same node key (no needless rerun),
//! a value other than the default gives another, and a bad value is
//! refused by `admf validate` at its file:line:column.

mod common;

use common::Project;

fn project() -> Project {
    let p = Project::new();
    p.file(".admf", "");
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p
}

/// The key of node `id` in `yaml`, from `admf status --json`. A node
/// whose key waits on an upstream's outputs is built first: the key of
/// a node downstream is known once its upstream nodes have run.
fn key(p: &Project, yaml: &str, id: &str) -> String {
    p.file("wf.yaml", yaml);
    for attempt in 0..2 {
        let out = p.admf(&["status", "wf.yaml", "--json"]);
        assert_eq!(out.code, 0, "{}\n{yaml}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let node = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node {id} in {v}"));
        if let Some(key) = node["key"].as_str() {
            return key.to_string();
        }
        assert_eq!(attempt, 0, "{id} has no key once built: {node}");
        let built = p.admf(&["build", "wf.yaml"]);
        assert_eq!(built.code, 0, "{}\n{yaml}", built.stderr);
    }
    unreachable!()
}

/// For each `(from, to)`: replacing `from` by `to` in `base` keeps the key
/// of node `id` when `same`, changes it otherwise.
fn check(base: &str, id: &str, edits: &[(&str, &str, bool)]) {
    let p = project();
    let before = key(&p, base, id);
    for (from, to, same) in edits {
        assert!(base.contains(from), "`{from}` is not in the workflow");
        let edited = base.replacen(from, to, 1);
        let after = key(&p, &edited, id);
        assert_eq!(
            before == after,
            *same,
            "{id}: `{from}` -> `{to}` should {} the key",
            if *same { "keep" } else { "change" }
        );
    }
}

const DATA: &str = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}\n";

#[test]
fn backtest_defaults_written_out_keep_the_key() {
    let base = format!(
        "{DATA}strategy: {{type: sma_crossover, parameters: {{fast: 20}}}}\ncosts: {{fee: 0.001}}\n"
    );
    check(
        &base,
        "backtest",
        &[
            // The documented defaults of `admf strategies`, costs, execution and data.
            ("{fast: 20}", "{fast: 20, slow: 50}", true),
            ("{fast: 20}", "{fast: 20.0, allow_short: false}", true),
            ("{fast: 20}", "{slow: 50, fast: 20}", true),
            ("{fee: 0.001}", "{fee: 0.001, slippage_bps: 0}", true),
            (
                "{fee: 0.001}",
                "{fee: 0.001}\nexecution: {fill: close}",
                true,
            ),
            ("path: data", "on_bad_rows: error, path: data", true),
            ("{source: csv, ", "{", true),
            ("symbols: [SPY]", "symbols: SPY", true),
            // Values that are not the default.
            ("{fast: 20}", "{fast: 20, slow: 51}", false),
            ("{fast: 20}", "{fast: 20, allow_short: true}", false),
            ("{fee: 0.001}", "{fee: 0.001, slippage_bps: 1}", false),
            (
                "{fee: 0.001}",
                "{fee: 0.001}\nexecution: {fill: next_open}",
                false,
            ),
            ("path: data", "on_bad_rows: drop, path: data", false),
        ],
    );
}

const SWEEP: &str = "strategy: {type: momentum, parameters: {threshold: 0.01}}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: [10, 20]}
";

#[test]
fn sweep_trials_and_gather_key_their_defaults() {
    let base = format!("{DATA}{SPLIT_HOOK}{SWEEP}");
    // A trial takes the strategy's defaults; the gather also the split's.
    let edits = [
        (
            "{threshold: 0.01}",
            "{threshold: 0.01, allow_short: false}",
            true,
        ),
        ("{threshold: 0.01}", "{threshold: 0.02}", false),
    ];
    check(&base, "sweep[0]", &edits);
    check(&base, "sweep", &edits);
    check(
        &base,
        "sweep",
        &[
            (SPLIT_HOOK, "split: 0.8\n", true),
            (SPLIT_HOOK, "split: {train: 0.8}\n", true),
            (SPLIT_HOOK, "split: 0.7\n", false),
        ],
    );
    // Trials run over every bar: the split is not theirs.
    check(&base, "sweep[1]", &[(SPLIT_HOOK, "split: 0.7\n", true)]);
}

/// A comment line the split edits replace.
const SPLIT_HOOK: &str = "# split\n";

#[test]
fn selection_modes_key_their_defaults() {
    let base = format!(
        "{DATA}{SWEEP}  - regimes:
      mode: analysis
      depends_on: [sweep]
  - ensemble:
      mode: signal_replay
      depends_on: [sweep]
  - wf:
      mode: walk_forward
      depends_on: [sweep]
      windows: {{train: 500, test: 250}}
  - page:
      mode: report
      depends_on: [ensemble]
"
    );
    check(
        &base,
        "regimes",
        &[
            (
                "mode: analysis",
                "mode: analysis\n      classifiers: [volatility, {type: momentum, period: 20}]",
                true,
            ),
            (
                "mode: analysis",
                "mode: analysis\n      objective: sharpe",
                true,
            ),
            (
                "mode: analysis",
                "mode: analysis\n      objective: sortino",
                false,
            ),
            (
                "mode: analysis",
                "mode: analysis\n      classifiers: [volatility]",
                false,
            ),
        ],
    );
    check(
        &base,
        "ensemble",
        &[
            (
                "mode: signal_replay",
                "mode: signal_replay\n      threshold: 0.5\n      lag: 0\n      pbo: false\n      select: all",
                true,
            ),
            (
                "mode: signal_replay",
                "mode: signal_replay\n      weights: {method: grid, step: 0.1}",
                true,
            ),
            (
                "mode: signal_replay",
                "mode: signal_replay\n      threshold: 0.6",
                false,
            ),
            // The strategy is inherited but never read by the replay.
            ("{threshold: 0.01}", "{threshold: 0.01, lookback: 30}", true),
        ],
    );
    check(
        &base,
        "wf",
        &[
            (
                "{train: 500, test: 250}",
                "{train: 500, test: 250, step: 250, anchored: false, purge: 0}",
                true,
            ),
            (
                "{train: 500, test: 250}",
                "{train: 500, test: 250, purge: 1}",
                false,
            ),
        ],
    );
    check(
        &base,
        "page",
        &[
            (
                "mode: report",
                "mode: report\n      log_scale: false\n      rolling_window: 126",
                true,
            ),
            // Inherited keys, shown through their parsers.
            (
                "mode: report",
                "mode: report\n      costs: {fee: 0}\n      split: 0.8\n      strategy: {type: rsi}",
                true,
            ),
            (
                "mode: report",
                "mode: report\n      rolling_window: 63",
                false,
            ),
            ("mode: report", "mode: report\n      split: 0.7", false),
        ],
    );
}

#[test]
fn a_bad_value_is_refused_by_validate_at_its_line_and_column() {
    let p = project();
    p.file(
        "wf.yaml",
        &format!("{DATA}strategy: {{type: sma_crossover, parameters: {{fast: 60}}}}\n"),
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // fast: 60 against the default slow: 50, at the parameter itself.
    assert!(out.stderr.contains("wf.yaml:2:"), "{}", out.stderr);
    assert!(out.stderr.contains("strategy.parameters"), "{}", out.stderr);
    p.file(
        "wf.yaml",
        &format!(
            "{DATA}strategy: {{type: momentum}}\nphases:\n  - page:\n      mode: report\n      rolling_window: 1\n"
        ),
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:6:"), "{}", out.stderr);
    assert!(out.stderr.contains("rolling_window"), "{}", out.stderr);
}

/// A momentum backtest whose `parameters:` are `params`.
fn momentum(params: &str) -> String {
    format!("{DATA}strategy: {{type: momentum, parameters: {{{params}}}}}\n")
}

#[test]
fn writing_the_default_lookback_out_reruns_nothing_and_another_value_reruns() {
    let p = project();
    p.file("wf.yaml", &momentum("threshold: 0.01"));
    assert_eq!(p.ran(&["wf.yaml"]), ["backtest"]);
    common::past_racy_window();
    // `lookback: 20` is momentum's default: the same key, served from
    // the store.
    p.file("wf.yaml", &momentum("lookback: 20, threshold: 0.01"));
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        statuses,
        [("backtest".to_string(), "cached".to_string())],
        "{}",
        out.stderr
    );
    common::past_racy_window();
    p.file("wf.yaml", &momentum("lookback: 21, threshold: 0.01"));
    assert_eq!(p.ran(&["wf.yaml"]), ["backtest"]);
}

/// The grid-less sweep's `best.name` after building `params`.
fn sweep_name(p: &Project, params: &str) -> String {
    p.file(
        "wf.yaml",
        &format!(
            "{DATA}strategy: {{type: momentum, parameters: {{{params}}}}}\nphases:\n  - {{name: s, mode: signal_generation}}\n"
        ),
    );
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = p.admf(&["show", "wf.yaml", "s", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    v["metrics"]["best"]["name"].as_str().unwrap().to_string()
}

#[test]
fn a_sweep_without_a_grid_names_its_trial_by_the_parameters_that_differ_from_the_defaults() {
    let p = project();
    // Only what differs from `lookback: 20, threshold: 0`, in the order
    // `admf strategies` lists the parameters, whatever order they are
    // written in: the name follows the key.
    assert_eq!(
        sweep_name(&p, "threshold: 0.01, lookback: 30"),
        "momentum_lookback=30_threshold=0.01"
    );
    assert_eq!(sweep_name(&p, "lookback: 30"), "momentum_lookback=30");
    assert_eq!(
        sweep_name(&p, "lookback: 30, threshold: 0, allow_short: false"),
        "momentum_lookback=30"
    );
    assert_eq!(sweep_name(&p, "lookback: 20"), "momentum");
}

/// The header of `admf trials` for `yaml` (nothing built).
fn trials_header(p: &Project, yaml: &str) -> String {
    p.file("wf.yaml", yaml);
    let out = p.admf(&["trials", "wf.yaml", "--format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.lines().next().unwrap_or_default().to_string()
}

#[test]
fn trials_show_train_and_test_figures_when_a_research_phase_selects_on_the_split() {
    let p = project();
    let sweep = format!(
        "{DATA}strategy: {{type: momentum}}\nphases:\n  - s: {{mode: signal_generation, grid: {{lookback: [10, 20]}}}}\n"
    );
    // A sweep alone: its split, written or not, is no research phase's.
    for yaml in [
        sweep.clone(),
        sweep.replace("phases:", "split: 0.7\nphases:"),
    ] {
        let header = trials_header(&p, &yaml);
        assert!(
            header.starts_with("trial,lookback,status,sharpe"),
            "{header}"
        );
        assert!(!header.contains("train_sharpe"), "{yaml}\n{header}");
    }
    // An analysis selects on the train part of its split, the default
    // 0.8 when none is written.
    let research = format!("{sweep}  - r: {{mode: analysis, depends_on: [s]}}\n");
    for yaml in [
        research.clone(),
        research.replace("phases:", "split: 0.8\nphases:"),
    ] {
        let header = trials_header(&p, &yaml);
        assert!(
            header.ends_with("train_sharpe,test_sharpe,train_total_return,test_total_return"),
            "{yaml}\n{header}"
        );
    }
}
