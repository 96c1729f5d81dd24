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

use super::metrics::PositionCounts;

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
    let n = positions.len().min(out.len());
    let mut state = (1.0, 0i8);
    for (run, p) in constant_runs(&positions[..n]) {
        equity_run(&mut state, returns, fee, (run, p), out);
    }
}

/// The runs of equal positions in `positions`, in order: each bar range
/// and the position held over it.
fn constant_runs(positions: &[i8]) -> impl Iterator<Item = (std::ops::Range<usize>, i8)> + '_ {
    let n = positions.len();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= n {
            return None;
        }
        let p = positions[start];
        let end = positions[start + 1..]
            .iter()
            .position(|&q| q != p)
            .map_or(n, |k| start + 1 + k);
        let run = start..end;
        start = end;
        Some((run, p))
    })
}

/// [`equity_curve`] into `out` (resized to `len`) for the positions over
/// `len` bars that are 0 before the first of `changes` and take each
/// change's position from its bar on (bars strictly increasing, below
/// `len`): a sweep's gather derives every trial's curve from its sparse
/// signal without the dense positions.
pub fn equity_of_changes(
    returns: &[f64],
    len: usize,
    changes: &[(usize, i8)],
    fee: f64,
    out: &mut Vec<f64>,
) {
    out.clear();
    out.resize(len, 0.0);
    let mut state = (1.0, 0i8);
    let first = changes.first().map_or(len, |c| c.0.min(len));
    equity_run(&mut state, returns, fee, (0..first, 0), out);
    for (k, &(at, p)) in changes.iter().enumerate() {
        let end = changes.get(k + 1).map_or(len, |c| c.0.min(len));
        equity_run(&mut state, returns, fee, (at.min(end)..end, p), out);
    }
}

/// [`strategy_returns`] of [`equity_of_changes`], into `out`, with
/// `equity` the buffer for the curve.
pub fn returns_of_changes(
    returns: &[f64],
    len: usize,
    changes: &[(usize, i8)],
    fee: f64,
    (equity, out): (&mut Vec<f64>, &mut Vec<f64>),
) {
    equity_of_changes(returns, len, changes, fee, equity);
    out.clear();
    out.resize(len.saturating_sub(1), 0.0);
    let later = equity.get(1..).unwrap_or_default();
    for (r, (before, after)) in out.iter_mut().zip(equity.iter().zip(later)) {
        *r = after / before - 1.0;
    }
}

/// One bar of the recursion: E_t from E_{t−1} = `e`, p_{t−1} = `prev`
/// and p_t = `p`.
#[inline(always)]
fn equity_step(mut e: f64, t: usize, (prev, p): (i8, i8), returns: &[f64], fee: f64) -> f64 {
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
    e
}

/// The bars `range` of the recursion, all of which hold position `p`,
/// into `out[range]`; `state` is (E, p) of the bar before, updated.
///
/// The first bar takes [`equity_step`]; the bars after it, which change
/// no position, leave out the products by factors that are exactly 1
/// (`1 − f·0` for a finite fee, and `1 + 0·R_t` flat for a finite
/// `R_t`), so a flat stretch is E repeated and a held one is one product
/// a bar: the same bits. Any bar where E would leave (0, ∞), or a flat
/// bar with a non-finite `R_t`, takes [`equity_step`] instead.
#[inline(always)]
fn equity_run(
    state: &mut (f64, i8),
    returns: &[f64],
    fee: f64,
    (range, p): (std::ops::Range<usize>, i8),
    out: &mut [f64],
) {
    let (mut e, mut prev) = *state;
    let mut t = range.start;
    let end = range.end;
    while t < end {
        e = equity_step(e, t, (prev, p), returns, fee);
        out[t] = e;
        prev = p;
        t += 1;
        if !(e > 0.0 && e.is_finite() && fee.is_finite()) {
            continue;
        }
        if p == 0 {
            let stop = returns[t..end]
                .iter()
                .position(|r| !r.is_finite())
                .map_or(end, |k| t + k);
            out[t..stop].fill(e);
            t = stop;
        } else {
            let side = f64::from(p);
            while t < end {
                let next = e * (1.0 + side * returns[t]);
                if !(next > 0.0 && next.is_finite()) {
                    break;
                }
                e = next;
                out[t] = e;
                t += 1;
            }
        }
    }
    *state = (e, prev);
}

/// [`equity_into`] over close-to-close `returns` together with the
/// position statistics of `positions` and of their round trips
/// ([`super::trades::round_trips`]): what a sweep's trial needs of a run,
/// in one pass, without the trades. A held bar's factor 1 + p·R_t is
/// computed once and taken by both E and the open trade's growth (the
/// same product each makes), and its fee factor, exactly 1, is left out.
/// `None`, with `out` in any state, for a run that is ruined (whose
/// positions are then liquidated) or whose figures leave the finite and
/// positive, and for a non-finite fee: the caller then takes the general
/// path.
pub fn close_curve_and_counts(
    returns: &[f64],
    positions: &[i8],
    fee: f64,
    out: &mut [f64],
) -> Option<PositionCounts> {
    let n = positions.len();
    if !fee.is_finite() || out.len() < n || returns.len() < n {
        return None;
    }
    let mut counts = PositionCounts::default();
    let (mut e, mut prev) = (1.0f64, 0i8);
    // The open trade's growth, when one is open (its side is `prev`).
    let mut growth: Option<f64> = None;
    for (run, p) in constant_runs(positions) {
        let (start, end) = (run.start, run.end);
        // The first bar: a change of position (or bar 0).
        if let Some(g) = growth.as_mut() {
            *g *= 1.0 + f64::from(prev) * returns[start];
        }
        if p != prev {
            if let Some(g) = growth.take() {
                counts.closed += 1;
                counts.wins += u64::from((g * (1.0 - fee) - 1.0).max(-1.0) > 0.0);
            }
            if p != 0 {
                growth = Some(1.0 - fee);
                counts.entries += 1;
            }
            counts.traded += u64::from((p - prev).unsigned_abs());
        }
        e = equity_step(e, start, (prev, p), returns, fee);
        if !above_zero(e) {
            return None;
        }
        out[start] = e;
        prev = p;
        // The bars after it, which hold p.
        let rest = start + 1..end;
        if p == 0 {
            if !returns[rest.clone()].iter().all(|r| r.is_finite()) {
                return None;
            }
            out[rest].fill(e);
        } else {
            counts.held += (end - start) as u64;
            let side = f64::from(p);
            let mut g = growth.unwrap_or(1.0);
            for t in rest {
                let factor = 1.0 + side * returns[t];
                e *= factor;
                g *= factor;
                out[t] = e;
                if !above_zero(e) {
                    return None;
                }
            }
            if growth.is_some() {
                growth = Some(g);
            }
        }
    }
    Some(counts)
}

/// Whether E is above 0: neither ruined (at most 0) nor NaN.
#[inline(always)]
fn above_zero(e: f64) -> bool {
    e > 0.0
}

/// The recursion bar by bar, as written in the module documentation:
/// the reference the runs of [`equity_into`] are checked against.
#[cfg(test)]
fn equity_by_bars(returns: &[f64], positions: &[i8], fee: f64) -> Vec<f64> {
    let mut prev = 0i8;
    let mut e = 1.0;
    let mut out = Vec::with_capacity(positions.len());
    for (t, &p) in positions.iter().enumerate() {
        e = equity_step(e, t, (prev, p), returns, fee);
        out.push(e);
        prev = p;
    }
    out
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

    use proptest::prelude::*;

    proptest! {
        /// Including ruin (returns below −1), fees, flips and a
        /// non-finite bar return.
        #[test]
        fn curves_by_runs_are_the_bits_of_the_recursion_bar_by_bar(
            bar in proptest::collection::vec(
                prop_oneof![8 => -0.05f64..0.05, 1 => -3.0f64..3.0, 1 => Just(0.0)],
                0..200,
            ),
            positions in proptest::collection::vec(
                prop_oneof![3 => Just(0i8), 2 => Just(1i8), 1 => Just(-1i8)],
                200,
            ),
            run in 1usize..30,
            fee in prop_oneof![Just(0.0), 0.0f64..0.01],
            infinite_at in proptest::option::of(0usize..200),
        ) {
            let len = bar.len();
            let mut r = bar.clone();
            if let Some(at) = infinite_at.filter(|&at| at > 0 && at < len) {
                r[at] = f64::INFINITY;
            }
            // Positions held for runs of bars, so that flat and unchanged
            // stretches occur.
            let p: Vec<i8> = (0..len).map(|t| positions[t / run]).collect();
            let mut changes = Vec::new();
            let mut prev = 0i8;
            for (t, &v) in p.iter().enumerate() {
                if v != prev {
                    changes.push((t, v));
                    prev = v;
                }
            }
            let reference = equity_by_bars(&r, &p, fee);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&equity_curve(&r, &p, fee)), bits(&reference));
            let want = strategy_returns(&reference);
            let (mut curve, mut got) = (vec![7.0], vec![7.0]);
            returns_of_changes(&r, len, &changes, fee, (&mut curve, &mut got));
            prop_assert_eq!(bits(&curve), bits(&reference));
            prop_assert_eq!(bits(&got), bits(&want));
            // A sweep's trial hands its gather figures of the curve the
            // counting pass computes, where it computes one: it must be
            // the curve the gather derives from the sparse signal.
            let mut counted = vec![7.0; len];
            if close_curve_and_counts(&r, &p, fee, &mut counted).is_some() {
                prop_assert_eq!(bits(&counted), bits(&reference));
            }
        }
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
