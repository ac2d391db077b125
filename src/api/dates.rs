//! Dates on the wire: the activity window bounds (`from_date`/`to_date`) written per
//! `api.date_format`, the UTC range an answer may cover, the order formats are tried in after a
//! refusal (`step_down`), and the lenient parser for an activity's `createdAt`. The vendor documents
//! neither precisely (docs/clickhouse-cloud-api.md §3.2, §3.4), so bounds only ever widen the
//! window and parsing accepts every ISO-8601 form seen from official clients.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};

use crate::config::DateFormat;

/// `(from_date, to_date)` for `[from, to]`, rounded outwards so the window never shrinks:
/// - `rfc3339`: `YYYY-MM-DDTHH:MM:SS.000Z`, exactly three fractional digits (the only form seen
///   accepted by the live API); `from` floored and `to` ceiled to the second.
/// - `naive`: the same without the `Z` (what the vendor's Splunk poller sends, UTC implied).
/// - `date`: `YYYY-MM-DD`; `from` floored to its day, `to` ceiled to the next midnight (the day
///   after `to`'s day, unless `to` is exactly midnight). Whether the API treats `to_date` as that
///   day's start or end is unknown; either way the answer covers `[from, to]` and the extra
///   activities are deduplicated downstream.
pub fn window_params(
    format: DateFormat,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (String, String) {
    match format {
        DateFormat::Naive => (
            floor_second(from)
                .format("%Y-%m-%dT%H:%M:%S.000")
                .to_string(),
            ceil_second(to).format("%Y-%m-%dT%H:%M:%S.000").to_string(),
        ),
        DateFormat::Rfc3339 => (
            floor_second(from)
                .format("%Y-%m-%dT%H:%M:%S.000Z")
                .to_string(),
            ceil_second(to).format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
        ),
        DateFormat::Date => {
            let (from_day, to_day) = day_bounds(from, to);
            (
                from_day.format("%Y-%m-%d").to_string(),
                to_day.format("%Y-%m-%d").to_string(),
            )
        }
    }
}

/// The inclusive UTC range an answer to `window_params(format, from, to)` may legitimately
/// cover when the server reads the bounds as UTC: the whole seconds sent for `naive` and
/// `rfc3339`; for `date`, 00:00:00.000 of the `from_date` day to 23:59:59.999 of the `to_date`
/// day (a date-only `to_date` may be read as covering its whole day). An activity outside it
/// reveals a zone shift or a coarser filter than assumed.
pub fn window_bounds(
    format: DateFormat,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    match format {
        DateFormat::Naive | DateFormat::Rfc3339 => (floor_second(from), ceil_second(to)),
        DateFormat::Date => {
            let (from_day, to_day) = day_bounds(from, to);
            let end_of_day = NaiveTime::from_hms_milli_opt(23, 59, 59, 999)
                .expect("23:59:59.999 is a valid time");
            (
                from_day.and_time(NaiveTime::MIN).and_utc(),
                to_day.and_time(end_of_day).and_utc(),
            )
        }
    }
}

/// The next format to try after the API refused `format` with a 400 about dates:
/// `rfc3339` → `naive` → `date` → none.
pub fn step_down(format: DateFormat) -> Option<DateFormat> {
    match format {
        DateFormat::Rfc3339 => Some(DateFormat::Naive),
        DateFormat::Naive => Some(DateFormat::Date),
        DateFormat::Date => None,
    }
}

/// The format's config spelling (`api.date_format`), also its metric label.
pub fn format_name(format: DateFormat) -> &'static str {
    match format {
        DateFormat::Naive => "naive",
        DateFormat::Rfc3339 => "rfc3339",
        DateFormat::Date => "date",
    }
}

/// The format a `format_name` spelling names (e.g. kept in the state), if any.
pub fn format_from_name(name: &str) -> Option<DateFormat> {
    [DateFormat::Rfc3339, DateFormat::Naive, DateFormat::Date]
        .into_iter()
        .find(|f| format_name(*f) == name)
}

/// The `date` days sent for `[from, to]`: `from`'s day, and the day after `to`'s (or `to`'s own
/// when it is exactly midnight).
fn day_bounds(from: DateTime<Utc>, to: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let to_day = if to.time() == NaiveTime::MIN {
        to.date_naive()
    } else {
        to.date_naive()
            .checked_add_days(Days::new(1))
            .unwrap_or(to.date_naive())
    };
    (from.date_naive(), to_day)
}

fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// The next whole second; `t` itself in the last second chrono can represent, where `+ 1 s`
/// would panic (found by the `dates` fuzz target, issue 8).
fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let floored = floor_second(t);
    if floored == t {
        t
    } else {
        floored
            .checked_add_signed(TimeDelta::seconds(1))
            .unwrap_or(t)
    }
}

/// Parses `createdAt` leniently: RFC 3339 with or without a fraction, with `Z` or an offset
/// (`+00:00` or `+0000`), `T` or a space; or a naive `YYYY-MM-DDTHH:MM:SS[.f]`, taken as UTC.
///
/// # Errors
/// A short reason naming the value, for `Quarantined::detail`.
pub fn parse_created_at(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.to_utc());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Ok(dt.to_utc());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(dt.and_utc());
        }
    }
    Err(format!(
        "createdAt {:?} is not an ISO-8601 date-time",
        crate::api::decode::excerpt(t.as_bytes(), 64)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn naive_and_rfc3339_bounds_widen_to_whole_seconds() {
        let (from, to) = (
            utc("2025-03-04T10:15:30.250Z"),
            utc("2025-03-04T11:00:00.001Z"),
        );
        assert_eq!(
            window_params(DateFormat::Naive, from, to),
            (
                "2025-03-04T10:15:30.000".into(),
                "2025-03-04T11:00:01.000".into()
            )
        );
        assert_eq!(
            window_params(DateFormat::Rfc3339, from, to),
            (
                "2025-03-04T10:15:30.000Z".into(),
                "2025-03-04T11:00:01.000Z".into()
            )
        );
        let exact = utc("2025-03-04T11:00:00Z");
        assert_eq!(
            window_params(DateFormat::Naive, exact, exact).1,
            "2025-03-04T11:00:00.000"
        );
    }

    #[test]
    fn date_bounds_floor_from_and_ceil_to_to_the_next_midnight() {
        let from = utc("2025-03-04T10:15:30Z");
        assert_eq!(
            window_params(DateFormat::Date, from, utc("2025-03-05T00:00:01Z")),
            ("2025-03-04".into(), "2025-03-06".into())
        );
        assert_eq!(
            window_params(DateFormat::Date, from, utc("2025-03-05T00:00:00Z")),
            ("2025-03-04".into(), "2025-03-05".into())
        );
        assert_eq!(
            window_params(DateFormat::Date, from, utc("2025-12-31T23:59:59Z")).1,
            "2026-01-01"
        );
    }

    #[test]
    fn bounds_are_what_was_sent_and_a_date_to_covers_its_whole_day() {
        let (from, to) = (
            utc("2025-03-04T10:15:30.250Z"),
            utc("2025-03-04T11:00:00.001Z"),
        );
        for format in [DateFormat::Naive, DateFormat::Rfc3339] {
            assert_eq!(
                window_bounds(format, from, to),
                (utc("2025-03-04T10:15:30Z"), utc("2025-03-04T11:00:01Z"))
            );
        }
        assert_eq!(
            window_bounds(DateFormat::Date, from, to),
            (utc("2025-03-04T00:00:00Z"), utc("2025-03-05T23:59:59.999Z"))
        );
        let midnight = utc("2025-03-05T00:00:00Z");
        assert_eq!(
            window_bounds(DateFormat::Date, from, midnight).1,
            utc("2025-03-05T23:59:59.999Z")
        );
    }

    #[test]
    fn formats_step_down_one_at_a_time() {
        assert_eq!(step_down(DateFormat::Rfc3339), Some(DateFormat::Naive));
        assert_eq!(step_down(DateFormat::Naive), Some(DateFormat::Date));
        assert_eq!(step_down(DateFormat::Date), None);
        assert_eq!(format_name(DateFormat::Rfc3339), "rfc3339");
    }

    #[test]
    fn bounds_at_the_end_of_representable_time_do_not_panic() {
        // Regression (fuzz target `dates`): ceiling a time in chrono's last second overflowed.
        let max = DateTime::<Utc>::MAX_UTC;
        for format in [DateFormat::Naive, DateFormat::Rfc3339, DateFormat::Date] {
            let (_, to) = window_params(format, max, max);
            assert!(to.starts_with(&max.format("%Y-%m-%d").to_string()), "{to}");
            assert!(window_bounds(format, max, max).1 <= max);
        }
    }

    #[test]
    fn created_at_parses_every_iso_form_seen() {
        let want = Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56).unwrap();
        for text in [
            "2024-05-01T12:34:56Z",
            "2024-05-01T12:34:56+00:00",
            "2024-05-01T14:34:56+02:00",
            "2024-05-01T12:34:56+0000",
            "2024-05-01T07:34:56-0500",
            "2024-05-01 12:34:56Z",
            "2024-05-01T12:34:56",
            "2024-05-01 12:34:56",
            " 2024-05-01T12:34:56Z ",
        ] {
            assert_eq!(parse_created_at(text), Ok(want), "{text}");
        }
        let frac = want + TimeDelta::milliseconds(123);
        for text in [
            "2024-05-01T12:34:56.123Z",
            "2024-05-01T12:34:56.123000+00:00",
            "2024-05-01T12:34:56.123",
            "2024-05-01T12:34:56.123+0000",
        ] {
            assert_eq!(parse_created_at(text), Ok(frac), "{text}");
        }
    }

    #[test]
    fn created_at_rejects_what_is_not_a_date_time() {
        for text in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "1714566896",
        ] {
            let err = parse_created_at(text).unwrap_err();
            assert!(err.contains("not an ISO-8601 date-time"), "{err}");
        }
    }
}
