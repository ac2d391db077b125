//! `Event`: one outbox row as sinks see it — the stable envelope fields plus the verbatim JSON
//! payload (the activity object exactly as the API sent it, or an inventory/finding body) — and
//! the constructors of every `event_id`. What formats and sinks derive from an event (its type
//! label, severity and time) is `format::facts`.

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
    /// Stable id receivers deduplicate on, made by the constructors below (e.g.
    /// `activity:<org_id>:<activity id>`).
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

/// Event identity. Every stored event's `event_id` is made here and nowhere else: the outbox
/// inserts with `ON CONFLICT (event_id) DO NOTHING` and receivers deduplicate on it, so an id
/// must be the same text every time the same fact is seen (re-polls, restarts, re-deliveries)
/// and must never change format: stores and SIEMs hold ids made by earlier releases.
impl Event {
    /// `activity:<org>:<id>`: the organization and the API's own activity id, which the API
    /// never reuses; overlapping poll windows return the same activity, hence the same id.
    pub fn activity_id(org_id: &str, activity_id: &str) -> String {
        format!("activity:{org_id}:{activity_id}")
    }

    /// `inventory:<org>:<resource>:<object id>:<revision>:<tag>`: one change of one inventoried
    /// object. `resource` is the singular kind (`service`, `key`, …), `revision` the object's
    /// snapshot revision after this change (it only grows, even across delete and re-create),
    /// `tag` the first 16 characters of `hash` — the hex SHA-256 of the object's canonical JSON
    /// after the change, or `deleted`. A re-run of the same diff makes the same id; a new
    /// revision or content makes a new one.
    pub fn inventory_id(
        org_id: &str,
        resource: &str,
        object_id: &str,
        revision: i64,
        hash: &str,
    ) -> String {
        let tag = hash.get(..16).unwrap_or(hash);
        format!("inventory:{org_id}:{resource}:{object_id}:{revision}:{tag}")
    }

    /// `finding:<org>:<rule>:<resource id>:<status>:<occurrence>`: one transition of one
    /// finding ([`Event::finding_key`] plus the transition). `status` is `open` or `resolved`;
    /// `occurrence` counts how often the finding opened, so a finding that clears and comes
    /// back gets new ids while a re-evaluation of the same state repeats the old one.
    pub fn finding_id(
        org_id: &str,
        rule: &str,
        resource_id: &str,
        status: &str,
        occurrence: i64,
    ) -> String {
        format!("finding:{org_id}:{rule}:{resource_id}:{status}:{occurrence}")
    }

    /// `<org>:<rule>:<resource id>`: a finding across all its transitions (the OCSF
    /// `finding_info.uid`), so the open and the resolution correlate.
    pub fn finding_key(org_id: &str, rule: &str, resource_id: &str) -> String {
        format!("{org_id}:{rule}:{resource_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores and receivers deduplicate on these texts: they are pinned, byte for byte.
    #[test]
    fn ids_keep_their_format() {
        assert_eq!(Event::activity_id("org-1", "a-9"), "activity:org-1:a-9");
        assert_eq!(
            Event::inventory_id("org-1", "key", "k1", 3, "0123456789abcdef0123456789abcdef"),
            "inventory:org-1:key:k1:3:0123456789abcdef"
        );
        assert_eq!(
            Event::inventory_id("org-1", "service", "s1", 4, "deleted"),
            "inventory:org-1:service:s1:4:deleted"
        );
        assert_eq!(
            Event::finding_id("org-1", "key_disabled", "k1", "resolved", 2),
            "finding:org-1:key_disabled:k1:resolved:2"
        );
        assert_eq!(
            Event::finding_key("org-1", "key_disabled", "k1"),
            "org-1:key_disabled:k1"
        );
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [
            EventKind::Activity,
            EventKind::Inventory,
            EventKind::Finding,
        ] {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("Activity"), None);
    }
}
