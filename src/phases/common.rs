//! Helpers shared by the trading modes: the inherited `data:`, `strategy:`
//! and `costs:` config, loading bars, running a position series, writing
//! artifacts and finding upstream artifacts.
//!
//! Artifacts are written deterministically: JSON pretty-printed with keys
//! in sorted order and a final newline, floats in Rust's shortest
//! round-trip form, never a timestamp or a wall-clock figure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ConfigIssue, PhaseError, Role, Upstream};
use crate::error::did_you_mean;
use crate::market::equity::{Fill, Legs};
use crate::market::{
    BadRowPolicy, Bars, Metrics, Strategy, equity, load_csv, strategy::SpecIssue, trades,
    trades::Trade,
};

/// The `data:` map: `source: csv`, `symbols: [...]`, and either `path:`
/// (one file, one symbol) or `dir:` + `pattern:` (default
/// `"{symbol}.csv"`), plus `on_bad_rows: error | drop | fix` and
/// `periods_per_year` (the annualisation base; inferred from the bar
/// spacing when absent).
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    pub symbols: Vec<String>,
    pub files: Vec<PathBuf>,
    pub policy: BadRowPolicy,
    pub periods_per_year: Option<f64>,
    /// The sealed holdout at the end of the data (`data.holdout`): no mode
    /// loads its bars except `holdout`.
    pub holdout: Option<Holdout>,
}

/// Where the sealed holdout starts: the last fraction of each symbol's
/// bars, or every bar from a date on (a date alone from its midnight).
#[derive(Clone, Debug, PartialEq)]
pub enum Holdout {
    Fraction(f64),
    From(i64, String),
}

impl Holdout {
    /// The index of the first held-out bar of bars stamped `ts`, or why
    /// the holdout cannot be taken there.
    pub fn start(&self, ts: &[i64]) -> Result<usize, String> {
        let n = ts.len();
        let at = match self {
            Holdout::Fraction(f) => n - ((n as f64 * f).floor() as usize),
            Holdout::From(t, _) => ts.partition_point(|&x| x < *t),
        };
        if at >= n {
            return Err(format!("the holdout holds no bar of the {n}"));
        }
        if at < 4 {
            return Err(format!(
                "the holdout leaves {at} bars before it; at least 4 are needed"
            ));
        }
        Ok(at)
    }

    pub fn describe(&self) -> String {
        match self {
            Holdout::Fraction(f) => format!("the last {:.0}% of the bars", f * 100.0),
            Holdout::From(_, d) => format!("the bars from {d} on"),
        }
    }
}

pub const DATA_KEYS: &[&str] = &[
    "source",
    "symbols",
    "path",
    "dir",
    "pattern",
    "on_bad_rows",
    "periods_per_year",
    "holdout",
];

pub fn data_spec(config: &Value, base_dir: &Path) -> Result<DataSpec, ConfigIssue> {
    let data = match config.get("data") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ConfigIssue::new("data", "expected a map")),
        None => {
            return Err(ConfigIssue::new(
                "data",
                "missing `data:` (source, symbols, path or dir)",
            ));
        }
    };
    for key in data.keys() {
        if !DATA_KEYS.contains(&key.as_str()) {
            return Err(issue(
                format!("data.{key}"),
                format!("unknown data key `{key}`"),
                did_you_mean(key, DATA_KEYS.iter().copied()),
            ));
        }
    }
    match data.get("source") {
        None => {}
        Some(Value::String(s)) if s == "csv" => {}
        Some(other) => {
            return Err(issue(
                "data.source",
                format!("unsupported data source {other}; only `csv` is known"),
                None,
            ));
        }
    }
    let policy = match data.get("on_bad_rows") {
        None => BadRowPolicy::Error,
        Some(Value::String(s)) => BadRowPolicy::parse(s).ok_or_else(|| {
            issue(
                "data.on_bad_rows",
                format!("unknown policy `{s}` (error, drop or fix)"),
                did_you_mean(s, BadRowPolicy::NAMES.iter().copied()),
            )
        })?,
        Some(_) => {
            return Err(ConfigIssue::new(
                "data.on_bad_rows",
                "expected error, drop or fix",
            ));
        }
    };
    let string_at = |key: &str| -> Result<Option<&str>, ConfigIssue> {
        match data.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConfigIssue::new(format!("data.{key}"), "expected a string")),
        }
    };
    let periods_per_year = match data.get("periods_per_year") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|p| p.is_finite() && *p > 0.0)
                .ok_or_else(|| {
                    ConfigIssue::new(
                        "data.periods_per_year",
                        "expected a number of bars per year > 0 (252 daily, 52 weekly, 12 monthly)",
                    )
                })?,
        ),
    };
    let holdout = match data.get("holdout") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let at = crate::market::timestamp::parse(s).ok_or_else(|| {
                ConfigIssue::new(
                    "data.holdout",
                    format!("`{s}` is not a date (YYYY-MM-DD or a timestamp)"),
                )
            })?;
            Some(Holdout::From(at, s.clone()))
        }
        Some(v) => Some(Holdout::Fraction(
            v.as_f64().filter(|f| *f > 0.0 && *f < 1.0).ok_or_else(|| {
                ConfigIssue::new(
                    "data.holdout",
                    "expected the held-out fraction of the bars in (0, 1), or the date it starts",
                )
            })?,
        )),
    };
    let path = string_at("path")?;
    let dir = string_at("dir")?;
    let pattern = string_at("pattern")?.unwrap_or("{symbol}.csv");
    let mut symbols = match data.get("symbols") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ConfigIssue::new(
                "data.symbols",
                "lists no symbol; name the file's symbol, or leave `symbols:` out",
            ));
        }
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ConfigIssue::new("data.symbols", "expected a list of names"))?,
        Some(_) => return Err(ConfigIssue::new("data.symbols", "expected a list of names")),
    };
    let files = match (path, dir) {
        (Some(p), None) => {
            let p = base_dir.join(p);
            if symbols.is_empty() {
                let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
                symbols.push(stem.unwrap_or_else(|| "data".into()));
            }
            if symbols.len() > 1 {
                return Err(issue(
                    "data.path",
                    "`path:` names one file but several symbols are listed",
                    Some("use `dir:` and `pattern: \"{symbol}.csv\"` for several symbols".into()),
                ));
            }
            vec![p]
        }
        (None, Some(d)) => {
            if symbols.is_empty() {
                return Err(ConfigIssue::new("data.symbols", "`dir:` needs `symbols:`"));
            }
            symbols
                .iter()
                .map(|s| base_dir.join(d).join(pattern.replace("{symbol}", s)))
                .collect()
        }
        (Some(_), Some(_)) => {
            return Err(ConfigIssue::new(
                "data.dir",
                "give either `path:` or `dir:`, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigIssue::new(
                "data.path",
                "missing `path:` (or `dir:` + `pattern:`)",
            ));
        }
    };
    Ok(DataSpec {
        symbols,
        files,
        policy,
        periods_per_year,
        holdout,
    })
}

pub fn issue(
    key: impl Into<String>,
    message: impl Into<String>,
    hint: Option<String>,
) -> ConfigIssue {
    ConfigIssue {
        hint,
        ..ConfigIssue::new(key, message)
    }
}

/// Parsed data files of the running build, so the trials of a sweep parse
/// a file once rather than once each. Keyed by the file's identity and
/// stat: an edit during the build is a new entry, never a stale one, and
/// it replaces the file's older entry. Emptied when a build ends
/// ([`forget_loaded`]), so a long `admf watch` whose data directory gains
/// a file a day holds none of them between builds.
type LoadKey = (
    PathBuf,
    String,
    BadRowPolicy,
    u64,
    Option<std::time::SystemTime>,
    u64,
);

type LoadedMemo =
    std::sync::Mutex<std::collections::HashMap<LoadKey, std::sync::Arc<crate::market::Loaded>>>;
static LOADED: std::sync::LazyLock<LoadedMemo> = std::sync::LazyLock::new(Default::default);

/// Drops every parsed file: called when a build ends. Another build of
/// the process still running only parses its files again.
pub fn forget_loaded() {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn load_shared(
    file: &Path,
    symbol: &str,
    policy: BadRowPolicy,
) -> Result<std::sync::Arc<crate::market::Loaded>, crate::error::Error> {
    use std::sync::Arc;
    let meta = std::fs::metadata(file).map_err(|e| crate::error::Error::io(file, e))?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    let key: LoadKey = (
        file.to_path_buf(),
        symbol.to_string(),
        policy,
        meta.len(),
        meta.modified().ok(),
        inode,
    );
    if let Some(hit) = LOADED.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    let loaded = Arc::new(load_csv(file, symbol, policy)?);
    let mut memo = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|k, _| (&k.0, &k.1, k.2) != (&key.0, &key.1, key.2));
    memo.insert(key, loaded.clone());
    Ok(loaded)
}

/// Loads every symbol of `spec`, logging what the bad-row policy did;
/// without the bars of a sealed holdout.
pub fn load_bars(spec: &DataSpec, log: &mut dyn std::io::Write) -> Result<Vec<Bars>, PhaseError> {
    let mut out = Vec::new();
    for (bars, start) in load_bars_and_holdout(spec, log)? {
        out.push(match start {
            Some(at) => bars.slice(0..at),
            None => bars,
        });
    }
    Ok(out)
}

/// Every bar of every symbol of `spec`, holdout included, with the index
/// of its first held-out bar: for the `holdout` mode only.
pub fn load_bars_and_holdout(
    spec: &DataSpec,
    log: &mut dyn std::io::Write,
) -> Result<Vec<(Bars, Option<usize>)>, PhaseError> {
    let mut out = Vec::new();
    for (symbol, file) in spec.symbols.iter().zip(&spec.files) {
        let loaded = load_shared(file, symbol, spec.policy)
            .map_err(|e| PhaseError::bad_input(e.render(false).trim_end().to_string()))?;
        // Detected once on the shared bars, so that every copy has it.
        loaded.bars.frequency();
        let mut bars = loaded.bars.clone();
        bars.declared_periods_per_year = spec.periods_per_year;
        let b = &bars;
        let f = b.frequency();
        let basis = if spec.periods_per_year.is_some() {
            "declared"
        } else {
            "inferred"
        };
        writeln!(
            log,
            "{symbol}: {} bars from {} ({}, {} .. {}, {} bars per year, {basis})",
            b.len(),
            file.display(),
            f.name(),
            b.ts_text[0],
            b.ts_text[b.len() - 1],
            b.periods_per_year()
        )?;
        if loaded.dropped + loaded.fixed > 0 {
            let (line, rule) = loaded.first_problem.clone().unwrap_or_default();
            writeln!(
                log,
                "{symbol}: on_bad_rows dropped {} and fixed {} row(s); first at line {line}: {rule}",
                loaded.dropped, loaded.fixed
            )?;
        }
        let start = match &spec.holdout {
            None => None,
            Some(h) => {
                let at = h.start(&bars.ts).map_err(|e| {
                    PhaseError::bad_input(format!("`data.holdout` ({}): {e}", h.describe()))
                })?;
                writeln!(
                    log,
                    "{symbol}: the holdout ({}) is sealed: {} bars from {} on",
                    h.describe(),
                    bars.len() - at,
                    bars.ts_text[at]
                )?;
                Some(at)
            }
        };
        out.push((bars, start));
    }
    Ok(out)
}

/// The inherited `strategy:` map.
pub fn strategy(config: &Value) -> Result<Strategy, ConfigIssue> {
    let Some(s) = config.get("strategy") else {
        return Err(ConfigIssue::new(
            "strategy",
            "missing `strategy:` (type, parameters)",
        ));
    };
    Strategy::from_config(s).map_err(|e| spec_issue("strategy", e))
}

pub fn spec_issue(prefix: &str, e: SpecIssue) -> ConfigIssue {
    let key = if e.key.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{}", e.key)
    };
    issue(key, e.message, e.hint)
}

pub const COSTS_KEYS: &[&str] = &["fee", "slippage_bps"];

/// `costs: {fee: f, slippage_bps: s}`: the proportional fee per unit of
/// position change and the slippage in basis points of the fill price.
/// Both are paid on the traded notional, so the cost per unit of position
/// change is f + s/10,000 (0 when absent).
pub fn fee(config: &Value) -> Result<f64, ConfigIssue> {
    let (fee, slippage_bps) = costs(config)?;
    Ok(fee + slippage_bps / 10_000.0)
}

/// The `(fee, slippage_bps)` of `costs:`, each 0 when absent.
pub fn costs(config: &Value) -> Result<(f64, f64), ConfigIssue> {
    let Some(costs) = config.get("costs") else {
        return Ok((0.0, 0.0));
    };
    let Some(map) = costs.as_object() else {
        return Err(ConfigIssue::new(
            "costs",
            "expected a map such as {fee: 0.001, slippage_bps: 5}",
        ));
    };
    for key in map.keys() {
        if !COSTS_KEYS.contains(&key.as_str()) {
            return Err(issue(
                format!("costs.{key}"),
                format!("unknown cost `{key}` (known: fee, slippage_bps)"),
                did_you_mean(key, COSTS_KEYS.iter().copied()),
            ));
        }
    }
    let fee = match map.get("fee") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|f| (0.0..1.0).contains(f))
            .ok_or_else(|| ConfigIssue::new("costs.fee", "expected a fraction in [0, 1)"))?,
    };
    let slippage = match map.get("slippage_bps") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|s| (0.0..10_000.0).contains(s))
            .ok_or_else(|| {
                ConfigIssue::new("costs.slippage_bps", "expected basis points in [0, 10000)")
            })?,
    };
    if fee + slippage / 10_000.0 >= 1.0 {
        return Err(ConfigIssue::new(
            "costs",
            "fee + slippage_bps / 10000 must stay below 1",
        ));
    }
    Ok((fee, slippage))
}

/// The keys a mode that runs positions over data takes from the top of
/// the workflow.
pub const INHERITS: &[&str] = &["data", "strategy", "costs", "execution"];

/// `execution: {fill: close | next_open}` ([`Fill`]); `close` when absent.
pub fn fill(config: &Value) -> Result<Fill, ConfigIssue> {
    let Some(exec) = config.get("execution") else {
        return Ok(Fill::Close);
    };
    let Some(map) = exec.as_object() else {
        return Err(ConfigIssue::new(
            "execution",
            "expected a map such as {fill: next_open}",
        ));
    };
    for key in map.keys() {
        if key != "fill" {
            return Err(issue(
                format!("execution.{key}"),
                format!("unknown execution key `{key}` (known: fill)"),
                did_you_mean(key, ["fill"]),
            ));
        }
    }
    match map.get("fill") {
        None => Ok(Fill::Close),
        Some(Value::String(s)) => Fill::parse(s).ok_or_else(|| {
            issue(
                "execution.fill",
                format!("unknown fill `{s}` (close or next_open)"),
                did_you_mean(s, Fill::NAMES.iter().copied()),
            )
        }),
        Some(_) => Err(ConfigIssue::new(
            "execution.fill",
            "expected close or next_open",
        )),
    }
}

/// The keys the selecting modes (`analysis`, `signal_replay`) take from
/// the top of the workflow: those of [`INHERITS`] and the `split`.
pub const INHERITS_WITH_SPLIT: &[&str] = &["data", "strategy", "costs", "execution", "split"];

/// For the modes that replay saved signals at the close only: the weight
/// search scores close-to-close returns, so a next-open fill would make
/// its figures wrong rather than merely slower.
pub fn close_fill_only(config: &Value) -> Result<(), ConfigIssue> {
    match fill(config)? {
        Fill::Close => Ok(()),
        Fill::NextOpen => Err(issue(
            "execution.fill",
            "this mode fills at the close only; `next_open` is supported by backtest and signal_generation",
            Some("set `execution: {fill: close}` on this phase".into()),
        )),
    }
}

/// A number from the phase's own config, with a range check.
pub fn number_at(
    config: &Value,
    key: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    expected: &str,
) -> Result<f64, ConfigIssue> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && ok(*x))
            .ok_or_else(|| ConfigIssue::new(key, format!("expected {expected}"))),
    }
}

/// One position series run through the equity recursion.
pub struct Run {
    pub positions: Vec<i8>,
    pub equity: Vec<f64>,
    pub trades: Vec<Trade>,
    pub metrics: Metrics,
}

/// Runs the decided `positions` over `bars` with cost `fee` per unit of
/// position change, filled by `fill`. The run's positions are those held
/// (one bar later for [`Fill::NextOpen`]); at ruin they are flattened from
/// that bar on, so the trades end there too.
pub fn run(bars: &Bars, positions: Vec<i8>, fee: f64, fill: Fill) -> Run {
    let (mut held, e, legs) = match fill {
        Fill::Close => {
            let r = equity::close_returns(&bars.close);
            let e = equity::equity_curve(&r, &positions, fee);
            (positions, e, None)
        }
        Fill::NextOpen => {
            let legs = Legs::new(&bars.open, &bars.close, fill);
            let h = equity::held(&positions, fill);
            let e = equity::equity_legs(&legs, &h, fee);
            (h, e, Some(legs))
        }
    };
    equity::liquidate_at_ruin(&e, &mut held);
    let t = match &legs {
        None => trades::round_trips(&equity::close_returns(&bars.close), &held, fee),
        Some(l) => trades::round_trips_legs(&l.before, Some(&l.after), &held, fee),
    };
    let metrics = Metrics::compute(&e, &held, &t, bars.periods_per_year());
    Run {
        positions: held,
        equity: e,
        trades: t,
        metrics,
    }
}

/// `ts,equity,position` (position omitted when `None`).
pub fn equity_csv(ts: &[&str], equity: &[f64], positions: Option<&[i8]>) -> String {
    let mut s = String::with_capacity(ts.len() * 32);
    s.push_str(if positions.is_some() {
        "ts,equity,position\n"
    } else {
        "ts,equity\n"
    });
    for (i, t) in ts.iter().enumerate() {
        let _ = match positions {
            Some(p) => writeln!(s, "{t},{},{}", equity[i], p[i]),
            None => writeln!(s, "{t},{}", equity[i]),
        };
    }
    s
}

/// `symbol,side,entry_ts,exit_ts,bars,closed,return` for every trade.
pub fn trades_csv(runs: &[(&Bars, &[Trade])]) -> String {
    let mut s = String::from("symbol,side,entry_ts,exit_ts,bars,closed,return\n");
    for (bars, trades) in runs {
        for t in trades.iter() {
            let side = if t.side > 0 { "long" } else { "short" };
            let _ = writeln!(
                s,
                "{},{side},{},{},{},{},{}",
                bars.symbol,
                bars.ts_text[t.entry],
                bars.ts_text[t.exit],
                t.exit - t.entry,
                t.closed,
                t.ret
            );
        }
    }
    s
}

/// Writes why each undefined metric of `m` is `null`, and its warnings.
pub fn log_notes(log: &mut dyn std::io::Write, what: &str, m: &Metrics) -> Result<(), PhaseError> {
    for note in m.notes() {
        writeln!(log, "{what}: {note}")?;
    }
    Ok(())
}

pub fn metrics_map(m: &Metrics) -> Map<String, Value> {
    match serde_json::to_value(m) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Every key [`metrics_map`] can write, in its order: those written only
/// when they say something (`ruin`, `undefined`, `warnings`) included.
pub fn metric_names() -> Vec<String> {
    let every = Metrics {
        ruin: Some(0),
        undefined: [("sharpe".to_string(), String::new())].into(),
        warnings: vec![String::new()],
        ..Metrics::default()
    };
    metrics_map(&every).keys().cloned().collect()
}

pub fn write_json(dir: &Path, name: &str, value: &Value) -> Result<(), PhaseError> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_file(dir, name, &text)
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), PhaseError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| PhaseError::new(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(&path, text).map_err(|e| PhaseError::new(format!("{}: {e}", path.display())))
}

/// Upstream artifact `name` as UTF-8 text.
pub fn upstream_text(up: &Upstream, name: &str) -> Result<String, PhaseError> {
    let bytes = up
        .read(name)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(name))))?;
    String::from_utf8(bytes).map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(name))))
}

/// Upstream artifact `name` parsed as JSON.
pub fn upstream_json(up: &Upstream, name: &str) -> Result<Value, PhaseError> {
    serde_json::from_str(&upstream_text(up, name)?)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(name))))
}

/// Put upstream artifact `from` at `dir/name` (see [`Upstream::copy_to`]).
pub fn copy_upstream(up: &Upstream, from: &str, dir: &Path, name: &str) -> Result<(), PhaseError> {
    let path = dir.join(name);
    up.copy_to(from, &path)
        .map_err(|e| PhaseError::new(format!("{}: {e}", path.display())))
}

pub fn read_text(path: &Path) -> Result<String, PhaseError> {
    std::fs::read_to_string(path).map_err(|e| PhaseError::new(format!("{}: {e}", path.display())))
}

pub fn read_json(path: &Path) -> Result<Value, PhaseError> {
    serde_json::from_str(&read_text(path)?)
        .map_err(|e| PhaseError::new(format!("{}: {e}", path.display())))
}

/// The upstream node of `mode` that holds a whole phase's artifacts (a
/// gather or single node, not a trial), the last such one listed.
pub fn upstream_of<'a>(upstream: &'a [Upstream], mode: &str) -> Option<&'a Upstream> {
    upstream
        .iter()
        .rev()
        .find(|u| u.mode == mode && !matches!(u.role, Role::Trial { .. }))
}

/// What a trading mode reads of its inherited keys when it runs: the data
/// it names, the cost per unit of position change and the fill rule.
pub struct Market {
    pub spec: DataSpec,
    pub fee: f64,
    pub fill: Fill,
}

/// The [`Market`] of a resolved config (a bad key is bad input).
pub fn market(config: &Value, base_dir: &Path) -> Result<Market, PhaseError> {
    let bad = super::backtest::issue_error;
    Ok(Market {
        spec: data_spec(config, base_dir).map_err(bad)?,
        fee: fee(config).map_err(bad)?,
        fill: fill(config).map_err(bad)?,
    })
}

/// The compile-time check of the costs and the fill rule of a trading
/// mode.
pub fn check_costs(config: &Value) -> Result<(), ConfigIssue> {
    fee(config)?;
    fill(config)?;
    Ok(())
}

/// The sweep whose trials `mode` reads: the last direct upstream
/// `signal_generation` phase, or else, where `analysis_too`, an
/// `analysis` phase (which passes the sweep's trials on); a bad-input
/// error when there is neither.
pub fn trial_source<'a>(
    upstream: &'a [Upstream],
    mode: &str,
    analysis_too: bool,
) -> Result<&'a Upstream, PhaseError> {
    let analysis = if analysis_too {
        upstream_of(upstream, "analysis")
    } else {
        None
    };
    upstream_of(upstream, "signal_generation")
        .or(analysis)
        .ok_or_else(|| {
            PhaseError::bad_input(format!(
                "{mode} needs an upstream `signal_generation`{} phase",
                if analysis_too { " (or `analysis`)" } else { "" }
            ))
        })
}

/// The trial records (`trials.json`) of a sweep.
pub fn trial_records(
    up: &Upstream,
) -> Result<Vec<super::signal_generation::TrialRecord>, PhaseError> {
    serde_json::from_value(upstream_json(up, "trials.json")?)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe("trials.json"))))
}

/// A stable trial name from the strategy type and its configured
/// parameters in key order, as the grid names trials
/// (`momentum_lookback=20_threshold=0.01`).
pub fn trial_name(config: &Value, strategy: &Strategy) -> String {
    let mut name = strategy.kind().to_string();
    if let Some(Value::Object(p)) = config.get("strategy").and_then(|s| s.get("parameters")) {
        for (k, v) in p {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(name, "_{k}={v}");
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_data_file_replaces_its_parsed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("X.csv");
        let rows = |n: usize| {
            let mut text = String::from("date,open,high,low,close,volume\n");
            for d in 1..=n {
                text.push_str(&format!("2020-01-{d:02},10,11,9,10,100\n"));
            }
            text
        };
        let copies = || {
            LOADED
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.0 == file)
                .count()
        };
        std::fs::write(&file, rows(3)).unwrap();
        let first = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        std::fs::write(&file, rows(5)).unwrap();
        let second = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        assert_eq!((first.bars.len(), second.bars.len()), (3, 5));
        assert_eq!(copies(), 1);
        // A build's end lets go of every parsed file.
        forget_loaded();
        assert_eq!(copies(), 0);
        let again = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&again, &second));
        assert_eq!(again.bars.len(), 5);
    }
    use serde_json::json;

    #[test]
    fn data_spec_forms() {
        let base = Path::new("/w");
        let c = json!({"data": {"source": "csv", "symbols": ["SPY"], "path": "../d/SPY_D.csv"}});
        let s = data_spec(&c, base).unwrap();
        assert_eq!(s.files, vec![PathBuf::from("/w/../d/SPY_D.csv")]);
        let c = json!({"data": {"symbols": ["A", "B"], "dir": "d", "pattern": "{symbol}_1d.csv"}});
        let s = data_spec(&c, base).unwrap();
        assert_eq!(s.files[1], PathBuf::from("/w/d/B_1d.csv"));
        let e = data_spec(&json!({"data": {"paht": "x"}}), base).unwrap_err();
        assert_eq!(e.key, "data.paht");
        assert_eq!(e.hint.as_deref(), Some("did you mean `path`?"));
        let e =
            data_spec(&json!({"data": {"symbols": ["A", "B"], "path": "x"}}), base).unwrap_err();
        assert_eq!(e.key, "data.path");
    }

    #[test]
    fn costs_and_strategy_issues_carry_full_keys() {
        let e = fee(&json!({"costs": {"fees": 0.1}})).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.hint.as_deref()),
            ("costs.fees", Some("did you mean `fee`?"))
        );
        let e = strategy(&json!({"strategy": {"type": "momentum", "parameters": {"lookbak": 1}}}))
            .unwrap_err();
        assert_eq!(e.key, "strategy.parameters.lookbak");
    }

    #[test]
    fn slippage_adds_to_the_fee_and_fill_is_checked() {
        let c = json!({"costs": {"fee": 0.001, "slippage_bps": 5}});
        assert!((fee(&c).unwrap() - 0.0015).abs() < 1e-18);
        assert_eq!(costs(&c).unwrap(), (0.001, 5.0));
        let e = fee(&json!({"costs": {"slippage_bps": -1}})).unwrap_err();
        assert_eq!(e.key, "costs.slippage_bps");
        let e = fee(&json!({"costs": {"fee": 0.5, "slippage_bps": 6000}})).unwrap_err();
        assert_eq!(e.key, "costs");
        assert_eq!(fill(&json!({})).unwrap(), Fill::Close);
        assert_eq!(
            fill(&json!({"execution": {"fill": "next_open"}})).unwrap(),
            Fill::NextOpen
        );
        let e = fill(&json!({"execution": {"fill": "next_opne"}})).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.hint.as_deref()),
            ("execution.fill", Some("did you mean `next_open`?"))
        );
        let e = fill(&json!({"execution": {"fil": "close"}})).unwrap_err();
        assert_eq!(e.key, "execution.fil");
    }
}
