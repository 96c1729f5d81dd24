//! Summary metrics over the per-bar strategy returns r_t = E_t/E_{t−1} − 1,
//! t = 1..T, with P periods per year ([`super::bars::Frequency`], or the
//! `data.periods_per_year` a workflow declares).
//!
//! | metric | definition | undefined (`null`) when |
//! |---|---|---|
//! | `total_return` | E_T − 1 (capital 1 before the first bar) | never |
//! | `cagr` | E_T^(1/years) − 1 with years = T/P; −1 after ruin | T = 0 |
//! | `volatility` | std(r, ddof 1) · √P | T < 2 |
//! | `sharpe` | mean(r) / std(r, ddof 1) · √P, risk-free 0 | T < 2, or std = 0 |
//! | `sortino` | mean(r) / DD · √P with DD = √(Σ min(r_t, 0)² / T), target 0, over all T returns | T = 0, or DD = 0 |
//! | `max_drawdown` | min_t E_t / max(1, max_{s≤t} E_s) − 1, a fraction ≤ 0 | never |
//! | `calmar` | cagr / abs(max_drawdown) | cagr undefined, or no drawdown |
//! | `entries` | bars where p_t ≠ 0 and p_t ≠ p_{t−1} (p_{−1} = 0; a flip counts) | never |
//! | `trades` | closed round trips ([`super::trades`]) | never |
//! | `win_rate` | fraction of closed round trips with return > 0 | no closed trade |
//! | `exposure` | fraction of all bars with p_t ≠ 0 | no bar |
//! | `turnover` | Σ abs(p_t − p_{t−1}) over all bars / bars · P: position units traded per year | no bar |
//!
//! **Undefined is `null`, never 0.** A metric that cannot be computed is
//! `None` (written `null` in JSON) and `undefined` maps its name to the
//! reason, which the phases write to the log. A ratio whose denominator is
//! 0 while its numerator is not (a strategy without a losing return has
//! Sortino +∞) is also `null`, with a reason that starts with
//! [`UNBOUNDED_ABOVE`] or [`UNBOUNDED_BELOW`]: JSON has no infinity, but
//! rankings must still put such a strategy first (or last).
//!
//! **Rankings.** [`Objective::of`] gives the figure a ranking uses: the
//! value, ±∞ for an unbounded one, and `None` for an undefined one.
//! [`ranks_above`] orders them: every figure (±∞ included) ranks above an
//! undefined one, so an undefined objective is never chosen over a defined
//! one; between equal figures (or two undefined ones) the earlier
//! candidate stays first.
//!
//! **Ruin.** Equity at or below 0 is ruin ([`super::equity`]): the curve
//! stays at 0 from that bar, the returns end there (the last one is −1),
//! `ruin` names the bar and the total return is −1.
//!
//! **Short samples.** CAGR and Calmar annualise; on less than a year of
//! returns (T < P) `warnings` says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::trades::Trade;

/// The start of the reason of a ratio that is +∞.
pub const UNBOUNDED_ABOVE: &str = "unbounded above";
/// The start of the reason of a ratio that is −∞.
pub const UNBOUNDED_BELOW: &str = "unbounded below";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub total_return: f64,
    pub cagr: Option<f64>,
    pub volatility: Option<f64>,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub max_drawdown: f64,
    pub calmar: Option<f64>,
    pub entries: u64,
    pub trades: u64,
    pub win_rate: Option<f64>,
    pub exposure: Option<f64>,
    pub turnover: Option<f64>,
    pub bars: u64,
    pub periods_per_year: f64,
    /// The bar at which equity reached 0, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruin: Option<u64>,
    /// Why each `null` metric is undefined.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undefined: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What the position statistics count over a series of positions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PositionCounts {
    /// Bars where p_t ≠ 0 and p_t ≠ p_{t−1}.
    pub entries: u64,
    /// Bars with p_t ≠ 0.
    pub held: u64,
    /// Σ |p_t − p_{t−1}|.
    pub traded: u64,
    /// Closed round trips.
    pub closed: u64,
    /// Closed round trips with a return above 0.
    pub wins: u64,
}

/// num / den · scale, or the reason it has no finite value: `den` is a
/// deviation (≥ 0), so a zero `den` leaves the ratio unbounded in the
/// direction of `num`, or undefined when `num` is 0 too.
fn ratio(num: f64, den: f64, scale: f64, names: (&str, &str)) -> Result<f64, String> {
    if den > 0.0 {
        let v = num / den * scale;
        if v.is_finite() {
            return Ok(v);
        }
    }
    let (num_name, den_name) = names;
    if num > 0.0 {
        Err(format!(
            "{UNBOUNDED_ABOVE}: {num_name} > 0 and {den_name} 0"
        ))
    } else if num < 0.0 {
        Err(format!(
            "{UNBOUNDED_BELOW}: {num_name} < 0 and {den_name} 0"
        ))
    } else {
        Err(format!("0/0: {num_name} and {den_name} are both 0"))
    }
}

impl Metrics {
    /// All metrics of one position series.
    pub fn compute(equity: &[f64], positions: &[i8], trades: &[Trade], ppy: f64) -> Metrics {
        let mut m = Metrics::from_equity(equity, ppy);
        m.add_positions(positions, trades);
        m
    }

    fn set(&mut self, name: &str, value: Result<f64, String>) -> Option<f64> {
        match value {
            Ok(v) => Some(v),
            Err(reason) => {
                self.undefined.insert(name.to_string(), reason);
                None
            }
        }
    }

    /// The return metrics of an equity curve; position statistics are
    /// left undefined until [`Metrics::add_positions`].
    pub fn from_equity(equity: &[f64], ppy: f64) -> Metrics {
        let n = equity.len();
        let ruin = equity.iter().position(|&e| e <= 0.0);
        // After ruin there are no more returns: the run stopped.
        let live = &equity[..ruin.map_or(n, |r| r + 1)];
        Metrics::of_live(equity, ruin, &super::equity::strategy_returns(live), ppy)
    }

    /// [`Metrics::from_equity`] of an equity curve that is never ruined
    /// (every E_t above 0), whose per-bar returns E_t/E_{t−1} − 1
    /// ([`crate::market::equity::strategy_returns`]) the caller has at
    /// hand: `returns`.
    pub fn from_unruined_equity(equity: &[f64], returns: &[f64], ppy: f64) -> Metrics {
        debug_assert!(equity.iter().all(|&e| e > 0.0));
        Metrics::of_live(equity, None, returns, ppy)
    }

    /// [`Metrics::from_equity`] of `equity`, ruined at bar `ruin` if at
    /// all, with `rets` the returns up to the ruin.
    fn of_live(equity: &[f64], ruin: Option<usize>, rets: &[f64], ppy: f64) -> Metrics {
        let n = equity.len();
        let live = &equity[..ruin.map_or(n, |r| r + 1)];
        let t = live.len().saturating_sub(1);
        let end = if ruin.is_some() {
            0.0
        } else {
            live.last().copied().unwrap_or(1.0)
        };
        // Two passes instead of four: the sums, the peak and the drawdown
        // each take their terms in order from the neutral element `sum`
        // starts from (the bits of one pass each), while their chains of
        // operations overlap.
        let zero: f64 = std::iter::empty::<f64>().sum();
        let mut peak = 1.0f64;
        let mut mdd = 0.0f64;
        let mut sum = zero;
        if let Some(&first) = live.first() {
            peak = peak.max(first);
            mdd = mdd.min(first.max(0.0) / peak - 1.0);
        }
        // Terms that change nothing are left out (the same bits): a zero
        // added to a sum that is not −0, the drawdown of a new peak (0,
        // and `mdd` ≤ 0) and that of an unchanged equity (the one before).
        let mut before = live.first().copied().unwrap_or(f64::NAN);
        for (&e, &r) in live.iter().skip(1).zip(rets) {
            if e >= peak {
                peak = e;
            } else if e != before {
                mdd = mdd.min(e.max(0.0) / peak - 1.0);
            }
            before = e;
            add_term(&mut sum, r);
        }
        let mean = if t > 0 { sum / t as f64 } else { 0.0 };
        let (mut deviations, mut downside) = (zero, zero);
        for r in rets {
            deviations += (r - mean) * (r - mean);
            // Not left out when 0: the sign of a held bar's return is a
            // coin toss, and a branch on it costs more than the addition.
            downside += r.min(0.0) * r.min(0.0);
        }
        let std = (t > 1).then(|| (deviations / (t - 1) as f64).sqrt());
        let dd = (t > 0).then(|| (downside / t as f64).sqrt());
        let root = ppy.sqrt();
        let mut m = Metrics {
            total_return: end - 1.0,
            max_drawdown: mdd,
            bars: n as u64,
            periods_per_year: ppy,
            ruin: ruin.map(|r| r as u64),
            ..Metrics::default()
        };
        let few = |k: usize| format!("{t} return(s); needs at least {k}");
        let cagr = if t == 0 {
            Err(few(1))
        } else {
            Ok(cagr(end, t, ppy))
        };
        m.cagr = m.set("cagr", cagr.clone());
        m.volatility = m.set("volatility", std.map(|s| s * root).ok_or_else(|| few(2)));
        m.sharpe = m.set(
            "sharpe",
            std.ok_or_else(|| few(2))
                .and_then(|s| ratio(mean, s, root, ("the mean return", "the standard deviation"))),
        );
        m.sortino = m.set(
            "sortino",
            dd.ok_or_else(|| few(1))
                .and_then(|d| ratio(mean, d, root, ("the mean return", "the downside deviation"))),
        );
        let calmar = match &cagr {
            Err(_) => Err("cagr is undefined".to_string()),
            Ok(c) => ratio(*c, -mdd, 1.0, ("cagr", "the maximum drawdown")),
        };
        m.calmar = m.set("calmar", calmar);
        if t > 0 && (t as f64) < ppy && ruin.is_none() {
            m.warnings.push(format!(
                "cagr and calmar annualise {:.2} years of returns (less than one)",
                t as f64 / ppy
            ));
        }
        m
    }

    /// Fills entries, trades, win rate, exposure and turnover.
    pub fn add_positions(&mut self, positions: &[i8], trades: &[Trade]) {
        self.add_positions_after(0, positions, trades);
    }

    /// [`Metrics::add_positions`] for a part of a series that starts with
    /// position `before` held from the bar before it. `trades` are the
    /// round trips to count: the caller keeps those closed inside the part.
    pub fn add_positions_after(&mut self, before: i8, positions: &[i8], trades: &[Trade]) {
        let n = positions.len();
        let mut prev = before;
        let (mut entries, mut held, mut traded) = (0u64, 0u64, 0u64);
        for &p in positions {
            if p != 0 && p != prev {
                entries += 1;
            }
            held += u64::from(p != 0);
            traded += u64::from((p - prev).unsigned_abs());
            prev = p;
        }
        let closed = trades.iter().filter(|t| t.closed).count() as u64;
        let wins = trades.iter().filter(|t| t.closed && t.ret > 0.0).count() as u64;
        self.set_positions(
            n,
            PositionCounts {
                entries,
                held,
                traded,
                closed,
                wins,
            },
        );
    }

    /// Sets the position statistics of `n` bars from their counts.
    pub fn set_positions(&mut self, n: usize, counts: PositionCounts) {
        let PositionCounts {
            entries,
            held,
            traded,
            closed,
            wins,
        } = counts;
        self.entries = entries;
        self.trades = closed;
        self.win_rate = self.set(
            "win_rate",
            if closed > 0 {
                Ok(wins as f64 / closed as f64)
            } else {
                Err("no closed trade".into())
            },
        );
        let none = || Err("no bar".to_string());
        self.exposure = self.set(
            "exposure",
            if n > 0 {
                Ok(held as f64 / n as f64)
            } else {
                none()
            },
        );
        self.turnover = self.set(
            "turnover",
            if n > 0 {
                Ok(traded as f64 / n as f64 * self.periods_per_year)
            } else {
                none()
            },
        );
    }

    /// Marks the position statistics as meaningless for this figure (for
    /// example a regime's bars, which are not contiguous).
    pub fn without_positions(&mut self, reason: &str) {
        self.entries = 0;
        self.trades = 0;
        for name in ["win_rate", "turnover"] {
            self.undefined.insert(name.into(), reason.into());
        }
        self.win_rate = None;
        self.turnover = None;
    }

    /// One line per undefined metric and per warning, for the log.
    pub fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .undefined
            .iter()
            .map(|(k, why)| format!("{k} is null: {why}"))
            .collect();
        out.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        if let Some(r) = self.ruin {
            out.push(format!(
                "ruin: equity reached 0 at bar {r}; the run stopped there (total loss)"
            ));
        }
        out
    }
}

/// `sum += x`, left out where it changes nothing: x is ±0 and the sum is
/// not (−0 + +0 is +0).
#[inline(always)]
pub fn add_term(sum: &mut f64, x: f64) {
    if x != 0.0 || *sum == 0.0 {
        *sum += x;
    }
}

/// E^(P/T) − 1; −1 when E ≤ 0 (ruin).
pub fn cagr(end: f64, t: usize, ppy: f64) -> f64 {
    if end <= 0.0 {
        -1.0
    } else {
        libm::pow(end, ppy / t as f64) - 1.0
    }
}

/// Whether figure `a` ranks strictly above figure `b` (see the module
/// documentation): any figure above an undefined one, else by value.
pub fn ranks_above(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x > y,
        (Some(x), None) => !x.is_nan(),
        (None, _) => false,
    }
}

/// The ranking order of [`ranks_above`] as a sort comparator, best first.
pub fn rank_order(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if ranks_above(a, b) {
        Ordering::Less
    } else if ranks_above(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// What a weight or parameter search maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    Sharpe,
    Sortino,
    TotalReturn,
    Cagr,
    Calmar,
}

impl Objective {
    pub const NAMES: &[&str] = &["sharpe", "sortino", "total_return", "cagr", "calmar"];

    pub fn parse(name: &str) -> Option<Objective> {
        Some(match name {
            "sharpe" => Objective::Sharpe,
            "sortino" => Objective::Sortino,
            "total_return" => Objective::TotalReturn,
            "cagr" => Objective::Cagr,
            "calmar" => Objective::Calmar,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Objective::NAMES[self as usize]
    }

    /// The figure a ranking uses: the metric, ±∞ where it is unbounded,
    /// `None` where it is undefined.
    pub fn of(self, m: &Metrics) -> Option<f64> {
        let value = match self {
            Objective::Sharpe => m.sharpe,
            Objective::Sortino => m.sortino,
            Objective::TotalReturn => Some(m.total_return),
            Objective::Cagr => m.cagr,
            Objective::Calmar => m.calmar,
        };
        value.or_else(|| {
            let why = m.undefined.get(self.name())?;
            if why.starts_with(UNBOUNDED_ABOVE) {
                Some(f64::INFINITY)
            } else if why.starts_with(UNBOUNDED_BELOW) {
                Some(f64::NEG_INFINITY)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {

    /// Volatility, Sharpe, Sortino and maximum drawdown as separate passes
    /// computed them before the passes were fused, as bits.
    fn figures_by_passes(equity: &[f64], ppy: f64) -> [Option<u64>; 4] {
        let ruin = equity.iter().position(|&e| e <= 0.0);
        let live = &equity[..ruin.map_or(equity.len(), |r| r + 1)];
        let t = live.len().saturating_sub(1);
        let rets: Vec<f64> = live.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let mean = if t > 0 {
            rets.iter().sum::<f64>() / t as f64
        } else {
            0.0
        };
        let std = (t > 1).then(|| {
            (rets.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (t - 1) as f64).sqrt()
        });
        let dd = (t > 0)
            .then(|| (rets.iter().map(|r| r.min(0.0) * r.min(0.0)).sum::<f64>() / t as f64).sqrt());
        let mut peak = 1.0f64;
        let mut mdd = 0.0f64;
        for &e in live {
            peak = peak.max(e);
            mdd = mdd.min(e.max(0.0) / peak - 1.0);
        }
        let root = ppy.sqrt();
        let names = ("", "");
        [
            std.map(|s| s * root),
            std.and_then(|s| ratio(mean, s, root, names).ok()),
            dd.and_then(|d| ratio(mean, d, root, names).ok()),
            Some(mdd),
        ]
        .map(|v| v.map(f64::to_bits))
    }

    proptest::proptest! {
        /// Curves with flat stretches (the terms left out), new peaks,
        /// returns to an old peak and ruin.
        #[test]
        fn curves_with_flat_stretches_give_the_bits_of_separate_passes(
            steps in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => -0.03f64..0.03,
                    4 => proptest::strategy::Just(0.0),
                    1 => -1.2f64..0.5,
                ],
                0..200,
            ),
            start in proptest::prop_oneof![proptest::strategy::Just(1.0), 0.5f64..1.5],
        ) {
            let mut e = start;
            let mut curve = vec![e];
            for s in &steps {
                e = (e * (1.0 + s)).max(0.0);
                curve.push(e);
            }
            let m = Metrics::from_equity(&curve, 252.0);
            let got = [m.volatility, m.sharpe, m.sortino, Some(m.max_drawdown)]
                .map(|v| v.map(f64::to_bits));
            proptest::prop_assert_eq!(got, figures_by_passes(&curve, 252.0));
        }
    }

    #[test]
    fn fused_passes_give_the_bits_of_separate_ones() {
        let mut x = 0.37_f64;
        let mut e = 1.0;
        let curve: Vec<f64> = (0..3_001)
            .map(|_| {
                x = (x * 5.3 + 0.17).fract();
                e *= 1.0 + (x - 0.49) * 0.02;
                e
            })
            .collect();
        let ruined = [1.0, 1.1, 0.5, 0.0, 0.2];
        for equity in [
            &curve[..],
            &curve[..2],
            &curve[..1],
            &[][..],
            &ruined[..],
            &[1.0, 1.0, 1.0][..],
        ] {
            let m = Metrics::from_equity(equity, 252.0);
            let got = [m.volatility, m.sharpe, m.sortino, Some(m.max_drawdown)]
                .map(|v| v.map(f64::to_bits));
            assert_eq!(
                got,
                figures_by_passes(equity, 252.0),
                "{} bars",
                equity.len()
            );
        }
    }

    use super::*;
    use crate::market::{equity, trades};

    #[test]
    fn flat_series_has_undefined_ratios() {
        let e = vec![1.0; 5];
        let m = Metrics::compute(&e, &[0; 5], &[], 252.0);
        assert_eq!(
            (m.sharpe, m.sortino, m.calmar, m.win_rate),
            (None, None, None, None)
        );
        assert_eq!(m.volatility, Some(0.0));
        assert_eq!(m.bars, 5);
        assert!(
            m.undefined["sharpe"].starts_with("0/0"),
            "{:?}",
            m.undefined
        );
        assert_eq!(m.undefined["win_rate"], "no closed trade");
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["sharpe"].is_null() && json["win_rate"].is_null());
        assert_eq!(Objective::Sharpe.of(&m), None);
        let one = Metrics::compute(&[1.0], &[0], &[], 252.0);
        assert_eq!((one.cagr, one.volatility, one.sharpe), (None, None, None));
        assert_eq!(one.total_return, 0.0);
    }

    #[test]
    fn empty_series_is_undefined_not_zero() {
        let m = Metrics::compute(&[], &[], &[], 252.0);
        assert_eq!((m.bars, m.total_return, m.max_drawdown), (0, 0.0, 0.0));
        assert_eq!((m.exposure, m.turnover, m.cagr), (None, None, None));
    }

    #[test]
    fn no_losing_return_is_unbounded_and_ranks_first() {
        // Gains only: Sortino and Calmar are +∞, written null.
        let e = [1.0, 1.01, 1.03, 1.04];
        let m = Metrics::from_equity(&e, 252.0);
        assert_eq!((m.sortino, m.calmar), (None, None));
        assert!(m.undefined["sortino"].starts_with(UNBOUNDED_ABOVE));
        assert_eq!(Objective::Sortino.of(&m), Some(f64::INFINITY));
        assert_eq!(Objective::Calmar.of(&m), Some(f64::INFINITY));
        // Round trip through JSON keeps the ranking.
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(Objective::Sortino.of(&back), Some(f64::INFINITY));
        let worse = Metrics::from_equity(&[1.0, 1.02, 1.01, 1.05], 252.0);
        let w = Objective::Sortino.of(&worse);
        assert!(w.unwrap().is_finite());
        assert!(ranks_above(Objective::Sortino.of(&m), w));
    }

    #[test]
    fn ranking_puts_undefined_last() {
        assert!(ranks_above(Some(-5.0), None));
        assert!(ranks_above(Some(f64::NEG_INFINITY), None));
        assert!(!ranks_above(None, Some(-5.0)));
        assert!(!ranks_above(None, None));
        assert!(!ranks_above(Some(1.0), Some(1.0)));
        let mut v = [
            (0, None),
            (1, Some(0.5)),
            (2, Some(f64::INFINITY)),
            (3, Some(-1.0)),
        ];
        v.sort_by(|a, b| rank_order(a.1, b.1).then(a.0.cmp(&b.0)));
        let order: Vec<i32> = v.iter().map(|x| x.0).collect();
        assert_eq!(order, vec![2, 1, 3, 0]);
    }

    #[test]
    fn ruin_stops_the_run_with_a_total_loss() {
        // A short through a tripling: 1 + (−1)·2 = −1.
        let c = [100.0, 100.0, 300.0, 310.0, 320.0];
        let p = [-1, -1, -1, -1, -1];
        let r = equity::close_returns(&c);
        let e = equity::equity_curve(&r, &p, 0.0);
        assert_eq!(&e[2..], &[0.0, 0.0, 0.0]);
        let t = trades::round_trips(&r, &p, 0.0);
        let m = Metrics::compute(&e, &p, &t, 252.0);
        assert_eq!(m.ruin, Some(2));
        assert_eq!(m.total_return, -1.0);
        assert_eq!(m.cagr, Some(-1.0));
        assert_eq!(m.max_drawdown, -1.0);
        // Returns 0 and −1 only: the run stopped at the ruin.
        let rets = [0.0f64, -1.0];
        let mean = -0.5;
        let std = ((rets[0] - mean).powi(2) + (rets[1] - mean).powi(2)).sqrt();
        assert!((m.sharpe.unwrap() - mean / std * 252f64.sqrt()).abs() < 1e-12);
        assert!(m.notes().iter().any(|n| n.contains("ruin")));
    }

    #[test]
    fn short_sample_warns_about_annualising() {
        let m = Metrics::from_equity(&[1.0, 1.1, 1.05], 252.0);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("0.01 years"));
        let long: Vec<f64> = (0..300).map(|i| 1.0 + i as f64 * 0.001).collect();
        assert!(Metrics::from_equity(&long, 252.0).warnings.is_empty());
    }

    #[test]
    fn floats_round_trip_exactly() {
        let e: Vec<f64> = (0..50)
            .map(|i| 1.0 + (i as f64 * 0.37).sin() * 0.1)
            .collect();
        let m = Metrics::from_equity(&e, 252.0);
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.sharpe.unwrap().to_bits(), m.sharpe.unwrap().to_bits());
    }

    #[test]
    fn small_series_by_hand() {
        let c = [100.0, 110.0, 99.0, 108.9];
        let p = [1, 1, 1, 0];
        let r = equity::close_returns(&c);
        let e = equity::equity_curve(&r, &p, 0.0);
        let t = trades::round_trips(&r, &p, 0.0);
        let m = Metrics::compute(&e, &p, &t, 4.0);
        // r = 0.1, -0.1, 0.1; mean 1/30, std sqrt(4/300).
        let mean: f64 = 0.1 / 3.0;
        let std = (((0.1 - mean) * (0.1 - mean) * 2.0 + (0.1 + mean) * (0.1 + mean)) / 2.0).sqrt();
        assert!((m.sharpe.unwrap() - mean / std * 2.0).abs() < 1e-12);
        assert!((m.sortino.unwrap() - mean / (0.01f64 / 3.0).sqrt() * 2.0).abs() < 1e-12);
        assert!((m.max_drawdown + 0.1).abs() < 1e-12);
        assert!((m.total_return - (1.089 - 1.0)).abs() < 1e-12);
        assert!((m.cagr.unwrap() - (1.089f64.powf(4.0 / 3.0) - 1.0)).abs() < 1e-12);
        assert_eq!((m.entries, m.trades, m.win_rate), (1, 1, Some(1.0)));
        assert_eq!(m.exposure, Some(0.75));
        assert_eq!(m.turnover, Some(2.0 / 4.0 * 4.0));
        assert!(m.undefined.is_empty(), "{:?}", m.undefined);
    }

    /// CAGR's power comes from the `libm` crate, the same bits on every
    /// platform. At this input glibc's `pow` (behind `f64::powf` on Linux)
    /// answers a unit in the last place lower, so the check tells the two
    /// apart.
    #[test]
    fn cagr_takes_its_power_from_the_portable_libm() {
        let (end, bars) = (1.0601234000000002, 500);
        let got = cagr(end, bars, 252.0);
        assert_eq!(
            got.to_bits(),
            (libm::pow(end, 252.0 / 500.0) - 1.0).to_bits()
        );
        assert_eq!(got, 0.029863428217991483);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_ne!(got, end.powf(252.0 / 500.0) - 1.0);
    }
}
