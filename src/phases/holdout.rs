//! `holdout`: the one phase that sees the sealed holdout (`data.holdout`).
//!
//! Every other mode loads the data without its held-out bars, so nothing
//! upstream (trials, regimes, weights, reports) ever saw them. This phase
//! takes what an upstream `backtest` or `signal_replay` decided, replays
//! it over all the bars with the inherited costs and fill, and measures
//! the held-out part only (equity rebased to 1 at the close before it):
//!
//! - `backtest`: its strategy and parameters (from its `metrics.json`);
//! - `signal_replay`: its chosen trials and weights (`weights.json`), the
//!   strategy type from the `signal_generation` sweep it replays, which
//!   must be a direct upstream too. With weights per regime
//!   (`per_regime:`), the analysis the replay read its regimes from must
//!   be a direct upstream as well: every bar is labelled again by the same
//!   classifier (declared parameters, each label from bars up to its own),
//!   checked against the labels the analysis saved before the holdout,
//!   and each held-out bar votes with the weights its regime chose on the
//!   train part.
//!
//! Strategies and the vote decide bar t from bars up to t only, so the
//! positions before the holdout are those the upstream traded.
//!
//! Writes `metrics.json` (`{source, mode, from_ts, bars, holdout:
//! {metrics}, benchmark: {metrics, alpha, beta, information_ratio,
//! excess_return}, per_regime: {classifier, bars: {<label>: held-out
//! bars}} or null}`), `equity.csv` and `benchmark.csv` over the held-out
//! bars (the first row is the close before them). How many builds have
//! looked is counted in the run ledger and printed after each build.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::analysis::one_symbol;
use super::backtest::fixed;
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role, Upstream};
use super::{artifacts, config, data, driver, upstream};
use crate::market::benchmark::relative;
use crate::market::classifier::{Classifier, WARMUP};
use crate::market::ensemble::Ensemble;
use crate::market::equity::Fill;
use crate::market::{Bars, Metrics, Strategy, equity};

pub struct Holdout;

impl Phase for Holdout {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(config::INHERITS)
    }

    fn relative_paths(&self) -> &'static [&'static str] {
        config::DATA_PATHS
    }

    fn inherits(&self) -> &'static [&'static str] {
        config::INHERITS
    }

    fn version(&self) -> &'static str {
        "holdout-2"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        let spec = one_symbol(config)?;
        if spec.holdout.is_none() {
            return Err(ConfigIssue::new(
                "data.holdout",
                "a holdout phase needs `data.holdout` (the held-out fraction, or the date it starts)",
            ));
        }
        config::check_costs(config)
    }

    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        // The strategy replayed is the upstream's, read from its
        // metrics.json.
        config::normal::without_strategy(config, config::normal::MARKET).map(Value::Object)
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(config::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let config::Market { spec, fee, fill } = config::market(ctx.config, ctx.base_dir)?;
        let (bars, at) = data::load_bars_and_holdout(&spec, ctx.log)?.remove(0);
        let at = at.ok_or_else(|| PhaseError::bad_input("`data.holdout` is not set"))?;
        let direct: Vec<&Upstream> = ctx
            .upstream
            .iter()
            .filter(|u| !matches!(u.role, Role::Trial { .. }))
            .collect();
        let source = direct
            .iter()
            .find(|u| u.mode == "signal_replay")
            .or_else(|| direct.iter().find(|u| u.mode == "backtest"))
            .ok_or_else(|| {
                PhaseError::bad_input("holdout needs an upstream `backtest` or `signal_replay`")
            })?;
        let mut held_regimes = None;
        let (decided, fill) = if source.mode == "backtest" {
            let m = upstream::upstream_json(source, "metrics.json")?;
            let strategy = Strategy::from_config(&json!({
                "type": m["strategy"],
                "parameters": m["params"],
            }))
            .map_err(|e| {
                PhaseError::new(format!(
                    "{}: {}",
                    source.describe("metrics.json"),
                    e.message
                ))
            })?;
            (strategy.positions(&bars), fill)
        } else {
            if fill != Fill::Close {
                return Err(PhaseError::bad_input(
                    "an ensemble is replayed at the close; set `execution: {fill: close}`",
                ));
            }
            let (positions, regimes) = ensemble_positions(source, &direct, &bars, fee)?;
            held_regimes = regimes;
            (positions, fill)
        };
        let run = driver::run(&bars, decided, fee, fill);
        same_positions(source, &run.positions[..at])?;
        let n = bars.len();
        let ppy = bars.periods_per_year();
        let part = |curve: &[f64]| -> Vec<f64> {
            let base = curve[at - 1];
            if base > 0.0 {
                curve[at - 1..].iter().map(|x| x / base).collect()
            } else {
                vec![0.0; n - at + 1]
            }
        };
        let e = part(&run.equity);
        let inside: Vec<_> = run
            .trades
            .iter()
            .filter(|t| t.exit >= at)
            .cloned()
            .collect();
        let mut m = Metrics::from_equity(&e, ppy);
        m.bars = (n - at) as u64;
        m.add_positions_after(run.positions[at - 1], &run.positions[at..], &inside);
        let held = driver::run(&bars, vec![1; n], fee, fill);
        let b = part(&held.equity);
        let mut bench = serde_json::to_value(relative(&e, &b, ppy))?;
        bench["name"] = json!("buy_and_hold");
        bench["metrics"] = Value::Object(artifacts::metrics_map(&Metrics::from_equity(&b, ppy)));
        writeln!(
            ctx.log,
            "holdout of {} ({}): {} bars from {}: sharpe {}, total return {:.2}%; buy-and-hold sharpe {}",
            source.node,
            source.mode,
            n - at,
            bars.ts_text[at],
            fixed(m.sharpe, 1.0, 3, ""),
            m.total_return * 100.0,
            fixed(bench["metrics"]["sharpe"].as_f64(), 1.0, 3, "")
        )?;
        artifacts::log_notes(ctx.log, "holdout", &m)?;
        let mut regimes = Value::Null;
        if let Some((c, labels)) = &held_regimes {
            let mut counts = serde_json::Map::new();
            for code in (0..c.labels().len() as u8).chain([WARMUP]) {
                let bars = labels[at..].iter().filter(|l| **l == code).count();
                if bars > 0 {
                    counts.insert(c.label_name(code).into(), json!(bars));
                }
            }
            writeln!(
                ctx.log,
                "held-out bars per {} regime (weights chosen per regime on the train part): {}",
                c.kind(),
                Value::Object(counts.clone())
            )?;
            regimes = json!({"classifier": c.kind(), "bars": counts});
        }
        let ts: Vec<&str> = bars.ts_text[at - 1..].iter().map(String::as_str).collect();
        artifacts::write_file(
            ctx.out_dir,
            "equity.csv",
            &artifacts::equity_csv(&ts, &e, Some(&run.positions[at - 1..])),
        )?;
        artifacts::write_file(
            ctx.out_dir,
            "benchmark.csv",
            &artifacts::equity_csv(&ts, &b, None),
        )?;
        artifacts::write_json(
            ctx.out_dir,
            "metrics.json",
            &json!({
                "source": source.node,
                "mode": source.mode,
                "from_ts": bars.ts_text[at],
                "bars": n - at,
                "holdout": artifacts::metrics_map(&m),
                "benchmark": bench,
                "per_regime": regimes,
            }),
        )
    }
}

/// Checks that the replay reproduces the positions `source` held on
/// every bar before the holdout (its `equity.csv`), so that the held-out
/// figures are those of what it decided, with the same costs and fill.
fn same_positions(source: &Upstream, replayed: &[i8]) -> Result<(), PhaseError> {
    let text = upstream::upstream_text(source, "equity.csv")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let Some(col) = header.iter().position(|h| *h == "position") else {
        return Ok(());
    };
    let held: Vec<i8> = lines
        .filter_map(|l| l.split(',').nth(col).and_then(|p| p.parse().ok()))
        .collect();
    match held.iter().zip(replayed).position(|(a, b)| a != b) {
        _ if held.len() != replayed.len() => Err(PhaseError::new(format!(
            "{} holds {} bars before the holdout, the data {}",
            source.describe("equity.csv"),
            held.len(),
            replayed.len()
        ))),
        Some(t) => Err(PhaseError::new(format!(
            "replaying {} gives position {} at bar {t} where it held {}: are its costs and fill the ones this phase inherits?",
            source.node, replayed[t], held[t]
        ))),
        None => Ok(()),
    }
}

/// The positions an upstream ensemble decides over all of `bars`: its
/// chosen trials rerun from their parameters, voted with its weights.
/// A classifier and the label of every bar.
type Labelled = (Classifier, Vec<u8>);

/// With weights per regime, also the classifier and every bar's label.
fn ensemble_positions(
    replay: &Upstream,
    direct: &[&Upstream],
    bars: &Bars,
    fee: f64,
) -> Result<(Vec<i8>, Option<Labelled>), PhaseError> {
    let w = upstream::upstream_json(replay, "weights.json")?;
    let sweep = direct
        .iter()
        .find(|u| u.mode == "signal_generation")
        .ok_or_else(|| {
            PhaseError::bad_input(format!(
                "holdout of an ensemble needs the sweep it replays as a direct upstream too (depends_on: [SWEEP, {}])",
                replay.node
            ))
        })?;
    let kind = upstream::upstream_json(sweep, "metrics.json")?["strategy"].clone();
    let mut signals = Vec::new();
    let mut weights = Vec::new();
    for s in w["signals"].as_array().into_iter().flatten() {
        let strategy = Strategy::from_config(&json!({"type": kind, "parameters": s["params"]}))
            .map_err(|e| {
                PhaseError::new(format!(
                    "{}: {}",
                    replay.describe("weights.json"),
                    e.message
                ))
            })?;
        signals.push(strategy.positions(bars));
        weights.push(s["weight"].as_f64().unwrap_or(0.0));
    }
    if signals.is_empty() {
        return Err(PhaseError::new(format!(
            "{} lists no signal",
            replay.describe("weights.json")
        )));
    }
    let threshold = w["threshold"].as_f64().unwrap_or(0.5);
    let returns = equity::close_returns(&bars.close);
    let ensemble = Ensemble::new(&signals, returns, fee, bars.periods_per_year(), threshold);
    let Some(per_regime) = w.get("per_regime") else {
        return Ok((ensemble.positions(&weights), None));
    };
    let (classifier, labels) = regime_labels(replay, per_regime, direct, bars)?;
    // Each regime's weights, in the order of the global ones (a regime
    // without train bars enough lists the global weights).
    let mut per_label = Vec::new();
    for label in classifier.labels() {
        let listed = per_regime["regimes"][*label]["weights"].as_array();
        let by_trial = |trial: &Value| {
            listed
                .into_iter()
                .flatten()
                .find(|x| x["trial"] == *trial)
                .and_then(|x| x["weight"].as_f64())
        };
        let weights: Option<Vec<f64>> = w["signals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| by_trial(&s["trial"]))
            .collect();
        let weights = weights.ok_or_else(|| {
            PhaseError::new(format!(
                "{}: regime `{label}` does not weigh every signal",
                replay.describe("weights.json")
            ))
        })?;
        per_label.push(Some(weights));
    }
    let positions = ensemble.regime_positions(&weights, &per_label, &labels);
    Ok((positions, Some((classifier, labels))))
}

/// The regime of every bar, holdout included, by the classifier the
/// replay chose its weights per regime of: its parameters from the
/// upstream `analysis`, which must be a direct upstream too. A label at
/// bar t uses bars up to t only, and the classifier's parameters are
/// declared, not fitted, so the labels before the holdout are those the
/// analysis saved from the bars it saw (checked here).
fn regime_labels(
    replay: &Upstream,
    per_regime: &Value,
    direct: &[&Upstream],
    bars: &Bars,
) -> Result<(Classifier, Vec<u8>), PhaseError> {
    let name = per_regime["classifier"].as_str().unwrap_or_default();
    let analysis = direct
        .iter()
        .find(|u| u.mode == "analysis")
        .ok_or_else(|| {
            PhaseError::bad_input(format!(
                "{} chooses weights per regime: the holdout needs the analysis it read the regimes of as a direct upstream too (depends_on: [SWEEP, ANALYSIS, {}])",
                replay.node, replay.node
            ))
        })?;
    let regimes = upstream::upstream_json(analysis, "regimes.json")?;
    let parameters = regimes["classifiers"][name]["parameters"].clone();
    let spec = if parameters.is_object() {
        json!({ name: parameters })
    } else {
        json!(name)
    };
    let classifier = Classifier::from_config(&spec).map_err(|e| {
        PhaseError::new(format!(
            "{}: classifier `{name}`: {}",
            analysis.describe("regimes.json"),
            e.message
        ))
    })?;
    let labels = classifier.classify(bars);
    let file = format!("labels_{name}.csv");
    let saved = upstream::upstream_text(analysis, &file)?;
    for (n, line) in saved.lines().enumerate().skip(1) {
        let (ts, label) = line.rsplit_once(',').unwrap_or((line, ""));
        let t = n - 1;
        let ours = labels
            .get(t)
            .map_or("", |&code| classifier.label_name(code));
        if bars.ts_text.get(t).map(String::as_str) != Some(ts) || ours != label {
            return Err(PhaseError::new(format!(
                "{}:{}: the analysis labelled {ts} `{label}`, the holdout's classifier `{ours}`",
                analysis.describe(&file),
                n + 1
            )));
        }
    }
    Ok((classifier, labels))
}
