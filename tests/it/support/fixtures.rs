//! Fixed events for golden and validation tests: ordinary activities, unicode, empty and
//! hostile values (pipes, backslashes, `=`, line breaks, very long strings, wrong JSON types),
//! and inventory and finding events.

use clickhouse_audit_exporter::event::{Event, EventKind};

fn event(seq: i64, kind: EventKind, id: &str, payload: String) -> Event {
    Event {
        seq,
        event_id: format!("{}:org-1:{id}", kind.as_str()),
        kind,
        org_id: "org-1".into(),
        occurred_at: "2025-03-04T10:15:30Z".into(),
        observed_at: "2025-03-04T10:16:00.123456Z".into(),
        payload,
    }
}

/// One activity per line: `(name, payload)`.
pub fn golden_activities() -> Vec<(&'static str, String)> {
    let long = "x".repeat(5000);
    let long_id = "id-".repeat(40);
    vec![
        ("key_create", r#"{"id":"a-1","createdAt":"2025-03-04T10:15:30Z","type":"key_create","actorType":"user","actorId":"user-1","actorDetails":"ann@example.com","actorIpAddress":"203.0.113.7","organizationId":"org-1","userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}"#.into()),
        ("login_failed_v6", r#"{"id":"a-2","createdAt":"2025-03-04T10:15:31.250Z","type":"user_login_failed","actorType":"user","actorId":"user-2","actorIpAddress":"2001:db8::7","organizationId":"org-1"}"#.into()),
        ("member_roles", r#"{"id":"a-3","createdAt":"2025-03-04T10:15:32Z","type":"organization_member_update_roles","actorType":"user","actorId":"user-1","targetActorIds":["user/9","user/10"],"targetRoleIds":["r1","r2"],"targetRoleNames":["Admin","Developer"],"organizationId":"org-1"}"#.into()),
        ("ip_access_list_by_api", r#"{"id":"a-4","createdAt":"2025-03-04T11:15:32+01:00","type":"service_update_ip_access_list","actorType":"api","actorId":"key-7","actorIpAddress":"198.51.100.20","serviceId":"svc-1","organizationId":"org-1","userAgent":"clickhouse-terraform/3.0"}"#.into()),
        ("unicode", r#"{"id":"a-5","createdAt":"2025-03-04T10:15:33Z","type":"role_create","actorType":"user","actorId":"użytkownik-1","actorDetails":"Zoë 山田 🚀 \u2028sep","targetRoleIds":["ロール-1"],"targetRoleNames":["Администратор"],"organizationId":"org-1"}"#.into()),
        ("empty_strings", r#"{"id":"","createdAt":"","type":"","actorType":"","actorId":"","actorDetails":"","actorIpAddress":"","organizationId":"","serviceId":"","userAgent":""}"#.into()),
        ("hostile", r#"{"id":"a|6\\=x","createdAt":"2025-03-04T10:15:34Z","type":"evil|type\\with=eq\nnewline","actorType":"user","actorId":"u=1|2","actorDetails":"a|b\\c=d\r\ne\te\u0000f\u001b[31m","actorIpAddress":"10.0.0.1\n10.0.0.2","userAgent":"x\" onload=\"alert(1)","serviceId":"s|1","targetRoleNames":["a,b","c=d","e|f\\g\nh"]}"#.into()),
        ("very_long", format!(r#"{{"id":"{long_id}","createdAt":"2025-03-04T10:15:35Z","type":"service_update_name","actorType":"user","actorId":"user-1","actorDetails":"{long}","serviceId":"svc-2","userAgent":"{long}"}}"#)),
        ("unknown_type_extra_fields", r#"{"id":"a-9","createdAt":"2025-03-04T10:15:36Z","type":"service_teleport","actorType":"system","newField":{"nested":[1,2.5e3,true,null]},"serviceId":"svc-3"}"#.into()),
        ("key_update_created", r#"{"id":"a-10","createdAt":"2025-03-04T10:15:37Z","type":"openapi_key_update","actorType":"user","actorId":"user-1","targetKeyId":"key-9","keyUpdateType":"created","organizationId":"org-1"}"#.into()),
        ("system_state", r#"{"id":"a-11","createdAt":"2025-03-04T10:15:38Z","type":"service_running","actorType":"system","serviceId":"svc-1","organizationId":"org-1"}"#.into()),
        ("bad_ip_bad_time", r#"{"id":"a-12","createdAt":"yesterday at noon","type":"user_login","actorType":"user","actorId":"user-3","actorIpAddress":"not-an-ip","organizationId":"org-1"}"#.into()),
        ("wrong_json_types", r#"{"id":12345,"createdAt":1741083339,"type":["service_create"],"actorType":{"x":1},"actorId":true,"actorIpAddress":null,"targetRoleIds":"solo","targetActorIds":[1,null,"user/4"]}"#.into()),
        ("member_join_self", r#"{"id":"a-14","createdAt":"2025-03-04T10:15:40Z","type":"organization_member_join","actorType":"user","actorId":"user-5","actorDetails":"new@example.com","actorIpAddress":"192.0.2.55","organizationId":"org-1"}"#.into()),
        ("support_actor", r#"{"id":"a-15","createdAt":"2025-03-04T10:15:41Z","type":"service_trigger_failover","actorType":"support","actorId":"support-1","serviceId":"svc-1"}"#.into()),
        ("not_an_object", r#"["not","an","object"]"#.into()),
    ]
}

/// Inventory and finding bodies: `(name, kind, payload)`.
pub fn golden_state() -> Vec<(&'static str, EventKind, String)> {
    vec![
        ("service_updated", EventKind::Inventory, r#"{"resource":"service","resource_id":"svc-1","action":"updated","changed":["state","idleScaling"],"before":{"id":"svc-1","name":"prod","state":"running"},"after":{"id":"svc-1","name":"prod","state":"stopped"}}"#.into()),
        ("key_observed", EventKind::Inventory, r#"{"resource":"key","resource_id":"key-1","action":"observed","changed":[],"before":null,"after":{"id":"key-1","name":"ci|deploy=1","state":"enabled"}}"#.into()),
        ("member_deleted", EventKind::Inventory, r#"{"resource":"member","resource_id":"user-9","action":"deleted","changed":[],"before":{"userId":"user-9","name":"Bob\nBobson"},"after":null}"#.into()),
        ("finding_open", EventKind::Finding, r#"{"rule":"service_open_to_internet","status":"open","severity":"high","resource":"service","resource_id":"svc-1","summary":"Service prod accepts connections from 0.0.0.0/0","evidence":{"ipAccessList":[{"source":"0.0.0.0/0"}]}}"#.into()),
        ("finding_resolved", EventKind::Finding, r#"{"rule":"key_never_expires","status":"resolved","severity":"medium","resource":"key","resource_id":"key-1","summary":"Key ci|deploy=1 never expires\\n"}"#.into()),
        ("finding_minimal", EventKind::Finding, "{}".into()),
    ]
}

/// The golden events in a fixed order.
pub fn golden_events() -> Vec<Event> {
    let mut events: Vec<Event> = golden_activities()
        .into_iter()
        .enumerate()
        .map(|(i, (name, payload))| event(i as i64 + 1, EventKind::Activity, name, payload))
        .collect();
    let base = events.len() as i64;
    events.extend(
        golden_state()
            .into_iter()
            .enumerate()
            .map(|(i, (name, kind, payload))| event(base + i as i64 + 1, kind, name, payload)),
    );
    events
}

/// An ordinary activity of type `ty` (for "every catalogued type renders" checks).
pub fn activity_of_type(seq: i64, ty: &str) -> Event {
    event(
        seq,
        EventKind::Activity,
        &format!("t-{seq}"),
        format!(
            r#"{{"id":"t-{seq}","createdAt":"2025-03-04T10:15:30Z","type":"{ty}","actorType":"user","actorId":"user-1","actorDetails":"ann@example.com","actorIpAddress":"203.0.113.7","organizationId":"org-1","serviceId":"svc-1","userAgent":"ua/1","targetActorIds":["user/2"],"targetRoleNames":["Admin"],"targetKeyId":"key-1"}}"#
        ),
    )
}

/// A synthetic activity like the API sends (for deliveries): `n` picks id and type.
#[allow(dead_code, reason = "used by the webhook tests")]
pub fn activity(n: usize) -> Event {
    const TYPES: &[&str] = &["key_create", "service_start", "user_login", "role_update"];
    let ty = TYPES[n % TYPES.len()];
    event(
        n as i64 + 1,
        EventKind::Activity,
        &format!("act-{n}"),
        format!(
            r#"{{"id":"act-{n}","createdAt":"2025-03-04T10:15:30Z","type":"{ty}","actorType":"user","actorId":"user-{n}","actorIpAddress":"192.0.2.1","organizationId":"org-1"}}"#
        ),
    )
}
