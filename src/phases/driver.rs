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
enum BarReturns {
    Close(Vec<f64>),
    Legs(Legs),
}

/// Runs the decided `positions` over `bars` with cost `fee` per unit of
/// position change, filled by `fill`. The run's positions are those held
/// (one bar later for [`Fill::NextOpen`]); at ruin they are flattened from
/// that bar on, so the trades end there too.
pub fn run(bars: &Bars, positions: Vec<i8>, fee: f64, fill: Fill) -> Run {
    let (mut held, e, returns) = match fill {
        Fill::Close => {
            let r = equity::close_returns(&bars.close);
            let e = equity::equity_curve(&r, &positions, fee);
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
