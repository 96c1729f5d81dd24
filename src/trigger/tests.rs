//! Cron parsing and next-fire times against independently known dates
//! (US, UK and Australian daylight-saving changes, Samoa's skipped day),
//! properties checked by brute force, and the scheduler on a fake clock.

use std::cell::Cell;

use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, TimeZone};
use proptest::prelude::*;

use super::cron::Cron;
use super::schedule::{Clock, Schedule, Scheduler};

fn tz(name: &str) -> TimeZone {
    jiff::tz::db().get(name).unwrap()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn next(cron: &str, zone: &str, after: &str) -> String {
    Cron::parse(cron)
        .unwrap()
        .next_after(ts(after), &tz(zone))
        .unwrap()
        .to_string()
}

/// The first `n` fire times after `after`.
fn fires(cron: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    let cron = Cron::parse(cron).unwrap();
    let zone = tz(zone);
    let mut at = ts(after);
    (0..n)
        .map(|_| {
            at = cron.next_after(at, &zone).unwrap();
            at.to_string()
        })
        .collect()
}

#[test]
fn weekday_market_open_in_new_york_after_a_friday_evening() {
    // Friday 2026-01-09 18:00 EST → Monday 09:30 EST = 14:30Z.
    assert_eq!(
        next("30 9 * * 1-5", "America/New_York", "2026-01-09T23:00:00Z"),
        "2026-01-12T14:30:00Z"
    );
    // Friday 2026-07-10 18:00 EDT → Monday 09:30 EDT = 13:30Z.
    assert_eq!(
        next(
            "30 9 * * mon-fri",
            "America/New_York",
            "2026-07-10T22:00:00Z"
        ),
        "2026-07-13T13:30:00Z"
    );
    // Exactly at a fire time, the next one is strictly later.
    assert_eq!(
        next("30 9 * * 1-5", "America/New_York", "2026-07-13T13:30:00Z"),
        "2026-07-14T13:30:00Z"
    );
}

#[test]
fn a_time_skipped_by_spring_forward_fires_once_an_hour_later() {
    // 2026-03-08: New York clocks jump from 02:00 EST to 03:00 EDT.
    assert_eq!(
        fires("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:30:00Z", // 02:30 does not exist: 03:30 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ]
    );
    // 02:30 and 03:30 land on the same instant that day: one fire.
    assert_eq!(
        fires(
            "30 2,3 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            2
        ),
        ["2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"]
    );
}

#[test]
fn a_time_repeated_by_fall_back_fires_once() {
    // 2026-11-01: New York clocks fall back from 02:00 EDT to 01:00 EST,
    // so 01:30 happens at 05:30Z and again at 06:30Z.
    assert_eq!(
        fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // Hourly: the repeated 01:00 fires once, at its first occurrence.
    assert_eq!(
        fires("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z"
        ]
    );
}

#[test]
fn london_and_sydney_change_on_their_own_dates() {
    // British Summer Time starts Sunday 2026-03-29: 08:00 BST = 07:00Z.
    assert_eq!(
        fires("0 8 * * 1-5", "Europe/London", "2026-03-27T12:00:00Z", 2),
        ["2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z"]
    );
    // Sydney daylight time ends Sunday 2026-04-05 (AEDT +11 → AEST +10).
    assert_eq!(
        fires("0 10 * * *", "Australia/Sydney", "2026-04-03T12:00:00Z", 2),
        ["2026-04-03T23:00:00Z", "2026-04-05T00:00:00Z"]
    );
}

#[test]
fn a_skipped_calendar_day_fires_once() {
    // Samoa skipped Friday 2011-12-30 entirely (-10 → +14).
    let got = fires("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2011-12-29T22:00:00Z", // Thu 29th 12:00 -10
            "2011-12-30T22:00:00Z", // Sat 31st 12:00 +14 (the 30th is moved onto it)
            "2011-12-31T22:00:00Z",
        ]
    );
}

#[test]
fn fields_take_lists_ranges_steps_and_names() {
    assert_eq!(
        fires("*/20 9-10 * * *", "UTC", "2026-05-01T09:10:00Z", 4),
        [
            "2026-05-01T09:20:00Z",
            "2026-05-01T09:40:00Z",
            "2026-05-01T10:00:00Z",
            "2026-05-01T10:20:00Z"
        ]
    );
    assert_eq!(
        next("15/30 * * * *", "UTC", "2026-05-01T09:16:00Z"),
        "2026-05-01T09:45:00Z"
    );
    assert_eq!(
        next("0 12 * JAN,jul Sun", "UTC", "2026-02-01T00:00:00Z"),
        "2026-07-05T12:00:00Z"
    );
    // Weekday 7 is Sunday too.
    assert_eq!(
        next("0 0 * * 7", "UTC", "2026-05-01T00:00:00Z"),
        "2026-05-03T00:00:00Z"
    );
    assert_eq!(
        next("@monthly", "UTC", "2026-05-01T00:00:00Z"),
        "2026-06-01T00:00:00Z"
    );
    assert_eq!(
        next("@weekly", "UTC", "2026-05-01T00:00:00Z"),
        "2026-05-03T00:00:00Z"
    );
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    // Thursday 2026-01-01: the next Monday (the 5th) comes before the 15th.
    assert_eq!(
        next("0 0 1,15 * mon", "UTC", "2026-01-01T00:00:00Z"),
        "2026-01-05T00:00:00Z"
    );
    // With `*` in either field, both must match: the 1st or 15th that is a Monday.
    assert_eq!(
        next("0 0 */14 * mon", "UTC", "2026-01-01T00:00:00Z"),
        "2026-06-01T00:00:00Z"
    );
}

#[test]
fn february_29th_can_be_eight_years_away() {
    assert_eq!(
        next("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    assert_eq!(
        next("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z"),
        "2104-02-29T00:00:00Z"
    );
}

#[test]
fn bad_expressions_say_what_is_wrong() {
    let err = |text: &str| Cron::parse(text).unwrap_err().0;
    assert!(err("60 * * * *").contains("minute field: 60 is out of range (0-59)"));
    assert!(err("* * * *").contains("expected five fields"));
    assert!(err("* * * * * *").contains("found 6"));
    assert!(err("0 0 30 2 *").contains("never fires"));
    assert!(err("*/0 * * * *").contains("step `0`"));
    assert!(err("0 5-1 * * *").contains("runs backwards"));
    assert!(err("mon * * * *").contains("minute field: `mon` is not a number"));
    assert!(err("0 0 * smarch *").contains("or a name such as `feb`"));
    assert!(err("0 0 1, * *").contains("empty item"));
    assert!(err("@often").contains("unknown shorthand"));
    assert!(err("0 0 L * *").contains("day-of-month field"));
}

#[test]
fn zones_resolve_from_the_bundled_database() {
    // Machines without /usr/share/zoneinfo fall back to the bundled copy.
    let db = jiff::tz::TimeZoneDatabase::bundled();
    assert!(db.get("America/New_York").is_ok());
    assert!(db.get("Europe/London").is_ok());
}

struct FakeClock(Cell<Timestamp>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        self.0.get()
    }
}

impl FakeClock {
    fn set(&self, text: &str) {
        self.0.set(ts(text));
    }
}

fn schedule(cron: &str, zone: &str) -> Schedule {
    Schedule {
        cron: Cron::parse(cron).unwrap(),
        expression: cron.to_string(),
        tz: tz(zone),
        tz_name: zone.to_string(),
    }
}

#[test]
fn the_scheduler_fires_each_time_once_and_coalesces_missed_ones() {
    let clock = FakeClock(Cell::new(ts("2026-11-27T14:29:58Z")));
    let schedules = [
        schedule("30 9 * * 1-5", "America/New_York"),
        schedule("* * * * *", "UTC"),
    ];
    let mut s = Scheduler::new(clock.now());
    assert_eq!(s.next(&schedules), Some(ts("2026-11-27T14:30:00Z")));
    assert!(s.due(&schedules, clock.now()).is_empty());
    clock.set("2026-11-27T14:30:00Z");
    assert_eq!(
        s.due(&schedules, clock.now()),
        [
            (0, ts("2026-11-27T14:30:00Z")),
            (1, ts("2026-11-27T14:30:00Z"))
        ]
    );
    // Asked again at the same time: nothing new.
    assert!(s.due(&schedules, clock.now()).is_empty());
    // A build ran for ten minutes: the minutely schedule fires once, for
    // the latest minute; the market-open one waits for Monday.
    clock.set("2026-11-27T14:40:30Z");
    assert_eq!(
        s.due(&schedules, clock.now()),
        [(1, ts("2026-11-27T14:40:00Z"))]
    );
    assert_eq!(s.next(&schedules[..1]), Some(ts("2026-11-30T14:30:00Z")));
    let wait = Scheduler::wait(
        clock.now(),
        s.next(&schedules),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(wait, std::time::Duration::from_secs(30));
    // A clock that went backwards fires nothing.
    clock.set("2026-11-27T14:00:00Z");
    assert!(s.due(&schedules, clock.now()).is_empty());
}

/// A cron expression whose fires are at most a week apart, as text.
fn weekly_cron() -> impl Strategy<Value = String> {
    let list = |max: u32| {
        proptest::collection::btree_set(0..=max, 1..4).prop_map(|s| {
            s.into_iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    let weekdays = prop_oneof![Just("*".to_string()), list(6)];
    (list(59), list(23), weekdays).prop_map(|(m, h, w)| format!("{m} {h} * * {w}"))
}

fn instant() -> impl Strategy<Value = Timestamp> {
    // 2000-01-01 to 2040-01-01, any second.
    (946_684_800i64..2_208_988_800).prop_map(|s| Timestamp::from_second(s).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// In UTC (no gaps or folds) the next fire is the first matching
    /// minute after the instant, found by stepping minute by minute.
    #[test]
    fn next_fire_is_the_first_matching_minute(text in weekly_cron(), after in instant()) {
        let cron = Cron::parse(&text).unwrap();
        let got = cron.next_after(after, &TimeZone::UTC).unwrap();
        prop_assert!(got > after);
        prop_assert_eq!(got.as_second() % 60, 0);
        prop_assert!(cron.matches(TimeZone::UTC.to_datetime(got)));
        let mut minute = after.as_second().div_euclid(60) * 60 + 60;
        while minute < got.as_second() {
            let t = Timestamp::from_second(minute).unwrap();
            prop_assert!(!cron.matches(TimeZone::UTC.to_datetime(t)), "{} matches before {}", t, got);
            minute += 60;
        }
    }

    /// In zones with daylight saving, successive fires are strictly later,
    /// no wall-clock time fires twice, and each fire is a matching time or
    /// one moved forward out of a spring-forward gap.
    #[test]
    fn fires_never_repeat_a_wall_clock_time(
        text in weekly_cron(),
        after in instant(),
        zone in prop_oneof![
            Just("America/New_York"),
            Just("Europe/London"),
            Just("Australia/Sydney"),
            Just("Asia/Kolkata"),
        ],
    ) {
        let cron = Cron::parse(&text).unwrap();
        let zone = tz(zone);
        let mut at = after;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..60 {
            let got = cron.next_after(at, &zone).unwrap();
            prop_assert!(got > at);
            let local = zone.to_datetime(got);
            prop_assert!(seen.insert(local), "{} fired twice", local);
            let moved = local.checked_sub(jiff::Span::new().hours(1)).unwrap();
            let from_gap = cron.matches(moved)
                && matches!(zone.to_ambiguous_timestamp(moved).offset(), AmbiguousOffset::Gap { .. });
            prop_assert!(cron.matches(local) || from_gap, "{} does not match {}", local, text);
            at = got;
        }
    }
}
