//! Each fault switch as a client sees it: injected statuses, a seeded error rate, latency,
//! truncated / malformed / wrong-shape 200 bodies, and clock skew.

use chrono::Duration as ChronoDuration;
use std::time::{Duration, Instant};

use super::{activities, org_path, start, unlimited};

#[tokio::test]
async fn fail_next_answers_the_status_n_times_then_recovers() {
    let (h, api) = start(unlimited()).await;
    h.emulator.fail_next(2, 503);
    for _ in 0..2 {
        let r = api.get("/v1/whoami").await;
        assert_eq!(r.status, 503);
        assert!(
            r.error().starts_with("SERVICE_UNAVAILABLE: "),
            "{}",
            r.error()
        );
        assert!(r.json()["requestId"].is_string());
    }
    assert_eq!(api.get("/v1/whoami").await.status, 200);
    h.emulator.fail_next(1, 429);
    let r = api.get("/v1/whoami").await;
    assert_eq!((r.status, r.error().as_str()), (429, "TOO_MANY_REQUESTS"));
    assert!(r.header("x-ratelimit-reset").is_some());
}

#[tokio::test]
async fn error_rate_fails_a_seeded_fraction() {
    let (h, api) = start(unlimited()).await;
    h.emulator.set_error_rate(0.5, 502);
    let mut failed = 0;
    for _ in 0..60 {
        match api.get("/v1/whoami").await.status {
            502 => failed += 1,
            200 => {}
            s => panic!("unexpected {s}"),
        }
    }
    assert!((15..=45).contains(&failed), "{failed} of 60 failed");
    h.emulator.set_error_rate(0.0, 500);
    assert_eq!(api.get("/v1/whoami").await.status, 200);
}

#[tokio::test]
async fn latency_delays_every_response() {
    let (h, api) = start(unlimited()).await;
    h.emulator.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    assert_eq!(api.anonymous().get("/v1/whoami").await.status, 401);
    assert!(t.elapsed() >= Duration::from_millis(150));
    h.emulator.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn truncated_body_is_a_read_error_for_reqwest() {
    let (h, api) = start(unlimited()).await;
    h.emulator.truncate_next();
    let err = api
        .try_send(
            "GET".parse().unwrap(),
            &format!("{}/activities", org_path(&h)),
            None,
        )
        .await;
    let err = err.expect_err("reading a cut body fails");
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    // Logged as the 200 it started as; the next request is whole again.
    assert_eq!(h.emulator.request_log().last().unwrap().status, 200);
    assert_eq!(activities(&api, &h, "").await.len(), 1400);
}

#[tokio::test]
async fn malformed_body_is_not_json() {
    let (h, api) = start(unlimited()).await;
    h.emulator.malformed_next();
    let r = api.get("/v1/whoami").await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    assert!(api.get("/v1/whoami").await.json()["result"].is_object());
}

#[tokio::test]
async fn wrong_shape_puts_an_object_where_a_list_belongs() {
    let (h, api) = start(unlimited()).await;
    let base = format!("{}/activities", org_path(&h));
    h.emulator.wrong_shape_next();
    let json = api.get(&base).await.json();
    assert_eq!(json["status"], 200);
    assert!(json["result"].is_object(), "{json}");
    h.emulator.wrong_shape_next();
    assert!(api.get("/v1/whoami").await.json()["result"].is_array());
    assert!(api.get(&base).await.json()["result"].is_array());
}

#[tokio::test]
async fn body_faults_wait_for_a_200() {
    let (h, api) = start(unlimited()).await;
    h.emulator.malformed_next();
    assert_eq!(
        api.anonymous().get("/v1/whoami").await.json()["status"],
        401
    );
    assert!(
        serde_json::from_slice::<serde_json::Value>(&api.get("/v1/whoami").await.body).is_err()
    );
}

#[tokio::test]
async fn clock_skew_moves_the_emulator_clock() {
    let (h, _api) = start(unlimited()).await;
    let before = h.emulator.now();
    h.emulator.set_clock_skew(ChronoDuration::days(-1));
    let skewed = h.emulator.now();
    assert!(
        (before - skewed - ChronoDuration::days(1))
            .num_seconds()
            .abs()
            <= 1
    );
}
