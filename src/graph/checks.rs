//! Checks at compile time (so `admf validate` catches them, exit 2 with the
//! key's file:line) of mistakes that would otherwise fail, or silently
//! produce nothing, only when a phase runs:
//!
//! - `signal_replay` or `analysis` without an upstream phase whose signals
//!   they read;
//! - a weight grid above [`weights::GRID_LIMIT`] candidates, given the
//!   number of signals the upstream sweep produces;
//! - a `when:` path that the upstream phase's mode never writes into its
//!   `metrics.json`;
//! - `symbols:` naming another ticker than the data file's name
//!   (`SPY_D.csv` labelled `QQQ`);
//! - a strategy warm-up (lookback, slow average, period) at least as long
//!   as the data, which can take no position.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Graph, Node};
use crate::error::{Error, did_you_mean};
use crate::ir::PhaseIr;
use crate::ir::condition::Condition;
use crate::market::strategy::{Rule, Strategy};
use crate::market::weights;
use crate::phases::Role;
use crate::reads::Reads;

pub fn check(graph: &Graph, reads: &Reads) -> Result<(), Error> {
    let mut bar_counts: HashMap<PathBuf, Option<usize>> = HashMap::new();
    for node in &graph.nodes {
        let phase = &graph.workflow.phases[node.phase];
        let trial = matches!(node.role, Role::Trial { .. });
        match node.mode.as_str() {
            "signal_replay" if !trial => {
                let source = signal_source(graph, node, &["signal_generation", "analysis"])
                    .ok_or_else(|| {
                        no_source(graph, node, phase, "signal_generation` (or `analysis")
                    })?;
                weight_grid(graph, node, phase, source)?;
            }
            "analysis" if !trial => {
                signal_source(graph, node, &["signal_generation"])
                    .ok_or_else(|| no_source(graph, node, phase, "signal_generation"))?;
            }
            _ => {}
        }
        if let Some(cond) = &node.when {
            when_paths(graph, phase, cond)?;
        }
        if matches!(node.mode.as_str(), "backtest" | "signal_generation")
            && !matches!(node.role, Role::Gather { .. })
        {
            symbols_match(node, phase)?;
            warm_up_fits(node, phase, &mut bar_counts, reads)?;
        }
    }
    Ok(())
}

/// The direct upstream node (a whole phase, not a trial) of one of `modes`.
fn signal_source<'g>(graph: &'g Graph, node: &Node, modes: &[&str]) -> Option<&'g Node> {
    node.deps
        .iter()
        .map(|&d| &graph.nodes[d])
        .rev()
        .find(|d| modes.contains(&d.mode.as_str()) && !matches!(d.role, Role::Trial { .. }))
}

fn no_source(graph: &Graph, node: &Node, phase: &PhaseIr, wanted: &str) -> Error {
    let deps: Vec<String> = node
        .deps
        .iter()
        .map(|&d| {
            let d = &graph.nodes[d];
            format!("`{}` ({})", d.id, d.mode)
        })
        .collect();
    let has = if deps.is_empty() {
        "it depends on nothing".to_string()
    } else {
        format!("it depends on {}", deps.join(", "))
    };
    Error::invalid(
        phase.locate("depends_on"),
        "depends_on",
        format!(
            "`{}` ({}) reads the signals of an upstream `{wanted}` phase; {has}",
            node.id, node.mode
        ),
    )
    .with_hint(Some(
        "add the sweep (a signal_generation phase) to depends_on".into(),
    ))
}

/// How many trials a signal source holds: a sweep's grid size, or that of
/// the sweep an analysis reads.
fn trials_of(graph: &Graph, source: &Node) -> Option<usize> {
    match (&source.role, source.mode.as_str()) {
        (Role::Gather { trials }, _) => Some(*trials),
        (Role::Single, "signal_generation") => Some(1),
        (_, "analysis") => {
            signal_source(graph, source, &["signal_generation"]).and_then(|s| trials_of(graph, s))
        }
        _ => None,
    }
}

fn weight_grid(graph: &Graph, node: &Node, phase: &PhaseIr, source: &Node) -> Result<(), Error> {
    let Ok(rc) = crate::phases::signal_replay::replay_config(&node.config) else {
        return Ok(()); // validate() has reported it
    };
    let crate::phases::signal_replay::Method::Grid { step } = rc.method else {
        return Ok(());
    };
    let Some(trials) = trials_of(graph, source) else {
        return Ok(());
    };
    let signals = match rc.select {
        crate::phases::signal_replay::Select::Top(n) => n.min(trials),
        // Regime winners are known only after the analysis ran; all
        // trials bound them.
        _ => trials,
    };
    let units = (1.0 / step).round() as usize;
    let count = weights::grid_count(signals, units);
    if count > weights::GRID_LIMIT {
        return Err(Error::invalid(
            phase.locate("weights.step"),
            "weights.step",
            format!(
                "the weight grid would have {count} candidates ({signals} signals, step {step}), above the bound of {}",
                weights::GRID_LIMIT
            ),
        )
        .with_hint(Some(
            "use a larger step, fewer signals (`select: {top: N}`) or `weights: {method: random, samples: N}`".into(),
        )));
    }
    Ok(())
}

fn compares(cond: &Condition) -> Vec<(&str, &[String])> {
    match cond {
        Condition::Compare { phase, path, .. } => vec![(phase.as_str(), path.as_slice())],
        Condition::And(a, b) | Condition::Or(a, b) => {
            let mut v = compares(a);
            v.extend(compares(b));
            v
        }
    }
}

/// A key of a metrics.json and what may follow it: `None` anything
/// (parameters, symbols), `Some(keys)` only those (none: a leaf).
type MetricKey = (String, Option<Vec<String>>);

/// The keys of a metrics.json written by a node of `mode` and `role`;
/// `None` when they are the user's (command) or depend on the config
/// (analysis names a key per classifier).
fn metric_keys(mode: &str, role: &Role) -> Option<Vec<MetricKey>> {
    let metrics: Vec<String> = crate::phases::artifacts::metric_names();
    let m: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let leaf = |k: &str| (k.to_string(), Some(Vec::new()));
    let open = |k: &str| (k.to_string(), None);
    let under = |k: &str, sub: &[&str]| {
        (
            k.to_string(),
            Some(sub.iter().map(|s| s.to_string()).collect()),
        )
    };
    // `undefined` maps metric names to reasons, `warnings` is a list.
    let run_metrics = || -> Vec<MetricKey> {
        metrics
            .iter()
            .map(|k| match k.as_str() {
                "undefined" | "warnings" => open(k),
                _ => leaf(k),
            })
            .collect()
    };
    let relative = [
        "alpha",
        "beta",
        "information_ratio",
        "excess_return",
        "metrics",
    ];
    let trial = || -> Vec<MetricKey> {
        let mut keys = run_metrics();
        keys.extend([
            leaf("strategy"),
            open("params"),
            open("symbols"),
            open("per_symbol"),
        ]);
        keys
    };
    let overfitting = |stats: &[&str]| under("overfitting", stats);
    let sweep_overfitting = || {
        overfitting(&[
            "trials",
            "selected",
            "dsr",
            "sharpe_variance",
            "expected_max_sharpe",
            "min_backtest_years",
            "backtest_years",
            "pbo",
            "pbo_blocks",
            "pbo_combinations",
        ])
    };
    let best_of =
        |key: &'static str| under(key, &["trial", "name", "sharpe", "total_return", "params"]);
    let best = || best_of("best");
    Some(match (mode, role) {
        ("backtest", _) => {
            let mut keys = trial();
            let mut benchmark = vec!["name"];
            benchmark.extend(relative);
            keys.extend([
                leaf("fee"),
                leaf("slippage_bps"),
                leaf("fill"),
                under("benchmark", &benchmark),
            ]);
            keys
        }
        ("signal_generation", Role::Gather { .. }) => {
            vec![
                leaf("trials"),
                leaf("strategy"),
                best(),
                best_of("train_best"),
                sweep_overfitting(),
            ]
        }
        ("signal_generation", role) => {
            let mut keys = trial();
            keys.extend([leaf("index"), leaf("name")]);
            if matches!(role, Role::Single) {
                keys.extend([leaf("trials"), best()]);
            }
            keys
        }
        ("signal_replay", _) => vec![
            under("train", &m),
            under("validation", &m),
            under("test", &m),
            leaf("weightings"),
            leaf("signals"),
            leaf("objective"),
            leaf("score"),
            overfitting(&[
                "trials",
                "dsr",
                "sharpe_variance",
                "expected_max_sharpe",
                "min_backtest_years",
                "backtest_years",
                "pbo",
                "pbo_blocks",
                "pbo_combinations",
            ]),
            under("benchmark", &["name", "train", "validation", "test"]),
            under(
                "lag_check",
                &[
                    "lag",
                    "train_sharpe",
                    "test_sharpe",
                    "test_total_return",
                    "collapse",
                ],
            ),
        ],
        ("walk_forward", _) => vec![
            under("oos", &m),
            leaf("folds"),
            leaf("objective"),
            under("windows", &["train", "test", "step", "anchored", "purge"]),
            open("per_fold"),
        ],
        ("report", _) => vec![open("sections"), leaf("bytes")],
        _ => return None,
    })
}

fn when_paths(graph: &Graph, phase: &PhaseIr, cond: &Condition) -> Result<(), Error> {
    for (upstream, path) in compares(cond) {
        let Some(up) = graph.index_of(upstream).map(|i| &graph.nodes[i]) else {
            continue; // check_conditions reports it
        };
        let Some(keys) = metric_keys(&up.mode, &up.role) else {
            continue;
        };
        let Some(first) = path.first() else { continue };
        let problem = match keys.iter().find(|(k, _)| k == first) {
            None => Some(keys.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()),
            Some((_, Some(sub))) => match path.get(1) {
                Some(second) if !sub.contains(second) => {
                    Some(sub.iter().map(|s| format!("{first}.{s}")).collect())
                }
                _ => None,
            },
            Some((_, None)) => None,
        };
        if let Some(holds) = problem {
            let full = format!("{upstream}.{}", path.join("."));
            let last = path.last().map(String::as_str).unwrap_or_default();
            let close: Vec<&str> = holds
                .iter()
                .map(|h| h.rsplit('.').next().unwrap_or(h))
                .collect();
            return Err(Error::invalid(
                phase.locate("when"),
                "when",
                format!(
                    "`{full}`: a `{}` node's metrics.json never holds `{}` (it holds: {})",
                    up.mode,
                    path.join("."),
                    if holds.is_empty() {
                        "nothing below it".to_string()
                    } else {
                        holds.join(", ")
                    }
                ),
            )
            .with_hint(did_you_mean(last, close.iter().copied())));
        }
    }
    Ok(())
}

/// The ticker a data file's name announces: its leading run of capital
/// letters and digits before `_`, `-` or `.` (`SPY` for `SPY_D.csv`), if
/// the name starts with one; lower-case names announce nothing.
fn ticker_of(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    let head = stem.split(['_', '-', '.', ' ']).next()?;
    let ticker = !head.is_empty()
        && head.chars().any(|c| c.is_ascii_uppercase())
        && head
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    ticker.then(|| head.to_string())
}

fn symbols_match(node: &Node, phase: &PhaseIr) -> Result<(), Error> {
    let Some(data) = node.config.get("data") else {
        return Ok(());
    };
    let (Some(path), Some(Value::Array(symbols))) = (
        data.get("path").and_then(Value::as_str),
        data.get("symbols"),
    ) else {
        return Ok(());
    };
    let Some(ticker) = ticker_of(Path::new(path)) else {
        return Ok(());
    };
    match symbols.as_slice() {
        [Value::String(s)] if !s.eq_ignore_ascii_case(&ticker) => Err(Error::invalid(
            phase.locate("data.symbols"),
            "data.symbols",
            format!("`{s}` is not the symbol of `{path}`, whose name says `{ticker}`"),
        )
        .with_hint(Some(format!(
            "write `symbols: [{ticker}]`, or point `path:` at the {s} file"
        )))),
        _ => Ok(()),
    }
}

/// Bars a strategy needs before it can hold a position, and the key that
/// sets them.
fn warm_up(rule: &Rule) -> (usize, &'static str) {
    match *rule {
        Rule::Momentum { lookback, .. } => (lookback, "lookback"),
        Rule::SmaCrossover { slow, .. } => (slow, "slow"),
        Rule::Rsi { period, .. } => (period, "period"),
        Rule::Bollinger { period, .. } => (period, "period"),
        Rule::Breakout { period } => (period, "period"),
    }
}

/// Data rows of a file: its non-blank lines less a header line. Counting
/// the header as a row would only make the check more lenient. The read is
/// noted, so the graph cache compiles again when the file changes.
fn data_rows(file: &Path, reads: &Reads) -> Option<usize> {
    let bytes = reads.read(file).ok()?;
    let lines = bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .count();
    Some(lines.saturating_sub(1))
}

fn warm_up_fits(
    node: &Node,
    phase: &PhaseIr,
    bar_counts: &mut HashMap<PathBuf, Option<usize>>,
    reads: &Reads,
) -> Result<(), Error> {
    let Some(strategy) = node
        .config
        .get("strategy")
        .and_then(|s| Strategy::from_config(s).ok())
    else {
        return Ok(());
    };
    let (bars_needed, param) = warm_up(&strategy.rule);
    for file in &node.inputs {
        // Looked up before inserting: the trials of a grid share a file,
        // and a key is copied only for the first of them.
        let rows = match bar_counts.get(file) {
            Some(rows) => *rows,
            None => *bar_counts
                .entry(file.clone())
                .or_insert_with(|| data_rows(file, reads)),
        };
        let Some(rows) = rows else {
            continue;
        };
        if bars_needed >= rows {
            let in_grid = phase
                .config
                .get("grid")
                .and_then(Value::as_object)
                .is_some_and(|g| g.contains_key(param));
            let key = if in_grid {
                format!("grid.{param}")
            } else {
                format!("strategy.parameters.{param}")
            };
            return Err(Error::invalid(
                phase.locate(&key),
                key.clone(),
                format!(
                    "`{param}` {bars_needed} needs more bars than `{}` holds ({rows}): no position can ever be taken{}",
                    file.display(),
                    match &node.role {
                        Role::Trial { name, .. } => format!(" (in trial {name})"),
                        _ => String::new(),
                    }
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::schema::MODES;

    /// Whether `validate` lets a `when:` test `path` of a `mode` node.
    fn accepted(mode: &str, role: &Role, path: &str) -> bool {
        let Some(keys) = metric_keys(mode, role) else {
            return true;
        };
        let parts: Vec<&str> = path.split('.').collect();
        match keys.iter().find(|(k, _)| k == parts[0]) {
            None => false,
            Some((_, Some(sub))) => parts.get(1).is_none_or(|s| sub.iter().any(|k| k == s)),
            Some((_, None)) => true,
        }
    }

    #[test]
    fn every_documented_when_path_passes_validate() {
        for m in MODES.iter().filter(|m| m.name != "command") {
            let role = if m.name == "signal_generation" {
                Role::Gather { trials: 2 }
            } else {
                Role::Single
            };
            for path in m.condition_paths {
                assert!(accepted(m.name, &role, path), "{}: {path}", m.name);
            }
        }
    }

    #[test]
    fn new_outputs_are_known_to_the_when_check() {
        let single = Role::Single;
        for path in [
            "ruin",
            "undefined.sharpe",
            "slippage_bps",
            "benchmark.information_ratio",
        ] {
            assert!(accepted("backtest", &single, path), "{path}");
        }
        assert!(!accepted("backtest", &single, "benchmark.gamma"));
        let gather = Role::Gather { trials: 3 };
        assert!(accepted("signal_generation", &gather, "overfitting.pbo"));
        assert!(!accepted("signal_generation", &gather, "overfitting.pob"));
        assert!(accepted("signal_replay", &single, "lag_check.collapse"));
        assert!(accepted("signal_replay", &single, "overfitting.pbo"));
        assert!(!accepted("signal_replay", &single, "overfitting.pob"));
        assert!(accepted("walk_forward", &single, "oos.sharpe"));
        assert!(accepted("walk_forward", &single, "windows.purge"));
        assert!(!accepted("walk_forward", &single, "oos.sharp"));
        assert!(!accepted("walk_forward", &single, "sharpe"));
    }
}
