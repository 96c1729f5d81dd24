//! `walk_forward`: re-select the best trial of an upstream
//! `signal_generation` sweep on rolling (or anchored) train windows and
//! measure it on the test window that follows each, so that every figure
//! of the stitched curve is out of sample.
//!
//! Config (bar counts; each fold's windows are over the per-bar returns
//! r_1..r_T of the trials, recomputed from their signals with the
//! inherited costs and fill):
//!
//! - `windows: {train: 756, test: 252, step: <test>, anchored: false,
//!   purge: 0}`: fold k trains on returns [k·step, k·step + train) (from 0
//!   when anchored), leaves `purge` returns out, then tests on the next
//!   `test` returns (the last fold may be shorter); `step` ≥ `test`, so no
//!   test return is counted twice;
//! - `objective` (default `sharpe`): the trial with the best train figure
//!   is chosen, ties to the lowest index, an undefined figure last.
//!
//! Writes `folds.csv` (one row per fold: its windows, the chosen trial,
//! its train objective and test Sharpe and return), `equity.csv`
//! (`ts,equity,fold`: the stitched out-of-sample curve, from 1 before the
//! first test return) and `metrics.json` (`oos`: the metrics of the
//! stitched curve, `folds`, `objective`, `windows`, and `per_fold`).
//!
//! The stitched curve switches trial at the start of each test window
//! without paying for the change of position that the switch would need;
//! each trial's own trades inside the window are paid for.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::analysis::{objective, one_symbol};
use super::backtest::{fixed, issue_error};
use super::common;
use super::signal_generation::{TrialRecord, trial_returns};
use super::{ConfigIssue, Phase, PhaseContext, PhaseError};
use crate::error::did_you_mean;
use crate::market::metrics::ranks_above;
use crate::market::{Metrics, Objective};

pub struct WalkForward;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Windows {
    pub train: usize,
    pub test: usize,
    pub step: usize,
    pub anchored: bool,
    pub purge: usize,
}

const WINDOW_KEYS: &[&str] = &["train", "test", "step", "anchored", "purge"];

pub fn windows(config: &Value) -> Result<Windows, ConfigIssue> {
    let empty = Map::new();
    let map = match config.get("windows") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ConfigIssue::new(
                "windows",
                "expected a map such as {train: 756, test: 252}",
            ));
        }
    };
    for key in map.keys() {
        if !WINDOW_KEYS.contains(&key.as_str()) {
            return Err(common::issue(
                format!("windows.{key}"),
                format!("unknown key `{key}` (known: {})", WINDOW_KEYS.join(", ")),
                did_you_mean(key, WINDOW_KEYS.iter().copied()),
            ));
        }
    }
    let count = |key: &str, default: u64, min: u64| match map.get(key) {
        None => Ok(default),
        Some(v) => v.as_u64().filter(|n| *n >= min).ok_or_else(|| {
            ConfigIssue::new(
                format!("windows.{key}"),
                format!("expected a whole number of bars ≥ {min}"),
            )
        }),
    };
    let train = count("train", 756, 2)? as usize;
    let test = count("test", 252, 1)? as usize;
    let step = count("step", test as u64, 1)? as usize;
    if step < test {
        return Err(ConfigIssue::new(
            "windows.step",
            format!(
                "a step of {step} bars would count test bars twice; use at least test ({test})"
            ),
        ));
    }
    let anchored = match map.get("anchored") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ConfigIssue::new(
                "windows.anchored",
                "expected true or false",
            ));
        }
    };
    Ok(Windows {
        train,
        test,
        step,
        anchored,
        purge: count("purge", 0, 0)? as usize,
    })
}

/// One fold: return indices (0-based into r_1..r_T) of its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Fold {
    pub train: std::ops::Range<usize>,
    pub test: std::ops::Range<usize>,
}

/// The folds over `t` returns.
pub fn folds(w: &Windows, t: usize) -> Vec<Fold> {
    let mut out = Vec::new();
    for k in 0.. {
        let end = k * w.step + w.train;
        let test_start = end + w.purge;
        if test_start >= t {
            break;
        }
        let start = if w.anchored { 0 } else { k * w.step };
        out.push(Fold {
            train: start..end,
            test: test_start..(test_start + w.test).min(t),
        });
    }
    out
}

fn compound(returns: &[f64]) -> Vec<f64> {
    let mut e = Vec::with_capacity(returns.len() + 1);
    e.push(1.0);
    for r in returns {
        let last = e[e.len() - 1];
        e.push(if last > 0.0 {
            (last * (1.0 + r)).max(0.0)
        } else {
            0.0
        });
    }
    e
}

/// The chosen trial per fold and the stitched out-of-sample returns.
pub fn walk(
    returns: &[Vec<f64>],
    folds: &[Fold],
    objective: Objective,
    ppy: f64,
) -> (Vec<(usize, Option<f64>)>, Vec<f64>) {
    let mut chosen = Vec::new();
    let mut oos = Vec::new();
    for f in folds {
        let mut best: Option<(usize, Option<f64>)> = None;
        for (k, r) in returns.iter().enumerate() {
            let figure = objective.of(&Metrics::from_equity(&compound(&r[f.train.clone()]), ppy));
            if best.is_none_or(|(_, b)| ranks_above(figure, b)) {
                best = Some((k, figure));
            }
        }
        if let Some((k, figure)) = best {
            chosen.push((k, figure));
            oos.extend_from_slice(&returns[k][f.test.clone()]);
        }
    }
    (chosen, oos)
}

impl Phase for WalkForward {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "data",
            "strategy",
            "costs",
            "execution",
            "windows",
            "objective",
        ])
    }

    fn inherits(&self) -> &'static [&'static str] {
        common::INHERITS
    }

    fn version(&self) -> &'static str {
        "walk_forward-1"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        one_symbol(config)?;
        common::fee(config)?;
        common::fill(config)?;
        windows(config)?;
        objective(config)?;
        Ok(())
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(common::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let spec = common::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
        let fee = common::fee(ctx.config).map_err(issue_error)?;
        let fill = common::fill(ctx.config).map_err(issue_error)?;
        let w = windows(ctx.config).map_err(issue_error)?;
        let objective = objective(ctx.config).map_err(issue_error)?;
        let bars = common::load_bars(&spec, ctx.log)?;
        let up = common::upstream_of(ctx.upstream, "signal_generation").ok_or_else(|| {
            PhaseError::bad_input("walk_forward needs an upstream `signal_generation` phase")
        })?;
        let records: Vec<TrialRecord> =
            serde_json::from_value(common::upstream_json(up, "trials.json")?)
                .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe("trials.json"))))?;
        let returns = trial_returns(up, &bars, fee, fill)?;
        let t = returns.first().map_or(0, Vec::len);
        let folds = folds(&w, t);
        if folds.is_empty() {
            return Err(PhaseError::bad_input(format!(
                "`windows`: {} returns are too few for a train window of {} and a purge of {}",
                t, w.train, w.purge
            )));
        }
        let ppy = bars[0].periods_per_year();
        let (chosen, oos) = walk(&returns, &folds, objective, ppy);
        // Bar of return index i is i + 1.
        let ts = &bars[0].ts_text;
        let mut table = String::from(
            "fold,train_start,train_end,test_start,test_end,trial,name,train_objective,test_sharpe,test_total_return\n",
        );
        let mut per_fold = Vec::new();
        let mut csv = String::from("ts,equity,fold\n");
        let equity = compound(&oos);
        let _ = writeln!(csv, "{},1,", ts[folds[0].test.start]);
        let mut at = 1;
        for (k, (f, (trial, figure))) in folds.iter().zip(&chosen).enumerate() {
            let test = Metrics::from_equity(&compound(&returns[*trial][f.test.clone()]), ppy);
            let r = &records[*trial];
            let _ = writeln!(
                table,
                "{k},{},{},{},{},{},{},{},{},{}",
                ts[f.train.start],
                ts[f.train.end],
                ts[f.test.start],
                ts[f.test.end],
                r.index,
                r.name,
                figure.map(|v| v.to_string()).unwrap_or_default(),
                test.sharpe.map(|v| v.to_string()).unwrap_or_default(),
                test.total_return
            );
            per_fold.push(json!({
                "fold": k,
                "train": [ts[f.train.start], ts[f.train.end]],
                "test": [ts[f.test.start], ts[f.test.end]],
                "trial": r.index,
                "name": r.name,
                "train_objective": figure,
                "test_sharpe": test.sharpe,
                "test_total_return": test.total_return,
            }));
            for i in f.test.clone() {
                let _ = writeln!(csv, "{},{},{k}", ts[i + 1], equity[at]);
                at += 1;
            }
        }
        let m = Metrics::from_equity(&equity, ppy);
        writeln!(
            ctx.log,
            "{} folds (train {}, test {}, step {}{}, purge {}): out-of-sample sharpe {}, total return {:.2}% over {} returns",
            folds.len(),
            w.train,
            w.test,
            w.step,
            if w.anchored { ", anchored" } else { "" },
            w.purge,
            fixed(m.sharpe, 1.0, 3, ""),
            m.total_return * 100.0,
            oos.len()
        )?;
        common::log_notes(ctx.log, "out of sample", &m)?;
        common::write_file(ctx.out_dir, "folds.csv", &table)?;
        common::write_file(ctx.out_dir, "equity.csv", &csv)?;
        common::write_json(
            ctx.out_dir,
            "metrics.json",
            &json!({
                "oos": common::metrics_map(&m),
                "folds": folds.len(),
                "objective": objective.name(),
                "windows": {"train": w.train, "test": w.test, "step": w.step, "anchored": w.anchored, "purge": w.purge},
                "per_fold": per_fold,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_and_anchored_folds() {
        let w = windows(&json!({"windows": {"train": 4, "test": 2, "purge": 1}})).unwrap();
        let f = folds(&w, 12);
        assert_eq!(
            f,
            vec![
                Fold {
                    train: 0..4,
                    test: 5..7
                },
                Fold {
                    train: 2..6,
                    test: 7..9
                },
                Fold {
                    train: 4..8,
                    test: 9..11
                },
                Fold {
                    train: 6..10,
                    test: 11..12
                },
            ]
        );
        let a = Windows {
            anchored: true,
            ..w
        };
        assert!(folds(&a, 12).iter().all(|f| f.train.start == 0));
        let e = windows(&json!({"windows": {"train": 4, "test": 3, "step": 2}})).unwrap_err();
        assert_eq!(e.key, "windows.step");
        let e = windows(&json!({"windows": {"trian": 4}})).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `train`?"));
    }

    #[test]
    fn each_fold_picks_on_its_train_window_only() {
        // Trial 0 wins the first half, trial 1 the second.
        let a: Vec<f64> = (0..20)
            .map(|i| {
                if i < 10 {
                    0.01 + (i % 2) as f64 * 0.001
                } else {
                    -0.01
                }
            })
            .collect();
        let b: Vec<f64> = (0..20)
            .map(|i| {
                if i < 10 {
                    -0.01
                } else {
                    0.01 + (i % 2) as f64 * 0.001
                }
            })
            .collect();
        let w = Windows {
            train: 6,
            test: 4,
            step: 4,
            anchored: false,
            purge: 0,
        };
        let f = folds(&w, 20);
        let (chosen, oos) = walk(&[a.clone(), b.clone()], &f, Objective::TotalReturn, 252.0);
        let picks: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        // Fold 0 trains on 0..6 (trial 0), fold 2 on 8..14 (trial 1).
        assert_eq!(picks, vec![0, 0, 1, 1]);
        assert_eq!(oos.len(), 14);
        assert_eq!(&oos[..4], &a[6..10]);
        assert_eq!(&oos[8..12], &b[14..18]);
    }
}
