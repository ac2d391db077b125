//! Fuzz target `formats`: one event built from the input, encoded in every `Format` (json, raw,
//! ecs, ocsf, cef) and as an RFC 5424 syslog message (`sinks::syslog::message::encode`).
//!
//! Input: 8 header bytes (kind, syslog facility, the 5 mapped severities, spare), then either
//! a JSON object text, taken verbatim as the payload the way the API sent it (any spacing,
//! escapes, number spelling; event id and `occurred_at` derived from its `id`/`createdAt` as
//! the poller does), so real activities are seeds; or anything else, read with `arbitrary` as
//! hostile envelope strings plus a JSON tree over the keys the formats map.
//!
//! Asserts, beyond "no panic":
//! - json/ecs/ocsf: one line (no raw CR/LF), a JSON object (read as `Value` when the payload
//!   is; syntax only when it holds what `Value` refuses, e.g. `1e999`), with the event id where
//!   the format puts it (json `event_id`, ecs `event.id`, ocsf `metadata.uid`), json keeping the
//!   activity as sent, ocsf `type_uid = class_uid * 100 + activity_id`.
//! - raw: an activity's exact payload bytes, except that CR/LF between tokens are spaces (so a
//!   record is one line; other kinds: the json envelope).
//! - cef: one line, `CEF:0|ClickHouse|ClickHouse Cloud|`, exactly 7 unescaped header pipes,
//!   an extension whose every unescaped `=` follows a key this exporter writes, `rt` first and
//!   `cs2` = the escaped event id (same checks as tests/it/formats.rs).
//! - syslog: one line, `<PRI>1 ` with PRI = facility * 8 + a mapped severity, a 24-byte UTC
//!   timestamp, a 1–32 byte printable MSGID, SD params escaped per RFC 5424 §6.3.3, and the
//!   MSG equal to the format's record with CR/LF as spaces.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use clickhouse_audit_exporter::event::{Event, EventKind};
use clickhouse_audit_exporter::format::{Format, catalog, view};
use clickhouse_audit_exporter::sinks::syslog::config::SeverityMap;
use clickhouse_audit_exporter::sinks::syslog::message::{self, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;

/// The payload keys the formats read (from tests/it/formats.rs).
const KEYS: &[&str] = &[
    "id",
    "createdAt",
    "type",
    "actorType",
    "actorId",
    "actorDetails",
    "actorIpAddress",
    "organizationId",
    "serviceId",
    "userAgent",
    "targetKeyId",
    "keyUpdateType",
    "targetRoleIds",
    "targetRoleNames",
    "targetActorIds",
    "targetResourceIds",
    "resource",
    "resource_id",
    "action",
    "changed",
    "before",
    "after",
    "rule",
    "status",
    "severity",
    "summary",
    "name",
];

/// Strings the formats treat specially, besides anything at all.
#[derive(Arbitrary, Debug)]
enum Text {
    Any(String),
    Type(u8),
    Time(i64),
    Ipv4([u8; 4]),
    Ipv6([u16; 8]),
    Severity(u8),
}

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Any(s) => s.clone(),
            Text::Type(i) => {
                let types: Vec<&str> = catalog::types().collect();
                types[usize::from(*i) % types.len()].to_string()
            }
            Text::Time(ms) => {
                let mut out = Vec::new();
                view::push_rfc3339_ms(&mut out, *ms % 253_402_300_799_999);
                String::from_utf8(out).expect("ASCII")
            }
            Text::Ipv4(o) => std::net::Ipv4Addr::from(*o).to_string(),
            Text::Ipv6(s) => std::net::Ipv6Addr::from(*s).to_string(),
            Text::Severity(i) => ["info", "low", "medium", "high", "critical", "bogus"]
                [usize::from(*i) % 6]
                .to_string(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Arr(Vec<Json>),
    Obj(Vec<(Key, Json)>),
}

impl Json {
    fn to_value(&self, depth: usize) -> Value {
        if depth > 16 {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::from(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => Value::from(*f), // NaN and infinities become null
            Json::Str(t) => Value::from(t.render()),
            Json::Arr(items) => Value::Array(items.iter().map(|j| j.to_value(depth + 1)).collect()),
            Json::Obj(members) => object(members, depth + 1),
        }
    }
}

fn object(members: &[(Key, Json)], depth: usize) -> Value {
    Value::Object(
        members
            .iter()
            .map(|(k, v)| {
                let k = match k {
                    Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_string(),
                    Key::Any(s) => s.clone(),
                };
                (k, v.to_value(depth + 1))
            })
            .collect(),
    )
}

/// Hostile envelope strings and a payload tree, for input that is not a JSON object.
#[derive(Arbitrary, Debug)]
struct Input {
    event_id: String,
    org_id: String,
    occurred_at: Text,
    observed_at: Text,
    hostname: String,
    payload: Vec<(Key, Json)>,
}

/// The payload as the verbatim text of a JSON object, if `rest` is one.
fn verbatim_object(rest: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(rest).ok()?;
    // Bounded nesting: encoders add a few levels, and `Value` stops at 128.
    if text.bytes().filter(|b| matches!(b, b'{' | b'[')).count() > 64 {
        return None;
    }
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    raw.get().starts_with('{').then_some(raw.get())
}

/// The event for `rest`, and the syslog hostname.
fn event(kind: EventKind, rest: &[u8]) -> Option<(Event, String)> {
    if let Some(payload) = verbatim_object(rest) {
        // As the poller builds it: `<kind>:<org>:<id>`, `occurred_at` = `createdAt` as sent.
        let v: Option<Value> = serde_json::from_str(payload).ok();
        let field = |k: &str| v.as_ref().and_then(|v| v[k].as_str().map(str::to_string));
        let id = field("id").unwrap_or_else(|| "x".into());
        let event = Event {
            seq: 1,
            event_id: format!("{}:org-1:{id}", kind.as_str()),
            kind,
            org_id: "org-1".into(),
            occurred_at: field("createdAt").unwrap_or_else(|| "2025-03-04T10:15:30Z".into()),
            observed_at: "2025-03-04T10:16:00.123456Z".into(),
            payload: payload.to_string(),
        };
        return Some((event, "host-1".into()));
    }
    let input = Input::arbitrary_take_rest(Unstructured::new(rest)).ok()?;
    let event = Event {
        seq: 1,
        event_id: input.event_id,
        kind,
        org_id: input.org_id,
        occurred_at: input.occurred_at.render(),
        observed_at: input.observed_at.render(),
        payload: object(&input.payload, 0).to_string(),
    };
    Some((event, input.hostname))
}

/// A JSON record: one line and an object; read as `Value` when the payload reads as one.
fn assert_json_record(format: Format, text: &str, strict: bool) -> Option<Value> {
    assert!(
        !text.contains(['\n', '\r']),
        "{}: a record is one line: {text:?}",
        format.as_str()
    );
    if strict {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", format.as_str()));
        assert!(v.is_object(), "{}: not an object: {text}", format.as_str());
        Some(v)
    } else {
        let raw: Box<RawValue> = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", format.as_str()));
        assert!(
            raw.get().starts_with('{'),
            "{}: not an object",
            format.as_str()
        );
        None
    }
}

/// The spec's extension value escaping, for comparisons.
fn cef_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .chars()
        .map(|c| if c.is_ascii_control() { ' ' } else { c })
        .collect()
}

const CEF_KEYS: &[&str] = &[
    "rt",
    "cat",
    "act",
    "outcome",
    "externalId",
    "suid",
    "suser",
    "src",
    "requestClientApplication",
    "duser",
    "msg",
    "cs1",
    "cs2",
    "cs3",
    "cs4",
    "cs5",
    "cs6",
    "cs1Label",
    "cs2Label",
    "cs3Label",
    "cs4Label",
    "cs5Label",
    "cs6Label",
    "flexString1",
    "flexString2",
    "flexString1Label",
    "flexString2Label",
];

/// Splits a CEF extension into `(key, raw value)` pairs the way receivers do (see
/// tests/it/formats.rs `cef_extension`).
fn cef_extension(ext: &str) -> Vec<(String, String)> {
    let bytes = ext.as_bytes();
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                eqs.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut value_start = 0;
    for (n, &eq) in eqs.iter().enumerate() {
        let key_start = ext[..eq].rfind(' ').map_or(0, |s| s + 1);
        let key = &ext[key_start..eq];
        assert!(
            (n == 0 || key_start > value_start) && CEF_KEYS.contains(&key),
            "unescaped `=` after {key:?} in {ext:?}"
        );
        if let Some(last) = pairs.last_mut() {
            last.1 = ext[value_start..key_start - 1].to_string();
        }
        pairs.push((key.to_string(), String::new()));
        value_start = eq + 1;
    }
    if let Some(last) = pairs.last_mut() {
        last.1 = ext[value_start..].to_string();
    }
    pairs
}

fn assert_cef(event: &Event, text: &str) {
    assert!(
        !text.contains(['\n', '\r']),
        "a CEF record is one line: {text:?}"
    );
    assert!(
        text.starts_with("CEF:0|ClickHouse|ClickHouse Cloud|"),
        "{text}"
    );
    let mut pipes = 0;
    let mut escaped = false;
    let mut ext_start = None;
    for (i, c) in text.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '|') => {
                pipes += 1;
                if pipes == 7 {
                    ext_start = Some(i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let ext = &text[ext_start.unwrap_or_else(|| panic!("7 header fields: {text}"))..];
    let pairs = cef_extension(ext);
    assert_eq!(pairs.first().map(|p| p.0.as_str()), Some("rt"), "{ext}");
    assert!(
        pairs
            .iter()
            .any(|(k, v)| k == "cs2" && *v == cef_escape(&event.event_id)),
        "cs2 carries the event id: {ext}"
    );
}

/// `<PRI>1 TS HOST APP PROCID MSGID [SD] MSG`, checked part by part.
fn assert_syslog(h: &Header, msg: &[u8], record: &[u8]) {
    let text = std::str::from_utf8(msg).expect("UTF-8");
    assert!(
        !text.contains(['\n', '\r']),
        "a syslog message is one line: {text:?}"
    );
    let rest = text.strip_prefix('<').expect("<PRI>");
    let (pri, rest) = rest.split_once(">1 ").expect("<PRI>1 ");
    let pri: u16 = pri.parse().expect("PRI is a number");
    let severity = pri - u16::from(h.facility) * 8;
    assert!(
        h.severities.0.iter().any(|&s| u16::from(s) == severity),
        "PRI {pri}"
    );
    let (ts, rest) = rest.split_at(24);
    assert!(
        view::parse_time_ms(ts).is_some() && ts.ends_with('Z'),
        "TIMESTAMP {ts:?}"
    );
    let rest = rest.strip_prefix(' ').expect("SP");
    let prefix = format!("{} {} {} ", h.hostname, h.app_name, h.procid);
    let rest = rest
        .strip_prefix(&prefix)
        .expect("HOSTNAME APP-NAME PROCID");
    let (msgid, rest) = rest.split_once(' ').expect("MSGID SP");
    assert!(
        (1..=32).contains(&msgid.len()) && msgid.bytes().all(|b| b.is_ascii_graphic()),
        "MSGID {msgid:?}"
    );
    let rest = rest.strip_prefix('[').expect("[SD");
    let rest = rest.strip_prefix(h.sd_id.as_str()).expect("SD-ID");
    // ` name="value"` params: inside a value `"`, `\` and `]` only escaped.
    let b = rest.as_bytes();
    let mut i = 0;
    let mut names = Vec::new();
    while b[i] == b' ' {
        let eq = i + rest[i..].find("=\"").expect("name=\"");
        names.push(&rest[i + 1..eq]);
        i = eq + 2;
        loop {
            match b[i] {
                b'\\' => {
                    assert!(
                        matches!(b[i + 1], b'"' | b'\\' | b']'),
                        "bad SD escape in {rest:?}"
                    );
                    i += 2;
                }
                b'"' => break,
                b']' => panic!("unescaped ] in an SD value: {rest:?}"),
                c => {
                    assert!(c >= 0x20 && c != 0x7f, "control byte in SD");
                    i += 1;
                }
            }
        }
        i += 1;
    }
    assert_eq!(names, ["kind", "type", "event_id", "org_id"]);
    let body = rest[i..].strip_prefix("] ").expect("] MSG");
    let flat: Vec<u8> = record
        .iter()
        .map(|&c| if c == b'\n' || c == b'\r' { b' ' } else { c })
        .collect();
    assert_eq!(
        body.as_bytes(),
        flat.as_slice(),
        "MSG is the record on one line"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let kind = [
        EventKind::Activity,
        EventKind::Inventory,
        EventKind::Finding,
    ][usize::from(head[0] % 3)];
    let Some((event, hostname)) = event(kind, rest) else {
        return;
    };
    let payload_value: Option<Value> = serde_json::from_str(&event.payload).ok();
    let strict = payload_value.is_some();
    let mut out = Vec::new();
    for &format in Format::ALL {
        out.clear();
        format.encode(&event, &mut out);
        let text = std::str::from_utf8(&out).expect("encoders write UTF-8");
        match (format, kind) {
            (Format::Raw, EventKind::Activity) => {
                // The activity as received; line breaks between tokens as spaces.
                let want = event.payload.trim().replace(['\n', '\r'], " ");
                assert_eq!(text, want, "raw is the activity as received");
            }
            (Format::Json | Format::Raw, _) => {
                let v = assert_json_record(format, text, strict);
                // Inventory and finding payloads (ours) are merged into the envelope.
                if let (Some(v), EventKind::Activity) = (v, kind) {
                    assert_eq!(v["event_id"], event.event_id.as_str());
                    assert_eq!(v["kind"], kind.as_str());
                    assert_eq!(
                        Some(&v["activity"]),
                        payload_value.as_ref(),
                        "activity kept"
                    );
                }
            }
            (Format::Ecs, _) => {
                if let Some(v) = assert_json_record(format, text, strict) {
                    assert_eq!(v["event"]["id"], event.event_id.as_str());
                    assert!(v["@timestamp"].is_string());
                }
            }
            (Format::Ocsf, _) => {
                if let Some(v) = assert_json_record(format, text, strict) {
                    assert_eq!(v["metadata"]["uid"], event.event_id.as_str());
                    let class = v["class_uid"].as_i64().expect("class_uid");
                    let activity = v["activity_id"].as_i64().expect("activity_id");
                    assert_eq!(v["type_uid"].as_i64(), Some(class * 100 + activity));
                    assert!(v["time"].is_i64());
                }
            }
            (Format::Cef, _) => assert_cef(&event, text),
        }
    }

    let header = Header {
        facility: head[1] % 24,
        severities: SeverityMap([head[2], head[3], head[4], head[5], head[6]].map(|s| s % 8)),
        hostname: message::sanitize_header_field(&hostname, 255),
        app_name: "clickhouse-audit".into(),
        procid: "42".into(),
        sd_id: "chaudit@32473".into(),
    };
    let (mut scratch, mut msg) = (Vec::new(), Vec::new());
    for &format in Format::ALL {
        msg.clear();
        message::encode(&header, format, &event, &mut scratch, &mut msg);
        out.clear();
        format.encode(&event, &mut out);
        assert_syslog(&header, &msg, &out);
    }
});
