//! `signal_replay`: combine saved signals into a weighted-vote ensemble
//! without recomputing any strategy ([`crate::market::ensemble`]).
//!
//! Reads the trials of the upstream `signal_generation` phase (or the copy
//! an upstream `analysis` holds) and the closes of its own inherited
//! `data:` (one symbol). Config:
//!
//! - `select`: `all` (default), `{top: N}` (the N trials with the best
//!   objective on the train part, kept in index order) or
//!   `regime_winners` (every trial that is best in some regime of the
//!   upstream analysis);
//! - `weights`: `{method: grid, step: 0.1}` (default) or `{method: random,
//!   samples: 10000, seed: 7}` ([`crate::market::weights`]);
//! - `threshold` (0.5), `objective` (`sharpe`), `split` (0.8);
//! - `per_regime: <classifier>`: one weight vector per regime of that
//!   classifier, using the labels the upstream analysis saved.
//!
//! Writes `weights.json` (the chosen weights per selected trial, and per
//! regime), `metrics.json` (`train` and `test` metrics, `weightings`
//! evaluated, `signals`, `objective`, `score`) and `equity.csv`
//! (`ts,equity,position,part` over all bars). Train/test metrics follow
//! the split convention of the ensemble module; each part's win rate
//! counts the closed trades that exit inside it. The search rate goes to
//! the log only, never into an artifact.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::analysis::{objective, one_symbol};
use super::backtest::issue_error;
use super::common;
use super::signal_generation::{TrialRecord, load_trials};
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Upstream};
use crate::error::did_you_mean;
use crate::market::classifier::{self, Classifier, WARMUP};
use crate::market::ensemble::{Ensemble, Scope};
use crate::market::trades::round_trips;
use crate::market::weights::{self, Weights};
use crate::market::{Bars, Metrics, Objective, equity};

pub struct SignalReplay;

#[derive(Clone, Debug, PartialEq)]
pub enum Select {
    All,
    Top(usize),
    RegimeWinners,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Grid { step: f64 },
    Random { samples: usize, seed: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReplayConfig {
    pub select: Select,
    pub method: Method,
    pub threshold: f64,
    pub objective: Objective,
    pub split: f64,
    pub per_regime: Option<String>,
}

const SELECT_NAMES: &[&str] = &["all", "regime_winners", "top"];
const WEIGHT_KEYS: &[&str] = &["method", "step", "samples", "seed"];

pub fn replay_config(config: &Value) -> Result<ReplayConfig, ConfigIssue> {
    let select = match config.get("select") {
        None | Some(Value::Null) => Select::All,
        Some(Value::String(s)) if s == "all" => Select::All,
        Some(Value::String(s)) if s == "regime_winners" => Select::RegimeWinners,
        Some(Value::String(s)) => {
            return Err(common::issue(
                "select",
                format!("unknown selection `{s}` (all, {{top: N}}, regime_winners)"),
                did_you_mean(s, SELECT_NAMES.iter().copied()),
            ));
        }
        Some(Value::Object(m)) => match m.get("top").and_then(Value::as_u64) {
            Some(n) if n >= 1 && m.len() == 1 => Select::Top(n as usize),
            _ => {
                return Err(ConfigIssue::new(
                    "select.top",
                    "expected {top: N} with N ≥ 1",
                ));
            }
        },
        Some(_) => {
            return Err(ConfigIssue::new(
                "select",
                "expected all, {top: N} or regime_winners",
            ));
        }
    };
    let method = match config.get("weights") {
        None | Some(Value::Null) => Method::Grid { step: 0.1 },
        Some(Value::Object(m)) => {
            for key in m.keys() {
                if !WEIGHT_KEYS.contains(&key.as_str()) {
                    return Err(common::issue(
                        format!("weights.{key}"),
                        format!("unknown key `{key}`"),
                        did_you_mean(key, WEIGHT_KEYS.iter().copied()),
                    ));
                }
            }
            match m.get("method").and_then(Value::as_str).unwrap_or("grid") {
                "grid" => {
                    let step = common::number_at(
                        &json!(m),
                        "step",
                        0.1,
                        |s| s > 0.0 && s <= 1.0,
                        "a step in (0, 1]",
                    )
                    .map_err(|e| ConfigIssue::new("weights.step", e.message))?;
                    // The grid counts whole steps: 1/step must be a whole
                    // number, or the weights could not sum to 1.
                    let units = 1.0 / step;
                    if (units - units.round()).abs() > 1e-9 * units.max(1.0) {
                        return Err(common::issue(
                            "weights.step",
                            format!("{step} does not divide 1 (1/{step} = {units:.4})"),
                            Some(format!(
                                "use a step such as {} or {}",
                                1.0 / units.floor(),
                                1.0 / units.ceil()
                            )),
                        ));
                    }
                    Method::Grid { step }
                }
                "random" => {
                    let count = |key: &str, default: u64| match m.get(key) {
                        None => Ok(default),
                        Some(v) => v.as_u64().ok_or_else(|| {
                            ConfigIssue::new(
                                format!("weights.{key}"),
                                "expected a whole number ≥ 0",
                            )
                        }),
                    };
                    Method::Random {
                        samples: count("samples", 10_000)?.max(1) as usize,
                        seed: count("seed", 0)?,
                    }
                }
                other => {
                    return Err(common::issue(
                        "weights.method",
                        format!("unknown method `{other}` (grid or random)"),
                        did_you_mean(other, ["grid", "random"]),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ConfigIssue::new(
                "weights",
                "expected {method: grid, step: 0.1} or {method: random, samples: N, seed: S}",
            ));
        }
    };
    let threshold = common::number_at(
        config,
        "threshold",
        0.5,
        |t| (0.0..=1.0).contains(&t),
        "a threshold in [0, 1]",
    )?;
    let split = common::number_at(
        config,
        "split",
        0.8,
        |s| s > 0.0 && s < 1.0,
        "a fraction in (0, 1)",
    )?;
    let per_regime = match config.get("per_regime") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if !classifier::TYPES.contains(&s.as_str()) {
                return Err(common::issue(
                    "per_regime",
                    format!("unknown classifier `{s}`"),
                    did_you_mean(s, classifier::TYPES.iter().copied()),
                ));
            }
            Some(s.clone())
        }
        Some(_) => return Err(ConfigIssue::new("per_regime", "expected a classifier name")),
    };
    Ok(ReplayConfig {
        select,
        method,
        threshold,
        objective: objective(config)?,
        split,
        per_regime,
    })
}

impl Phase for SignalReplay {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "data",
            "strategy",
            "costs",
            "select",
            "weights",
            "threshold",
            "objective",
            "split",
            "per_regime",
        ])
    }

    fn version(&self) -> &'static str {
        "signal_replay-1"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        one_symbol(config)?;
        common::fee(config)?;
        replay_config(config)?;
        Ok(())
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(common::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let spec = common::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
        let fee = common::fee(ctx.config).map_err(issue_error)?;
        let rc = replay_config(ctx.config).map_err(issue_error)?;
        let bars = common::load_bars(&spec, ctx.log)?.remove(0);
        let analysis = common::upstream_of(ctx.upstream, "analysis");
        let source = common::upstream_of(ctx.upstream, "signal_generation")
            .or(analysis)
            .ok_or_else(|| {
                PhaseError::bad_input(
                    "signal_replay needs an upstream `signal_generation` (or `analysis`) phase",
                )
            })?;
        let (records, dense) = load_trials(source, &bars.symbol, &bars.ts_text)?;
        writeln!(ctx.log, "{} trials from {}", records.len(), source.node)?;
        let out = replay(&bars, &records, &dense, fee, &rc, analysis, ctx.log)?;
        common::write_json(ctx.out_dir, "weights.json", &out.weights)?;
        common::write_json(ctx.out_dir, "metrics.json", &out.metrics)?;
        common::write_file(ctx.out_dir, "equity.csv", &out.equity_csv)
    }
}

pub struct ReplayOutput {
    pub weights: Value,
    pub metrics: Value,
    pub equity_csv: String,
}

/// The trials that `select` keeps, in index order.
/// What the selection of trials looks at.
struct Pool<'a> {
    records: &'a [TrialRecord],
    dense: &'a [Vec<i8>],
    returns: &'a [f64],
    fee: f64,
    ppy: f64,
    /// The end of the train part.
    end: usize,
}

fn select(
    rc: &ReplayConfig,
    pool: &Pool<'_>,
    analysis: Option<&Upstream>,
) -> Result<Vec<usize>, PhaseError> {
    let Pool {
        records,
        dense,
        returns,
        fee,
        ppy,
        end,
    } = *pool;
    match &rc.select {
        Select::All => Ok((0..records.len()).collect()),
        Select::Top(n) => {
            let mut scored: Vec<(usize, f64)> = dense
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let e = equity::equity_curve(&returns[..end], &p[..end], fee);
                    (i, rc.objective.of(&Metrics::from_equity(&e, ppy)))
                })
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut keep: Vec<usize> = scored.iter().take(*n).map(|(i, _)| *i).collect();
            keep.sort_unstable();
            Ok(keep)
        }
        Select::RegimeWinners => {
            let up = analysis.ok_or_else(|| {
                PhaseError::bad_input("`select: regime_winners` needs an upstream `analysis` phase")
            })?;
            let regimes = common::upstream_json(up, "regimes.json")?;
            let mut keep = Vec::new();
            if let Some(Value::Object(cs)) = regimes.get("classifiers") {
                for c in cs.values() {
                    if let Some(Value::Object(rs)) = c.get("regimes") {
                        for r in rs.values() {
                            if let Some(t) = r.pointer("/best/trial").and_then(Value::as_u64) {
                                let pos = records.iter().position(|rec| rec.index == t as usize);
                                keep.extend(pos);
                            }
                        }
                    }
                }
            }
            keep.sort_unstable();
            keep.dedup();
            if keep.is_empty() {
                return Err(PhaseError::new(
                    "the upstream analysis names no regime winners",
                ));
            }
            Ok(keep)
        }
    }
}

/// Regime labels of `classifier` saved by the upstream analysis.
fn read_labels(
    up: &Upstream,
    name: &str,
    bars: &Bars,
) -> Result<(Classifier, Vec<u8>), PhaseError> {
    let c = Classifier::from_config(&json!(name)).map_err(|e| PhaseError::new(e.message))?;
    let file = format!("labels_{name}.csv");
    let text = common::upstream_text(up, &file)?;
    let mut labels = Vec::with_capacity(bars.len());
    for (n, line) in text.lines().enumerate().skip(1) {
        let (ts, label) = line.rsplit_once(',').unwrap_or((line, ""));
        let i = labels.len();
        if bars.ts_text.get(i).map(String::as_str) != Some(ts) {
            return Err(PhaseError::new(format!(
                "{}:{}: labels do not match the data's bars",
                up.describe(&file),
                n + 1
            )));
        }
        labels.push(
            c.labels()
                .iter()
                .position(|l| *l == label)
                .map_or(WARMUP, |p| p as u8),
        );
    }
    if labels.len() != bars.len() {
        return Err(PhaseError::new(format!(
            "{}: {} labels for {} bars",
            up.describe(&file),
            labels.len(),
            bars.len()
        )));
    }
    Ok((c, labels))
}

fn candidates(method: &Method, k: usize) -> Result<Weights, PhaseError> {
    match *method {
        Method::Grid { step } => weights::grid(k, step).map_err(PhaseError::new),
        Method::Random { samples, seed } => Ok(weights::random(k, samples, seed)),
    }
}

pub fn replay(
    bars: &Bars,
    records: &[TrialRecord],
    dense: &[Vec<i8>],
    fee: f64,
    rc: &ReplayConfig,
    analysis: Option<&Upstream>,
    log: &mut dyn std::io::Write,
) -> Result<ReplayOutput, PhaseError> {
    let n = bars.len();
    let ppy = bars.frequency().periods_per_year();
    let returns = equity::close_returns(&bars.close);
    let split_at = ((n as f64 * rc.split).floor() as usize).clamp(2, n.saturating_sub(1).max(2));
    if n < 4 {
        return Err(PhaseError::new(format!("{n} bars are too few to split")));
    }
    let pool = Pool {
        records,
        dense,
        returns: &returns,
        fee,
        ppy,
        end: split_at,
    };
    let chosen = select(rc, &pool, analysis)?;
    if chosen.is_empty() {
        return Err(PhaseError::new("no signals to combine"));
    }
    let signals: Vec<Vec<i8>> = chosen.iter().map(|&i| dense[i].clone()).collect();
    let ens = Ensemble::new(&signals, returns.clone(), fee, ppy, rc.threshold);
    let cands = candidates(&rc.method, chosen.len())?;
    let started = Instant::now();
    let scope = Scope {
        end: split_at,
        labels: None,
    };
    let best = ens
        .search(&cands, scope, rc.objective)
        .ok_or_else(|| PhaseError::new("no candidate weights"))?;
    let global = cands.row(best.index).to_vec();
    let mut evaluated = cands.count();
    let mut regime_json = Value::Null;
    let positions = match (&rc.per_regime, analysis) {
        (None, _) => ens.positions(&global),
        (Some(_), None) => {
            return Err(PhaseError::bad_input(
                "`per_regime` needs an upstream `analysis` phase (for its regime labels)",
            ));
        }
        (Some(name), Some(up)) => {
            let (c, labels) = read_labels(up, name, bars)?;
            let mut per_label = Vec::new();
            let mut regimes = Map::new();
            for (code, label) in c.labels().iter().enumerate() {
                let scope = Scope {
                    end: split_at,
                    labels: Some((&labels, code as u8)),
                };
                let train_bars = labels[..split_at - 1]
                    .iter()
                    .filter(|l| **l == code as u8)
                    .count();
                let found = if train_bars > 1 {
                    ens.search(&cands, scope, rc.objective)
                } else {
                    None
                };
                evaluated += cands.count();
                let w = found.as_ref().map(|b| cands.row(b.index).to_vec());
                regimes.insert(
                    (*label).into(),
                    json!({
                        "train_bars": train_bars,
                        "score": found.as_ref().map(|b| b.score),
                        "weights": w.as_ref().map(|w| weight_list(records, &chosen, w)),
                    }),
                );
                per_label.push(w);
            }
            regime_json = json!({"classifier": name, "regimes": regimes});
            ens.regime_positions(&global, &per_label, &labels)
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    writeln!(
        log,
        "searched {evaluated} weightings of {} signals in {:.3} s ({:.0} weightings/s)",
        chosen.len(),
        elapsed,
        evaluated as f64 / elapsed.max(1e-9)
    )?;
    let e = equity::equity_curve(&returns, &positions, fee);
    let trades = round_trips(&returns, &positions, fee);
    let train_trades: Vec<_> = trades
        .iter()
        .filter(|t| t.closed && t.exit < split_at)
        .cloned()
        .collect();
    let test_trades: Vec<_> = trades
        .iter()
        .filter(|t| t.exit >= split_at)
        .cloned()
        .collect();
    let mut train = Metrics::from_equity(&e[..split_at], ppy);
    train.add_positions(&positions[..split_at], &train_trades);
    let base = e[split_at - 1];
    let test_e: Vec<f64> = e[split_at - 1..].iter().map(|x| x / base).collect();
    let mut test = Metrics::from_equity(&test_e, ppy);
    test.bars = (n - split_at) as u64;
    test.add_positions_after(
        positions[split_at - 1],
        &positions[split_at..],
        &test_trades,
    );
    writeln!(
        log,
        "train ({} bars): sharpe {:.3}, total return {:.2}%; test ({} bars): sharpe {:.3}, total return {:.2}%",
        split_at,
        train.sharpe,
        train.total_return * 100.0,
        n - split_at,
        test.sharpe,
        test.total_return * 100.0
    )?;
    let method = match rc.method {
        Method::Grid { step } => json!({"method": "grid", "step": step}),
        Method::Random { samples, seed } => {
            json!({"method": "random", "samples": samples, "seed": seed})
        }
    };
    let mut weights = json!({
        "search": method,
        "candidates": cands.count(),
        "objective": rc.objective.name(),
        "threshold": rc.threshold,
        "split": rc.split,
        "split_index": split_at,
        "split_ts": bars.ts_text[split_at],
        "score": best.score,
        "signals": weight_list(records, &chosen, &global),
    });
    if !regime_json.is_null() {
        weights["per_regime"] = regime_json;
    }
    let metrics = json!({
        "train": common::metrics_map(&train),
        "test": common::metrics_map(&test),
        "weightings": evaluated,
        "signals": chosen.len(),
        "objective": rc.objective.name(),
        "score": best.score,
    });
    let mut csv = String::with_capacity(n * 40);
    csv.push_str("ts,equity,position,part\n");
    for t in 0..n {
        let part = if t < split_at { "train" } else { "test" };
        csv.push_str(&format!(
            "{},{},{},{part}\n",
            bars.ts_text[t], e[t], positions[t]
        ));
    }
    Ok(ReplayOutput {
        weights,
        metrics,
        equity_csv: csv,
    })
}

fn weight_list(records: &[TrialRecord], chosen: &[usize], w: &[f64]) -> Value {
    Value::Array(
        chosen
            .iter()
            .zip(w)
            .map(|(&i, &w)| json!({"trial": records[i].index, "name": records[i].name, "params": records[i].params, "weight": w}))
            .collect(),
    )
}
