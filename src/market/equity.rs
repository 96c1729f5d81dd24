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
        if t > 0 {
            e *= 1.0 + f64::from(prev) * returns[t];
        }
        e *= 1.0 - fee * f64::from((p - prev).abs());
        *slot = e;
        prev = p;
    }
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
}
