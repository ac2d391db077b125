//! `ocsf`: Open Cybersecurity Schema Framework 1.3.0 events (Amazon Security Lake, Splunk's
//! OCSF add-on, any OCSF pipeline). The class and activity of an activity come from the
//! catalogue (`catalog.rs`, one row per vendor type); every event sets `class_uid`,
//! `category_uid`, `activity_id`, `type_uid = class_uid * 100 + activity_id`, `time` (ms, from
//! `createdAt`), `severity_id`, `metadata.{version, product, uid = event_id}`, `actor`,
//! `src_endpoint.ip` (valid IPs only), `cloud.account.uid` = org, and keeps the verbatim activity
//! as `unmapped` (as `raw_data` text when the payload is not a JSON object).
//!
//! Inventory events → Entity Management (3004): the inventoried object is the managed `entity`
//! and created/updated/deleted/observed line up with its Create/Update/Delete/Read activities.
//! Inventory Info (5001), the Discovery class issue #6 names first, requires a `device` — a host
//! — and ClickHouse services, API keys and members are not hosts.
//! Findings → Detection Finding (2004): open = Create, resolved = Close, with `finding_info`
//! keyed by rule and resource so the open and the resolution correlate.
//! Tests validate the output against the official 1.3.0 schema (pydantic-ocsf).

use super::catalog::{self, Act, Class, Severity};
use super::facts::Facts;
use super::time::parse_time_ms;
use super::view::{ActivityView, FindingView, InventoryView, parse_object, valid_ip};
use super::write::{push_int, push_json_str, push_json_str_contents, push_verbatim};
use crate::event::{Event, EventKind};

pub const OCSF_VERSION: &str = "1.3.0";

pub fn encode(event: &Event, out: &mut Vec<u8>) {
    match event.kind {
        EventKind::Activity => encode_activity(event, out),
        EventKind::Inventory => encode_inventory(event, out),
        EventKind::Finding => encode_finding(event, out),
    }
}

/// The classification and occurrence attributes every event opens with.
struct Head<'s> {
    class_uid: u32,
    class_name: &'s str,
    category_uid: u32,
    category_name: &'s str,
    activity_id: u8,
    activity_name: &'s str,
    severity: Severity,
    /// `Some(true)` Success, `Some(false)` Failure.
    success: Option<bool>,
    time_ms: i64,
}

fn open(h: &Head, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"class_uid\":");
    push_int(out, i64::from(h.class_uid));
    out.extend_from_slice(b",\"class_name\":");
    push_json_str(out, h.class_name);
    out.extend_from_slice(b",\"category_uid\":");
    push_int(out, i64::from(h.category_uid));
    out.extend_from_slice(b",\"category_name\":");
    push_json_str(out, h.category_name);
    out.extend_from_slice(b",\"activity_id\":");
    push_int(out, i64::from(h.activity_id));
    out.extend_from_slice(b",\"activity_name\":");
    push_json_str(out, h.activity_name);
    out.extend_from_slice(b",\"type_uid\":");
    push_int(out, i64::from(h.class_uid) * 100 + i64::from(h.activity_id));
    out.extend_from_slice(b",\"type_name\":\"");
    push_json_str_contents(out, h.class_name);
    out.extend_from_slice(b": ");
    push_json_str_contents(out, h.activity_name);
    out.push(b'"');
    out.extend_from_slice(b",\"severity_id\":");
    push_int(out, i64::from(h.severity.id()));
    out.extend_from_slice(b",\"severity\":\"");
    out.extend_from_slice(h.severity.caption().as_bytes());
    out.push(b'"');
    match h.success {
        Some(true) => out.extend_from_slice(b",\"status_id\":1,\"status\":\"Success\""),
        Some(false) => out.extend_from_slice(b",\"status_id\":2,\"status\":\"Failure\""),
        None => {}
    }
    out.extend_from_slice(b",\"time\":");
    push_int(out, h.time_ms);
}

/// `metadata` (`original_time`: the source's time text, `createdAt` for activities), then
/// `cloud`. `actor_via_host` lists the host profile, through which User Access Management
/// (3005) gets its `actor` attribute.
fn metadata(
    event: &Event,
    event_code: Option<&str>,
    original_time: &str,
    log_name: &str,
    actor_via_host: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b",\"metadata\":{\"version\":\"");
    out.extend_from_slice(OCSF_VERSION.as_bytes());
    out.extend_from_slice(
        b"\",\"product\":{\"name\":\"ClickHouse Cloud\",\"vendor_name\":\"ClickHouse\"},\"uid\":",
    );
    push_json_str(out, &event.event_id);
    if let Some(code) = event_code {
        out.extend_from_slice(b",\"event_code\":");
        push_json_str(out, code);
    }
    out.extend_from_slice(b",\"original_time\":");
    push_json_str(out, original_time);
    if let Some(ms) = parse_time_ms(&event.observed_at) {
        out.extend_from_slice(b",\"logged_time\":");
        push_int(out, ms);
    }
    out.extend_from_slice(b",\"log_name\":\"");
    out.extend_from_slice(log_name.as_bytes());
    out.extend_from_slice(if actor_via_host {
        b"\",\"profiles\":[\"cloud\",\"host\"]}"
    } else {
        b"\",\"profiles\":[\"cloud\"]}"
    });
    out.extend_from_slice(b",\"cloud\":{\"provider\":\"ClickHouse Cloud\",\"account\":{\"uid\":");
    push_json_str(out, &event.org_id);
    out.extend_from_slice(b"}}");
}

/// `"unmapped":{verbatim}` or, for a payload that is not an object, `"raw_data":"…"`; then `}`.
fn close(event: &Event, is_object: bool, out: &mut Vec<u8>) {
    if is_object {
        out.extend_from_slice(b",\"unmapped\":");
        push_verbatim(out, &event.payload);
    } else {
        out.extend_from_slice(b",\"raw_data\":");
        push_json_str(out, &event.payload);
    }
    out.push(b'}');
}

/// OCSF `user.type_id`/`type` of an `actorType`.
fn user_type(actor_type: Option<&str>) -> Option<(u8, &'static str)> {
    Some(match actor_type? {
        "user" => (1, "User"),
        "system" => (3, "System"),
        "support" => (99, "Support"),
        "api" => (99, "API Key"),
        _ => return None,
    })
}

/// A `user` object: `{"uid":…,"name":…,"type_id":…,"type":…}` with what is known; `{}` if
/// nothing is (the classes that require a `user` still get one).
fn push_user(out: &mut Vec<u8>, uid: Option<&str>, name: Option<&str>, ty: Option<(u8, &str)>) {
    out.push(b'{');
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, key: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(key);
    };
    if let Some(uid) = uid {
        field(out, b"\"uid\":");
        push_json_str(out, uid);
    }
    if let Some(name) = name {
        field(out, b"\"name\":");
        push_json_str(out, name);
    }
    if let Some((id, caption)) = ty {
        field(out, b"\"type_id\":");
        push_int(out, i64::from(id));
        out.extend_from_slice(b",\"type\":");
        push_json_str(out, caption);
    }
    out.push(b'}');
}

fn encode_activity(event: &Event, out: &mut Vec<u8>) {
    let parsed = parse_object::<ActivityView>(&event.payload);
    let is_object = parsed.is_some();
    let a = parsed.unwrap_or_default();
    let ty = a.kind.get().unwrap_or("");
    let info = catalog::info_for(ty, a.key_update_type.get());
    let facts = Facts::activity(event, &a);
    let class = info.class;
    let activity_id = info.activity_id();
    let activity_name = if info.act == Act::Other && !ty.is_empty() {
        ty
    } else {
        info.act.caption()
    };
    open(
        &Head {
            class_uid: class.uid(),
            class_name: class.name(),
            category_uid: class.category_uid(),
            category_name: class.category_name(),
            activity_id,
            activity_name,
            severity: facts.severity,
            success: Some(!catalog::is_failure(ty)),
            time_ms: facts.time_ms,
        },
        out,
    );
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, ty);
    metadata(
        event,
        a.kind.get(),
        a.created_at.non_empty().unwrap_or(&event.occurred_at),
        "activity",
        class == Class::UserAccess,
        out,
    );

    let actor_type = user_type(a.actor_type.get());
    let actor_id = a.actor_id.non_empty();
    let details = a.actor_details.non_empty();
    out.extend_from_slice(b",\"actor\":{\"user\":");
    push_user(out, actor_id, details, actor_type);
    out.push(b'}');
    let ip = valid_ip(a.actor_ip_address.get());
    if ip.is_some() || class == Class::ApiActivity {
        // API Activity requires src_endpoint; without an IP it is an empty endpoint.
        out.extend_from_slice(b",\"src_endpoint\":{");
        if let Some(ip) = ip {
            out.extend_from_slice(b"\"ip\":");
            push_json_str(out, ip);
        }
        out.push(b'}');
    }
    if let Some(ua) = a.user_agent.non_empty() {
        out.extend_from_slice(b",\"http_request\":{\"user_agent\":");
        push_json_str(out, ua);
        out.push(b'}');
    }

    match class {
        Class::ApiActivity => {
            out.extend_from_slice(b",\"api\":{\"operation\":");
            push_json_str(out, if ty.is_empty() { "unknown" } else { ty });
            out.extend_from_slice(b",\"service\":{\"name\":\"ClickHouse Cloud\"}}");
            if let Some(service) = a.service_id.non_empty() {
                out.extend_from_slice(b",\"resources\":[{\"uid\":");
                push_json_str(out, service);
                out.extend_from_slice(b",\"type\":\"service\"}]");
            }
        }
        Class::Authentication => {
            // The user who logged in (or failed to) is the actor.
            out.extend_from_slice(b",\"user\":");
            push_user(out, actor_id, details, actor_type);
        }
        Class::AccountChange => {
            out.extend_from_slice(b",\"user\":");
            if catalog::entity_type(ty) == "role" {
                // A role definition: OCSF 3001 covers "a user/role being created, changed…".
                push_user(
                    out,
                    a.target_role_ids.first(),
                    a.target_role_names.first(),
                    Some((99, "Role")),
                );
            } else {
                push_target_user(out, ty, &a, actor_id, details, actor_type);
            }
        }
        Class::UserAccess => {
            out.extend_from_slice(b",\"user\":");
            push_target_user(out, ty, &a, actor_id, details, actor_type);
            out.extend_from_slice(b",\"privileges\":[");
            let roles = if a.target_role_names.is_empty() {
                &a.target_role_ids
            } else {
                &a.target_role_names
            };
            for (i, r) in roles.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(out, r);
            }
            out.push(b']');
        }
        Class::EntityManagement => {
            let entity_type = catalog::entity_type(ty);
            let uid = match entity_type {
                "service" => a.service_id.non_empty(),
                "api_key" => a.target_key_id.non_empty(),
                "organization" => a.organization_id.non_empty().or(Some(&event.org_id)),
                _ => None,
            };
            out.extend_from_slice(b",\"entity\":{\"type\":\"");
            out.extend_from_slice(entity_type.as_bytes());
            out.push(b'"');
            if let Some(uid) = uid {
                out.extend_from_slice(b",\"uid\":");
                push_json_str(out, uid);
            }
            out.push(b'}');
        }
    }
    close(event, is_object, out);
}

/// The account an Account Change / User Access event is about: the first `targetActorIds`
/// entry; else, when the actor acts on themself (join, leave, MFA, profile), the actor; else
/// unknown (`{}`) — e.g. an invitation names no invitee.
fn push_target_user(
    out: &mut Vec<u8>,
    ty: &str,
    a: &ActivityView,
    actor_id: Option<&str>,
    details: Option<&str>,
    actor_type: Option<(u8, &'static str)>,
) {
    if let Some(target) = a.target_actor_ids.first() {
        push_user(out, Some(target), None, None);
    } else if matches!(
        ty,
        "organization_member_join"
            | "organization_member_leave"
            | "organization_member_update_mfa_method"
            | "scim_user_profile_update"
    ) {
        push_user(out, actor_id, details, actor_type);
    } else {
        push_user(out, None, None, None);
    }
}

fn encode_inventory(event: &Event, out: &mut Vec<u8>) {
    let parsed = parse_object::<InventoryView>(&event.payload);
    let is_object = parsed.is_some();
    let v = parsed.unwrap_or_default();
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

fn encode_finding(event: &Event, out: &mut Vec<u8>) {
    let parsed = parse_object::<FindingView>(&event.payload);
    let is_object = parsed.is_some();
    let f = parsed.unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::event;

    fn render(e: &Event) -> serde_json::Value {
        crate::format::testing::render_json(encode, e)
    }

    #[test]
    fn classification_is_consistent() {
        let v = render(&event(
            EventKind::Activity,
            r#"{"id":"a1","createdAt":"2025-03-04T10:15:30Z","type":"service_delete","serviceId":"svc-1","actorType":"api","actorId":"key-1","actorIpAddress":"198.51.100.2"}"#,
        ));
        assert_eq!(v["class_uid"], 3004);
        assert_eq!(v["category_uid"], 3);
        assert_eq!(v["activity_id"], 4);
        assert_eq!(v["type_uid"], 300404);
        assert_eq!(v["time"], 1741083330000i64);
        assert_eq!(v["metadata"]["version"], "1.3.0");
        assert_eq!(v["metadata"]["uid"], "activity:org-1:a1");
        assert_eq!(v["metadata"]["product"]["vendor_name"], "ClickHouse");
        assert_eq!(v["cloud"]["account"]["uid"], "org-1");
        assert_eq!(v["actor"]["user"]["uid"], "key-1");
        assert_eq!(v["actor"]["user"]["type"], "API Key");
        assert_eq!(v["src_endpoint"]["ip"], "198.51.100.2");
        assert_eq!(v["entity"]["uid"], "svc-1");
        assert_eq!(v["entity"]["type"], "service");
        assert_eq!(v["unmapped"]["serviceId"], "svc-1");
    }

    #[test]
    fn unknown_types_are_api_activity_other() {
        let v = render(&event(
            EventKind::Activity,
            r#"{"id":"a1","type":"quantum_entangle"}"#,
        ));
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["activity_id"], 99);
        assert_eq!(v["activity_name"], "quantum_entangle");
        assert_eq!(v["type_uid"], 600399);
        assert_eq!(v["api"]["operation"], "quantum_entangle");
        assert!(v["src_endpoint"].is_object());
    }

    #[test]
    fn role_changes_name_the_roles_as_privileges() {
        let v = render(&event(
            EventKind::Activity,
            r#"{"type":"organization_member_update_roles","targetActorIds":["user/7"],"targetRoleNames":["Admin","Dev"]}"#,
        ));
        assert_eq!(v["class_uid"], 3005);
        assert_eq!(v["user"]["uid"], "user/7");
        assert_eq!(v["privileges"], serde_json::json!(["Admin", "Dev"]));
    }

    #[test]
    fn inventory_and_findings_have_their_classes() {
        let v = render(&event(
            EventKind::Inventory,
            r#"{"resource":"service","resource_id":"s1","action":"updated","changed":["state"],"before":{"name":"prod","state":"running"},"after":{"name":"prod","state":"stopped"}}"#,
        ));
        assert_eq!(v["class_uid"], 3004);
        assert_eq!(v["type_uid"], 300403);
        assert_eq!(v["entity"]["name"], "prod");
        assert_eq!(v["entity_result"]["data"]["state"], "stopped");
        let v = render(&event(
            EventKind::Finding,
            r#"{"rule":"open_ip_access","status":"resolved","severity":"critical","resource":"service","resource_id":"s1"}"#,
        ));
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["type_uid"], 200403);
        assert_eq!(v["severity_id"], 5);
        assert_eq!(v["status"], "Resolved");
        assert_eq!(v["finding_info"]["types"][0], "open_ip_access");
    }
}
