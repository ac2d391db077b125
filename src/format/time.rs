//! The encoders' time reader and writer: RFC 3339 / ISO 8601 text ↔ milliseconds since the Unix
//! epoch. The lexical shape is checked here by fixed byte positions (the forms payloads carry,
//! nothing locale- or width-flexible); the calendar (month lengths, leap years, days since the
//! epoch) is chrono's. Used by the formats, `format::facts` and the syslog/ClickHouse/HEC sinks.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};

/// Milliseconds since the Unix epoch of an RFC 3339 / ISO 8601 time: `T` or space between date
/// and time, optional fraction, `Z`, `±HH:MM`, `±HHMM` or no zone (read as UTC). `None` if it is
/// not such a time or outside years 0000–9999.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        s.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if sec > 60 {
        return None;
    }
    // A leap second (`:60`) reads as `:59` with its fraction kept.
    let time = date.and_hms_opt(hour, min, sec.min(59))?;
    let (millis, zone_at) = fraction_ms(b, 19)?;
    let offset_min = offset_minutes(b, zone_at)?;
    Some(time.and_utc().timestamp_millis() + millis - offset_min * 60_000)
}

/// The optional `.digits` at `at`: (its first three digits as ms, the index after it).
fn fraction_ms(b: &[u8], at: usize) -> Option<(i64, usize)> {
    if b.get(at) != Some(&b'.') {
        return Some((0, at));
    }
    let digits = b[at + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let millis = (0..3).fold(0i64, |acc, k| {
        let d = b
            .get(at + 1 + k)
            .filter(|_| k < digits)
            .map_or(0, |c| c - b'0');
        acc * 10 + i64::from(d)
    });
    Some((millis, at + 1 + digits))
}

/// The zone at `i` (the rest of the text) in minutes east of UTC: none, `Z`, `±HH:MM`, `±HHMM`
/// or `±HH`; `None` for anything else.
fn offset_minutes(b: &[u8], i: usize) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b.get(r)?.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    match b.get(i) {
        None => Some(0),
        Some(b'Z' | b'z') if i + 1 == b.len() => Some(0),
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                2 => (num(i + 1..i + 3)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            Some(if sign == b'+' { off } else { -off })
        }
        _ => None,
    }
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC). The year is clamped to 0000–9999 so the
/// text is always 24 bytes (a time a zone offset pushed just past either end keeps its month,
/// day and time of day); times beyond chrono's ±262,000 years, which no parsed text yields,
/// are first clamped to that range.
pub fn push_rfc3339_ms(out: &mut Vec<u8>, ms: i64) {
    let t = DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<chrono::Utc>::MIN_UTC
    } else {
        DateTime::<chrono::Utc>::MAX_UTC
    });
    let mut buf = [0u8; 24];
    let put = |buf: &mut [u8], at: usize, v: u32, width: usize| {
        let mut v = v;
        for k in (0..width).rev() {
            buf[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut buf, 0, t.year().clamp(0, 9999).unsigned_abs(), 4);
    buf[4] = b'-';
    put(&mut buf, 5, t.month(), 2);
    buf[7] = b'-';
    put(&mut buf, 8, t.day(), 2);
    buf[10] = b'T';
    put(&mut buf, 11, t.hour(), 2);
    buf[13] = b':';
    put(&mut buf, 14, t.minute(), 2);
    buf[16] = b':';
    put(&mut buf, 17, t.second(), 2);
    buf[19] = b'.';
    put(&mut buf, 20, t.timestamp_subsec_millis(), 3);
    buf[23] = b'Z';
    out.extend_from_slice(&buf);
}

/// The event's time in ms: the first of `candidates` that parses, else 0 (the epoch) — formats
/// need a number, and the envelope's `observed_at` (always last) is written by us.
pub fn first_time_ms(candidates: &[Option<&str>]) -> i64 {
    candidates
        .iter()
        .flatten()
        .find_map(|s| parse_time_ms(s))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(ms: i64) -> String {
        let mut out = Vec::new();
        push_rfc3339_ms(&mut out, ms);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_parse_like_chrono() {
        let cases = [
            "2025-03-04T10:15:30Z",
            "2025-03-04T10:15:30.5Z",
            "2025-03-04T10:15:30.123456789Z",
            "2024-02-29T23:59:59+02:00",
            "1999-12-31T23:59:59-05:30",
            "1970-01-01T00:00:00Z",
            "1969-07-20T20:17:40Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ];
        for c in cases {
            let want = chrono::DateTime::parse_from_rfc3339(c)
                .unwrap()
                .timestamp_millis();
            assert_eq!(parse_time_ms(c), Some(want), "{c}");
        }
        assert_eq!(
            parse_time_ms("2025-03-04 10:15:30"),
            parse_time_ms("2025-03-04T10:15:30Z")
        );
        assert_eq!(
            parse_time_ms("2025-03-04T10:15:30+0100"),
            parse_time_ms("2025-03-04T09:15:30Z")
        );
        for bad in [
            "",
            "2025-02-30T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-03-04T24:00:00Z",
            "2025-03-04T10:15:30.Z",
            "2025-03-04T10:15:30Zjunk",
            "2025-03-04",
            "２０２５-03-04T10:15:30Z",
            "yesterday at noon",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_format_round_trip() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let ms = rng.i64(-62_135_596_800_000..253_402_300_799_999);
            let text = render(ms);
            assert_eq!(parse_time_ms(&text), Some(ms), "{text}");
            let chrono_text = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(text, chrono_text);
        }
    }

    /// Pinned from the hand-written calendar this module replaced (issue 13): zones, leap
    /// seconds, lower-case separators and the year clamp at both ends read and print as before.
    #[test]
    fn edge_times_read_and_print_as_before() {
        for (text, ms, printed) in [
            (
                "0000-01-01T00:00:00+01:00",
                -62_167_222_800_000,
                "0000-12-31T23:00:00.000Z",
            ),
            (
                "9999-12-31T23:30:00-01:00",
                253_402_302_600_000,
                "9999-01-01T00:30:00.000Z",
            ),
            (
                "2016-12-31T23:59:60.5Z",
                1_483_228_799_500,
                "2016-12-31T23:59:59.500Z",
            ),
            (
                "2025-03-04t10:15:30.1234z",
                1_741_083_330_123,
                "2025-03-04T10:15:30.123Z",
            ),
            (
                "2025-03-04T10:15:30+05",
                1_741_065_330_000,
                "2025-03-04T05:15:30.000Z",
            ),
            (
                "0000-02-29T12:00:00Z",
                -62_162_078_400_000,
                "0000-02-29T12:00:00.000Z",
            ),
            (
                "2025-03-04T10:15:30-0130",
                1_741_088_730_000,
                "2025-03-04T11:45:30.000Z",
            ),
        ] {
            assert_eq!(parse_time_ms(text), Some(ms), "{text}");
            assert_eq!(render(ms), printed, "{text}");
        }
        for (ms, printed) in [
            (-253_402_300_799_998, "0000-01-02T00:00:00.002Z"),
            (-62_167_219_200_001, "0000-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "9999-01-01T00:00:00.000Z"),
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(render(ms), printed, "{ms}");
        }
    }

    #[test]
    fn the_first_time_that_parses_wins() {
        assert_eq!(
            first_time_ms(&[None, Some("junk"), Some("1970-01-01T00:00:01Z")]),
            1000
        );
        assert_eq!(first_time_ms(&[Some("junk")]), 0);
    }
}
