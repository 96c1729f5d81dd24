//! `backtest`: one strategy over the inherited `data:`.
//!
//! Writes `metrics.json` (the metrics of [`crate::market::metrics`] as
//! fractions, plus `strategy`, `params`, `fee`, `symbols`), `equity.csv`
//! (`ts,equity,position`) and `trades.csv` (every round trip). With several
//! symbols each runs on its own and the top-level figures are those of the
//! equal-weight portfolio ([`crate::market::portfolio`]); per-symbol
//! metrics sit under `per_symbol`, `equity.csv` holds the portfolio
//! (`ts,equity`) and `equity_<symbol>.csv` each symbol.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::common::{self, Run};
use super::{ConfigIssue, Phase, PhaseContext, PhaseError};
use crate::market::portfolio::{self, Leg};
use crate::market::{Bars, Frequency, Metrics};

pub struct Backtest;

impl Phase for Backtest {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&["data", "strategy", "costs"])
    }

    fn version(&self) -> &'static str {
        "backtest-1"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        common::data_spec(config, Path::new("."))?;
        common::strategy(config)?;
        common::fee(config)?;
        Ok(())
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(common::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let spec = common::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
        let strategy = common::strategy(ctx.config).map_err(issue_error)?;
        let fee = common::fee(ctx.config).map_err(issue_error)?;
        let bars = common::load_bars(&spec, ctx.log)?;
        let runs: Vec<Run> = bars
            .iter()
            .map(|b| common::run(b, strategy.positions(b), fee))
            .collect();
        let name = common::trial_name(ctx.config, &strategy);
        for (b, r) in bars.iter().zip(&runs) {
            log_run(ctx.log, &b.symbol, &name, &r.metrics)?;
        }
        let (metrics, per_symbol) = write_runs(Some(ctx.out_dir), &bars, &runs)?;
        let mut m = common::metrics_map(&metrics);
        m.insert("strategy".into(), json!(strategy.kind()));
        m.insert("params".into(), strategy.parameters());
        m.insert("fee".into(), json!(fee));
        m.insert("symbols".into(), json!(spec.symbols));
        if let Some(per) = per_symbol {
            m.insert("per_symbol".into(), per);
        }
        common::write_json(ctx.out_dir, "metrics.json", &Value::Object(m))
    }
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
        "{symbol} {name}: total return {:.2}%, sharpe {:.3}, max drawdown {:.2}%, {} entries, exposure {:.1}%",
        m.total_return * 100.0,
        m.sharpe,
        m.max_drawdown * 100.0,
        m.entries,
        m.exposure * 100.0
    )?;
    Ok(())
}

/// Writes `equity.csv` and `trades.csv` of the runs into `out` (when
/// given); returns the headline metrics (the portfolio's for several
/// symbols) and the per-symbol map.
pub fn write_runs(
    out: Option<&Path>,
    bars: &[Bars],
    runs: &[Run],
) -> Result<(Metrics, Option<Value>), PhaseError> {
    let trade_rows: Vec<(&Bars, &[_])> = bars
        .iter()
        .zip(runs)
        .map(|(b, r)| (b, r.trades.as_slice()))
        .collect();
    if let Some(out) = out {
        common::write_file(out, "trades.csv", &common::trades_csv(&trade_rows))?;
    }
    if let ([b], [r]) = (bars, runs) {
        if let Some(out) = out {
            let ts: Vec<&str> = b.ts_text.iter().map(String::as_str).collect();
            let csv = common::equity_csv(&ts, &r.equity, Some(&r.positions));
            common::write_file(out, "equity.csv", &csv)?;
        }
        return Ok((r.metrics.clone(), None));
    }
    let mut per = serde_json::Map::new();
    for (b, r) in bars.iter().zip(runs) {
        if let Some(out) = out {
            let ts: Vec<&str> = b.ts_text.iter().map(String::as_str).collect();
            let csv = common::equity_csv(&ts, &r.equity, Some(&r.positions));
            common::write_file(out, &format!("equity_{}.csv", b.symbol), &csv)?;
        }
        per.insert(
            b.symbol.clone(),
            Value::Object(common::metrics_map(&r.metrics)),
        );
    }
    let legs: Vec<Leg> = bars
        .iter()
        .zip(runs)
        .map(|(b, r)| Leg {
            ts: &b.ts,
            equity: &r.equity,
        })
        .collect();
    let (timeline, equity) = portfolio::equal_weight(&legs);
    let ts_num: Vec<i64> = timeline.iter().map(|&(k, i)| bars[k].ts[i]).collect();
    let ts: Vec<&str> = timeline
        .iter()
        .map(|&(k, i)| bars[k].ts_text[i].as_str())
        .collect();
    if let Some(out) = out {
        common::write_file(out, "equity.csv", &common::equity_csv(&ts, &equity, None))?;
    }
    let mut m = Metrics::from_equity(&equity, Frequency::detect(&ts_num).periods_per_year());
    let n = runs.len() as f64;
    let closed: u64 = runs.iter().map(|r| r.metrics.trades).sum();
    let wins = runs
        .iter()
        .flat_map(|r| &r.trades)
        .filter(|t| t.closed && t.ret > 0.0)
        .count();
    m.entries = runs.iter().map(|r| r.metrics.entries).sum();
    m.trades = closed;
    m.win_rate = if closed > 0 {
        wins as f64 / closed as f64
    } else {
        0.0
    };
    m.exposure = runs.iter().map(|r| r.metrics.exposure).sum::<f64>() / n;
    m.turnover = runs.iter().map(|r| r.metrics.turnover).sum::<f64>() / n;
    Ok((m, Some(Value::Object(per))))
}
