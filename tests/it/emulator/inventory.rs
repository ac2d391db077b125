//! Inventory behaviour: seeded variety, `filter=tag:`, service state machine, backups order,
//! key rules (secret shown once, no self-delete), the activity every write leaves, and live
//! generation.

use chrono::Duration as ChronoDuration;
use clickhouse_audit_exporter::emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

use super::{activities, org_path, start, unlimited};
use crate::support::api::{Api, USER_AGENT, enc};
use crate::support::wait::wait_until;

fn empty() -> EmulatorOptions {
    EmulatorOptions {
        history: Duration::ZERO,
        ..unlimited()
    }
}

async fn patch(api: &Api, path: &str, body: Value) -> crate::support::api::Resp {
    api.send("PATCH".parse().unwrap(), path, Some(body)).await
}

async fn service_named(api: &Api, o: &str, name: &str) -> Value {
    let list = api.get(&format!("{o}/services")).await.json();
    list["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn seeded_inventory_is_varied() {
    let (h, api) = start(unlimited()).await;
    let o = org_path(&h);
    let services = api.get(&format!("{o}/services")).await.json()["result"]
        .as_array()
        .unwrap()
        .clone();
    let states: HashSet<&str> = services
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains("running") && states.contains("stopped") && states.contains("provisioning"),
        "{states:?}"
    );
    assert!(services.iter().any(|s| {
        s["ipAccessList"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "0.0.0.0/0")
    }));
    assert!(
        services
            .iter()
            .any(|s| !s["name"].as_str().unwrap().is_ascii())
    );
    let keys = api.get(&format!("{o}/keys")).await.json()["result"]
        .as_array()
        .unwrap()
        .clone();
    let admin = keys
        .iter()
        .find(|k| k["id"] == h.emulator.key_id())
        .expect("the emulator key is listed");
    assert!(admin["expireAt"].is_null());
    assert_eq!(
        admin["keySuffix"].as_str().unwrap(),
        &h.emulator.key_id()[h.emulator.key_id().len() - 4..]
    );
    assert!(keys.iter().any(|k| k["state"] == "disabled"));
    assert!(
        keys.iter()
            .any(|k| k["expireAt"].is_string() && k["usedAt"].is_string())
    );
    assert!(keys.iter().any(|k| k.get("usedAt").is_none()));
    let members = api.get(&format!("{o}/members")).await.json()["result"]
        .as_array()
        .unwrap()
        .clone();
    let roles: HashSet<&str> = members
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, HashSet::from(["admin", "developer"]));
    assert!(
        !api.get(&format!("{o}/invitations")).await.json()["result"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn services_filter_by_tag() {
    let (h, api) = start(unlimited()).await;
    let o = org_path(&h);
    let names = |q: String| {
        let api = api.clone();
        let o = o.clone();
        async move {
            let r = api.get(&format!("{o}/services{q}")).await;
            assert_eq!(r.status, 200, "{q}");
            let mut v: Vec<String> = r.json()["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned())
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(
        names(format!("?filter={}", enc("tag:Environment=Production"))).await,
        ["prod-analytics"]
    );
    assert_eq!(names("?filter=tag:isActive".into()).await, ["東京 staging"]);
    assert_eq!(names("?filter=tag:Environment".into()).await.len(), 3);
    assert!(
        names("?filter=tag:Environment=Production&filter=tag:isActive".into())
            .await
            .is_empty()
    );
    assert_eq!(
        names("?filter=tag:Environment=Production&filter=tag:team=data-platform".into()).await,
        ["prod-analytics"]
    );
    assert_eq!(names(String::new()).await.len(), 4);
    let r = api.get(&format!("{o}/services?filter=name:prod")).await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("BAD_REQUEST: "));
}

#[tokio::test]
async fn service_states_move_through_transitions() {
    let (h, api) = start(empty()).await;
    let o = org_path(&h);
    let svc = service_named(&api, &o, "prod-analytics").await;
    let path = format!("{o}/services/{}", svc["id"].as_str().unwrap());
    let state = |c: &str| json!({ "command": c });
    let r = api.send("DELETE".parse().unwrap(), &path, None).await;
    assert_eq!(r.status, 400, "a running service cannot be deleted");
    assert_eq!(
        patch(&api, &format!("{path}/state"), state("stop"))
            .await
            .json()["result"]["state"],
        "stopping"
    );
    assert_eq!(
        patch(&api, &format!("{path}/state"), state("start"))
            .await
            .status,
        409
    );
    h.emulator.set_clock_skew(ChronoDuration::minutes(1));
    assert_eq!(api.get(&path).await.json()["result"]["state"], "stopped");
    let r = patch(&api, &format!("{path}/state"), state("awake")).await;
    assert_eq!(r.status, 400, "awake does not start a stopped service");
    assert_eq!(
        patch(&api, &format!("{path}/state"), state("teleport"))
            .await
            .status,
        400
    );
    assert_eq!(
        api.send("DELETE".parse().unwrap(), &path, None)
            .await
            .status,
        200
    );
    assert_eq!(
        api.get(&path).await.json()["result"]["state"],
        "terminating"
    );
    h.emulator.set_clock_skew(ChronoDuration::minutes(2));
    assert_eq!(api.get(&path).await.status, 404);
    let kinds: Vec<String> = activities(&api, &h, "")
        .await
        .iter()
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["service_delete", "service_stop"]);
}

#[tokio::test]
async fn backups_are_newest_first() {
    let (h, api) = start(unlimited()).await;
    let o = org_path(&h);
    let svc = service_named(&api, &o, "prod-analytics").await;
    let backups = api
        .get(&format!(
            "{o}/services/{}/backups",
            svc["id"].as_str().unwrap()
        ))
        .await
        .json();
    let list = backups["result"].as_array().unwrap();
    let started: Vec<&str> = list
        .iter()
        .map(|b| b["startedAt"].as_str().unwrap())
        .collect();
    assert!(started.windows(2).all(|w| w[0] > w[1]), "{started:?}");
    let statuses: HashSet<&str> = list.iter().map(|b| b["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, HashSet::from(["done", "error", "in_progress"]));
    assert!(
        list.iter()
            .all(|b| (b["status"] == "in_progress") == b.get("finishedAt").is_none())
    );
}

#[tokio::test]
async fn created_keys_show_their_secret_once_and_cannot_delete_themselves() {
    let (h, api) = start(empty()).await;
    let o = org_path(&h);
    let created = api
        .send(
            "POST".parse().unwrap(),
            &format!("{o}/keys"),
            Some(json!({"name": "rotator", "roles": ["admin"]})),
        )
        .await
        .json();
    let (id, secret) = (
        created["result"]["keyId"].as_str().unwrap(),
        created["result"]["keySecret"].as_str().unwrap(),
    );
    assert_eq!(created["result"]["key"]["id"], id);
    let fresh = api.with_key(id, secret);
    let shown = fresh.get(&format!("{o}/keys/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(
        !String::from_utf8_lossy(&shown.body).contains(secret),
        "the secret is shown only on creation"
    );
    let r = fresh
        .send("DELETE".parse().unwrap(), &format!("{o}/keys/{id}"), None)
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().starts_with("BAD_REQUEST: ") && r.error().contains("authenticate"),
        "{}",
        r.error()
    );
    assert_eq!(
        api.send("DELETE".parse().unwrap(), &format!("{o}/keys/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(fresh.get("/v1/whoami").await.status, 401);
    assert_eq!(api.get(&format!("{o}/keys/{id}")).await.status, 404);
}

#[tokio::test]
async fn every_write_leaves_the_activity_the_real_service_records() {
    let (h, api) = start(empty()).await;
    let o = org_path(&h);
    let svc = service_named(&api, &o, "prod-analytics").await;
    let sid = svc["id"].as_str().unwrap().to_owned();
    let s = format!("{o}/services/{sid}");
    patch(&api, &o, json!({"name": "Ørg Ünïcode"})).await;
    patch(
        &api,
        &s,
        json!({"name": "prod-2", "ipAccessList": {"remove": [{"source": "0.0.0.0/0"}]}}),
    )
    .await;
    patch(&api, &format!("{s}/password"), json!({})).await;
    patch(
        &api,
        &format!("{s}/scaling"),
        json!({"minTotalMemoryGb": 96}),
    )
    .await;
    patch(&api, &format!("{s}/state"), json!({"command": "stop"})).await;
    let created = api
        .send(
            "POST".parse().unwrap(),
            &format!("{o}/services"),
            Some(json!({"name": "n", "provider": "gcp", "region": "us-east1", "ipAccessList": []})),
        )
        .await
        .json();
    let new_sid = created["result"]["service"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = api
        .send(
            "POST".parse().unwrap(),
            &format!("{o}/keys"),
            Some(json!({"name": "k", "roles": ["developer"]})),
        )
        .await
        .json();
    let kid = key["result"]["keyId"].as_str().unwrap().to_owned();
    patch(
        &api,
        &format!("{o}/keys/{kid}"),
        json!({"name": "k2", "state": "disabled"}),
    )
    .await;
    api.send("DELETE".parse().unwrap(), &format!("{o}/keys/{kid}"), None)
        .await;
    let inv = api
        .send(
            "POST".parse().unwrap(),
            &format!("{o}/invitations"),
            Some(json!({"email": "x@example.com"})),
        )
        .await
        .json();
    api.send(
        "DELETE".parse().unwrap(),
        &format!("{o}/invitations/{}", inv["result"]["id"].as_str().unwrap()),
        None,
    )
    .await;
    let member = api.get(&format!("{o}/members")).await.json()["result"][2]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    patch(
        &api,
        &format!("{o}/members/{member}"),
        json!({"role": "admin"}),
    )
    .await;
    api.send(
        "DELETE".parse().unwrap(),
        &format!("{o}/members/{member}"),
        None,
    )
    .await;

    let mut list = activities(&api, &h, "").await;
    list.reverse();
    let kinds: Vec<&str> = list.iter().map(|a| a["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "organization_update_name",
            "service_update_name",
            "service_update_ip_access_list",
            "service_update_password",
            "service_update_autoscaling_memory",
            "service_stop",
            "service_create",
            "key_create",
            "openapi_key_update",
            "openapi_key_update",
            "key_delete",
            "organization_invite_create",
            "organization_invite_delete",
            "organization_member_update_role",
            "organization_member_delete",
        ]
    );
    for a in &list {
        assert_eq!(a["actorType"], "api");
        assert_eq!(a["actorId"], h.emulator.key_id());
        assert_eq!(a["actorIpAddress"], "127.0.0.1");
        assert_eq!(a["userAgent"], USER_AGENT);
        assert_eq!(a["organizationId"], h.emulator.org_ids()[0]);
        crate::support::spec::spec().check_schema("Activity", a);
    }
    assert!(list[1..6].iter().all(|a| a["serviceId"] == sid.as_str()));
    assert_eq!(list[6]["serviceId"], new_sid);
    let updates: Vec<&str> = list[8..10]
        .iter()
        .map(|a| a["keyUpdateType"].as_str().unwrap())
        .collect();
    assert_eq!(updates, ["name-changed", "state-changed"]);
    assert!(list[7..11].iter().all(|a| a["targetKeyId"] == kid.as_str()));
    assert_eq!(
        list[13]["targetActorIds"],
        json!([format!("user/{member}")])
    );
}

#[tokio::test]
async fn live_generation_adds_late_activities_until_shutdown() {
    let opts = EmulatorOptions {
        history: Duration::ZERO,
        rate_per_min: 6_000.0,
        max_visibility_delay: Duration::from_secs(3600),
        ..unlimited()
    };
    let h = Emulator::start(opts).await.unwrap();
    let org = h.emulator.org_ids()[0].clone();
    wait_until(
        "20 live activities (live generation is too slow)",
        Duration::from_secs(10),
        async || (h.emulator.activity_count(&org) >= 20).then_some(()),
    )
    .await;
    let api = Api::new(&h);
    let visible = activities(&api, &h, "").await.len();
    assert!(
        visible < h.emulator.activity_count(&org),
        "some arrive late ({visible} visible)"
    );
    let emulator = h.emulator.clone();
    drop(h);
    // Absence of activity can only be watched for a while: the generator may add one last
    // activity as it stops (100 ms), then must add nothing more (200 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = emulator.activity_count(&org);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        emulator.activity_count(&org),
        stopped,
        "generation stops with the server"
    );
}

#[tokio::test]
async fn run_cli_serves_until_cancelled_and_reports_bind_errors() {
    use clickhouse_audit_exporter::emulator::run_cli;
    use tokio_util::sync::CancellationToken;
    let token = CancellationToken::new();
    let task = tokio::spawn(run_cli(
        empty(),
        "127.0.0.1:0".parse().unwrap(),
        token.clone(),
    ));
    tokio::task::yield_now().await;
    token.cancel();
    task.await.unwrap().expect("clean shutdown");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = run_cli(
        empty(),
        taken.local_addr().unwrap(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("binding the emulator"),
        "{err:#}"
    );
}
