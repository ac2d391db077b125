//! Answer checks: every activities answer is compared with the bounds asked. An activity
//! outside them (stored anyway: dedupe makes that safe) reveals that the API does not filter
//! the way the cursor rule assumes; `diagnose` names the likely cause so the poller can switch
//! to the behaviour that is safe for it (API notes §3.3, issue 12).

use chrono::{DateTime, Utc};

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The farthest any time zone lies from UTC (UTC+14).
const MAX_ZONE_MS: i64 = 14 * 3_600_000;

/// Start of the UTC day holding `ms`.
pub fn floor_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// What one answer held relative to the range it was expected to cover.
#[derive(Debug, Clone, Copy)]
pub struct AnswerCheck {
    /// The range asked, as the server would read it in UTC (inclusive).
    asked: (i64, i64),
    /// What the answer may cover given what is already known (pads, whole days).
    tolerated: (i64, i64),
    pub before: u64,
    pub after: u64,
    /// Farthest outside, in ms (0 when none).
    pub max_before: i64,
    pub max_after: i64,
    /// Earliest and latest `createdAt` in the answer.
    min: i64,
    max: i64,
    pub count: u64,
    /// When the answer was asked for: no window holds anything after it.
    now: i64,
}

/// The likely cause of activities outside the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnosis {
    /// The answer spans more than the window asked, within the UTC days it touches: the API
    /// filters by whole days (ignores the time part).
    WholeDays,
    /// The answer is no wider than the window but shifted by about this many ms (positive:
    /// later): a zone reading of zone-less bounds.
    Shift(i64),
    /// Something else (e.g. bounds ignored altogether).
    Other,
}

impl AnswerCheck {
    /// A check of an answer to `asked` (inclusive, UTC), tolerating `pad_ms` on each side and,
    /// with `whole_days`, the whole UTC days the range touches.
    pub fn new(asked: (DateTime<Utc>, DateTime<Utc>), pad_ms: i64, whole_days: bool) -> Self {
        let asked = (asked.0.timestamp_millis(), asked.1.timestamp_millis());
        let mut tolerated = (asked.0 - pad_ms, asked.1 + pad_ms);
        if whole_days {
            tolerated = (floor_day(tolerated.0), floor_day(tolerated.1) + DAY_MS - 1);
        }
        AnswerCheck {
            asked,
            tolerated,
            before: 0,
            after: 0,
            max_before: 0,
            max_after: 0,
            min: i64::MAX,
            max: i64::MIN,
            count: 0,
            now: i64::MAX,
        }
    }

    /// The time the answer was asked for (Unix ms): the part of a window after it is the
    /// future, empty whatever the API's reading, so it says nothing about a shift.
    pub fn asked_at(mut self, now_ms: i64) -> Self {
        self.now = now_ms;
        self
    }

    /// Notes one activity's `createdAt`.
    pub fn observe(&mut self, created_ms: i64) {
        self.count += 1;
        self.min = self.min.min(created_ms);
        self.max = self.max.max(created_ms);
        if created_ms < self.tolerated.0 {
            self.before += 1;
            self.max_before = self.max_before.max(self.asked.0 - created_ms);
        } else if created_ms > self.tolerated.1 {
            self.after += 1;
            self.max_after = self.max_after.max(created_ms - self.asked.1);
        }
    }

    /// The oldest and newest `createdAt` seen (`None` for an empty answer).
    pub fn span(&self) -> Option<(i64, i64)> {
        (self.count > 0).then_some((self.min, self.max))
    }

    /// Whether the answer holds an activity of the last UTC day of the range asked: for
    /// date-only bounds, proof that `to_date` covers its whole day.
    pub fn reaches_last_day(&self) -> bool {
        self.count > 0 && self.max >= floor_day(self.asked.1)
    }

    /// Activities outside what was tolerated.
    pub fn violations(&self) -> u64 {
        self.before + self.after
    }

    /// The likely cause, when there were violations.
    pub fn diagnose(&self) -> Option<Diagnosis> {
        if self.violations() == 0 {
            return None;
        }
        let (lo, hi) = self.asked;
        let span = self.max - self.min;
        let in_days = self.min >= floor_day(lo) && self.max < floor_day(hi) + DAY_MS;
        if span > hi - lo + 1000 {
            return Some(if in_days {
                Diagnosis::WholeDays
            } else {
                Diagnosis::Other
            });
        }
        // No wider than asked: a shift. One-sided by construction of a shifted window. How
        // far lies between the farthest activity outside and the gap the shift left at the
        // other end (a later window holds nothing in its first hours; the newest part of a
        // window can be empty simply because it is the future): the larger is the estimate.
        let shift = if self.after > 0 && self.before == 0 {
            self.max_after.max(self.min - lo)
        } else if self.before > 0 && self.after == 0 {
            -self.max_before.max(hi.min(self.now) - self.max)
        } else {
            return Some(Diagnosis::Other);
        };
        // No zone is more than 14 h from UTC: a larger shift is no zone reading, and an
        // overhang inside the days asked is whole-day filtering.
        if shift.abs() > MAX_ZONE_MS {
            if in_days {
                return Some(Diagnosis::WholeDays);
            }
            // The gap says more than 14 h, the overhang no more: the gap is where the API
            // holds nothing (history that starts inside the window), so the shift lies
            // between the overhang and 14 h. Only the farthest zone is a safe pad.
            let overhang = self.max_after.max(self.max_before);
            if overhang <= MAX_ZONE_MS {
                return Some(Diagnosis::Shift(MAX_ZONE_MS * shift.signum()));
            }
            return Some(Diagnosis::Other);
        }
        Some(Diagnosis::Shift(shift))
    }
}

/// A pad that covers a shift of `shift_ms`: whole hours, plus one for zones on the half hour.
pub fn pad_for(shift_ms: i64) -> i64 {
    let hours = (shift_ms.abs() + 3_599_999) / 3_600_000;
    (hours + 1) * 3_600_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }
    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }
    fn check(asked: (&str, &str), pad: i64, days: bool, times: &[&str]) -> AnswerCheck {
        let mut c = AnswerCheck::new((at(asked.0), at(asked.1)), pad, days);
        for x in times {
            c.observe(t(x));
        }
        c
    }
    const W: (&str, &str) = ("2026-03-01T10:00:00Z", "2026-03-01T10:16:00Z");

    #[test]
    fn an_exact_answer_has_no_violation() {
        let c = check(
            W,
            0,
            false,
            &["2026-03-01T10:00:00Z", "2026-03-01T10:16:00Z"],
        );
        assert_eq!((c.violations(), c.diagnose()), (0, None));
    }

    #[test]
    fn a_window_read_eight_hours_late_is_a_shift_of_plus_eight_hours() {
        // A server reading zone-less bounds at UTC-8 answers [18:00, 18:16].
        let c = check(
            W,
            0,
            false,
            &["2026-03-01T18:01:00Z", "2026-03-01T18:15:30Z"],
        );
        assert_eq!(c.after, 2);
        let Some(Diagnosis::Shift(s)) = c.diagnose() else {
            panic!("{:?}", c.diagnose())
        };
        // The gap at the start (8 h 1 min) is the better estimate than the overhang (7 h 59.5).
        assert_eq!(s, 8 * 3_600_000 + 60_000);
        assert_eq!(pad_for(s), 10 * 3_600_000);
        assert_eq!(pad_for(8 * 3_600_000), 9 * 3_600_000);
    }

    #[test]
    fn a_window_read_five_hours_early_is_a_negative_shift() {
        let c = check(
            W,
            0,
            false,
            &["2026-03-01T05:02:00Z", "2026-03-01T10:01:00Z"],
        );
        // 05:02 is outside, 10:01 inside: span 5 h > 16 min, all inside the day → whole days.
        assert_eq!(c.diagnose(), Some(Diagnosis::WholeDays));
        let c = check(
            W,
            0,
            false,
            &["2026-03-01T05:02:00Z", "2026-03-01T05:10:00Z"],
        );
        assert_eq!(c.before, 2);
        let Some(Diagnosis::Shift(s)) = c.diagnose() else {
            panic!()
        };
        assert!(s < -4 * 3_600_000, "{s}");
    }

    #[test]
    fn the_future_part_of_a_window_is_no_gap() {
        // Date-only bounds at the live edge ask up to tomorrow's end; a server reading them at
        // UTC+5 answers from yesterday 19:00 to now. The empty rest is the future, not a shift.
        let asked = ("2026-03-01T00:00:00Z", "2026-03-02T23:59:59.999Z");
        let times = [
            "2026-02-28T19:30:00Z",
            "2026-02-28T23:00:00Z",
            "2026-03-01T17:00:00Z",
        ];
        let mut c = AnswerCheck::new((at(asked.0), at(asked.1)), 0, false)
            .asked_at(t("2026-03-01T17:05:00Z"));
        for x in times {
            c.observe(t(x));
        }
        let Some(Diagnosis::Shift(s)) = c.diagnose() else {
            panic!("{:?}", c.diagnose())
        };
        assert_eq!(
            s,
            -(4 * 3_600_000 + 30 * 60_000),
            "the overhang: 4 h 30 min before"
        );
        assert_eq!(pad_for(s), 6 * 3_600_000);
    }

    #[test]
    fn whole_days_are_recognised_and_then_tolerated() {
        let times = [
            "2026-03-01T00:00:05Z",
            "2026-03-01T10:05:00Z",
            "2026-03-01T23:59:59Z",
        ];
        let c = check(W, 0, false, &times);
        assert_eq!((c.before, c.after), (1, 1));
        assert_eq!(c.diagnose(), Some(Diagnosis::WholeDays));
        let c = check(W, 0, true, &times);
        assert_eq!(c.violations(), 0, "known whole days are tolerated");
    }

    #[test]
    fn a_known_pad_is_tolerated_but_a_larger_shift_is_not() {
        let c = check(W, 9 * 3_600_000, false, &["2026-03-01T18:01:00Z"]);
        assert_eq!(c.violations(), 0);
        let c = check(W, 3_600_000, false, &["2026-03-01T18:01:00Z"]);
        assert_eq!(c.violations(), 1);
    }

    #[test]
    fn an_overhang_past_midnight_with_an_empty_start_is_the_farthest_zone() {
        // A UTC-8 reading of [00:20, 18:20] when the API holds only the six hours before
        // 00:20 the next day: everything answered lies after the window, up to 5 h 59 min,
        // and its first 18 h are empty because nothing older exists. The shift is somewhere
        // between the overhang and 14 h; it crosses a UTC midnight, so it is no whole day.
        let c = check(
            ("2026-12-05T00:20:00Z", "2026-12-05T18:20:00Z"),
            0,
            false,
            &["2026-12-05T18:21:00Z", "2026-12-06T00:19:00Z"],
        );
        assert_eq!((c.before, c.after), (0, 2));
        assert_eq!(c.diagnose(), Some(Diagnosis::Shift(MAX_ZONE_MS)));
        assert!(pad_for(MAX_ZONE_MS) >= 8 * 3_600_000);
        // The same overhang within the day asked is whole-day filtering.
        let c = check(
            ("2026-12-05T00:20:00Z", "2026-12-05T12:20:00Z"),
            0,
            false,
            &["2026-12-05T18:21:00Z", "2026-12-05T23:19:00Z"],
        );
        assert_eq!(c.diagnose(), Some(Diagnosis::WholeDays));
        // An overhang beyond any zone is no zone reading.
        let c = check(
            ("2026-12-01T00:20:00Z", "2026-12-01T18:20:00Z"),
            0,
            false,
            &["2026-12-05T18:21:00Z"],
        );
        assert_eq!(c.diagnose(), Some(Diagnosis::Other));
    }

    #[test]
    fn far_outside_on_both_sides_is_other() {
        let c = check(
            W,
            0,
            false,
            &["2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z"],
        );
        assert_eq!(c.diagnose(), Some(Diagnosis::Other));
    }
}
