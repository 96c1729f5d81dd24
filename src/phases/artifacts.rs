//! Writing a phase's artifacts.
//!
//! Artifacts are written deterministically: JSON pretty-printed with keys
//! in sorted order and a final newline, floats in Rust's shortest
//! round-trip form, never a timestamp or a wall-clock figure.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

use super::PhaseError;
use crate::market::{Bars, Metrics, trades::Trade};

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
