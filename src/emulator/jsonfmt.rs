//! Small, allocation-light writers for the pre-serialized activity JSON and the API's
//! timestamp format (`YYYY-MM-DDTHH:MM:SSZ`, no fraction), plus seeded UUIDs. Used by the
//! generator (millions of rows, so no `serde_json::Value` per row) and by the handlers.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;
use std::fmt::Write as _;

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(buf: &mut String, s: &str) {
    buf.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => buf.push_str("\\\""),
                '\\' => buf.push_str("\\\\"),
                '\n' => buf.push_str("\\n"),
                '\r' => buf.push_str("\\r"),
                '\t' => buf.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                }
                c => buf.push(c),
            }
        }
    }
    buf.push('"');
}

fn push_2(buf: &mut String, v: u32) {
    buf.push(char::from(b'0' + (v / 10) as u8));
    buf.push(char::from(b'0' + (v % 10) as u8));
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SSZ` (the API's `createdAt` form), without quotes.
pub(crate) fn push_ts(buf: &mut String, t: DateTime<Utc>) {
    let y = t.year();
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push_2(buf, y / 100);
        push_2(buf, y % 100);
    } else {
        let _ = write!(buf, "{y:04}");
    }
    buf.push('-');
    push_2(buf, t.month());
    buf.push('-');
    push_2(buf, t.day());
    buf.push('T');
    push_2(buf, t.hour());
    buf.push(':');
    push_2(buf, t.minute());
    buf.push(':');
    push_2(buf, t.second());
    buf.push('Z');
}

/// `t` formatted as the API formats every timestamp: `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(20);
    push_ts(&mut s, t);
    s
}

/// `ms` (Unix milliseconds) as a `DateTime`, clamped into chrono's range.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A version-4 UUID drawn from a seeded generator (so seeded data is reproducible).
pub(crate) fn uuid(rng: &mut fastrand::Rng) -> String {
    let mut s = String::with_capacity(36);
    push_uuid(&mut s, rng);
    s
}

/// Appends a seeded version-4 UUID (via core's integer hex formatting, which stays fast in
/// debug builds: this runs a million times in bulk generation).
pub(crate) fn push_uuid(buf: &mut String, rng: &mut fastrand::Rng) {
    let (hi, lo) = (rng.u64(..), rng.u64(..));
    let hi = hi & !0xF000 | 0x4000; // version 4
    let lo = lo & !(0xC << 60) | (0x8 << 60); // RFC 4122 variant
    let _ = write!(
        buf,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    );
}

/// Remembers the `YYYY-MM-DDT` prefix of the last day formatted, so bulk generation formats
/// timestamps without calendar arithmetic per row.
#[derive(Debug, Default)]
pub(crate) struct TsCache {
    day: Option<i64>,
    prefix: String,
}

impl TsCache {
    /// Appends Unix second `secs` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub(crate) fn push(&mut self, buf: &mut String, secs: i64) {
        let (day, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
        if self.day != Some(day) {
            self.prefix.clear();
            push_ts(&mut self.prefix, from_ms(day * 86_400_000));
            self.prefix.truncate(11);
            self.day = Some(day);
        }
        buf.push_str(&self.prefix);
        push_2(buf, sod / 3600);
        buf.push(':');
        push_2(buf, sod / 60 % 60);
        buf.push(':');
        push_2(buf, sod % 60);
        buf.push('Z');
    }
}

/// `s` JSON-escaped, without the surrounding quotes (for values written many times).
pub(crate) fn escaped(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    push_json_str(&mut q, s);
    q[1..q.len() - 1].to_owned()
}

/// An alphanumeric token of `len` characters from a seeded generator (secrets, passwords).
pub(crate) fn token(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len).map(|_| rng.alphanumeric()).collect()
}

/// Builds one activity object as a JSON string with `id` first, so the stored row can find its
/// id again by position (`{"id":` is 6 bytes, the id token ends at `id_end`).
pub(crate) struct ActivityJson {
    buf: String,
    id_end: usize,
}

impl ActivityJson {
    /// Starts `{"id":"<id>"`.
    pub(crate) fn new(id: &str) -> Self {
        let mut buf = String::with_capacity(420);
        buf.push_str("{\"id\":");
        push_json_str(&mut buf, id);
        let id_end = buf.len();
        ActivityJson { buf, id_end }
    }

    /// Starts the object with an id that is any JSON value (kept verbatim).
    pub(crate) fn with_raw_id(id: &Value) -> Self {
        let mut buf = String::with_capacity(420);
        buf.push_str("{\"id\":");
        buf.push_str(&id.to_string());
        let id_end = buf.len();
        ActivityJson { buf, id_end }
    }

    pub(crate) fn str(&mut self, key: &'static str, v: &str) -> &mut Self {
        self.key(key);
        push_json_str(&mut self.buf, v);
        self
    }

    /// A string value that needs no escaping (ASCII literals, UUIDs, `escaped` text).
    pub(crate) fn str_safe(&mut self, key: &'static str, v: &str) -> &mut Self {
        self.key(key);
        self.buf.push('"');
        self.buf.push_str(v);
        self.buf.push('"');
        self
    }

    /// `createdAt`-style timestamp of Unix second `secs`, through a day cache.
    pub(crate) fn ts_secs(
        &mut self,
        key: &'static str,
        secs: i64,
        cache: &mut TsCache,
    ) -> &mut Self {
        self.key(key);
        self.buf.push('"');
        cache.push(&mut self.buf, secs);
        self.buf.push('"');
        self
    }

    pub(crate) fn ts(&mut self, key: &'static str, t: DateTime<Utc>) -> &mut Self {
        self.key(key);
        self.buf.push('"');
        push_ts(&mut self.buf, t);
        self.buf.push('"');
        self
    }

    pub(crate) fn strs(&mut self, key: &'static str, vs: &[&str]) -> &mut Self {
        self.key(key);
        self.buf.push('[');
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            push_json_str(&mut self.buf, v);
        }
        self.buf.push(']');
        self
    }

    /// Any JSON value under any key (escaped), written verbatim.
    pub(crate) fn value(&mut self, key: &str, v: &Value) -> &mut Self {
        self.buf.push(',');
        push_json_str(&mut self.buf, key);
        self.buf.push(':');
        self.buf.push_str(&v.to_string());
        self
    }

    /// Pre-serialized JSON, written verbatim.
    pub(crate) fn raw(&mut self, key: &'static str, json: &str) -> &mut Self {
        self.key(key);
        self.buf.push_str(json);
        self
    }

    /// Keys are literals from this crate: plain ASCII, never escaped.
    fn key(&mut self, key: &'static str) {
        self.buf.push_str(",\"");
        self.buf.push_str(key);
        self.buf.push_str("\":");
    }

    /// Closes the object: `(json, id_end)`.
    pub(crate) fn finish(mut self) -> (String, usize) {
        self.buf.push('}');
        (self.buf, self.id_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_no_fraction() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T02:03:04.987Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ts(t), "2024-05-01T02:03:04Z");
    }

    #[test]
    fn seeded_uuids_are_v4_and_cached_timestamps_match() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..100 {
            let u = uuid::Uuid::parse_str(&uuid(&mut rng)).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
        let mut cache = TsCache::default();
        for secs in [0_i64, 59, 86_399, 86_400, 1_709_634_030, 1_709_634_031, -1] {
            let mut s = String::new();
            cache.push(&mut s, secs);
            assert_eq!(s, ts(from_ms(secs * 1000)), "{secs}");
        }
    }

    #[test]
    fn activity_json_is_valid_and_escaped() {
        let mut a = ActivityJson::new("a\"1");
        a.str("name", "Zoë \\ 東京\n").strs("ids", &["x", "y"]);
        let (json, id_end) = a.finish();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["id"], "a\"1");
        assert_eq!(v["name"], "Zoë \\ 東京\n");
        assert_eq!(&json[6..id_end], "\"a\\\"1\"");
    }
}
