//! Parsing and validation of the activity list's `from_date` / `to_date` query values, per
//! `DateValidation` (see `window.rs`, which turns the parsed values into bounds). Used by
//! `handlers::activities`; pure functions, unit-tested here.
//!
//! Forms (API notes §3.2): `YYYY-MM-DD` (every mode); RFC 3339 with `Z` or an offset (strict:
//! exactly three fractional digits, the only date-time form seen to pass live; lenient: 0–9);
//! naive `YYYY-MM-DDTHH:MM:SS[.f…]` (lenient only). Every refusal is a `BAD_REQUEST` message
//! naming the parameter, the word "date" and the expected form (the client's format fallback
//! keys on "date").

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};

use super::window::DateValidation;

/// One parsed `from_date` / `to_date` value, zone kept as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateParam {
    /// `YYYY-MM-DD`: a whole day (zone-less).
    Day(NaiveDate),
    /// A date-time without a zone.
    Naive(NaiveDateTime),
    /// A date-time with `Z` or an offset.
    At(DateTime<FixedOffset>),
}

/// Parses and validates one value under `mode`.
///
/// # Errors
/// A `BAD_REQUEST` message (without the code prefix) naming the parameter and the expected form.
pub(crate) fn parse(name: &str, raw: &str, mode: DateValidation) -> Result<DateParam, String> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        && raw.len() == 10
    {
        return Ok(DateParam::Day(day));
    }
    let parsed = match mode {
        DateValidation::DateOnly => None,
        DateValidation::Strict => strict(raw),
        DateValidation::Lenient => lenient(raw),
    };
    parsed.ok_or_else(|| {
        let expected = match mode {
            DateValidation::DateOnly => "the date must be in format YYYY-MM-DD",
            DateValidation::Strict => {
                "expected a date YYYY-MM-DD or a date-time YYYY-MM-DDTHH:MM:SS.sssZ \
                 (exactly three fractional digits, then Z or an offset like +02:00)"
            }
            DateValidation::Lenient => {
                "expected a date YYYY-MM-DD or a date-time \
                 YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]"
            }
        };
        format!("Invalid {name} '{raw}': {expected}")
    })
}

/// `YYYY-MM-DDTHH:MM:SS.sss` then `Z` or `±HH:MM`, nothing else.
fn strict(raw: &str) -> Option<DateParam> {
    let b = raw.as_bytes();
    let shape = b.len() >= 24
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..23].iter().all(u8::is_ascii_digit)
        && match &b[23..] {
            [b'Z'] => true,
            [b'+' | b'-', h1, h2, b':', m1, m2] => {
                [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
            }
            _ => false,
        };
    if !shape {
        return None;
    }
    DateTime::parse_from_rfc3339(raw).ok().map(DateParam::At)
}

fn lenient(raw: &str) -> Option<DateParam> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(DateParam::At(t));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(DateParam::Naive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DateValidation::{DateOnly, Lenient, Strict};

    fn at(s: &str) -> DateParam {
        DateParam::At(DateTime::parse_from_rfc3339(s).unwrap())
    }

    #[test]
    fn date_only_passes_in_every_mode() {
        let day = DateParam::Day(NaiveDate::from_ymd_opt(2024, 3, 5).unwrap());
        for mode in [Strict, Lenient, DateOnly] {
            assert_eq!(parse("to_date", "2024-03-05", mode), Ok(day), "{mode:?}");
        }
    }

    #[test]
    fn strict_takes_exactly_three_fraction_digits_with_z_or_offset() {
        for ok in ["2026-09-08T10:53:17.000Z", "2026-09-08T10:53:17.000+02:00"] {
            assert_eq!(parse("from_date", ok, Strict), Ok(at(ok)), "{ok}");
        }
        assert_eq!(
            parse("from_date", "2026-09-08T10:53:17.250-08:00", Strict),
            Ok(at("2026-09-08T18:53:17.250Z"))
        );
        for zone in ["Z", "+02:00"] {
            for frac in ["", ".0", ".00", ".000000"] {
                let bad = format!("2026-09-08T10:53:17{frac}{zone}");
                let err = parse("from_date", &bad, Strict).unwrap_err();
                assert!(err.contains("from_date") && err.contains("date"), "{err}");
                assert!(err.contains("three fractional digits"), "{err}");
                // Lenient takes every one of them.
                assert!(parse("from_date", &bad, Lenient).is_ok(), "{bad}");
            }
        }
    }

    #[test]
    fn strict_refuses_naive_values_and_near_misses() {
        for bad in [
            "2026-09-08T10:53:17.000",
            "2026-09-08T10:53:17",
            "2026-09-08 10:53:17.000Z",
            "2026-09-08t10:53:17.000z",
            "2026-09-08T10:53:17.000+0200",
            "2026-09-08T10:53:17.000+02",
            "2026-09-08T10:53:17.0a0Z",
            "2026-02-30T10:53:17.000Z",
        ] {
            assert!(parse("from_date", bad, Strict).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_reads_naive_values_with_any_fraction() {
        let naive =
            |s| DateParam::Naive(NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap());
        for s in [
            "2024-03-05T10:20:30",
            "2024-03-05T10:20:30.2",
            "2024-03-05T10:20:30.250",
            "2024-03-05T10:20:30.123456789",
        ] {
            assert_eq!(parse("from_date", s, Lenient), Ok(naive(s)), "{s}");
        }
        assert_eq!(
            parse("from_date", "2024-03-05T12:20:30.5+02:00", Lenient),
            Ok(at("2024-03-05T12:20:30.5+02:00"))
        );
    }

    #[test]
    fn garbage_and_impossible_dates_are_rejected_in_every_mode() {
        for mode in [Strict, Lenient, DateOnly] {
            for bad in [
                "",
                "now",
                "2024-02-30",
                "2024-3-5",
                "20240305",
                "2024-03-05T25:00:00",
                "2024-03-05 10:20:30+00:00x",
                "1709634030",
            ] {
                let err = parse("from_date", bad, mode).unwrap_err();
                assert!(err.contains("from_date"), "{bad}: {err}");
            }
        }
    }

    #[test]
    fn date_only_mode_rejects_datetimes_with_a_date_message() {
        let err = parse("to_date", "2024-03-05T00:00:00.000Z", DateOnly).unwrap_err();
        assert!(err.contains("YYYY-MM-DD") && err.contains("date"), "{err}");
    }
}
