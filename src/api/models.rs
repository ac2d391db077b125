//! Wire types the client hands to pollers: activities (verbatim bytes plus the few typed fields
//! the exporter uses), quarantined elements, inventory objects and the `whoami` identity. Every
//! object keeps the exact JSON text received (`Box<RawValue>`), so unknown fields and enum
//! values pass through untouched; typed access reads only `id`, `createdAt`, `type`, `userId`.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::dates::parse_created_at;
use crate::config::DateFormat;

/// One activity: verbatim JSON plus typed access to what the exporter uses.
#[derive(Debug, Clone)]
pub struct Activity {
    /// `id`: a non-empty string (format undocumented; not assumed to be a UUID).
    pub id: String,
    /// `createdAt`, parsed leniently (see `dates::parse_created_at`).
    pub created_at: DateTime<Utc>,
    /// `createdAt` exactly as the API wrote it.
    pub created_at_raw: String,
    /// `type`, when a string; unknown values are kept as they are.
    pub kind: Option<String>,
    /// The exact bytes received for this array element.
    pub raw: Box<RawValue>,
}

/// An element of the activities array the exporter cannot key or order: kept aside with the
/// reason, never dropped silently and never failing the batch.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// The exact bytes received.
    pub raw: Box<RawValue>,
    /// `missing_id`, `bad_created_at` or `not_an_object` (a metric label).
    pub reason: &'static str,
    /// What exactly was wrong, e.g. "`id` is a number, not a string".
    pub detail: String,
}

/// One `activities` answer.
#[derive(Debug, Clone, Default)]
pub struct ActivityBatch {
    /// The activities, in the order received; empty when they were streamed
    /// (`WindowRequest::stream`).
    pub activities: Vec<Activity>,
    /// Elements that could not be keyed or ordered; empty when streamed.
    pub quarantined: Vec<Quarantined>,
    /// Activities + quarantined elements in the answer (collected or streamed).
    pub count: usize,
    /// The date format of the request that succeeded (after any step-down).
    pub format: DateFormat,
    /// The inclusive UTC range the answer may legitimately cover if the server reads the bounds
    /// as UTC: the whole seconds sent for `naive`/`rfc3339`; for `date`, 00:00:00.000 of the
    /// `from_date` day to 23:59:59.999 of the `to_date` day (a date-only `to_date` may be read
    /// as covering its whole day). See `dates::window_bounds`.
    pub bounds: (DateTime<Utc>, DateTime<Utc>),
    /// The envelope's `requestId` (of the first page when the answer was paged).
    pub request_id: Option<String>,
    /// Body bytes received for this batch.
    pub body_bytes: usize,
    /// The server's clock when it answered (HTTP `Date`), if it sent one.
    pub server_date: Option<chrono::DateTime<chrono::Utc>>,
}

/// A slice of one streamed `activities` answer (`WindowRequest::stream`), in the order received.
#[derive(Debug, Clone, Default)]
pub struct ActivityChunk {
    /// Activities of this slice.
    pub activities: Vec<Activity>,
    /// Quarantined elements of this slice.
    pub quarantined: Vec<Quarantined>,
    /// The date format of the request that read it (the bounds it answers to).
    pub format: Option<crate::config::DateFormat>,
}

/// One inventory object, verbatim. `id` comes from `id`, or `userId` for members; `None` when
/// that field is absent or not a string.
#[derive(Debug, Clone)]
pub struct RawObject {
    pub id: Option<String>,
    pub raw: Box<RawValue>,
}

/// The caller's identity from `GET /v1/whoami` (beta).
#[derive(Debug, Clone)]
pub enum WhoAmI {
    ApiKey {
        key_id: String,
        name: Option<String>,
        organization_id: String,
    },
    User {
        user_id: String,
        organization_ids: Vec<String>,
    },
    /// An answer of another or newer shape, verbatim.
    Other(Box<RawValue>),
}

impl WhoAmI {
    /// Reads the `actorType`-discriminated identity; anything unexpected becomes `Other`.
    pub(crate) fn from_raw(raw: Box<RawValue>) -> WhoAmI {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Org {
            organization_id: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            actor_type: Option<String>,
            key_id: Option<String>,
            name: Option<String>,
            organization_id: Option<String>,
            user_id: Option<String>,
            organizations: Option<Vec<Org>>,
        }
        let Ok(w) = serde_json::from_str::<Wire>(raw.get()) else {
            return WhoAmI::Other(raw);
        };
        match (
            w.actor_type.as_deref(),
            w.key_id,
            w.organization_id,
            w.user_id,
        ) {
            (Some("apiKey"), Some(key_id), Some(organization_id), _) => WhoAmI::ApiKey {
                key_id,
                name: w.name,
                organization_id,
            },
            (Some("user"), _, _, Some(user_id)) => WhoAmI::User {
                user_id,
                organization_ids: w
                    .organizations
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| o.organization_id)
                    .collect(),
            },
            _ => WhoAmI::Other(raw),
        }
    }
}

/// Splits one element of the activities array into an `Activity` or a `Quarantined`.
pub(crate) fn classify_activity(raw: Box<RawValue>) -> Result<Activity, Quarantined> {
    let quarantine = |raw, reason, detail| {
        Err(Quarantined {
            raw,
            reason,
            detail,
        })
    };
    let text = raw.get();
    if !text.starts_with('{') {
        let detail = format!("array element is {}, not an object", json_kind(text));
        return quarantine(raw, "not_an_object", detail);
    }
    let [id, created, kind] = match fields(text, ["id", "createdAt", "type"]) {
        Ok(f) => f,
        Err(e) => return quarantine(raw, "not_an_object", e.to_string()),
    };
    let id = match id {
        Scalar::Str(s) if !s.is_empty() => s.into_owned(),
        other => {
            let detail = other.describe("id");
            return quarantine(raw, "missing_id", detail);
        }
    };
    let (created_at, created_at_raw) = match created {
        Scalar::Str(s) => match parse_created_at(&s) {
            Ok(t) => (t, s.into_owned()),
            Err(detail) => return quarantine(raw, "bad_created_at", detail),
        },
        other => {
            let detail = other.describe("createdAt");
            return quarantine(raw, "bad_created_at", detail);
        }
    };
    let kind = match kind {
        Scalar::Str(s) => Some(s.into_owned()),
        _ => None,
    };
    Ok(Activity {
        id,
        created_at,
        created_at_raw,
        kind,
        raw,
    })
}

/// An inventory element with its id read from `id_key`.
pub(crate) fn raw_object(raw: Box<RawValue>, id_key: &str) -> RawObject {
    let id = match fields(raw.get(), [id_key]) {
        Ok([Scalar::Str(s)]) => Some(s.into_owned()),
        _ => None,
    };
    RawObject { id, raw }
}

/// "an array", "a string", …: what a JSON text is, from its first byte.
pub(crate) fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A top-level field of an object: absent, a string (borrowed when it had no escapes), or some
/// other JSON kind.
#[derive(Debug)]
enum Scalar<'a> {
    Missing,
    Str(Cow<'a, str>),
    Other(&'static str),
}

impl Scalar<'_> {
    fn describe(&self, key: &str) -> String {
        match self {
            Scalar::Missing => format!("no `{key}` field"),
            Scalar::Str(s) if s.is_empty() => format!("`{key}` is an empty string"),
            Scalar::Str(_) => format!("`{key}` is a string"),
            Scalar::Other(kind) => format!("`{key}` is {kind}, not a string"),
        }
    }
}

/// Reads the `keys` fields of the object `text` (later duplicates win, as in
/// `serde_json::Value`); every other value is skipped without being built.
fn fields<'a, const N: usize>(
    text: &'a str,
    keys: [&str; N],
) -> Result<[Scalar<'a>; N], serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    FieldsSeed { keys }.deserialize(&mut de)
}

struct FieldsSeed<'k, const N: usize> {
    keys: [&'k str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for FieldsSeed<'_, N> {
    type Value = [Scalar<'de>; N];

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for FieldsSeed<'_, N> {
    type Value = [Scalar<'de>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = std::array::from_fn(|_| Scalar::Missing);
        while let Some(key) = map.next_key_seed(KeyIndex(&self.keys))? {
            match key {
                Some(i) => out[i] = map.next_value::<Scalar<'de>>()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Maps an object key to its index in `keys`, without allocating.
struct KeyIndex<'a, 'k>(&'a [&'k str]);

impl<'de> DeserializeSeed<'de> for KeyIndex<'_, '_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex<'_, '_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|k| *k == v))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a number"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn activity_fields_are_typed_and_bytes_kept() {
        let text = r#"{"createdAt":"2025-03-04T10:15:30Z","x":{"id":7},"type":"new_kind_2030","id":"a\u0031"}"#;
        let a = classify_activity(raw(text)).unwrap();
        assert_eq!(a.id, "a1");
        assert_eq!(a.kind.as_deref(), Some("new_kind_2030"));
        assert_eq!(a.created_at_raw, "2025-03-04T10:15:30Z");
        assert_eq!(a.raw.get(), text);
    }

    #[test]
    fn bad_activities_are_quarantined_with_a_reason() {
        let cases = [
            (
                r#"{"createdAt":"2025-03-04T10:15:30Z"}"#,
                "missing_id",
                "no `id` field",
            ),
            (
                r#"{"id":42,"createdAt":"2025-03-04T10:15:30Z"}"#,
                "missing_id",
                "`id` is a number, not a string",
            ),
            (
                r#"{"id":"","createdAt":"2025-03-04T10:15:30Z"}"#,
                "missing_id",
                "`id` is an empty string",
            ),
            (r#"{"id":"a"}"#, "bad_created_at", "no `createdAt` field"),
            (
                r#"{"id":"a","createdAt":null}"#,
                "bad_created_at",
                "`createdAt` is null, not a string",
            ),
            (
                r#"{"id":"a","createdAt":"soon"}"#,
                "bad_created_at",
                "not an ISO-8601 date-time",
            ),
            (
                "[1,2]",
                "not_an_object",
                "array element is an array, not an object",
            ),
            (
                "\"x\"",
                "not_an_object",
                "array element is a string, not an object",
            ),
        ];
        for (text, reason, detail) in cases {
            let q = classify_activity(raw(text)).unwrap_err();
            assert_eq!(q.reason, reason, "{text}");
            assert!(q.detail.contains(detail), "{text}: {}", q.detail);
            assert_eq!(q.raw.get(), text);
        }
    }

    #[test]
    fn later_duplicate_keys_win_like_serde_json_value() {
        let a = classify_activity(raw(
            r#"{"id":"first","id":"second","createdAt":"2025-03-04T10:15:30Z"}"#,
        ))
        .unwrap();
        assert_eq!(a.id, "second");
    }

    #[test]
    fn inventory_ids_come_from_the_named_key() {
        assert_eq!(
            raw_object(raw(r#"{"userId":"u1","name":"A"}"#), "userId")
                .id
                .as_deref(),
            Some("u1")
        );
        assert_eq!(raw_object(raw(r#"{"id":5}"#), "id").id, None);
        assert_eq!(raw_object(raw("[]"), "id").id, None);
    }

    #[test]
    fn whoami_is_read_by_actor_type() {
        let key = WhoAmI::from_raw(raw(
            r#"{"actorType":"apiKey","keyId":"k1","name":"siem","organizationId":"o1"}"#,
        ));
        assert!(
            matches!(key, WhoAmI::ApiKey { ref key_id, ref organization_id, .. } if key_id == "k1" && organization_id == "o1")
        );
        let user = WhoAmI::from_raw(raw(
            r#"{"actorType":"user","userId":"u1","email":"a@b","name":"A","organizations":[{"organizationId":"o1","organizationName":"O"}]}"#,
        ));
        assert!(
            matches!(user, WhoAmI::User { ref organization_ids, .. } if organization_ids == &["o1"])
        );
        assert!(matches!(
            WhoAmI::from_raw(raw(r#"{"actorType":"robot"}"#)),
            WhoAmI::Other(_)
        ));
    }
}
