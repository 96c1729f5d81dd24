//! Metrics on the shipped data against figures computed independently.
//!
//! The expected figures were printed by `scripts/reference_metrics.py`
//! (numpy 2.4 / pandas 3.1, run once from the repository root) and pasted
//! here unchanged. Floats must agree to 1e-9 relative; counts exactly.

use std::path::Path;

use admf::market::{BadRowPolicy, Metrics, Strategy, equity, load_csv, trades};
use serde_json::json;

fn run(file: &str, strategy: serde_json::Value, fee: f64) -> Metrics {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file);
    let bars = load_csv(&path, "SPY", BadRowPolicy::Error).unwrap().bars;
    let strategy = Strategy::from_config(&strategy).unwrap();
    let p = strategy.positions(&bars);
    let r = equity::close_returns(&bars.close);
    let e = equity::equity_curve(&r, &p, fee);
    let t = trades::round_trips(&r, &p, fee);
    Metrics::compute(&e, &p, &t, bars.frequency().periods_per_year())
}

fn check(m: &Metrics, expected: &[(&str, f64)]) {
    let got = serde_json::to_value(m).unwrap();
    for (key, want) in expected {
        let v = got[key].as_f64().unwrap();
        let tol = 1e-9 * want.abs().max(1e-12);
        assert!((v - want).abs() <= tol, "{key}: got {v}, want {want}");
    }
}

#[test]
fn momentum_20_daily() {
    let m = run(
        "SPY_D.csv",
        json!({"type": "momentum", "parameters": {"lookback": 20, "threshold": 0}}),
        0.0,
    );
    // SPY_D momentum lookback=20 threshold=0 fee=0
    check(
        &m,
        &[
            ("total_return", 0.4695007257399022),
            ("cagr", 0.01868395062672512),
            ("volatility", 0.10668110617889867),
            ("sharpe", 0.22700571774434425),
            ("sortino", 0.30909004490640357),
            ("max_drawdown", -0.4403019517353389),
            ("calmar", 0.04243440337497267),
            ("entries", 256.0),
            ("trades", 255.0),
            ("win_rate", 0.403921568627451),
            ("exposure", 0.6183934363671055),
            ("turnover", 24.570120206067543),
            ("periods_per_year", 252.0),
        ],
    );
    assert_eq!(m.bars, 5241);
}

#[test]
fn momentum_20_daily_with_fee() {
    let m = run(
        "SPY_D.csv",
        json!({"type": "momentum", "parameters": {"lookback": 20}}),
        0.001,
    );
    // SPY_D momentum lookback=20 threshold=0 fee=0.001
    check(
        &m,
        &[
            ("total_return", -0.11867865539525035),
            ("cagr", -0.006057136168148625),
            ("volatility", 0.10780755028518979),
            ("sharpe", -0.0022994171070650307),
            ("sortino", -0.0031001366157553194),
            ("max_drawdown", -0.5641612413296155),
            ("calmar", -0.010736533679401944),
            ("entries", 256.0),
            ("trades", 255.0),
            ("win_rate", 0.36470588235294116),
            ("exposure", 0.6183934363671055),
            ("turnover", 24.570120206067543),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn sma_crossover_daily_long_short_with_fee() {
    let m = run(
        "SPY_D.csv",
        json!({"type": "sma_crossover", "parameters": {"fast": 10, "slow": 50}, "allow_short": true}),
        0.0005,
    );
    // SPY_D sma_crossover fast=10 slow=50 allow_short fee=0.0005
    check(
        &m,
        &[
            ("total_return", -0.4956239733567389),
            ("cagr", -0.03237967025921129),
            ("volatility", 0.1981491005923233),
            ("sharpe", -0.06669016243305008),
            ("sortino", -0.09226258344886967),
            ("max_drawdown", -0.6161539700357446),
            ("calmar", -0.05255126451158445),
            ("entries", 141.0),
            ("trades", 140.0),
            ("win_rate", 0.2714285714285714),
            ("exposure", 0.990650639190994),
            ("turnover", 13.511161991986262),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn momentum_minute_long_short() {
    let m = run(
        "nt-spy-minute-2011.csv",
        json!({"type": "momentum", "parameters": {"lookback": 30, "threshold": 0.001, "allow_short": true}}),
        0.0,
    );
    // minute momentum lookback=30 threshold=0.001 allow_short fee=0
    check(
        &m,
        &[
            ("total_return", -0.034381365017301935),
            ("cagr", -0.35651631302884623),
            ("volatility", 0.08384674323001881),
            ("sharpe", -5.215979978232565),
            ("sortino", -7.228562215354392),
            ("max_drawdown", -0.04832101216297391),
            ("calmar", -7.378080405816244),
            ("entries", 766.0),
            ("trades", 766.0),
            ("win_rate", 0.30548302872062666),
            ("exposure", 0.3791960507757405),
            ("turnover", 19303.2),
            ("periods_per_year", 178668.0),
        ],
    );
}
