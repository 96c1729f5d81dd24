//! `analysis`: which parameters work best in which market regime.
//!
//! Reads the trials of the upstream `signal_generation` phase
//! (`trials.json` + `signals/`) and the bars of its own inherited `data:`
//! (one symbol), labels every bar with each of `classifiers:` (default
//! `[volatility, momentum]`, see [`crate::market::classifier`]), and
//! measures every trial on the bars of every regime
//! ([`crate::market::regime`]). The best trial per regime is the one with
//! the highest `objective` (default `sharpe`), ties to the lowest index.
//!
//! **Train only.** Regime figures and winners are measured on the train
//! part of the workflow's `split:` (inherited, default 0.8: the bars before
//! s = ⌊N·0.8⌋, the same split `signal_replay` uses), so that a selection
//! made from them (`select: regime_winners`) never saw the test bars. The
//! labels files still cover every bar: a label at bar t uses data up to t
//! only.
//!
//! Writes:
//! - `regimes.json`: `{objective, symbol, trials, classifiers: {<name>:
//!   {parameters, counts: {<label>: bars}, regimes: {<label>: {bars,
//!   best: {trial, name, params, sharpe, total_return, max_drawdown,
//!   objective}}}}}}`;
//! - `labels_<classifier>.csv`: `ts,label` for every bar (`warmup` before
//!   the classifier is defined);
//! - `regime_metrics.csv`: `classifier,regime,trial,name,bars,sharpe,
//!   total_return,max_drawdown,volatility` for every trial and regime;
//! - `metrics.json`: `best` (the highest per-regime objective over all
//!   classifiers: `{classifier, regime, trial, name, sharpe, objective}`),
//!   and per classifier `{best, <label>: {trial, name, sharpe}}`;
//! - `trials.json` and `signals/` copied from upstream, so that a
//!   downstream `signal_replay` that sees only this node finds them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::backtest::{fixed, issue_error};
use super::signal_generation::{TrialRecord, load_trials, signal_file};
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role, Upstream};
use super::{artifacts, config, data, upstream};
use crate::market::classifier::{Classifier, WARMUP};
use crate::market::metrics::ranks_above;
use crate::market::regime::regime_metrics;
use crate::market::{Bars, Metrics, Objective, equity};

pub struct Analysis;

/// The `classifiers:` list (default: volatility and momentum).
pub fn classifiers(config: &Value) -> Result<Vec<Classifier>, ConfigIssue> {
    let list = match config.get("classifiers") {
        None | Some(Value::Null) => vec![json!("volatility"), json!("momentum")],
        Some(Value::Array(a)) => a.clone(),
        Some(one @ (Value::String(_) | Value::Object(_))) => vec![one.clone()],
        Some(_) => return Err(ConfigIssue::new("classifiers", "expected a list")),
    };
    let mut out: Vec<Classifier> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let c = Classifier::from_config(v)
            .map_err(|e| config::spec_issue(&format!("classifiers.{i}"), e))?;
        if out.iter().any(|o| o.kind() == c.kind()) {
            return Err(ConfigIssue::new(
                format!("classifiers.{i}"),
                format!("classifier `{}` is listed twice", c.kind()),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

pub fn objective(config: &Value) -> Result<Objective, ConfigIssue> {
    match config.get("objective") {
        None | Some(Value::Null) => Ok(Objective::Sharpe),
        Some(Value::String(s)) => Objective::parse(s).ok_or_else(|| {
            config::issue(
                "objective",
                format!(
                    "unknown objective `{s}` (known: {})",
                    Objective::NAMES.join(", ")
                ),
                crate::error::did_you_mean(s, Objective::NAMES.iter().copied()),
            )
        }),
        Some(_) => Err(ConfigIssue::new("objective", "expected a metric name")),
    }
}

/// The one symbol that analysis and replay work on.
pub fn one_symbol(config: &Value) -> Result<config::DataSpec, ConfigIssue> {
    let spec = config::data_spec(config, Path::new("."))?;
    if spec.symbols.len() != 1 {
        return Err(ConfigIssue::new(
            "data.symbols",
            format!(
                "this mode works on one symbol; {} are listed",
                spec.symbols.len()
            ),
        ));
    }
    Ok(spec)
}

impl Phase for Analysis {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "data",
            "strategy",
            "costs",
            "execution",
            "split",
            "classifiers",
            "objective",
        ])
    }

    fn version(&self) -> &'static str {
        "analysis-3"
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
        classifiers(config)?;
        objective(config)?;
        super::split::split(config)?;
        Ok(())
    }

    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        let classifiers: Vec<Value> = classifiers(&config)?
            .iter()
            .map(|c| {
                let mut normal = c.parameters();
                normal["type"] = json!(c.kind());
                normal
            })
            .collect();
        let objective = objective(&config)?;
        let mut m = config::normal::without_strategy(config, config::normal::SELECTING)?;
        m.insert("classifiers".into(), Value::Array(classifiers));
        m.insert("objective".into(), json!(objective.name()));
        Ok(Value::Object(m))
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(config::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let spec = config::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
        let fee = config::fee(ctx.config).map_err(issue_error)?;
        let classifiers = classifiers(ctx.config).map_err(issue_error)?;
        let objective = objective(ctx.config).map_err(issue_error)?;
        let bars = data::load_bars(&spec, ctx.log)?.remove(0);
        let up = upstream::upstream_of(ctx.upstream, "signal_generation").ok_or_else(|| {
            PhaseError::bad_input("analysis needs an upstream `signal_generation` phase")
        })?;
        let (records, positions) = load_trials(up, &bars.symbol, &bars.ts_text)?;
        copy_trials(up, ctx.out_dir, &records)?;
        writeln!(ctx.log, "{} trials from {}", records.len(), up.node)?;
        let split = super::split::split(ctx.config).map_err(issue_error)?;
        let split_at = split
            .parts(&bars.ts)
            .map_err(PhaseError::bad_input)?
            .train_end;
        writeln!(
            ctx.log,
            "regimes are measured on the train part: {split_at} bars before {}",
            bars.ts_text[split_at.min(bars.len() - 1)]
        )?;
        let result = analyse(
            &bars,
            &records,
            &positions,
            fee,
            &classifiers,
            objective,
            split_at,
        );
        for c in &classifiers {
            let labels = c.classify(&bars);
            let mut csv = String::from("ts,label\n");
            for (t, l) in bars.ts_text.iter().zip(&labels) {
                let _ = writeln!(csv, "{t},{}", c.label_name(*l));
            }
            artifacts::write_file(ctx.out_dir, &format!("labels_{}.csv", c.kind()), &csv)?;
        }
        artifacts::write_file(ctx.out_dir, "regime_metrics.csv", &result.table)?;
        artifacts::write_json(ctx.out_dir, "regimes.json", &result.regimes)?;
        for line in &result.log {
            writeln!(ctx.log, "{line}")?;
        }
        artifacts::write_json(ctx.out_dir, "metrics.json", &result.metrics)
    }
}

/// A metric as a CSV cell: empty where it is undefined.
pub fn csv_cell(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Copies `trials.json` and the signal files of `records`.
pub fn copy_trials(from: &Upstream, to: &Path, records: &[TrialRecord]) -> Result<(), PhaseError> {
    upstream::copy_upstream(from, "trials.json", to, "trials.json")?;
    for r in records {
        let name = signal_file(r.index);
        upstream::copy_upstream(from, &name, to, &name)?;
    }
    Ok(())
}

pub struct AnalysisResult {
    pub regimes: Value,
    pub metrics: Value,
    pub table: String,
    pub log: Vec<String>,
}

pub fn analyse(
    bars: &Bars,
    records: &[TrialRecord],
    positions: &[Vec<i8>],
    fee: f64,
    classifiers: &[Classifier],
    objective: Objective,
    train_end: usize,
) -> AnalysisResult {
    let ppy = bars.periods_per_year();
    let end = train_end.min(bars.len());
    let returns = equity::close_returns(&bars.close[..end]);
    // Only the train part: the winners chosen here feed selections whose
    // test figures must never have seen the test bars.
    let positions: Vec<&[i8]> = positions.iter().map(|p| &p[..end]).collect();
    let curves: Vec<Vec<f64>> = positions
        .par_iter()
        .map(|p| equity::equity_curve(&returns, p, fee))
        .collect();
    let mut table = String::from(
        "classifier,regime,trial,name,bars,sharpe,total_return,max_drawdown,volatility\n",
    );
    let mut by_classifier = Map::new();
    let mut metrics = Map::new();
    let mut log = Vec::new();
    let mut overall: Option<(Option<f64>, Value)> = None;
    for c in classifiers {
        let mut labels = c.classify(bars);
        labels.truncate(end);
        let mut counts = Map::new();
        for code in (0..c.labels().len() as u8).chain([WARMUP]) {
            let n = labels.iter().filter(|l| **l == code).count();
            counts.insert(c.label_name(code).into(), json!(n));
        }
        let mut regimes = Map::new();
        let mut summary = Map::new();
        let mut class_best: Option<(Option<f64>, Value)> = None;
        for (code, label) in c.labels().iter().enumerate() {
            let per_trial: Vec<Metrics> = curves
                .par_iter()
                .zip(&positions)
                .map(|(e, p)| regime_metrics(e, p, &labels, code as u8, ppy))
                .collect();
            for (r, m) in records.iter().zip(&per_trial) {
                let _ = writeln!(
                    table,
                    "{},{label},{},{},{},{},{},{},{}",
                    c.kind(),
                    r.index,
                    r.name,
                    m.bars,
                    csv_cell(m.sharpe),
                    m.total_return,
                    m.max_drawdown,
                    csv_cell(m.volatility)
                );
            }
            let mut best: Option<usize> = None;
            for (k, m) in per_trial.iter().enumerate() {
                if best.is_none_or(|b| ranks_above(objective.of(m), objective.of(&per_trial[b]))) {
                    best = Some(k);
                }
            }
            let bars_in = per_trial.first().map_or(0, |m| m.bars);
            let mut entry = Map::new();
            entry.insert("bars".into(), json!(bars_in));
            if let Some(b) = best {
                let (r, m) = (&records[b], &per_trial[b]);
                let value = objective.of(m);
                let shown = fixed(value, 1.0, 3, "");
                entry.insert(
                    "best".into(),
                    json!({
                        "trial": r.index, "name": r.name, "params": r.params,
                        "sharpe": m.sharpe, "total_return": m.total_return,
                        "max_drawdown": m.max_drawdown, "objective": value,
                    }),
                );
                let short = json!({
                    "classifier": c.kind(), "regime": label, "trial": r.index,
                    "name": r.name, "sharpe": m.sharpe, "objective": value,
                });
                summary.insert(
                    (*label).into(),
                    json!({"trial": r.index, "name": r.name, "sharpe": m.sharpe}),
                );
                log.push(format!(
                    "{} {label}: {bars_in} bars, best trial {} {} ({} {shown})",
                    c.kind(),
                    r.index,
                    r.name,
                    objective.name()
                ));
                if class_best
                    .as_ref()
                    .is_none_or(|(v, _)| ranks_above(value, *v))
                {
                    class_best = Some((value, short.clone()));
                }
                if overall.as_ref().is_none_or(|(v, _)| ranks_above(value, *v)) {
                    overall = Some((value, short));
                }
            }
            regimes.insert((*label).into(), Value::Object(entry));
        }
        if let Some((_, b)) = class_best {
            summary.insert("best".into(), b);
        }
        metrics.insert(c.kind().into(), Value::Object(summary));
        by_classifier.insert(
            c.kind().into(),
            json!({"parameters": c.parameters(), "counts": counts, "regimes": regimes}),
        );
    }
    if let Some((_, b)) = overall {
        metrics.insert("best".into(), b);
    }
    metrics.insert("trials".into(), json!(records.len()));
    metrics.insert("train_bars".into(), json!(end));
    metrics.insert("objective".into(), json!(objective.name()));
    AnalysisResult {
        regimes: json!({
            "objective": objective.name(),
            "symbol": bars.symbol,
            "trials": records.len(),
            "train_bars": end,
            "train_end_ts": bars.ts_text.get(end).cloned(),
            "classifiers": by_classifier,
        }),
        metrics: Value::Object(metrics),
        table,
        log,
    }
}
