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
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
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

    pub(crate) fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        push_json_str(&mut self.buf, v);
        self
    }

    pub(crate) fn ts(&mut self, key: &str, t: DateTime<Utc>) -> &mut Self {
        self.key(key);
        self.buf.push('"');
        push_ts(&mut self.buf, t);
        self.buf.push('"');
        self
    }

    pub(crate) fn strs(&mut self, key: &str, vs: &[&str]) -> &mut Self {
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

    /// Any JSON value, written verbatim.
    pub(crate) fn value(&mut self, key: &str, v: &Value) -> &mut Self {
        self.key(key);
        self.buf.push_str(&v.to_string());
        self
    }

    /// Pre-serialized JSON, written verbatim.
    pub(crate) fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.buf.push_str(json);
        self
    }

    fn key(&mut self, key: &str) {
        self.buf.push(',');
        push_json_str(&mut self.buf, key);
        self.buf.push(':');
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
