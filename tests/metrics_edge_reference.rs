//! Metrics of degenerate series (empty, one bar, two bars, a flat series,
//! gains only, losses only, ruin) against `scripts/reference_edge_cases.py`,
//! which recomputes them with numpy from the documented conventions. Each
//! series goes through the backtest's own steps: equity, liquidation at
//! ruin, round trips, metrics.

use admf::market::metrics::{UNBOUNDED_ABOVE, UNBOUNDED_BELOW};
use admf::market::{Metrics, Objective, equity, trades};

/// One expected metric: a number, or null for one of three reasons.
#[derive(Clone, Copy, Debug)]
enum Want {
    Num(f64),
    /// Undefined: `null`, and no ranking figure.
    Null,
    /// `null` whose reason says +∞ (a ranking reads +∞). Its mirror, −∞,
    /// cannot happen: a negative mean return or cagr implies a losing
    /// return and a drawdown.
    PlusInf,
}
use Want::{Null, Num, PlusInf};

struct Case {
    title: &'static str,
    close: &'static [f64],
    positions: &'static [i8],
    fee: f64,
    bars: u64,
    ruin: Option<u64>,
    entries: u64,
    trades: u64,
    /// total_return, cagr, volatility, sharpe, sortino, max_drawdown,
    /// calmar, win_rate, exposure, turnover
    figures: [Want; 10],
}

const NAMES: [&str; 10] = [
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "exposure",
    "turnover",
];

/// Printed by `python3 scripts/reference_edge_cases.py`.
const CASES: &[Case] = &[
    Case {
        title: "empty",
        close: &[],
        positions: &[],
        fee: 0.0,
        bars: 0,
        ruin: None,
        entries: 0,
        trades: 0,
        figures: [
            Num(0.0),
            Null,
            Null,
            Null,
            Null,
            Num(0.0),
            Null,
            Null,
            Null,
            Null,
        ],
    },
    Case {
        title: "one bar, positioned, fee 0.001",
        close: &[100.0],
        positions: &[1],
        fee: 0.001,
        bars: 1,
        ruin: None,
        entries: 1,
        trades: 0,
        figures: [
            Num(-0.0010000000000000009),
            Null,
            Null,
            Null,
            Null,
            Num(-0.0010000000000000009),
            Null,
            Null,
            Num(1.0),
            Num(252.0),
        ],
    },
    Case {
        title: "one bar, flat",
        close: &[100.0],
        positions: &[0],
        fee: 0.0,
        bars: 1,
        ruin: None,
        entries: 0,
        trades: 0,
        figures: [
            Num(0.0),
            Null,
            Null,
            Null,
            Null,
            Num(0.0),
            Null,
            Null,
            Num(0.0),
            Num(0.0),
        ],
    },
    Case {
        title: "two bars, long through a loss, fee 0.001",
        close: &[100.0, 95.0],
        positions: &[1, 1],
        fee: 0.001,
        bars: 2,
        ruin: None,
        entries: 1,
        trades: 0,
        figures: [
            Num(-0.05095000000000005),
            Num(-0.9999981083030408),
            Null,
            Null,
            Num(-15.874507866387544),
            Num(-0.05095000000000005),
            Num(-19.627048249323646),
            Null,
            Num(1.0),
            Num(126.0),
        ],
    },
    Case {
        title: "two bars, long through a gain",
        close: &[100.0, 105.0],
        positions: &[1, 1],
        fee: 0.0,
        bars: 2,
        ruin: None,
        entries: 1,
        trades: 0,
        figures: [
            Num(0.050000000000000044),
            Num(218625.78363222268),
            Null,
            Null,
            PlusInf,
            Num(0.0),
            PlusInf,
            Null,
            Num(1.0),
            Num(126.0),
        ],
    },
    Case {
        title: "flat series, long",
        close: &[100.0, 100.0, 100.0, 100.0],
        positions: &[0, 1, 1, 0],
        fee: 0.0,
        bars: 4,
        ruin: None,
        entries: 1,
        trades: 1,
        figures: [
            Num(0.0),
            Num(0.0),
            Num(0.0),
            Null,
            Null,
            Num(0.0),
            Null,
            // A round trip that returns exactly 0 is not a win.
            Num(0.0),
            Num(0.5),
            Num(126.0),
        ],
    },
    Case {
        title: "gains only, long",
        close: &[100.0, 101.0, 103.0, 104.0, 104.0],
        positions: &[1, 1, 1, 1, 0],
        fee: 0.0,
        bars: 5,
        ruin: None,
        entries: 1,
        trades: 1,
        figures: [
            Num(0.040000000000000036),
            Num(10.833150164731968),
            Num(0.12834609156247198),
            Num(19.39424261081254),
            PlusInf,
            Num(0.0),
            PlusInf,
            Num(1.0),
            Num(0.8),
            Num(100.80000000000001),
        ],
    },
    Case {
        title: "losses only, long, fee 0.002",
        close: &[100.0, 99.0, 97.0, 96.0, 90.0],
        positions: &[0, 1, 1, 1, 0],
        fee: 0.002,
        bars: 5,
        ruin: None,
        entries: 1,
        trades: 1,
        figures: [
            Num(-0.09454181818181806),
            Num(-0.9980826162726284),
            Num(0.4410528305068128),
            Num(-13.839241892622793),
            Num(-11.262147018912115),
            Num(-0.09454181818181806),
            Num(-10.557049097079625),
            Num(0.0),
            Num(0.6),
            Num(100.80000000000001),
        ],
    },
    Case {
        title: "wipe-out: a short through a tripling, fee 0.001",
        close: &[100.0, 110.0, 99.0, 104.0, 312.0, 300.0, 310.0],
        positions: &[0, -1, -1, -1, -1, -1, -1],
        fee: 0.001,
        bars: 7,
        ruin: Some(4),
        entries: 1,
        trades: 1,
        figures: [
            Num(-1.0),
            Num(-1.0),
            Num(8.12660745740549),
            Num(-7.376364429561883),
            Num(-7.54271973031112),
            Num(-1.0),
            Num(-1.0),
            Num(0.0),
            Num(0.42857142857142855),
            Num(72.0),
        ],
    },
    Case {
        title: "wipe-out on the last bar after a closed winning trade",
        close: &[100.0, 90.0, 95.0, 100.0, 350.0],
        positions: &[-1, -1, 0, -1, -1],
        fee: 0.0,
        bars: 5,
        ruin: Some(4),
        entries: 2,
        trades: 2,
        figures: [
            Num(-1.0),
            Num(-1.0),
            Num(8.119386950037821),
            Num(-7.414352877925048),
            Num(-7.572809660479138),
            Num(-1.0),
            Num(-1.0),
            Num(0.5),
            Num(0.6),
            Num(201.60000000000002),
        ],
    },
];

/// The backtest's steps over one series.
fn backtest(case: &Case) -> Metrics {
    let returns = equity::close_returns(case.close);
    let e = equity::equity_curve(&returns, case.positions, case.fee);
    let mut held = case.positions.to_vec();
    equity::liquidate_at_ruin(&e, &mut held);
    let t = trades::round_trips(&returns, &held, case.fee);
    Metrics::compute(&e, &held, &t, 252.0)
}

fn field(m: &Metrics, name: &str) -> Option<f64> {
    match name {
        "total_return" => Some(m.total_return),
        "cagr" => m.cagr,
        "volatility" => m.volatility,
        "sharpe" => m.sharpe,
        "sortino" => m.sortino,
        "max_drawdown" => Some(m.max_drawdown),
        "calmar" => m.calmar,
        "win_rate" => m.win_rate,
        "exposure" => m.exposure,
        "turnover" => m.turnover,
        _ => unreachable!("{name}"),
    }
}

#[test]
fn degenerate_series_match_the_reference() {
    for case in CASES {
        let m = backtest(case);
        let what = case.title;
        assert_eq!(
            (m.bars, m.ruin, m.entries, m.trades),
            (case.bars, case.ruin, case.entries, case.trades),
            "{what}"
        );
        let json = serde_json::to_value(&m).unwrap();
        for (name, want) in NAMES.iter().zip(case.figures) {
            let got = field(&m, name);
            let reason = m.undefined.get(*name);
            match want {
                Num(v) => {
                    let got = got.unwrap_or_else(|| panic!("{what}: {name} is null: {reason:?}"));
                    assert!(
                        (got - v).abs() <= 1e-12 * v.abs().max(1.0),
                        "{what}: {name} = {got}, want {v}"
                    );
                    assert!(reason.is_none(), "{what}: {name} has a reason {reason:?}");
                }
                Null | PlusInf => {
                    assert_eq!(got, None, "{what}: {name}");
                    assert!(json[name].is_null(), "{what}: {name} in JSON: {json}");
                    let reason =
                        reason.unwrap_or_else(|| panic!("{what}: {name} is null without a reason"));
                    match want {
                        PlusInf => assert!(reason.starts_with(UNBOUNDED_ABOVE), "{what}: {reason}"),
                        _ => assert!(
                            !reason.starts_with(UNBOUNDED_ABOVE)
                                && !reason.starts_with(UNBOUNDED_BELOW),
                            "{what}: {name}: {reason}"
                        ),
                    }
                }
            }
        }
        // Nothing undefined that the reference defines.
        for name in m.undefined.keys() {
            let i = NAMES.iter().position(|n| n == name).unwrap();
            assert!(
                !matches!(case.figures[i], Num(_)),
                "{what}: {name} undefined"
            );
        }
        assert_eq!(
            m.ruin.is_some(),
            m.notes().iter().any(|n| n.contains("ruin"))
        );
    }
}

/// Each objective's ranking figure: its metric, ±∞ where the reference
/// says unbounded, and nothing where it is undefined.
#[test]
fn objectives_read_the_degenerate_figures() {
    for case in CASES {
        let m = backtest(case);
        for name in Objective::NAMES {
            let objective = Objective::parse(name).unwrap();
            let i = NAMES.iter().position(|n| n == name).unwrap();
            let want = match case.figures[i] {
                Num(v) => Some(v),
                Null => None,
                PlusInf => Some(f64::INFINITY),
            };
            let got = objective.of(&m);
            match (got, want) {
                (Some(g), Some(w)) if g.is_infinite() || w.is_infinite() => {
                    assert_eq!(g, w, "{}: {name}", case.title)
                }
                (Some(g), Some(w)) => assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "{}: {name} = {g}, want {w}",
                    case.title
                ),
                (g, w) => assert_eq!(g, w, "{}: {name}", case.title),
            }
        }
    }
}
