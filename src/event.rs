//! `Event`: one outbox row as sinks see it — the stable envelope fields plus the verbatim JSON
//! payload (the activity object exactly as the API sent it, or an inventory/finding body).

/// What an event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Activity,
    Inventory,
    Finding,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Activity => "activity",
            EventKind::Inventory => "inventory",
            EventKind::Finding => "finding",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        match s {
            "activity" => Some(EventKind::Activity),
            "inventory" => Some(EventKind::Inventory),
            "finding" => Some(EventKind::Finding),
            _ => None,
        }
    }
}

/// One stored event, read from the outbox for delivery.
#[derive(Debug, Clone)]
pub struct Event {
    /// Outbox sequence number: sinks' positions point at these.
    pub seq: i64,
    /// Stable id receivers deduplicate on, e.g. `activity:<org_id>:<activity id>`.
    pub event_id: String,
    pub kind: EventKind,
    pub org_id: String,
    /// `createdAt` exactly as the API wrote it (inventory: when the change was seen).
    pub occurred_at: String,
    /// RFC 3339 time this exporter stored the event.
    pub observed_at: String,
    /// Verbatim JSON text. Activities: the API object, byte for byte. Inventory and findings:
    /// an object whose fields are merged into the envelope.
    pub payload: String,
}

impl Event {
    /// `activity:<org>:<id>`: the stable event id of an activity.
    pub fn activity_id(org_id: &str, activity_id: &str) -> String {
        format!("activity:{org_id}:{activity_id}")
    }
}
