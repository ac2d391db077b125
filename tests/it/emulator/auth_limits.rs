//! Basic auth (401), per-key permissions (403), unknown resources (404), and the per-key
//! sliding-window rate limit (429 with `X-RateLimit-Reset`, optional `Retry-After`).

use clickhouse_audit_exporter::emulator::EmulatorOptions;
use std::time::Duration;

use super::{org_path, start, unlimited};

#[tokio::test]
async fn missing_or_wrong_credentials_get_401() {
    let (h, api) = start(unlimited()).await;
    let key = h.emulator.key_id();
    for (client, why) in [
        (api.anonymous(), "no header"),
        (api.with_key(&key, "wrong-secret"), "wrong secret"),
        (api.with_key("no-such-key", "x"), "unknown key"),
    ] {
        let r = client.get("/v1/whoami").await;
        assert_eq!(r.status, 401, "{why}");
        assert!(
            r.error().starts_with("UNAUTHORIZED: "),
            "{why}: {}",
            r.error()
        );
    }
    h.emulator.set_credentials_valid(&key, false);
    assert_eq!(api.get("/v1/whoami").await.status, 401);
    h.emulator.set_credentials_valid(&key, true);
    assert_eq!(api.get("/v1/whoami").await.status, 200);
    let log = h.emulator.request_log();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 200]);
    assert_eq!(log[0].key_id, None);
    assert_eq!(log[1].key_id.as_deref(), Some(key.as_str()));
    assert_eq!(
        (
            log[4].method.as_str(),
            log[4].path.as_str(),
            log[4].query.as_deref()
        ),
        ("GET", "/v1/whoami", None)
    );
    h.emulator.clear_request_log();
    assert!(h.emulator.request_log().is_empty());
}

#[tokio::test]
async fn keys_lacking_a_permission_get_403_naming_it() {
    let (h, api) = start(unlimited()).await;
    let org = h.emulator.org_ids()[0].clone();
    let (id, secret) = h.emulator.create_key(
        &org,
        &[
            "control-plane:organization:view",
            "control-plane:service:view",
        ],
    );
    let limited = api.with_key(&id, &secret);
    let o = org_path(&h);
    let r = limited.get(&format!("{o}/activities")).await;
    assert_eq!(r.status, 403);
    assert!(
        r.error().starts_with("FORBIDDEN: ")
            && r.error()
                .ends_with("requires control-plane:organization:view-activities"),
        "{}",
        r.error()
    );
    assert_eq!(limited.get(&format!("{o}/keys")).await.status, 403);
    assert_eq!(limited.get(&o).await.status, 200);
    assert_eq!(limited.get(&format!("{o}/members")).await.status, 200);
    // Operations without declared permissions need only a valid key.
    assert_eq!(
        limited.get("/v1/whoami").await.json()["result"]["keyId"],
        id
    );
    assert_eq!(limited.get("/v1/organizations").await.status, 200);
    // `awake` needs service:view, `stop` service:manage (spec description of the state operation).
    let services = limited.get(&format!("{o}/services")).await.json();
    let idle = services["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "idle")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = format!("{o}/services/{idle}/state");
    let body = |c: &str| Some(serde_json::json!({ "command": c }));
    let r = limited
        .send("PATCH".parse().unwrap(), &state, body("stop"))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("control-plane:service:manage"));
    let r = limited
        .send("PATCH".parse().unwrap(), &state, body("awake"))
        .await;
    assert_eq!(
        (r.status, r.json()["result"]["state"].as_str()),
        (200, Some("awaking"))
    );
}

#[tokio::test]
async fn unknown_orgs_and_resources_get_404() {
    let (h, api) = start(EmulatorOptions {
        orgs: 2,
        ..unlimited()
    })
    .await;
    let [org_a, org_b] = [
        h.emulator.org_ids()[0].clone(),
        h.emulator.org_ids()[1].clone(),
    ];
    let zero = "00000000-0000-4000-8000-000000000000";
    for path in [
        format!("/v1/organizations/{zero}"),
        format!("/v1/organizations/{zero}/activities"),
        format!("/v1/organizations/{org_a}/services/{zero}"),
        format!("/v1/organizations/{org_a}/services/{zero}/backups"),
        format!("/v1/organizations/{org_a}/keys/{zero}"),
        format!("/v1/organizations/{org_a}/members/{zero}"),
        format!("/v1/organizations/{org_a}/invitations/{zero}"),
        format!("/v1/organizations/{org_a}/activities/{zero}"),
    ] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.error().starts_with("NOT_FOUND: "),
            "{path}: {}",
            r.error()
        );
    }
    // A key of org A sees only org A; the admin key sees both.
    let (id, secret) = h
        .emulator
        .create_key(&org_a, &["control-plane:organization:view"]);
    let a_only = api.with_key(&id, &secret);
    assert_eq!(
        a_only
            .get(&format!("/v1/organizations/{org_b}"))
            .await
            .status,
        404
    );
    assert_eq!(
        a_only.get("/v1/organizations").await.json()["result"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v1/organizations").await.json()["result"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn eleventh_request_in_ten_seconds_gets_429_with_reset() {
    let (h, api) = start(EmulatorOptions::default()).await;
    for i in 0..10 {
        assert_eq!(api.get("/v1/whoami").await.status, 200, "request {i}");
    }
    let r = api.get(&org_path(&h)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "TOO_MANY_REQUESTS");
    let reset: f64 = r
        .header("x-ratelimit-reset")
        .expect("X-RateLimit-Reset")
        .parse()
        .unwrap();
    assert!(reset > 5.0 && reset <= 10.0, "{reset}");
    assert!(r.header("retry-after").is_none());
    h.emulator.set_retry_after_header(true);
    let r = api.get("/v1/whoami").await;
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((6..=10).contains(&retry), "{retry}");
    // Another key has its own window.
    let (id, secret) = h.emulator.create_key(&h.emulator.org_ids()[0], &[]);
    assert_eq!(
        api.with_key(&id, &secret).get("/v1/whoami").await.status,
        200
    );
}

#[tokio::test]
async fn never_more_than_n_admitted_in_any_window() {
    let window = Duration::from_millis(300);
    let (h, api) = start(EmulatorOptions {
        rate_limit: Some((3, window)),
        ..EmulatorOptions::default()
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1300);
    while tokio::time::Instant::now() < deadline {
        api.get("/v1/whoami").await;
    }
    let log = h.emulator.request_log();
    let admitted: Vec<_> = log
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.at)
        .collect();
    assert!(log.iter().any(|r| r.status == 429));
    assert!(
        admitted.len() >= 12,
        "the window keeps sliding: {} admitted",
        admitted.len()
    );
    for (i, start) in admitted.iter().enumerate() {
        let inside = admitted[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < window)
            .count();
        assert!(inside <= 3, "{inside} requests admitted within {window:?}");
    }
}

#[tokio::test]
async fn failed_requests_count_but_401s_and_429s_do_not() {
    let (h, api) = start(EmulatorOptions {
        rate_limit: Some((3, Duration::from_secs(60))),
        ..EmulatorOptions::default()
    })
    .await;
    let key = h.emulator.key_id();
    for _ in 0..5 {
        assert_eq!(
            api.with_key(&key, "wrong").get("/v1/whoami").await.status,
            401
        );
    }
    assert_eq!(
        api.get(&format!("{}/services/nope", org_path(&h)))
            .await
            .status,
        404
    );
    h.emulator.fail_next(1, 500);
    assert_eq!(api.get("/v1/whoami").await.status, 500);
    assert_eq!(api.get("/v1/whoami").await.status, 200);
    for _ in 0..3 {
        assert_eq!(api.get("/v1/whoami").await.status, 429);
    }
}
