//! The RSI, Bollinger and breakout strategies, and the two regime
//! classifiers, against figures computed independently.
//!
//! The shipped-data figures were printed by
//! `scripts/reference_strategies.py` (numpy 2.4 / pandas 3.1, run once from
//! the repository root, mirroring the rule table of
//! `src/market/strategy.rs` and `classifier.rs`) and pasted here
//! unchanged: floats agree to 1e-9 relative, counts exactly. The position
//! summary is [bars long, bars short, position changes, first bar with a
//! position]. The small hand-made series below pin each comparison at
//! equality, where `<` and `<=` part ways.

mod common;

use admf::market::classifier::{Classifier, WARMUP};
use admf::market::strategy::{Rule, momentum_into};
use admf::market::{Bars, Strategy};
use common::market::{backtest, check_metrics, position_summary, shipped};
use serde_json::{Value, json};

fn daily() -> Bars {
    shipped("SPY_D.csv")
}

#[test]
fn rsi_14_long_only() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "rsi", "parameters": {"period": 14, "lower": 30, "upper": 70}}),
        0.0,
    );
    // SPY_D rsi period=14 lower=30 upper=70 fee=0.0
    assert_eq!(position_summary(&p), [2394, 0, 32, 239]);
    check_metrics(
        &m,
        &[
            ("total_return", 0.464280528437099),
            ("cagr", 0.018509625015071807),
            ("volatility", 0.17315274196674618),
            ("sharpe", 0.19248949073926025),
            ("sortino", 0.2732861153591244),
            ("max_drawdown", -0.590199368838387),
            ("calmar", 0.03136164827065455),
            ("entries", 16.0),
            ("trades", 16.0),
            ("win_rate", 0.8125),
            ("exposure", 0.4567830566685747),
            ("turnover", 1.5386376645678306),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn rsi_14_long_short_with_fee() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "rsi", "parameters": {"period": 14, "lower": 30, "upper": 70}, "allow_short": true}),
        0.0005,
    );
    // SPY_D rsi period=14 lower=30 upper=70 allow_short fee=0.0005
    assert_eq!(position_summary(&p), [2394, 2833, 33, 14]);
    check_metrics(
        &m,
        &[
            ("total_return", -0.30856819335658703),
            ("cagr", -0.01758883501640529),
            ("volatility", 0.19876755676142827),
            ("sharpe", 0.01003995286122488),
            ("sortino", 0.014365404219205371),
            ("max_drawdown", -0.6636947717910493),
            ("calmar", -0.026501391549220724),
            ("entries", 33.0),
            ("trades", 32.0),
            ("win_rate", 0.5625),
            ("exposure", 0.9973287540545698),
            ("turnover", 3.125357756153406),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn bollinger_20_2_long_only() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "bollinger", "parameters": {"period": 20, "k": 2}}),
        0.0,
    );
    // SPY_D bollinger period=20 k=2 fee=0.0
    assert_eq!(position_summary(&p), [1164, 0, 200, 46]);
    check_metrics(
        &m,
        &[
            ("total_return", 0.8478162897580448),
            ("cagr", 0.029968751544563244),
            ("volatility", 0.14130541330907984),
            ("sharpe", 0.2794614266922653),
            ("sortino", 0.40698725116947143),
            ("max_drawdown", -0.3777743057577705),
            ("calmar", 0.0793297772977161),
            ("entries", 100.0),
            ("trades", 100.0),
            ("win_rate", 0.73),
            ("exposure", 0.2220950200343446),
            ("turnover", 9.61648540354894),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn bollinger_20_2_long_short_with_fee() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "bollinger", "parameters": {"period": 20, "k": 2, "allow_short": true}}),
        0.001,
    );
    // SPY_D bollinger period=20 k=2 allow_short fee=0.001
    assert_eq!(position_summary(&p), [1164, 1400, 372, 35]);
    check_metrics(
        &m,
        &[
            ("total_return", 0.4345685995194448),
            ("cagr", 0.017506001637564772),
            ("volatility", 0.15259623435037933),
            ("sharpe", 0.18984039322846213),
            ("sortino", 0.2772243913354452),
            ("max_drawdown", -0.40232988130822755),
            ("calmar", 0.04351156215551713),
            ("entries", 187.0),
            ("trades", 186.0),
            ("win_rate", 0.6505376344086021),
            ("exposure", 0.48921961457737073),
            ("turnover", 17.934745277618774),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn bollinger_10_half_sigma_long_short() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "bollinger", "parameters": {"period": 10, "k": 0.5}, "allow_short": true}),
        0.0,
    );
    // SPY_D bollinger period=10 k=0.5 allow_short fee=0.0
    assert_eq!(position_summary(&p), [1904, 2817, 1078, 9]);
    check_metrics(
        &m,
        &[
            ("total_return", 1.8332759165704027),
            ("cagr", 0.05135962950666495),
            ("volatility", 0.18832717784540504),
            ("sharpe", 0.3599364966746455),
            ("sortino", 0.5276422727479024),
            ("max_drawdown", -0.5198810828354934),
            ("calmar", 0.09879111051039481),
            ("entries", 732.0),
            ("trades", 731.0),
            ("win_rate", 0.6853625170998632),
            ("exposure", 0.9007822934554475),
            ("turnover", 70.3445907269605),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn breakout_20_long_only() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "breakout", "parameters": {"period": 20}}),
        0.0,
    );
    // SPY_D breakout period=20 fee=0.0
    assert_eq!(position_summary(&p), [3029, 0, 129, 23]);
    check_metrics(
        &m,
        &[
            ("total_return", 0.6295993757439602),
            ("cagr", 0.023762713473355346),
            ("volatility", 0.10466279732454568),
            ("sharpe", 0.276866142891392),
            ("sortino", 0.37763772414163665),
            ("max_drawdown", -0.3977811840434634),
            ("calmar", 0.05973815360446743),
            ("entries", 65.0),
            ("trades", 64.0),
            ("win_rate", 0.453125),
            ("exposure", 0.5779431406220187),
            ("turnover", 6.202633085289067),
            ("periods_per_year", 252.0),
        ],
    );
}

#[test]
fn breakout_20_long_short_with_fee() {
    let (p, m) = backtest(
        &daily(),
        &json!({"type": "breakout", "parameters": {"period": 20}, "allow_short": true}),
        0.0005,
    );
    // SPY_D breakout period=20 allow_short fee=0.0005
    assert_eq!(position_summary(&p), [3029, 2189, 129, 23]);
    check_metrics(
        &m,
        &[
            ("total_return", -0.47136779738864565),
            ("cagr", -0.03019143893287024),
            ("volatility", 0.19928328139949764),
            ("sharpe", -0.05388562026531068),
            ("sortino", -0.07495876273226297),
            ("max_drawdown", -0.6558082935632958),
            ("calmar", -0.04603698859742506),
            ("entries", 129.0),
            ("trades", 128.0),
            ("win_rate", 0.328125),
            ("exposure", 0.9956115245182218),
            ("turnover", 12.35718374356039),
            ("periods_per_year", 252.0),
        ],
    );
}

/// Bars from explicit highs, lows and closes.
fn hlc(high: &[f64], low: &[f64], close: &[f64]) -> Bars {
    Bars {
        high: high.to_vec(),
        low: low.to_vec(),
        open: close.to_vec(),
        close: close.to_vec(),
        ..Bars::default()
    }
}

/// Bars whose high and low are the close: for close-only rules.
fn closes(close: &[f64]) -> Bars {
    hlc(close, close, close)
}

fn positions(config: Value, bars: &Bars) -> Vec<i8> {
    Strategy::from_config(&config)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .positions(bars)
}

#[test]
fn rsi_at_its_thresholds_holds() {
    // Period 2 over [10, 11, 10]: average gain and loss both 0.5 at bar 2,
    // so RSI = 50 exactly, neither below `lower` nor above `upper`.
    let b = closes(&[10.0, 11.0, 10.0]);
    let at = json!({"type": "rsi", "parameters": {"period": 2, "lower": 50, "upper": 50}, "allow_short": true});
    assert_eq!(positions(at, &b), vec![0, 0, 0]);
    // Just inside either threshold, RSI 50 enters.
    let long = json!({"type": "rsi", "parameters": {"period": 2, "lower": 50.5, "upper": 60}, "allow_short": true});
    assert_eq!(positions(long, &b), vec![0, 0, 1]);
    let short = json!({"type": "rsi", "parameters": {"period": 2, "lower": 40, "upper": 49.5}, "allow_short": true});
    assert_eq!(positions(short, &b), vec![0, 0, -1]);
}

#[test]
fn rsi_enters_exits_and_holds_in_between() {
    // RSI(2) by hand: bar 2 50, bar 3 83.3, bar 4 83.3, bar 5 16.7, bar 6 45.7.
    let b = closes(&[10.0, 11.0, 10.0, 12.0, 12.0, 9.0, 10.0]);
    let rsi = |short: bool| json!({"type": "rsi", "parameters": {"period": 2, "lower": 30, "upper": 70, "allow_short": short}});
    assert_eq!(positions(rsi(true), &b), vec![0, 0, 0, -1, -1, 1, 1]);
    assert_eq!(positions(rsi(false), &b), vec![0, 0, 0, 0, 0, 1, 1]);
}

#[test]
fn breakout_at_the_channel_edges_holds() {
    // Highs 11 and lows 9 throughout: the previous 2-bar channel is [9, 11].
    let high = [11.0; 8];
    let low = [9.0; 8];
    // A close equal to the high (bar 2) or the low (bar 4) is no breakout.
    let close = [10.0, 10.0, 11.0, 11.5, 9.0, 8.9, 10.0, 11.2];
    let b = hlc(&high, &low, &close);
    let long_only = json!({"type": "breakout", "parameters": {"period": 2}});
    assert_eq!(positions(long_only, &b), vec![0, 0, 0, 1, 1, 0, 0, 1]);
    let both = json!({"type": "breakout", "parameters": {"period": 2}, "allow_short": true});
    assert_eq!(positions(both, &b), vec![0, 0, 0, 1, 1, -1, -1, 1]);
}

#[test]
fn bollinger_exits_at_the_mean_and_holds_inside_the_band() {
    let bollinger = |short: bool| json!({"type": "bollinger", "parameters": {"period": 3, "k": 1, "allow_short": short}});
    // Bar 2: σ = 0, the close sits on both bands (no entry). Bar 3: mean 9,
    // σ = √2, 7 < 9 − √2 (long). Bar 4: mean (10 + 7 + 8.5)/3 = 8.5 = close
    // (exit at the mean).
    let b = closes(&[10.0, 10.0, 10.0, 7.0, 8.5]);
    assert_eq!(positions(bollinger(false), &b), vec![0, 0, 0, 1, 0]);
    // Bar 4 at 7.5: between the lower band (6.85) and the mean (8.17), held.
    let b = closes(&[10.0, 10.0, 10.0, 7.0, 7.5]);
    assert_eq!(positions(bollinger(false), &b), vec![0, 0, 0, 1, 1]);
    // The short side mirrors it: 13 > 11 + √2 enters, 11.5 = the mean exits.
    let b = closes(&[10.0, 10.0, 10.0, 13.0, 11.5]);
    assert_eq!(positions(bollinger(true), &b), vec![0, 0, 0, -1, 0]);
    assert_eq!(positions(bollinger(false), &b), vec![0, 0, 0, 0, 0]);
    // 12.5: above the mean (11.83) but inside the upper band (13.15), held.
    let b = closes(&[10.0, 10.0, 10.0, 13.0, 12.5]);
    assert_eq!(positions(bollinger(true), &b), vec![0, 0, 0, -1, -1]);
}

#[test]
fn bollinger_bands_are_k_sigma_wide() {
    // Window [10, 10, 7]: mean 9, σ = √2 ≈ 1.414. With k = 1.4 the lower
    // band is 7.02 (7 enters); with k = 1.42 it is 6.99 (7 does not).
    let b = closes(&[10.0, 10.0, 7.0]);
    let k = |k: f64| json!({"type": "bollinger", "parameters": {"period": 3, "k": k}});
    assert_eq!(positions(k(1.4), &b), vec![0, 0, 1]);
    assert_eq!(positions(k(1.42), &b), vec![0, 0, 0]);
    // σ of the window is the population one (ddof 0): with ddof 1 it would
    // be √3 ≈ 1.732, and k = 1.2 (band 6.92 vs 6.30) would tell them apart.
    assert_eq!(positions(k(1.2), &b), vec![0, 0, 1]);
}

#[test]
fn sma_crossover_is_flat_when_the_averages_are_equal() {
    let b = closes(&[10.0; 4]);
    let sma =
        json!({"type": "sma_crossover", "parameters": {"fast": 1, "slow": 2}, "allow_short": true});
    assert_eq!(positions(sma.clone(), &b), vec![0; 4]);
    let b = closes(&[10.0, 11.0, 10.0, 10.0]);
    assert_eq!(positions(sma, &b), vec![0, 1, -1, 0]);
}

#[test]
fn allow_short_false_is_read_as_false() {
    let parse = |v: Value| Strategy::from_config(&v).unwrap_or_else(|e| panic!("{e:?}"));
    let s = parse(json!({"type": "momentum", "allow_short": false}));
    assert!(!s.allow_short);
    let s = parse(json!({"type": "momentum", "allow_short": true}));
    assert!(s.allow_short);
    let s = parse(json!({"type": "momentum", "parameters": {"allow_short": false}}));
    assert!(!s.allow_short);
    // The parameters' value wins over the top-level one.
    let s = parse(
        json!({"type": "momentum", "allow_short": true, "parameters": {"allow_short": false}}),
    );
    assert!(!s.allow_short);
    let s = parse(
        json!({"type": "momentum", "allow_short": false, "parameters": {"allow_short": true}}),
    );
    assert!(s.allow_short);
    assert!(!parse(json!({"type": "momentum"})).allow_short);
    for (config, key) in [
        (
            json!({"type": "momentum", "allow_short": "yes"}),
            "allow_short",
        ),
        (
            json!({"type": "momentum", "parameters": {"allow_short": 1}}),
            "parameters.allow_short",
        ),
    ] {
        let e = Strategy::from_config(&config).unwrap_err();
        assert_eq!(e.key, key);
        assert_eq!(e.message, "expected true or false");
    }
}

fn issue_key(config: Value) -> String {
    match Strategy::from_config(&config) {
        Ok(s) => panic!("accepted {config}: {s:?}"),
        Err(e) => e.key,
    }
}

#[test]
fn rsi_thresholds_must_satisfy_0_lower_upper_100() {
    for (lower, upper) in [(-1.0, 70.0), (101.0, 101.0), (30.0, 101.0), (71.0, 70.0)] {
        let config = json!({"type": "rsi", "parameters": {"lower": lower, "upper": upper}});
        assert_eq!(issue_key(config), "parameters.lower", "{lower} {upper}");
    }
    for (lower, upper) in [(0.0, 100.0), (50.0, 50.0), (0.0, 0.0), (100.0, 100.0)] {
        let config = json!({"type": "rsi", "parameters": {"lower": lower, "upper": upper}});
        let s = Strategy::from_config(&config).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            s.rule,
            Rule::Rsi {
                period: 14,
                lower,
                upper
            }
        );
    }
}

#[test]
fn counts_are_whole_numbers_from_one_to_a_billion() {
    let period = |v: Value| json!({"type": "breakout", "parameters": {"period": v}});
    for bad in [
        json!(0),
        json!(1.5),
        json!(-3),
        json!(1_000_000_001u64),
        json!("20"),
    ] {
        assert_eq!(issue_key(period(bad)), "parameters.period");
    }
    for (good, want) in [
        (json!(1), 1),
        (json!(20.0), 20),
        (json!(1_000_000_000u64), 1_000_000_000),
    ] {
        let s = Strategy::from_config(&period(good)).unwrap();
        assert_eq!(s.rule, Rule::Breakout { period: want });
    }
    let threshold = |v: Value| json!({"type": "momentum", "parameters": {"threshold": v}});
    assert_eq!(issue_key(threshold(json!("0.1"))), "parameters.threshold");
    let s = Strategy::from_config(&threshold(json!(-0.5))).unwrap();
    assert_eq!(
        s.rule,
        Rule::Momentum {
            lookback: 20,
            threshold: -0.5
        }
    );
}

#[test]
fn malformed_strategy_maps_name_the_key() {
    assert_eq!(issue_key(json!(["momentum"])), "");
    assert_eq!(issue_key(json!({"type": 3})), "type");
    assert_eq!(issue_key(json!({"parameters": {}})), "type");
    assert_eq!(
        issue_key(json!({"type": "momentum", "parameters": 3})),
        "parameters"
    );
    assert_eq!(
        issue_key(json!({"type": "momentum", "paramters": {}})),
        "paramters"
    );
    // Each misspelling comes with the nearest known name.
    for (config, hint) in [
        (json!({"type": "momentum", "paramters": {}}), "parameters"),
        (json!({"type": "breakot"}), "breakout"),
        (json!({"type": "rsi", "parameters": {"perod": 3}}), "period"),
    ] {
        let e = Strategy::from_config(&config).unwrap_err();
        assert_eq!(e.hint, Some(format!("did you mean `{hint}`?")), "{config}");
    }
    assert_eq!(
        issue_key(json!({"type": "sma_crossover", "parameters": {"fast": 50, "slow": 50}})),
        "parameters.fast"
    );
    let s = Strategy::from_config(
        &json!({"type": "sma_crossover", "parameters": {"fast": 49, "slow": 50}}),
    )
    .unwrap();
    assert_eq!(s.rule, Rule::SmaCrossover { fast: 49, slow: 50 });
    let s = Strategy::from_config(&json!({"type": "breakout", "parameters": null})).unwrap();
    assert_eq!(s.rule, Rule::Breakout { period: 20 });
}

#[test]
fn every_type_reports_its_kind_and_defaults() {
    use admf::market::strategy::{TYPES, parameter_names};
    let defaults = [
        (
            "momentum",
            json!({"lookback": 20, "threshold": 0.0, "allow_short": false}),
        ),
        (
            "sma_crossover",
            json!({"fast": 10, "slow": 50, "allow_short": false}),
        ),
        (
            "rsi",
            json!({"period": 14, "lower": 30.0, "upper": 70.0, "allow_short": false}),
        ),
        (
            "bollinger",
            json!({"period": 20, "k": 2.0, "allow_short": false}),
        ),
        ("breakout", json!({"period": 20, "allow_short": false})),
    ];
    assert_eq!(TYPES.len(), defaults.len());
    for (kind, params) in defaults {
        let s = Strategy::from_config(&json!({"type": kind})).unwrap();
        assert_eq!(s.kind(), kind);
        assert_eq!(s.parameters(), params);
        let mut names: Vec<&str> = params
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut declared = parameter_names(kind).to_vec();
        names.sort_unstable();
        declared.sort_unstable();
        assert_eq!(names, declared, "{kind}");
    }
    assert!(parameter_names("nonesuch").is_empty());
}

#[test]
fn momentum_kernel_overwrites_a_reused_buffer() {
    let close = [10.0, 11.0, 12.0, 11.0];
    let mut out = [7i8; 4];
    momentum_into(&close, 2, 0.0, true, &mut out);
    assert_eq!(out, [0, 0, 1, 0]);
    // Without a lookback nothing is decided, whatever the threshold.
    let mut out = [7i8; 4];
    momentum_into(&close, 0, -1.0, true, &mut out);
    assert_eq!(out, [0; 4]);
    // A lookback longer than the series leaves it all warm-up.
    let mut out = [7i8; 4];
    momentum_into(&close, 9, -1.0, true, &mut out);
    assert_eq!(out, [0; 4]);
}

#[test]
fn every_rule_overwrites_a_reused_buffer() {
    // Sweeps reuse one buffer across trials: warm-up bars must be written
    // as flat, not left from the previous trial.
    let b = closes(&[10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 10.0, 11.0]);
    for config in [
        json!({"type": "momentum", "parameters": {"lookback": 3}}),
        json!({"type": "sma_crossover", "parameters": {"fast": 2, "slow": 3}}),
        json!({"type": "rsi", "parameters": {"period": 3}}),
        json!({"type": "bollinger", "parameters": {"period": 3, "k": 1}}),
        json!({"type": "breakout", "parameters": {"period": 3}}),
    ] {
        let s = Strategy::from_config(&config).unwrap();
        let mut reused = vec![7i8; b.len()];
        s.positions_into(&b, &mut reused);
        assert_eq!(reused, s.positions(&b), "{config}");
        assert_eq!(reused[..2], [0, 0], "{config}");
    }
}

/// Label counts [low or bearish, normal or neutral, high or bullish,
/// warm-up] and the number of label changes.
fn label_summary(labels: &[u8]) -> ([usize; 4], usize) {
    let mut counts = [0; 4];
    for &l in labels {
        counts[if l == WARMUP { 3 } else { l as usize }] += 1;
    }
    let changes = labels.windows(2).filter(|w| w[0] != w[1]).count();
    (counts, changes)
}

#[test]
fn classifiers_on_the_daily_data() {
    let bars = daily();
    // scripts/reference_strategies.py, "classifiers on SPY_D".
    for (config, counts, changes) in [
        (json!("volatility"), [680, 3724, 775, 62], 257),
        (
            json!({"volatility": {"period": 5, "average": 20, "low": 0.9, "high": 1.1}}),
            [1660, 2179, 1379, 23],
            1176,
        ),
        (json!("momentum"), [1225, 2003, 1993, 20], 964),
        (
            json!({"type": "momentum", "period": 5, "threshold": 0}),
            [2253, 8, 2975, 5],
            1063,
        ),
    ] {
        let c = Classifier::from_config(&config).unwrap();
        assert_eq!(
            label_summary(&c.classify(&bars)),
            (counts, changes),
            "{config}"
        );
    }
}
