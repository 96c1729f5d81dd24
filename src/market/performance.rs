//! Figures a report shows over one equity curve `e_0..e_{n-1}` (e_0 = 1):
//!
//! | figure | definition | `None` when |
//! |---|---|---|
//! | drawdown period | from a running peak p (the last bar at that high) until equity is back at or above p; its trough is the lowest bar inside, its depth e_trough / p − 1 | a curve that never falls below a peak has none |
//! | monthly / yearly return | e at the period's last bar / e at the previous period's last bar − 1 (the first period starts from e_0) | the base is ≤ 0 (after ruin) |
//! | rolling Sharpe at bar t | mean / std (ddof 1) of the w returns r_{t−w+1..t}, · √P | t < w, or std = 0 |
//!
//! Periods are calendar months and years of the bar timestamps taken as
//! they are written (see [`super::timestamp`]); bars whose timestamp does
//! not parse belong to no period.

use jiff::Timestamp;

/// One drawdown: bar indices of the peak, the trough and the first bar
/// back at the peak (`None` while it lasts at the end of the data).
#[derive(Clone, Debug, PartialEq)]
pub struct DrawdownPeriod {
    pub peak: usize,
    pub trough: usize,
    pub recovery: Option<usize>,
    pub depth: f64,
}

/// Every drawdown of `equity`, deepest first (ties: the earlier first),
/// at most `top`.
pub fn drawdown_periods(equity: &[f64], top: usize) -> Vec<DrawdownPeriod> {
    let mut periods = Vec::new();
    let mut peak = 0usize;
    let mut open: Option<DrawdownPeriod> = None;
    for (t, &e) in equity.iter().enumerate() {
        let high = equity[peak];
        if e >= high {
            if let Some(mut p) = open.take() {
                p.recovery = Some(t);
                periods.push(p);
            }
            peak = t;
            continue;
        }
        let p = open.get_or_insert(DrawdownPeriod {
            peak,
            trough: t,
            recovery: None,
            depth: 0.0,
        });
        if e < equity[p.trough] {
            p.trough = t;
        }
        p.depth = equity[p.trough] / high - 1.0;
    }
    periods.extend(open);
    periods.sort_by(|a, b| a.depth.total_cmp(&b.depth).then(a.peak.cmp(&b.peak)));
    periods.truncate(top);
    periods
}

/// The return of one calendar period (`month` is 1..=12, or 0 for a year).
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodReturn {
    pub year: i16,
    pub month: i8,
    pub ret: Option<f64>,
}

/// Monthly and yearly returns of `equity` over bars stamped `ts`, in
/// time order.
pub fn period_returns(ts: &[String], equity: &[f64]) -> (Vec<PeriodReturn>, Vec<PeriodReturn>) {
    let dates: Vec<Option<(i16, i8)>> = ts
        .iter()
        .map(|t| {
            let s = super::timestamp::parse(t)?;
            let d = Timestamp::from_second(s)
                .ok()?
                .to_zoned(jiff::tz::TimeZone::UTC);
            Some((d.year(), d.month()))
        })
        .collect();
    let by = |key: &dyn Fn((i16, i8)) -> (i16, i8)| -> Vec<PeriodReturn> {
        let mut out: Vec<PeriodReturn> = Vec::new();
        let mut base = equity.first().copied().unwrap_or(1.0);
        let mut current: Option<((i16, i8), usize)> = None;
        let close = |out: &mut Vec<PeriodReturn>, (k, last): ((i16, i8), usize), base: f64| {
            let ret = (base > 0.0).then(|| equity[last] / base - 1.0);
            out.push(PeriodReturn {
                year: k.0,
                month: k.1,
                ret,
            });
            equity[last]
        };
        for (t, d) in dates.iter().enumerate() {
            let Some(d) = d else { continue };
            let k = key(*d);
            match current {
                Some((c, _)) if c == k => current = Some((k, t)),
                Some(done) => {
                    base = close(&mut out, done, base);
                    current = Some((k, t));
                }
                None => current = Some((k, t)),
            }
        }
        if let Some(done) = current {
            close(&mut out, done, base);
        }
        out
    };
    (by(&|d| d), by(&|(y, _)| (y, 0)))
}

/// The trailing `window`-bar Sharpe ratio at every bar, annualised with
/// `periods_per_year`.
pub fn rolling_sharpe(equity: &[f64], window: usize, periods_per_year: f64) -> Vec<Option<f64>> {
    let returns: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let mut out = vec![None; equity.len()];
    if window < 2 {
        return out;
    }
    for t in window..equity.len() {
        let r = &returns[t - window..t];
        let mean = r.iter().sum::<f64>() / window as f64;
        let var = r.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (window - 1) as f64;
        let s = mean / var.sqrt() * periods_per_year.sqrt();
        out[t] = (var > 0.0 && s.is_finite()).then_some(s);
    }
    out
}

/// A bar timestamp as a reader expects it: `2011-01-03 09:01` for a bar
/// within a day, `2011-01-03` for a bar at midnight; text that does not
/// parse is shown as written.
pub fn display_time(text: &str) -> String {
    let Some(s) = super::timestamp::parse(text) else {
        return text.to_string();
    };
    let Ok(t) = Timestamp::from_second(s) else {
        return text.to_string();
    };
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    if s.rem_euclid(86_400) == 0 {
        z.strftime("%Y-%m-%d").to_string()
    } else if s.rem_euclid(60) == 0 {
        z.strftime("%Y-%m-%d %H:%M").to_string()
    } else {
        z.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdowns_open_and_closed() {
        let e = [1.0, 1.2, 0.9, 1.0, 1.3, 1.1, 1.25];
        let d = drawdown_periods(&e, 5);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].peak, d[0].trough, d[0].recovery), (1, 2, Some(4)));
        assert!((d[0].depth - (0.9 / 1.2 - 1.0)).abs() < 1e-15);
        assert_eq!((d[1].peak, d[1].trough, d[1].recovery), (4, 5, None));
        assert_eq!(drawdown_periods(&e, 1).len(), 1);
        // A curve at its high throughout has no drawdown.
        assert!(drawdown_periods(&[1.0, 1.0, 1.1], 5).is_empty());
    }

    #[test]
    fn periods_chain_from_the_previous_close() {
        let ts: Vec<String> = ["2020-01-30", "2020-01-31", "2020-02-03", "2021-01-04"]
            .map(String::from)
            .to_vec();
        let e = [1.0, 1.1, 1.21, 0.0];
        let (m, y) = period_returns(&ts, &e);
        let rets: Vec<Option<f64>> = m.iter().map(|p| p.ret).collect();
        assert_eq!(m.len(), 3);
        assert!((rets[0].unwrap() - 0.1).abs() < 1e-15);
        assert!((rets[1].unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(rets[2], Some(-1.0));
        assert_eq!((y[0].year, y[0].month, y[1].year), (2020, 0, 2021));
        assert!((y[0].ret.unwrap() - 0.21).abs() < 1e-12);
        // After ruin there is no base to measure from.
        let (_, y) = period_returns(&ts[1..], &[1.0, 0.0, 0.5]);
        assert_eq!(y[1].ret, None);
    }

    #[test]
    fn rolling_sharpe_needs_a_full_window_and_spread() {
        let e = [1.0, 1.01, 1.0, 1.02, 1.03];
        let s = rolling_sharpe(&e, 3, 1.0);
        assert_eq!(&s[..3], &[None, None, None]);
        let r = [0.01, 1.0 / 1.01 - 1.0, 0.02];
        let mean = r.iter().sum::<f64>() / 3.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((s[3].unwrap() - mean / sd).abs() < 1e-12);
        assert_eq!(rolling_sharpe(&[1.0, 1.0, 1.0, 1.0], 2, 252.0)[3], None);
    }

    #[test]
    fn times_within_a_day_keep_their_minutes() {
        assert_eq!(display_time("20110103 090100"), "2011-01-03 09:01");
        assert_eq!(display_time("1999-11-01"), "1999-11-01");
        assert_eq!(display_time("2011-01-03 09:01:30"), "2011-01-03 09:01:30");
        assert_eq!(display_time("bar 7"), "bar 7");
    }
}
