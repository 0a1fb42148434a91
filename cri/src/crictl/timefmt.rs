//! Times as crictl prints and reads them: go-units' "2 minutes ago", Go's
//! RFC 3339 with nanoseconds and `time.Time`'s `%v`, and `logs --since`.
//! Times are shown in UTC (crictl uses the local zone; Skiff nodes run in
//! UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::parse_go_duration;

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// go-units' `HumanDuration`: "Less than a second", "About a minute",
/// "3 hours", "2 weeks".
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".to_owned();
    }
    if seconds == 1 {
        return "1 second".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go rounds to the nearest hour (halves away from zero).
    let hours = (d.as_nanos() + 1_800_000_000_000) / 3_600_000_000_000;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// "2 minutes ago" for a time in nanoseconds since the epoch.
pub fn ago(unix_nanos: i64) -> String {
    let elapsed = now_nanos().saturating_sub(unix_nanos).max(0);
    format!(
        "{} ago",
        human_duration(Duration::from_nanos(elapsed as u64))
    )
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
}

fn civil(unix_nanos: i64) -> Civil {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        nanos,
    }
}

/// Go's `.999999999` fraction: trailing zeros dropped, no dot for zero.
fn fraction(nanos: i64) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Go's `time.RFC3339Nano` in UTC: `2026-11-23T18:26:39.1234Z`.
pub fn rfc3339_nano(unix_nanos: i64) -> String {
    let t = civil(unix_nanos);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        fraction(t.nanos)
    )
}

/// Go's zero `time.Time` in RFC 3339, which crictl prints for times that
/// never happened.
pub const ZERO_TIME_RFC3339: &str = "0001-01-01T00:00:00Z";

/// Go's `time.Time` `%v` in UTC: `2026-11-23 18:26:39.1234 +0000 UTC`.
pub fn go_time(unix_nanos: i64) -> String {
    let t = civil(unix_nanos);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{} +0000 UTC",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        fraction(t.nanos)
    )
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time (`2026-11-23T18:26:39.123456789Z`, any offset)
/// to nanoseconds since the epoch; CRI log lines carry these.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = frac[..len].parse::<i64>().ok()? * 10i64.pow(9 - len as u32);
        rest = &frac[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// `logs --since`: a Go duration back from now (`42m`), an RFC 3339 time
/// with or without zone (`2013-01-02T13:23:37`, UTC when no zone is
/// given), a date, or Unix seconds (`1700000000.5`).
pub fn parse_since(text: &str, now_nanos: i64) -> Result<i64, String> {
    if let Ok(d) = parse_go_duration(text)
        && !text.starts_with('-')
    {
        return Ok(now_nanos - i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    }
    if let Some(t) = parse_rfc3339(text) {
        return Ok(t);
    }
    for suffix in [":00Z", "Z", "T00:00:00Z"] {
        if let Some(t) = parse_rfc3339(&format!("{text}{suffix}")) {
            return Ok(t);
        }
    }
    if let Some((secs, frac)) = text.split_once('.').or(Some((text, "")))
        && !secs.is_empty()
        && secs.bytes().all(|c| c.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|c| c.is_ascii_digit())
        && let Ok(secs) = secs.parse::<i64>()
    {
        let nanos = if frac.is_empty() {
            0
        } else {
            frac.parse::<i64>().unwrap_or(0) * 10i64.pow(9 - frac.len() as u32)
        };
        return Ok(secs * 1_000_000_000 + nanos);
    }
    Err(format!(
        "parsing time {text:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {text:?} as a time, a duration or a Unix timestamp"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_units_writes_them() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (48 * 3600, "2 days"),
            (14 * 86_400, "2 weeks"),
            (60 * 86_400, "2 months"),
            (800 * 86_400, "2 years"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(secs)),
                expected,
                "{secs}"
            );
        }
    }

    #[test]
    fn times_print_as_go_prints_them() {
        let t = 1_700_000_000_123_400_000;
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.1234Z");
        assert_eq!(
            rfc3339_nano(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(go_time(t), "2023-11-14 22:13:20.1234 +0000 UTC");
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_parses_with_any_offset() {
        let t = 1_700_000_000_123_456_789;
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456789Z"), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456789+01:00"),
            Some(t)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), None);
        assert_eq!(parse_rfc3339("stdout"), None);
        for t in [0, 951_782_400_000_000_000, t] {
            assert_eq!(parse_rfc3339(&rfc3339_nano(t)), Some(t));
        }
    }

    #[test]
    fn since_takes_durations_times_and_timestamps() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(
            parse_since("42m", now).unwrap(),
            now - 42 * 60 * 1_000_000_000
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_since("2023-11-14", now).unwrap(),
            1_699_920_000_000_000_000
        );
        assert_eq!(
            parse_since("1700000000.5", now).unwrap(),
            1_700_000_000_500_000_000
        );
        assert!(parse_since("yesterday", now).is_err());
    }
}
