//! Tests of the OCSF encoder: classification, per-class attributes, inventory and findings
//! (the golden file and the schema validation are in tests/it/formats.rs).

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
