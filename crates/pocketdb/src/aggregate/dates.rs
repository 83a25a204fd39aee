//! Dates in pocketdb's convention: MongoDB extended JSON `{"$date": "<RFC 3339>"}` (what
//! `$currentDate` stores, see [`crate::update::date_value`]), also accepted as
//! `{"$date": <millis>}` and `{"$date": {"$numberLong": "<millis>"}}`. All dates are UTC.

use crate::update::{civil_from_days, date_value};
use serde_json::Value;

const DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch of a date value, `None` when `v` is not a date.
pub(crate) fn date_millis(v: &Value) -> Option<i64> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    match obj.get("$date")? {
        Value::String(s) => parse_rfc3339(s),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::Object(o) if o.len() == 1 => o.get("$numberLong")?.as_str()?.parse().ok(),
        _ => None,
    }
}

/// True when `v` is a date in the extended-JSON convention.
pub(crate) fn is_date(v: &Value) -> bool {
    date_millis(v).is_some()
}

/// The date value for `millis` (the same form `$currentDate` stores).
pub(crate) fn make_date(millis: i64) -> Value {
    date_value(millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str, from: usize, len: usize) -> Option<i64> {
    let part = s.get(from..from + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Parses `YYYY-MM-DD`, optionally followed by `THH:MM[:SS[.fff…]]` and `Z` or `±HH:MM`.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let year = digits(s, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * DAY;
    if b.len() == 10 {
        return Some(millis);
    }
    if !matches!(b.get(10), Some(b'T') | Some(b't') | Some(b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = digits(s, 11, 2)?;
    let minute = digits(s, 14, 2)?;
    let mut pos = 16;
    let mut second = 0;
    if b.get(pos) == Some(&b':') {
        second = digits(s, 17, 2)?;
        pos = 19;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    millis += hour * 3_600_000 + minute * 60_000 + second * 1000;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let frac = s.get(start..pos)?;
        if frac.is_empty() {
            return None;
        }
        let ms: String = frac.chars().chain("000".chars()).take(3).collect();
        millis += ms.parse::<i64>().ok()?;
    }
    match s.get(pos..)? {
        "Z" | "z" | "" => Some(millis),
        tz => {
            let sign = match tz.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if tz.len() != 6 || tz.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let offset = digits(tz, 1, 2)? * 60 + digits(tz, 4, 2)?;
            Some(millis - sign * offset * 60_000)
        }
    }
}

/// The calendar parts of a UTC instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millisecond: i64,
    /// 1 (Sunday) to 7 (Saturday), as MongoDB's `$dayOfWeek`.
    pub day_of_week: i64,
    /// 1 to 366.
    pub day_of_year: i64,
}

/// Splits milliseconds since the epoch into UTC calendar parts.
pub(crate) fn parts(millis: i64) -> Parts {
    let days = millis.div_euclid(DAY);
    let rem = millis.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: rem / 3_600_000,
        minute: rem / 60_000 % 60,
        second: rem / 1000 % 60,
        millisecond: rem % 1000,
        // 1970-01-01 was a Thursday (5 in 1 = Sunday numbering).
        day_of_week: (days + 4).rem_euclid(7) + 1,
        day_of_year: days - days_from_civil(year, 1, 1) + 1,
    }
}

/// Formats a date with `$dateToString`'s specifiers (`%Y %m %d %H %M %S %L %j %w %u %%`
/// and `%Z`/`%z` for the UTC offset). Unknown specifiers are an error message.
pub(crate) fn format(millis: i64, fmt: &str) -> Result<String, String> {
    let p = parts(millis);
    let mut out = String::with_capacity(fmt.len() + 8);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", p.year)),
            Some('m') => out.push_str(&format!("{:02}", p.month)),
            Some('d') => out.push_str(&format!("{:02}", p.day)),
            Some('H') => out.push_str(&format!("{:02}", p.hour)),
            Some('M') => out.push_str(&format!("{:02}", p.minute)),
            Some('S') => out.push_str(&format!("{:02}", p.second)),
            Some('L') => out.push_str(&format!("{:03}", p.millisecond)),
            Some('j') => out.push_str(&format!("{:03}", p.day_of_year)),
            Some('w') => out.push_str(&p.day_of_week.to_string()),
            Some('u') => out.push_str(&((p.day_of_week + 5) % 7 + 1).to_string()),
            Some('z') => out.push_str("+0000"),
            Some('Z') => out.push('0'),
            Some('%') => out.push('%'),
            Some(other) => return Err(format!("invalid format specifier %{other}")),
            None => return Err("format ends with a lone %".to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_the_update_convention() {
        for millis in [0, 1, 86_399_999, 1_700_000_000_123, -1, -86_400_001] {
            assert_eq!(date_millis(&make_date(millis)), Some(millis), "{millis}");
        }
        assert_eq!(date_millis(&json!({"$date": 5})), Some(5));
        assert_eq!(
            date_millis(&json!({"$date": {"$numberLong": "7"}})),
            Some(7)
        );
        assert_eq!(date_millis(&json!({"$date": "nope"})), None);
        assert_eq!(date_millis(&json!({"$date": 1, "x": 2})), None);
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:00+01:00"),
            parse_rfc3339("2024-02-29T11:30:00Z")
        );
        assert_eq!(
            parse_rfc3339("2024-02-29"),
            parse_rfc3339("2024-02-29T00:00:00.000Z")
        );
    }

    #[test]
    fn parts_and_format() {
        let m = parse_rfc3339("2024-03-05T07:08:09.010Z").unwrap_or_default();
        let p = parts(m);
        assert_eq!(
            (p.year, p.month, p.day, p.hour, p.minute, p.second),
            (2024, 3, 5, 7, 8, 9)
        );
        assert_eq!(p.millisecond, 10);
        assert_eq!(p.day_of_week, 3); // a Tuesday
        assert_eq!(p.day_of_year, 65);
        assert_eq!(
            format(m, "%Y/%m/%d %H:%M:%S.%L %j %%").unwrap_or_default(),
            "2024/03/05 07:08:09.010 065 %"
        );
        assert!(format(m, "%Q").is_err());
    }
}
