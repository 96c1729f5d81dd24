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
//! The phase is compiled into nodes of its own ([`Phase::parts`]), the
//! number of folds following from the windows and the bar count of the
//! data (read when the workflow is compiled):
//!
//! - `phase[returns]`: every trial's per-bar returns (`returns.bin`,
//!   trial-major little-endian f64), `trials.json` and `bars.json`
//!   (timestamps and bars per year);
//! - `phase[window=A-B]`: the slice of those returns a fold uses, from
//!   its first train return A to its last test return B - 1, with its
//!   timestamps;
//! - `phase[fold=k]`: the trial chosen on the train part of its slice and
//!   its test returns and figures (`fold.json`);
//! - `phase`: the stitch, which writes `folds.csv` (one row per fold: its
//!   windows, the chosen trial, its train objective and test Sharpe and
//!   return), `equity.csv` (`ts,equity,fold`: the stitched out-of-sample
//!   curve, from 1 before the first test return) and `metrics.json`
//!   (`oos`: the metrics of the stitched curve, `folds`, `objective`,
//!   `windows`, and `per_fold`).
//!
//! Keys take upstream output digests, so longer data reruns the returns
//! and the (cheap) slices, but a slice that comes out the same stops
//! there: only the new fold's selection runs, then the stitch. A fold's
//! key holds its window and objective, not its number or the other
//! windows (its window node is named by its returns), so a changed step
//! that keeps a window keeps its fold too.
//!
//! The stitched curve switches trial at the start of each test window
//! without paying for the change of position that the switch would need;
//! each trial's own trades inside the window are paid for.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::analysis::{objective, one_symbol};
use super::backtest::{fixed, issue_error};
use super::signal_generation::trial_returns;
use super::{ConfigIssue, Part, Phase, PhaseContext, PhaseError, Role, Upstream};
use super::{artifacts, config, data, upstream};
use crate::market::metrics::ranks_above;
use crate::market::{Metrics, Objective};
use crate::reads::Reads;

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
    config::reject_unknown("windows", map, WINDOW_KEYS)?;
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

/// The config key naming which node of the phase a node is.
const PART: &str = "part";

fn part_of(config: &Value) -> Option<&str> {
    config.get(PART).and_then(Value::as_str)
}

fn range_json(r: &std::ops::Range<usize>) -> Value {
    json!([r.start, r.end])
}

fn range_of(config: &Value, key: &str) -> Result<std::ops::Range<usize>, PhaseError> {
    let pair = config
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>());
    match pair.as_deref() {
        Some(&[start, end]) if start <= end => Ok(start as usize..end as usize),
        _ => Err(PhaseError::new(format!(
            "walk_forward window: `{key}` is not a range"
        ))),
    }
}

fn floats_to_bytes(values: impl IntoIterator<Item = f64>) -> Vec<u8> {
    values.into_iter().flat_map(f64::to_le_bytes).collect()
}

fn bytes_to_floats(bytes: &[u8], what: &str) -> Result<Vec<f64>, PhaseError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(PhaseError::new(format!(
            "{what}: {} bytes is not a whole number of values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// The upstream node holding artifact `name`.
fn upstream_with<'a>(
    upstream: &'a [Upstream],
    node: &str,
    name: &str,
) -> Result<&'a Upstream, PhaseError> {
    upstream
        .iter()
        .find(|u| u.has(name))
        .ok_or_else(|| PhaseError::new(format!("no upstream of `{node}` has {name}")))
}

/// The returns, one vector per trial, of a `returns.bin` holding
/// `trials` of them.
fn read_matrix(up: &Upstream, trials: usize) -> Result<Vec<Vec<f64>>, PhaseError> {
    let all = bytes_to_floats(&up.read("returns.bin")?, &up.describe("returns.bin"))?;
    if trials == 0 || !all.len().is_multiple_of(trials) {
        return Err(PhaseError::new(format!(
            "{}: {} values do not split into {trials} trials",
            up.describe("returns.bin"),
            all.len()
        )));
    }
    Ok(all
        .chunks_exact(all.len() / trials)
        .map(<[f64]>::to_vec)
        .collect())
}

/// `phase[returns]`: every trial's returns over all the bars.
fn returns_part(ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
    let config::Market { spec, fee, fill } = config::market(ctx.config, ctx.base_dir)?;
    let bars = data::load_bars(&spec, ctx.log)?;
    let up = upstream::trial_source(ctx.upstream, "walk_forward", false)?;
    let records = upstream::trial_records(up)?;
    let returns = trial_returns(up, &bars, fee, fill)?;
    let t = returns.first().map_or(0, Vec::len);
    let compiled_for = ctx.config.get("returns").and_then(Value::as_u64);
    if compiled_for != Some(t as u64) {
        return Err(PhaseError::new(format!(
            "the data gives {t} returns where the folds were compiled for {}: it changed during the build; build again",
            compiled_for.unwrap_or(0)
        )));
    }
    writeln!(
        ctx.log,
        "{} trials of `{}` × {t} returns",
        returns.len(),
        up.node
    )?;
    let names: Vec<Value> = records
        .iter()
        .map(|r| json!({"index": r.index, "name": r.name}))
        .collect();
    ctx.memory.put(
        "returns.bin",
        floats_to_bytes(returns.into_iter().flatten()),
    );
    ctx.memory.put_json("trials.json", &json!(names))?;
    ctx.memory.put_json(
        "bars.json",
        &json!({"periods_per_year": bars[0].periods_per_year(), "ts": bars[0].ts_text.as_slice()}),
    )
}

/// `phase[window=k]`: the returns fold k uses, and its timestamps.
fn window_part(ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
    let train = range_of(ctx.config, "train")?;
    let test = range_of(ctx.config, "test")?;
    let up = upstream_with(ctx.upstream, ctx.node, "returns.bin")?;
    let trials = upstream::upstream_json(up, "trials.json")?
        .as_array()
        .map_or(0, Vec::len);
    let bars = upstream::upstream_json(up, "bars.json")?;
    let ts: Vec<&str> = bars["ts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let matrix = read_matrix(up, trials)?;
    let t = matrix[0].len();
    if train.start > train.end || train.end > test.start || test.end > t || ts.len() != t + 1 {
        return Err(PhaseError::new(format!(
            "fold window {train:?}/{test:?} does not fit {t} returns and {} timestamps",
            ts.len()
        )));
    }
    // Return index i is the move into bar i + 1.
    let slice = floats_to_bytes(
        matrix
            .iter()
            .flat_map(|r| r[train.start..test.end].iter().copied()),
    );
    writeln!(
        ctx.log,
        "{trials} trials: train {} .. {}, test {} .. {}",
        ts[train.start], ts[train.end], ts[test.start], ts[test.end]
    )?;
    ctx.memory.put("returns.bin", slice);
    ctx.memory.put_json(
        "window.json",
        &json!({
            "train": range_json(&train),
            "test": range_json(&test),
            "trials": trials,
            "periods_per_year": bars["periods_per_year"],
            "ts": {
                "train": [ts[train.start], ts[train.end]],
                "test": [ts[test.start], ts[test.end]],
            },
            "test_ts": ts[test.start + 1..=test.end],
        }),
    )
}

/// `phase[fold=k]`: the trial chosen on the window's train part, and how
/// it did on the test part.
fn fold_part(ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
    let objective = objective(ctx.config).map_err(issue_error)?;
    let up = upstream_with(ctx.upstream, ctx.node, "window.json")?;
    let window = upstream::upstream_json(up, "window.json")?;
    let train = range_of(&window, "train")?;
    let test = range_of(&window, "test")?;
    let trials = window["trials"].as_u64().unwrap_or(0) as usize;
    let ppy = window["periods_per_year"].as_f64().ok_or_else(|| {
        PhaseError::new(format!(
            "{}: no periods_per_year",
            up.describe("window.json")
        ))
    })?;
    let matrix = read_matrix(up, trials)?;
    // The slice starts at the first train return.
    let local = Fold {
        train: 0..train.end - train.start,
        test: test.start - train.start..test.end - train.start,
    };
    let (chosen, oos) = walk(&matrix, std::slice::from_ref(&local), objective, ppy);
    let &[(trial, figure)] = chosen.as_slice() else {
        return Err(PhaseError::new("no trial to choose from"));
    };
    let m = Metrics::from_equity(&compound(&oos), ppy);
    writeln!(
        ctx.log,
        "trial {trial} chosen (train {} {}): test sharpe {}, total return {:.2}%",
        objective.name(),
        fixed(figure, 1.0, 3, ""),
        fixed(m.sharpe, 1.0, 3, ""),
        m.total_return * 100.0
    )?;
    ctx.memory.put_json(
        "fold.json",
        &json!({
            "train": range_json(&train),
            "test": range_json(&test),
            "ts": window["ts"],
            "test_ts": window["test_ts"],
            "trial": trial,
            "train_objective": figure,
            "test_sharpe": m.sharpe,
            "test_total_return": m.total_return,
            "test_returns": oos,
        }),
    )
}

/// The phase's own node: the folds stitched into one out-of-sample curve.
fn stitch_part(ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
    let w = windows(ctx.config).map_err(issue_error)?;
    let objective = objective(ctx.config).map_err(issue_error)?;
    let returns = upstream_with(ctx.upstream, ctx.node, "trials.json")?;
    let records = upstream::upstream_json(returns, "trials.json")?;
    let ppy = upstream::upstream_json(returns, "bars.json")?["periods_per_year"]
        .as_f64()
        .ok_or_else(|| {
            PhaseError::new(format!(
                "{}: no periods_per_year",
                returns.describe("bars.json")
            ))
        })?;
    let folds: Vec<Value> = ctx
        .upstream
        .iter()
        .filter(|u| u.has("fold.json"))
        .map(|u| upstream::upstream_json(u, "fold.json"))
        .collect::<Result<_, _>>()?;
    let expected = ctx.config.get("folds").and_then(Value::as_u64);
    if folds.is_empty() || expected != Some(folds.len() as u64) {
        return Err(PhaseError::new(format!(
            "{} folds arrived where {} were compiled",
            folds.len(),
            expected.unwrap_or(0)
        )));
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let figure = |v: &Value| v.as_f64().map(|v| v.to_string()).unwrap_or_default();
    let mut oos = Vec::new();
    for f in &folds {
        oos.extend(
            f["test_returns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64),
        );
    }
    let equity = compound(&oos);
    let mut table = String::from(
        "fold,train_start,train_end,test_start,test_end,trial,name,train_objective,test_sharpe,test_total_return\n",
    );
    let mut per_fold = Vec::new();
    let mut csv = String::from("ts,equity,fold\n");
    let _ = writeln!(csv, "{},1,", text(&folds[0]["ts"]["test"][0]));
    let mut at = 1;
    for (k, f) in folds.iter().enumerate() {
        let trial = f["trial"].as_u64().unwrap_or(0) as usize;
        let record = &records[trial];
        let _ = writeln!(
            table,
            "{k},{},{},{},{},{},{},{},{},{}",
            text(&f["ts"]["train"][0]),
            text(&f["ts"]["train"][1]),
            text(&f["ts"]["test"][0]),
            text(&f["ts"]["test"][1]),
            record["index"],
            text(&record["name"]),
            figure(&f["train_objective"]),
            figure(&f["test_sharpe"]),
            figure(&f["test_total_return"]),
        );
        per_fold.push(json!({
            "fold": k,
            "train": f["ts"]["train"],
            "test": f["ts"]["test"],
            "trial": record["index"],
            "name": record["name"],
            "train_objective": f["train_objective"],
            "test_sharpe": f["test_sharpe"],
            "test_total_return": f["test_total_return"],
        }));
        for ts in f["test_ts"].as_array().into_iter().flatten() {
            let _ = writeln!(csv, "{},{},{k}", text(ts), equity[at]);
            at += 1;
        }
    }
    if at != equity.len() {
        return Err(PhaseError::new(format!(
            "the folds hold {} test timestamps for {} test returns",
            at - 1,
            oos.len()
        )));
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
    artifacts::log_notes(ctx.log, "out of sample", &m)?;
    ctx.memory.put("folds.csv", table);
    ctx.memory.put("equity.csv", csv);
    ctx.memory.put_json(
        "metrics.json",
        &json!({
            "oos": artifacts::metrics_map(&m),
            "folds": folds.len(),
            "objective": objective.name(),
            "windows": {"train": w.train, "test": w.test, "step": w.step, "anchored": w.anchored, "purge": w.purge},
            "per_fold": per_fold,
        }),
    )
}

/// The returns a build of `config` will have: its bars less one. The
/// files are read with their stat noted first, so that the graph cache
/// compiles again (and counts the folds again) once one changes.
fn returns_count(config: &Value, base_dir: &Path, reads: &Reads) -> Result<usize, ConfigIssue> {
    let spec = config::data_spec(config, base_dir)?;
    for file in &spec.files {
        if let Ok(meta) = std::fs::metadata(file) {
            let path = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            reads.note(&path, crate::file_stat::Stat::of(&meta));
        }
    }
    let bars = data::load_bars(&spec, &mut std::io::sink()).map_err(|e| {
        ConfigIssue::new(
            "data",
            format!(
                "cannot count the bars the walk-forward folds cover: {}",
                e.message
            ),
        )
    })?;
    Ok(bars.first().map_or(0, |b| b.len().saturating_sub(1)))
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

    fn relative_paths(&self) -> &'static [&'static str] {
        config::DATA_PATHS
    }

    fn inherits(&self) -> &'static [&'static str] {
        config::INHERITS
    }

    fn version(&self) -> &'static str {
        "walk_forward-3"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        if part_of(config).is_some() {
            // A node [`Phase::parts`] made from a config it checked.
            return Ok(());
        }
        one_symbol(config)?;
        config::check_costs(config)?;
        windows(config)?;
        objective(config)?;
        Ok(())
    }

    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        if part_of(&config).is_some() {
            // A node [`Phase::parts`] made from a normalised config.
            return Ok(config);
        }
        let w = windows(&config)?;
        let objective = objective(&config)?;
        let mut m = config::normal::without_strategy(config, config::normal::MARKET)?;
        m.insert(
            "windows".into(),
            json!({
                "train": w.train,
                "test": w.test,
                "step": w.step,
                "anchored": w.anchored,
                "purge": w.purge,
            }),
        );
        m.insert("objective".into(), json!(objective.name()));
        Ok(Value::Object(m))
    }

    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        match part_of(config) {
            None | Some("returns") => Ok(config::data_spec(config, base_dir)?.files),
            Some(_) => Ok(Vec::new()),
        }
    }

    fn writes_files(&self, _role: &Role) -> bool {
        false
    }

    fn parts(
        &self,
        config: &Value,
        base_dir: &Path,
        reads: &Reads,
    ) -> Result<Option<Vec<Part>>, ConfigIssue> {
        self.validate(config)?;
        let w = windows(config)?;
        let objective = objective(config)?;
        let t = returns_count(config, base_dir, reads)?;
        let folds = folds(&w, t);
        if folds.is_empty() {
            return Err(ConfigIssue::new(
                "windows",
                format!(
                    "the data has {t} returns, too few for a train window of {} and a purge of {}",
                    w.train, w.purge
                ),
            ));
        }
        let Value::Object(all) = config else {
            return Ok(None);
        };
        let mut returns = all.clone();
        returns.remove("windows");
        returns.remove("objective");
        returns.insert(PART.into(), json!("returns"));
        returns.insert("returns".into(), json!(t));
        let mut parts = vec![Part {
            suffix: "returns".into(),
            config: returns,
            after: Vec::new(),
            phase_deps: true,
        }];
        let n = folds.len();
        for f in &folds {
            let mut window = Map::new();
            window.insert(PART.into(), json!("window"));
            window.insert("train".into(), range_json(&f.train));
            window.insert("test".into(), range_json(&f.test));
            // Named by its returns, not its number: a fold's key holds
            // the name of its window node, and a changed step that keeps
            // a window keeps its fold.
            parts.push(Part {
                suffix: format!("window={}-{}", f.train.start, f.test.end),
                config: window,
                after: vec![0],
                phase_deps: false,
            });
        }
        for k in 0..n {
            let mut fold = Map::new();
            fold.insert(PART.into(), json!("fold"));
            fold.insert("objective".into(), json!(objective.name()));
            parts.push(Part {
                suffix: format!("fold={k}"),
                config: fold,
                after: vec![1 + k],
                phase_deps: false,
            });
        }
        let mut stitch = Map::new();
        stitch.insert(PART.into(), json!("stitch"));
        stitch.insert(
            "windows".into(),
            all.get("windows").cloned().unwrap_or(Value::Null),
        );
        stitch.insert("objective".into(), json!(objective.name()));
        stitch.insert("folds".into(), json!(n));
        parts.push(Part {
            suffix: String::new(),
            config: stitch,
            after: std::iter::once(0).chain(1 + n..1 + 2 * n).collect(),
            phase_deps: false,
        });
        Ok(Some(parts))
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        match part_of(ctx.config) {
            Some("returns") => returns_part(ctx),
            Some("window") => window_part(ctx),
            Some("fold") => fold_part(ctx),
            Some("stitch") => stitch_part(ctx),
            other => Err(PhaseError::new(format!(
                "walk_forward node `{}` has no known part ({other:?})",
                ctx.node
            ))),
        }
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
