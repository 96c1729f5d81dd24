//! The shipped data run through one strategy, for the reference-figure
//! tests: the figures they compare against come from
//! `scripts/reference_strategies.py`, never from this crate.

use std::path::Path;

use admf::market::{BadRowPolicy, Bars, Metrics, Strategy, equity, load_csv, trades};

/// The bars of `data/<file>`.
pub fn shipped(file: &str) -> Bars {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file);
    load_csv(&path, "SPY", BadRowPolicy::Error)
        .unwrap_or_else(|e| panic!("load {file}: {e}"))
        .bars
}

/// Positions and metrics of `strategy` on `bars` at proportional `fee`.
pub fn backtest(bars: &Bars, strategy: &serde_json::Value, fee: f64) -> (Vec<i8>, Metrics) {
    let strategy = Strategy::from_config(strategy).unwrap_or_else(|e| panic!("{e:?}"));
    let p = strategy.positions(bars);
    let r = equity::close_returns(&bars.close);
    let e = equity::equity_curve(&r, &p, fee);
    let t = trades::round_trips(&r, &p, fee);
    let m = Metrics::compute(&e, &p, &t, bars.frequency().periods_per_year());
    (p, m)
}

/// Each named metric within 1e-9 relative of its reference figure.
pub fn check_metrics(m: &Metrics, expected: &[(&str, f64)]) {
    let got = serde_json::to_value(m).expect("metrics serialise");
    for (key, want) in expected {
        let v = got[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {}", got[key]));
        let tol = 1e-9 * want.abs().max(1e-12);
        assert!((v - want).abs() <= tol, "{key}: got {v}, want {want}");
    }
}

/// Bars long, bars short, position changes (from a flat start) and the
/// first bar with a position: the summary the reference script prints.
pub fn position_summary(p: &[i8]) -> [usize; 4] {
    let long = p.iter().filter(|&&x| x == 1).count();
    let short = p.iter().filter(|&&x| x == -1).count();
    let mut prev = 0;
    let mut changes = 0;
    for &x in p {
        changes += usize::from(x != prev);
        prev = x;
    }
    let first = p.iter().position(|&x| x != 0).unwrap_or(0);
    [long, short, changes, first]
}
