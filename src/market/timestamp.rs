//! Timestamps of data rows, as seconds since 1970-01-01 00:00:00.
//!
//! Naive timestamps (no offset) are taken as they are written, i.e. as if
//! they were UTC: nothing is converted. Dates without a time are midnight.
//! Accepted forms: `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYYMMDD`, each optionally
//! followed by a space or `T` and `HH:MM[:SS[.fff]]` or `HHMMSS`; anything
//! else is tried as an RFC 3339 instant with an offset (`…Z`, `…-05:00`).

/// Seconds since the epoch, or `None` when the text is not a timestamp.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    parse_naive(text).or_else(|| text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second()))
}

fn parse_naive(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (date, rest) = if b.len() >= 10 && (b[4] == b'-' || b[4] == b'/') && b[7] == b[4] {
        let y = digits(&b[0..4])?;
        let m = digits(&b[5..7])?;
        let d = digits(&b[8..10])?;
        ((y, m, d), &b[10..])
    } else if b.len() >= 8 {
        let y = digits(&b[0..4])?;
        let m = digits(&b[4..6])?;
        let d = digits(&b[6..8])?;
        ((y, m, d), &b[8..])
    } else {
        return None;
    };
    let (y, m, d) = date;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let secs_of_day = if rest.is_empty() {
        0
    } else {
        if rest[0] != b' ' && rest[0] != b'T' {
            return None;
        }
        time_of_day(&rest[1..])?
    };
    Some(days_from_civil(y, m, d) * 86_400 + secs_of_day)
}

fn time_of_day(b: &[u8]) -> Option<i64> {
    let (h, mi, s, tail) = if b.len() >= 5 && b[2] == b':' {
        let h = digits(&b[0..2])?;
        let mi = digits(&b[3..5])?;
        if b.len() >= 8 && b[5] == b':' {
            (h, mi, digits(&b[6..8])?, &b[8..])
        } else {
            (h, mi, 0, &b[5..])
        }
    } else if b.len() >= 6 {
        (
            digits(&b[0..2])?,
            digits(&b[2..4])?,
            digits(&b[4..6])?,
            &b[6..],
        )
    } else {
        return None;
    };
    // Fractions of a second are accepted and truncated.
    if !tail.is_empty() && (tail[0] != b'.' || !tail[1..].iter().all(u8::is_ascii_digit)) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(h * 3600 + mi * 60 + s)
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_forms() {
        assert_eq!(parse("1970-01-02"), Some(86_400));
        assert_eq!(parse("1999-11-01"), Some(941_414_400));
        assert_eq!(parse("20110103 090100"), Some(1_294_045_260));
        assert_eq!(parse("2011-01-03 09:01:00"), Some(1_294_045_260));
        assert_eq!(parse("2011-01-03T09:01"), Some(1_294_045_260));
        assert_eq!(parse("2011-01-03T14:01:00Z"), Some(1_294_063_260));
    }

    #[test]
    fn rejects_non_dates() {
        for bad in [
            "",
            "abc",
            "2011-13-01",
            "2011-02-30",
            "20110103 256100",
            "1999-11-01x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
