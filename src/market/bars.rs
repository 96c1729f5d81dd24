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
    /// The timestamp as written in the file, used in every output; shared
    /// between the copies of one loaded file, as every trial of a sweep
    /// runs on one (a copy of thousands of strings each would cost more
    /// than the trial).
    pub ts_text: std::sync::Arc<Vec<String>>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    /// Periods per year declared by the workflow (`data.periods_per_year`);
    /// `None` infers them from the bar spacing.
    pub declared_periods_per_year: Option<f64>,
    /// [`Frequency::detect`] of `ts`, once asked for: every trial of a
    /// sweep runs on a copy of the same loaded bars, and detecting sorts
    /// the bar spacings. Set `ts` before asking [`Bars::frequency`].
    pub frequency_memo: FrequencyMemo,
    /// [`Bars::close_returns`] and [`Bars::signal_lines`], once asked
    /// for: every trial of a sweep runs on the same loaded bars. Set
    /// `close`, `ts_text` and `symbol` before asking.
    pub trial_memo: TrialMemo,
}

/// The memos of [`Bars::close_returns`] and [`Bars::signal_lines`];
/// `TrialMemo::default()` is empty.
#[derive(Clone, Debug, Default)]
pub struct TrialMemo {
    close_returns: std::sync::OnceLock<Vec<f64>>,
    signal_lines: std::sync::OnceLock<super::signals::LinePrefixes>,
}

/// What the memos hold follows from the bars' own columns: bars are
/// equal or not whether or not they were asked for yet.
impl PartialEq for TrialMemo {
    fn eq(&self, _: &TrialMemo) -> bool {
        true
    }
}

/// The memo of [`Bars::frequency`]; `FrequencyMemo::default()` is empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrequencyMemo(std::sync::OnceLock<Frequency>);

impl Bars {
    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    /// [`super::equity::close_returns`] of `close`.
    pub fn close_returns(&self) -> &[f64] {
        self.trial_memo
            .close_returns
            .get_or_init(|| super::equity::close_returns(&self.close))
    }

    /// The start of every bar's line in a signal file of these bars
    /// ([`super::signals::LinePrefixes`]).
    pub fn signal_lines(&self) -> &super::signals::LinePrefixes {
        self.trial_memo
            .signal_lines
            .get_or_init(|| super::signals::LinePrefixes::new(&self.symbol, &self.ts_text))
    }

    pub fn frequency(&self) -> Frequency {
        *self
            .frequency_memo
            .0
            .get_or_init(|| Frequency::detect(&self.ts))
    }

    /// P, the annualisation base of every metric: the declared figure,
    /// else the one inferred from the bar spacing.
    pub fn periods_per_year(&self) -> f64 {
        self.declared_periods_per_year
            .unwrap_or_else(|| self.frequency().periods_per_year())
    }

    /// The bars `range`, for tests and chronological splits.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Bars {
        Bars {
            symbol: self.symbol.clone(),
            source: self.source.clone(),
            ts: self.ts[range.clone()].to_vec(),
            ts_text: std::sync::Arc::new(self.ts_text[range.clone()].to_vec()),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
            declared_periods_per_year: self.declared_periods_per_year,
            frequency_memo: FrequencyMemo::default(),
            trial_memo: TrialMemo::default(),
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
    /// Every timestamp is a midnight (a date without a time) and the median
    /// gap between bars is at most 4 days (weekends and holidays).
    Daily,
    /// Dates a median 5 to 10 days apart: 52 periods per year.
    Weekly,
    /// Dates a median 11 to 45 days apart: 12 periods per year.
    Monthly,
    /// Dates a median 46 to 135 days apart: 4 periods per year.
    Quarterly,
    /// Dates further apart: 1 period per year.
    Yearly,
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
            let mut gaps: Vec<i64> = ts.windows(2).map(|w| (w[1] - w[0]) / 86_400).collect();
            if gaps.is_empty() {
                return Frequency::Daily;
            }
            gaps.sort_unstable();
            // The lower median, a whole number of days.
            let days = gaps[(gaps.len() - 1) / 2];
            return match days {
                ..=4 => Frequency::Daily,
                5..=10 => Frequency::Weekly,
                11..=45 => Frequency::Monthly,
                46..=135 => Frequency::Quarterly,
                _ => Frequency::Yearly,
            };
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

    /// P, the periods per year: 252 for daily bars, 52 weekly, 12 monthly,
    /// 4 quarterly, 1 yearly, 252 × median bars per session for intraday bars.
    pub fn periods_per_year(&self) -> f64 {
        match self {
            Frequency::Daily => TRADING_DAYS,
            Frequency::Weekly => 52.0,
            Frequency::Monthly => 12.0,
            Frequency::Quarterly => 4.0,
            Frequency::Yearly => 1.0,
            Frequency::Intraday {
                bars_per_session, ..
            } => TRADING_DAYS * bars_per_session,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Quarterly => "quarterly",
            Frequency::Yearly => "yearly",
            Frequency::Intraday { .. } => "intraday",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memos_asked_for_leave_bars_equal() {
        let bars = Bars {
            symbol: "A".into(),
            close: vec![1.0, 2.0, 1.5],
            ts_text: std::sync::Arc::new(vec!["a".into(), "b".into(), "c".into()]),
            ..Bars::default()
        };
        let asked = bars.clone();
        assert_eq!(asked.close_returns(), &[0.0, 1.0, -0.25]);
        assert!(*asked.signal_lines() != crate::market::signals::LinePrefixes::default());
        assert_eq!(asked, bars);
    }

    #[test]
    fn dates_are_daily() {
        let ts = [0, 86_400, 3 * 86_400];
        assert_eq!(Frequency::detect(&ts), Frequency::Daily);
        assert_eq!(Frequency::detect(&ts).periods_per_year(), 252.0);
    }

    #[test]
    fn date_spacing_sets_the_period() {
        let day = 86_400;
        let every = |d: i64| (0..20).map(|i| i * d * day).collect::<Vec<_>>();
        assert_eq!(Frequency::detect(&every(7)), Frequency::Weekly);
        assert_eq!(Frequency::detect(&every(7)).periods_per_year(), 52.0);
        assert_eq!(Frequency::detect(&every(30)).periods_per_year(), 12.0);
        assert_eq!(Frequency::detect(&every(91)).periods_per_year(), 4.0);
        assert_eq!(Frequency::detect(&every(365)).periods_per_year(), 1.0);
        // A weekend gap in daily data does not make it weekly.
        let mut daily: Vec<i64> = Vec::new();
        for w in 0..10 {
            daily.extend((0..5).map(|d| (w * 7 + d) * day));
        }
        assert_eq!(Frequency::detect(&daily), Frequency::Daily);
        let bars = Bars {
            ts: every(7),
            declared_periods_per_year: Some(50.0),
            ..Bars::default()
        };
        assert_eq!(bars.periods_per_year(), 50.0);
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
