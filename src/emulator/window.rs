//! Window semantics of the activity list: the switches for every plausible reading of
//! `from_date`/`to_date` the vendor leaves undocumented (API notes §3.2–3.3). `WindowSemantics`
//! is plain data set in `EmulatorOptions::window` or at runtime through `Emulator`; it turns
//! parsed values (`dates.rs`) into millisecond bounds and decides which rows an answer shows.
//! `handlers::activities` consults it on every list and get.

use chrono::{FixedOffset, NaiveDate};
use std::str::FromStr;
use std::time::Duration;

use super::dates::DateParam;

/// Which `from_date`/`to_date` forms pass validation (the rest get 400 `BAD_REQUEST: …date…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateValidation {
    /// What the live API was seen to accept (the default): `YYYY-MM-DD`, or RFC 3339 with
    /// exactly three fractional digits and `Z` or an offset (`2026-09-08T10:53:17.000Z`).
    /// Zone-less date-times are refused: their acceptance live is unknown.
    #[default]
    Strict,
    /// Any ISO form: `YYYY-MM-DD`, naive `YYYY-MM-DDTHH:MM:SS[.f…]`, RFC 3339 with 0–9
    /// fractional digits.
    Lenient,
    /// Only `YYYY-MM-DD` (clickhousectl's validation); every date-time is a 400.
    DateOnly,
}

impl DateValidation {
    /// The CLI spelling (`strict`, `lenient`, `date-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            DateValidation::Strict => "strict",
            DateValidation::Lenient => "lenient",
            DateValidation::DateOnly => "date-only",
        }
    }
}

impl FromStr for DateValidation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(DateValidation::Strict),
            "lenient" => Ok(DateValidation::Lenient),
            "date-only" => Ok(DateValidation::DateOnly),
            other => Err(format!(
                "unknown date validation '{other}': expected strict, lenient or date-only"
            )),
        }
    }
}

/// How the activity list reads its window. `Default` = the strictest reading the live evidence
/// supports and otherwise exact: strict validation, exact bounds read as UTC, no cap, no delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowSemantics {
    /// Which date forms are accepted.
    pub dates: DateValidation,
    /// The time part (and zone) of a date-time is ignored: the window is the whole days from
    /// `from_date`'s written date to `to_date`'s, both inclusive (UTC days, or days at
    /// `zone_offset`).
    pub whole_days: bool,
    /// Zone-less values (naive date-times and `YYYY-MM-DD`) are local time at this UTC offset
    /// (`None` = UTC). Values with `Z` or an offset are unaffected. Naive date-times still need
    /// `DateValidation::Lenient` to pass validation.
    pub zone_offset: Option<FixedOffset>,
    /// Answers hold at most the N newest activities of the window, silently (no error, no hint).
    pub cap: Option<usize>,
    /// Every activity becomes visible only this long after its `createdAt`, on top of its own
    /// visibility time (applies to existing, generated and added rows alike).
    pub visibility_delay: Duration,
}

/// Which end of the window a value is for; a whole day widens to its start or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    From,
    To,
}

impl WindowSemantics {
    /// The inclusive bound in Unix milliseconds for one parsed value.
    pub(crate) fn bound_ms(&self, p: DateParam, bound: Bound) -> i64 {
        let offset = self
            .zone_offset
            .map_or(0, |o| i64::from(o.local_minus_utc()) * 1000);
        let p = match (self.whole_days, p) {
            (true, DateParam::Naive(t)) => DateParam::Day(t.date()),
            (true, DateParam::At(t)) => DateParam::Day(t.date_naive()),
            (_, p) => p,
        };
        match (p, bound) {
            (DateParam::At(t), _) => t.timestamp_millis(),
            (DateParam::Naive(t), _) => t.and_utc().timestamp_millis() - offset,
            (DateParam::Day(d), Bound::From) => day_start_ms(d) - offset,
            (DateParam::Day(d), Bound::To) => match d.succ_opt() {
                Some(next) => day_start_ms(next) - offset - 1,
                None => i64::MAX,
            },
        }
    }

    /// Rows created after this (Unix ms) are still hidden by `visibility_delay` at `now_ms`;
    /// `None` without a delay (rows then follow only their own visibility time).
    pub(crate) fn created_limit_ms(&self, now_ms: i64) -> Option<i64> {
        if self.visibility_delay.is_zero() {
            return None;
        }
        let delay = i64::try_from(self.visibility_delay.as_millis()).unwrap_or(i64::MAX);
        Some(now_ms.saturating_sub(delay))
    }

    /// How many rows (newest first) an answer may hold.
    pub(crate) fn limit(&self) -> usize {
        self.cap.unwrap_or(usize::MAX)
    }
}

fn day_start_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis()
}

/// Parses a signed UTC offset for the CLI: `-8h`, `+5h30m`, `0` (humantime with a sign) or
/// `-08:00` / `+05:30`.
///
/// # Errors
/// A one-line reason when the text is neither form or the offset is a day or more.
pub fn parse_zone_offset(text: &str) -> Result<FixedOffset, String> {
    let t = text.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let secs = if let Some((h, m)) = rest.split_once(':') {
        match (h.parse::<i32>(), m.parse::<i32>()) {
            (Ok(h), Ok(m)) if (0..60).contains(&m) && h >= 0 => h * 3600 + m * 60,
            _ => {
                return Err(format!(
                    "bad zone offset '{text}': expected e.g. -08:00 or -8h"
                ));
            }
        }
    } else if rest == "0" {
        0
    } else {
        let d = humantime::parse_duration(rest)
            .map_err(|e| format!("bad zone offset '{text}': {e} (expected e.g. -8h or +05:30)"))?;
        i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
    };
    FixedOffset::east_opt(sign * secs)
        .ok_or_else(|| format!("bad zone offset '{text}': must be less than a day"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::dates::parse;
    use chrono::DateTime;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn bounds(w: &WindowSemantics, from: &str, to: &str) -> (i64, i64) {
        let f = parse("from_date", from, w.dates).unwrap();
        let t = parse("to_date", to, w.dates).unwrap();
        (w.bound_ms(f, Bound::From), w.bound_ms(t, Bound::To))
    }

    fn at_offset(hours: i32) -> WindowSemantics {
        WindowSemantics {
            dates: DateValidation::Lenient,
            zone_offset: FixedOffset::east_opt(hours * 3600),
            ..WindowSemantics::default()
        }
    }

    #[test]
    fn default_bounds_are_exact_utc() {
        let w = WindowSemantics::default();
        assert_eq!(
            bounds(
                &w,
                "2026-01-01T10:00:00.250Z",
                "2026-01-01T12:00:00.000+02:00"
            ),
            (ms("2026-01-01T10:00:00.250Z"), ms("2026-01-01T10:00:00Z"))
        );
        assert_eq!(
            bounds(&w, "2026-01-01", "2026-01-01"),
            (ms("2026-01-01T00:00:00Z"), ms("2026-01-01T23:59:59.999Z"))
        );
    }

    #[test]
    fn zone_offset_shifts_date_only_values_both_signs() {
        assert_eq!(
            bounds(&at_offset(-8), "2026-01-01", "2026-01-01"),
            (ms("2026-01-01T08:00:00Z"), ms("2026-01-02T07:59:59.999Z"))
        );
        assert_eq!(
            bounds(&at_offset(5), "2026-01-01", "2026-01-01"),
            (ms("2025-12-31T19:00:00Z"), ms("2026-01-01T18:59:59.999Z"))
        );
    }

    #[test]
    fn zone_offset_shifts_naive_values_but_not_zoned_ones() {
        let west = at_offset(-8);
        assert_eq!(
            bounds(&west, "2026-01-01T10:00:00.000", "2026-01-01T10:00:00Z"),
            (ms("2026-01-01T18:00:00Z"), ms("2026-01-01T10:00:00Z"))
        );
        let east = at_offset(2);
        assert_eq!(
            bounds(
                &east,
                "2026-01-01T10:00:00",
                "2026-01-01T10:00:00.000-01:00"
            ),
            (ms("2026-01-01T08:00:00Z"), ms("2026-01-01T11:00:00Z"))
        );
    }

    #[test]
    fn whole_days_drop_the_time_part() {
        let w = WindowSemantics {
            whole_days: true,
            ..WindowSemantics::default()
        };
        assert_eq!(
            bounds(
                &w,
                "2026-01-01T10:00:00.000Z",
                "2026-01-03T00:00:01.000+02:00"
            ),
            (ms("2026-01-01T00:00:00Z"), ms("2026-01-03T23:59:59.999Z"))
        );
        // With a zone offset the days are local days.
        let local = WindowSemantics {
            whole_days: true,
            ..at_offset(-8)
        };
        assert_eq!(
            bounds(&local, "2026-01-01T23:00:00", "2026-01-01"),
            (ms("2026-01-01T08:00:00Z"), ms("2026-01-02T07:59:59.999Z"))
        );
    }

    #[test]
    fn delay_moves_the_created_limit_and_cap_sets_the_limit() {
        let w = WindowSemantics {
            visibility_delay: Duration::from_secs(40 * 60),
            cap: Some(3),
            ..WindowSemantics::default()
        };
        assert_eq!(w.created_limit_ms(10_000_000), Some(10_000_000 - 2_400_000));
        assert_eq!(w.limit(), 3);
        let none = WindowSemantics::default();
        assert_eq!(none.created_limit_ms(5), None);
        assert_eq!(none.limit(), usize::MAX);
    }

    #[test]
    fn zone_offsets_parse_with_a_sign() {
        let east = |s| FixedOffset::east_opt(s).unwrap();
        assert_eq!(parse_zone_offset("-8h"), Ok(east(-8 * 3600)));
        assert_eq!(parse_zone_offset("+5h 30m"), Ok(east(5 * 3600 + 1800)));
        assert_eq!(parse_zone_offset("-08:00"), Ok(east(-8 * 3600)));
        assert_eq!(parse_zone_offset("05:30"), Ok(east(5 * 3600 + 1800)));
        assert_eq!(parse_zone_offset("0"), Ok(east(0)));
        for bad in ["", "-", "west", "25h", "-8:75"] {
            assert!(parse_zone_offset(bad).is_err(), "{bad}");
        }
        assert_eq!("date-only".parse(), Ok(DateValidation::DateOnly));
        assert!("loose".parse::<DateValidation>().is_err());
        for v in [
            DateValidation::Strict,
            DateValidation::Lenient,
            DateValidation::DateOnly,
        ] {
            assert_eq!(v.as_str().parse(), Ok(v));
        }
    }
}
