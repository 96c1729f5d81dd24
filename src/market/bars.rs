//! A validated OHLCV series of one symbol, and its bar frequency.

use std::path::PathBuf;

/// Bars in strictly increasing time. Columns are kept apart (struct of
/// arrays) so that kernels read only what they need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bars {
    pub symbol: String,
    pub source: PathBuf,
    /// Seconds since the epoch, naive timestamps taken as written
    /// ([`super::timestamp`]).
    pub ts: Vec<i64>,
    /// The timestamp as written in the file, used in every output.
    pub ts_text: Vec<String>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl Bars {
    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    pub fn frequency(&self) -> Frequency {
        Frequency::detect(&self.ts)
    }

    /// The bars `range`, for tests and chronological splits.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Bars {
        Bars {
            symbol: self.symbol.clone(),
            source: self.source.clone(),
            ts: self.ts[range.clone()].to_vec(),
            ts_text: self.ts_text[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }
}

/// Trading days per year, the annualisation base of every metric.
pub const TRADING_DAYS: f64 = 252.0;

/// A gap longer than this between consecutive intraday bars starts a new
/// session. Sessions are found from the gaps alone, never from calendar
/// dates: the shipped minute file stamps bars in UTC, so one New York
/// session (04:01–20:00 ET) spans two UTC dates, while its overnight gaps
/// are at least 8 hours and its longest gap inside a session is 59 minutes.
pub const SESSION_GAP_SECONDS: i64 = 4 * 3600;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Frequency {
    /// Every timestamp is a midnight (a date without a time).
    Daily,
    /// Anything else; `bars_per_session` is the median number of bars per
    /// session (the mean of the two middle counts for an even number of
    /// sessions).
    Intraday {
        sessions: usize,
        bars_per_session: f64,
    },
}

impl Frequency {
    pub fn detect(ts: &[i64]) -> Frequency {
        if ts.iter().all(|t| t.rem_euclid(86_400) == 0) {
            return Frequency::Daily;
        }
        let mut counts = Vec::new();
        let mut current = 0usize;
        for (i, t) in ts.iter().enumerate() {
            if i > 0 && t - ts[i - 1] > SESSION_GAP_SECONDS {
                counts.push(current);
                current = 0;
            }
            current += 1;
        }
        if current > 0 {
            counts.push(current);
        }
        counts.sort_unstable();
        let n = counts.len();
        let median = match n {
            0 => 1.0,
            _ if n % 2 == 1 => counts[n / 2] as f64,
            _ => (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0,
        };
        Frequency::Intraday {
            sessions: n,
            bars_per_session: median,
        }
    }

    /// P, the periods per year: 252 for daily bars, 252 × median bars per session
    /// for intraday bars.
    pub fn periods_per_year(&self) -> f64 {
        match self {
            Frequency::Daily => TRADING_DAYS,
            Frequency::Intraday {
                bars_per_session, ..
            } => TRADING_DAYS * bars_per_session,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Intraday { .. } => "intraday",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_daily() {
        let ts = [0, 86_400, 3 * 86_400];
        assert_eq!(Frequency::detect(&ts), Frequency::Daily);
        assert_eq!(Frequency::detect(&ts).periods_per_year(), 252.0);
    }

    #[test]
    fn sessions_are_split_on_long_gaps() {
        // Two sessions of 3 and 5 one-minute bars, 10 hours apart.
        let mut ts: Vec<i64> = (1..=3).map(|m| 60 * m).collect();
        ts.extend((1..=5).map(|m| 36_000 + 60 * m));
        let f = Frequency::detect(&ts);
        assert_eq!(
            f,
            Frequency::Intraday {
                sessions: 2,
                bars_per_session: 4.0
            }
        );
        assert_eq!(f.periods_per_year(), 1008.0);
    }
}
