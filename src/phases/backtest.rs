//! `backtest`: one strategy over the inherited `data:`.
//!
//! Writes `metrics.json` (the metrics of [`crate::market::metrics`] as
//! fractions, plus `strategy`, `params`, `fee`, `slippage_bps`, `fill`,
//! `symbols`), `equity.csv` (`ts,equity,position`, the position held) and `trades.csv` (every round trip). With several
//! symbols each runs on its own and the top-level figures are those of the
//! equal-weight portfolio ([`crate::market::portfolio`]); per-symbol
//! metrics sit under `per_symbol`, `benchmark` holds buy-and-hold of the
//! same bars (same costs and fill: its `metrics`, and the strategy's
//! `alpha`, `beta`, `information_ratio` and `excess_return` against it), `equity.csv` holds the portfolio
//! (`ts,equity`) and `equity_<symbol>.csv` each symbol. With one symbol
//! `benchmark.csv` (`ts,equity`) holds the buy-and-hold curve.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::driver::Run;
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role};
use super::{artifacts, config, data, driver};
use crate::market::benchmark::relative;
use crate::market::equity::Fill;
use crate::market::portfolio::{self, Leg};
use crate::market::{Bars, Frequency, Metrics};

pub struct Backtest;

impl Phase for Backtest {
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
        "backtest-4"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        config::data_spec(config, Path::new("."))?;
        config::strategy(config)?;
        config::check_costs(config)
    }

    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        config::normal::apply(config, config::normal::STRATEGY)
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(config::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let spec = config::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
        let strategy = config::strategy(ctx.config).map_err(issue_error)?;
        let fee = config::fee(ctx.config).map_err(issue_error)?;
        let (fee_only, slippage_bps) = config::costs(ctx.config).map_err(issue_error)?;
        let fill = config::fill(ctx.config).map_err(issue_error)?;
        let bars = data::load_bars(&spec, ctx.log)?;
        let runs: Vec<Run> = bars
            .iter()
            .map(|b| driver::run(b, strategy.positions(b), fee, fill))
            .collect();
        let name = config::trial_name(ctx.config, &strategy);
        for (b, r) in bars.iter().zip(&runs) {
            log_run(ctx.log, &b.symbol, &name, &r.metrics)?;
        }
        let (metrics, per_symbol) = write_runs(Some(ctx.out_dir), &bars, &runs)?;
        if per_symbol.is_some() {
            artifacts::log_notes(ctx.log, "portfolio", &metrics)?;
        }
        let mut m = artifacts::metrics_map(&metrics);
        m.insert("strategy".into(), json!(strategy.kind()));
        m.insert("params".into(), strategy.parameters());
        m.insert("fee".into(), json!(fee_only));
        m.insert("slippage_bps".into(), json!(slippage_bps));
        m.insert("fill".into(), json!(fill.name()));
        m.insert("symbols".into(), json!(spec.symbols));
        if let Some(per) = per_symbol {
            m.insert("per_symbol".into(), per);
        }
        let bench = benchmark(Some(ctx.out_dir), &bars, &runs, fee, fill)?;
        writeln!(
            ctx.log,
            "against buy-and-hold: excess return {:.2}%, beta {}, alpha {}, information ratio {}",
            bench["excess_return"].as_f64().unwrap_or(0.0) * 100.0,
            fixed(bench["beta"].as_f64(), 1.0, 3, ""),
            fixed(bench["alpha"].as_f64(), 100.0, 2, "%"),
            fixed(bench["information_ratio"].as_f64(), 1.0, 3, "")
        )?;
        m.insert("benchmark".into(), bench);
        artifacts::write_json(ctx.out_dir, "metrics.json", &Value::Object(m))
    }
}

/// The combined equity of `runs` (one per symbol of `bars`): the run's own
/// curve for one symbol, the equal-weight portfolio for several.
pub fn combined_equity(bars: &[Bars], runs: &[Run]) -> Vec<f64> {
    if let [r] = runs {
        return r.equity.clone();
    }
    let legs: Vec<Leg> = bars
        .iter()
        .zip(runs)
        .map(|(b, r)| Leg {
            ts: &b.ts,
            equity: &r.equity,
        })
        .collect();
    portfolio::equal_weight(&legs).1
}

/// Buy-and-hold of the same bars with the same costs and fill (long from
/// the first bar), its metrics and the strategy's figures against it
/// ([`crate::market::benchmark`]). With one symbol and `out` given, its
/// equity curve goes to `benchmark.csv` for the report to draw.
pub fn benchmark(
    out: Option<&Path>,
    bars: &[Bars],
    runs: &[Run],
    fee: f64,
    fill: Fill,
) -> Result<Value, PhaseError> {
    let held: Vec<Run> = bars
        .iter()
        .map(|b| driver::run(b, vec![1; b.len()], fee, fill))
        .collect();
    if let (Some(out), [b], [h]) = (out, bars, held.as_slice()) {
        let ts: Vec<&str> = b.ts_text.iter().map(String::as_str).collect();
        artifacts::write_file(
            out,
            "benchmark.csv",
            &artifacts::equity_csv(&ts, &h.equity, None),
        )?;
    }
    let (metrics, _) = write_runs(None, bars, &held)?;
    let rel = relative(
        &combined_equity(bars, runs),
        &combined_equity(bars, &held),
        metrics.periods_per_year,
    );
    let mut v = serde_json::to_value(&rel)?;
    v["name"] = json!("buy_and_hold");
    v["metrics"] = Value::Object(artifacts::metrics_map(&metrics));
    Ok(v)
}

pub fn issue_error(i: ConfigIssue) -> PhaseError {
    PhaseError::bad_input(format!("`{}`: {}", i.key, i.message))
}

pub fn log_run(
    log: &mut dyn std::io::Write,
    symbol: &str,
    name: &str,
    m: &Metrics,
) -> Result<(), PhaseError> {
    writeln!(
        log,
        "{symbol} {name}: total return {:.2}%, sharpe {}, max drawdown {:.2}%, {} entries, exposure {}",
        m.total_return * 100.0,
        fixed(m.sharpe, 1.0, 3, ""),
        m.max_drawdown * 100.0,
        m.entries,
        fixed(m.exposure, 100.0, 1, "%")
    )?;
    artifacts::log_notes(log, &format!("{symbol} {name}"), m)
}

/// `value × scale` with `digits` decimals and `unit`, or `null`.
pub fn fixed(value: Option<f64>, scale: f64, digits: usize, unit: &str) -> String {
    match value {
        Some(v) => format!("{:.digits$}{unit}", v * scale),
        None => "null".to_string(),
    }
}

/// Writes `equity.csv` and `trades.csv` of the runs into `out` (when
/// given); returns the headline metrics (the portfolio's for several
/// symbols) and the per-symbol map.
pub fn write_runs<B: std::borrow::Borrow<Bars>>(
    out: Option<&Path>,
    bars: &[B],
    runs: &[Run],
) -> Result<(Metrics, Option<Value>), PhaseError> {
    let trade_rows: Vec<(&Bars, &[_])> = bars
        .iter()
        .zip(runs)
        .map(|(b, r)| (b.borrow(), r.trades.as_slice()))
        .collect();
    if let Some(out) = out {
        artifacts::write_file(out, "trades.csv", &artifacts::trades_csv(&trade_rows))?;
    }
    if let ([b], [r]) = (bars, runs) {
        let b = b.borrow();
        if let Some(out) = out {
            let ts: Vec<&str> = b.ts_text.iter().map(String::as_str).collect();
            let csv = artifacts::equity_csv(&ts, &r.equity, Some(&r.positions));
            artifacts::write_file(out, "equity.csv", &csv)?;
        }
        return Ok((r.metrics.clone(), None));
    }
    let mut per = serde_json::Map::new();
    for (b, r) in bars.iter().zip(runs) {
        let b = b.borrow();
        if let Some(out) = out {
            let ts: Vec<&str> = b.ts_text.iter().map(String::as_str).collect();
            let csv = artifacts::equity_csv(&ts, &r.equity, Some(&r.positions));
            artifacts::write_file(out, &format!("equity_{}.csv", b.symbol), &csv)?;
        }
        per.insert(
            b.symbol.clone(),
            Value::Object(artifacts::metrics_map(&r.metrics)),
        );
    }
    let legs: Vec<Leg> = bars
        .iter()
        .zip(runs)
        .map(|(b, r)| Leg {
            ts: &b.borrow().ts,
            equity: &r.equity,
        })
        .collect();
    let (timeline, equity) = portfolio::equal_weight(&legs);
    let ts_num: Vec<i64> = timeline
        .iter()
        .map(|&(k, i)| bars[k].borrow().ts[i])
        .collect();
    let ts: Vec<&str> = timeline
        .iter()
        .map(|&(k, i)| bars[k].borrow().ts_text[i].as_str())
        .collect();
    if let Some(out) = out {
        artifacts::write_file(
            out,
            "equity.csv",
            &artifacts::equity_csv(&ts, &equity, None),
        )?;
    }
    let ppy = bars[0]
        .borrow()
        .declared_periods_per_year
        .unwrap_or_else(|| Frequency::detect(&ts_num).periods_per_year());
    let mut m = Metrics::from_equity(&equity, ppy);
    let n = runs.len() as f64;
    // The portfolio's trades are all the symbols' trades.
    let all_trades: Vec<_> = runs.iter().flat_map(|r| r.trades.iter().cloned()).collect();
    m.add_positions(&[], &all_trades);
    m.entries = runs.iter().map(|r| r.metrics.entries).sum();
    let mean = |f: fn(&Metrics) -> Option<f64>| -> Option<f64> {
        let v: Option<Vec<f64>> = runs.iter().map(|r| f(&r.metrics)).collect();
        v.map(|v| v.iter().sum::<f64>() / n)
    };
    m.exposure = mean(|m| m.exposure);
    m.turnover = mean(|m| m.turnover);
    m.undefined.remove("exposure");
    m.undefined.remove("turnover");
    Ok((m, Some(Value::Object(per))))
}
