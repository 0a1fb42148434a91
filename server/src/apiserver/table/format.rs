//! Cell formatting shared by the printers: timestamps and ages (upstream's
//! `duration.HumanDuration`), label maps and selectors, container lists.

use serde_json::{Map, Value};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::super::selector::LabelSelector;

/// Parses an RFC 3339 timestamp (`metav1.Time`/`MicroTime`: `2026-12-03T17:00:00Z`, with
/// optional fraction and offset). Go's zero time (`0001-01-01T00:00:00Z`) and anything
/// unparsable are `None`.
pub(super) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        let part = b.get(from..to)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &b[start..i.min(start + 9)];
        nanos = frac.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
            * 10u32.pow(9 - frac.len() as u32);
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => UtcOffset::UTC,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (digits(i + 1, i + 3)?, digits(i + 4, i + 6)?);
            let s: i8 = if *sign == b'-' { -1 } else { 1 };
            UtcOffset::from_hms(s * i8::try_from(h).ok()?, s * i8::try_from(m).ok()?, 0).ok()?
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let at = PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC);
    (at.year() > 1 || at.ordinal() > 1 || at.time() != Time::MIDNIGHT).then_some(at)
}

/// Formats as Go's `time.RFC3339` in UTC (`2026-12-03T17:00:00Z`).
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Upstream's `duration.HumanDuration`: "45s", "5m30s", "10m", "2h3m", "5h", "3d4h", "9d", "2y30d".
pub(super) fn human_duration(d: Duration) -> String {
    let seconds = d.whole_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.whole_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.whole_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Upstream's `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
pub(super) fn since(now: OffsetDateTime, timestamp: Option<&Value>) -> String {
    match timestamp.and_then(Value::as_str).and_then(parse_time) {
        Some(at) => human_duration(now - at),
        None => "<unknown>".to_string(),
    }
}

/// The AGE cell: how long ago `metadata.creationTimestamp` was.
pub(super) fn age(object: &Value, now: OffsetDateTime) -> String {
    since(now, object.pointer("/metadata/creationTimestamp"))
}

/// The string at a JSON pointer, `""` when absent or not a string.
pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The integer at a JSON pointer, 0 when absent.
pub(super) fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_default()
}

/// The array at a JSON pointer, empty when absent.
pub(super) fn arr_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The object at a JSON pointer, when present.
pub(super) fn obj_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    v.pointer(pointer).and_then(Value::as_object)
}

/// `value` or `fallback` when empty.
pub(super) fn or(value: &str, fallback: &str) -> String {
    if value.is_empty() {
        fallback.to_string()
    } else {
        value.to_string()
    }
}

/// A JSON scalar as text (strings as-is, numbers and booleans as JSON).
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Upstream's `labels.FormatLabels`: `k=v,k2=v2` sorted, `<none>` when empty.
pub(super) fn format_labels(labels: Option<&Value>) -> String {
    let joined = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    or(&joined, "<none>")
}

/// Upstream's `metav1.FormatLabelSelector`: `<none>` when it selects everything or
/// nothing, `<error>` when invalid.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match LabelSelector::from_object(selector.unwrap_or(&Value::Null)) {
        Ok(s) => or(&s.to_string(), "<none>"),
        Err(_) => "<error>".to_string(),
    }
}

/// `LabelSelectorAsSelector(..).String()` as Deployments print it (`<invalid>` on error).
pub(super) fn selector_string(selector: Option<&Value>) -> String {
    match LabelSelector::from_object(selector.unwrap_or(&Value::Null)) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_string(),
    }
}

/// Upstream's `layoutContainerCells`: container names and images, comma-joined.
pub(super) fn container_cells(pod_spec: &Value) -> (String, String) {
    let containers = arr_at(pod_spec, "/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// An `IntOrString` as text (`25%`, `1`), `None` when unset.
pub(super) fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        other => Some(text(other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn human_duration_matches_upstream() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (760 * 86400, "2y30d"),
            (3000 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn parses_timestamps() {
        let t = parse_time("2026-12-03T17:00:00Z").unwrap();
        assert_eq!(rfc3339(t), "2026-12-03T17:00:00Z");
        let micro = parse_time("2026-12-03T17:00:00.123456Z").unwrap();
        assert_eq!(micro.nanosecond(), 123_456_000);
        let offset = parse_time("2026-12-03T18:00:00+01:00").unwrap();
        assert_eq!(offset, t);
        assert!(parse_time("0001-01-01T00:00:00Z").is_none());
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-13-03T17:00:00Z").is_none());
        let now = parse_time("2026-12-03T17:05:00Z").unwrap();
        assert_eq!(since(now, Some(&json!("2026-12-03T17:00:00Z"))), "5m");
        assert_eq!(since(now, None), "<unknown>");
    }

    #[test]
    fn labels_and_selectors() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(
            format_label_selector(Some(&json!({"matchLabels": {"app": "web"}}))),
            "app=web"
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "X"}]})
            )),
            "<error>"
        );
        assert_eq!(selector_string(Some(&json!({}))), "");
    }
}
