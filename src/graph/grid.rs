//! `grid:` expansion: the cartesian product of parameter lists, in declared
//! key order, the last key varying fastest. Values are lists or
//! `"range(a, b, step)"`, inclusive of `b`.

use serde_json::{Map, Number, Value};

use crate::phases::ConfigIssue;

/// More combinations than this, in one grid or in all the grids of one
/// build graph, is almost certainly a typo in a range.
pub const MAX_TRIALS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub index: usize,
    pub name: String,
    /// (grid key, value) in declared key order.
    pub params: Vec<(String, Value)>,
}

/// The number of trials `grid` expands to, counted from the
/// declaration (a range's length is arithmetic), so a refused grid costs
/// no memory. Errors as [`expand`] does.
pub fn count(grid: &Value) -> Result<u128, ConfigIssue> {
    let map = grid
        .as_object()
        .ok_or_else(|| ConfigIssue::new("grid", "must be a mapping of parameter → values"))?;
    if map.is_empty() {
        return Err(ConfigIssue::new("grid", "is empty"));
    }
    let mut sizes = Vec::with_capacity(map.len());
    for (key, values) in map {
        sizes.push((key, axis_len(key, values)?));
    }
    let combinations = sizes
        .iter()
        .fold(1u128, |n, (_, len)| n.saturating_mul(*len));
    if combinations > MAX_TRIALS as u128 {
        let sizes: Vec<String> = sizes.iter().map(|(k, n)| format!("{n} {k}")).collect();
        return Err(ConfigIssue::new(
            "grid",
            format!(
                "the grid has {combinations} combinations ({}), above the bound of {MAX_TRIALS}",
                sizes.join(" × ")
            ),
        ));
    }
    Ok(combinations)
}

/// Expand `grid` (the value of a phase's `grid:` key).
/// Trials are named `prefix_key=value_...`, `trial_...` without a prefix.
pub fn expand(grid: &Value, prefix: Option<&str>) -> Result<Vec<Trial>, ConfigIssue> {
    let total = count(grid)? as usize;
    let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, values) in grid.as_object().into_iter().flatten() {
        axes.push((key.clone(), axis(key, values)?));
    }
    let prefix = prefix.unwrap_or("trial");
    Ok((0..total)
        .map(|index| {
            let mut rest = index;
            let mut params = vec![(String::new(), Value::Null); axes.len()];
            for (slot, (key, values)) in params.iter_mut().zip(&axes).rev() {
                *slot = (key.clone(), values[rest % values.len()].clone());
                rest /= values.len();
            }
            let name = std::iter::once(prefix.to_string())
                .chain(params.iter().map(|(k, v)| format!("{k}={}", plain(v))))
                .collect::<Vec<_>>()
                .join("_");
            Trial {
                index,
                name,
                params,
            }
        })
        .collect())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The values of one grid key.
fn axis(key: &str, values: &Value) -> Result<Vec<Value>, ConfigIssue> {
    axis_len(key, values)?;
    match values {
        Value::String(text) => {
            let spec = range(text).map_err(|m| ConfigIssue::new(format!("grid.{key}"), m))?;
            Ok(spec.values())
        }
        Value::Array(items) => Ok(items.clone()),
        _ => Ok(Vec::new()),
    }
}

/// How many values one grid key has, checked but not expanded.
fn axis_len(key: &str, values: &Value) -> Result<u128, ConfigIssue> {
    let at = format!("grid.{key}");
    match values {
        Value::Array(items) if items.is_empty() => Err(ConfigIssue::new(at, "has no values")),
        Value::Array(items) => {
            if items.iter().any(|v| v.is_array() || v.is_object()) {
                return Err(ConfigIssue::new(
                    at,
                    "values must be numbers, strings or booleans",
                ));
            }
            Ok(items.len() as u128)
        }
        Value::String(text) => range(text)
            .map(|spec| spec.len() as u128)
            .map_err(|m| ConfigIssue::new(at, m)),
        _ => Err(ConfigIssue::new(
            at,
            "must be a list of values or \"range(start, stop, step)\"",
        )),
    }
}

/// A checked `range(a, b, step)`: its first value, step and length.
enum Range {
    Int { start: i64, step: i64, count: usize },
    Float { start: f64, step: f64, count: usize },
}

impl Range {
    fn len(&self) -> usize {
        match *self {
            Range::Int { count, .. } | Range::Float { count, .. } => count,
        }
    }

    /// Every value; integers stay integers.
    fn values(&self) -> Vec<Value> {
        match *self {
            Range::Int { start, step, count } => (0..count as i64)
                .map(|i| Value::from(start + i * step))
                .collect(),
            Range::Float { start, step, count } => (0..count)
                .map(|i| {
                    let x = round_sig(start + i as f64 * step);
                    Number::from_f64(x).map_or(Value::Null, Value::Number)
                })
                .collect(),
        }
    }
}

/// `range(a, b, step)`, inclusive of `b`, at most [`MAX_TRIALS`] values.
fn range(text: &str) -> Result<Range, String> {
    let usage = || format!("`{text}` is not \"range(start, stop, step)\"");
    let inner = text
        .trim()
        .strip_prefix("range(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(usage)?;
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(usage());
    }
    if let (Ok(a), Ok(b), Ok(step)) = (
        parts[0].parse::<i64>(),
        parts[1].parse::<i64>(),
        parts[2].parse::<i64>(),
    ) {
        if step <= 0 || b < a {
            return Err(format!("`{text}`: need start ≤ stop and step > 0"));
        }
        // In i128: `b - a` overflows i64 for ranges spanning its whole width.
        let count = (i128::from(b) - i128::from(a)) / i128::from(step) + 1;
        if count > MAX_TRIALS as i128 {
            return Err(format!("`{text}` has more than {MAX_TRIALS} values"));
        }
        return Ok(Range::Int {
            start: a,
            step,
            count: count as usize,
        });
    }
    let nums: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(usage)?;
    let (a, b, step) = (nums[0], nums[1], nums[2]);
    if step <= 0.0 || b < a {
        return Err(format!("`{text}`: need start ≤ stop and step > 0"));
    }
    // The epsilon keeps `range(0.1, 0.3, 0.1)` at three values despite
    // binary rounding of the quotient. `b - a` may overflow to infinity,
    // which the bound refuses.
    let count = ((b - a) / step + 1e-9).floor() + 1.0;
    if count > MAX_TRIALS as f64 {
        return Err(format!("`{text}` has more than {MAX_TRIALS} values"));
    }
    Ok(Range::Float {
        start: a,
        step,
        count: count as usize,
    })
}

/// Round to 12 significant digits so `0.1 + 2 * 0.1` prints as `0.3`.
fn round_sig(x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let digits = 12 - libm::log10(x.abs()).ceil() as i32;
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// A trial's config: the phase config without `grid`, the trial's values
/// set at the full path for a key with a dot (`costs.fee`), else at the
/// path `plain_key_path` gives (the mode's: a strategy parameter for a
/// sweep).
pub fn trial_config(
    config: &Map<String, Value>,
    trial: &Trial,
    plain_key_path: &dyn Fn(&str) -> Vec<String>,
) -> Map<String, Value> {
    let mut out = config.clone();
    out.shift_remove("grid");
    // A trial runs over every bar whatever the split; only the gather,
    // which ranks the trials, reads it (so a new split reruns no trial).
    out.shift_remove("split");
    set_params(&mut out, trial, plain_key_path);
    out
}

/// The top-level `sections` of [`trial_config`] and nothing else: what
/// a normal-form step reading only those sections needs, without
/// copying the rest of the config for every trial.
pub fn trial_sections(
    config: &Map<String, Value>,
    trial: &Trial,
    plain_key_path: &dyn Fn(&str) -> Vec<String>,
    sections: &[&str],
) -> Map<String, Value> {
    let mut out = Map::new();
    for section in sections {
        if let Some(value) = config.get(*section)
            && !matches!(*section, "grid" | "split")
        {
            out.insert(section.to_string(), value.clone());
        }
    }
    set_params(&mut out, trial, plain_key_path);
    out
}

/// The config path a grid key sets: its own dotted path, or the path
/// the mode gives a plain key.
pub fn key_path(key: &str, plain_key_path: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    if key.contains('.') {
        key.split('.').map(str::to_string).collect()
    } else {
        plain_key_path(key)
    }
}

fn set_params(
    out: &mut Map<String, Value>,
    trial: &Trial,
    plain_key_path: &dyn Fn(&str) -> Vec<String>,
) {
    for (key, value) in &trial.params {
        let path = key_path(key, plain_key_path);
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        set_path(out, &path, value.clone());
    }
}

/// How many values each key of a grid that [`expand`] accepted has, in
/// declared key order: trial `i` takes value `i / stride % len` of each
/// key, the stride being the product of the lengths after it.
pub fn axis_lengths(grid: &Value) -> Result<Vec<usize>, ConfigIssue> {
    grid.as_object()
        .into_iter()
        .flatten()
        .map(|(key, values)| axis_len(key, values).map(|n| n as usize))
        .collect()
}

fn set_path(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    if path.len() == 1 {
        map.insert(path[0].to_string(), value);
        return;
    }
    let child = map
        .entry(path[0].to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(m) = child {
        set_path(m, &path[1..], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cartesian_product_in_declared_order() {
        let grid = json!({"lookback": [10, 20, 30], "threshold": [0.01, 0.02]});
        let trials = expand(&grid, Some("momentum")).unwrap();
        assert_eq!(trials.len(), 6);
        assert_eq!(trials[0].name, "momentum_lookback=10_threshold=0.01");
        assert_eq!(trials[1].name, "momentum_lookback=10_threshold=0.02");
        assert_eq!(trials[5].name, "momentum_lookback=30_threshold=0.02");
        assert_eq!(trials[3].params[0], ("lookback".to_string(), json!(20)));
    }

    #[test]
    fn ranges_are_inclusive() {
        let t = expand(&json!({"n": "range(5, 25, 5)"}), None).unwrap();
        let values: Vec<_> = t.iter().map(|t| t.params[0].1.clone()).collect();
        assert_eq!(
            values,
            vec![json!(5), json!(10), json!(15), json!(20), json!(25)]
        );
        let f = expand(&json!({"x": "range(0.1, 0.3, 0.1)"}), None).unwrap();
        let values: Vec<_> = f.iter().map(|t| t.params[0].1.clone()).collect();
        assert_eq!(values, vec![json!(0.1), json!(0.2), json!(0.3)]);
    }

    #[test]
    fn bad_grids_name_the_key() {
        for (grid, key) in [
            (json!({"a": []}), "grid.a"),
            (json!({"a": "range(1, 2)"}), "grid.a"),
            (json!({"a": "range(5, 1, 1)"}), "grid.a"),
            (json!({"a": "range(1, 5, 0)"}), "grid.a"),
            (json!({"a": 3}), "grid.a"),
            (json!({"a": [[1]]}), "grid.a"),
            (json!([1, 2]), "grid"),
            (json!({"a": "range(0, 100000000, 1)"}), "grid.a"),
            (
                json!({"a": "range(-9223372036854775808, 9223372036854775807, 1)"}),
                "grid.a",
            ),
        ] {
            assert_eq!(expand(&grid, None).unwrap_err().key, key, "{grid}");
        }
        let huge =
            json!({"a": "range(1, 1000, 1)", "b": "range(1, 1000, 1)", "c": "range(1, 1000, 1)"});
        let err = expand(&huge, None).unwrap_err();
        assert_eq!(err.key, "grid");
        assert!(
            err.message
                .starts_with("the grid has 1000000000 combinations (1000 a × 1000 b × 1000 c)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn trial_config_merges_parameters_and_dotted_keys() {
        let config = json!({"strategy": {"type": "momentum", "parameters": {"lookback": 5}},
                            "grid": {"lookback": [1], "costs.fee": [0.1]}});
        let trials = expand(&config["grid"], Some("momentum")).unwrap();
        let parameter = |k: &str| vec!["strategy".into(), "parameters".into(), k.to_string()];
        let c = trial_config(config.as_object().unwrap(), &trials[0], &parameter);
        assert_eq!(
            Value::Object(c),
            json!({"strategy": {"type": "momentum", "parameters": {"lookback": 1}}, "costs": {"fee": 0.1}})
        );
    }

    proptest::proptest! {
        #[test]
        fn every_combination_appears_once(a in 1usize..5, b in 1usize..5, c in 1usize..4) {
            let grid = json!({"a": (0..a).collect::<Vec<_>>(), "b": (0..b).collect::<Vec<_>>(), "c": (0..c).collect::<Vec<_>>()});
            let trials = expand(&grid, None).unwrap();
            proptest::prop_assert_eq!(trials.len(), a * b * c);
            let mut names: Vec<_> = trials.iter().map(|t| t.name.clone()).collect();
            names.sort();
            names.dedup();
            proptest::prop_assert_eq!(names.len(), a * b * c);
        }
    }
}
