//! Envelope decoding: `{status, requestId, result[, nextCursor]}` and `{status, error,
//! requestId}`, read in one pass from any `io::Read` (a live body or a slice). The envelope's
//! own structure is walked here; every value in it goes through `serde_json::from_slice` on its
//! exact bytes (found by `scan`), so acceptance is serde_json's. An array `result` is taken
//! element by element as `Box<RawValue>` (the exact bytes of each element; no `Value` tree is
//! ever built), so a body of hundreds of MB is held only once, as the elements themselves — or,
//! for `StreamedActivities`, never more than a few chunks of them. Also: the wording of decode
//! failures (truncated / malformed / wrong shape) and body excerpts.

use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::error::Category;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::config::DateFormat;

use super::models::{
    Activity, ActivityBatch, ActivityChunk, Quarantined, RawObject, WhoAmI, classify_activity,
    raw_object,
};
use super::scan::Body;
pub(crate) use super::scan::DecodeError;

/// Longest value read outside the `result` list (an unknown field's value is held whole).
const MAX_OTHER_VALUE: usize = 64 << 20;

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
    /// A list being read (`()` for a shape that is not a list).
    type List: Default;
    /// An array `result` is taken element by element (`element`, then `finish`); any other
    /// `result` (and every `result` of a shape that is not a list) goes to `deserialize`.
    const LIST: bool;
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<Self::Output, D::Error>;
    /// Takes one element; an `Err` stops the decode with that message.
    #[allow(clippy::boxed_local)] // the element is owned: list shapes keep it
    fn element(&self, _list: &mut Self::List, _raw: Box<RawValue>) -> Result<(), String> {
        Err("this answer is not a list".into())
    }
    /// The list read.
    fn finish(&self, _list: Self::List) -> Result<Self::Output, String> {
        Err("this answer is not a list".into())
    }
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
    type List = ActivityList;
    const LIST: bool = true;
    fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<ActivityList, D::Error> {
        list(self, d, "an array of activities")
    }
    fn element(&self, out: &mut ActivityList, raw: Box<RawValue>) -> Result<(), String> {
        match classify_activity(raw) {
            Ok(a) => out.activities.push(a),
            Err(q) => out.quarantined.push(q),
        }
        Ok(())
    }
    fn finish(&self, out: ActivityList) -> Result<ActivityList, String> {
        Ok(out)
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

/// A streamed list being read: elements sent, and the chunk being filled.
#[derive(Default)]
pub(crate) struct StreamState {
    count: usize,
    chunk: Option<ActivityChunk>,
}

impl StreamedActivities {
    fn send(&self, chunk: ActivityChunk) -> Result<(), String> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| STREAM_CLOSED.to_string())
    }
}

impl ResultShape for StreamedActivities {
    type Output = usize;
    type List = StreamState;
    const LIST: bool = true;
    fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }
    fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<usize, D::Error> {
        list(self, d, "an array of activities")
    }
    fn element(&self, state: &mut StreamState, raw: Box<RawValue>) -> Result<(), String> {
        let chunk = state.chunk.get_or_insert_with(|| ActivityChunk {
            format: Some(self.format),
            ..ActivityChunk::default()
        });
        match classify_activity(raw) {
            Ok(a) => chunk.activities.push(a),
            Err(q) => chunk.quarantined.push(q),
        }
        state.count += 1;
        if chunk.activities.len() + chunk.quarantined.len() >= self.batch.max(1) {
            let full = state.chunk.take().expect("filled just above");
            self.send(full)?;
        }
        Ok(())
    }
    fn finish(&self, state: StreamState) -> Result<usize, String> {
        if let Some(rest) = state.chunk {
            self.send(rest)?;
        }
        Ok(state.count)
    }
}

/// `result` of an inventory list; each object's id is read from `id_key`.
#[derive(Clone)]
pub(crate) struct Objects {
    pub id_key: &'static str,
}

impl ResultShape for Objects {
    type Output = Vec<RawObject>;
    type List = Vec<RawObject>;
    const LIST: bool = true;
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<Vec<RawObject>, D::Error> {
        list(self, d, "an array of objects")
    }
    fn element(&self, out: &mut Vec<RawObject>, raw: Box<RawValue>) -> Result<(), String> {
        out.push(raw_object(raw, self.id_key));
        Ok(())
    }
    fn finish(&self, out: Vec<RawObject>) -> Result<Vec<RawObject>, String> {
        Ok(out)
    }
}

/// `result` of `whoami`.
#[derive(Clone)]
pub(crate) struct Identity;

impl ResultShape for Identity {
    type Output = WhoAmI;
    type List = ();
    const LIST: bool = false;
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
    type List = ();
    const LIST: bool = false;
    fn deserialize<'de, D: de::Deserializer<'de>>(&self, d: D) -> Result<(), D::Error> {
        d.deserialize_ignored_any(IgnoredAny).map(drop)
    }
}

/// A list shape's `result` through serde (`null`, or a value that is not an array, which
/// fails as "invalid type … expected `expecting`"): `null` reads as an empty list (an empty
/// list serialized from a nil slice).
fn list<'de, S, D>(shape: &S, d: D, expecting: &'static str) -> Result<S::Output, D::Error>
where
    S: ResultShape,
    D: de::Deserializer<'de>,
{
    struct V<'s, S>(&'s S, &'static str, PhantomData<S>);
    impl<'de, S: ResultShape> Visitor<'de> for V<'_, S> {
        type Value = S::List;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_unit<E>(self) -> Result<S::List, E> {
            Ok(S::List::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<S::List, A::Error> {
            let mut out = S::List::default();
            while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                self.0.element(&mut out, raw).map_err(de::Error::custom)?;
            }
            Ok(out)
        }
    }
    let out = d.deserialize_any(V(shape, expecting, PhantomData))?;
    shape.finish(out).map_err(de::Error::custom)
}

/// Decodes a whole envelope from `src` and checks nothing but whitespace follows. The
/// envelope's braces, keys, colons and commas are read here with serde_json's wording of
/// every failure; each value is read by serde_json from its exact bytes.
pub(crate) fn decode_envelope<S: ResultShape, R: Read>(
    shape: &S,
    src: R,
) -> Result<Envelope<S::Output>, DecodeError> {
    let mut b = Body::new(src);
    match b.peek()? {
        None => return Err(b.error(Category::Eof, "EOF while parsing a value")),
        Some(b'{') => b.bump(),
        Some(_) => {
            // Not an object: serde_json says what it is instead.
            let (s, e) = b.value(MAX_OTHER_VALUE)?;
            let read = b.read(s, e, |bytes| {
                EnvelopeSeed(shape).deserialize(&mut serde_json::Deserializer::from_slice(bytes))
            });
            return Err(match read {
                Err(err) => err,
                Ok(_) => b.error(Category::Data, "expected a response envelope object"),
            });
        }
    }
    let mut env = Envelope {
        request_id: None,
        result: None,
        error: None,
        next_cursor: None,
    };
    let mut message = None;
    let mut after_comma = false;
    // Words as serde_json's `MapAccess` words them.
    loop {
        match b.peek()? {
            None if after_comma => return Err(b.error(Category::Eof, "EOF while parsing a value")),
            None => return Err(b.error(Category::Eof, "EOF while parsing an object")),
            Some(b'}') if after_comma => return Err(b.error(Category::Syntax, "trailing comma")),
            Some(b'}') => {
                b.bump();
                break;
            }
            Some(b'"') => {}
            Some(_) => return Err(b.error(Category::Syntax, "key must be a string")),
        }
        let key: Key = small(&mut b)?;
        match b.peek()? {
            Some(b':') => b.bump(),
            None => return Err(b.error(Category::Eof, "EOF while parsing an object")),
            Some(_) => return Err(b.error(Category::Syntax, "expected `:`")),
        }
        if b.peek()?.is_none() {
            return Err(b.error(Category::Eof, "EOF while parsing a value"));
        }
        match key {
            Key::Result if env.result.is_some() => {
                return Err(b.error(Category::Data, "duplicate field `result`"));
            }
            Key::Result => env.result = Some(result(shape, &mut b)?),
            Key::RequestId => env.request_id = text(small(&mut b)?),
            Key::Error => env.error = text(small(&mut b)?),
            // API gateways in front of services answer `{"message": …}`.
            Key::Message => message = text(small(&mut b)?),
            Key::NextCursor => env.next_cursor = text(small(&mut b)?),
            Key::Other => {
                small::<IgnoredAny, R>(&mut b)?;
            }
        }
        match b.peek()? {
            Some(b',') => {
                b.bump();
                after_comma = true;
            }
            Some(b'}') => {
                b.bump();
                break;
            }
            None => return Err(b.error(Category::Eof, "EOF while parsing an object")),
            Some(_) => return Err(b.error(Category::Syntax, "expected `,` or `}`")),
        }
    }
    if b.peek()?.is_some() {
        return Err(b.error(Category::Syntax, "trailing characters"));
    }
    env.error = env.error.or(message);
    Ok(env)
}

/// The next value, read whole by serde_json.
fn small<T: DeserializeOwned, R: Read>(b: &mut Body<R>) -> Result<T, DecodeError> {
    let (s, e) = b.value(MAX_OTHER_VALUE)?;
    b.read(s, e, |bytes| serde_json::from_slice::<T>(bytes))
}

/// The `result` value: an array of a list shape element by element, anything else whole.
fn result<S: ResultShape, R: Read>(shape: &S, b: &mut Body<R>) -> Result<S::Output, DecodeError> {
    if !S::LIST || b.peek()? != Some(b'[') {
        let (s, e) = b.value(MAX_OTHER_VALUE)?;
        return b.read(s, e, |bytes| {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let out = shape.deserialize(&mut de)?;
            de.end().map(|()| out)
        });
    }
    b.bump();
    let mut out = S::List::default();
    // Words as serde_json's `SeqAccess` words them.
    match b.peek()? {
        Some(b']') => {
            b.bump();
            return shape.finish(out).map_err(|m| b.error(Category::Data, &m));
        }
        None => return Err(b.error(Category::Eof, "EOF while parsing a list")),
        Some(_) => {}
    }
    loop {
        if b.peek()?.is_none() {
            return Err(b.error(Category::Eof, "EOF while parsing a value"));
        }
        let (s, e) = b.value(usize::MAX)?;
        // One allocation of the exact size (serde_json's reader grew each one byte by byte).
        let raw = b.read(s, e, |bytes| {
            serde_json::from_slice::<&RawValue>(bytes).map(|raw| raw.to_owned())
        })?;
        shape
            .element(&mut out, raw)
            .map_err(|m| b.error(Category::Data, &m))?;
        match b.peek()? {
            Some(b',') => {
                b.bump();
                if b.peek()? == Some(b']') {
                    return Err(b.error(Category::Syntax, "trailing comma"));
                }
            }
            Some(b']') => {
                b.bump();
                break;
            }
            None => return Err(b.error(Category::Eof, "EOF while parsing a list")),
            Some(_) => return Err(b.error(Category::Syntax, "expected `,` or `]`")),
        }
    }
    shape.finish(out).map_err(|m| b.error(Category::Data, &m))
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
    let env = decode_envelope(&shape, body).map_err(|e| describe(&e, body.len()))?;
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
    match decode_envelope(&Ignore, body) {
        Ok(env) => (env.request_id, env.error.unwrap_or_default()),
        Err(_) => (None, excerpt(body, 200)),
    }
}

/// Words a decode failure after `bytes` body bytes: truncated, malformed (with the position)
/// or of the wrong shape (saying what was expected).
pub(crate) fn describe(err: &DecodeError, bytes: usize) -> String {
    if bytes == 0 && err.category == Category::Eof {
        return "the response body is empty (expected a JSON envelope)".into();
    }
    let what = &err.message;
    let (line, column) = (err.line, err.column);
    match err.category {
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
        decode_envelope(shape, body.as_bytes()).map_err(|e| describe(&e, body.len()))
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

/// The decoder against serde_json reading the same body whole, over truncated and corrupted
/// bodies fed a few bytes at a time: it accepts what serde_json accepts, and fails where and
/// as serde_json fails (issue 17 replaced serde_json's reader with the scanner in `scan`).
#[cfg(test)]
mod against_serde {
    use super::*;
    use std::io;

    /// Hands a body over `step` bytes at a time, as a network does.
    struct Trickle<'a> {
        body: &'a [u8],
        step: usize,
    }

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.body.len());
            buf[..n].copy_from_slice(&self.body[..n]);
            self.body = &self.body[n..];
            Ok(n)
        }
    }

    fn at(e: &serde_json::Error) -> (String, usize, usize) {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        (what, e.line(), e.column())
    }

    /// Checks one body against serde_json reading it whole through the same envelope visitor
    /// (the decoder before the scanner); returns whether it decoded.
    fn check(body: &[u8]) -> bool {
        let shape = Activities { max_bytes: None };
        let mut de = serde_json::Deserializer::from_slice(body);
        let want = EnvelopeSeed(&shape)
            .deserialize(&mut de)
            .and_then(|env| de.end().map(|()| env));
        let shown = String::from_utf8_lossy(&body[..body.len().min(400)]);
        for step in [1, 7, 64 * 1024] {
            let got = decode_envelope(&shape, Trickle { body, step });
            match (&want, &got) {
                (Ok(w), Ok(g)) => {
                    let raws = |e: &Envelope<ActivityList>| {
                        let l = e.result.as_ref();
                        let a = l
                            .into_iter()
                            .flat_map(|l| &l.activities)
                            .map(|a| a.raw.get());
                        let q = l
                            .into_iter()
                            .flat_map(|l| &l.quarantined)
                            .map(|q| q.raw.get());
                        a.chain(q).map(str::to_string).collect::<Vec<_>>()
                    };
                    assert_eq!(raws(g), raws(w), "{shown}");
                    assert_eq!(g.request_id, w.request_id);
                    assert_eq!(g.error, w.error);
                    assert_eq!(g.next_cursor, w.next_cursor);
                }
                (Err(w), Err(g)) => {
                    assert_eq!(
                        (g.message.clone(), g.line, g.column),
                        at(w),
                        "step {step}, body {shown}"
                    );
                    assert_eq!(g.category, w.classify(), "{shown}");
                }
                (Err(w), Ok(_)) => panic!("accepted what serde_json refuses ({w}): {shown}"),
                (Ok(_), Err(g)) => panic!("refused what serde_json accepts ({g}): {shown}"),
            }
        }
        want.is_ok()
    }

    const BODY: &str = "{\"status\": 200, \"requestId\": \"r-1\", \"result\": [ {\"id\":\"a\\\"b\",\
        \"createdAt\":\"2025-03-04T10:15:30Z\",\"n\":[1,{\"x\":null}],\"s\":\"}]\\\\\"} ,\n \
        {\"id\":\"c\",\"createdAt\":\"2025-03-04T10:15:31Z\",\"t\":true,\"f\":-1.5e3}, 7, \
        \"x\" ],\r\n \"nextCursor\": null, \"other\": {\"k\": [true, false]}}  ";

    #[test]
    fn every_cut_of_a_body_fails_as_serde_json_fails() {
        assert!(check(BODY.as_bytes()));
        for cut in 0..BODY.len() {
            assert!(!check(&BODY.as_bytes()[..cut]) || BODY[cut..].trim().is_empty());
        }
    }

    #[test]
    fn every_corrupted_byte_fails_as_serde_json_fails_or_still_decodes_the_same() {
        let mut decoded = 0;
        for i in 0..BODY.len() {
            for b in *b"x\"}],:\\ \n{[1-" {
                let mut v = BODY.as_bytes().to_vec();
                v[i] = b;
                decoded += usize::from(check(&v));
            }
        }
        // Some corruptions are still JSON (a space for a space, a digit in a number …).
        assert!(decoded > 0);
    }

    #[test]
    fn positions_survive_the_buffer_dropping_what_was_read() {
        // ~4 MB over many lines, broken near the end: the error's line and column are
        // counted across the bytes the buffer dropped.
        let element = "{\"id\":\"i\",\"createdAt\":\"2025-03-04T10:15:30Z\",\"pad\":\"........\"}";
        let mut body = String::from("{\"status\":200,\n\"result\":[\n");
        for i in 0..50_000 {
            body.push_str(&element.replace("\"i\"", &format!("\"i{i}\"")));
            body.push_str(if i % 3 == 0 { ",\n" } else { ", " });
        }
        let good = format!("{}{}]}}", body, element);
        assert!(check(good.as_bytes()));
        let bad = format!("{}{}, {{\"id\" 1}}]}}", body, element);
        assert!(!check(bad.as_bytes()));
    }
}
