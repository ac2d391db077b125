//! Every kind of emulator response, success and error, validated against the matching response
//! schema of the vendor spec (strict: no undeclared fields) in every activity window mode; and
//! the emulator's operation and enum tables checked against the spec itself.

use clickhouse_audit_exporter::emulator::{
    ACTIVITY_TYPES, EmulatorOptions, KEY_UPDATE_TYPES, ROUTES, WindowSemantics,
};
use serde_json::{Value, json};
use std::time::Duration;

use super::{err, ok, org_path, start, unlimited, window_modes};
use crate::support::api::USER_AGENT;
use crate::support::spec::{self, spec};

const ORG: &str = "/v1/organizations/{organizationId}";

fn t(rest: &str) -> String {
    format!("{ORG}{rest}")
}

fn find_service<'a>(list: &'a Value, name: &str) -> &'a str {
    list["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn every_success_response_matches_the_spec_in_every_window_mode() {
    for (name, window) in window_modes() {
        eprintln!("window mode: {name}");
        success_responses_match_the_spec(window).await;
    }
}

async fn success_responses_match_the_spec(window: WindowSemantics) {
    let (h, api) = start(EmulatorOptions {
        window,
        ..unlimited()
    })
    .await;
    let o = org_path(&h);
    let who = ok(&api, "GET", "/v1/whoami", "/v1/whoami", None).await;
    assert_eq!(who["result"]["actorType"], "apiKey");
    assert_eq!(who["result"]["keyId"], h.emulator.key_id());
    ok(&api, "GET", "/v1/organizations", "/v1/organizations", None).await;
    ok(&api, "GET", &o, ORG, None).await;
    ok(
        &api,
        "PATCH",
        &o,
        ORG,
        Some(json!({"name": "Ørsted Renamed", "enableCoreDumps": false})),
    )
    .await;

    let services = ok(&api, "GET", &format!("{o}/services"), &t("/services"), None).await;
    let running = find_service(&services, "prod-analytics").to_owned();
    let stopped = find_service(&services, "dev-sandbox").to_owned();
    let svc = |id: &str, rest: &str| format!("{o}/services/{id}{rest}");
    ok(
        &api,
        "GET",
        &svc(&running, ""),
        &t("/services/{serviceId}"),
        None,
    )
    .await;
    let created = ok(
        &api,
        "POST",
        &format!("{o}/services"),
        &t("/services"),
        Some(json!({
            "name": "it-created", "provider": "aws", "region": "us-east-1",
            "ipAccessList": [{"source": "10.0.0.0/8", "description": "vpn"}],
            "tags": [{"key": "Environment", "value": "Test"}],
        })),
    )
    .await;
    assert_eq!(created["result"]["service"]["state"], "provisioning");
    assert!(
        created["result"]["password"]
            .as_str()
            .is_some_and(|p| p.len() >= 16)
    );
    ok(&api, "PATCH", &svc(&running, ""), &t("/services/{serviceId}"), Some(json!({
        "name": "prod-renamed",
        "ipAccessList": {"add": [{"source": "192.0.2.1", "description": "new"}], "remove": [{"source": "0.0.0.0/0"}]},
        "tags": {"add": [{"key": "owner", "value": "sre"}]},
        "releaseChannel": "fast",
        "endpoints": [{"protocol": "mysql", "enabled": true}],
    }))).await;
    let state = t("/services/{serviceId}/state");
    let stopping = ok(
        &api,
        "PATCH",
        &svc(&running, "/state"),
        &state,
        Some(json!({"command": "stop"})),
    )
    .await;
    assert_eq!(stopping["result"]["state"], "stopping");
    ok(&api, "PATCH", &svc(&running, "/scaling"), &t("/services/{serviceId}/scaling"), Some(json!({
        "minTotalMemoryGb": 48, "maxTotalMemoryGb": 360, "numReplicas": 2, "idleScaling": true, "idleTimeoutMinutes": 10,
    }))).await;
    ok(
        &api,
        "PATCH",
        &svc(&running, "/replicaScaling"),
        &t("/services/{serviceId}/replicaScaling"),
        Some(json!({
            "minReplicaMemoryGb": 16, "maxReplicaMemoryGb": 64,
        })),
    )
    .await;
    let pw = t("/services/{serviceId}/password");
    let generated = ok(
        &api,
        "PATCH",
        &svc(&running, "/password"),
        &pw,
        Some(json!({})),
    )
    .await;
    assert!(generated["result"]["password"].is_string());
    let hashed = ok(
        &api,
        "PATCH",
        &svc(&running, "/password"),
        &pw,
        Some(json!({"newPasswordHash": "c2VjcmV0"})),
    )
    .await;
    assert_eq!(hashed["result"], json!({}));
    let backups = ok(
        &api,
        "GET",
        &svc(&stopped, "/backups"),
        &t("/services/{serviceId}/backups"),
        None,
    )
    .await;
    let backup_id = backups["result"][0]["id"].as_str().unwrap();
    ok(
        &api,
        "GET",
        &svc(&stopped, &format!("/backups/{backup_id}")),
        &t("/services/{serviceId}/backups/{backupId}"),
        None,
    )
    .await;
    ok(
        &api,
        "GET",
        &svc(&stopped, "/backupConfiguration"),
        &t("/services/{serviceId}/backupConfiguration"),
        None,
    )
    .await;
    ok(
        &api,
        "DELETE",
        &svc(&stopped, ""),
        &t("/services/{serviceId}"),
        None,
    )
    .await;

    let keys = ok(&api, "GET", &format!("{o}/keys"), &t("/keys"), None).await;
    let key_id = keys["result"][1]["id"].as_str().unwrap().to_owned();
    ok(
        &api,
        "GET",
        &format!("{o}/keys/{key_id}"),
        &t("/keys/{keyId}"),
        None,
    )
    .await;
    let new_key = ok(
        &api,
        "POST",
        &format!("{o}/keys"),
        &t("/keys"),
        Some(json!({"name": "it-key", "roles": ["developer"]})),
    )
    .await;
    let new_id = new_key["result"]["keyId"].as_str().unwrap().to_owned();
    ok(
        &api,
        "PATCH",
        &format!("{o}/keys/{new_id}"),
        &t("/keys/{keyId}"),
        Some(json!({"name": "it-key-2", "state": "disabled"})),
    )
    .await;
    ok(
        &api,
        "DELETE",
        &format!("{o}/keys/{new_id}"),
        &t("/keys/{keyId}"),
        None,
    )
    .await;

    let members = ok(&api, "GET", &format!("{o}/members"), &t("/members"), None).await;
    let user = members["result"][1]["userId"].as_str().unwrap().to_owned();
    ok(
        &api,
        "GET",
        &format!("{o}/members/{user}"),
        &t("/members/{userId}"),
        None,
    )
    .await;
    ok(
        &api,
        "PATCH",
        &format!("{o}/members/{user}"),
        &t("/members/{userId}"),
        Some(json!({"role": "admin"})),
    )
    .await;
    ok(
        &api,
        "DELETE",
        &format!("{o}/members/{user}"),
        &t("/members/{userId}"),
        None,
    )
    .await;
    ok(
        &api,
        "GET",
        &format!("{o}/invitations"),
        &t("/invitations"),
        None,
    )
    .await;
    let inv = ok(
        &api,
        "POST",
        &format!("{o}/invitations"),
        &t("/invitations"),
        Some(json!({"email": "Someone@Example.com", "role": "developer"})),
    )
    .await;
    assert_eq!(inv["result"]["email"], "someone@example.com");
    let inv_id = inv["result"]["id"].as_str().unwrap();
    ok(
        &api,
        "GET",
        &format!("{o}/invitations/{inv_id}"),
        &t("/invitations/{invitationId}"),
        None,
    )
    .await;
    ok(
        &api,
        "DELETE",
        &format!("{o}/invitations/{inv_id}"),
        &t("/invitations/{invitationId}"),
        None,
    )
    .await;

    // Past any visibility delay, so the writes above show (the delay itself: activities.rs).
    let delay = chrono::Duration::from_std(window.visibility_delay).unwrap();
    if !delay.is_zero() {
        h.emulator
            .set_clock_skew(delay + chrono::Duration::minutes(1));
    }
    let list = ok(
        &api,
        "GET",
        &format!("{o}/activities?from_date=2000-01-01"),
        &t("/activities"),
        None,
    )
    .await;
    let first = list["result"][0]["id"].as_str().unwrap();
    ok(
        &api,
        "GET",
        &format!("{o}/activities/{first}"),
        &t("/activities/{activityId}"),
        None,
    )
    .await;
    // Activities the writes above recorded carry only spec types and fields: check them exactly.
    let written: Vec<&Value> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["userAgent"] == USER_AGENT)
        .collect();
    assert!(
        written.len() >= 20,
        "writes recorded {} activities",
        written.len()
    );
    for a in written {
        spec().check_schema("Activity", a);
    }
}

#[tokio::test]
async fn every_error_response_matches_the_spec_in_every_window_mode() {
    for (name, window) in window_modes() {
        eprintln!("window mode: {name}");
        error_responses_match_the_spec(window).await;
    }
}

async fn error_responses_match_the_spec(window: WindowSemantics) {
    let (h, api) = start(EmulatorOptions {
        window,
        ..unlimited()
    })
    .await;
    let o = org_path(&h);
    let r = err(
        &api,
        "GET",
        &format!("{o}/activities?from_date=yesterday"),
        &t("/activities"),
        None,
        400,
    )
    .await;
    assert!(r.error().starts_with("BAD_REQUEST: "), "{}", r.error());
    let r = err(
        &api,
        "GET",
        &format!("{o}/activities?from_date=2024-03-06&to_date=2024-03-05"),
        &t("/activities"),
        None,
        400,
    )
    .await;
    assert!(r.error().starts_with("BAD_REQUEST: "), "{}", r.error());
    let r = err(
        &api,
        "POST",
        &format!("{o}/services"),
        &t("/services"),
        Some(json!({"name": "x"})),
        400,
    )
    .await;
    assert!(r.error().starts_with("BAD_REQUEST: "));
    let r = err(
        &api.anonymous(),
        "GET",
        "/v1/whoami",
        "/v1/whoami",
        None,
        401,
    )
    .await;
    assert!(r.error().starts_with("UNAUTHORIZED: "));
    let (id, secret) = h.emulator.create_key(
        &h.emulator.org_ids()[0],
        &["control-plane:organization:view"],
    );
    let limited = api.with_key(&id, &secret);
    let r = err(
        &limited,
        "GET",
        &format!("{o}/activities"),
        &t("/activities"),
        None,
        403,
    )
    .await;
    assert!(r.error().starts_with("FORBIDDEN: "));
    let unknown = "/v1/organizations/00000000-0000-4000-8000-000000000000";
    let r = err(&api, "GET", unknown, ORG, None, 404).await;
    assert!(r.error().starts_with("NOT_FOUND: "));
    err(
        &api,
        "GET",
        &format!("{o}/services/00000000-0000-4000-8000-000000000000"),
        &t("/services/{serviceId}"),
        None,
        404,
    )
    .await;
    err(
        &api,
        "GET",
        &format!("{o}/activities/nope"),
        &t("/activities/{activityId}"),
        None,
        404,
    )
    .await;
    let services = ok(&api, "GET", &format!("{o}/services"), &t("/services"), None).await;
    let provisioning = find_service(&services, "ingest-eu");
    let r = err(
        &api,
        "PATCH",
        &format!("{o}/services/{provisioning}/state"),
        &t("/services/{serviceId}/state"),
        Some(json!({"command": "stop"})),
        409,
    )
    .await;
    assert!(r.error().starts_with("CONFLICT: "));
    h.emulator.fail_next(1, 500);
    let r = err(&api, "GET", "/v1/whoami", "/v1/whoami", None, 500).await;
    assert!(r.error().starts_with("INTERNAL_SERVER_ERROR"));
    h.emulator.fail_next(1, 503);
    err(&api, "GET", &format!("{o}/keys"), &t("/keys"), None, 503).await;
    let r = api.get("/v1/nowhere").await;
    assert_eq!((r.status, r.json()["status"].as_u64()), (404, Some(404)));
    assert!(r.error().starts_with("NOT_FOUND: "));

    let (h2, api2) = start(EmulatorOptions {
        rate_limit: Some((1, Duration::from_secs(60))),
        window,
        ..EmulatorOptions::default()
    })
    .await;
    ok(&api2, "GET", "/v1/whoami", "/v1/whoami", None).await;
    let r = err(&api2, "GET", &org_path(&h2), ORG, None, 429).await;
    assert_eq!(r.error(), "TOO_MANY_REQUESTS");
}

#[tokio::test]
async fn get_v1_serves_the_spec_when_present() {
    let (_h, api) = start(unlimited()).await;
    let r = api.anonymous().get("/v1").await;
    // The server reads the same repository copy as the tests.
    if spec::path().exists() && std::env::var_os("CH_AUDIT_OPENAPI_SPEC").is_none() {
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["openapi"], spec().doc["openapi"]);
    } else {
        assert!(r.status == 200 || r.status == 404);
    }
}

#[test]
fn route_table_permissions_match_the_spec_security() {
    let s = spec();
    let global = &s.doc["security"][0]["basicAuth"];
    for r in ROUTES {
        let op = s.operation(r.method, r.path);
        assert_eq!(op["operationId"], r.operation_id, "{} {}", r.method, r.path);
        let perms = match op.get("security") {
            Some(sec) => &sec[0]["basicAuth"],
            None => global,
        };
        let perms: Vec<&str> = perms
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(perms, r.permissions, "{}", r.operation_id);
    }
}

#[test]
fn embedded_enums_match_the_spec() {
    let activity = &spec().doc["components"]["schemas"]["Activity"]["properties"];
    let types: Vec<&str> = activity["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(types, ACTIVITY_TYPES);
    let updates: Vec<&str> = activity["keyUpdateType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(updates, KEY_UPDATE_TYPES);
}

#[tokio::test]
async fn paginated_lists_follow_next_cursor() {
    let (h, api) = start(EmulatorOptions {
        orgs: 3,
        ..unlimited()
    })
    .await;
    let mut seen = Vec::new();
    let mut path = "/v1/organizations?limit=2".to_owned();
    loop {
        let page = ok(&api, "GET", &path, "/v1/organizations", None).await;
        assert_eq!(page["limit"], 2);
        seen.extend(
            page["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/organizations?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut want = h.emulator.org_ids();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    let keys = ok(
        &api,
        "GET",
        &format!("{}/keys?limit=1", org_path(&h)),
        &t("/keys"),
        None,
    )
    .await;
    assert_eq!(keys["result"].as_array().unwrap().len(), 1);
    assert_eq!(keys["totalCount"], 4);
    assert!(keys["nextCursor"].is_string());
    err(
        &api,
        "GET",
        &format!("{}/keys?limit=0", org_path(&h)),
        &t("/keys"),
        None,
        400,
    )
    .await;
    err(
        &api,
        "GET",
        &format!("{}/keys?cursor=bogus!", org_path(&h)),
        &t("/keys"),
        None,
        400,
    )
    .await;
}

/// The harness itself: strict checks must catch invented fields, wrong types and bad formats.
#[test]
fn strict_validation_rejects_undeclared_fields_and_bad_formats() {
    let fails = |template: &str, status: u16, body: Value| {
        !spec().errors("GET", template, status, &body).is_empty()
    };
    let rid = "8f14e45f-ceea-467f-a0e6-4d1c3b2f9a10";
    let good = json!({"status": 200, "requestId": rid, "result": {"actorType": "apiKey", "keyId": "k", "name": "n", "organizationId": rid}});
    assert!(!fails("/v1/whoami", 200, good.clone()));
    let mut extra = good.clone();
    extra["result"]["surprise"] = json!(1);
    assert!(fails("/v1/whoami", 200, extra));
    let mut bad_uuid = good;
    bad_uuid["requestId"] = json!("not-a-uuid");
    assert!(fails("/v1/whoami", 200, bad_uuid));
    let svc = json!({"status": 200, "requestId": rid, "result": [{"id": rid, "state": "sleeping", "autoscalingMode": "vertical", "currentScaling": {}}]});
    assert!(fails(&t("/services"), 200, svc));
    assert!(fails(
        &t("/activities"),
        400,
        json!({"status": 400, "error": 5, "requestId": rid})
    ));
    assert!(!fails(
        &t("/activities"),
        400,
        json!({"status": 400, "error": "BAD_REQUEST: x", "requestId": rid})
    ));
}

/// Objects changed through the test controls (`control.rs`) still match the spec's schemas.
#[tokio::test]
async fn inventory_changed_by_test_controls_matches_the_spec() {
    let (h, api) = start(unlimited()).await;
    let (e, o) = (&h.emulator, org_path(&h));
    let org = &e.org_ids()[0];
    let ids = e.add_services(org, 2);
    let now = chrono::Utc::now();
    assert!(e.set_service_state(org, &ids[0], "failed"));
    let b = e.add_backup(org, &ids[1], "error", now).unwrap();
    assert!(
        e.add_backup(
            org,
            &ids[1],
            "in_progress",
            now + chrono::Duration::hours(1)
        )
        .is_some()
    );
    assert!(e.set_backup_status(org, &ids[1], &b, "done"));
    assert!(e.set_key_used_at(&e.key_id(), None));
    assert!(e.set_key_expire_at(&e.key_id(), Some(now + chrono::Duration::days(3))));
    let services = ok(&api, "GET", &format!("{o}/services"), &t("/services"), None).await;
    assert_eq!(services["result"].as_array().unwrap().len(), 6);
    let backups = ok(
        &api,
        "GET",
        &format!("{o}/services/{}/backups", ids[1]),
        &t("/services/{serviceId}/backups"),
        None,
    )
    .await;
    let list = backups["result"].as_array().unwrap();
    assert_eq!(list[0]["status"], "in_progress", "newest first");
    assert_eq!(list[1]["id"], b.as_str());
    assert_eq!(list[1]["status"], "done");
    assert!(e.clear_backups(org, &ids[1]));
    ok(
        &api,
        "GET",
        &format!("{o}/services/{}/backups", ids[1]),
        &t("/services/{serviceId}/backups"),
        None,
    )
    .await;
    let invitation = ok(
        &api,
        "GET",
        &format!("{o}/invitations"),
        &t("/invitations"),
        None,
    )
    .await["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(e.set_invitation_created_at(org, &invitation, now - chrono::Duration::days(9)));
    ok(
        &api,
        "GET",
        &format!("{o}/invitations"),
        &t("/invitations"),
        None,
    )
    .await;
    ok(&api, "GET", &format!("{o}/keys"), &t("/keys"), None).await;
}
