//! Metrics of a strategy restricted to the bars of one regime.
//!
//! The return r_t = E_t/E_{t−1} − 1 belongs to the regime of bar t−1: the
//! label known at the close where p_{t−1}, which earns r_t, was decided.
//! The selected returns are chained into an equity curve starting at 1 and
//! measured with [`Metrics::from_equity`]; `bars` is the number of
//! selected returns and `exposure` the fraction of them earned with a
//! position. Entries and trades are 0, win rate and turnover undefined (a
//! regime's bars are not contiguous, so they hold no round trip of their
//! own).

use super::metrics::Metrics;

pub fn regime_metrics(
    equity: &[f64],
    positions: &[i8],
    labels: &[u8],
    code: u8,
    ppy: f64,
) -> Metrics {
    let mut sub = Vec::with_capacity(equity.len());
    sub.push(1.0);
    let mut e = 1.0;
    let mut held = 0usize;
    for t in 1..equity.len() {
        if labels[t - 1] == code {
            e *= equity[t] / equity[t - 1];
            sub.push(e);
            held += usize::from(positions[t - 1] != 0);
        }
    }
    let mut m = Metrics::from_equity(&sub, ppy);
    let n = sub.len() - 1;
    m.bars = n as u64;
    m.without_positions("not defined on the non-contiguous bars of one regime");
    m.exposure = if n > 0 {
        Some(held as f64 / n as f64)
    } else {
        m.undefined
            .insert("exposure".into(), "no bar in this regime".into());
        None
    };
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_go_to_the_previous_bars_label() {
        let e = [1.0, 1.1, 1.21, 1.089];
        let p = [1, 1, 1, 0];
        let labels = [0, 1, 0, 1];
        let a = regime_metrics(&e, &p, &labels, 0, 252.0);
        // Returns 0.1 (label of bar 0) and -0.1 (label of bar 2).
        assert_eq!(a.bars, 2);
        assert!((a.total_return - (1.1 * 0.9 - 1.0)).abs() < 1e-12);
        let b = regime_metrics(&e, &p, &labels, 1, 252.0);
        assert_eq!(b.bars, 1);
        assert!((b.total_return - 0.1).abs() < 1e-12);
        assert_eq!(b.exposure, Some(1.0));
        assert_eq!((b.win_rate, b.turnover), (None, None));
    }
}
