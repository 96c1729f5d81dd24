//! Selection by each objective, against figures computed independently.
//!
//! Ten candidate strategies run on the shipped daily data at a 0.0005 fee;
//! `scripts/reference_strategies.py` (numpy/pandas, run once from the
//! repository root) printed, for each objective, the best candidate over
//! the whole sample and in each regime of the default momentum
//! classifier, with the objective's value. The figures are pasted here:
//! floats agree to 1e-9 relative, indices and bar counts exactly. In the
//! neutral regime sharpe, sortino and total_return pick three different
//! candidates, and every objective's value differs, so reading one
//! objective for another cannot pass.

mod common;

use admf::market::classifier::Classifier;
use admf::market::{Metrics, Objective};
use admf::phases::analysis::{analyse, objective};
use admf::phases::signal_generation::TrialRecord;
use common::market::{backtest, shipped};
use serde_json::{Value, json};

const FEE: f64 = 0.0005;

/// The candidates of `candidates()` in the reference script, in order.
fn candidates() -> Vec<Value> {
    vec![
        json!({"type": "momentum", "parameters": {"lookback": 5}}),
        json!({"type": "momentum", "parameters": {"lookback": 60}, "allow_short": true}),
        json!({"type": "momentum", "parameters": {"lookback": 200}}),
        json!({"type": "sma_crossover", "parameters": {"fast": 20, "slow": 100}}),
        json!({"type": "rsi", "parameters": {"period": 14, "lower": 30, "upper": 70}}),
        json!({"type": "rsi", "parameters": {"period": 2, "lower": 10, "upper": 90}, "allow_short": true}),
        json!({"type": "bollinger", "parameters": {"period": 20, "k": 2}}),
        json!({"type": "bollinger", "parameters": {"period": 10, "k": 1.5}, "allow_short": true}),
        json!({"type": "breakout", "parameters": {"period": 20}}),
        json!({"type": "breakout", "parameters": {"period": 55}, "allow_short": true}),
    ]
}

fn close_to(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1e-12)
}

#[test]
fn every_objective_name_parses_to_itself() {
    for name in Objective::NAMES {
        let o = Objective::parse(name).unwrap_or_else(|| panic!("{name} does not parse"));
        assert_eq!(o.name(), *name);
        assert_eq!(objective(&json!({"objective": name})).unwrap(), o);
    }
    assert_eq!(Objective::parse("Sharpe"), None);
    assert_eq!(Objective::parse("max_drawdown"), None);
    assert_eq!(objective(&json!({})).unwrap(), Objective::Sharpe);
    let e = objective(&json!({"objective": "sortin"})).unwrap_err();
    assert_eq!(e.key, "objective");
}

#[test]
fn each_objective_reads_its_own_metric() {
    let m = Metrics {
        total_return: 0.5,
        cagr: Some(0.25),
        sharpe: Some(1.5),
        sortino: Some(2.5),
        calmar: Some(3.5),
        volatility: Some(4.5),
        max_drawdown: -0.125,
        ..Metrics::default()
    };
    let read: Vec<(&str, Option<f64>)> = Objective::NAMES
        .iter()
        .map(|n| (*n, Objective::parse(n).unwrap().of(&m)))
        .collect();
    assert_eq!(
        read,
        [
            ("sharpe", Some(1.5)),
            ("sortino", Some(2.5)),
            ("total_return", Some(0.5)),
            ("cagr", Some(0.25)),
            ("calmar", Some(3.5))
        ]
    );
}

#[test]
fn whole_sample_best_by_each_objective() {
    let bars = shipped("SPY_D.csv");
    let metrics: Vec<Metrics> = candidates()
        .iter()
        .map(|c| backtest(&bars, c, FEE).1)
        .collect();
    // scripts/reference_strategies.py, "selection over candidates".
    for (name, index, value) in [
        ("sharpe", 2, 0.420156767011701),
        ("sortino", 2, 0.5622575784212379),
        ("total_return", 2, 1.3288884710512914),
        ("cagr", 2, 0.04149399224658068),
        ("calmar", 2, 0.13977091234643488),
    ] {
        let o = Objective::parse(name).unwrap();
        let scores: Vec<f64> = metrics.iter().map(|m| o.of(m).unwrap()).collect();
        let best = (0..scores.len())
            .reduce(|a, b| if scores[b] > scores[a] { b } else { a })
            .unwrap();
        assert_eq!(best, index, "{name}: {scores:?}");
        assert!(
            close_to(scores[best], value),
            "{name}: got {}, want {value}",
            scores[best]
        );
    }
}

#[test]
fn best_trial_per_regime_by_each_objective() {
    let bars = shipped("SPY_D.csv");
    let configs = candidates();
    let positions: Vec<Vec<i8>> = configs.iter().map(|c| backtest(&bars, c, FEE).0).collect();
    let records: Vec<TrialRecord> = configs
        .iter()
        .enumerate()
        .map(|(index, params)| TrialRecord {
            index,
            name: format!("candidate_{index}"),
            params: params.clone(),
            metrics: Metrics::default(),
        })
        .collect();
    let classifiers = [Classifier::from_config(&json!("momentum")).unwrap()];
    // scripts/reference_strategies.py, "regime selection":
    // (objective, regime, best candidate, its objective value, bars).
    let expected = [
        ("sharpe", "bearish", 5, 0.7920016750003103, 1225),
        ("sharpe", "neutral", 2, 0.27284934290257673, 2003),
        ("sharpe", "bullish", 2, 0.582020636226057, 1992),
        ("sortino", "bearish", 5, 1.1622841721268224, 1225),
        ("sortino", "neutral", 7, 0.38104798511582766, 2003),
        ("sortino", "bullish", 2, 0.7876289425207789, 1992),
        ("total_return", "bearish", 5, 1.6448320860755299, 1225),
        ("total_return", "neutral", 5, 0.2488585166700179, 2003),
        ("total_return", "bullish", 2, 0.4883613774483282, 1992),
        ("cagr", "bearish", 5, 0.22149958693394356, 1225),
        ("cagr", "neutral", 5, 0.028353556875502672, 2003),
        ("cagr", "bullish", 2, 0.05159533766801738, 1992),
        ("calmar", "bearish", 5, 0.6592747139401817, 1225),
        ("calmar", "neutral", 2, 0.13601681329591403, 2003),
        ("calmar", "bullish", 2, 0.3097672810295226, 1992),
    ];
    for name in Objective::NAMES {
        let o = Objective::parse(name).unwrap();
        // The whole sample as the train part: the reference figures are
        // over every bar.
        let result = analyse(
            &bars,
            &records,
            &positions,
            FEE,
            &classifiers,
            o,
            bars.len(),
        );
        let regimes = &result.regimes["classifiers"]["momentum"]["regimes"];
        let mut overall: Option<(f64, &str, usize)> = None;
        for &(_, label, trial, value, bars_in) in expected.iter().filter(|e| e.0 == *name) {
            let r = &regimes[label];
            assert_eq!(r["bars"], json!(bars_in), "{name} {label}");
            assert_eq!(r["best"]["trial"], json!(trial), "{name} {label}: {r}");
            let got = r["best"]["objective"].as_f64().unwrap();
            assert!(
                close_to(got, value),
                "{name} {label}: got {got}, want {value}"
            );
            if overall.is_none_or(|(v, _, _)| value > v) {
                overall = Some((value, label, trial));
            }
        }
        let (_, label, trial) = overall.unwrap();
        let best = &result.metrics["best"];
        assert_eq!(
            (&best["regime"], &best["trial"]),
            (&json!(label), &json!(trial)),
            "{name}: {best}"
        );
        assert_eq!(result.metrics["objective"], json!(name));
    }
}

#[test]
fn only_closed_round_trips_with_a_positive_return_are_wins() {
    use admf::market::{equity, trades};
    // Trade 1 (bars 1..2) returns exactly 0; trade 2 (from bar 3) gains
    // 12/11 − 1 but is still open on the last bar.
    let close = [10.0, 11.0, 11.0, 11.0, 12.0];
    let p = [0, 1, 0, 1, 1];
    let r = equity::close_returns(&close);
    let e = equity::equity_curve(&r, &p, 0.0);
    let t = trades::round_trips(&r, &p, 0.0);
    let m = Metrics::compute(&e, &p, &t, 252.0);
    assert_eq!((m.entries, m.trades, m.win_rate), (2, 1, Some(0.0)));
    assert_eq!(m.exposure, Some(3.0 / 5.0));
    assert_eq!(m.turnover, Some(3.0 / 5.0 * 252.0));
}
