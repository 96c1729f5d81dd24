//! Causal regime classifiers: the label of bar t uses bars 0..=t only.
//! Bars before a classifier's indicators are defined are unlabelled
//! (`warmup`).
//!
//! | type | parameters (defaults) | labels |
//! |---|---|---|
//! | `volatility` | `period` 14, `average` 50, `low` 0.8, `high` 1.2 | ratio = ATR(period) / SMA(ATR, average) (Wilder ATR); `low` when ratio < low, `high` when ratio > high, else `normal` |
//! | `momentum` | `period` 20, `threshold` 0.02 | roc = C_t/C_{t−period} − 1; `bullish` when roc > threshold, `bearish` when roc < −threshold, else `neutral` |
//!
//! Config: a name (`volatility`) or a map, either `{type: volatility,
//! period: 10}` or `{volatility: {period: 10}}`.

use serde_json::{Map, Value, json};

use super::bars::Bars;
use super::indicators;
use super::strategy::SpecIssue;

#[derive(Clone, Debug, PartialEq)]
pub enum Classifier {
    Volatility {
        period: usize,
        average: usize,
        low: f64,
        high: f64,
    },
    Momentum {
        period: usize,
        threshold: f64,
    },
}

/// The label code of unlabelled (warm-up) bars.
pub const WARMUP: u8 = u8::MAX;

pub const TYPES: &[&str] = &["volatility", "momentum"];

fn parameter_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "volatility" => &["period", "average", "low", "high"],
        _ => &["period", "threshold"],
    }
}

impl Classifier {
    pub fn from_config(v: &Value) -> Result<Classifier, SpecIssue> {
        let empty = Map::new();
        let (kind, params) = match v {
            Value::String(s) => (s.as_str(), &empty),
            Value::Object(m) => match m.get("type") {
                Some(Value::String(t)) => (t.as_str(), m),
                _ if m.len() == 1 => {
                    let (k, p) = m.iter().next().unwrap_or_else(|| unreachable!());
                    match p {
                        Value::Object(p) => (k.as_str(), p),
                        Value::Null => (k.as_str(), &empty),
                        _ => return Err(issue(k, "expected a map of parameters", None)),
                    }
                }
                _ => return Err(issue("type", "expected `type:` naming a classifier", None)),
            },
            _ => return Err(issue("", "expected a classifier name or map", None)),
        };
        if !TYPES.contains(&kind) {
            return Err(issue(
                "",
                &format!("unknown classifier `{kind}` (known: {})", TYPES.join(", ")),
                crate::error::did_you_mean(kind, TYPES.iter().copied()),
            ));
        }
        let names = parameter_names(kind);
        for key in params.keys().filter(|k| k.as_str() != "type") {
            if !names.contains(&key.as_str()) {
                return Err(issue(
                    key,
                    &format!("unknown parameter `{key}` of classifier `{kind}`"),
                    crate::error::did_you_mean(key, names.iter().copied()),
                ));
            }
        }
        let count = |key: &str, default: usize| match params.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.fract() == 0.0 && *x >= 1.0 && *x <= 1e9)
                .map(|x| x as usize)
                .ok_or_else(|| issue(key, "expected a whole number ≥ 1", None)),
        };
        let number = |key: &str, default: f64| match params.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| issue(key, "expected a number ≥ 0", None)),
        };
        Ok(match kind {
            "volatility" => {
                let (low, high) = (number("low", 0.8)?, number("high", 1.2)?);
                if low > high {
                    return Err(issue("low", "`low` must not exceed `high`", None));
                }
                Classifier::Volatility {
                    period: count("period", 14)?,
                    average: count("average", 50)?,
                    low,
                    high,
                }
            }
            _ => Classifier::Momentum {
                period: count("period", 20)?,
                threshold: number("threshold", 0.02)?,
            },
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Classifier::Volatility { .. } => "volatility",
            Classifier::Momentum { .. } => "momentum",
        }
    }

    pub fn parameters(&self) -> Value {
        match *self {
            Classifier::Volatility {
                period,
                average,
                low,
                high,
            } => json!({"period": period, "average": average, "low": low, "high": high}),
            Classifier::Momentum { period, threshold } => {
                json!({"period": period, "threshold": threshold})
            }
        }
    }

    /// Label names by code.
    pub fn labels(&self) -> &'static [&'static str] {
        match self {
            Classifier::Volatility { .. } => &["low", "normal", "high"],
            Classifier::Momentum { .. } => &["bearish", "neutral", "bullish"],
        }
    }

    pub fn label_name(&self, code: u8) -> &'static str {
        self.labels()
            .get(code as usize)
            .copied()
            .unwrap_or("warmup")
    }

    /// A label code per bar ([`WARMUP`] where undefined).
    pub fn classify(&self, bars: &Bars) -> Vec<u8> {
        let band = |x: f64, lo: f64, hi: f64| -> u8 {
            if x.is_nan() {
                WARMUP
            } else if x < lo {
                0
            } else if x > hi {
                2
            } else {
                1
            }
        };
        match *self {
            Classifier::Volatility {
                period,
                average,
                low,
                high,
            } => {
                let atr = indicators::atr(&bars.high, &bars.low, &bars.close, period);
                let first = atr.iter().position(|a| !a.is_nan()).unwrap_or(atr.len());
                let mut avg = vec![f64::NAN; atr.len()];
                let tail = indicators::sma(&atr[first..], average);
                avg[first..].copy_from_slice(&tail);
                atr.iter()
                    .zip(&avg)
                    .map(|(a, m)| band(if *m > 0.0 { a / m } else { f64::NAN }, low, high))
                    .collect()
            }
            Classifier::Momentum { period, threshold } => indicators::roc(&bars.close, period)
                .iter()
                .map(|r| band(*r, -threshold, threshold))
                .collect(),
        }
    }
}

fn issue(key: &str, message: &str, hint: Option<String>) -> SpecIssue {
    SpecIssue {
        key: key.to_string(),
        message: message.to_string(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_forms_and_defaults() {
        let a = Classifier::from_config(&json!("volatility")).unwrap();
        assert_eq!(
            a.parameters(),
            json!({"period": 14, "average": 50, "low": 0.8, "high": 1.2})
        );
        let b = Classifier::from_config(&json!({"momentum": {"period": 5}})).unwrap();
        let c = Classifier::from_config(&json!({"type": "momentum", "period": 5})).unwrap();
        assert_eq!(b, c);
        let e = Classifier::from_config(&json!("volatilty")).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `volatility`?"));
        let e = Classifier::from_config(&json!({"momentum": {"treshold": 1}})).unwrap_err();
        assert_eq!(e.key, "treshold");
    }

    #[test]
    fn momentum_labels_are_causal() {
        let close = [100.0, 100.0, 110.0, 100.0, 90.0];
        let bars = Bars {
            high: close.to_vec(),
            low: close.to_vec(),
            close: close.to_vec(),
            ..Bars::default()
        };
        let c = Classifier::Momentum {
            period: 2,
            threshold: 0.05,
        };
        assert_eq!(c.classify(&bars), vec![WARMUP, WARMUP, 2, 1, 0]);
        // Changing a later bar never changes an earlier label.
        let mut later = bars.clone();
        later.close[4] = 200.0;
        assert_eq!(c.classify(&later)[..4], c.classify(&bars)[..4]);
        assert_eq!(c.label_name(0), "bearish");
        assert_eq!(c.label_name(WARMUP), "warmup");
    }

    #[test]
    fn volatility_ratio_bands() {
        // Constant ranges, then a wide bar: ratio jumps above 1.2.
        let n = 8;
        let mut high = vec![101.0; n];
        let low = vec![99.0; n];
        high[7] = 110.0;
        let bars = Bars {
            high,
            low,
            close: vec![100.0; n],
            ..Bars::default()
        };
        let c = Classifier::Volatility {
            period: 2,
            average: 3,
            low: 0.8,
            high: 1.2,
        };
        let l = c.classify(&bars);
        assert_eq!(&l[..3], &[WARMUP; 3]);
        assert_eq!(&l[3..7], &[1; 4]);
        assert_eq!(l[7], 2);
    }
}
