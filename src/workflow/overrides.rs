//! `--set key=value` overrides, applied to the root workflow document before
//! it is normalised, so they travel into node configs (and keys) exactly as
//! if the file had said them.
//!
//! `K` is a dotted path. When its first segment names a phase of the root
//! file, the rest is a path inside that phase (`sweep.grid.lookback=[5,10]`);
//! otherwise it is a path from the top level (`strategy.parameters.lookback=30`),
//! which every phase inherits. Missing mappings on the way are created.

use serde_yaml::{Mapping, Value};

use super::forms::{self, TOP_KEYS};
use super::yaml;
use crate::error::{Error, did_you_mean};

pub fn apply(root: &mut Value, sets: &[String]) -> Result<(), Error> {
    for set in sets {
        apply_one(root, set)?;
    }
    Ok(())
}

fn usage(message: String, hint: Option<String>) -> Error {
    Error::Usage { message, hint }
}

fn apply_one(root: &mut Value, set: &str) -> Result<(), Error> {
    let (path, raw) = set.split_once('=').ok_or_else(|| {
        usage(
            format!("--set `{set}`: expected KEY=VALUE"),
            Some("for example --set strategy.parameters.lookback=30".into()),
        )
    })?;
    let value = yaml::parse_value(raw)
        .map_err(|e| usage(format!("--set `{set}`: value is not valid YAML: {e}"), None))?;
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(usage(
            format!("--set `{set}`: empty segment in `{path}`"),
            None,
        ));
    }
    let top = forms::unwrap_top_mut(root).ok_or_else(|| {
        usage(
            format!("--set `{set}`: the workflow is not a mapping"),
            None,
        )
    })?;
    let phase_names = forms::phase_names(top);
    let (mut target, rest) = if phase_names.iter().any(|n| n == segments[0]) {
        let phase = forms::phase_map_mut(top, segments[0]).ok_or_else(|| {
            usage(
                format!("--set `{set}`: phase `{}` is not a mapping", segments[0]),
                None,
            )
        })?;
        (phase, &segments[1..])
    } else if TOP_KEYS.contains(&segments[0]) && segments[0] != "phases" {
        (top, &segments[..])
    } else {
        let candidates = TOP_KEYS
            .iter()
            .copied()
            .chain(phase_names.iter().map(String::as_str));
        return Err(usage(
            format!(
                "--set `{set}`: `{}` is neither a top-level key nor a phase of this workflow",
                segments[0]
            ),
            did_you_mean(segments[0], candidates),
        ));
    };
    if rest.is_empty() {
        return Err(usage(
            format!("--set `{set}`: cannot replace a whole phase"),
            None,
        ));
    }
    for (i, seg) in rest.iter().enumerate() {
        let key = Value::String(seg.to_string());
        if i + 1 == rest.len() {
            target.insert(key, value);
            return Ok(());
        }
        let next = target
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if next.is_null() {
            *next = Value::Mapping(Mapping::new());
        }
        target = match next {
            Value::Mapping(m) => m,
            other => {
                return Err(usage(
                    format!(
                        "--set `{set}`: `{}` is {}, not a mapping",
                        rest[..=i].join("."),
                        kind(other)
                    ),
                    None,
                ));
            }
        };
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn sets_top_level_paths_creating_maps() {
        let mut d = doc("strategy: {type: momentum}\n");
        apply(&mut d, &["strategy.parameters.lookback=30".into()]).unwrap();
        assert_eq!(d["strategy"]["parameters"]["lookback"], Value::from(30));
    }

    #[test]
    fn sets_inside_a_named_phase_of_either_form() {
        let mut d = doc("phases:\n  - {name: a, mode: backtest}\n  - b: {mode: report}\n");
        apply(
            &mut d,
            &["a.costs.fee=0.002".into(), "b.title=hello".into()],
        )
        .unwrap();
        assert_eq!(d["phases"][0]["costs"]["fee"], Value::from(0.002));
        assert_eq!(d["phases"][1]["b"]["title"], Value::from("hello"));
    }

    #[test]
    fn parses_values_as_yaml() {
        let mut d = doc("phases:\n  - {name: s, mode: signal_generation}\n");
        apply(&mut d, &["s.grid.lookback=[5, 10]".into()]).unwrap();
        assert_eq!(d["phases"][0]["grid"]["lookback"], doc("[5, 10]"));
    }

    #[test]
    fn rejects_bad_paths_with_hints() {
        let mut d = doc("strategy: {type: momentum}\nphases:\n  - {name: a, mode: backtest}\n");
        let err = apply(&mut d, &["stratgy.type=rsi".into()]).unwrap_err();
        assert!(err.to_string().contains("stratgy"));
        assert!(matches!(err, Error::Usage { hint: Some(ref h), .. } if h.contains("strategy")));
        assert!(apply(&mut d, &["strategy.type.x=1".into()]).is_err());
        assert!(apply(&mut d, &["novalue".into()]).is_err());
        assert!(apply(&mut d, &["a..b=1".into()]).is_err());
    }
}
