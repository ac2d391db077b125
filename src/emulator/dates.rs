//! Parsing of the activities list's `from_date` / `to_date` query values into inclusive
//! millisecond bounds. Used by `handlers::activities`; pure functions, unit-tested here.
//!
//! Accepted forms (API notes §3.2): `YYYY-MM-DD`; naive `YYYY-MM-DDTHH:MM:SS[.fff]` (read as UTC);
//! RFC 3339 with `Z` or an offset. Both bounds are inclusive. A date-only `from_date` starts at
//! 00:00:00.000 UTC of that day and a date-only `to_date` covers that whole day (up to
//! 23:59:59.999 UTC), so `from_date=D&to_date=D` returns everything of day D.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// One parsed `from_date` / `to_date` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateParam {
    /// `YYYY-MM-DD`: a whole UTC day.
    Day(NaiveDate),
    /// A point in time (naive values are taken as UTC).
    At(DateTime<Utc>),
}

/// Which end of the window a value is for; a whole day widens to its start or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    From,
    To,
}

/// Parses one value. `allow_datetime = false` mimics a server that only takes `YYYY-MM-DD`.
///
/// # Errors
/// A `BAD_REQUEST` message (without the code prefix) naming the parameter and the expected form.
pub(crate) fn parse(name: &str, raw: &str, allow_datetime: bool) -> Result<DateParam, String> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        && raw.len() == 10
    {
        return Ok(DateParam::Day(day));
    }
    if !allow_datetime {
        return Err(format!(
            "Invalid {name} '{raw}': the date must be in format YYYY-MM-DD"
        ));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(DateParam::At(t.with_timezone(&Utc)));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(DateParam::At(t.and_utc()));
    }
    Err(format!(
        "Invalid {name} '{raw}': expected a date YYYY-MM-DD or a date-time \
         YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]"
    ))
}

/// The inclusive bound in Unix milliseconds.
pub(crate) fn bound_ms(p: DateParam, bound: Bound) -> i64 {
    match (p, bound) {
        (DateParam::At(t), _) => t.timestamp_millis(),
        (DateParam::Day(d), Bound::From) => day_start_ms(d),
        (DateParam::Day(d), Bound::To) => match d.succ_opt() {
            Some(next) => day_start_ms(next) - 1,
            None => i64::MAX,
        },
    }
}

fn day_start_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn date_only_covers_the_whole_day() {
        let p = parse("to_date", "2024-03-05", true).unwrap();
        assert_eq!(
            p,
            DateParam::Day(NaiveDate::from_ymd_opt(2024, 3, 5).unwrap())
        );
        assert_eq!(bound_ms(p, Bound::From), ms("2024-03-05T00:00:00Z"));
        assert_eq!(bound_ms(p, Bound::To), ms("2024-03-05T23:59:59.999Z"));
    }

    #[test]
    fn naive_datetime_is_utc_with_optional_fraction() {
        let p = parse("from_date", "2024-03-05T10:20:30", true).unwrap();
        assert_eq!(bound_ms(p, Bound::From), ms("2024-03-05T10:20:30Z"));
        let p = parse("from_date", "2024-03-05T10:20:30.250", true).unwrap();
        assert_eq!(bound_ms(p, Bound::To), ms("2024-03-05T10:20:30.250Z"));
    }

    #[test]
    fn rfc3339_with_zulu_or_offset() {
        let p = parse("from_date", "2024-03-05T10:20:30Z", true).unwrap();
        assert_eq!(bound_ms(p, Bound::From), ms("2024-03-05T10:20:30Z"));
        let p = parse("from_date", "2024-03-05T12:20:30.5+02:00", true).unwrap();
        assert_eq!(bound_ms(p, Bound::From), ms("2024-03-05T10:20:30.5Z"));
    }

    #[test]
    fn garbage_and_impossible_dates_are_rejected() {
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
            let err = parse("from_date", bad, true).unwrap_err();
            assert!(err.contains("from_date"), "{bad}: {err}");
        }
    }

    #[test]
    fn date_only_mode_rejects_datetimes_with_a_date_message() {
        assert!(parse("to_date", "2024-03-05", false).is_ok());
        let err = parse("to_date", "2024-03-05T00:00:00Z", false).unwrap_err();
        assert!(err.contains("YYYY-MM-DD") && err.contains("date"), "{err}");
    }
}
