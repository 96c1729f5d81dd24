//! `signal_generation`: positions of one strategy over a parameter grid,
//! saved as sparse signal files for later phases to replay.
//!
//! The engine expands `grid:` into one [`Role::Trial`] node per combination
//! (config without `grid`, the combination merged into
//! `strategy.parameters`) and one [`Role::Gather`] node whose upstream are
//! the trials in index order.
//!
//! - A trial writes `signal.jsonl` ([`crate::market::signals`]) and
//!   `metrics.json`: its backtest metrics
//!   plus `index`, `name`, `strategy` and `params` (every parameter,
//!   defaults included).
//! - The gather node writes `signals/trial_N.jsonl` (the trials' own blobs),
//!   `trials.json` (a list of [`TrialRecord`]) and `metrics.json`:
//!   `{trials: count, strategy, best: {trial, name, sharpe, total_return,
//!   params}}`, best by Sharpe with ties to the lowest index and an
//!   undefined Sharpe ranked last ([`crate::market::metrics::ranks_above`]).
//!   `metrics.json` also holds `overfitting`: the deflated Sharpe ratio of
//!   the best trial given how many were tried, the probability of backtest
//!   overfitting of the sweep and the minimum backtest length
//!   ([`overfitting_stats`]).
//! - Without a grid ([`Role::Single`]) the one trial writes both sets,
//!   plus `equity.csv` and `trades.csv` like a backtest. Grid trials leave
//!   those out: a 1,000-trial sweep would store 170 MB of equity curves
//!   that any later phase recomputes from the signals in microseconds.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::backtest::{fixed, issue_error, log_run, write_runs};
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role};
use super::{config, data, driver, upstream};
use crate::error::did_you_mean;
use crate::market::equity::{Fill, Legs};
use crate::market::metrics::{add_term, ranks_above};
use crate::market::overfitting::{self, Moments};
use crate::market::portfolio::{self, Leg};
use crate::market::signals::sparse_changes;
use crate::market::{Metrics, equity, signals, strategy};

pub struct SignalGeneration;

/// One entry of `trials.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub index: usize,
    pub name: String,
    pub params: Value,
    pub metrics: Metrics,
}

/// The file name of trial `index` under `signals/`.
pub fn signal_file(index: usize) -> String {
    format!("signals/trial_{index}.jsonl")
}

impl Phase for SignalGeneration {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&["data", "strategy", "costs", "execution", "grid", "split"])
    }

    /// The split reaches the gather only (trials drop it): the gather
    /// ranks the trials on the train part for `train_best`.
    fn relative_paths(&self) -> &'static [&'static str] {
        config::DATA_PATHS
    }

    fn inherits(&self) -> &'static [&'static str] {
        config::INHERITS_WITH_SPLIT
    }

    fn version(&self) -> &'static str {
        "signal_generation-5"
    }

    fn expands_grid(&self) -> bool {
        true
    }

    /// A trial hands its signal and metrics over in memory, and the
    /// gather its trials' signals: a sweep of thousands of trials then
    /// creates no file per trial.
    fn writes_files(&self, role: &Role) -> bool {
        matches!(role, Role::Single)
    }

    /// Trials hand over their returns; the worker that ran them turns
    /// them into figures, four trials side by side.
    fn finish_handoffs(&self, handoffs: &mut [Option<super::Handoff>]) {
        finish_trial_handoffs(handoffs);
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        config::data_spec(config, Path::new("."))?;
        let s = config::strategy(config)?;
        config::fee(config)?;
        config::fill(config)?;
        super::split::split(config)?;
        match config.get("grid") {
            None | Some(Value::Null) => {}
            Some(Value::Object(grid)) => {
                let names = strategy::parameter_names(s.kind());
                for key in grid.keys().filter(|k| !k.contains('.')) {
                    if !names.contains(&key.as_str()) {
                        return Err(config::issue(
                            format!("grid.{key}"),
                            format!(
                                "`{key}` is not a parameter of `{}` (known: {})",
                                s.kind(),
                                names.join(", ")
                            ),
                            did_you_mean(key, names.iter().copied()),
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(ConfigIssue::new(
                    "grid",
                    "expected a map of parameter lists",
                ));
            }
        }
        Ok(())
    }

    /// A plain grid key is a strategy parameter.
    fn grid_key_path(&self, key: &str) -> Vec<String> {
        vec!["strategy".into(), "parameters".into(), key.to_string()]
    }

    /// Trials are named after the strategy type.
    fn trial_prefix(&self, config: &Value) -> Option<String> {
        let kind = config.get("strategy")?.get("type")?.as_str()?;
        Some(kind.to_string())
    }

    fn normalize(&self, config: Value, role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        let config = config::normal::apply(config, config::normal::STRATEGY)?;
        // A trial runs over every bar whatever the split (the grid took
        // it out); the gather, or a sweep without a grid, ranks by it.
        match role {
            Role::Trial { .. } => Ok(config),
            _ => config::normal::apply(config, &[config::normal::split]),
        }
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(config::data_spec(config, base_dir)?.files)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        match ctx.role.clone() {
            Role::Gather { trials } => gather(ctx, trials),
            Role::Trial { index, name } => trial(ctx, index, &name).map(|_| ()),
            Role::Single => {
                let record = trial(ctx, 0, "")?;
                let signal = ctx.memory.get("signal.jsonl").unwrap_or_default().to_vec();
                ctx.memory.put(&signal_file(0), signal);
                let records = vec![record];
                ctx.memory.put_json("trials.json", &json!(records))?;
                // The trial's own metrics plus the gather summary, so that
                // conditions such as `x.best.sharpe` work either way.
                let mut m: Value =
                    serde_json::from_slice(ctx.memory.get("metrics.json").unwrap_or(b"{}"))?;
                if let (Value::Object(m), Value::Object(s)) = (&mut m, summary(&records)) {
                    m.extend(s);
                }
                ctx.memory.put_json("metrics.json", &m)
            }
        }
    }
}

fn trial(ctx: &mut PhaseContext<'_>, index: usize, name: &str) -> Result<TrialRecord, PhaseError> {
    let spec = config::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
    let strategy = config::strategy(ctx.config).map_err(issue_error)?;
    let fee = config::fee(ctx.config).map_err(issue_error)?;
    let fill = config::fill(ctx.config).map_err(issue_error)?;
    let name = if name.is_empty() {
        config::trial_name(ctx.config, &strategy)
    } else {
        name.to_string()
    };
    let bars = data::load_bars_shared(&spec, ctx.log)?;
    let mut signal = String::new();
    let files = matches!(ctx.role, Role::Single).then_some(ctx.out_dir);
    let mut handed = None;
    let (metrics, per_symbol) = match (bars.as_slice(), files, fill) {
        // A grid trial of one symbol filled at the close writes no
        // curve or trades: only its metrics are needed.
        ([b], None, Fill::Close) => {
            let p = strategy.positions(b);
            b.signal_lines().write(&mut signal, &p);
            let (metrics, returns) =
                driver::close_fill_metrics_and_returns(b, &p, fee, &mut Vec::new());
            if let Some(returns) = returns {
                handed = handoff_for_gather(ctx.gather_config, b, returns, fee);
            }
            (metrics, None)
        }
        _ => {
            let mut runs = Vec::new();
            for b in &bars {
                let p = strategy.positions(b);
                b.signal_lines().write(&mut signal, &p);
                runs.push(driver::run(b, p, fee, fill));
            }
            write_runs(files, &bars, &runs)?
        }
    };
    ctx.memory.put("signal.jsonl", signal);
    log_run(ctx.log, &spec.symbols.join(","), &name, &metrics)?;
    let params = strategy.parameters();
    // Serialised straight from the metrics: the bytes of the map of
    // `artifacts::metrics_map` with these keys appended, without building it.
    let mut text = serde_json::to_vec_pretty(&TrialMetricsFile {
        metrics: &metrics,
        index,
        name: &name,
        strategy: strategy.kind(),
        params: &params,
        per_symbol: per_symbol.as_ref(),
    })?;
    text.push(b'\n');
    if let Some(figures) = handed {
        *ctx.handoff = Some(super::Handoff(std::sync::Arc::new(TrialHandoff {
            metrics: text.clone(),
            ..figures
        })));
    }
    ctx.memory.put("metrics.json", text);
    Ok(TrialRecord {
        index,
        name,
        params,
        metrics,
    })
}

/// A trial's `metrics.json`: its metrics, then `index`, `name`,
/// `strategy`, `params` and, for several symbols, `per_symbol`.
#[derive(Serialize)]
struct TrialMetricsFile<'a> {
    #[serde(flatten)]
    metrics: &'a Metrics,
    index: usize,
    name: &'a str,
    strategy: &'a str,
    params: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_symbol: Option<&'a Value>,
}

/// What a gather reads of a trial's `metrics.json` besides its metrics.
#[derive(Deserialize)]
struct TrialMetricsExtra {
    #[serde(default)]
    params: Value,
    #[serde(default)]
    strategy: Value,
}

/// What a trial run in this build hands its gather ([`super::Handoff`]):
/// the figures of its per-bar returns and its `metrics.json`, which the
/// gather would otherwise derive again from the trial's stored signal
/// and read back from the store. With them, what they were computed
/// from, for the gather to check against its own: the bars (the build's
/// shared copy, so the same parse of the same file), the fee and the end
/// of the train part. Only a trial of one symbol filled at the close
/// whose curve is the plain recursion's hands anything over.
struct TrialHandoff {
    bars: std::sync::Arc<crate::market::Bars>,
    fee_bits: u64,
    train_end: usize,
    figures: HandedFigures,
    /// How many returns the figures are of.
    returns: usize,
    metrics: Vec<u8>,
}

/// A trial's figures as it hands them over: its returns, until the
/// worker that ran it computes the figures of the trials it ran side by
/// side ([`Phase::finish_handoffs`]), so that no trial's returns reach
/// the coordinator.
enum HandedFigures {
    Returns(Vec<f64>),
    Figures(TrialFigures),
}

/// The [`TrialHandoff`] of a trial over `bars` whose per-bar returns are
/// `returns` with fee `fee`, for the gather of config `gather` (its split
/// gives the train part); `None` without a gather config or with a split
/// the gather would reject. Its `metrics` are left empty.
fn handoff_for_gather(
    gather: Option<&Value>,
    bars: &std::sync::Arc<crate::market::Bars>,
    returns: Vec<f64>,
    fee: f64,
) -> Option<TrialHandoff> {
    let split = super::split::split(gather?).ok()?;
    let train_end = split.parts(&bars.ts).ok()?.train_end;
    Some(TrialHandoff {
        bars: bars.clone(),
        fee_bits: fee.to_bits(),
        train_end,
        returns: returns.len(),
        figures: HandedFigures::Returns(returns),
        metrics: Vec::new(),
    })
}

/// The figures of the hand-offs among `handoffs` that still hold their
/// returns, [`FIGURE_LANES`] side by side where their lengths and train
/// parts agree, each alone otherwise; the returns are dropped.
fn finish_trial_handoffs(handoffs: &mut [Option<super::Handoff>]) {
    let mut open: Vec<&mut TrialHandoff> = handoffs
        .iter_mut()
        .flatten()
        .filter_map(|h| std::sync::Arc::get_mut(&mut h.0)?.downcast_mut::<TrialHandoff>())
        .filter(|h| matches!(h.figures, HandedFigures::Returns(_)))
        .collect();
    for group in open.chunks_mut(FIGURE_LANES) {
        let train_end = group[0].train_end;
        let figures: Vec<TrialFigures> = if group.iter().all(|h| h.train_end == train_end) {
            let returns: Vec<&[f64]> = group.iter().filter_map(|h| h.returns()).collect();
            figures_side_by_side(&returns, Some(train_end))
        } else {
            group.iter().map(|h| h.figures()).collect()
        };
        for (h, f) in group.iter_mut().zip(figures) {
            h.figures = HandedFigures::Figures(f);
        }
    }
}

impl TrialHandoff {
    /// The returns it still holds, before its figures are computed.
    fn returns(&self) -> Option<&[f64]> {
        match &self.figures {
            HandedFigures::Returns(r) => Some(r),
            HandedFigures::Figures(_) => None,
        }
    }

    /// Its figures, computed now if it still holds its returns.
    fn figures(&self) -> TrialFigures {
        match &self.figures {
            HandedFigures::Figures(f) => f.clone(),
            HandedFigures::Returns(r) => TrialFigures::of(r, Some(self.train_end)),
        }
    }
}

/// The figures of up to [`FIGURE_LANES`] trials' returns `returns`, side
/// by side when there are that many of one length, each alone otherwise:
/// the same bits either way.
fn figures_side_by_side(returns: &[&[f64]], train_end: Option<usize>) -> Vec<TrialFigures> {
    match <[&[f64]; FIGURE_LANES]>::try_from(returns) {
        Ok(lanes) if lanes.iter().all(|r| r.len() == lanes[0].len()) => {
            TrialFigures::of_lanes(lanes, train_end).into()
        }
        _ => returns
            .iter()
            .map(|r| TrialFigures::of(r, train_end))
            .collect(),
    }
}

/// The [`TrialHandoff`] of trial `up` when it holds what this gather
/// would compute: one symbol filled at the close (`curves`), the same
/// bars, fee and train part, and the trial's entry in this process's
/// store (its signal then passes on as the stored blob).
fn usable_handoff<'u>(
    up: &'u super::Upstream,
    curves: &[SymbolCurve<'_>],
    fee: f64,
    train_end: Option<usize>,
) -> Option<&'u TrialHandoff> {
    let h = up.handoff()?.get::<TrialHandoff>()?;
    let [c] = curves else { return None };
    let same = c.legs.is_none()
        && std::ptr::eq(&*h.bars, c.bars)
        && h.fee_bits == fee.to_bits()
        && train_end == Some(h.train_end)
        && up.open_entry().is_some();
    same.then_some(h)
}

/// What a gather takes of one trial: its record, its signal file (its
/// bytes only when they are not a blob of this process's store, which the
/// gather's output then names as it is) and the figures of its per-bar
/// returns.
struct GatheredTrial {
    record: TrialRecord,
    strategy: Value,
    signal: Option<Vec<u8>>,
    figures: TrialFigures,
    returns: usize,
}

/// [`GatheredTrial`] before its figures, its returns in a buffer.
struct ReadTrial {
    record: TrialRecord,
    strategy: Value,
    signal: Option<Vec<u8>>,
}

/// How many trials' figures are computed side by side
/// ([`TrialFigures::of_lanes`]).
const FIGURE_LANES: usize = 4;

/// Reads the trials `chunk` (at most [`FIGURE_LANES`]) from their
/// upstreams ([`gather_trial`]) and computes their figures side by side.
/// The first error in trial order is the one returned.
fn gather_chunk(
    chunk: &[(usize, &super::Upstream)],
    curves: &[SymbolCurve<'_>],
    fee: f64,
    train_end: Option<usize>,
    buffers: &mut GatherBuffers,
) -> Result<Vec<GatheredTrial>, PhaseError> {
    // Trials that ran in this build handed their figures over: nothing
    // of theirs is read back or derived again.
    let handed: Option<Vec<&TrialHandoff>> = chunk
        .iter()
        .map(|(_, up)| usable_handoff(up, curves, fee, train_end))
        .collect();
    if let Some(handed) = handed {
        return chunk
            .iter()
            .zip(handed)
            .map(|((index, up), h)| {
                let (record, strategy) = read_record(*index, up, &h.metrics)?;
                Ok(GatheredTrial {
                    record,
                    strategy,
                    signal: None,
                    figures: h.figures(),
                    returns: h.returns,
                })
            })
            .collect();
    }
    let read = chunk
        .iter()
        .zip(&mut buffers.returns)
        .map(|((index, up), returns)| {
            gather_trial(
                *index,
                up,
                curves,
                fee,
                (&mut buffers.changes, &mut buffers.equity, returns),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let returns = &buffers.returns[..chunk.len()];
    let figures = figures_side_by_side(
        &returns.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        train_end,
    );
    Ok(read
        .into_iter()
        .zip(figures)
        .zip(returns)
        .map(|((t, figures), r)| GatheredTrial {
            record: t.record,
            strategy: t.strategy,
            signal: t.signal,
            figures,
            returns: r.len(),
        })
        .collect())
}

/// Reads trial `index` from `up` and recomputes its per-bar returns from
/// its signal over `bars` ([`returns_of_trial`]) into `returns`, with the
/// buffers `changes` and `equity`.
fn gather_trial(
    index: usize,
    up: &super::Upstream,
    curves: &[SymbolCurve<'_>],
    fee: f64,
    (changes, equity, returns): (&mut Vec<(usize, i8)>, &mut Vec<f64>, &mut Vec<f64>),
) -> Result<ReadTrial, PhaseError> {
    let bytes = up
        .read("metrics.json")
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe("metrics.json"))))?;
    let (record, strategy) = read_record(index, up, &bytes)?;
    let file = "signal.jsonl";
    let signal = up
        .read(file)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(file))))?;
    let text = std::str::from_utf8(&signal)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(file))))?;
    let bad = |e: String| PhaseError::new(format!("{}: {e}", up.describe(file)));
    match curves {
        // One symbol filled at the close: the returns straight from the
        // changes and the shared bar returns.
        [c] if c.legs.is_none() => {
            let b = c.bars;
            sparse_changes(text, &b.symbol, b.len(), Some(&b.ts_text), changes).map_err(bad)?;
            equity::returns_of_changes(&c.close_returns, b.len(), changes, fee, (equity, returns));
        }
        _ => {
            let dense = curves
                .iter()
                .map(|c| {
                    signals::densify_text(text, &c.bars.symbol, c.bars.len(), Some(&c.bars.ts_text))
                        .map_err(bad)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let positions: Vec<&[i8]> = dense.iter().map(Vec::as_slice).collect();
            *returns = returns_of_trial(curves, &positions, fee);
        }
    }
    let signal = up.open_entry().is_none().then_some(signal);
    Ok(ReadTrial {
        record,
        strategy,
        signal,
    })
}

/// Trial `index`'s record and strategy, from the bytes of its
/// `metrics.json`: read into the structures straight from the bytes,
/// without a map of every key.
fn read_record(
    index: usize,
    up: &super::Upstream,
    bytes: &[u8],
) -> Result<(TrialRecord, Value), PhaseError> {
    let parse_error =
        |e: serde_json::Error| PhaseError::new(format!("{}: {e}", up.describe("metrics.json")));
    let metrics: Metrics = serde_json::from_slice(bytes).map_err(parse_error)?;
    let extra: TrialMetricsExtra = serde_json::from_slice(bytes).map_err(parse_error)?;
    let name = match &up.role {
        Role::Trial { name, .. } => name.clone(),
        _ => String::new(),
    };
    let record = TrialRecord {
        index,
        name,
        params: extra.params,
        metrics,
    };
    Ok((record, extra.strategy))
}

/// A gathering thread's buffers, reused from chunk to chunk: the returns
/// of each trial of a chunk.
#[derive(Default)]
struct GatherBuffers {
    changes: Vec<(usize, i8)>,
    equity: Vec<f64>,
    returns: [Vec<f64>; FIGURE_LANES],
}

fn gather(ctx: &mut PhaseContext<'_>, expected: usize) -> Result<(), PhaseError> {
    let mut trials: Vec<(usize, &super::Upstream)> = ctx
        .upstream
        .iter()
        .filter_map(|u| match &u.role {
            Role::Trial { index, .. } => Some((*index, u)),
            _ => None,
        })
        .collect();
    trials.sort_by_key(|(i, _)| *i);
    if trials.len() != expected {
        return Err(PhaseError::new(format!(
            "expected {expected} trials upstream, found {}",
            trials.len()
        )));
    }
    let spec = config::data_spec(ctx.config, ctx.base_dir).map_err(issue_error)?;
    let fee = config::fee(ctx.config).map_err(issue_error)?;
    let fill = config::fill(ctx.config).map_err(issue_error)?;
    // The log tells of the bars where the statistics that use them are.
    let mut bars_log = Vec::new();
    // The trials' shared bars: the same parse of the same file is what
    // lets their hand-offs be taken ([`usable_handoff`]).
    let bars = data::load_bars_shared(&spec, &mut bars_log)?;
    // The train part is defined for one symbol only.
    let train_end = match bars.as_slice() {
        [one] => {
            let split = super::split::split(ctx.config).map_err(issue_error)?;
            Some(
                split
                    .parts(&one.ts)
                    .map_err(PhaseError::bad_input)?
                    .train_end,
            )
        }
        _ => None,
    };
    let curves: Vec<SymbolCurve> = bars.iter().map(|b| SymbolCurve::new(b, fill)).collect();
    // Trial by trial in parallel, collected in trial order; the first
    // error in that order is the one reported.
    let gathered = trials
        .par_chunks(FIGURE_LANES)
        .map_init(GatherBuffers::default, |buffers, chunk| {
            gather_chunk(chunk, &curves, fee, train_end, buffers)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let returns = gathered.first().map_or(0, |g| g.returns);
    let strategy = gathered.first().map_or(Value::Null, |g| g.strategy.clone());
    let mut records = Vec::with_capacity(gathered.len());
    let mut figures = Vec::with_capacity(gathered.len());
    for (g, (_, up)) in gathered.into_iter().zip(&trials) {
        let name = signal_file(g.record.index);
        // The trial's blob itself, read and checked above: no copy of its
        // bytes is hashed and stored again.
        match g.signal {
            Some(bytes) => ctx.memory.put(&name, bytes),
            None if ctx.memory.put_upstream(&name, up, "signal.jsonl") => {}
            None => {
                return Err(PhaseError::new(format!(
                    "{} vanished",
                    up.describe("signal.jsonl")
                )));
            }
        }
        records.push(g.record);
        figures.push(g.figures);
    }
    ctx.memory.put("trials.json", trials_json(&records)?);
    let s = summary(&records);
    if let Some(best) = s.get("best") {
        writeln!(
            ctx.log,
            "{} trials; best by sharpe: trial {} {} (sharpe {}, total return {:.2}%)",
            records.len(),
            best["trial"],
            best["name"].as_str().unwrap_or(""),
            fixed(best["sharpe"].as_f64(), 1.0, 3, ""),
            best["total_return"].as_f64().unwrap_or(0.0) * 100.0
        )?;
    }
    ctx.log.write_all(&bars_log)?;
    let mut m = s;
    let ppy = bars[0].periods_per_year();
    let (stats, train_best) = overfitting(ctx, &records, &figures, returns, ppy, train_end)?;
    if let Value::Object(m) = &mut m {
        m.insert("overfitting".into(), stats);
        if let Some(t) = train_best {
            m.insert("train_best".into(), t);
        }
    }
    if let (Value::Object(m), false) = (&mut m, trials.is_empty()) {
        m.insert("strategy".into(), strategy);
    }
    ctx.memory.put_json("metrics.json", &m)
}

/// How many records one thread writes at a time into `trials.json`.
const RECORDS_PER_CHUNK: usize = 256;

/// `trials.json` of `records`: the bytes `put_json` writes for
/// `json!(records)`, written straight from the records (no tree of
/// values) and by chunks in parallel. A chunk written as an array is
/// `[` + `\n  record,` … + `\n]`, its records indented as in the whole
/// array, so the chunks' insides joined by commas are the whole array's
/// inside.
fn trials_json(records: &[TrialRecord]) -> Result<Vec<u8>, PhaseError> {
    if records.is_empty() {
        return Ok(b"[]\n".to_vec());
    }
    let chunks = records
        .par_chunks(RECORDS_PER_CHUNK)
        .map(serde_json::to_vec_pretty)
        .collect::<Result<Vec<_>, _>>()?;
    let mut text = Vec::with_capacity(chunks.iter().map(Vec::len).sum::<usize>() + 4);
    text.push(b'[');
    for (at, chunk) in chunks.iter().enumerate() {
        if at > 0 {
            text.push(b',');
        }
        // Without the chunk's `[` and `\n]`.
        text.extend_from_slice(&chunk[1..chunk.len() - 2]);
    }
    text.extend_from_slice(b"\n]\n");
    Ok(text)
}

/// Blocks of the combinatorially symmetric cross-validation (as in the
/// paper): C(16, 8) = 12,870 in-sample choices.
pub const PBO_BLOCKS: usize = 16;

/// One symbol's bars, ready to turn a trial's dense positions into the
/// equity curve [`driver::run`] computes for them (the same operations in
/// the same order, so the same bits), without the trades and metrics a
/// gather does not need.
struct SymbolCurve<'a> {
    bars: &'a crate::market::Bars,
    fill: Fill,
    close_returns: Vec<f64>,
    legs: Option<Legs>,
}

impl<'a> SymbolCurve<'a> {
    fn new(bars: &'a crate::market::Bars, fill: Fill) -> SymbolCurve<'a> {
        let (close_returns, legs) = match fill {
            Fill::Close => (equity::close_returns(&bars.close), None),
            Fill::NextOpen => (Vec::new(), Some(Legs::new(&bars.open, &bars.close, fill))),
        };
        SymbolCurve {
            bars,
            fill,
            close_returns,
            legs,
        }
    }

    fn equity(&self, positions: &[i8], fee: f64) -> Vec<f64> {
        match &self.legs {
            None => equity::equity_curve(&self.close_returns, positions, fee),
            Some(legs) => equity::equity_legs(legs, &equity::held(positions, self.fill), fee),
        }
    }
}

/// The per-bar strategy returns r_1..r_T of a trial whose dense
/// positions per symbol are `positions[symbol]` (the portfolio's for
/// several symbols, on one common timeline).
fn returns_of_trial(curves: &[SymbolCurve<'_>], positions: &[&[i8]], fee: f64) -> Vec<f64> {
    let curves_of: Vec<Vec<f64>> = curves
        .iter()
        .zip(positions)
        .map(|(c, p)| c.equity(p, fee))
        .collect();
    let equity = if let [one] = curves_of.as_slice() {
        std::borrow::Cow::Borrowed(one)
    } else {
        let legs: Vec<Leg> = curves
            .iter()
            .zip(&curves_of)
            .map(|(c, e)| Leg {
                ts: &c.bars.ts,
                equity: e,
            })
            .collect();
        std::borrow::Cow::Owned(portfolio::equal_weight(&legs).1)
    };
    equity::strategy_returns(&equity)
}

/// The dense positions of every trial gathered by `trials`, per symbol of
/// `bars`.
fn dense_per_symbol(
    trials: &super::Upstream,
    bars: &[crate::market::Bars],
) -> Result<Vec<Vec<Vec<i8>>>, PhaseError> {
    bars.iter()
        .map(|b| Ok(load_trials(trials, &b.symbol, &b.ts_text)?.1))
        .collect()
}

/// `reduce` of the per-bar strategy returns r_1..r_T of every trial,
/// recomputed from the signal files gathered by `trials` (the
/// portfolio's for several symbols, on one common timeline): trial by
/// trial in parallel, collected in trial order, so that no more than one
/// trial's returns per thread are held at once.
fn per_trial_returns<T: Send>(
    trials: &super::Upstream,
    bars: &[crate::market::Bars],
    fee: f64,
    fill: Fill,
    reduce: impl Fn(Vec<f64>) -> T + Sync,
) -> Result<Vec<T>, PhaseError> {
    let dense = dense_per_symbol(trials, bars)?;
    let curves: Vec<SymbolCurve> = bars.iter().map(|b| SymbolCurve::new(b, fill)).collect();
    let count = dense.first().map_or(0, Vec::len);
    Ok((0..count)
        .into_par_iter()
        .map(|k| {
            let positions: Vec<&[i8]> = dense.iter().map(|d| d[k].as_slice()).collect();
            reduce(returns_of_trial(&curves, &positions, fee))
        })
        .collect())
}

/// The per-bar strategy returns r_1..r_T of every trial gathered by
/// `trials` ([`per_trial_returns`]).
pub fn trial_returns(
    trials: &super::Upstream,
    bars: &[crate::market::Bars],
    fee: f64,
    fill: Fill,
) -> Result<Vec<Vec<f64>>, PhaseError> {
    per_trial_returns(trials, bars, fee, fill, |r| r)
}

/// What the overfitting statistics need of one trial's per-bar returns:
/// a sweep of thousands of trials keeps these, not the returns.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialFigures {
    /// Moments of all the returns.
    pub moments: Moments,
    /// The [`overfitting::block_sums`] of the returns in [`PBO_BLOCKS`] blocks.
    pub blocks: overfitting::BlockSums,
    /// The per-period Sharpe ratio and total return of the train part
    /// (the first `train_end − 1` returns), when one was asked for.
    pub train: Option<(Option<f64>, f64)>,
}

impl TrialFigures {
    /// The figures of returns `r`; `train_end` as for [`train_best`].
    pub fn of(r: &[f64], train_end: Option<usize>) -> TrialFigures {
        let [figures] = TrialFigures::of_lanes([r], train_end);
        figures
    }

    /// The figures of `L` trials' returns, all of one length, each as
    /// [`TrialFigures::of`] would compute them alone.
    ///
    /// Two passes over `r` instead of six: the first adds the sum of all
    /// returns (whose value after the train part is the train part's
    /// sum), the train part's growth and the block sums; the second the
    /// deviations from both means. Every sum and product still takes its
    /// terms in order from the neutral element `sum` starts from, so the
    /// bits are those of separate passes ([`Moments::of`],
    /// [`overfitting::block_sums`], the train part's own moments and
    /// fold); a zero term, which leaves a sum or product as it is, is
    /// left out (flat bars return exactly 0).
    ///
    /// Each sum is a chain of additions, each waiting for the one before:
    /// the trials side by side (a lane each) run `L` chains at once, on
    /// vector lanes where the CPU has them, every lane doing the same IEEE
    /// operations as one trial alone.
    pub fn of_lanes<const L: usize>(r: [&[f64]; L], train_end: Option<usize>) -> [TrialFigures; L] {
        #[cfg(target_arch = "x86_64")]
        if L > 1 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { figures_of_lanes_avx2(r, train_end) };
        }
        figures_of_lanes(r, train_end)
    }

    /// [`TrialFigures::of`] by separate passes, the reference the fused
    /// passes are checked against.
    #[cfg(test)]
    fn of_by_passes(r: &[f64], train_end: Option<usize>) -> TrialFigures {
        TrialFigures {
            moments: Moments::of(r),
            blocks: overfitting::block_sums(r, PBO_BLOCKS),
            train: train_end.map(|end| {
                let r = &r[..end.saturating_sub(1).min(r.len())];
                let sharpe = Moments::of(r).sharpe();
                let total = r.iter().fold(1.0, |e, x| e * (1.0 + x)) - 1.0;
                (sharpe, total)
            }),
        }
    }
}

/// [`TrialFigures::of_lanes`] compiled for AVX2: four lanes per
/// instruction. Vector width changes no result: every lane does the same
/// IEEE operations, and no operation is fused.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn figures_of_lanes_avx2<const L: usize>(
    r: [&[f64]; L],
    train_end: Option<usize>,
) -> [TrialFigures; L] {
    figures_of_lanes(r, train_end)
}

/// [`TrialFigures::of_lanes`] for any CPU.
///
/// Bar `i` of every lane is taken in one step (`r[l][i]` for each `l`),
/// not lane by lane: that is what puts the lanes' chains side by side.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn figures_of_lanes<const L: usize>(r: [&[f64]; L], train_end: Option<usize>) -> [TrialFigures; L] {
    let n = r.first().map_or(0, |r| r.len());
    assert!(r.iter().all(|r| r.len() == n), "lanes of one length");
    let train = train_end.map(|end| end.saturating_sub(1).min(n));
    let block_bars = n / PBO_BLOCKS;
    let block_start = if block_bars >= 2 {
        n - block_bars * PBO_BLOCKS
    } else {
        n
    };
    let zero: f64 = std::iter::empty::<f64>().sum();
    let mut first = FirstPass {
        sum: [zero; L],
        growth: [1.0; L],
        block: ([zero; L], [zero; L]),
    };
    let mut train_sum = [zero; L];
    let mut blocks: [overfitting::BlockSums; L] = std::array::from_fn(|_| Vec::new());
    let mut current_block: Option<usize> = None;
    let mut t = 0;
    while t < n {
        let in_train = train.is_some_and(|e| t < e);
        let in_block = t >= block_start;
        let mut end = n;
        if let Some(e) = train.filter(|&e| t < e) {
            end = end.min(e);
        }
        if in_block {
            let block = (t - block_start) / block_bars;
            end = end.min(block_start + (block + 1) * block_bars);
            if current_block != Some(block) {
                if current_block.is_some() {
                    first.push_blocks(&mut blocks);
                }
                first.block = ([zero; L], [zero; L]);
                current_block = Some(block);
            }
        } else {
            end = end.min(block_start);
        }
        let piece = r.map(|r| &r[t..end]);
        match (in_train, in_block) {
            (true, true) => first.add::<true, true>(piece),
            (true, false) => first.add::<true, false>(piece),
            (false, true) => first.add::<false, true>(piece),
            (false, false) => first.add::<false, false>(piece),
        }
        if train == Some(end) {
            train_sum = first.sum;
        }
        t = end;
    }
    if current_block.is_some() {
        first.push_blocks(&mut blocks);
    }
    let mean = first.sum.map(|sum| sum / n as f64);
    let train_len = train.unwrap_or(0);
    let train_mean = train_sum.map(|sum| sum / train_len as f64);
    // The train part needs only its Sharpe ratio: its squares alone.
    let (mut central, mut train_squares) = ([[zero; L]; 3], [zero; L]);
    for i in 0..train_len {
        for l in 0..L {
            let x = r[l][i];
            add_powers(&mut central, l, x - mean[l]);
            train_squares[l] += (x - train_mean[l]).powi(2);
        }
    }
    for i in train_len..n {
        for l in 0..L {
            add_powers(&mut central, l, r[l][i] - mean[l]);
        }
    }
    let mut blocks = blocks.into_iter();
    std::array::from_fn(|l| TrialFigures {
        moments: Moments::of_sums(n, mean[l], central.map(|c| c[l])),
        blocks: blocks.next().unwrap_or_default(),
        train: train.map(|len| {
            let sharpe = Moments::sharpe_of_sums(len, train_mean[l], train_squares[l]);
            (sharpe, first.growth[l] - 1.0)
        }),
    })
}

/// The running sums of [`TrialFigures::of_lanes`]'s first pass, a lane
/// per trial.
struct FirstPass<const L: usize> {
    sum: [f64; L],
    growth: [f64; L],
    /// The sums and the sums of squares of the current block.
    block: ([f64; L], [f64; L]),
}

impl<const L: usize> FirstPass<L> {
    /// Adds the returns `piece` (one slice per lane, all of one length),
    /// all in the train part (`TRAIN`) or all after it, all in one block
    /// (`BLOCK`) or all before the first.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // bar by bar across lanes, as in `figures_of_lanes`
    fn add<const TRAIN: bool, const BLOCK: bool>(&mut self, piece: [&[f64]; L]) {
        let len = piece.first().map_or(0, |p| p.len());
        for i in 0..len {
            for l in 0..L {
                let x = piece[l][i];
                self.sum[l] = added(self.sum[l], x);
                // The product by 1 + 0 left out, as a select (which a
                // vector lane can do) rather than a branch.
                if TRAIN {
                    let grown = self.growth[l] * (1.0 + x);
                    self.growth[l] = if x != 0.0 { grown } else { self.growth[l] };
                }
                if BLOCK {
                    self.block.0[l] = added(self.block.0[l], x);
                    self.block.1[l] = added(self.block.1[l], x * x);
                }
            }
        }
    }

    /// Closes the current block of every lane.
    fn push_blocks(&self, blocks: &mut [overfitting::BlockSums; L]) {
        for (l, b) in blocks.iter_mut().enumerate() {
            b.push((self.block.0[l], self.block.1[l]));
        }
    }
}

/// `sum` after [`add_term`] of `x`, as a select.
#[inline(always)]
fn added(sum: f64, x: f64) -> f64 {
    let mut with = sum;
    add_term(&mut with, x);
    with
}

/// Adds d², d³ and d⁴ to lane `l` of `sums`, as [`Moments::of`] does.
#[inline(always)]
fn add_powers<const L: usize>(sums: &mut [[f64; L]; 3], l: usize, d: f64) {
    sums[0][l] += d.powi(2);
    sums[1][l] += d.powi(3);
    sums[2][l] += d.powi(4);
}

/// The overfitting statistics of choosing the best trial by Sharpe ratio
/// ([`crate::market::overfitting`]): `{trials, selected, dsr,
/// sharpe_variance, expected_max_sharpe, min_backtest_years,
/// backtest_years, pbo, pbo_blocks, pbo_combinations}`; a statistic that
/// is undefined is `null` (and the log says why).
/// Also the best trial on the train part of the split (one symbol only).
fn overfitting(
    ctx: &mut PhaseContext<'_>,
    records: &[TrialRecord],
    figures: &[TrialFigures],
    returns: usize,
    ppy: f64,
    train_end: Option<usize>,
) -> Result<(Value, Option<Value>), PhaseError> {
    let stats = overfitting_stats(records, figures, returns, ppy);
    let train_best = match train_end {
        Some(end) => {
            let best = train_best(records, figures, ppy);
            writeln!(
                ctx.log,
                "best on the train part ({end} bars): trial {} (train sharpe {})",
                best["trial"],
                fixed(best["sharpe"].as_f64(), 1.0, 3, "")
            )?;
            Some(best)
        }
        None => {
            writeln!(
                ctx.log,
                "train_best: left out, the train part is defined for one symbol"
            )?;
            None
        }
    };
    for (key, why) in [
        ("dsr", "the selected trial has no Sharpe ratio"),
        ("pbo", "needs two trials and two bars per block"),
        (
            "min_backtest_years",
            "needs two trials and a positive best Sharpe ratio",
        ),
    ] {
        if stats[key].is_null() {
            writeln!(ctx.log, "overfitting: {key} is null: {why}")?;
        }
    }
    writeln!(
        ctx.log,
        "overfitting: {} trials, deflated sharpe {}, pbo {}, minimum backtest {} years of {}",
        records.len(),
        fixed(stats["dsr"].as_f64(), 1.0, 3, ""),
        fixed(stats["pbo"].as_f64(), 1.0, 3, ""),
        fixed(stats["min_backtest_years"].as_f64(), 1.0, 1, ""),
        fixed(stats["backtest_years"].as_f64(), 1.0, 1, ""),
    )?;
    Ok((stats, train_best))
}

/// `{trial, name, sharpe, total_return, params}` of the trial with the
/// best Sharpe ratio over the train part (the [`TrialFigures::train`]
/// figures, annualised with `ppy`), ties to the lowest index, an
/// undefined Sharpe last. A trial ruined in training has no later return.
pub fn train_best(records: &[TrialRecord], figures: &[TrialFigures], ppy: f64) -> Value {
    let train: Vec<(Option<f64>, f64)> = figures
        .iter()
        .map(|f| {
            let (sharpe, total) = f.train.unwrap_or((None, f64::NAN));
            (sharpe.map(|s| s * ppy.sqrt()), total)
        })
        .collect();
    let mut best: Option<usize> = None;
    for (k, f) in train.iter().enumerate() {
        if best.is_none_or(|b| ranks_above(f.0, train[b].0)) {
            best = Some(k);
        }
    }
    match best {
        Some(k) => json!({
            "trial": records[k].index,
            "name": records[k].name,
            "sharpe": train[k].0,
            "total_return": train[k].1,
            "params": records[k].params,
        }),
        None => Value::Null,
    }
}

/// [`overfitting`] of trials with the [`TrialFigures`] `figures` of
/// `returns` per-bar returns each, selected by Sharpe ratio as
/// [`summary`] does.
pub fn overfitting_stats(
    records: &[TrialRecord],
    figures: &[TrialFigures],
    returns: usize,
    ppy: f64,
) -> Value {
    let sharpes: Vec<f64> = figures.iter().filter_map(|f| f.moments.sharpe()).collect();
    let mut selected: Option<usize> = None;
    for (k, r) in records.iter().enumerate() {
        if selected.is_none_or(|b| ranks_above(r.metrics.sharpe, records[b].metrics.sharpe)) {
            selected = Some(k);
        }
    }
    let deflated = selected.and_then(|k| {
        overfitting::deflated_sharpe_of(&figures[k].moments, &sharpes, records.len())
    });
    let best_annual = deflated.as_ref().map(|d| d.sharpe * ppy.sqrt());
    let blocks: Vec<&[(f64, f64)]> = figures.iter().map(|f| f.blocks.as_slice()).collect();
    let pbo = overfitting::probability_of_overfitting_of_sums(&blocks, returns, PBO_BLOCKS);
    json!({
        "trials": records.len(),
        "selected": selected.map(|k| records[k].index),
        "dsr": deflated.as_ref().map(|d| d.deflated_sharpe),
        "sharpe_variance": deflated.as_ref().map(|d| d.sharpe_variance),
        "expected_max_sharpe": deflated.as_ref().map(|d| d.expected_max_sharpe),
        "min_backtest_years": best_annual.and_then(|s| overfitting::min_backtest_years(records.len(), s)),
        "backtest_years": returns as f64 / ppy,
        "pbo": pbo.as_ref().map(|p| p.pbo),
        "pbo_blocks": PBO_BLOCKS,
        "pbo_combinations": pbo.as_ref().map(|p| p.combinations),
    })
}

/// `{trials, best: {trial, name, sharpe, total_return, params}}`.
pub fn summary(records: &[TrialRecord]) -> Value {
    let mut best: Option<&TrialRecord> = None;
    for r in records {
        if best.is_none_or(|b| ranks_above(r.metrics.sharpe, b.metrics.sharpe)) {
            best = Some(r);
        }
    }
    match best {
        Some(b) => json!({
            "trials": records.len(),
            "best": {
                "trial": b.index,
                "name": b.name,
                "sharpe": b.metrics.sharpe,
                "total_return": b.metrics.total_return,
                "params": b.params,
            }
        }),
        None => json!({"trials": 0}),
    }
}

/// Reads `trials.json` and the dense position series of every trial for
/// the bars of `sym`, from the upstream node holding the gather artifacts.
pub fn load_trials(
    up: &super::Upstream,
    sym: &str,
    ts_text: &[String],
) -> Result<(Vec<TrialRecord>, Vec<Vec<i8>>), PhaseError> {
    let records: Vec<TrialRecord> =
        serde_json::from_value(upstream::upstream_json(up, "trials.json")?)
            .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe("trials.json"))))?;
    // Trial by trial in parallel, collected in trial order; the first
    // error in that order is the one reported.
    let dense = records
        .par_iter()
        .map(|r| {
            let file = signal_file(r.index);
            let changes = signals::read_sparse(&upstream::upstream_text(up, &file)?)
                .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(&file))))?;
            signals::densify(&changes, sym, ts_text.len(), Some(ts_text))
                .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(&file))))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok((records, dense))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(f: &TrialFigures) -> Vec<u64> {
        let m = &f.moments;
        let mut out = vec![m.count as u64];
        out.extend([m.mean, m.std, m.skew, m.kurtosis].map(f64::to_bits));
        out.extend(
            f.blocks
                .iter()
                .flat_map(|(a, b)| [a.to_bits(), b.to_bits()]),
        );
        out.push(f.blocks.len() as u64);
        match f.train {
            None => out.push(0),
            Some((sharpe, total)) => out.extend([
                1,
                sharpe.map_or(1, f64::to_bits),
                u64::from(sharpe.is_some()),
                total.to_bits(),
            ]),
        }
        out
    }

    /// A bar's return: mostly small, often flat (zero of either sign),
    /// now and then ruin (−1) or undefined (NaN).
    fn daily_return() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => -0.05f64..0.05,
            4 => Just(0.0),
            1 => Just(-0.0),
            1 => Just(-1.0),
            1 => Just(f64::NAN),
        ]
    }

    proptest! {
        /// Flat stretches (zero returns), ruin (−1 then NaN), every length
        /// around the block size and train ends inside, at and past the
        /// returns.
        #[test]
        fn fused_figures_are_the_bits_of_separate_passes(
            r in proptest::collection::vec(
                daily_return(),
                0..120,
            ),
            train_end in proptest::option::of(0usize..130),
        ) {
            prop_assert_eq!(
                bits(&TrialFigures::of(&r, train_end)),
                bits(&TrialFigures::of_by_passes(&r, train_end))
            );
        }
    }

    proptest! {
        /// Four trials side by side: each lane the bits of the trial
        /// alone, whatever the others hold (flat where another is not,
        /// ruined where another is not).
        #[test]
        fn figures_side_by_side_are_the_bits_of_each_trial_alone(
            lanes in proptest::collection::vec(
                proptest::collection::vec(
                    daily_return(),
                    120,
                ),
                FIGURE_LANES,
            ),
            len in 0usize..120,
            train_end in proptest::option::of(0usize..130),
        ) {
            let r: [&[f64]; FIGURE_LANES] = std::array::from_fn(|l| &lanes[l][..len]);
            let side_by_side = TrialFigures::of_lanes(r, train_end);
            for (l, figures) in side_by_side.iter().enumerate() {
                prop_assert_eq!(bits(figures), bits(&TrialFigures::of_by_passes(r[l], train_end)));
            }
        }
    }

    #[test]
    fn figures_side_by_side_of_long_series_are_the_bits_of_each_trial_alone() {
        let mut x = 0.61_f64;
        let lanes: Vec<Vec<f64>> = (0..FIGURE_LANES)
            .map(|lane| {
                (0..5_239)
                    .map(|i| {
                        x = (x * 3.7 + 0.11).fract();
                        if (i / (20 + 13 * lane)) % 3 == 0 {
                            0.0
                        } else {
                            (x - 0.5) * 0.04
                        }
                    })
                    .collect()
            })
            .collect();
        let r: [&[f64]; FIGURE_LANES] = std::array::from_fn(|l| lanes[l].as_slice());
        for end in [None, Some(0), Some(2), Some(4191), Some(9000)] {
            for (l, figures) in TrialFigures::of_lanes(r, end).iter().enumerate() {
                assert_eq!(bits(figures), bits(&TrialFigures::of_by_passes(r[l], end)));
            }
        }
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => -10.0f64..10.0,
            1 => Just(0.0),
            1 => Just(-0.0),
            1 => Just(f64::NAN),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(1e-300),
            1 => Just(123456789.123),
        ]
    }

    fn record() -> impl Strategy<Value = TrialRecord> {
        (
            (
                0usize..100_000,
                "[a-z_0-9\"\\\\é\n]{0,12}",
                float(),
                -5i64..500,
            ),
            (
                float(),
                proptest::option::of(float()),
                proptest::option::of(float()),
            ),
            (0u64..1000, proptest::option::of(0u64..5000), "[a-z\"]{0,6}"),
        )
            .prop_map(
                |((index, name, x, lookback), (total, sharpe, win), (n, ruin, why))| {
                    let mut metrics = Metrics {
                        total_return: total,
                        sharpe,
                        win_rate: win,
                        max_drawdown: -x.abs(),
                        entries: n,
                        trades: n / 2,
                        bars: 5240,
                        periods_per_year: 252.0,
                        ruin,
                        ..Metrics::default()
                    };
                    if !why.is_empty() {
                        metrics.undefined.insert("sharpe".into(), why.clone());
                        metrics.warnings.push(why);
                    }
                    TrialRecord {
                        index,
                        name,
                        params: json!({"lookback": lookback, "threshold": x, "on": index % 2 == 0}),
                        metrics,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// None, one, and several chunks of records with every kind of
        /// float (NaN and infinities are written `null`) and escapes.
        #[test]
        fn trials_json_is_the_bytes_of_the_value_tree(
            records in proptest::collection::vec(record(), 0..(3 * RECORDS_PER_CHUNK)),
        ) {
            let mut tree = serde_json::to_vec_pretty(&json!(records)).unwrap();
            tree.push(b'\n');
            let direct = trials_json(&records).unwrap();
            prop_assert_eq!(String::from_utf8(direct).unwrap(), String::from_utf8(tree).unwrap());
        }
    }

    #[test]
    fn trials_json_of_chunk_sized_record_counts_is_the_bytes_of_the_value_tree() {
        let one = TrialRecord {
            index: 7,
            name: "momentum_7".into(),
            params: json!({"lookback": 20, "threshold": 0.002}),
            metrics: Metrics {
                sharpe: Some(0.5),
                total_return: 1.25,
                ..Metrics::default()
            },
        };
        for n in [
            1,
            RECORDS_PER_CHUNK - 1,
            RECORDS_PER_CHUNK,
            RECORDS_PER_CHUNK + 1,
            2 * RECORDS_PER_CHUNK,
        ] {
            let records = vec![one.clone(); n];
            let mut tree = serde_json::to_vec_pretty(&json!(records)).unwrap();
            tree.push(b'\n');
            assert_eq!(trials_json(&records).unwrap(), tree, "{n} records");
        }
    }

    #[test]
    fn fused_figures_of_a_long_series_are_the_bits_of_separate_passes() {
        let mut x = 0.37_f64;
        let r: Vec<f64> = (0..5_239)
            .map(|i| {
                x = (x * 3.9 + 0.07).fract();
                if (i / 40) % 3 == 0 {
                    0.0
                } else {
                    (x - 0.5) * 0.04
                }
            })
            .collect();
        for end in [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(4191),
            Some(5240),
            Some(9000),
        ] {
            let fused = TrialFigures::of(&r, end);
            assert_eq!(bits(&fused), bits(&TrialFigures::of_by_passes(&r, end)));
            assert_eq!(fused.blocks.len(), PBO_BLOCKS);
        }
    }
}
