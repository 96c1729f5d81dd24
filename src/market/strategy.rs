//! Strategies: rules that turn bars into positions in {-1, 0, 1}.
//!
//! The position p_t is decided at the close of bar t from bars 0..=t only
//! (no look-ahead) and earns bar t+1 ([`super::equity`]). Bars where a
//! rule's indicators are not yet defined (the warm-up) are flat. Without
//! `allow_short: true` every short position becomes flat.
//!
//! | type | parameters (defaults) | rule |
//! |---|---|---|
//! | `momentum` | `lookback` 20, `threshold` 0 | m = C_t/C_{t−L} − 1; long when m > threshold, short when m < −threshold, else flat |
//! | `sma_crossover` | `fast` 10, `slow` 50 | long when SMA_fast > SMA_slow, short when below, flat when equal |
//! | `rsi` | `period` 14, `lower` 30, `upper` 70 | Wilder RSI; go long when RSI < lower, go short (or flat) when RSI > upper, otherwise hold |
//! | `bollinger` | `period` 20, `k` 2 | mean reversion on SMA ± k·σ (σ ddof 0): go long when C < lower band, exit a long when C ≥ the mean; go short when C > upper band, exit a short when C ≤ the mean; otherwise hold |
//! | `breakout` | `period` 20 | Donchian: go long when C > the highest high of the previous N bars, exit a long (or go short) when C < the lowest low of the previous N bars; a short exits when C > the previous N-bar high |

use serde_json::{Map, Value, json};

use super::bars::Bars;
use super::indicators;

#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    Momentum {
        lookback: usize,
        threshold: f64,
    },
    SmaCrossover {
        fast: usize,
        slow: usize,
    },
    Rsi {
        period: usize,
        lower: f64,
        upper: f64,
    },
    Bollinger {
        period: usize,
        k: f64,
    },
    Breakout {
        period: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    pub rule: Rule,
    pub allow_short: bool,
}

/// A config problem at a key relative to the strategy map
/// (`type`, `parameters.lookback`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpecIssue {
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl SpecIssue {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SpecIssue {
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }
}

pub const TYPES: &[&str] = &["momentum", "sma_crossover", "rsi", "bollinger", "breakout"];

/// Parameter names per type, with `allow_short` accepted by all.
pub fn parameter_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "momentum" => &["lookback", "threshold", "allow_short"],
        "sma_crossover" => &["fast", "slow", "allow_short"],
        "rsi" => &["period", "lower", "upper", "allow_short"],
        "bollinger" => &["period", "k", "allow_short"],
        "breakout" => &["period", "allow_short"],
        _ => &[],
    }
}

pub const STRATEGY_KEYS: &[&str] = &["type", "parameters", "allow_short"];

impl Strategy {
    /// Parses `{type, parameters: {...}, allow_short}`; `allow_short` may
    /// also be given among the parameters.
    pub fn from_config(config: &Value) -> Result<Strategy, SpecIssue> {
        let map = config
            .as_object()
            .ok_or_else(|| SpecIssue::new("", "expected a map with `type` and `parameters`"))?;
        for key in map.keys() {
            if !STRATEGY_KEYS.contains(&key.as_str()) {
                return Err(SpecIssue {
                    hint: crate::error::did_you_mean(key, STRATEGY_KEYS.iter().copied()),
                    ..SpecIssue::new(key.clone(), format!("unknown strategy key `{key}`"))
                });
            }
        }
        let kind = match map.get("type") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(SpecIssue::new("type", "expected a strategy name")),
            None => return Err(SpecIssue::new("type", "missing strategy `type`")),
        };
        if !TYPES.contains(&kind) {
            return Err(SpecIssue {
                hint: crate::error::did_you_mean(kind, TYPES.iter().copied()),
                ..SpecIssue::new(
                    "type",
                    format!(
                        "unknown strategy type `{kind}` (known: {})",
                        TYPES.join(", ")
                    ),
                )
            });
        }
        let empty = Map::new();
        let params = match map.get("parameters") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(SpecIssue::new("parameters", "expected a map")),
        };
        let names = parameter_names(kind);
        for key in params.keys() {
            if !names.contains(&key.as_str()) {
                return Err(SpecIssue {
                    hint: crate::error::did_you_mean(key, names.iter().copied()),
                    ..SpecIssue::new(
                        format!("parameters.{key}"),
                        format!(
                            "unknown parameter `{key}` of `{kind}` (known: {})",
                            names.join(", ")
                        ),
                    )
                });
            }
        }
        let p = Params(params);
        let rule = match kind {
            "momentum" => Rule::Momentum {
                lookback: p.count("lookback", 20)?,
                threshold: p.number("threshold", 0.0)?,
            },
            "sma_crossover" => {
                let fast = p.count("fast", 10)?;
                let slow = p.count("slow", 50)?;
                if fast >= slow {
                    return Err(SpecIssue::new(
                        "parameters.fast",
                        format!("`fast` ({fast}) must be less than `slow` ({slow})"),
                    ));
                }
                Rule::SmaCrossover { fast, slow }
            }
            "rsi" => {
                let lower = p.number("lower", 30.0)?;
                let upper = p.number("upper", 70.0)?;
                if !(0.0..=100.0).contains(&lower) || !(lower..=100.0).contains(&upper) {
                    return Err(SpecIssue::new(
                        "parameters.lower",
                        "need 0 ≤ lower ≤ upper ≤ 100",
                    ));
                }
                Rule::Rsi {
                    period: p.count("period", 14)?,
                    lower,
                    upper,
                }
            }
            "bollinger" => Rule::Bollinger {
                period: p.count("period", 20)?,
                k: p.number("k", 2.0)?,
            },
            _ => Rule::Breakout {
                period: p.count("period", 20)?,
            },
        };
        let allow_short = match (params.get("allow_short"), map.get("allow_short")) {
            (Some(v), _) => bool_at(v, "parameters.allow_short")?,
            (None, Some(v)) => bool_at(v, "allow_short")?,
            (None, None) => false,
        };
        Ok(Strategy { rule, allow_short })
    }

    pub fn kind(&self) -> &'static str {
        match self.rule {
            Rule::Momentum { .. } => "momentum",
            Rule::SmaCrossover { .. } => "sma_crossover",
            Rule::Rsi { .. } => "rsi",
            Rule::Bollinger { .. } => "bollinger",
            Rule::Breakout { .. } => "breakout",
        }
    }

    /// Every parameter with its effective value, defaults included.
    pub fn parameters(&self) -> Value {
        let mut v = match self.rule {
            Rule::Momentum {
                lookback,
                threshold,
            } => json!({"lookback": lookback, "threshold": threshold}),
            Rule::SmaCrossover { fast, slow } => json!({"fast": fast, "slow": slow}),
            Rule::Rsi {
                period,
                lower,
                upper,
            } => json!({"period": period, "lower": lower, "upper": upper}),
            Rule::Bollinger { period, k } => json!({"period": period, "k": k}),
            Rule::Breakout { period } => json!({"period": period}),
        };
        v["allow_short"] = Value::Bool(self.allow_short);
        v
    }

    /// Positions for every bar.
    pub fn positions(&self, bars: &Bars) -> Vec<i8> {
        let mut out = vec![0i8; bars.len()];
        self.positions_into(bars, &mut out);
        out
    }

    /// [`Strategy::positions`] into a caller's buffer of `bars.len()`.
    pub fn positions_into(&self, bars: &Bars, out: &mut [i8]) {
        let short: i8 = if self.allow_short { -1 } else { 0 };
        let c = &bars.close;
        out.fill(0);
        match self.rule {
            Rule::Momentum {
                lookback,
                threshold,
            } => momentum_into(c, lookback, threshold, self.allow_short, out),
            Rule::SmaCrossover { fast, slow } => {
                let f = indicators::sma(c, fast);
                let s = indicators::sma(c, slow);
                for t in 0..c.len() {
                    out[t] = if f[t] > s[t] {
                        1
                    } else if f[t] < s[t] {
                        short
                    } else {
                        0
                    };
                }
            }
            Rule::Rsi {
                period,
                lower,
                upper,
            } => {
                let r = indicators::rsi(c, period);
                let mut p = 0i8;
                for t in 0..c.len() {
                    if r[t] < lower {
                        p = 1;
                    } else if r[t] > upper {
                        p = short;
                    }
                    out[t] = p;
                }
            }
            Rule::Bollinger { period, k } => {
                let mean = indicators::sma(c, period);
                let sd = indicators::rolling_std(c, period);
                let mut p = 0i8;
                for t in 0..c.len() {
                    if mean[t].is_nan() {
                        continue;
                    }
                    let (lo, hi) = (mean[t] - k * sd[t], mean[t] + k * sd[t]);
                    if c[t] < lo {
                        p = 1;
                    } else if c[t] > hi {
                        p = short;
                    } else if (p == 1 && c[t] >= mean[t]) || (p == -1 && c[t] <= mean[t]) {
                        p = 0;
                    }
                    out[t] = p;
                }
            }
            Rule::Breakout { period } => {
                let hh = indicators::previous_max(&bars.high, period);
                let ll = indicators::previous_min(&bars.low, period);
                let mut p = 0i8;
                for t in 0..c.len() {
                    if c[t] > hh[t] {
                        p = 1;
                    } else if c[t] < ll[t] {
                        p = short;
                    }
                    out[t] = p;
                }
            }
        }
    }
}

/// The momentum rule alone, allocation-free: the hot kernel of sweeps.
pub fn momentum_into(
    close: &[f64],
    lookback: usize,
    threshold: f64,
    allow_short: bool,
    out: &mut [i8],
) {
    let short: i8 = if allow_short { -1 } else { 0 };
    let n = close.len();
    out[..lookback.min(n)].fill(0);
    if lookback == 0 {
        out.fill(0);
        return;
    }
    for t in lookback..n {
        let m = close[t] / close[t - lookback] - 1.0;
        out[t] = if m > threshold {
            1
        } else if m < -threshold {
            short
        } else {
            0
        };
    }
}

fn bool_at(v: &Value, key: &str) -> Result<bool, SpecIssue> {
    v.as_bool()
        .ok_or_else(|| SpecIssue::new(key, "expected true or false"))
}

struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    fn number(&self, key: &str, default: f64) -> Result<f64, SpecIssue> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| SpecIssue::new(format!("parameters.{key}"), "expected a number")),
        }
    }

    /// A whole number ≥ 1 (written as `20` or `20.0`).
    fn count(&self, key: &str, default: usize) -> Result<usize, SpecIssue> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.fract() == 0.0 && *x >= 1.0 && *x <= 1e9)
                .map(|x| x as usize)
                .ok_or_else(|| {
                    SpecIssue::new(format!("parameters.{key}"), "expected a whole number ≥ 1")
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(close: &[f64]) -> Bars {
        Bars {
            close: close.to_vec(),
            high: close.iter().map(|c| c + 0.5).collect(),
            low: close.iter().map(|c| c - 0.5).collect(),
            open: close.to_vec(),
            ..Bars::default()
        }
    }

    fn strategy(v: Value) -> Strategy {
        Strategy::from_config(&v).unwrap()
    }

    #[test]
    fn momentum_uses_strict_threshold_and_warm_up() {
        let b = bars(&[10.0, 11.0, 10.0, 10.0, 9.0]);
        let s = strategy(json!({"type": "momentum", "parameters": {"lookback": 1}}));
        assert_eq!(s.positions(&b), vec![0, 1, 0, 0, 0]);
        let s = strategy(
            json!({"type": "momentum", "parameters": {"lookback": 1, "allow_short": true}}),
        );
        assert_eq!(s.positions(&b), vec![0, 1, -1, 0, -1]);
    }

    #[test]
    fn unknown_names_get_hints() {
        let e = Strategy::from_config(&json!({"type": "momentun"})).unwrap_err();
        assert_eq!(e.key, "type");
        assert_eq!(e.hint.as_deref(), Some("did you mean `momentum`?"));
        let e = Strategy::from_config(&json!({"type": "momentum", "parameters": {"lookbak": 3}}))
            .unwrap_err();
        assert_eq!(e.key, "parameters.lookbak");
        assert_eq!(e.hint.as_deref(), Some("did you mean `lookback`?"));
        let e = Strategy::from_config(&json!({"type": "rsi", "parameters": {"period": 0}}))
            .unwrap_err();
        assert_eq!(e.key, "parameters.period");
    }

    #[test]
    fn stateful_rules_hold_between_signals() {
        // Breakout over 2 bars: long above the previous high, out below the low.
        let b = bars(&[10.0, 10.0, 11.0, 10.8, 9.0, 9.5]);
        let s = strategy(json!({"type": "breakout", "parameters": {"period": 2}}));
        assert_eq!(s.positions(&b), vec![0, 0, 1, 1, 0, 0]);
        // Bollinger: long below the lower band, out at the mean.
        let b = bars(&[10.0, 10.0, 10.0, 8.0, 9.0, 10.0, 10.0]);
        let s = strategy(json!({"type": "bollinger", "parameters": {"period": 3, "k": 1}}));
        assert_eq!(s.positions(&b), vec![0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            s.parameters(),
            json!({"period": 3, "k": 1.0, "allow_short": false})
        );
    }
}
