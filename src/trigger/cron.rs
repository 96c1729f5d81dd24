//! Five-field cron expressions (`MIN HOUR DOM MON DOW`) and when they
//! next fire in a time zone.
//!
//! Each field is `*`, a value, a range `a-b`, a step `*/s`, `a-b/s` or
//! `a/s` (from `a` to the field's end), or a comma-separated list of
//! those. Months and weekdays also take English names (`jan`, `mon-fri`,
//! any case); weekday 0 and 7 are both Sunday. `@hourly`, `@daily`
//! (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) stand
//! for their usual expressions. As in cron, when both day-of-month and
//! day-of-week are restricted (neither starts with `*`) a day matching
//! either one fires; otherwise a day must match both.
//!
//! Time zones and daylight saving: a cron time is a wall-clock time in the
//! schedule's zone. A time that does not exist on a spring-forward day
//! (02:30 when clocks jump from 02:00 to 03:00) fires once, as much later
//! as the clocks jumped (03:30). A time that happens twice on a fall-back
//! day fires once, at its first occurrence. (These are jiff's
//! "compatible" rules, the same as RFC 5545 and `java.time`.)

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

/// A parsed expression: the set of allowed values of each field, as bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    /// Day-of-month written as `*…`: days then need only match weekdays.
    any_day: bool,
    /// Day-of-week written as `*…`.
    any_weekday: bool,
}

/// Why an expression does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// The expressions `@name` stands for.
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// How many days ahead a search looks: a February 29th can be eight
/// years away (2096 to 2104).
const SEARCH_DAYS: i32 = 366 * 9;

impl Field {
    fn value(&self, text: &str) -> Result<u32, CronError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + self.min);
        }
        let n: u32 = text.parse().map_err(|_| {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(" or a name such as `{}`", self.names[1])
            };
            CronError(format!(
                "{} field: `{text}` is not a number{names}",
                self.name
            ))
        })?;
        if n < self.min || n > self.max {
            return Err(CronError(format!(
                "{} field: {n} is out of range ({}-{})",
                self.name, self.min, self.max
            )));
        }
        Ok(n)
    }

    /// The field's values as bits, and whether it was written as `*…`.
    fn parse(&self, text: &str) -> Result<(u64, bool), CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                        CronError(format!(
                            "{} field: step `{s}` must be a positive number",
                            self.name
                        ))
                    })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(CronError(format!(
                        "{} field: range `{range}` runs backwards",
                        self.name
                    )));
                }
                (a, b)
            } else if range.is_empty() {
                return Err(CronError(format!("{} field: empty item", self.name)));
            } else {
                let a = self.value(range)?;
                (a, if step.is_some() { self.max } else { a })
            };
            for v in (lo..=hi).step_by(step.unwrap_or(1) as usize) {
                bits |= 1 << v;
            }
        }
        Ok((bits, text.starts_with('*')))
    }
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let text = text.trim();
        let expanded = match MACROS
            .iter()
            .find(|(name, _)| text.eq_ignore_ascii_case(name))
        {
            Some((_, expression)) => expression,
            None if text.starts_with('@') => {
                return Err(CronError(format!(
                    "unknown shorthand `{text}` (known: @hourly, @daily, @weekly, @monthly, @yearly)"
                )));
            }
            None => text,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(CronError(format!(
                "expected five fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let (minutes, _) = MINUTE.parse(minute)?;
        let (hours, _) = HOUR.parse(hour)?;
        let (days, any_day) = DAY.parse(day)?;
        let (months, _) = MONTH.parse(month)?;
        let (weekdays, any_weekday) = WEEKDAY.parse(weekday)?;
        // Sunday is both 0 and 7.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        let cron = Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            any_day,
            any_weekday,
        };
        cron.check_possible()?;
        Ok(cron)
    }

    /// `30 2 30 2 *` (February 30th) would never fire.
    fn check_possible(&self) -> Result<(), CronError> {
        if !self.any_day && !self.any_weekday {
            return Ok(());
        }
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let possible = (1..=12u32).any(|m| {
            self.months & (1 << m) != 0
                && (1..=LONGEST[m as usize - 1]).any(|d| self.days & (1 << d) != 0)
        });
        if possible {
            Ok(())
        } else {
            Err(CronError(
                "never fires: no month in the month field has that day of the month".into(),
            ))
        }
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.any_day || self.any_weekday {
            day && weekday
        } else {
            day || weekday
        }
    }

    /// Whether the wall-clock minute `at` is one of the expression's.
    pub fn matches(&self, at: DateTime) -> bool {
        self.day_matches(at.date())
            && self.hours & (1 << at.hour()) != 0
            && self.minutes & (1 << at.minute()) != 0
    }

    /// The earliest instant after `after` at which the expression fires in
    /// `tz` (see the module docs for daylight saving). `None` only when no
    /// date in the next nine years matches.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // A day's times can land on the next day (a gap at midnight), and
        // the previous day's on this one, so days are searched from the
        // day before and the best of two matching days is taken.
        let start = tz.to_datetime(after).date().yesterday().ok()?;
        let mut best: Option<Timestamp> = None;
        let mut days_left_after_first = 1;
        for offset in 0..SEARCH_DAYS {
            let Ok(date) = start.checked_add(jiff::Span::new().days(offset)) else {
                break;
            };
            if let Some(t) = self.first_on(date, after, tz) {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
            if best.is_some() {
                if days_left_after_first == 0 {
                    break;
                }
                days_left_after_first -= 1;
            }
        }
        best
    }

    /// The earliest instant after `after` among the expression's times on
    /// `date`.
    fn first_on(&self, date: Date, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if !self.day_matches(date) {
            return None;
        }
        let mut best: Option<Timestamp> = None;
        for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            for minute in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                let civil = date.at(hour as i8, minute as i8, 0, 0);
                let ambiguous = tz.to_ambiguous_timestamp(civil);
                let Ok(t) = ambiguous.compatible() else {
                    continue;
                };
                if t > after && best.is_none_or(|b| t < b) {
                    best = Some(t);
                    // Outside a gap, later wall-clock times are later
                    // instants: the first one found is the earliest.
                    if !matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
                        return best;
                    }
                }
            }
        }
        best
    }
}
