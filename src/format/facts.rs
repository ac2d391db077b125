//! The facts every encoder derives from an event, derived here once: its type label, its
//! severity and its time. The SIEM formats (ecs, ocsf, cef) and the sinks that put these facts
//! in their own headers or columns (syslog, Splunk HEC, ClickHouse) read them from `Facts`
//! instead of re-deriving them, so a type label or a time never differs between two outputs of
//! the same event.
//!
//! | kind      | `ty`                                | `severity`                             | `time_ms` from                          |
//! |-----------|-------------------------------------|----------------------------------------|-----------------------------------------|
//! | activity  | `type` (blank → `""`)               | the catalogue's, by `type`             | `createdAt`, `occurred_at`, `observed_at` |
//! | inventory | `inventory_<resource>_<action>`     | `observed` → Info, other actions → Low | `occurred_at`, `observed_at`            |
//! | finding   | `finding_<rule>`                    | the body's `severity`, else Medium     | `occurred_at`, `observed_at`            |
//!
//! Missing or blank `resource`, `action` and `rule` read as `resource`, `observed` and
//! `unknown_rule`; a time that never parses is 0 (the epoch).

use std::borrow::Cow;

use super::catalog::{self, Severity};
use super::time::first_time_ms;
use super::view::{ActivityView, FindingView, InventoryView, parse_object};
use crate::event::{Event, EventKind};

/// What an event is, how bad it is and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The type label: an activity's `type` (`""` when absent or blank),
    /// `inventory_<resource>_<action>`, or `finding_<rule>`.
    pub ty: Cow<'a, str>,
    pub severity: Severity,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
}

impl<'a> Facts<'a> {
    /// The facts of `event`, reading its payload once. Encoders that already hold the payload's
    /// view call [`Facts::activity`], [`Facts::inventory`] or [`Facts::finding`] instead.
    pub fn of(event: &'a Event) -> Facts<'a> {
        match event.kind {
            EventKind::Activity => {
                let a = parse_object::<ActivityView>(&event.payload).unwrap_or_default();
                let Facts {
                    severity, time_ms, ..
                } = Facts::activity(event, &a);
                let ty = match a.kind.0 {
                    Some(ty) if !ty.trim().is_empty() => ty,
                    _ => Cow::Borrowed(""),
                };
                Facts {
                    ty,
                    severity,
                    time_ms,
                }
            }
            EventKind::Inventory => {
                Facts::inventory(event, &parse_object(&event.payload).unwrap_or_default())
            }
            EventKind::Finding => {
                Facts::finding(event, &parse_object(&event.payload).unwrap_or_default())
            }
        }
    }

    /// The facts of an activity whose payload reads as `a`.
    pub fn activity(event: &'a Event, a: &'a ActivityView<'_>) -> Facts<'a> {
        let ty = a.kind.non_empty().unwrap_or("");
        Facts::activity_with(event, a, &catalog::info_for(ty, a.key_update_type.get()))
    }

    /// `activity` for an encoder that already looked the type up in the catalogue (`info`):
    /// one lookup per event, not two.
    pub fn activity_with(
        event: &'a Event,
        a: &'a ActivityView<'_>,
        info: &catalog::TypeInfo,
    ) -> Facts<'a> {
        Facts {
            ty: Cow::Borrowed(a.kind.non_empty().unwrap_or("")),
            severity: info.severity,
            time_ms: first_time_ms(&[
                a.created_at.get(),
                Some(&event.occurred_at),
                Some(&event.observed_at),
            ]),
        }
    }

    /// The facts of an inventory event whose payload reads as `v`.
    pub fn inventory(event: &Event, v: &InventoryView<'_>) -> Facts<'static> {
        let resource = v.resource.non_empty().unwrap_or("resource");
        let action = v.action.non_empty().unwrap_or("observed");
        Facts {
            ty: Cow::Owned(format!("inventory_{resource}_{action}")),
            severity: if action == "observed" {
                Severity::Info
            } else {
                Severity::Low
            },
            time_ms: envelope_time_ms(event),
        }
    }

    /// The facts of a finding whose payload reads as `f`.
    pub fn finding(event: &Event, f: &FindingView<'_>) -> Facts<'static> {
        let rule = f.rule.non_empty().unwrap_or("unknown_rule");
        Facts {
            ty: Cow::Owned(format!("finding_{rule}")),
            severity: f
                .severity
                .get()
                .and_then(Severity::parse)
                .unwrap_or(Severity::Medium),
            time_ms: envelope_time_ms(event),
        }
    }
}

/// Inventory and findings carry no time of their own: the envelope's.
fn envelope_time_ms(event: &Event) -> i64 {
    first_time_ms(&[Some(&event.occurred_at), Some(&event.observed_at)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, payload: &str) -> Event {
        Event {
            seq: 1,
            event_id: "e".into(),
            kind,
            org_id: "org-1".into(),
            occurred_at: "1970-01-01T00:00:02Z".into(),
            observed_at: "1970-01-01T00:00:03Z".into(),
            payload: payload.into(),
        }
    }

    fn facts(kind: EventKind, payload: &str) -> (String, Severity, i64) {
        let e = event(kind, payload);
        let f = Facts::of(&e);
        (f.ty.into_owned(), f.severity, f.time_ms)
    }

    #[test]
    fn activities_take_type_severity_and_time_from_the_payload() {
        let (ty, severity, time) = facts(
            EventKind::Activity,
            r#"{"type":"key_create","createdAt":"1970-01-01T00:00:01Z"}"#,
        );
        assert_eq!(ty, "key_create");
        assert_eq!(severity, catalog::info_for("key_create", None).severity);
        assert_eq!(time, 1000);
        let (ty, _, time) = facts(EventKind::Activity, r#"{"type":"  ","createdAt":"no"}"#);
        assert_eq!((ty.as_str(), time), ("", 2000));
        let escaped = facts(EventKind::Activity, r#"{"type":"a\"b"}"#).0;
        assert_eq!(escaped, "a\"b");
    }

    #[test]
    fn inventory_and_findings_label_themselves_and_use_the_envelope_time() {
        assert_eq!(
            facts(
                EventKind::Inventory,
                r#"{"resource":"key","action":"deleted"}"#
            ),
            ("inventory_key_deleted".into(), Severity::Low, 2000)
        );
        assert_eq!(
            facts(EventKind::Inventory, "not json"),
            ("inventory_resource_observed".into(), Severity::Info, 2000)
        );
        assert_eq!(
            facts(
                EventKind::Finding,
                r#"{"rule":"open_ip_access","severity":"critical"}"#
            ),
            ("finding_open_ip_access".into(), Severity::Critical, 2000)
        );
        let mut e = event(EventKind::Finding, "{}");
        e.occurred_at = "junk".into();
        let f = Facts::of(&e);
        assert_eq!(
            (f.ty.as_ref(), f.severity, f.time_ms),
            ("finding_unknown_rule", Severity::Medium, 3000)
        );
    }
}
