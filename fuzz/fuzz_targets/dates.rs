//! Fuzz target `dates`: every date parser and formatter on the input paths — `createdAt`
//! (`api::dates::parse_created_at`), the encoders' time reader and writer
//! (`format::view::parse_time_ms` / `push_rfc3339_ms`), the activity window bounds
//! (`api::dates::window_params`, all three `date_format`s) and the HTTP-date / seconds retry
//! headers (`api::reset_after` for the API, `sinks::http::retry_after` for the sinks).
//!
//! Input: 32 bytes of numbers (window bounds as seconds + nanoseconds, a time in ms), the rest
//! as text.
//! Asserts: no panic; a parsed `createdAt` reads back from its own naive rendering; when both
//! parsers accept a text they agree to the millisecond (a leap second `:60` may differ by 1 s);
//! `push_rfc3339_ms` output reads back to the same ms (years 0000–9999); window bounds only
//! widen `[from, to]` and read back; retry waits stay under their caps.

#![no_main]

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clickhouse_audit_exporter::api::dates::{parse_created_at, window_params};
use clickhouse_audit_exporter::api::reset_after;
use clickhouse_audit_exporter::config::DateFormat;
use clickhouse_audit_exporter::format::view::{parse_time_ms, push_rfc3339_ms};
use clickhouse_audit_exporter::sinks::http::{MAX_RETRY_AFTER, retry_after};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in ms.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;
/// `MAX_RESET_WAIT` in src/api/response.rs.
const MAX_RESET_WAIT: Duration = Duration::from_secs(15 * 60);

fn check_text(text: &str) {
    let created = parse_created_at(text);
    match &created {
        Ok(t) => {
            let naive = t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string();
            assert_eq!(
                parse_created_at(&naive).as_ref(),
                Ok(t),
                "{text:?} parsed, but its naive rendering {naive:?} does not read back"
            );
        }
        Err(e) => {
            assert!(e.contains("not an ISO-8601 date-time"), "{e}");
            assert!(
                e.len() < 1024,
                "the reason quotes an excerpt, not the value"
            );
        }
    }
    if let Some(ms) = parse_time_ms(text) {
        let mut out = Vec::new();
        push_rfc3339_ms(&mut out, ms);
        assert_eq!(out.len(), 24, "YYYY-MM-DDTHH:MM:SS.mmmZ");
        let again = std::str::from_utf8(&out).expect("ASCII");
        if (MIN_MS..=MAX_MS).contains(&ms) {
            assert_eq!(parse_time_ms(again), Some(ms), "{text:?} -> {again}");
        }
        if let Ok(t) = &created {
            let diff = t.timestamp_millis() - ms;
            let leap = text.contains(":60");
            assert!(
                diff == 0 || (leap && diff.abs() <= 1000),
                "{text:?}: parse_created_at says {t:?}, parse_time_ms says {ms} ms"
            );
        }
    }
}

fn check_retry_headers(text: &str) {
    let Ok(value) = HeaderValue::from_str(text) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, value.clone());
    if let Some(wait) = retry_after(&headers) {
        assert!(wait <= MAX_RETRY_AFTER);
    }
    headers.insert("x-ratelimit-reset", value);
    if let Some(wait) = reset_after(&headers) {
        assert!(wait <= MAX_RESET_WAIT);
    }
}

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    let secs = secs.clamp(
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    DateTime::from_timestamp(secs, nanos % 1_000_000_000).expect("in range")
}

fn check_window(from: DateTime<Utc>, to: DateTime<Utc>) {
    let readable = |t: DateTime<Utc>| {
        (MIN_MS + 86_400_000..=MAX_MS - 86_400_000).contains(&t.timestamp_millis())
    };
    for format in [DateFormat::Naive, DateFormat::Rfc3339, DateFormat::Date] {
        let (f, t) = window_params(format, from, to);
        if !(readable(from) && readable(to)) {
            continue; // only "no panic" for bounds no API call will ever carry
        }
        match format {
            DateFormat::Naive | DateFormat::Rfc3339 => {
                let f = parse_created_at(&f).expect("from_date reads back");
                let t = parse_created_at(&t).expect("to_date reads back");
                assert!(f <= from && t >= to, "{format:?} window shrank");
                assert!(from - f < chrono::TimeDelta::seconds(1));
                assert!(t - to < chrono::TimeDelta::seconds(1));
            }
            DateFormat::Date => {
                let f = NaiveDate::parse_from_str(&f, "%Y-%m-%d").expect("from day");
                let t = NaiveDate::parse_from_str(&t, "%Y-%m-%d").expect("to day");
                assert!(
                    f.and_time(NaiveTime::MIN).and_utc() <= from,
                    "date from_date"
                );
                assert!(t.and_time(NaiveTime::MIN).and_utc() >= to, "date to_date");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (nums, rest) = data.split_at(32);
    let num = |i: usize| i64::from_le_bytes(nums[i..i + 8].try_into().expect("8 bytes"));
    let nanos = |i: usize| u32::from_le_bytes(nums[i..i + 4].try_into().expect("4 bytes"));
    let (from, to, ms) = (at(num(0), nanos(8)), at(num(12), nanos(20)), num(24));
    check_window(from, to);
    let mut out = Vec::new();
    let ms = ms.clamp(MIN_MS, MAX_MS);
    push_rfc3339_ms(&mut out, ms);
    let text = std::str::from_utf8(&out).expect("ASCII");
    assert_eq!(parse_time_ms(text), Some(ms), "{text}");
    assert_eq!(
        parse_created_at(text).map(|t| t.timestamp_millis()),
        Ok(ms),
        "{text}"
    );

    let text = String::from_utf8_lossy(rest);
    check_text(&text);
    check_retry_headers(&text);
});
