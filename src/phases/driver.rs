//! Running a decided position series over bars: the equity recursion,
//! the trades and the metrics of one run.

use crate::market::equity::{Fill, Legs};
use crate::market::{Bars, Metrics, equity, trades, trades::Trade};

/// One position series run through the equity recursion.
pub struct Run {
    pub positions: Vec<i8>,
    pub equity: Vec<f64>,
    pub trades: Vec<Trade>,
    pub metrics: Metrics,
}

/// The per-bar returns a run's equity was computed from, which its trades
/// use again.
enum BarReturns<'a> {
    Close(&'a [f64]),
    Legs(Legs),
}

/// Runs the decided `positions` over `bars` with cost `fee` per unit of
/// position change, filled by `fill`. The run's positions are those held
/// (one bar later for [`Fill::NextOpen`]); at ruin they are flattened from
/// that bar on, so the trades end there too.
pub fn run(bars: &Bars, positions: Vec<i8>, fee: f64, fill: Fill) -> Run {
    let (mut held, e, returns) = match fill {
        Fill::Close => {
            let r = bars.close_returns();
            let e = equity::equity_curve(r, &positions, fee);
            (positions, e, BarReturns::Close(r))
        }
        Fill::NextOpen => {
            let legs = Legs::new(&bars.open, &bars.close, fill);
            let h = equity::held(&positions, fill);
            let e = equity::equity_legs(&legs, &h, fee);
            (h, e, BarReturns::Legs(legs))
        }
    };
    equity::liquidate_at_ruin(&e, &mut held);
    let t = match &returns {
        BarReturns::Close(r) => trades::round_trips(r, &held, fee),
        BarReturns::Legs(l) => trades::round_trips_legs(&l.before, Some(&l.after), &held, fee),
    };
    let metrics = Metrics::compute(&e, &held, &t, bars.periods_per_year());
    Run {
        positions: held,
        equity: e,
        trades: t,
        metrics,
    }
}

/// [`run`]`(bars, positions, fee, Fill::Close).metrics`, the same
/// figures, computed without the run's vectors where it can be
/// ([`equity::close_curve_and_counts`]): a sweep's trial keeps only its
/// metrics. `curve` is a buffer for the equity curve.
pub fn close_fill_metrics(
    bars: &Bars,
    positions: &[i8],
    fee: f64,
    curve: &mut Vec<f64>,
) -> Metrics {
    close_fill_metrics_and_returns(bars, positions, fee, curve).0
}

/// [`close_fill_metrics`], and the per-bar returns r_1..r_T of the run's
/// equity curve (the one [`equity::equity_curve`] computes for
/// `positions`, [`equity::strategy_returns`]) where the metrics were
/// computed from them: where the run was neither ruined nor left the
/// finite and positive.
pub fn close_fill_metrics_and_returns(
    bars: &Bars,
    positions: &[i8],
    fee: f64,
    curve: &mut Vec<f64>,
) -> (Metrics, Option<Vec<f64>>) {
    curve.clear();
    curve.resize(positions.len(), 0.0);
    match equity::close_curve_and_counts(bars.close_returns(), positions, fee, curve) {
        Some(counts) => {
            let returns = equity::strategy_returns(curve);
            let mut m = Metrics::from_unruined_equity(curve, &returns, bars.periods_per_year());
            m.set_positions(positions.len(), counts);
            (m, Some(returns))
        }
        None => (
            run(bars, positions.to_vec(), fee, Fill::Close).metrics,
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Fees, flips, shorts through a tripling (ruin) and gaps.
        #[test]
        fn close_fill_metrics_are_those_of_the_run(
            moves in proptest::collection::vec(
                prop_oneof![8 => -0.04f64..0.04, 1 => -0.9f64..2.5, 1 => Just(0.0)],
                1..150,
            ),
            positions in proptest::collection::vec(
                prop_oneof![3 => Just(0i8), 2 => Just(1i8), 1 => Just(-1i8)],
                150,
            ),
            stretch in 1usize..25,
            fee in prop_oneof![Just(0.0), 0.0f64..0.02, Just(0.6)],
        ) {
            let mut close = vec![100.0];
            for m in &moves {
                let last = *close.last().unwrap();
                close.push(last * (1.0 + m));
            }
            let n = close.len();
            let bars = Bars {
                close,
                ts: (0..n as i64).map(|d| d * 86_400).collect(),
                ..Bars::default()
            };
            let p: Vec<i8> = (0..n).map(|t| positions[(t / stretch).min(149)]).collect();
            let want = run(&bars, p.clone(), fee, Fill::Close).metrics;
            let mut curve = vec![3.0];
            let got = close_fill_metrics(&bars, &p, fee, &mut curve);
            // Debug writes every float in its shortest round-trip form:
            // equal text, equal bits.
            prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
        }
    }
}
