//! The `json` envelope and the `raw` format. The payload is copied verbatim (never re-parsed),
//! so unknown fields, key order and number spelling of the API object survive; only line
//! breaks between its tokens become spaces (`write::push_verbatim`), so every record is one line.

use super::write::{push_json_str, push_verbatim};
use crate::event::{Event, EventKind};

/// `{"event_id":…,"kind":…,"org_id":…,"occurred_at":…,"observed_at":…,"activity":{verbatim}}`;
/// inventory and finding payload fields are merged after the envelope fields.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    push_envelope_head(out, event);
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

/// `{"event_id":…,"kind":"…","org_id":…` — the identity members every envelope-shaped record
/// opens with (this one, and the ClickHouse sink's rows); the caller continues and closes it.
pub fn push_envelope_head(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(b"{\"event_id\":");
    push_json_str(out, &event.event_id);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(event.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"org_id\":");
    push_json_str(out, &event.org_id);
}

/// `raw`: the verbatim activity; other kinds fall back to the envelope.
pub fn encode_raw(event: &Event, out: &mut Vec<u8>) {
    match event.kind {
        EventKind::Activity => push_verbatim(out, &event.payload),
        _ => encode(event, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(payload: &str) -> Event {
        Event {
            event_id: "activity:org-1:a\"1".into(),
            ..crate::format::testing::event(EventKind::Activity, payload)
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
