//! Fault matrix, API rows: 429 storms with and without `X-RateLimit-Reset`, 5xx bursts, random
//! errors, answers slower than `request_timeout`, refused and reset connections, cut / malformed
//! / wrong-shaped bodies, quarantined activities, duplicate ids in one answer, 401 then
//! recovery, 403 on one endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use clickhouse_audit_exporter::emulator::EmulatorOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::span;
use crate::support::net::bind_again;
use crate::support::rig::{
    BATCH, Rig, check_bounded, metric_at_least, ready, stop_clean, wait_complete,
};
use crate::support::wait::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_with_x_ratelimit_reset_delays_but_loses_nothing() {
    // The API admits 2 requests per 3 s: far below what the client budgets (10 / 10 s).
    let rig = Rig::with(EmulatorOptions {
        history: Duration::from_secs(6 * 3600),
        rate_limit: Some((2, Duration::from_secs(3))),
        ..Default::default()
    })
    .await;
    rig.emu.emulator.fail_next(4, 429);
    let d = rig.start().await;
    rig.add_live(20, "storm");
    metric_at_least(&d, "clickhouse_audit_api_rate_limited_total", &[], 4.0).await;
    rig.add_live(20, "storm-after");
    rig.archive_complete(0).await;
    ready(&d).await;
    let m = d.scrape().await;
    assert!(
        m.value(
            "clickhouse_audit_api_rate_limit_wait_seconds_total",
            &[("reason", "reset")]
        ) > 0.0,
        "the waits on X-RateLimit-Reset are accounted"
    );
    let logs = stop_clean(d).await;
    assert!(logs.contains("rate limited by the API (429)"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_without_x_ratelimit_reset_waits_a_window_and_loses_nothing() {
    let rig = Rig::new().await;
    rig.emu.emulator.set_rate_limit_reset_header(false);
    rig.configure("", "rate_limit_window = \"2s\"", "");
    rig.emu.emulator.fail_next(5, 429);
    let d = rig.start().await;
    rig.add_live(20, "storm");
    metric_at_least(&d, "clickhouse_audit_api_rate_limited_total", &[], 5.0).await;
    rig.add_live(20, "after");
    rig.archive_complete(0).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_500_502_and_503_are_retried_and_lose_nothing() {
    let rig = Rig::new().await;
    rig.configure("", "max_backoff = \"100ms\"", "");
    let d = rig.start().await;
    ready(&d).await;
    for status in [500, 502, 503] {
        rig.add_live(10, &status.to_string());
        rig.emu.emulator.fail_next(4, status);
        eventually("the burst was served, then a 200", async || {
            let log = rig.emu.emulator.request_log();
            let served = log.iter().filter(|r| r.status == status).count();
            let after = log.last().is_some_and(|r| r.status == 200);
            (served == 4 && after).then_some(())
        })
        .await;
    }
    rig.add_live(10, "after");
    rig.archive_complete(0).await;
    ready(&d).await;
    let log = rig.emu.emulator.request_log();
    for status in [500, 502, 503] {
        assert_eq!(
            log.iter().filter(|r| r.status == status).count(),
            4,
            "four {status}s were served"
        );
    }
    let m = d.scrape().await;
    let retried = m.sum("clickhouse_audit_api_retries_total", &[]);
    assert!(retried >= 3.0, "the bursts were retried ({retried})");
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_random_errors_lose_nothing() {
    let rig = Rig::new().await;
    // Polls every 100 ms so the error rate meets many requests in a short run.
    rig.configure(
        "",
        "max_backoff = \"100ms\"\nrate_limit_requests = 1000\nrate_limit_window = \"1s\"",
        "interval = \"100ms\"",
    );
    let d = rig.start().await;
    ready(&d).await;
    rig.emu.emulator.set_error_rate(0.1, 503);
    let until = tokio::time::Instant::now() + span(Duration::from_secs(8), Duration::from_secs(60));
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        rig.add_live(2, &format!("random-{n}"));
        n += 1;
        // The pace of new activity while the error rate lasts (the span above).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.emu.emulator.set_error_rate(0.0, 503);
    rig.archive_complete(0).await;
    ready(&d).await;
    let served_503 = rig
        .emu
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!(served_503 >= 1, "the error rate hit some requests");
    let m = d.scrape().await;
    let retried = m.sum("clickhouse_audit_api_retries_total", &[]);
    assert!(retried >= 1.0, "the failures were retried");
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_request_timeout_time_out_and_are_retried() {
    let rig = Rig::new().await;
    rig.configure(
        "",
        "request_timeout = \"300ms\"\nmax_backoff = \"100ms\"",
        "",
    );
    let d = rig.start().await;
    ready(&d).await;
    rig.emu.emulator.set_latency(Duration::from_secs(1));
    rig.add_live(10, "slow");
    metric_at_least(
        &d,
        "clickhouse_audit_poll_errors_total",
        &[("kind", "timeout")],
        1.0,
    )
    .await;
    let (code, body) = d.get("/readyz").await;
    assert_eq!(code, 503, "not ready while every answer times out: {body}");
    rig.emu.emulator.set_latency(Duration::ZERO);
    rig.add_live(10, "fast");
    rig.archive_complete(0).await;
    ready(&d).await;
    let logs = stop_clean(d).await;
    assert!(
        logs.contains("timed out"),
        "the timeout is named in the logs"
    );
}

/// A TCP front for the emulator that can refuse connections (nothing listening), reset them
/// (accept, then close with SO_LINGER 0), or forward them.
struct Front {
    addr: SocketAddr,
    backend: SocketAddr,
    mode: Arc<Mutex<FrontMode>>,
    running: Mutex<Option<CancellationToken>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrontMode {
    Reset,
    Forward,
}

impl Front {
    /// Reserves a port and leaves it closed (connections are refused).
    async fn refusing(backend: SocketAddr) -> Front {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        Front {
            addr,
            backend,
            mode: Arc::new(Mutex::new(FrontMode::Reset)),
            running: Mutex::new(None),
        }
    }

    fn set(&self, mode: FrontMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Starts listening on the reserved port.
    async fn open(&self) {
        let listener = bind_again(self.addr).await;
        let token = CancellationToken::new();
        *self.running.lock().unwrap() = Some(token.clone());
        let (mode, backend) = (self.mode.clone(), self.backend);
        tokio::spawn(async move {
            loop {
                let (conn, _) = tokio::select! {
                    _ = token.cancelled() => break,
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                };
                let m = *mode.lock().unwrap();
                tokio::spawn(async move {
                    match m {
                        FrontMode::Reset => {
                            // SO_LINGER 0: close() sends RST (a reset, not an orderly FIN).
                            #[allow(deprecated, reason = "the blocking close is the point")]
                            conn.set_linger(Some(Duration::ZERO)).unwrap();
                            drop(conn);
                        }
                        FrontMode::Forward => {
                            let mut conn = conn;
                            if let Ok(mut up) = TcpStream::connect(backend).await {
                                let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                            }
                        }
                    }
                });
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_then_reset_connections_are_transport_errors_and_lose_nothing() {
    let rig = Rig::new().await;
    let front = Front::refusing(rig.emu.addr).await;
    rig.configure("", "max_backoff = \"100ms\"", "");
    rig.edit(|doc| doc.replace("api.base_url", format!("http://{}", front.addr)));
    let d = rig.start().await;
    metric_at_least(
        &d,
        "clickhouse_audit_poll_errors_total",
        &[("kind", "transport")],
        1.0,
    )
    .await;
    assert_eq!(d.get("/readyz").await.0, 503, "not ready while refused");
    front.open().await;
    let before = d.scrape().await.value(
        "clickhouse_audit_poll_errors_total",
        &[("kind", "transport"), ("stream", "activities")],
    );
    metric_at_least(
        &d,
        "clickhouse_audit_poll_errors_total",
        &[("kind", "transport")],
        before + 1.0,
    )
    .await;
    rig.add_live(10, "while-reset");
    front.set(FrontMode::Forward);
    rig.archive_complete(0).await;
    ready(&d).await;
    let logs = stop_clean(d).await;
    assert!(
        !logs.contains(&rig.emu.emulator.key_secret()),
        "no secret in transport errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_malformed_and_wrong_shaped_answers_are_retried_and_lose_nothing() {
    let rig = Rig::new().await;
    rig.configure("", "max_backoff = \"100ms\"", "");
    let d = rig.start().await;
    ready(&d).await;
    rig.emu.emulator.truncate_next();
    rig.emu.emulator.malformed_next();
    rig.emu.emulator.wrong_shape_next();
    rig.add_live(15, "bodies");
    metric_at_least(&d, "clickhouse_audit_api_decode_failures_total", &[], 2.0).await;
    rig.archive_complete(0).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_without_id_or_with_a_bad_created_at_are_quarantined_and_the_rest_delivered() {
    let rig = Rig::new().await;
    let ago = Utc::now() - chrono::Duration::minutes(30);
    // In the middle of the history: the same window carries good activities around them.
    let no_id = rig.emu.emulator.add_activity(
        &rig.org,
        serde_json::json!({"id": null, "type": "user_login"}),
        ago,
        ago,
    );
    let bad_date = rig.emu.emulator.add_activity(
        &rig.org,
        serde_json::json!({"type": "user_login", "createdAt": "last tuesday"}),
        ago,
        ago,
    );
    let d = rig.start().await;
    let mut expected = rig.expected();
    expected.retain(|id| *id != no_id && *id != bad_date);
    wait_complete(&rig.out, &expected, 0).await;
    let m = d.scrape().await;
    let quarantined = m.sum("clickhouse_audit_activities_quarantined_total", &[]);
    assert_eq!(quarantined, 2.0, "both counted");
    ready(&d).await;
    let logs = stop_clean(d).await;
    assert!(logs.contains("quarantin"), "a log line says so: {logs}");
    // Kept for inspection, not silently dropped.
    let show = crate::support::daemon::bin()
        .arg("-c")
        .arg(&rig.cfg)
        .args(["state", "show"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("quarantine"), "state show lists them: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_inside_one_answer_are_delivered_once() {
    let rig = Rig::new().await;
    let at = Utc::now() - chrono::Duration::minutes(20);
    let body = serde_json::json!({"id": "dup-0001", "type": "service_stop", "n": 1});
    for _ in 0..3 {
        rig.emu
            .emulator
            .add_activity(&rig.org, body.clone(), at, at);
    }
    let mut expected = rig.expected();
    expected.dedup();
    assert!(expected.contains(&"dup-0001".to_string()));
    let d = rig.start().await;
    wait_complete(&rig.out, &expected, 0).await;
    metric_at_least(&d, "clickhouse_audit_dedup_dropped_total", &[], 2.0).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_fails_readiness_and_everything_recorded_meanwhile_arrives_after_recovery() {
    let rig = Rig::new().await;
    let d = rig.start().await;
    ready(&d).await;
    let key = rig.emu.emulator.key_id();
    rig.emu.emulator.set_credentials_valid(&key, false);
    metric_at_least(
        &d,
        "clickhouse_audit_poll_errors_total",
        &[("kind", "unauthorized")],
        1.0,
    )
    .await;
    rig.add_live(25, "during-401");
    let (code, body) = d.get("/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("401 Unauthorized"), "{body}");
    rig.emu.emulator.set_credentials_valid(&key, true);
    rig.archive_complete(0).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_one_inventory_endpoint_switches_it_off_and_the_rest_flows() {
    let rig = Rig::new().await;
    // Everything but view-api-keys.
    let (id, secret) = rig.emu.emulator.create_key(
        &rig.org,
        &[
            "control-plane:organization:view",
            "control-plane:organization:view-activities",
            "control-plane:service:view",
            "control-plane:service:view-backups",
        ],
    );
    rig.edit(|doc| {
        doc.replace("api.key_id", id.as_str())
            .replace("api.key_secret", secret.as_str())
            .replace("inventory.enabled", true)
            .set("inventory.interval", "1s")
    });
    let d = rig.start().await;
    metric_at_least(
        &d,
        "clickhouse_audit_inventory_poll_errors_total",
        &[("resource", "keys"), ("kind", "forbidden")],
        1.0,
    )
    .await;
    rig.add_live(10, "with-403");
    let lines = eventually("the other inventory", async || {
        let lines = crate::support::read_ndjson(&rig.out);
        let kinds: std::collections::HashSet<String> = lines
            .iter()
            .filter(|l| l["kind"] == "inventory")
            .filter_map(|l| l["resource"].as_str().map(str::to_string))
            .collect();
        (kinds.contains("service") && kinds.contains("backup")).then_some(lines)
    })
    .await;
    assert!(
        !lines
            .iter()
            .any(|l| l["kind"] == "inventory" && l["resource"] == "key"),
        "nothing invented for the forbidden resource"
    );
    let expected = rig.expected();
    let got = eventually("every activity", async || {
        let ids: Vec<String> = crate::support::read_ndjson(&rig.out)
            .iter()
            .filter(|l| l["kind"] == "activity")
            .map(|l| l["activity"]["id"].as_str().unwrap().to_string())
            .collect();
        (ids.len() >= expected.len()).then_some(ids)
    })
    .await;
    check_bounded(&got, &expected, BATCH, "archive");
    let logs = stop_clean(d).await;
    assert!(
        logs.contains("control-plane:organization:view-api-keys") || logs.contains("view-api-keys"),
        "the missing permission is named"
    );
}
