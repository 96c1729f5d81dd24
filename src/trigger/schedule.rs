//! `schedule:` triggers on a clock: a cron expression in a time zone, the
//! [`Clock`] that says what time it is, and the [`Scheduler`] that says
//! which schedules are due. Nothing here sleeps or reads the system time
//! except [`SystemClock`] and [`StartedAt`], so tests drive it with any
//! clock.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::cron::Cron;

/// One `schedule:` entry.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub cron: Cron,
    /// The expression as written, without the zone.
    pub expression: String,
    pub tz: TimeZone,
    /// The zone's name as written (`UTC` when none was given).
    pub tz_name: String,
}

impl Schedule {
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron.next_after(t, &self.tz)
    }
}

/// What time it is.
pub trait Clock {
    fn now(&self) -> Timestamp;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock set to `start` when created that then runs in real time: the
/// testing hook `ADMF_WATCH_CLOCK` (see `admf watch`).
pub struct StartedAt {
    start: Timestamp,
    since: Instant,
}

impl StartedAt {
    pub fn new(start: Timestamp) -> Self {
        StartedAt {
            start,
            since: Instant::now(),
        }
    }
}

impl Clock for StartedAt {
    fn now(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.since.elapsed()).unwrap_or_default();
        self.start.saturating_add(elapsed).unwrap_or(self.start)
    }
}

/// Which schedules are due. Every fire time after the last check and up
/// to now is due once; several fire times of one schedule that passed
/// while a build ran (or the machine slept) make one firing, recorded at
/// the latest of them.
#[derive(Clone, Debug)]
pub struct Scheduler {
    checked: Timestamp,
}

/// At most this many missed fire times of one schedule are walked through
/// to find the latest; past that the last one seen is reported.
const MAX_MISSED: usize = 1000;

impl Scheduler {
    /// Fire times after `now` only.
    pub fn new(now: Timestamp) -> Self {
        Scheduler { checked: now }
    }

    /// The earliest fire time still to come among `schedules`.
    pub fn next<'a>(&self, schedules: impl IntoIterator<Item = &'a Schedule>) -> Option<Timestamp> {
        schedules
            .into_iter()
            .filter_map(|s| s.next_after(self.checked))
            .min()
    }

    /// For each of `schedules` (by position) that fired after the last
    /// check and at or before `now`: its latest fire time. Marks
    /// everything up to `now` as checked.
    pub fn due<'a>(
        &mut self,
        schedules: impl IntoIterator<Item = &'a Schedule>,
        now: Timestamp,
    ) -> Vec<(usize, Timestamp)> {
        let mut due = Vec::new();
        if now <= self.checked {
            return due;
        }
        for (i, s) in schedules.into_iter().enumerate() {
            let mut latest = None;
            let mut at = self.checked;
            for _ in 0..MAX_MISSED {
                match s.next_after(at) {
                    Some(t) if t <= now => {
                        latest = Some(t);
                        at = t;
                    }
                    _ => break,
                }
            }
            if let Some(t) = latest {
                due.push((i, t));
            }
        }
        self.checked = now;
        due
    }

    /// How long to wait from `now` until `next`, at most `cap` (so a
    /// clock that jumps is looked at again).
    pub fn wait(now: Timestamp, next: Option<Timestamp>, cap: Duration) -> Duration {
        match next {
            None => cap,
            Some(t) => {
                let d = now.duration_until(t);
                Duration::try_from(d).unwrap_or(Duration::ZERO).min(cap)
            }
        }
    }
}
