//! Lenient, borrowed views of event payloads for the SIEM formats (ecs, ocsf, cef), plus the
//! time helpers they share. One serde pass reads the fields a format maps; strings without
//! escapes are borrowed, not copied. A field of an unexpected JSON type reads as absent (numbers
//! and booleans as their text) so that any payload renders: formats never fail an event.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A string field read leniently.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The value if present and not blank.
    pub fn non_empty(&self) -> Option<&str> {
        self.get().filter(|s| !s.trim().is_empty())
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(if v { "true" } else { "false" })))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor).map(Str)
    }
}

/// A list of strings read leniently: items are read as `Str` (absent ones skipped), a lone string is a list of
/// one, anything else is empty.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StrList<'a>(pub Vec<Cow<'a, str>>);

impl<'a> StrList<'a> {
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(|s| s.as_ref())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| s.as_ref())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Vec<Cow<'de, str>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Str(item)) = seq.next_element::<Str<'de>>()? {
                    out.extend(item);
                }
                Ok(out)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(vec![Cow::Borrowed(v)])
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(vec![Cow::Owned(v.to_owned())])
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Vec::new())
            }
        }
        d.deserialize_any(ListVisitor).map(StrList)
    }
}

/// The activity fields the SIEM formats map (vendor spec `Activity`, all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivityView<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub created_at: Str<'a>,
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub actor_type: Str<'a>,
    #[serde(borrow)]
    pub actor_id: Str<'a>,
    #[serde(borrow)]
    pub actor_details: Str<'a>,
    #[serde(borrow)]
    pub actor_ip_address: Str<'a>,
    #[serde(borrow)]
    pub organization_id: Str<'a>,
    #[serde(borrow)]
    pub service_id: Str<'a>,
    #[serde(borrow)]
    pub user_agent: Str<'a>,
    #[serde(borrow)]
    pub target_key_id: Str<'a>,
    #[serde(borrow)]
    pub key_update_type: Str<'a>,
    #[serde(borrow)]
    pub target_role_ids: StrList<'a>,
    #[serde(borrow)]
    pub target_role_names: StrList<'a>,
    #[serde(borrow)]
    pub target_actor_ids: StrList<'a>,
    #[serde(borrow)]
    pub target_resource_ids: StrList<'a>,
}

/// An inventory event body (issue #6): `resource`, `resource_id`, `action`, `changed`,
/// `before`, `after`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InventoryView<'a> {
    #[serde(borrow)]
    pub resource: Str<'a>,
    #[serde(borrow)]
    pub resource_id: Str<'a>,
    #[serde(borrow)]
    pub action: Str<'a>,
    #[serde(borrow)]
    pub changed: StrList<'a>,
    #[serde(borrow)]
    pub before: Option<&'a RawValue>,
    #[serde(borrow)]
    pub after: Option<&'a RawValue>,
}

impl InventoryView<'_> {
    /// The object's `name` from `after` (else `before`), if it has one.
    pub fn object_name(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(borrow, default)]
            name: Str<'a>,
        }
        [self.after, self.before]
            .into_iter()
            .flatten()
            .filter(|raw| raw.get().starts_with('{'))
            .find_map(|raw| {
                serde_json::from_str::<Named>(raw.get())
                    .ok()
                    .and_then(|n| n.name.non_empty().map(str::to_owned))
            })
    }
}

/// A posture finding body (issue #6): `rule`, `status` (open|resolved), `severity`, `resource`,
/// `resource_id`, `summary`, `evidence`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FindingView<'a> {
    #[serde(borrow)]
    pub rule: Str<'a>,
    #[serde(borrow)]
    pub status: Str<'a>,
    #[serde(borrow)]
    pub severity: Str<'a>,
    #[serde(borrow)]
    pub resource: Str<'a>,
    #[serde(borrow)]
    pub resource_id: Str<'a>,
    #[serde(borrow)]
    pub summary: Str<'a>,
}

impl FindingView<'_> {
    pub fn is_resolved(&self) -> bool {
        self.status
            .get()
            .is_some_and(|s| s.eq_ignore_ascii_case("resolved"))
    }
}

/// Parses `payload` as a `T` view if it is a JSON object. `None` means the payload is not a
/// well-formed object (or repeats a mapped key): formats then carry it as an opaque string.
pub fn parse_object<'a, T: Deserialize<'a>>(payload: &'a str) -> Option<T> {
    let trimmed = payload.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// Milliseconds since the Unix epoch of an RFC 3339 / ISO 8601 time: `T` or space between date
/// and time, optional fraction, `Z`, `±HH:MM`, `±HHMM` or no zone (read as UTC). `None` if it is
/// not such a time or outside years 0000–9999.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = b.get(r)?;
        s.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
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
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
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
            if sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86400 + hour * 3600 + min * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn push_rfc3339_ms(out: &mut Vec<u8>, ms: i64) {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let mut buf = [0u8; 24];
    let put = |buf: &mut [u8], at: usize, v: i64, width: usize| {
        let mut v = v;
        for k in (0..width).rev() {
            buf[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut buf, 0, y.clamp(0, 9999), 4);
    buf[4] = b'-';
    put(&mut buf, 5, m, 2);
    buf[7] = b'-';
    put(&mut buf, 8, d, 2);
    buf[10] = b'T';
    put(&mut buf, 11, sod / 3600, 2);
    buf[13] = b':';
    put(&mut buf, 14, sod / 60 % 60, 2);
    buf[16] = b':';
    put(&mut buf, 17, sod % 60, 2);
    buf[19] = b'.';
    put(&mut buf, 20, millis, 3);
    buf[23] = b'Z';
    out.extend_from_slice(&buf);
}

/// Appends an integer in decimal.
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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

/// The actor IP if it is a well-formed IPv4/IPv6 address (SIEM ip fields reject anything else,
/// in Elasticsearch the whole document).
pub fn valid_ip(s: Option<&str>) -> Option<&str> {
    s.map(str::trim)
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
}

/// `service_update_ip_access_list` → `Service update ip access list`.
pub fn humanize(ty: &str, out: &mut String) {
    out.clear();
    for (i, c) in ty.chars().enumerate() {
        match c {
            '_' => out.push(' '),
            c if i == 0 => out.extend(c.to_uppercase()),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let mut out = Vec::new();
            push_rfc3339_ms(&mut out, ms);
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(parse_time_ms(text), Some(ms), "{text}");
            let chrono_text = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(text, chrono_text);
        }
    }

    #[test]
    fn fields_of_the_wrong_type_read_as_absent_or_text() {
        let v: ActivityView = parse_object(
            r#"{"id":42,"type":["x"],"actorId":{"a":1},"actorDetails":null,"createdAt":true,
                "targetRoleIds":["a",1,null,"b"],"targetActorIds":"solo","serviceId":"s\"1"}"#,
        )
        .unwrap();
        assert_eq!(v.id.get(), Some("42"));
        assert_eq!(v.kind.get(), None);
        assert_eq!(v.actor_id.get(), None);
        assert_eq!(v.actor_details.get(), None);
        assert_eq!(v.created_at.get(), Some("true"));
        assert_eq!(v.target_role_ids.0, vec!["a", "1", "b"]);
        assert_eq!(v.target_actor_ids.first(), Some("solo"));
        assert_eq!(v.service_id.get(), Some("s\"1"));
    }

    #[test]
    fn non_objects_are_not_parsed() {
        assert!(parse_object::<ActivityView>(r#"["a","b"]"#).is_none());
        assert!(parse_object::<ActivityView>("{\"id\":").is_none());
        assert!(parse_object::<ActivityView>("42").is_none());
        assert!(parse_object::<ActivityView>(r#"{"id":"a"} trailing"#).is_none());
    }

    #[test]
    fn only_real_ips_are_ips() {
        assert_eq!(valid_ip(Some(" 10.1.2.3 ")), Some("10.1.2.3"));
        assert_eq!(valid_ip(Some("2001:db8::1")), Some("2001:db8::1"));
        assert_eq!(valid_ip(Some("10.1.2.3, 10.0.0.1")), None);
        assert_eq!(valid_ip(Some("")), None);
    }

    #[test]
    fn humanize_makes_a_sentence_of_a_type() {
        let mut s = String::new();
        humanize("service_update_ip_access_list", &mut s);
        assert_eq!(s, "Service update ip access list");
        humanize("ümlaut_x", &mut s);
        assert_eq!(s, "Ümlaut x");
    }
}
