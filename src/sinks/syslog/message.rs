//! RFC 5424 messages: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v" …] MSG`.
//!
//! The event's type label, severity and time are its `format::Facts`.
//! - PRI = facility × 8 + severity (the event's level through the sink's mapping).
//! - TIMESTAMP: the event time (`createdAt`, else the envelope times) in UTC with 3 fraction
//!   digits (the RFC allows at most 6).
//! - MSGID: the type label (the activity type; `inventory_<resource>_<action>`,
//!   `finding_<rule>` for the other kinds), anything outside printable US-ASCII replaced by
//!   `_`, cut to 32 characters; `-` when empty.
//! - SD: one element, `kind`, `type` (uncut), `event_id` and `org_id`, with `"`, `\` and `]`
//!   escaped as section 6.3.3 requires, and control characters turned into spaces so no header
//!   part can break a line.
//! - MSG: the event in the sink's format (`json` or `cef` usually) without a BOM; its line
//!   breaks (only inter-token whitespace in JSON; CEF escapes its own) become spaces, so the
//!   message is one line whatever the framing.

use crate::event::Event;
use crate::format::time::push_rfc3339_ms;
use crate::format::{Facts, Format, push_int};

use super::config::SeverityMap;

/// The header parts fixed for the sink's lifetime.
#[derive(Debug, Clone)]
pub struct Header {
    pub facility: u8,
    pub severities: SeverityMap,
    /// Already sanitized: printable ASCII.
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub sd_id: String,
}

/// The RFC's MSGID limit.
const MSGID_MAX: usize = 32;

/// Appends one message (no framing) to `out`; `scratch` is a reusable buffer.
pub fn encode(h: &Header, format: Format, event: &Event, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    let f = Facts::of(event);
    out.push(b'<');
    push_int(
        out,
        i64::from(h.facility) * 8 + i64::from(h.severities.get(f.severity)),
    );
    out.extend_from_slice(b">1 ");
    push_rfc3339_ms(out, f.time_ms);
    out.push(b' ');
    out.extend_from_slice(h.hostname.as_bytes());
    out.push(b' ');
    out.extend_from_slice(h.app_name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(h.procid.as_bytes());
    out.push(b' ');
    push_msgid(out, &f.ty);
    out.extend_from_slice(b" [");
    out.extend_from_slice(h.sd_id.as_bytes());
    param(out, "kind", event.kind.as_str());
    param(out, "type", &f.ty);
    param(out, "event_id", &event.event_id);
    param(out, "org_id", &event.org_id);
    out.extend_from_slice(b"] ");
    scratch.clear();
    format.encode(event, scratch);
    out.extend(scratch.iter().map(|&b| match b {
        b'\n' | b'\r' => b' ',
        b => b,
    }));
}

/// MSGID: printable US-ASCII only, at most 32 characters, `-` when empty.
fn push_msgid(out: &mut Vec<u8>, ty: &str) {
    if ty.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(
        ty.chars()
            .take(MSGID_MAX)
            .map(|c| if c.is_ascii_graphic() { c as u8 } else { b'_' }),
    );
}

/// ` name="value"` with `"`, `\` and `]` escaped and control characters as spaces.
fn param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &b in value.as_bytes() {
        match b {
            b'"' | b'\\' | b']' => out.extend_from_slice(&[b'\\', b]),
            b if b < 0x20 || b == 0x7f => out.push(b' '),
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// Printable US-ASCII, `-` for nothing: for HOSTNAME from the OS.
pub fn sanitize_header_field(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// The longest prefix of `msg` of at most `max` bytes that ends on a UTF-8 boundary.
pub fn utf8_prefix_len(msg: &[u8], max: usize) -> usize {
    if msg.len() <= max {
        return msg.len();
    }
    let mut end = max;
    // Step back over continuation bytes (10xxxxxx) to the start of the cut character.
    while end > 0 && msg[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn header() -> Header {
        Header {
            facility: 4,
            severities: SeverityMap::default(),
            hostname: "host-1".into(),
            app_name: "clickhouse-audit".into(),
            procid: "42".into(),
            sd_id: "chaudit@32473".into(),
        }
    }

    fn activity(payload: &str) -> Event {
        Event {
            seq: 1,
            event_id: "activity:org-1:a-1".into(),
            kind: EventKind::Activity,
            org_id: "org-1".into(),
            occurred_at: "2025-03-04T10:15:30Z".into(),
            observed_at: "2025-03-04T10:16:00Z".into(),
            payload: payload.into(),
        }
    }

    fn render(event: &Event, format: Format) -> String {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        encode(&header(), format, event, &mut scratch, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_plain_activity_renders_every_header_part() {
        let e = activity(
            r#"{"id":"a-1","createdAt":"2025-03-04T10:15:30.123456Z","type":"key_create"}"#,
        );
        let msg = render(&e, Format::Json);
        // key_create is catalogued Medium → warning (4); auth (4) * 8 + 4 = 36.
        assert!(
            msg.starts_with(
                "<36>1 2025-03-04T10:15:30.123Z host-1 clickhouse-audit 42 key_create \
                 [chaudit@32473 kind=\"activity\" type=\"key_create\" event_id=\"activity:org-1:a-1\" org_id=\"org-1\"] {\"event_id\""
            ),
            "{msg}"
        );
    }

    #[test]
    fn hostile_types_are_escaped_in_sd_and_cut_in_msgid() {
        let ty = "evil]\\\"type\nwith spaces and a very long tail that goes on";
        let payload = serde_json::json!({"id":"x","type":ty}).to_string();
        let msg = render(&activity(&payload), Format::Cef);
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
        let msgid = msg.split(' ').nth(5).unwrap();
        assert_eq!(msgid, "evil]\\\"type_with_spaces_and_a_ve");
        assert_eq!(msgid.len(), 32);
        assert!(
            msg.contains("type=\"evil\\]\\\\\\\"type with spaces"),
            "{msg}"
        );
    }

    #[test]
    fn empty_types_give_a_nil_msgid_and_json_line_breaks_become_spaces() {
        let msg = render(
            &activity("{\n\"id\": \"a\",\n\"type\": \"\"\n}"),
            Format::Raw,
        );
        assert_eq!(msg.split(' ').nth(5), Some("-"));
        assert!(msg.ends_with("{ \"id\": \"a\", \"type\": \"\" }"), "{msg}");
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let s = "ab🚀cd".as_bytes(); // 🚀 is 4 bytes at 2..6
        assert_eq!(utf8_prefix_len(s, 100), s.len());
        for (max, want) in [(2, 2), (3, 2), (4, 2), (5, 2), (6, 6), (7, 7)] {
            assert_eq!(utf8_prefix_len(s, max), want, "max {max}");
        }
    }
}
