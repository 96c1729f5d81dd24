//! `split:`: the parts of the bars, in time order, declared once per
//! workflow and inherited by every mode that selects or reports.
//!
//! - `split: 0.8` or `split: {train: 0.8}`: train, then test (the rest);
//! - `split: {train: 0.6, validation: 0.2, test: 0.2}`: fractions of the
//!   bars (`test` may be left out: the rest; when given, the three sum to 1);
//! - `split: {train: 2014-12-31, validation: 2016-12-31}`: the last date
//!   (or timestamp) of each part; a date alone covers that whole day.
//!
//! Every selection looks at the train part only. The validation part is
//! measured and shown, never chosen on; the test part follows it.
//! Boundaries by fraction: train ends at s = ⌊N·train⌋ kept in 2..N−1
//! (as without a validation part), validation at ⌊N·(train +
//! validation)⌋.

use serde_json::Value;

use super::ConfigIssue;
use crate::market::timestamp;

pub const DEFAULT_TRAIN: f64 = 0.8;

const KEYS: [&str; 3] = ["train", "validation", "test"];

/// Where a part ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Edge {
    /// A fraction of the bars (cumulative from the first bar).
    Fraction(f64),
    /// The last timestamp inside the part (seconds), and the text declared.
    Until(i64, String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Edge,
    pub validation: Option<Edge>,
}

/// Bar indices: train is `0..train_end`, validation
/// `train_end..validation_end` (empty without one), test
/// `validation_end..n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    pub train_end: usize,
    pub validation_end: usize,
    pub n: usize,
}

impl Parts {
    pub fn has_validation(&self) -> bool {
        self.validation_end > self.train_end
    }

    /// The part bar `t` belongs to.
    pub fn name(&self, t: usize) -> &'static str {
        if t < self.train_end {
            "train"
        } else if t < self.validation_end {
            "validation"
        } else {
            "test"
        }
    }
}

fn bad(key: &str) -> ConfigIssue {
    ConfigIssue::new(
        key,
        "expected a fraction in (0, 1) or a date, e.g. 0.8, {train: 0.6, validation: 0.2, test: 0.2} or {train: 2014-12-31, validation: 2016-12-31}",
    )
}

fn edge(key: &str, v: &Value) -> Result<Edge, ConfigIssue> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| *f > 0.0 && *f < 1.0)
            .map(Edge::Fraction)
            .ok_or_else(|| bad(key)),
        Value::String(s) => {
            let at = timestamp::parse(s).ok_or_else(|| {
                ConfigIssue::new(
                    key,
                    format!("`{s}` is not a date (YYYY-MM-DD or a timestamp)"),
                )
            })?;
            // A date alone (no time of day) covers its whole day.
            let date_only = s.trim().len() <= 10;
            Ok(Edge::Until(
                if date_only { at + 86_399 } else { at },
                s.clone(),
            ))
        }
        _ => Err(bad(key)),
    }
}

/// The `split:` of `config`; train 0.8 when absent.
pub fn split(config: &Value) -> Result<Split, ConfigIssue> {
    let map = match config.get("split") {
        None | Some(Value::Null) => {
            return Ok(Split {
                train: Edge::Fraction(DEFAULT_TRAIN),
                validation: None,
            });
        }
        Some(Value::Object(m)) => m,
        Some(v) => {
            return match edge("split", v)? {
                e @ Edge::Fraction(_) => Ok(Split {
                    train: e,
                    validation: None,
                }),
                Edge::Until(..) => Err(bad("split")),
            };
        }
    };
    super::config::reject_unknown("split", map, &KEYS)?;
    let get = |k: &str| -> Result<Option<Edge>, ConfigIssue> {
        map.get(k)
            .map(|v| edge(&format!("split.{k}"), v))
            .transpose()
    };
    let train = get("train")?.ok_or_else(|| bad("split.train"))?;
    let validation = get("validation")?;
    let test = get("test")?;
    match (&train, &validation, &test) {
        (Edge::Fraction(t), v, test) => {
            let v = match v {
                None => 0.0,
                Some(Edge::Fraction(v)) => *v,
                Some(Edge::Until(..)) => return Err(mixed()),
            };
            let sum = t + v;
            match test {
                None if sum < 1.0 => {}
                None => {
                    return Err(ConfigIssue::new(
                        "split",
                        format!(
                            "train and validation take {sum} of the bars; nothing is left to test"
                        ),
                    ));
                }
                Some(Edge::Fraction(x)) if (sum + x - 1.0).abs() <= 1e-9 => {}
                Some(Edge::Fraction(x)) => {
                    return Err(ConfigIssue::new(
                        "split.test",
                        format!("train, validation and test sum to {}, not 1", sum + x),
                    ));
                }
                Some(Edge::Until(..)) => return Err(mixed()),
            }
        }
        (Edge::Until(t, _), v, test) => {
            if test.is_some() {
                return Err(ConfigIssue::new(
                    "split.test",
                    "with dates the test part is every bar after the last part declared; leave `test` out",
                ));
            }
            match v {
                None => {}
                Some(Edge::Until(v, _)) if v > t => {}
                Some(Edge::Until(..)) => {
                    return Err(ConfigIssue::new(
                        "split.validation",
                        "the validation part must end after the train part",
                    ));
                }
                Some(Edge::Fraction(_)) => return Err(mixed()),
            }
        }
    }
    Ok(Split { train, validation })
}

fn mixed() -> ConfigIssue {
    ConfigIssue::new(
        "split",
        "give every part as a fraction or every part as a date, not both",
    )
}

impl Split {
    /// The parts of `n` bars stamped `ts` (seconds, ascending). An error
    /// names a part left with too few bars.
    pub fn parts(&self, ts: &[i64]) -> Result<Parts, String> {
        let n = ts.len();
        let until = |at: i64| ts.partition_point(|&x| x <= at);
        let train_end = match &self.train {
            Edge::Fraction(f) => split_index(n, *f),
            Edge::Until(at, _) => until(*at),
        };
        let validation_end = match (&self.train, &self.validation) {
            (_, None) => train_end,
            (Edge::Fraction(t), Some(Edge::Fraction(v))) => (n as f64 * (t + v)).floor() as usize,
            (_, Some(Edge::Until(at, _))) => until(*at),
            (Edge::Until(..), Some(Edge::Fraction(_))) => train_end,
        };
        if train_end < 2 {
            return Err(format!(
                "the train part of the split holds {train_end} bars; it needs at least 2"
            ));
        }
        if self.validation.is_some() && validation_end <= train_end {
            return Err("the validation part of the split holds no bar".into());
        }
        if validation_end >= n {
            return Err(format!(
                "the split leaves no bar to test ({n} bars, the test part would start at bar {validation_end})"
            ));
        }
        Ok(Parts {
            train_end,
            validation_end,
            n,
        })
    }

    /// As `weights.json` records it: the train fraction alone when that is
    /// all there is, else the map of the parts.
    pub fn to_json(&self) -> Value {
        let edge = |e: &Edge| match e {
            Edge::Fraction(f) => serde_json::json!(f),
            Edge::Until(_, text) => serde_json::json!(text),
        };
        match (&self.train, &self.validation) {
            (Edge::Fraction(f), None) => serde_json::json!(f),
            (t, v) => {
                let mut m = serde_json::Map::new();
                m.insert("train".into(), edge(t));
                if let Some(v) = v {
                    m.insert("validation".into(), edge(v));
                }
                Value::Object(m)
            }
        }
    }

    /// One line for a report header.
    pub fn describe(&self) -> String {
        let pct = |f: f64| format!("{:.0}%", f * 100.0);
        match (&self.train, &self.validation) {
            (Edge::Fraction(t), None) => format!(
                "the first {} of the bars train every selection; the rest is the test",
                pct(*t)
            ),
            (Edge::Fraction(t), Some(Edge::Fraction(v))) => format!(
                "train {} of the bars (every selection sees it only), then validation {}, then test {}",
                pct(*t),
                pct(*v),
                pct(1.0 - t - v)
            ),
            (Edge::Until(_, t), None) => {
                format!("the bars up to {t} train every selection; the rest is the test")
            }
            (Edge::Until(_, t), Some(Edge::Until(_, v))) => format!(
                "train up to {t} (every selection sees it only), validation up to {v}, test after"
            ),
            _ => String::new(),
        }
    }
}

/// s = ⌊N·fraction⌋, kept in 2..N−1: the first bar after the train part.
/// Train returns are r_1..r_{s−1} (bars 0..s), test returns r_s..r_T.
pub fn split_index(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).floor() as usize).clamp(2, n.saturating_sub(1).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(split_value: Value, ts: &[i64]) -> Result<Parts, String> {
        split(&json!({ "split": split_value })).unwrap().parts(ts)
    }

    #[test]
    fn the_short_forms() {
        let train = |v: Value| split(&json!({ "split": v })).unwrap().train;
        assert_eq!(split(&json!({})).unwrap().train, Edge::Fraction(0.8));
        assert_eq!(train(json!(0.6)), Edge::Fraction(0.6));
        assert_eq!(train(json!({"train": 0.7})), Edge::Fraction(0.7));
        let e = split(&json!({"split": {"train": 0}})).unwrap_err();
        assert_eq!(e.key, "split.train");
        let e = split(&json!({"split": {"trian": 0.5}})).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `train`?"));
        assert_eq!(split_index(5241, 0.8), 4192);
        assert_eq!((split_index(3, 0.1), split_index(10, 0.99)), (2, 9));
    }

    #[test]
    fn fractions_with_and_without_validation() {
        let ts: Vec<i64> = (0..10).collect();
        let p = parts(json!(0.8), &ts).unwrap();
        assert_eq!((p.train_end, p.validation_end), (8, 8));
        assert!(!p.has_validation());
        let p = parts(json!({"train": 0.6, "validation": 0.2, "test": 0.2}), &ts).unwrap();
        assert_eq!((p.train_end, p.validation_end), (6, 8));
        assert_eq!(
            (p.name(5), p.name(6), p.name(8)),
            ("train", "validation", "test")
        );
        let p = parts(json!({"train": 0.5, "validation": 0.3}), &ts).unwrap();
        assert_eq!((p.train_end, p.validation_end), (5, 8));
        // Too few bars for a validation part.
        assert!(parts(json!({"train": 0.5, "validation": 0.01}), &ts).is_err());
    }

    #[test]
    fn dates_end_with_their_whole_day() {
        let day = 86_400;
        let ts: Vec<i64> = (0..10).map(|d| d * day + 9 * 3600).collect();
        // 1970-01-03 is day 2: bars 0, 1, 2 train.
        let p = parts(
            json!({"train": "1970-01-03", "validation": "1970-01-06"}),
            &ts,
        )
        .unwrap();
        assert_eq!((p.train_end, p.validation_end), (3, 6));
        let p = parts(json!({"train": "1970-01-03 08:00"}), &ts).unwrap();
        assert_eq!(p.train_end, 2);
        assert!(parts(json!({"train": "1970-01-01"}), &ts).is_err());
        assert!(parts(json!({"train": "1970-02-01"}), &ts).is_err());
    }

    #[test]
    fn bad_splits_name_their_key() {
        let key = |v: Value| split(&json!({ "split": v })).unwrap_err().key;
        assert_eq!(
            key(json!({"train": 0.6, "validation": 0.2, "test": 0.3})),
            "split.test"
        );
        assert_eq!(key(json!({"train": 0.6, "validation": 0.4})), "split");
        assert_eq!(
            key(json!({"train": 0.6, "validation": "2015-01-01"})),
            "split"
        );
        assert_eq!(
            key(json!({"train": "2015-01-01", "validation": "2014-01-01"})),
            "split.validation"
        );
        assert_eq!(
            key(json!({"train": "2015-01-01", "test": 0.2})),
            "split.test"
        );
        assert_eq!(key(json!({"train": "someday"})), "split.train");
        assert_eq!(key(json!({"trian": 0.6})), "split.trian");
        assert_eq!(key(json!({"validation": 0.2})), "split.train");
        assert_eq!(key(json!(1.5)), "split");
    }
}
