//! The config a trading mode inherits from the top of the workflow:
//! `data:`, `strategy:`, `costs:` and `execution:`, parsed and checked,
//! each problem reported at its dotted key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigIssue, PhaseError};
use crate::error::did_you_mean;
use crate::market::equity::Fill;
use crate::market::{BadRowPolicy, Strategy, strategy::SpecIssue};

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

/// The paths in `data:` relative to the file that wrote them
/// ([`super::Phase::relative_paths`] of every mode that reads data).
pub const DATA_PATHS: &[&str] = &["data.path", "data.dir"];

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
    reject_unknown("data", data, DATA_KEYS)?;
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

/// The first key of the `section:` map `map` that is not one of `known`,
/// reported at `section.key` with the known keys and the nearest one.
pub fn reject_unknown(
    section: &str,
    map: &serde_json::Map<String, Value>,
    known: &[&str],
) -> Result<(), ConfigIssue> {
    match map.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(issue(
            format!("{section}.{key}"),
            format!(
                "unknown {section} key `{key}` (known: {})",
                known.join(", ")
            ),
            did_you_mean(key, known.iter().copied()),
        )),
    }
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
    reject_unknown("costs", map, COSTS_KEYS)?;
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
    reject_unknown("execution", map, &["fill"])?;
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

/// A stable trial name from the strategy type and its parameters that
/// differ from the type's defaults, in key order, as the grid names trials
/// (`momentum_lookback=30_threshold=0.01`). A default written out or left
/// out gives the same name, as it gives the same key.
pub fn trial_name(config: &Value, strategy: &Strategy) -> String {
    let mut name = strategy.kind().to_string();
    let defaults = Strategy::from_config(&serde_json::json!({"type": strategy.kind()}))
        .map(|s| s.parameters())
        .unwrap_or(Value::Null);
    if let Some(Value::Object(p)) = config.get("strategy").and_then(|s| s.get("parameters")) {
        for (k, v) in p {
            if defaults.get(k).is_some_and(|d| same_value(d, v)) {
                continue;
            }
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(name, "_{k}={v}");
        }
    }
    name
}

/// Equal values, a whole number equal to the same float.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The normal form of the inherited keys a mode reads: every default the
/// parsers apply written out and each value in the one form it parses
/// from, so that omitting a key and writing its default give the same
/// config, hence the same node key. Each function checks what it
/// normalises and reports a bad value at its dotted key.
pub mod normal {
    use serde_json::{Map, Value, json};

    use super::{ConfigIssue, costs, data_spec, fill, spec_issue};
    use crate::market::Strategy;

    /// `config` with only `key` (when present): what a parser of that one
    /// key needs, without copying the rest.
    fn only(config: &Map<String, Value>, key: &str) -> Value {
        let mut m = Map::new();
        if let Some(v) = config.get(key) {
            m.insert(key.to_string(), v.clone());
        }
        Value::Object(m)
    }

    /// `data:` with `source` and `on_bad_rows` written out, `symbols` a
    /// list, `pattern` with `dir`
    /// (and left out without it), and a null `periods_per_year` or
    /// `holdout` left out.
    pub fn data(config: &mut Map<String, Value>) -> Result<(), ConfigIssue> {
        let spec = data_spec(&only(config, "data"), std::path::Path::new(""))?;
        let Some(Value::Object(data)) = config.get_mut("data") else {
            return Ok(());
        };
        data.insert("source".into(), json!("csv"));
        data.entry("on_bad_rows").or_insert_with(|| json!("error"));
        // Left out, the symbol is the file's stem, read from `path`
        // itself; written, one name or a list is a list.
        if data.contains_key("symbols") {
            data.insert("symbols".into(), json!(spec.symbols));
        }
        if data.contains_key("dir") {
            data.entry("pattern")
                .or_insert_with(|| json!("{symbol}.csv"));
        } else {
            // Only `dir:` reads it.
            data.shift_remove("pattern");
        }
        match spec.periods_per_year {
            Some(p) => data.insert("periods_per_year".into(), json!(p)),
            None => data.shift_remove("periods_per_year"),
        };
        if data.get("holdout") == Some(&Value::Null) {
            data.shift_remove("holdout");
        }
        Ok(())
    }

    /// `strategy: {type, parameters}` with every parameter, defaults and
    /// `allow_short` included.
    pub fn strategy(config: &mut Map<String, Value>) -> Result<(), ConfigIssue> {
        let Some(s) = config.get("strategy") else {
            return Err(ConfigIssue::new(
                "strategy",
                "missing `strategy:` (type, parameters)",
            ));
        };
        let s = Strategy::from_config(s).map_err(|e| spec_issue("strategy", e))?;
        config.insert(
            "strategy".into(),
            json!({"type": s.kind(), "parameters": s.parameters()}),
        );
        Ok(())
    }

    /// `costs: {fee, slippage_bps}`, each 0 when absent.
    pub fn costs_and_fill(config: &mut Map<String, Value>) -> Result<(), ConfigIssue> {
        let (fee, slippage_bps) = costs(&only(config, "costs"))?;
        let fill = fill(&only(config, "execution"))?;
        config.insert(
            "costs".into(),
            json!({"fee": fee, "slippage_bps": slippage_bps}),
        );
        config.insert("execution".into(), json!({"fill": fill.name()}));
        Ok(())
    }

    /// `split:` as the parts it declares (a bare train fraction when that
    /// is all), `0.8` when absent.
    pub fn split(config: &mut Map<String, Value>) -> Result<(), ConfigIssue> {
        let split = crate::phases::split::split(&only(config, "split"))?;
        config.insert("split".into(), split.to_json());
        Ok(())
    }

    /// One step of a normal form.
    pub type Step = fn(&mut Map<String, Value>) -> Result<(), ConfigIssue>;

    /// Each step that reads and writes only its own top-level sections,
    /// with those sections. A grid that sets values in these sections
    /// only changes what its step writes: the compiler normalises a grid
    /// trial by running those steps over the trial's sections and
    /// writing their output over the normal config shared by all trials.
    pub const SECTION_STEPS: &[(&[&str], Step)] = &[
        (&["data"], data),
        (&["strategy"], strategy),
        (&["costs", "execution"], costs_and_fill),
        (&["split"], split),
    ];

    /// The index in [`SECTION_STEPS`] of the step owning top-level
    /// section `section`.
    pub fn section_step(section: &str) -> Option<usize> {
        SECTION_STEPS
            .iter()
            .position(|(sections, _)| sections.contains(&section))
    }

    /// `config` with `steps` applied in order.
    pub fn apply(config: Value, steps: &[Step]) -> Result<Value, ConfigIssue> {
        let Value::Object(mut m) = config else {
            return Ok(config);
        };
        for step in steps {
            step(&mut m)?;
        }
        Ok(Value::Object(m))
    }

    /// The steps of a mode that runs over the data with costs and a fill.
    pub const MARKET: &[Step] = &[data, costs_and_fill];

    /// [`MARKET`] and the strategy of a mode that runs it.
    pub const STRATEGY: &[Step] = &[data, strategy, costs_and_fill];

    /// [`MARKET`] and the split of a mode that selects on its train part.
    pub const SELECTING: &[Step] = &[data, costs_and_fill, split];

    /// [`SELECTING`] of a mode whose config may have no `data:`.
    pub const UNLESS_DATA: &[Step] = &[costs_and_fill, split];

    /// `config` with `steps` applied in order and without the inherited
    /// `strategy:` of a mode that never reads it (it takes its trials
    /// from upstream), so that editing it does not change the key.
    pub fn without_strategy(
        config: Value,
        steps: &[Step],
    ) -> Result<Map<String, Value>, ConfigIssue> {
        let Value::Object(mut m) = apply(config, steps)? else {
            return Err(ConfigIssue::new("", "expected a map of config keys"));
        };
        m.shift_remove("strategy");
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_section_refuses_an_unknown_key_alike() {
        for (config, key, hint) in [
            (json!({"data": {"paht": "x"}}), "data.paht", "path"),
            (json!({"costs": {"fees": 0.1}}), "costs.fees", "fee"),
            (
                json!({"execution": {"fil": "close"}}),
                "execution.fil",
                "fill",
            ),
            (json!({"split": {"trian": 0.7}}), "split.trian", "train"),
        ] {
            let e = data_spec(&config, Path::new("/w"))
                .err()
                .filter(|_| config.get("data").is_some())
                .or_else(|| costs(&config).err())
                .or_else(|| fill(&config).err())
                .or_else(|| crate::phases::split::split(&config).err())
                .unwrap_or_else(|| panic!("{config} was accepted"));
            let section = key.split('.').next().unwrap();
            assert_eq!(e.key, key);
            assert!(
                e.message.starts_with(&format!("unknown {section} key `")),
                "{}",
                e.message
            );
            assert!(e.message.contains("(known: "), "{}", e.message);
            assert_eq!(e.hint, Some(format!("did you mean `{hint}`?")));
        }
    }

    #[test]
    fn a_trial_name_lists_what_differs_from_the_defaults_in_declared_order() {
        let name = |parameters: Value| {
            let c = json!({"strategy": {"type": "momentum", "parameters": parameters}});
            let mut m = c.as_object().unwrap().clone();
            normal::strategy(&mut m).unwrap();
            let c = Value::Object(m);
            trial_name(&c, &strategy(&c).unwrap())
        };
        assert_eq!(
            name(json!({"threshold": 0.01, "lookback": 30})),
            "momentum_lookback=30_threshold=0.01"
        );
        assert_eq!(
            name(json!({"lookback": 30, "threshold": 0, "allow_short": false})),
            "momentum_lookback=30"
        );
        assert_eq!(
            name(json!({"allow_short": true})),
            "momentum_allow_short=true"
        );
        assert_eq!(name(json!({})), "momentum");
    }
}
