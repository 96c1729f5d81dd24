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
//!   classifier, using the labels the upstream analysis saved;
//! - `lag: N` (0): a robustness check that reruns the whole selection with
//!   every signal acted on N bars later and writes `lag_check` (the
//!   lagged train and test figures, and `collapse`: the lagged test Sharpe
//!   is undefined, or at most half of a positive original).
//!
//! Writes `weights.json` (the chosen weights per selected trial, and per
//! regime), `metrics.json` (`train` and `test` metrics, `weightings`
//! evaluated, `signals`, `objective`, `score`: the objective of the train
//! figures, and `benchmark`: buy-and-hold of the same bars and costs per
//! part, with the ensemble's alpha, beta, information ratio and excess
//! return against it), `equity.csv`
//! (`ts,equity,position,part` over all bars) and `benchmark.csv`
//! (`ts,equity`: the buy-and-hold curve over all bars). Train/test metrics follow
//! the split convention of the ensemble module; each part's win rate
//! counts the closed trades that exit inside it. The search rate goes to
//! the log only, never into an artifact.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::analysis::{objective, one_symbol};
use super::backtest::{fixed, issue_error};
use super::signal_generation::{TrialRecord, load_trials};
use super::split::Split;
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role, Upstream};
use super::{artifacts, config, data, upstream};
use crate::error::did_you_mean;
use crate::market::benchmark::relative;
use crate::market::classifier::{self, Classifier, WARMUP};
use crate::market::ensemble::{Ensemble, Scope, best_of};
use crate::market::metrics::rank_order;
use crate::market::overfitting;
use crate::market::regime::regime_metrics;
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
    pub split: Split,
    /// Whether to measure the PBO of the weight search (`pbo: true`).
    pub pbo: bool,
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
            return Err(config::issue(
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
            config::reject_unknown("weights", m, WEIGHT_KEYS)?;
            match m.get("method").and_then(Value::as_str).unwrap_or("grid") {
                "grid" => {
                    let step = config::number_at(
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
                        return Err(config::issue(
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
                    let samples = count("samples", 10_000)?.max(1);
                    if u128::from(samples) > weights::GRID_LIMIT {
                        return Err(ConfigIssue::new(
                            "weights.samples",
                            format!(
                                "{samples} is above the bound of {} candidates for one weight search",
                                weights::GRID_LIMIT
                            ),
                        ));
                    }
                    Method::Random {
                        samples: samples as usize,
                        seed: count("seed", 0)?,
                    }
                }
                other => {
                    return Err(config::issue(
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
    let threshold = config::number_at(
        config,
        "threshold",
        0.5,
        |t| (0.0..=1.0).contains(&t),
        "a threshold in [0, 1]",
    )?;
    let split = super::split::split(config)?;
    let per_regime = match config.get("per_regime") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if !classifier::TYPES.contains(&s.as_str()) {
                return Err(config::issue(
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
        pbo: match config.get("pbo") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ConfigIssue::new("pbo", "expected true or false")),
        },
        per_regime,
    })
}

impl Phase for SignalReplay {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "data",
            "strategy",
            "costs",
            "execution",
            "select",
            "weights",
            "threshold",
            "objective",
            "split",
            "per_regime",
            "lag",
            "pbo",
        ])
    }

    fn version(&self) -> &'static str {
        "signal_replay-4"
    }

    fn relative_paths(&self) -> &'static [&'static str] {
        config::DATA_PATHS
    }

    fn inherits(&self) -> &'static [&'static str] {
        config::INHERITS_WITH_SPLIT
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        one_symbol(config)?;
        config::fee(config)?;
        config::close_fill_only(config)?;
        replay_config(config)?;
        lag(config)?;
        Ok(())
    }

    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        let rc = replay_config(&config)?;
        let lag = lag(&config)?;
        let mut m = config::normal::without_strategy(config, config::normal::SELECTING)?;
        m.insert(
            "select".into(),
            match rc.select {
                Select::All => json!("all"),
                Select::RegimeWinners => json!("regime_winners"),
                Select::Top(n) => json!({ "top": n }),
            },
        );
        m.insert(
            "weights".into(),
            match rc.method {
                Method::Grid { step } => json!({"method": "grid", "step": step}),
                Method::Random { samples, seed } => {
                    json!({"method": "random", "samples": samples, "seed": seed})
                }
            },
        );
        m.insert("threshold".into(), json!(rc.threshold));
        m.insert("objective".into(), json!(rc.objective.name()));
        match rc.per_regime {
            Some(c) => m.insert("per_regime".into(), json!(c)),
            None => m.shift_remove("per_regime"),
        };
        m.insert("lag".into(), json!(lag));
        m.insert("pbo".into(), json!(rc.pbo));
        Ok(Value::Object(m))
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(config::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let spec = config::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
        let fee = config::fee(ctx.config).map_err(issue_error)?;
        let rc = replay_config(ctx.config).map_err(issue_error)?;
        let bars = data::load_bars(&spec, ctx.log)?.remove(0);
        let analysis = upstream::upstream_of(ctx.upstream, "analysis");
        let source = upstream::trial_source(ctx.upstream, "signal_replay", true)?;
        let (records, dense) = load_trials(source, &bars.symbol, &bars.ts_text)?;
        writeln!(ctx.log, "{} trials from {}", records.len(), source.node)?;
        let mut out = replay(&bars, &records, &dense, fee, &rc, analysis, ctx.log)?;
        let lag = lag(ctx.config).map_err(issue_error)?;
        if lag > 0 {
            let delayed: Vec<Vec<i8>> = dense.iter().map(|p| delay(p, lag)).collect();
            let mut quiet = Vec::new();
            let again = replay(&bars, &records, &delayed, fee, &rc, analysis, &mut quiet)?;
            let check = lag_check(lag, &out.metrics, &again.metrics);
            writeln!(
                ctx.log,
                "lag {lag}: test sharpe {} (without the lag {}){}",
                fixed(check["test_sharpe"].as_f64(), 1.0, 3, ""),
                fixed(out.metrics["test"]["sharpe"].as_f64(), 1.0, 3, ""),
                if check["collapse"] == true {
                    ": COLLAPSE, the result depends on acting on the very bar of the signal"
                } else {
                    ""
                }
            )?;
            out.metrics["lag_check"] = check;
        }
        artifacts::write_json(ctx.out_dir, "weights.json", &out.weights)?;
        artifacts::write_json(ctx.out_dir, "metrics.json", &out.metrics)?;
        artifacts::write_file(ctx.out_dir, "equity.csv", &out.equity_csv)?;
        artifacts::write_file(ctx.out_dir, "benchmark.csv", &out.benchmark_csv)
    }
}

/// `lag: N` (0 when absent, at most 20): rerun the whole selection with
/// every signal acted on N bars later, as a robustness check.
pub fn lag(config: &Value) -> Result<usize, ConfigIssue> {
    match config.get("lag") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= 20)
            .map(|n| n as usize)
            .ok_or_else(|| ConfigIssue::new("lag", "expected a whole number of bars from 0 to 20")),
    }
}

/// `p` acted on `lag` bars later (flat before).
pub fn delay(p: &[i8], lag: usize) -> Vec<i8> {
    let mut out = vec![0; p.len()];
    if lag < p.len() {
        out[lag..].copy_from_slice(&p[..p.len() - lag]);
    }
    out
}

/// The lagged rerun's figures and whether the result collapsed: its test
/// Sharpe ratio is undefined, or the original's was positive and the
/// lagged one is at most half of it.
pub fn lag_check(lag: usize, original: &Value, lagged: &Value) -> Value {
    let before = original["test"]["sharpe"].as_f64();
    let after = lagged["test"]["sharpe"].as_f64();
    let collapse = match (before, after) {
        (_, None) => true,
        (Some(b), Some(a)) if b > 0.0 => a <= b / 2.0,
        _ => false,
    };
    json!({
        "lag": lag,
        "train_sharpe": lagged["train"]["sharpe"],
        "test_sharpe": after,
        "test_total_return": lagged["test"]["total_return"],
        "collapse": collapse,
    })
}

pub struct ReplayOutput {
    pub weights: Value,
    pub metrics: Value,
    pub equity_csv: String,
    /// Buy-and-hold of the same bars and costs, `ts,equity`.
    pub benchmark_csv: String,
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
            let mut scored: Vec<(usize, Option<f64>)> = dense
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let e = equity::equity_curve(&returns[..end], &p[..end], fee);
                    (i, rc.objective.of(&Metrics::from_equity(&e, ppy)))
                })
                .collect();
            scored.sort_by(|a, b| rank_order(a.1, b.1).then(a.0.cmp(&b.0)));
            let mut keep: Vec<usize> = scored.iter().take(*n).map(|(i, _)| *i).collect();
            keep.sort_unstable();
            Ok(keep)
        }
        Select::RegimeWinners => {
            let up = analysis.ok_or_else(|| {
                PhaseError::bad_input("`select: regime_winners` needs an upstream `analysis` phase")
            })?;
            let regimes = upstream::upstream_json(up, "regimes.json")?;
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
    let text = upstream::upstream_text(up, &file)?;
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
        Method::Random { samples, seed } => {
            weights::random(k, samples, seed).map_err(PhaseError::new)
        }
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
    let ppy = bars.periods_per_year();
    let returns = equity::close_returns(&bars.close);
    if n < 4 {
        return Err(PhaseError::new(format!("{n} bars are too few to split")));
    }
    let parts = rc.split.parts(&bars.ts).map_err(PhaseError::bad_input)?;
    // Selection sees bars 0..split_at; the test part starts at test_at,
    // after the validation part when there is one.
    let (split_at, test_at) = (parts.train_end, parts.validation_end);
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
    let scores = ens.scores(&cands, scope, rc.objective);
    let best = best_of(&scores).ok_or_else(|| PhaseError::new("no candidate weights"))?;
    let global = cands.row(best.index).to_vec();
    let mut evaluated = cands.count();
    let mut regime_json = Value::Null;
    let mut regime_labels: Option<(Classifier, Vec<u8>)> = None;
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
                        "weights_used": if w.is_some() { "regime" } else { "global" },
                        "weights": weight_list(records, &chosen, w.as_deref().unwrap_or(&global)),
                    }),
                );
                per_label.push(w);
            }
            regime_json = json!({"classifier": name, "regimes": regimes});
            let positions = ens.regime_positions(&global, &per_label, &labels);
            regime_labels = Some((c, labels));
            positions
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
    let mut positions = positions;
    let e = equity::equity_curve(&returns, &positions, fee);
    if let Some(at) = equity::liquidate_at_ruin(&e, &mut positions) {
        writeln!(log, "ruin at {}: equity reached 0", bars.ts_text[at])?;
    }
    let trades = round_trips(&returns, &positions, fee);
    // The score of each regime is the objective of the weights actually
    // used on that regime's train returns, measured exactly.
    if let (Some((c, labels)), Some(Value::Object(regimes))) =
        (&regime_labels, regime_json.get_mut("regimes"))
    {
        for (code, label) in c.labels().iter().enumerate() {
            let m = regime_metrics(
                &e[..split_at],
                &positions[..split_at],
                &labels[..split_at],
                code as u8,
                ppy,
            );
            if let Some(entry) = regimes.get_mut(*label) {
                entry["score"] = json!(rc.objective.of(&m));
            }
        }
    }
    let train_trades: Vec<_> = trades
        .iter()
        .filter(|t| t.closed && t.exit < split_at)
        .cloned()
        .collect();
    let mut train = Metrics::from_equity(&e[..split_at], ppy);
    train.add_positions(&positions[..split_at], &train_trades);
    let (test_e, test) = later_part(&e, &positions, &trades, test_at, n, ppy);
    let validation = parts
        .has_validation()
        .then(|| later_part(&e, &positions, &trades, split_at, test_at, ppy).1);
    writeln!(
        log,
        "train ({} bars): sharpe {}, total return {:.2}%; test ({} bars): sharpe {}, total return {:.2}%",
        split_at,
        fixed(train.sharpe, 1.0, 3, ""),
        train.total_return * 100.0,
        n - test_at,
        fixed(test.sharpe, 1.0, 3, ""),
        test.total_return * 100.0
    )?;
    artifacts::log_notes(log, "train", &train)?;
    if let Some(v) = &validation {
        writeln!(
            log,
            "validation ({} bars): sharpe {}, total return {:.2}%",
            test_at - split_at,
            fixed(v.sharpe, 1.0, 3, ""),
            v.total_return * 100.0
        )?;
        artifacts::log_notes(log, "validation", v)?;
    }
    artifacts::log_notes(log, "test", &test)?;
    // How much of the chosen weighting's train Sharpe ratio is the luck of
    // trying `evaluated` weightings: the deflated Sharpe ratio over the
    // spread of the global search's scores.
    let overfit = if rc.objective == Objective::Sharpe {
        let root = ppy.sqrt();
        let per_bar: Vec<f64> = scores
            .iter()
            .filter(|s| s.is_finite())
            .map(|s| s / root)
            .collect();
        let train_returns = equity::strategy_returns(&e[..split_at]);
        let d = overfitting::deflated_sharpe(&train_returns, &per_bar, evaluated);
        let pbo = if rc.pbo {
            let pbo = ensemble_pbo(&ens, &cands, &returns, fee, split_at);
            writeln!(
                log,
                "overfitting: pbo of the weight search {} ({} weightings, {} blocks of the train part)",
                fixed(pbo.as_ref().map(|p| p.pbo), 1.0, 3, ""),
                cands.count(),
                ENSEMBLE_PBO_BLOCKS
            )?;
            pbo
        } else {
            None
        };
        let mut o = json!({
            "trials": evaluated,
            "dsr": d.as_ref().map(|d| d.deflated_sharpe),
            "sharpe_variance": d.as_ref().map(|d| d.sharpe_variance),
            "expected_max_sharpe": d.as_ref().map(|d| d.expected_max_sharpe),
            "min_backtest_years": d.as_ref().and_then(|d| overfitting::min_backtest_years(evaluated, d.sharpe * root)),
            "backtest_years": (split_at - 1) as f64 / ppy,
        });
        if rc.pbo {
            o["pbo"] = json!(pbo.as_ref().map(|p| p.pbo));
            o["pbo_blocks"] = json!(ENSEMBLE_PBO_BLOCKS);
            o["pbo_combinations"] = json!(pbo.as_ref().map(|p| p.combinations));
        }
        o
    } else {
        writeln!(
            log,
            "overfitting: the deflated Sharpe ratio needs `objective: sharpe`"
        )?;
        json!({"trials": evaluated, "dsr": null})
    };
    writeln!(
        log,
        "overfitting: {evaluated} weightings tried, deflated sharpe of the chosen one {}",
        fixed(overfit["dsr"].as_f64(), 1.0, 3, "")
    )?;
    // The train figure of the positions actually traded (with per-regime
    // weights, not the global search's best score).
    let score = rc.objective.of(&train);
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
        "split": rc.split.to_json(),
        "split_index": split_at,
        "split_ts": bars.ts_text[split_at],
        "score": score,
        "signals": weight_list(records, &chosen, &global),
    });
    if parts.has_validation() {
        weights["test_index"] = json!(test_at);
        weights["test_ts"] = json!(bars.ts_text[test_at]);
    }
    if !regime_json.is_null() {
        weights["per_regime"] = regime_json;
    }
    // Buy-and-hold of the same bars and costs, split the same way.
    let held = equity::equity_curve(&returns, &vec![1; n], fee);
    let rebased = |curve: &[f64], from: usize, to: usize| -> Vec<f64> {
        let base = curve[from - 1];
        if base > 0.0 {
            curve[from - 1..to].iter().map(|x| x / base).collect()
        } else {
            vec![0.0; to - from + 1]
        }
    };
    let part = |strategy: &[f64], bench: &[f64]| {
        let mut v = serde_json::to_value(relative(strategy, bench, ppy)).unwrap_or(Value::Null);
        v["metrics"] = Value::Object(artifacts::metrics_map(&Metrics::from_equity(bench, ppy)));
        v
    };
    let mut benchmark = json!({
        "name": "buy_and_hold",
        "train": part(&e[..split_at], &held[..split_at]),
        "test": part(&test_e, &rebased(&held, test_at, n)),
    });
    if parts.has_validation() {
        benchmark["validation"] = part(
            &rebased(&e, split_at, test_at),
            &rebased(&held, split_at, test_at),
        );
    }
    writeln!(
        log,
        "buy-and-hold: train sharpe {}, test sharpe {}",
        fixed(benchmark["train"]["metrics"]["sharpe"].as_f64(), 1.0, 3, ""),
        fixed(benchmark["test"]["metrics"]["sharpe"].as_f64(), 1.0, 3, "")
    )?;
    let mut metrics = json!({
        "overfitting": overfit,
        "benchmark": benchmark,
        "train": artifacts::metrics_map(&train),
        "test": artifacts::metrics_map(&test),
        "weightings": evaluated,
        "signals": chosen.len(),
        "objective": rc.objective.name(),
        "score": score,
    });
    if let Some(v) = &validation {
        metrics["validation"] = Value::Object(artifacts::metrics_map(v));
    }
    let mut csv = String::with_capacity(n * 40);
    csv.push_str("ts,equity,position,part\n");
    for t in 0..n {
        let part = parts.name(t);
        csv.push_str(&format!(
            "{},{},{},{part}\n",
            bars.ts_text[t], e[t], positions[t]
        ));
    }
    let ts: Vec<&str> = bars.ts_text.iter().map(String::as_str).collect();
    Ok(ReplayOutput {
        weights,
        metrics,
        equity_csv: csv,
        benchmark_csv: artifacts::equity_csv(&ts, &held, None),
    })
}

/// Blocks of the ensemble's CSCV: C(8, 4) = 70 in-sample choices, each
/// ranking every weighting searched (thousands), where a sweep's 16
/// blocks would rank its few trials 12,870 times.
pub const ENSEMBLE_PBO_BLOCKS: usize = 8;

/// The probability of backtest overfitting of choosing the global
/// weighting by train Sharpe ratio: CSCV over the train returns
/// r_1..r_{s−1} of every weighting in `cands` (block sums computed one
/// weighting at a time, so that they need not all be in memory).
fn ensemble_pbo(
    ens: &Ensemble,
    cands: &crate::market::weights::Weights,
    returns: &[f64],
    fee: f64,
    split_at: usize,
) -> Option<overfitting::Pbo> {
    let mut sums: Vec<overfitting::BlockSums> = Vec::with_capacity(cands.count());
    ens.each_positions(cands, split_at, |_, p| {
        sums.push(block_sums_of_positions(
            &returns[..split_at],
            p,
            fee,
            ENSEMBLE_PBO_BLOCKS,
        ));
    });

    overfitting::probability_of_overfitting_of_sums(&sums, split_at - 1, ENSEMBLE_PBO_BLOCKS)
}

/// `block_sums(strategy_returns(equity_curve(returns, positions, fee)))`
/// in one pass without the curve (the same operations in the same order,
/// so the same bits): thousands of weightings are cheap to cut into blocks.
fn block_sums_of_positions(
    returns: &[f64],
    positions: &[i8],
    fee: f64,
    blocks: usize,
) -> overfitting::BlockSums {
    let t = positions.len().saturating_sub(1);
    if blocks == 0 || t / blocks < 2 {
        return Vec::new();
    }
    let block_bars = t / blocks;
    let skip = t - block_bars * blocks;
    let mut sums = vec![(0.0, 0.0); blocks];
    let (mut prev, mut e, mut before) = (0i8, 1.0f64, 1.0f64);
    for (i, &p) in positions.iter().enumerate() {
        if e > 0.0 {
            if i > 0 {
                e *= 1.0 + f64::from(prev) * returns[i];
            }
            e *= 1.0 - fee * f64::from((p - prev).abs());
            if e <= 0.0 {
                e = 0.0;
            }
        }
        if i > skip {
            let r = e / before - 1.0;
            let b = &mut sums[(i - 1 - skip) / block_bars];
            b.0 += r;
            b.1 += r * r;
        }
        before = e;
        prev = p;
    }
    sums
}

/// The part of the replay over bars `from..to` (from ≥ 1): its equity
/// rebased to 1 at bar from − 1 and its metrics; a trade counts in it
/// when it exits inside (for the last part, when it is still open too).
/// Ruined before the part: it starts (and stays) at ruin.
fn later_part(
    e: &[f64],
    positions: &[i8],
    trades: &[crate::market::trades::Trade],
    from: usize,
    to: usize,
    ppy: f64,
) -> (Vec<f64>, Metrics) {
    let base = e[from - 1];
    let curve: Vec<f64> = if base > 0.0 {
        e[from - 1..to].iter().map(|x| x / base).collect()
    } else {
        vec![0.0; to - from + 1]
    };
    let inside: Vec<_> = trades
        .iter()
        .filter(|t| t.exit >= from && (t.exit < to || to == e.len()))
        .cloned()
        .collect();
    let mut m = Metrics::from_equity(&curve, ppy);
    m.bars = (to - from) as u64;
    m.add_positions_after(positions[from - 1], &positions[from..to], &inside);
    (curve, m)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sums_of_positions_are_those_of_the_curve() {
        let returns: Vec<f64> = (0..103)
            .map(|i| {
                if i == 0 {
                    0.0
                } else {
                    ((i * 37 % 11) as f64 - 5.0) / 300.0
                }
            })
            .collect();
        let positions: Vec<i8> = (0..103).map(|i| [1, 1, 0, -1, -1, 1][i * 7 % 6]).collect();
        let e = equity::equity_curve(&returns, &positions, 0.001);
        let want = overfitting::block_sums(&equity::strategy_returns(&e), 8);
        assert_eq!(want.len(), 8);
        assert_eq!(
            block_sums_of_positions(&returns, &positions, 0.001, 8),
            want
        );
    }

    #[test]
    fn delay_and_collapse() {
        assert_eq!(delay(&[1, -1, 0, 1], 1), vec![0, 1, -1, 0]);
        assert_eq!(delay(&[1, 1], 5), vec![0, 0]);
        let m = |s: Value| json!({"train": {"sharpe": 0.1}, "test": {"sharpe": s}});
        let collapsed = |a: Value, b: Value| lag_check(1, &m(a), &m(b))["collapse"] == true;
        assert!(!collapsed(json!(1.0), json!(0.6)));
        assert!(collapsed(json!(1.0), json!(0.5)));
        assert!(collapsed(json!(1.0), json!(-0.2)));
        assert!(collapsed(json!(1.0), Value::Null));
        // A result that was not positive cannot collapse further.
        assert!(!collapsed(json!(-0.3), json!(-0.9)));
        assert_eq!(lag(&json!({"lag": 21})).unwrap_err().key, "lag");
    }
}
