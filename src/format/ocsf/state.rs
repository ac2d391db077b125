//! OCSF mapping of the exporter's own events: inventory changes as Entity Management (3004)
//! and posture findings as Detection Finding (2004).

use super::{Head, close, metadata, open};
use crate::event::Event;
use crate::format::catalog::{Act, Class, Severity};
use crate::format::facts::Facts;
use crate::format::view::{FindingView, InventoryView, parse_or_default};
use crate::format::write::{push_json_str, push_verbatim};

pub(super) fn encode_inventory(event: &Event, out: &mut Vec<u8>) {
    let (v, is_object) = parse_or_default::<InventoryView>(&event.payload);
    // OCSF's own reading of the action: an unknown one is a Read at Info, where
    // `Facts::severity` says Low.
    let (act, severity) = match v.action.get().unwrap_or("") {
        "created" => (Act::Create, Severity::Low),
        "updated" => (Act::Update, Severity::Low),
        "deleted" => (Act::Delete, Severity::Low),
        _ => (Act::Read, Severity::Info), // observed: first sight, a baseline
    };
    let class = Class::EntityManagement;
    open(
        &Head {
            class_uid: class.uid(),
            class_name: class.name(),
            category_uid: class.category_uid(),
            category_name: class.category_name(),
            activity_id: class.activity_id(act).unwrap_or(99),
            activity_name: act.caption(),
            severity,
            success: Some(true),
            time_ms: Facts::inventory(event, &v).time_ms,
        },
        out,
    );
    let resource = v.resource.non_empty().unwrap_or("resource");
    out.extend_from_slice(b",\"message\":");
    push_json_str(
        out,
        &format!(
            "{resource} {} {}",
            v.resource_id.get().unwrap_or(""),
            v.action.get().unwrap_or("observed")
        ),
    );
    metadata(event, None, &event.occurred_at, "inventory", false, out);
    let name = v.object_name();
    let push_entity = |out: &mut Vec<u8>, data: Option<&serde_json::value::RawValue>| {
        out.extend_from_slice(b"{\"type\":");
        push_json_str(out, resource);
        if let Some(uid) = v.resource_id.non_empty() {
            out.extend_from_slice(b",\"uid\":");
            push_json_str(out, uid);
        }
        if let Some(name) = &name {
            out.extend_from_slice(b",\"name\":");
            push_json_str(out, name);
        }
        if let Some(data) = data.filter(|d| d.get().starts_with('{')) {
            out.extend_from_slice(b",\"data\":");
            push_verbatim(out, data.get());
        }
        out.push(b'}');
    };
    out.extend_from_slice(b",\"entity\":");
    push_entity(out, v.before.or(v.after));
    if v.after.is_some_and(|a| a.get().starts_with('{')) {
        out.extend_from_slice(b",\"entity_result\":");
        push_entity(out, v.after);
    }
    close(event, is_object, out);
}

pub(super) fn encode_finding(event: &Event, out: &mut Vec<u8>) {
    let (f, is_object) = parse_or_default::<FindingView>(&event.payload);
    let resolved = f.is_resolved();
    let facts = Facts::finding(event, &f);
    let rule = f.rule.non_empty().unwrap_or("unknown_rule");
    open(
        &Head {
            class_uid: 2004,
            class_name: "Detection Finding",
            category_uid: 2,
            category_name: "Findings",
            activity_id: if resolved { 3 } else { 1 },
            activity_name: if resolved { "Close" } else { "Create" },
            severity: facts.severity,
            success: None,
            time_ms: facts.time_ms,
        },
        out,
    );
    // Finding status (1.3.0 findings): 1 New, 4 Resolved.
    out.extend_from_slice(if resolved {
        b",\"status_id\":4,\"status\":\"Resolved\""
    } else {
        b",\"status_id\":1,\"status\":\"New\""
    });
    let summary = f.summary.non_empty().unwrap_or(rule);
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, summary);
    metadata(event, None, &event.occurred_at, "finding", false, out);
    out.extend_from_slice(b",\"finding_info\":{\"uid\":");
    let resource_id = f.resource_id.get().unwrap_or("");
    push_json_str(out, &Event::finding_key(&event.org_id, rule, resource_id));
    out.extend_from_slice(b",\"title\":");
    push_json_str(out, summary);
    out.extend_from_slice(b",\"types\":[");
    push_json_str(out, rule);
    out.extend_from_slice(b"]}");
    if f.resource.non_empty().is_some() || f.resource_id.non_empty().is_some() {
        out.extend_from_slice(b",\"resources\":[{");
        let mut sep = false;
        if let Some(r) = f.resource.non_empty() {
            out.extend_from_slice(b"\"type\":");
            push_json_str(out, r);
            sep = true;
        }
        if let Some(id) = f.resource_id.non_empty() {
            if sep {
                out.push(b',');
            }
            out.extend_from_slice(b"\"uid\":");
            push_json_str(out, id);
        }
        out.extend_from_slice(b"}]");
    }
    close(event, is_object, out);
}
