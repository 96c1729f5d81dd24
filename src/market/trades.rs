//! Round trips: maximal runs of one constant non-zero position.
//!
//! A trade opens at the close of bar a where p_a ≠ 0 and p_a ≠ p_{a−1},
//! and closes at the close of the first later bar b with p_b ≠ p_a (a flip
//! from long to short closes one trade and opens the next on the same
//! bar). Its return charges one unit of fee on entry and one on exit:
//! (1 − f) · Π_{t=a+1..b} (1 + p_a·R_t) · (1 − f) − 1, so a flip's 2f is
//! split between the two trades. A trade still open on the last bar is
//! reported with `closed: false` and counts in no win rate. A trade loses
//! at most everything: its return is never below −1 (ruin, see
//! [`super::equity`]).

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trade {
    pub entry: usize,
    pub exit: usize,
    pub side: i8,
    pub closed: bool,
    pub ret: f64,
}

pub fn round_trips(returns: &[f64], positions: &[i8], fee: f64) -> Vec<Trade> {
    round_trips_legs(returns, None, positions, fee)
}

/// [`round_trips`] of held positions over the legs of a fill rule
/// ([`super::equity::Legs`]): a trade earns `before[t]` on every bar after
/// its fill up to and including its exit, and `after[t]` from its fill bar
/// to the bar before its exit.
pub fn round_trips_legs(
    before: &[f64],
    after: Option<&[f64]>,
    positions: &[i8],
    fee: f64,
) -> Vec<Trade> {
    let mut trades = Vec::new();
    let mut open: Option<(usize, i8, f64)> = None;
    let mut prev = 0i8;
    for (t, &p) in positions.iter().enumerate() {
        if let Some((_, side, growth)) = open.as_mut() {
            *growth *= 1.0 + f64::from(*side) * before[t];
        }
        if p != prev {
            if let Some((entry, side, growth)) = open.take() {
                trades.push(Trade {
                    entry,
                    exit: t,
                    side,
                    closed: true,
                    ret: (growth * (1.0 - fee) - 1.0).max(-1.0),
                });
            }
            if p != 0 {
                open = Some((t, p, 1.0 - fee));
            }
        }
        if let (Some((_, side, growth)), Some(after), true) = (open.as_mut(), after, t > 0) {
            *growth *= 1.0 + f64::from(*side) * after[t];
        }
        prev = p;
    }
    if let Some((entry, side, growth)) = open {
        trades.push(Trade {
            entry,
            exit: positions.len() - 1,
            side,
            closed: false,
            ret: (growth - 1.0).max(-1.0),
        });
    }
    trades
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_close_and_open() {
        let r = [0.0, 0.1, -0.1, 0.05, 0.02];
        let p = [1, 1, -1, -1, -1];
        let t = round_trips(&r, &p, 0.0);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].entry, t[0].exit, t[0].side, t[0].closed),
            (0, 2, 1, true)
        );
        assert!((t[0].ret - (1.1 * 0.9 - 1.0)).abs() < 1e-15);
        assert_eq!(
            (t[1].entry, t[1].exit, t[1].side, t[1].closed),
            (2, 4, -1, false)
        );
        assert!((t[1].ret - (0.95 * 0.98 - 1.0)).abs() < 1e-15);
    }
}
