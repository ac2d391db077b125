//! The `json` envelope and the `raw` format. The payload is copied verbatim (never re-parsed),
//! so unknown fields, key order and number spelling of the API object survive; only line
//! breaks between its tokens become spaces (`push_verbatim`), so every record is one line.

use crate::event::{Event, EventKind};

/// `{"event_id":…,"kind":…,"org_id":…,"occurred_at":…,"observed_at":…,"activity":{verbatim}}`;
/// inventory and finding payload fields are merged after the envelope fields.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"event_id\":");
    push_json_str(out, &event.event_id);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(event.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"org_id\":");
    push_json_str(out, &event.org_id);
    out.extend_from_slice(b",\"occurred_at\":");
    push_json_str(out, &event.occurred_at);
    out.extend_from_slice(b",\"observed_at\":");
    push_json_str(out, &event.observed_at);
    match event.kind {
        EventKind::Activity => {
            out.extend_from_slice(b",\"activity\":");
            push_verbatim(out, &event.payload);
            out.push(b'}');
        }
        EventKind::Inventory | EventKind::Finding => {
            let body = event.payload.trim();
            // The payload is an object we wrote: splice its members after the envelope's.
            let inner = body
                .strip_prefix('{')
                .and_then(|b| b.strip_suffix('}'))
                .unwrap_or("")
                .trim();
            if !inner.is_empty() {
                out.push(b',');
                push_verbatim(out, inner);
            }
            out.push(b'}');
        }
    }
}

/// `raw`: the verbatim activity; other kinds fall back to the envelope.
pub fn encode_raw(event: &Event, out: &mut Vec<u8>) {
    match event.kind {
        EventKind::Activity => push_verbatim(out, &event.payload),
        _ => encode(event, out),
    }
}

/// Appends the JSON text `payload`, trimmed, with each CR and LF turned into a space. In valid
/// JSON a raw line break can only be whitespace between tokens (inside strings it is escaped),
/// so the value is unchanged, but a pretty-printed API answer no longer splits an NDJSON record
/// over several lines (found by the `formats` fuzz target, issue 8). Compact payloads, the API's
/// usual form, are copied in one piece.
pub fn push_verbatim(out: &mut Vec<u8>, payload: &str) {
    let bytes = payload.trim().as_bytes();
    if !bytes.contains(&b'\n') && !bytes.contains(&b'\r') {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(bytes.iter().map(|&b| match b {
        b'\n' | b'\r' => b' ',
        b => b,
    }));
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    push_json_str_contents(out, s);
    out.push(b'"');
}

/// Appends `s` JSON-escaped, without the quotes (RFC 8259: `"`, `\\` and control characters;
/// everything else, including non-ASCII, verbatim). Runs of plain bytes are copied at once.
pub fn push_json_str_contents(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(payload: &str) -> Event {
        Event {
            seq: 1,
            event_id: "activity:org-1:a\"1".into(),
            kind: EventKind::Activity,
            org_id: "org-1".into(),
            occurred_at: "2025-03-04T10:15:30Z".into(),
            observed_at: "2025-03-04T10:16:00.123456Z".into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn envelope_keeps_the_activity_byte_for_byte() {
        let payload = r#"{"id":"a\"1","createdAt":"2025-03-04T10:15:30Z","type":"service_teleport","n":1.50,"x":{"ü":[]}}"#;
        let mut out = Vec::new();
        encode(&activity(payload), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(&format!(",\"activity\":{payload}}}")),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event_id"], "activity:org-1:a\"1");
        assert_eq!(v["kind"], "activity");
        assert_eq!(v["occurred_at"], "2025-03-04T10:15:30Z");
        assert_eq!(v["activity"]["type"], "service_teleport");
    }

    #[test]
    fn inventory_payload_fields_are_merged_into_the_envelope() {
        let mut e = activity(r#"{"resource":"key","action":"observed"}"#);
        e.kind = EventKind::Inventory;
        let mut out = Vec::new();
        encode(&e, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["kind"], "inventory");
        assert_eq!(v["resource"], "key");
        assert_eq!(v["action"], "observed");
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\",
            "nl\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "ü€😀",
            "\u{2028}",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn a_pretty_printed_payload_stays_on_one_line() {
        // Regression (fuzz target `formats`): line breaks between tokens were copied as is.
        let payload = "{\r\n  \"id\": \"a\\nb\",\n  \"n\": [1,\n 2]\n}\n";
        for kind in [EventKind::Activity, EventKind::Inventory] {
            let mut e = activity(payload);
            e.kind = kind;
            for encode in [encode, encode_raw] {
                let mut out = Vec::new();
                encode(&e, &mut out);
                assert!(!out.contains(&b'\n') && !out.contains(&b'\r'), "{out:?}");
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let id = if kind == EventKind::Activity && v.get("activity").is_some() {
                    &v["activity"]["id"]
                } else {
                    &v["id"]
                };
                assert_eq!(id, "a\nb");
            }
        }
    }

    #[test]
    fn raw_is_the_payload_alone() {
        let mut out = Vec::new();
        encode_raw(&activity(r#"{"id":"x"}"#), &mut out);
        assert_eq!(out, br#"{"id":"x"}"#);
    }
}
