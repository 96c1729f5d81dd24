//! The equity recursion (docs/design.md §6).
//!
//! With R_t = C_t/C_{t−1} − 1 the close-to-close return and f the
//! proportional fee per unit of position change:
//!
//! E_t = E_{t−1} · (1 + p_{t−1}·R_t) · (1 − f·|p_t − p_{t−1}|),  t ≥ 1.
//!
//! **First bar.** The position before the data is p_{−1} = 0 and the
//! capital before the data is 1, so E_0 = 1 − f·|p_0|. Every built-in
//! strategy is flat on bar 0 (all have a warm-up of at least one bar), so
//! for them E_0 = 1 exactly; a signal file that is already positioned on
//! bar 0 pays its entry fee on bar 0. Per-bar strategy returns are
//! r_t = E_t/E_{t−1} − 1 for t = 1..T (T = bars − 1).
//!
//! **Ruin.** Equity at or below 0 (a short through a tripling, say) is
//! ruin: E is 0 from that bar on, whatever the positions say, and
//! [`liquidate_at_ruin`] flattens the positions from there so that trades
//! and exposure agree with a run that stopped.

/// When a position decided at the close of bar t is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// At that close (the recursion above).
    Close,
    /// At the open of bar t + 1. The gap from close t to open t + 1 still
    /// belongs to the position held before, so with h_t = p_{t−1} the
    /// position held from the open of bar t (h_0 = 0), g_t = O_t/C_{t−1} − 1
    /// and d_t = C_t/O_t − 1:
    /// E_t = E_{t−1} · (1 + h_{t−1}·g_t) · (1 − f·|h_t − h_{t−1}|) · (1 + h_t·d_t).
    /// The position decided at the last close is never filled.
    NextOpen,
}

impl Fill {
    pub const NAMES: &[&str] = &["close", "next_open"];

    pub fn parse(name: &str) -> Option<Fill> {
        match name {
            "close" => Some(Fill::Close),
            "next_open" => Some(Fill::NextOpen),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fill::Close => "close",
            Fill::NextOpen => "next_open",
        }
    }
}

/// A series of bars seen by a fill rule: per bar t the return before the
/// fill (`before[t]`, earned by h_{t−1}) and after it (`after[t]`, earned
/// by h_t), with `before[0] = after[0] = 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Legs {
    pub before: Vec<f64>,
    pub after: Vec<f64>,
}

impl Legs {
    /// The legs of `fill` over opens `open` and closes `close`.
    pub fn new(open: &[f64], close: &[f64], fill: Fill) -> Legs {
        match fill {
            Fill::Close => Legs {
                before: close_returns(close),
                after: vec![0.0; close.len()],
            },
            Fill::NextOpen => {
                let mut before = vec![0.0; close.len()];
                let mut after = vec![0.0; close.len()];
                for t in 1..close.len() {
                    before[t] = open[t] / close[t - 1] - 1.0;
                    after[t] = close[t] / open[t] - 1.0;
                }
                Legs { before, after }
            }
        }
    }
}

/// The positions held under `fill` for decisions `decided`: the same for
/// [`Fill::Close`], one bar later for [`Fill::NextOpen`].
pub fn held(decided: &[i8], fill: Fill) -> Vec<i8> {
    match fill {
        Fill::Close => decided.to_vec(),
        Fill::NextOpen => {
            let mut h = vec![0; decided.len()];
            if decided.len() > 1 {
                h[1..].copy_from_slice(&decided[..decided.len() - 1]);
            }
            h
        }
    }
}

/// E_0..E_T for held positions `h` over `legs` with cost `fee` per unit
/// of position change (the [`Fill::NextOpen`] recursion; with `after` all
/// 0 it is the close recursion). Ruin is absorbing as in [`equity_into`].
pub fn equity_legs(legs: &Legs, h: &[i8], fee: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(h.len());
    let mut prev = 0i8;
    let mut e = 1.0;
    for (t, &p) in h.iter().enumerate() {
        if e > 0.0 {
            if t > 0 {
                e *= 1.0 + f64::from(prev) * legs.before[t];
            }
            e *= 1.0 - fee * f64::from((p - prev).abs());
            if t > 0 {
                e *= 1.0 + f64::from(p) * legs.after[t];
            }
            if e <= 0.0 {
                e = 0.0;
            }
        }
        out.push(e);
        prev = p;
    }
    out
}

/// Close-to-close returns, `R[0] = 0`.
pub fn close_returns(close: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(close.len());
    if !close.is_empty() {
        out.push(0.0);
    }
    out.extend(close.windows(2).map(|w| w[1] / w[0] - 1.0));
    out
}

/// E_0..E_T for positions `p` over close-to-close returns `returns`.
pub fn equity_curve(returns: &[f64], positions: &[i8], fee: f64) -> Vec<f64> {
    let mut out = vec![0.0; positions.len()];
    equity_into(returns, positions, fee, &mut out);
    out
}

/// [`equity_curve`] into a caller's buffer of `positions.len()`: the
/// allocation-free kernel of sweeps.
pub fn equity_into(returns: &[f64], positions: &[i8], fee: f64, out: &mut [f64]) {
    let mut prev = 0i8;
    let mut e = 1.0;
    for (t, (&p, slot)) in positions.iter().zip(out.iter_mut()).enumerate() {
        if e > 0.0 {
            if t > 0 {
                e *= 1.0 + f64::from(prev) * returns[t];
            }
            e *= 1.0 - fee * f64::from((p - prev).abs());
            // Ruin is absorbing: no negative capital, no way back.
            if e <= 0.0 {
                e = 0.0;
            }
        }
        *slot = e;
        prev = p;
    }
}

/// The first bar whose equity is at or below 0.
pub fn ruin(equity: &[f64]) -> Option<usize> {
    equity.iter().position(|&e| e <= 0.0)
}

/// Flat from the bar of ruin on: the position is liquidated there.
/// Returns that bar.
pub fn liquidate_at_ruin(equity: &[f64], positions: &mut [i8]) -> Option<usize> {
    let at = ruin(equity)?;
    positions[at..].fill(0);
    Some(at)
}

/// r_t = E_t/E_{t−1} − 1 for t = 1..T.
pub fn strategy_returns(equity: &[f64]) -> Vec<f64> {
    equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursion_with_fee() {
        let c = [100.0, 110.0, 99.0, 99.0];
        let r = close_returns(&c);
        assert_eq!(r.len(), 4);
        let p = [1, 1, -1, 0];
        let e = equity_curve(&r, &p, 0.01);
        let e0 = 0.99;
        let e1 = e0 * 1.1;
        let e2 = e1 * (1.0 + (99.0 / 110.0 - 1.0)) * (1.0 - 0.02);
        let e3 = e2 * 1.0 * (1.0 - 0.01);
        for (a, b) in e.iter().zip([e0, e1, e2, e3]) {
            assert!((a - b).abs() < 1e-15, "{e:?}");
        }
        assert_eq!(strategy_returns(&e).len(), 3);
    }

    #[test]
    fn next_open_fill_by_hand() {
        let open = [10.0, 11.0, 12.0, 11.0];
        let close = [10.0, 12.0, 11.0, 10.0];
        let decided = [1, 1, 0, 0];
        let h = held(&decided, Fill::NextOpen);
        assert_eq!(h, vec![0, 1, 1, 0]);
        let legs = Legs::new(&open, &close, Fill::NextOpen);
        let e = equity_legs(&legs, &h, 0.01);
        // Bar 1: bought at the open 11 (fee), held to the close 12.
        let e1 = 0.99 * (12.0 / 11.0);
        // Bar 2: long over the gap 12 → 12 and the day 12 → 11.
        let e2 = e1 * (12.0 / 12.0) * (11.0 / 12.0);
        // Bar 3: long over the gap 11 → 11, sold at that open (fee).
        let e3 = e2 * (11.0 / 11.0) * 0.99;
        for (a, b) in e.iter().zip([1.0, e1, e2, e3]) {
            assert!((a - b).abs() < 1e-15, "{e:?}");
        }
        // The close fill through the same kernel is the close recursion.
        let c = Legs::new(&open, &close, Fill::Close);
        let r = close_returns(&close);
        assert_eq!(
            equity_legs(&c, &decided, 0.01),
            equity_curve(&r, &decided, 0.01)
        );
    }

    #[test]
    fn ruin_is_absorbing() {
        let r = close_returns(&[100.0, 250.0, 100.0, 40.0]);
        let mut p = [-1, -1, -1, -1];
        let e = equity_curve(&r, &p, 0.0);
        // 1 − 1.5 < 0 at bar 1; the later fall cannot bring it back.
        assert_eq!(e, vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(liquidate_at_ruin(&e, &mut p), Some(1));
        assert_eq!(p, [-1, 0, 0, 0]);
    }
}
