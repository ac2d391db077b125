//! Test fixtures the format modules share: one sample event and a renderer that parses a JSON
//! format's record back (so ecs and ocsf tests assert on fields, not bytes).

use crate::event::{Event, EventKind};

/// A `kind` event of org `org-1` with id `activity:org-1:a1`, seen at 10:15:30 and stored
/// 30.123456 s later, carrying `payload`.
pub fn event(kind: EventKind, payload: &str) -> Event {
    Event {
        seq: 1,
        event_id: "activity:org-1:a1".into(),
        kind,
        org_id: "org-1".into(),
        occurred_at: "2025-03-04T10:15:30Z".into(),
        observed_at: "2025-03-04T10:16:00.123456Z".into(),
        payload: payload.into(),
    }
}

/// `e` through `encode`, read back as JSON (panics with the record if it is not JSON).
pub fn render_json(encode: fn(&Event, &mut Vec<u8>), e: &Event) -> serde_json::Value {
    let mut out = Vec::new();
    encode(e, &mut out);
    serde_json::from_slice(&out)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&out)))
}
