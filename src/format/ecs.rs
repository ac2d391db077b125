//! `ecs`: Elastic Common Schema 8.x documents, one per event, for Elasticsearch / Elastic
//! Security (point a webhook sink at an ingest endpoint, or ship the file with Filebeat).
//!
//! Activities: `@timestamp` ← `createdAt`, `event.id` ← the envelope `event_id` (stable across
//! re-deliveries, so receivers deduplicate on it), `event.action` ← `type`, `event.category` and
//! `event.type` from the catalogue, `user.id` ← `actorId`, `source.ip` ← `actorIpAddress` (only
//! when it is a valid IP: one bad `ip` value makes Elasticsearch reject the whole document),
//! `user_agent.original`, `related.*`, `cloud.account.id` ← org, and the verbatim activity under
//! `clickhouse_cloud.activity`. Inventory events are `event.kind: state`, findings
//! `event.kind: alert`. `event.original` is not written: the verbatim object is already there.

use super::catalog;
use super::facts::Facts;
use super::time::push_rfc3339_ms;
use super::view::{ActivityView, FindingView, InventoryView, parse_or_default, valid_ip};
use super::write::{push_int, push_json_str, push_verbatim};
use crate::event::{Event, EventKind};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

pub fn encode(event: &Event, out: &mut Vec<u8>) {
    match event.kind {
        EventKind::Activity => encode_activity(event, out),
        EventKind::Inventory => encode_inventory(event, out),
        EventKind::Finding => encode_finding(event, out),
    }
}

/// `{"@timestamp":…,"ecs":{"version":…},"event":{"id":…,"kind":…` — the common opening.
fn open(event: &Event, time_ms: i64, kind: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"@timestamp\":\"");
    push_rfc3339_ms(out, time_ms);
    out.extend_from_slice(b"\",\"ecs\":{\"version\":\"");
    out.extend_from_slice(ECS_VERSION.as_bytes());
    out.extend_from_slice(b"\"},\"event\":{\"id\":");
    push_json_str(out, &event.event_id);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
}

/// Closes `event` with provider/dataset/created, then `cloud` and the vendor object's head.
fn close_event(event: &Event, dataset: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b",\"provider\":\"clickhouse_cloud\",\"module\":\"clickhouse_cloud\",\"dataset\":\"",
    );
    out.extend_from_slice(dataset.as_bytes());
    out.extend_from_slice(b"\",\"created\":");
    push_json_str(out, &event.observed_at);
    out.push(b'}');
}

fn cloud(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"cloud\":{\"account\":{\"id\":");
    push_json_str(out, &event.org_id);
    out.extend_from_slice(b"},\"service\":{\"name\":\"ClickHouse Cloud\"}}");
}

/// `"clickhouse_cloud":{"event_id":…,"org_id":…,"kind":…,"<member>":<payload or its text>}}`.
fn vendor(event: &Event, member: &str, payload_is_object: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"clickhouse_cloud\":{\"event_id\":");
    push_json_str(out, &event.event_id);
    out.extend_from_slice(b",\"org_id\":");
    push_json_str(out, &event.org_id);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(event.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(b"\":");
    if payload_is_object {
        push_verbatim(out, &event.payload);
    } else {
        // Not a JSON object (never from the API): keep it, as text.
        push_json_str(out, &event.payload);
    }
    out.extend_from_slice(b"}}");
}

fn encode_activity(event: &Event, out: &mut Vec<u8>) {
    let (a, is_object) = parse_or_default::<ActivityView>(&event.payload);
    let ty = a.kind.get().unwrap_or("");
    let info = catalog::info_for(ty, a.key_update_type.get());
    let facts = Facts::activity_with(event, &a, &info);

    open(event, facts.time_ms, "event", out);
    out.extend_from_slice(b",\"category\":[\"");
    out.extend_from_slice(catalog::ecs_category(ty, info.class).as_bytes());
    out.extend_from_slice(b"\"],\"type\":[\"");
    out.extend_from_slice(info.act.ecs_type().as_bytes());
    out.extend_from_slice(b"\"],\"action\":");
    push_json_str(out, ty);
    out.extend_from_slice(b",\"outcome\":\"");
    out.extend_from_slice(if catalog::is_failure(ty) {
        b"failure"
    } else if catalog::lookup(ty).is_some() {
        b"success"
    } else {
        b"unknown"
    });
    out.extend_from_slice(b"\",\"severity\":");
    push_int(out, i64::from(facts.severity.cef()));
    close_event(event, "clickhouse_cloud.activity", out);

    out.extend_from_slice(b",\"message\":");
    push_json_str(out, ty);

    let actor_id = a.actor_id.non_empty();
    let details = a.actor_details.non_empty();
    if actor_id.is_some() || details.is_some() || !a.target_actor_ids.is_empty() {
        out.extend_from_slice(b",\"user\":{");
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if let Some(id) = actor_id {
            sep(out);
            out.extend_from_slice(b"\"id\":");
            push_json_str(out, id);
        }
        if let Some(d) = details {
            sep(out);
            out.extend_from_slice(b"\"name\":");
            push_json_str(out, d);
        }
        if !a.target_actor_ids.is_empty() {
            sep(out);
            out.extend_from_slice(b"\"target\":{\"id\":");
            push_str_array(out, a.target_actor_ids.iter());
            out.push(b'}');
        }
        out.push(b'}');
    }
    let ip = valid_ip(a.actor_ip_address.get());
    if let Some(ip) = ip {
        out.extend_from_slice(b",\"source\":{\"ip\":");
        push_json_str(out, ip);
        out.push(b'}');
    }
    if let Some(ua) = a.user_agent.non_empty() {
        out.extend_from_slice(b",\"user_agent\":{\"original\":");
        push_json_str(out, ua);
        out.push(b'}');
    }
    let has_users = actor_id.is_some() || details.is_some() || !a.target_actor_ids.is_empty();
    if ip.is_some() || has_users {
        out.extend_from_slice(b",\"related\":{");
        if let Some(ip) = ip {
            out.extend_from_slice(b"\"ip\":[");
            push_json_str(out, ip);
            out.push(b']');
        }
        if has_users {
            if ip.is_some() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"user\":");
            push_str_array(
                out,
                actor_id
                    .into_iter()
                    .chain(details)
                    .chain(a.target_actor_ids.iter()),
            );
        }
        out.push(b'}');
    }
    cloud(event, out);
    vendor(event, "activity", is_object, out);
}

fn encode_inventory(event: &Event, out: &mut Vec<u8>) {
    let (v, is_object) = parse_or_default::<InventoryView>(&event.payload);
    let resource = v.resource.non_empty().unwrap_or("resource");
    let action = v.action.non_empty().unwrap_or("observed");

    open(event, Facts::inventory(event, &v).time_ms, "state", out);
    let category = match resource {
        "key" | "member" | "invitation" => "iam",
        _ => "configuration",
    };
    let ty = match action {
        "created" => "creation",
        "deleted" => "deletion",
        "updated" => "change",
        _ => "info",
    };
    out.extend_from_slice(b",\"category\":[\"");
    out.extend_from_slice(category.as_bytes());
    out.extend_from_slice(b"\"],\"type\":[\"");
    out.extend_from_slice(ty.as_bytes());
    out.extend_from_slice(b"\"],\"action\":");
    push_json_str(out, &format!("{resource}_{action}"));
    close_event(event, "clickhouse_cloud.inventory", out);
    out.extend_from_slice(b",\"message\":");
    let id = v.resource_id.get().unwrap_or("");
    push_json_str(out, &format!("{resource} {id} {action}"));
    cloud(event, out);
    vendor(event, "inventory", is_object, out);
}

fn encode_finding(event: &Event, out: &mut Vec<u8>) {
    let (f, is_object) = parse_or_default::<FindingView>(&event.payload);
    let facts = Facts::finding(event, &f);
    let rule = f.rule.non_empty().unwrap_or("unknown_rule");

    open(event, facts.time_ms, "alert", out);
    out.extend_from_slice(b",\"category\":[\"configuration\"],\"type\":[\"info\"],\"action\":");
    let status = if f.is_resolved() { "resolved" } else { "open" };
    push_json_str(out, &format!("finding_{status}"));
    out.extend_from_slice(b",\"severity\":");
    push_int(out, i64::from(facts.severity.cef()));
    close_event(event, "clickhouse_cloud.finding", out);
    out.extend_from_slice(b",\"rule\":{\"id\":");
    push_json_str(out, rule);
    out.extend_from_slice(b",\"name\":");
    push_json_str(out, rule);
    out.extend_from_slice(b"},\"message\":");
    push_json_str(out, f.summary.get().unwrap_or(rule));
    cloud(event, out);
    vendor(event, "finding", is_object, out);
}

fn push_str_array<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, s);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing;

    fn activity(payload: &str) -> Event {
        testing::event(EventKind::Activity, payload)
    }

    fn render(e: &Event) -> serde_json::Value {
        testing::render_json(encode, e)
    }

    #[test]
    fn activity_maps_to_ecs_fields() {
        let v = render(&activity(
            r#"{"id":"a1","createdAt":"2025-03-04T10:15:30Z","type":"key_create","actorType":"user",
                "actorId":"user-9","actorDetails":"ann@example.com","actorIpAddress":"203.0.113.7",
                "organizationId":"org-1","userAgent":"Mozilla/5.0"}"#,
        ));
        assert_eq!(v["@timestamp"], "2025-03-04T10:15:30.000Z");
        assert_eq!(v["event"]["id"], "activity:org-1:a1");
        assert_eq!(v["event"]["kind"], "event");
        assert_eq!(v["event"]["action"], "key_create");
        assert_eq!(v["event"]["category"][0], "iam");
        assert_eq!(v["event"]["type"][0], "creation");
        assert_eq!(v["event"]["provider"], "clickhouse_cloud");
        assert_eq!(v["event"]["dataset"], "clickhouse_cloud.activity");
        assert_eq!(v["event"]["outcome"], "success");
        assert_eq!(v["user"]["id"], "user-9");
        assert_eq!(v["user"]["name"], "ann@example.com");
        assert_eq!(v["source"]["ip"], "203.0.113.7");
        assert_eq!(v["user_agent"]["original"], "Mozilla/5.0");
        assert_eq!(v["related"]["ip"][0], "203.0.113.7");
        assert_eq!(v["related"]["user"][0], "user-9");
        assert_eq!(v["cloud"]["account"]["id"], "org-1");
        assert_eq!(v["clickhouse_cloud"]["activity"]["actorType"], "user");
    }

    #[test]
    fn failed_login_is_an_authentication_failure() {
        let v = render(&activity(
            r#"{"id":"a2","type":"user_login_failed","actorIpAddress":"not-an-ip"}"#,
        ));
        assert_eq!(v["event"]["category"][0], "authentication");
        assert_eq!(v["event"]["type"][0], "start");
        assert_eq!(v["event"]["outcome"], "failure");
        assert!(v.get("source").is_none(), "invalid IPs are not source.ip");
        assert!(v.get("related").is_none());
    }

    #[test]
    fn inventory_is_state_and_finding_is_alert() {
        let mut e = activity(
            r#"{"resource":"key","resource_id":"k1","action":"deleted","changed":[],"before":{"name":"ci"},"after":null}"#,
        );
        e.kind = EventKind::Inventory;
        let v = render(&e);
        assert_eq!(v["event"]["kind"], "state");
        assert_eq!(v["event"]["category"][0], "iam");
        assert_eq!(v["event"]["type"][0], "deletion");
        assert_eq!(v["clickhouse_cloud"]["inventory"]["resource_id"], "k1");

        e.kind = EventKind::Finding;
        e.payload = r#"{"rule":"key_never_expires","status":"open","severity":"high","summary":"Key ci never expires"}"#.into();
        let v = render(&e);
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["event"]["severity"], 8);
        assert_eq!(v["rule"]["name"], "key_never_expires");
        assert_eq!(v["message"], "Key ci never expires");
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_kept_as_text() {
        let v = render(&activity("[1,2"));
        assert_eq!(v["clickhouse_cloud"]["activity"], "[1,2");
        assert_eq!(v["@timestamp"], "2025-03-04T10:15:30.000Z");
    }
}
