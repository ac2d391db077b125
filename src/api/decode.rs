//! Envelope decoding: `{status, requestId, result[, nextCursor]}` and `{status, error,
//! requestId}`, read in one pass from any `serde_json` source. Array results are visited element
//! by element into `Box<RawValue>` (the exact bytes of each element; no `Value` tree is ever
//! built), so a body of hundreds of MB is held only once, as the elements themselves — or, for
//! `StreamedActivities`, never more than a few chunks of them. Also: the wording of decode
//! failures (truncated / malformed / wrong shape) and body excerpts.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::config::DateFormat;

use super::models::{
    Activity, ActivityBatch, ActivityChunk, Quarantined, RawObject, WhoAmI, classify_activity,
    raw_object,
};

/// A decoded envelope. `result` is `None` when the field was absent.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub request_id: Option<String>,
    pub result: Option<T>,
    pub error: Option<String>,
    /// Set by paged endpoints (`/v1/organizations`, `…/keys` in the current spec) until the
    /// last page.
    pub next_cursor: Option<String>,
}

/// How to decode `result`; the output is owned, so it can cross from the decoding thread.
pub(crate) trait ResultShape: Clone + Send + 'static {
    type Output: Send + 'static;
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<Self::Output, D::Error>;
    /// Abandon the answer once its body passes this many bytes (`ApiError::TooLarge`).
    fn max_bytes(&self) -> Option<usize> {
        None
    }
    /// Nobody wants the answer any more (a stream's receiver is gone): do not retry.
    fn abandoned(&self) -> bool {
        false
    }
}

/// `result` of the activities list.
#[derive(Clone)]
pub(crate) struct Activities {
    /// See `ResultShape::max_bytes`.
    pub max_bytes: Option<usize>,
}

/// Activities and quarantined elements, in the order received.
#[derive(Debug, Default)]
pub(crate) struct ActivityList {
    pub activities: Vec<Activity>,
    pub quarantined: Vec<Quarantined>,
}

impl ResultShape for Activities {
    type Output = ActivityList;
    fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<ActivityList, D::Error> {
        elements(
            d,
            "an array of activities",
            |out: &mut ActivityList, raw| {
                match classify_activity(raw) {
                    Ok(a) => out.activities.push(a),
                    Err(q) => out.quarantined.push(q),
                }
                Ok(())
            },
        )
    }
}

/// `result` of the activities list handed on in chunks as it is decoded, never collected:
/// memory stays at a few chunks (`batch` elements each, plus those queued in `tx`) however
/// large the body. The output is the number of elements (activities + quarantined) sent.
/// Runs on the blocking decoder thread, so it sends with `blocking_send`. A body past
/// `max_bytes` is abandoned (`ApiError::TooLarge`) after the chunks read so far were sent.
#[derive(Clone)]
pub(crate) struct StreamedActivities {
    /// Elements (activities + quarantined) per chunk, at least 1.
    pub batch: usize,
    pub tx: mpsc::Sender<ActivityChunk>,
    /// See `ResultShape::max_bytes`.
    pub max_bytes: Option<usize>,
    /// The date format of the request, stamped on every chunk.
    pub format: DateFormat,
}

/// Why a streamed decode stopped early: the receiver was dropped.
pub(crate) const STREAM_CLOSED: &str = "the receiver of the streamed activities is gone";

impl ResultShape for StreamedActivities {
    type Output = usize;
    fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }
    fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<usize, D::Error> {
        let batch = self.batch.max(1);
        let fresh = || ActivityChunk {
            format: Some(self.format),
            ..ActivityChunk::default()
        };
        let mut chunk = fresh();
        let send = |chunk: &mut ActivityChunk| {
            let full = std::mem::replace(chunk, fresh());
            self.tx
                .blocking_send(full)
                .map_err(|_| STREAM_CLOSED.to_string())
        };
        let count = elements(d, "an array of activities", |count: &mut usize, raw| {
            match classify_activity(raw) {
                Ok(a) => chunk.activities.push(a),
                Err(q) => chunk.quarantined.push(q),
            }
            *count += 1;
            if chunk.activities.len() + chunk.quarantined.len() >= batch {
                send(&mut chunk)?;
            }
            Ok(())
        })?;
        if !chunk.activities.is_empty() || !chunk.quarantined.is_empty() {
            send(&mut chunk).map_err(de::Error::custom)?;
        }
        Ok(count)
    }
}

/// `result` of an inventory list; each object's id is read from `id_key`.
#[derive(Clone)]
pub(crate) struct Objects {
    pub id_key: &'static str,
}

impl ResultShape for Objects {
    type Output = Vec<RawObject>;
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<Vec<RawObject>, D::Error> {
        elements(d, "an array of objects", |out: &mut Vec<RawObject>, raw| {
            out.push(raw_object(raw, self.id_key));
            Ok(())
        })
    }
}

/// `result` of `whoami`.
#[derive(Clone)]
pub(crate) struct Identity;

impl ResultShape for Identity {
    type Output = WhoAmI;
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<WhoAmI, D::Error> {
        let raw: Box<RawValue> = serde::Deserialize::deserialize(d)?;
        Ok(WhoAmI::from_raw(raw))
    }
}

/// Any `result`, skipped (error bodies).
#[derive(Clone)]
pub(crate) struct Ignore;

impl ResultShape for Ignore {
    type Output = ();
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<(), D::Error> {
        d.deserialize_ignored_any(IgnoredAny).map(drop)
    }
}

/// Visits an array element by element as raw JSON; `null` reads as an empty array (an empty
/// list serialized from a nil slice). An `Err` from `push` stops the decode with that message.
fn elements<'de, D, O, F>(d: D, expecting: &'static str, push: F) -> Result<O, D::Error>
where
    D: de::Deserializer<'de>,
    O: Default,
    F: FnMut(&mut O, Box<RawValue>) -> Result<(), String>,
{
    struct V<O, F>(&'static str, F, PhantomData<O>);
    impl<'de, O, F> Visitor<'de> for V<O, F>
    where
        O: Default,
        F: FnMut(&mut O, Box<RawValue>) -> Result<(), String>,
    {
        type Value = O;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_unit<E>(self) -> Result<O, E> {
            Ok(O::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<O, A::Error> {
            let mut out = O::default();
            while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                (self.1)(&mut out, raw).map_err(de::Error::custom)?;
            }
            Ok(out)
        }
    }
    d.deserialize_any(V(expecting, push, PhantomData))
}

/// Decodes a whole envelope from `de` and checks nothing but whitespace follows.
pub(crate) fn decode_envelope<'de, S, R>(
    shape: &S,
    mut de: serde_json::Deserializer<R>,
) -> Result<Envelope<S::Output>, serde_json::Error>
where
    S: ResultShape,
    R: serde_json::de::Read<'de>,
{
    let env = EnvelopeSeed(shape).deserialize(&mut de)?;
    de.end()?;
    Ok(env)
}

struct EnvelopeSeed<'s, S>(&'s S);

impl<'de, S: ResultShape> DeserializeSeed<'de> for EnvelopeSeed<'_, S> {
    type Value = Envelope<S::Output>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: ResultShape> Visitor<'de> for EnvelopeSeed<'_, S> {
    type Value = Envelope<S::Output>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a response envelope object {status, requestId, result}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut env = Envelope {
            request_id: None,
            result: None,
            error: None,
            next_cursor: None,
        };
        let mut message = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Result if env.result.is_some() => {
                    return Err(de::Error::duplicate_field("result"));
                }
                Key::Result => env.result = Some(map.next_value_seed(ResultSeed(self.0))?),
                Key::RequestId => env.request_id = text(map.next_value()?),
                Key::Error => env.error = text(map.next_value()?),
                // API gateways in front of services answer `{"message": …}`.
                Key::Message => message = text(map.next_value()?),
                Key::NextCursor => env.next_cursor = text(map.next_value()?),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        env.error = env.error.or(message);
        Ok(env)
    }
}

/// A small value as text: strings as they are, `null` as `None`, anything else as JSON.
fn text(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

struct ResultSeed<'s, S>(&'s S);

impl<'de, S: ResultShape> DeserializeSeed<'de> for ResultSeed<'_, S> {
    type Value = S::Output;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Output, D::Error> {
        self.0.deserialize(d)
    }
}

enum Key {
    Result,
    RequestId,
    Error,
    Message,
    NextCursor,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "result" => Key::Result,
                    "requestId" => Key::RequestId,
                    "error" => Key::Error,
                    "message" => Key::Message,
                    "nextCursor" => Key::NextCursor,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// One whole activities answer decoded as `Client::activities` decodes a page (through
/// `io::Read`, as the body streams in), failures worded the same way. Only for the fuzz target
/// `fuzz/fuzz_targets/api_decode.rs` (issue 8): not a stable API.
#[doc(hidden)]
pub fn decode_activities_body(body: &[u8]) -> Result<ActivityBatch, String> {
    let shape = Activities { max_bytes: None };
    let env = decode_envelope(&shape, serde_json::Deserializer::from_reader(body))
        .map_err(|e| describe(&e, body.len()))?;
    let list = env
        .result
        .ok_or_else(|| "the envelope has no `result` field".to_string())?;
    Ok(ActivityBatch {
        count: list.activities.len() + list.quarantined.len(),
        activities: list.activities,
        quarantined: list.quarantined,
        request_id: env.request_id,
        body_bytes: body.len(),
        ..ActivityBatch::default()
    })
}

/// What a non-2xx body says: the envelope's `error` (or a gateway's `message`) and `requestId`,
/// or, when the body is not JSON (401/403/429 bodies are undocumented), an excerpt of it.
/// `pub` (hidden) only for the fuzz target `api_decode`.
#[doc(hidden)]
pub fn error_body(body: &[u8]) -> (Option<String>, String) {
    match decode_envelope(&Ignore, serde_json::Deserializer::from_slice(body)) {
        Ok(env) => (env.request_id, env.error.unwrap_or_default()),
        Err(_) => (None, excerpt(body, 200)),
    }
}

/// Words a decode failure after `bytes` body bytes: truncated, malformed (with the position)
/// or of the wrong shape (saying what was expected).
pub(crate) fn describe(err: &serde_json::Error, bytes: usize) -> String {
    if bytes == 0 && err.classify() == Category::Eof {
        return "the response body is empty (expected a JSON envelope)".into();
    }
    let full = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let what = full.strip_suffix(&position).unwrap_or(&full);
    let (line, column) = (err.line(), err.column());
    match err.classify() {
        Category::Eof => format!(
            "response truncated after {bytes} bytes: the JSON ends early ({what} at line {line} \
             column {column})"
        ),
        Category::Syntax => format!("malformed JSON at line {line} column {column}: {what}"),
        Category::Data => {
            format!("unexpected response shape at line {line} column {column}: {what}")
        }
        Category::Io => {
            format!("response truncated after {bytes} bytes: reading the body failed ({what})")
        }
    }
}

/// The first `max` bytes of a body as printable text: invalid UTF-8 replaced, control
/// characters escaped, `…` when cut.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let cut = &body[..body.len().min(max)];
    let mut out = String::with_capacity(cut.len() + 3);
    for c in String::from_utf8_lossy(cut).trim().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if body.len() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<S: ResultShape>(shape: &S, body: &str) -> Result<Envelope<S::Output>, String> {
        decode_envelope(shape, serde_json::Deserializer::from_slice(body.as_bytes()))
            .map_err(|e| describe(&e, body.len()))
    }

    #[test]
    fn activities_keep_their_exact_bytes_in_any_field_order() {
        let a1 = "{ \"id\" : \"x1\",\n \"createdAt\":\"2025-03-04T10:15:30Z\", \"cost\": 1.50, \"n\": 1e3, \"who\": \"Zoë \\u00e9 😀\", \"extra\": {\"deep\": [1, 2 ,3]} }";
        let body = format!(
            r#"{{"result": [ {a1} , {{"id":"x2","createdAt":"2025-03-04T10:15:31"}} ], "status": 200, "requestId": "r-9"}}"#
        );
        let env = decode(&Activities { max_bytes: None }, &body).unwrap();
        assert_eq!(env.request_id.as_deref(), Some("r-9"));
        let list = env.result.unwrap();
        assert_eq!(list.activities.len(), 2);
        assert_eq!(list.activities[0].raw.get(), a1);
        assert_eq!(list.activities[1].id, "x2");
    }

    #[test]
    fn null_result_is_an_empty_list_but_a_missing_one_is_noticed() {
        let env = decode(&Objects { id_key: "id" }, r#"{"status":200,"result":null}"#).unwrap();
        assert_eq!(env.result.unwrap().len(), 0);
        let env = decode(&Objects { id_key: "id" }, r#"{"status":200}"#).unwrap();
        assert!(env.result.is_none());
    }

    #[test]
    fn failures_are_worded_as_truncated_malformed_or_wrong_shape() {
        let err = decode(
            &Activities { max_bytes: None },
            r#"{"status":200,"result":[{"id":"a","createdAt":"20"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("response truncated after 49 bytes"),
            "{err}"
        );

        let err = decode(
            &Activities { max_bytes: None },
            r#"{"status":200,"result":[{"id" "a"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err, "malformed JSON at line 1 column 31: expected `:`",
            "{err}"
        );

        let err = decode(
            &Activities { max_bytes: None },
            r#"{"status":200,"result":{"id":"a"}}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("unexpected response shape at line 1 column 24: invalid type: map, expected an array of activities"),
            "{err}"
        );

        let err = decode(&Activities { max_bytes: None }, "").unwrap_err();
        assert_eq!(err, "the response body is empty (expected a JSON envelope)");

        let err = decode(&Activities { max_bytes: None }, "[1]").unwrap_err();
        assert!(err.contains("expected a response envelope object"), "{err}");

        let err = decode(&Activities { max_bytes: None }, r#"{"result":[]} trailing"#).unwrap_err();
        assert!(
            err.starts_with("malformed JSON at line 1 column 15: trailing characters"),
            "{err}"
        );
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        assert_eq!(
            error_body(
                br#"{"status":400,"error":"BAD_REQUEST: Invalid from_date","requestId":"r1"}"#
            ),
            (Some("r1".into()), "BAD_REQUEST: Invalid from_date".into())
        );
        assert_eq!(
            error_body(br#"{"error": "TOO_MANY_REQUESTS"}"#),
            (None, "TOO_MANY_REQUESTS".into())
        );
        assert_eq!(
            error_body(br#"{"message":"Forbidden"}"#),
            (None, "Forbidden".into())
        );
        assert_eq!(
            error_body(b"<html>\r\n<h1>502 Bad Gateway</h1></html>"),
            (None, "<html>\\r\\n<h1>502 Bad Gateway</h1></html>".into())
        );
        assert_eq!(error_body(b""), (None, String::new()));
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"abc\x07def", 5), "abc\\u{7}d…");
        assert_eq!(excerpt(&[0xff, b'a'], 10), "\u{fffd}a");
    }
}
