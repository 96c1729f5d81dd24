//! Summary metrics over the per-bar strategy returns r_t = E_t/E_{t−1} − 1,
//! t = 1..T, with P periods per year ([`super::bars::Frequency`]).
//!
//! | metric | definition |
//! |---|---|
//! | `total_return` | E_T − 1 (capital 1 before the first bar) |
//! | `cagr` | E_T^(1/years) − 1 with years = T/P; −1 if E_T ≤ 0; 0 if T = 0 |
//! | `volatility` | std(r, ddof 1) · √P |
//! | `sharpe` | mean(r) / std(r, ddof 1) · √P, risk-free 0 |
//! | `sortino` | mean(r) / DD · √P with DD = √(Σ min(r_t, 0)² / T), target 0, over all T returns |
//! | `max_drawdown` | min_t E_t / max(1, max_{s≤t} E_s) − 1, a fraction ≤ 0 |
//! | `calmar` | cagr / abs(max_drawdown) |
//! | `entries` | bars where p_t ≠ 0 and p_t ≠ p_{t−1} (p_{−1} = 0; a flip counts) |
//! | `trades` | closed round trips ([`super::trades`]) |
//! | `win_rate` | fraction of closed round trips with return > 0 |
//! | `exposure` | fraction of all bars with p_t ≠ 0 |
//! | `turnover` | Σ abs(p_t − p_{t−1}) over all bars / bars · P: position units traded per year |
//!
//! Edge cases give 0, never NaN: sharpe, sortino and volatility when the
//! std (or DD) is 0 or T < 2; calmar without a drawdown; win rate without
//! a closed trade. Any non-finite result is written as 0.

use serde::{Deserialize, Serialize};

use super::trades::Trade;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub total_return: f64,
    pub cagr: f64,
    pub volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub max_drawdown: f64,
    pub calmar: f64,
    pub entries: u64,
    pub trades: u64,
    pub win_rate: f64,
    pub exposure: f64,
    pub turnover: f64,
    pub bars: u64,
    pub periods_per_year: f64,
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

impl Metrics {
    /// All metrics of one position series.
    pub fn compute(equity: &[f64], positions: &[i8], trades: &[Trade], ppy: f64) -> Metrics {
        let mut m = Metrics::from_equity(equity, ppy);
        m.add_positions(positions, trades);
        m
    }

    /// The return metrics of an equity curve; position statistics are 0.
    pub fn from_equity(equity: &[f64], ppy: f64) -> Metrics {
        let n = equity.len();
        let t = n.saturating_sub(1);
        let end = equity.last().copied().unwrap_or(1.0);
        let rets: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let mean = if t > 0 {
            rets.iter().sum::<f64>() / t as f64
        } else {
            0.0
        };
        let std = if t > 1 {
            (rets.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (t - 1) as f64).sqrt()
        } else {
            0.0
        };
        let dd = if t > 0 {
            (rets.iter().map(|r| r.min(0.0) * r.min(0.0)).sum::<f64>() / t as f64).sqrt()
        } else {
            0.0
        };
        let mut peak = 1.0f64;
        let mut mdd = 0.0f64;
        for &e in equity {
            peak = peak.max(e);
            mdd = mdd.min(e / peak - 1.0);
        }
        let cagr = cagr(end, t, ppy);
        let root = ppy.sqrt();
        Metrics {
            total_return: finite(end - 1.0),
            cagr: finite(cagr),
            volatility: finite(std * root),
            sharpe: if std > 0.0 {
                finite(mean / std * root)
            } else {
                0.0
            },
            sortino: if dd > 0.0 {
                finite(mean / dd * root)
            } else {
                0.0
            },
            max_drawdown: finite(mdd),
            calmar: if mdd < 0.0 { finite(cagr / -mdd) } else { 0.0 },
            bars: n as u64,
            periods_per_year: ppy,
            ..Metrics::default()
        }
    }

    /// Fills entries, trades, win rate, exposure and turnover.
    pub fn add_positions(&mut self, positions: &[i8], trades: &[Trade]) {
        self.add_positions_after(0, positions, trades);
    }

    /// [`Metrics::add_positions`] for a part of a series that starts with
    /// position `before` held from the bar before it.
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
        self.entries = entries;
        self.trades = closed;
        self.win_rate = if closed > 0 {
            wins as f64 / closed as f64
        } else {
            0.0
        };
        if n > 0 {
            self.exposure = held as f64 / n as f64;
            self.turnover = finite(traded as f64 / n as f64 * self.periods_per_year);
        }
    }
}

/// E^(P/T) − 1, with the conventions of the table above.
pub fn cagr(end: f64, t: usize, ppy: f64) -> f64 {
    if t == 0 {
        0.0
    } else if end <= 0.0 {
        -1.0
    } else {
        end.powf(ppy / t as f64) - 1.0
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

    pub fn of(self, m: &Metrics) -> f64 {
        match self {
            Objective::Sharpe => m.sharpe,
            Objective::Sortino => m.sortino,
            Objective::TotalReturn => m.total_return,
            Objective::Cagr => m.cagr,
            Objective::Calmar => m.calmar,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{equity, trades};

    #[test]
    fn flat_series_is_all_zero_and_finite() {
        let e = vec![1.0; 5];
        let m = Metrics::compute(&e, &[0; 5], &[], 252.0);
        assert_eq!(m.sharpe, 0.0);
        assert_eq!(m.sortino, 0.0);
        assert_eq!(m.calmar, 0.0);
        assert_eq!(m.win_rate, 0.0);
        assert_eq!(m.bars, 5);
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("null"), "{json}");
        let one = Metrics::compute(&[1.0], &[0], &[], 252.0);
        assert_eq!((one.cagr, one.volatility), (0.0, 0.0));
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
        assert!((m.sharpe - mean / std * 2.0).abs() < 1e-12);
        assert!((m.sortino - mean / (0.01f64 / 3.0).sqrt() * 2.0).abs() < 1e-12);
        assert!((m.max_drawdown + 0.1).abs() < 1e-12);
        assert!((m.total_return - (1.089 - 1.0)).abs() < 1e-12);
        assert!((m.cagr - (1.089f64.powf(4.0 / 3.0) - 1.0)).abs() < 1e-12);
        assert_eq!((m.entries, m.trades, m.win_rate), (1, 1, 1.0));
        assert_eq!(m.exposure, 0.75);
        assert_eq!(m.turnover, 2.0 / 4.0 * 4.0);
    }
}
