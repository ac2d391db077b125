//! The API client against a scripted HTTP server: headers on the wire, error mapping per status,
//! retries and the 429 reset, the shared rate limiter, date formats and their fallback (also
//! against each of the emulator's date validation modes),
//! verbatim bytes, quarantine, truncated/malformed/wrong-shape bodies, and secret hygiene.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use clickhouse_audit_exporter::api::{ApiError, Client, Priority, StreamTo, WhoAmI, WindowRequest};
use clickhouse_audit_exporter::config::{ApiConfig, Credentials, DateFormat};
use clickhouse_audit_exporter::metrics::Metrics;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::support::http::{Recorded, Reply, TestServer};

const ORG: &str = "10ead720-7ca1-48c9-aaf7-7230f42b56c0";
const KEY_ID: &str = "key-id-1";
const SECRET: &str = "s3cr3t-Never-Log-Me";

fn config(url: &str) -> ApiConfig {
    ApiConfig {
        base_url: url.into(),
        request_timeout: Duration::from_secs(5),
        rate_limit_requests: 100,
        rate_limit_window: Duration::from_secs(1),
        max_retries: 3,
        max_backoff: Duration::from_secs(2),
        ..ApiConfig::default()
    }
}

fn creds() -> Credentials {
    Credentials {
        key_id: KEY_ID.into(),
        key_secret: SecretString::from(SECRET),
    }
}

fn client_with(cfg: ApiConfig) -> (Client, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let client = Client::new(&cfg, creds(), metrics.clone()).expect("client builds");
    (client, metrics)
}

fn client(server: &TestServer) -> (Client, Arc<Metrics>) {
    client_with(config(&server.url()))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn error_json(status: u16, error: &str) -> Reply {
    Reply::json(
        status,
        format!(r#"{{"status":{status},"error":"{error}","requestId":"req-{status}"}}"#),
    )
}

fn activity(id: &str) -> String {
    format!(r#"{{"id":"{id}","createdAt":"2025-03-04T10:15:30Z","type":"service_stop"}}"#)
}

#[tokio::test]
async fn requests_carry_basic_auth_user_agent_and_accept() {
    let server = TestServer::script(vec![Reply::ok("[]")]).await;
    let (client, metrics) = client(&server);
    assert!(client.services(ORG).await.unwrap().is_empty());

    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, format!("/v1/organizations/{ORG}/services"));
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"));
    assert_eq!(
        req.header("authorization"),
        Some(&*format!("Basic {expected}"))
    );
    assert_eq!(
        req.header("user-agent"),
        Some(concat!(
            "clickhouse-audit-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
    );
    assert_eq!(req.header("accept"), Some("application/json"));
    let ok = metrics.api_requests.with_label_values(&["services", "2xx"]);
    assert_eq!(ok.get(), 1);
}

#[tokio::test]
async fn base_url_path_prefix_is_kept_and_ids_cannot_add_path_levels() {
    let server = TestServer::script(vec![Reply::ok("[]")]).await;
    let (client, _) = client_with(config(&format!("{}/proxy/", server.url())));
    assert_eq!(client.base_url(), format!("{}/proxy", server.url()));
    client.backups("org/../x", "svc 1").await.unwrap();
    assert_eq!(
        server.requests()[0].path,
        "/proxy/v1/organizations/org%2F..%2Fx/services/svc%201/backups"
    );
}

#[test]
fn base_urls_that_cannot_work_are_refused_up_front() {
    let metrics = Arc::new(Metrics::new());
    for (url, why) in [
        ("ftp://api.clickhouse.cloud", "must be an http(s) URL"),
        ("not a url", "is not a URL"),
        (
            "https://id:secret@api.clickhouse.cloud",
            "must not carry credentials",
        ),
    ] {
        let err = Client::new(&config(url), creds(), metrics.clone()).unwrap_err();
        assert!(format!("{err:#}").contains(why), "{url}: {err:#}");
    }
}

#[tokio::test]
async fn bad_request_is_not_retried_and_keeps_the_api_message() {
    let server = TestServer::script(vec![error_json(400, "BAD_REQUEST: unknown filter")]).await;
    let (client, metrics) = client(&server);
    let err = client.services(ORG).await.unwrap_err();
    let ApiError::BadRequest {
        request_id,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(request_id.as_deref(), Some("req-400"));
    assert_eq!(message, "BAD_REQUEST: unknown filter");
    assert_eq!(
        err.to_string(),
        "400 Bad Request (request req-400): the API rejected the request; the API said: \
         BAD_REQUEST: unknown filter"
    );
    assert!(!err.is_retryable());
    assert_eq!(server.count(), 1);
    let errors = metrics
        .api_errors
        .with_label_values(&["services", "bad_request"]);
    assert_eq!(errors.get(), 1);
}

#[tokio::test]
async fn unauthorized_names_the_credentials_to_check_and_is_not_retried() {
    // 401 bodies are undocumented: this one is not JSON.
    let server = TestServer::script(vec![Reply::text(401, "Unauthorized")]).await;
    let (client, metrics) = client(&server);
    let err = client.organizations().await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("401 Unauthorized: the API key id/secret were rejected — check CLICKHOUSE_CLOUD_API_KEY/SECRET"),
        "{text}"
    );
    assert!(text.ends_with("the API said: Unauthorized"), "{text}");
    assert_eq!(err.kind(), "unauthorized");
    assert_eq!(server.count(), 1);
    let errors = metrics
        .api_errors
        .with_label_values(&["organizations", "unauthorized"]);
    assert_eq!(errors.get(), 1);
}

#[tokio::test]
async fn forbidden_names_the_permission_each_endpoint_needs() {
    let server = TestServer::script(vec![Reply::json(403, "{}")]).await;
    let (client, _) = client(&server);
    let (from, to) = (utc("2025-03-04T00:00:00Z"), utc("2025-03-05T00:00:00Z"));
    let permission = |r: Result<_, ApiError>| match r {
        Err(ApiError::Forbidden { permission, .. }) => permission,
        other => panic!("{:?}", other.err()),
    };
    assert_eq!(
        permission(client.activities(ORG, from, to).await.map(drop)),
        Some("control-plane:organization:view-activities")
    );
    assert_eq!(
        permission(client.keys(ORG).await.map(drop)),
        Some("control-plane:organization:view-api-keys")
    );
    assert_eq!(
        permission(client.members(ORG).await.map(drop)),
        Some("control-plane:organization:view")
    );
    assert_eq!(
        permission(client.invitations(ORG).await.map(drop)),
        Some("control-plane:organization:view")
    );
    assert_eq!(
        permission(client.backups(ORG, "svc").await.map(drop)),
        Some("control-plane:service:view-backups")
    );
    assert_eq!(permission(client.services(ORG).await.map(drop)), None);
    assert_eq!(server.count(), 6, "403s are never retried");

    let err = client.activities(ORG, from, to).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "403 Forbidden: the key lacks control-plane:organization:view-activities — give it that \
         permission (or the Admin role)"
    );
}

#[tokio::test]
async fn not_found_is_not_retried_and_a_missing_whoami_is_none() {
    let server = TestServer::script(vec![error_json(404, "NOT_FOUND: Unknown Error")]).await;
    let (client, metrics) = client(&server);
    let err = client.members(ORG).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("404 Not Found (request req-404): check the organization id")
    );
    assert!(client.whoami().await.unwrap().is_none());
    assert_eq!(server.count(), 2);
    let whoami_errors = metrics
        .api_errors
        .with_label_values(&["whoami", "not_found"]);
    assert_eq!(
        whoami_errors.get(),
        0,
        "an absent beta endpoint is not an error"
    );
}

#[tokio::test]
async fn whoami_reads_an_api_key_identity() {
    let server = TestServer::script(vec![Reply::ok(
        r#"{"actorType":"apiKey","keyId":"k-1","name":"siem","organizationId":"o-1"}"#,
    )])
    .await;
    let (client, _) = client(&server);
    let who = client.whoami().await.unwrap().unwrap();
    assert!(
        matches!(&who, WhoAmI::ApiKey { key_id, name, organization_id }
            if key_id == "k-1" && name.as_deref() == Some("siem") && organization_id == "o-1"),
        "{who:?}"
    );
    assert_eq!(server.requests()[0].path, "/v1/whoami");
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_for_the_reset_then_succeeds() {
    let server = TestServer::script(vec![
        Reply::json(429, r#"{"error": "TOO_MANY_REQUESTS"}"#).header("X-RateLimit-Reset", "5"),
        Reply::ok(&format!("[{}]", activity("a1"))),
    ])
    .await;
    let (client, metrics) = client(&server);
    let batch = client
        .activities(
            ORG,
            utc("2025-03-04T00:00:00Z"),
            utc("2025-03-04T01:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(batch.activities.len(), 1);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    // The reset plus up to 1 s of jitter.
    assert!(
        gap >= Duration::from_secs(5) && gap <= Duration::from_secs(6),
        "{gap:?}"
    );
    assert_eq!(
        metrics
            .api_rate_limited
            .with_label_values(&["activities"])
            .get(),
        1
    );
    assert_eq!(
        metrics.api_retries.with_label_values(&["activities"]).get(),
        1
    );
    let waited = metrics
        .api_rate_limit_wait_seconds
        .with_label_values(&["reset"])
        .get();
    assert!((5.0..=6.0).contains(&waited), "{waited}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_when_the_body_is_not_json() {
    let server = TestServer::script(vec![
        Reply::text(429, "slow down").header("Retry-After", "3"),
        Reply::ok("[]"),
    ])
    .await;
    let (client, _) = client(&server);
    client.keys(ORG).await.unwrap();
    let reqs = server.requests();
    assert!(reqs[1].at - reqs[0].at >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_back_every_other_caller_of_the_key() {
    let server = TestServer::start(|_, n| match n {
        0 => Reply::json(429, "{}").header("X-RateLimit-Reset", "5"),
        _ => Reply::ok("[]"),
    })
    .await;
    let (client, metrics) = client(&server);
    let limited = tokio::spawn({
        let client = client.clone();
        async move { client.services(ORG).await }
    });
    // Once the 429 is in, other callers (other endpoints, other orgs) must wait for the reset.
    crate::support::wait::eventually("the 429 on services to be counted", async || {
        let counted = metrics
            .api_rate_limited
            .with_label_values(&["services"])
            .get();
        (counted > 0).then_some(())
    })
    .await;
    let (keys, members) = tokio::join!(client.keys(ORG), client.members("other-org"));
    keys.unwrap();
    members.unwrap();
    limited.await.unwrap().unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    for later in &reqs[1..] {
        let gap = later.at - reqs[0].at;
        assert!(
            gap >= Duration::from_secs(5),
            "{} sent {gap:?} after the 429",
            later.path
        );
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limits_outlasting_the_retries_surface_as_rate_limited() {
    let server = TestServer::script(vec![
        Reply::json(
            429,
            r#"{"status":429,"error":"TOO_MANY_REQUESTS","requestId":"r-429"}"#,
        )
        .header("X-RateLimit-Reset", "1"),
    ])
    .await;
    let (client, metrics) = client_with(ApiConfig {
        max_retries: 2,
        ..config(&server.url())
    });
    let err = client.invitations(ORG).await.unwrap_err();
    let ApiError::RateLimited { reset, request_id } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*reset, Some(Duration::from_secs(1)));
    assert_eq!(request_id.as_deref(), Some("r-429"));
    assert!(err.to_string().starts_with(
        "429 rate limited (request r-429): still limited after every retry (the API asked to wait 1.0 s)"
    ));
    assert_eq!(server.count(), 3);
    assert_eq!(
        metrics
            .api_rate_limited
            .with_label_values(&["invitations"])
            .get(),
        3
    );
    let errors = metrics
        .api_errors
        .with_label_values(&["invitations", "rate_limited"]);
    assert_eq!(errors.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_backoff_then_succeed() {
    let server = TestServer::script(vec![
        error_json(500, "INTERNAL"),
        Reply::text(503, "<html>upstream unavailable</html>"),
        Reply::ok(r#"[{"id":"s1","name":"prod"}]"#),
    ])
    .await;
    let (client, metrics) = client(&server);
    let services = client.services(ORG).await.unwrap();
    assert_eq!(services[0].id.as_deref(), Some("s1"));
    assert_eq!(server.count(), 3);
    assert_eq!(
        metrics.api_retries.with_label_values(&["services"]).get(),
        2
    );
    assert_eq!(
        metrics
            .api_requests
            .with_label_values(&["services", "5xx"])
            .get(),
        2
    );
    assert_eq!(
        metrics
            .api_requests
            .with_label_values(&["services", "2xx"])
            .get(),
        1
    );
    // Backoff is capped by max_backoff (2 s): two waits of at most 1 s and 2 s.
    let reqs = server.requests();
    assert!(reqs[2].at - reqs[0].at <= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn persistent_server_errors_surface_with_status_and_request_id() {
    let server = TestServer::script(vec![error_json(502, "BAD_GATEWAY")]).await;
    let (client, _) = client(&server);
    let err = client.services(ORG).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 502, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("502 server error (request req-502)")
    );
    assert_eq!(server.count(), 4, "1 try + max_retries (3)");
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_times_out_and_is_retried() {
    let slow = Reply::ok("[]").delay(Duration::from_secs(60));
    let cfg = |url: &str| ApiConfig {
        request_timeout: Duration::from_secs(2),
        max_retries: 1,
        ..config(url)
    };

    let server = TestServer::script(vec![slow.clone(), Reply::ok("[]")]).await;
    let (client, _) = client_with(cfg(&server.url()));
    client.keys(ORG).await.unwrap();
    assert_eq!(server.count(), 2);

    let server = TestServer::script(vec![slow]).await;
    let (client, metrics) = client_with(cfg(&server.url()));
    let started = Instant::now();
    let err = client.keys(ORG).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Timeout { endpoint: "keys" }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "timeouts bound each attempt"
    );
    assert_eq!(server.count(), 2);
    assert_eq!(
        metrics
            .api_requests
            .with_label_values(&["keys", "error"])
            .get(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_truncated_body_is_retried_then_reported_as_truncated() {
    let body = format!(
        r#"{{"status":200,"requestId":"r","result":[{},{}]}}"#,
        activity("a1"),
        activity("a2")
    );
    let truncated = Reply::json(200, body.clone()).truncated(60);
    let (from, to) = (utc("2025-03-04T00:00:00Z"), utc("2025-03-05T00:00:00Z"));

    let server = TestServer::script(vec![truncated.clone(), Reply::json(200, body.clone())]).await;
    let (client, _) = client(&server);
    assert_eq!(
        client
            .activities(ORG, from, to)
            .await
            .unwrap()
            .activities
            .len(),
        2
    );

    let server = TestServer::script(vec![truncated]).await;
    let (client, metrics) = client_with(ApiConfig {
        max_retries: 1,
        ..config(&server.url())
    });
    let err = client.activities(ORG, from, to).await.unwrap_err();
    let ApiError::Decode {
        endpoint,
        message,
        excerpt,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*endpoint, "activities");
    assert!(
        message.starts_with(&format!(
            "response truncated after 60 of {} bytes",
            body.len()
        )),
        "{message}"
    );
    assert!(message.contains("the connection closed early"), "{message}");
    assert!(excerpt.starts_with(r#"{"status":200"#), "{excerpt}");
    assert!(err.is_retryable());
    assert_eq!(server.count(), 2);
    assert_eq!(
        metrics
            .api_decode_failures
            .with_label_values(&["activities"])
            .get(),
        2
    );
    assert_eq!(
        metrics
            .api_errors
            .with_label_values(&["activities", "decode"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_json_is_reported_with_its_position() {
    let server = TestServer::script(vec![Reply::json(
        200,
        r#"{"status":200,"result":[{"id":"a",}]}"#,
    )])
    .await;
    let (client, metrics) = client_with(ApiConfig {
        max_retries: 1,
        ..config(&server.url())
    });
    let err = client.services(ORG).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode the services response: malformed JSON at line 1 column 35: key must \
         be a string; the body starts with: {\"status\":200,\"result\":[{\"id\":\"a\",}]}"
    );
    assert_eq!(server.count(), 2, "decode failures are retried");
    assert_eq!(
        metrics
            .api_decode_failures
            .with_label_values(&["services"])
            .get(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn valid_json_of_the_wrong_shape_says_what_was_expected() {
    let server = TestServer::start(|req, _| match req.path.rsplit('/').next() {
        Some("activities") => Reply::json(200, r#"{"status":200,"result":{"id":"a"}}"#),
        Some("keys") => Reply::json(200, r#"{"status":200,"requestId":"r-k"}"#),
        _ => Reply::json(200, r#"[{"id":"s1"}]"#),
    })
    .await;
    let (client, _) = client_with(ApiConfig {
        max_retries: 0,
        ..config(&server.url())
    });
    let (from, to) = (utc("2025-03-04T00:00:00Z"), utc("2025-03-05T00:00:00Z"));
    let err = client
        .activities(ORG, from, to)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        // Column 24 is the `{` of the map (serde_json reading a slice places it there; its
        // io::Read path, used before issue 17, said 25: one byte it had peeked past).
        err.contains("unexpected response shape at line 1 column 24: invalid type: map, expected an array of activities"),
        "{err}"
    );
    let err = client.keys(ORG).await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "cannot decode the keys response (request r-k): the envelope has no `result` field"
        ),
        "{err}"
    );
    let err = client.services(ORG).await.unwrap_err().to_string();
    assert!(
        err.contains("expected a response envelope object {status, requestId, result}"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_never_exceed_the_limit_in_any_rolling_window() {
    let server = TestServer::script(vec![Reply::ok("[]")]).await;
    let window = Duration::from_secs(1);
    let (client, metrics) = client_with(ApiConfig {
        rate_limit_requests: 3,
        rate_limit_window: window,
        ..config(&server.url())
    });
    let mut tasks = Vec::new();
    for task in 0..5 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let org = format!("org-{task}");
            for call in 0..6 {
                match call % 3 {
                    0 => client.services(&org).await.map(drop),
                    1 => client.keys(&org).await.map(drop),
                    _ => client.members(&org).await.map(drop),
                }
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut at: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 30);
    at.sort();
    // Every 4th send must be at least a full window after the one 3 sends before it, i.e.
    // every rolling window holds at most 3 sends.
    for (i, pair) in at.windows(4).enumerate() {
        assert!(
            pair[3] - pair[0] >= window,
            "sends {i}..{} fall in one window",
            i + 3
        );
    }
    // ... and the limiter does not over-throttle: 30 sends at 3/s take about 9 s.
    assert!(
        at[29] - at[0] <= Duration::from_secs(10),
        "{:?}",
        at[29] - at[0]
    );
    assert!(
        metrics
            .api_rate_limit_wait_seconds
            .with_label_values(&["limiter"])
            .get()
            > 0.0
    );
}

#[tokio::test]
async fn window_bounds_are_written_in_each_date_format() {
    let server = TestServer::script(vec![Reply::ok("[]")]).await;
    let (from, to) = (utc("2025-03-04T10:15:30.250Z"), utc("2025-03-04T11:00:00Z"));
    for (format, want_from, want_to) in [
        (
            DateFormat::Naive,
            "2025-03-04T10:15:30.000",
            "2025-03-04T11:00:00.000",
        ),
        (
            DateFormat::Rfc3339,
            "2025-03-04T10:15:30.000Z",
            "2025-03-04T11:00:00.000Z",
        ),
        (DateFormat::Date, "2025-03-04", "2025-03-05"),
    ] {
        let (client, _) = client_with(ApiConfig {
            date_format: format,
            ..config(&server.url())
        });
        client.activities(ORG, from, to).await.unwrap();
        let req: Recorded = server.requests().pop().unwrap();
        assert_eq!(req.path, format!("/v1/organizations/{ORG}/activities"));
        assert_eq!(
            req.param("from_date").as_deref(),
            Some(want_from),
            "{format:?}"
        );
        assert_eq!(req.param("to_date").as_deref(), Some(want_to), "{format:?}");
        assert_eq!(client.effective_date_format(), format);
    }
    assert_eq!(
        server.requests()[0].query,
        "from_date=2025-03-04T10%3A15%3A30.000&to_date=2025-03-04T11%3A00%3A00.000"
    );
}

/// A server that answers 400 (the live API's wording) to every `from_date` that `accepts`
/// refuses, and one activity otherwise.
async fn strict_dates(accepts: fn(&str) -> bool) -> TestServer {
    TestServer::start(move |req, _| {
        let from_date = req.param("from_date").unwrap_or_default();
        if accepts(&from_date) {
            Reply::ok(&format!("[{}]", activity("a1")))
        } else {
            error_json(400, &format!("BAD_REQUEST: Invalid from_date {from_date}"))
        }
    })
    .await
}

fn date_only(d: &str) -> bool {
    d.len() == 10 && !d.contains('T')
}

fn naive_only(d: &str) -> bool {
    d.len() == 23 && d.contains('T') && !d.ends_with('Z')
}

fn steps(metrics: &Metrics, from: &str, to: &str) -> u64 {
    metrics
        .api_date_format_fallbacks
        .with_label_values(&[from, to])
        .get()
}

/// Everything logged on this thread while the guard lives (tests run on one thread).
fn capture_logs() -> (
    Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    #[derive(Clone)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::default());
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buf.0, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn each_400_about_dates_steps_down_one_format_until_one_is_accepted() {
    // A server that only accepts YYYY-MM-DD, like clickhousectl's validation: two refusals.
    let server = strict_dates(date_only).await;
    let (client, metrics) = client(&server);
    assert_eq!(client.effective_date_format(), DateFormat::Rfc3339);
    let (logs, _guard) = capture_logs();
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00.5Z"));

    let batch = client.activities(ORG, from, to).await.unwrap();
    assert_eq!(batch.activities.len(), 1);
    assert_eq!(batch.count, 1);
    assert_eq!(batch.format, DateFormat::Date);
    assert_eq!(
        batch.bounds,
        (utc("2025-03-04T00:00:00Z"), utc("2025-03-05T23:59:59.999Z")),
        "a date-only to_date may cover its whole day"
    );
    assert_eq!(client.effective_date_format(), DateFormat::Date);
    let sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.param("from_date").unwrap())
        .collect();
    assert_eq!(
        sent,
        [
            "2025-03-04T10:00:00.000Z",
            "2025-03-04T10:00:00.000",
            "2025-03-04"
        ]
    );
    assert_eq!(
        server.requests()[2].param("to_date").as_deref(),
        Some("2025-03-05")
    );
    assert_eq!(steps(&metrics, "rfc3339", "naive"), 1);
    assert_eq!(steps(&metrics, "naive", "date"), 1);
    assert_eq!(
        metrics
            .api_errors
            .with_label_values(&["activities", "bad_request"])
            .get(),
        0,
        "the recovered 400s are not a failed call"
    );
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 2, "{text}");
    for (line, (from, to, value)) in warns.iter().zip([
        ("rfc3339", "naive", "2025-03-04T10:00:00.000Z"),
        ("naive", "date", "2025-03-04T10:00:00.000"),
    ]) {
        for want in [
            format!("from=\"{from}\""),
            format!("to=\"{to}\""),
            "request_id=\"req-400\"".into(),
            format!("Invalid from_date {value}"),
        ] {
            assert!(line.contains(&want), "{want} missing in {line}");
        }
    }

    // From now on every call (every clone) sends dates directly.
    let batch = client.clone().activities(ORG, from, to).await.unwrap();
    assert_eq!(batch.format, DateFormat::Date);
    assert_eq!(server.count(), 4);
    assert_eq!(
        server.requests()[3].param("from_date").as_deref(),
        Some("2025-03-04")
    );
    assert_eq!(steps(&metrics, "naive", "date"), 1);
}

#[tokio::test]
async fn a_server_refusing_only_rfc3339_is_answered_in_naive() {
    let server = strict_dates(naive_only).await;
    let (client, metrics) = client(&server);
    let (from, to) = (
        utc("2025-03-04T10:00:00.250Z"),
        utc("2025-03-04T11:00:00.5Z"),
    );
    let batch = client.activities(ORG, from, to).await.unwrap();
    assert_eq!(batch.format, DateFormat::Naive);
    assert_eq!(
        batch.bounds,
        (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:01Z")),
        "the whole seconds sent"
    );
    assert_eq!(server.count(), 2);
    assert_eq!(client.effective_date_format(), DateFormat::Naive);
    assert_eq!(steps(&metrics, "rfc3339", "naive"), 1);
    assert_eq!(steps(&metrics, "naive", "date"), 0);
}

#[tokio::test]
async fn a_restored_format_is_used_from_the_first_request() {
    let server = strict_dates(date_only).await;
    let (client, metrics) = client(&server);
    client.set_date_format(DateFormat::Date);
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let batch = client.activities(ORG, from, to).await.unwrap();
    assert_eq!(batch.format, DateFormat::Date);
    assert_eq!(server.count(), 1, "no refusal repeated");
    assert_eq!(steps(&metrics, "rfc3339", "naive"), 0);
}

#[tokio::test]
async fn a_400_for_every_format_is_returned_after_the_last_step() {
    let server = strict_dates(|_| false).await;
    let (client, metrics) = client(&server);
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let err = client.activities(ORG, from, to).await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
    assert_eq!(server.count(), 3);
    assert_eq!(client.effective_date_format(), DateFormat::Date);
    assert_eq!(
        metrics
            .api_errors
            .with_label_values(&["activities", "bad_request"])
            .get(),
        1
    );
}

/// Each `date_format` against the emulator's date validation modes: the default (`rfc3339`)
/// passes the strict, live-like emulator as is; a refused form steps down to day dates once;
/// every combination still returns the whole window.
#[tokio::test]
async fn each_date_format_against_each_emulator_date_mode() {
    use DateFormat::{Date, Naive, Rfc3339};
    use DateValidation::{DateOnly, Lenient, Strict};
    use clickhouse_audit_exporter::emulator::{DateValidation, Emulator, EmulatorOptions};
    assert_eq!(ApiConfig::default().date_format, Rfc3339);
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(3 * 86_400),
        rate_limit: None,
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    let now = emu.emulator.now();
    let (from, to) = (now - chrono::Duration::days(2), now);
    let mut whole_window = None;
    for (mode, format, settles_on) in [
        (Strict, Rfc3339, Rfc3339),
        (Strict, Naive, Date),
        (Strict, Date, Date),
        (Lenient, Rfc3339, Rfc3339),
        (Lenient, Naive, Naive),
        (Lenient, Date, Date),
        (DateOnly, Rfc3339, Date),
        (DateOnly, Naive, Date),
        (DateOnly, Date, Date),
    ] {
        emu.emulator.set_date_validation(mode);
        let cfg = ApiConfig {
            date_format: format,
            ..config(&emu.base_url)
        };
        let creds = Credentials {
            key_id: emu.emulator.key_id(),
            key_secret: SecretString::from(emu.emulator.key_secret()),
        };
        let metrics = Arc::new(Metrics::new());
        let client = Client::new(&cfg, creds, metrics.clone()).expect("client builds");
        let batch = client.activities(&org, from, to).await.unwrap();
        let case = format!("{mode:?} {format:?}");
        assert_eq!(client.effective_date_format(), settles_on, "{case}");
        // One step per refusal along rfc3339 → naive → date.
        let rank = |f: DateFormat| match f {
            Rfc3339 => 0u64,
            Naive => 1,
            Date => 2,
        };
        let stepped = steps(&metrics, "rfc3339", "naive") + steps(&metrics, "naive", "date");
        assert_eq!(stepped, rank(settles_on) - rank(format), "{case}");
        let in_window = batch
            .activities
            .iter()
            .filter(|a| (from..=to).contains(&a.created_at))
            .count();
        assert!(in_window > 300, "{case}: {in_window} of 2 days x 200/day");
        assert_eq!(*whole_window.get_or_insert(in_window), in_window, "{case}");
    }
}

#[tokio::test]
async fn a_400_not_about_dates_is_surfaced_without_a_fallback() {
    let server = TestServer::script(vec![error_json(
        400,
        "BAD_REQUEST: organization is suspended",
    )])
    .await;
    let (client, metrics) = client(&server);
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let err = client.activities(ORG, from, to).await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
    assert_eq!(client.effective_date_format(), DateFormat::Rfc3339);
    assert_eq!(steps(&metrics, "rfc3339", "naive"), 0);
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn a_streamed_window_arrives_in_chunks_of_the_requested_size() {
    // 2 500 activities and 2 quarantined elements in one answer (~180 kB).
    let mut elements: Vec<String> = (0..2_500).map(|i| activity(&format!("a{i}"))).collect();
    elements.insert(700, r#"{"createdAt":"2025-03-04T10:15:30Z"}"#.into());
    elements.push("42".into());
    let body = format!("[{}]", elements.join(","));
    let server = TestServer::start(move |_, _| Reply::ok(&body)).await;
    let (client, _) = client(&server);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let req = WindowRequest {
        max_bytes: None,
        priority: Priority::Normal,
        stream: Some(StreamTo { batch: 1_000, tx }),
    };
    let fetch = tokio::spawn(async move { client.activities_window(ORG, from, to, req).await });
    // Backpressure: with nobody reading, the decoder stops after one queued chunk and the one
    // it cannot hand over, so it cannot finish the answer.
    let first = rx.recv().await.unwrap();
    // Once the decoder has queued the next chunk (the channel holds one), the third cannot be
    // handed over until we read: the fetch cannot have finished.
    crate::support::wait::eventually("the decoder queues the second chunk", async || {
        (rx.len() == 1).then_some(())
    })
    .await;
    assert!(!fetch.is_finished(), "the decoder waits for the receiver");
    let mut chunks = vec![first];
    let all = tokio::time::timeout(crate::support::wait::PATIENCE, async {
        while let Some(chunk) = rx.recv().await {
            chunks.push(chunk);
        }
    });
    all.await
        .expect("the decoder hands over every chunk and closes the channel");
    let batch = fetch.await.unwrap().unwrap();
    assert!(batch.activities.is_empty() && batch.quarantined.is_empty());
    assert_eq!(batch.count, 2_502);
    assert_eq!(batch.format, DateFormat::Rfc3339);
    assert!(batch.body_bytes > 100_000, "{}", batch.body_bytes);
    let sizes: Vec<usize> = chunks
        .iter()
        .map(|c| c.activities.len() + c.quarantined.len())
        .collect();
    assert_eq!(sizes, [1_000, 1_000, 502]);
    assert!(
        chunks.iter().all(|c| c.format == Some(DateFormat::Rfc3339)),
        "each chunk names the date format that answered"
    );
    let ids: Vec<&str> = chunks
        .iter()
        .flat_map(|c| c.activities.iter().map(|a| a.id.as_str()))
        .collect();
    assert_eq!(ids.len(), 2_500);
    assert_eq!(
        (ids[0], ids[2_499]),
        ("a0", "a2499"),
        "in the order received"
    );
    let quarantined: Vec<&str> = chunks
        .iter()
        .flat_map(|c| c.quarantined.iter().map(|q| q.reason))
        .collect();
    assert_eq!(quarantined, ["missing_id", "not_an_object"]);
    assert_eq!(
        chunks[0].quarantined.len(),
        1,
        "element 701 is in the first chunk"
    );
}

#[tokio::test]
async fn a_streamed_window_past_max_bytes_is_too_large_and_hands_over_only_what_it_read() {
    // ~70 kB sent chunked: the size shows only while the body is read.
    let elements: Vec<String> = (0..1_000).map(|i| activity(&format!("a{i}"))).collect();
    let body = format!("[{}]", elements.join(","));
    let server = TestServer::script(vec![Reply::ok(&body).chunked()]).await;
    let (client, _) = client(&server);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let req = WindowRequest {
        max_bytes: Some(15_000),
        priority: Priority::Normal,
        stream: Some(StreamTo { batch: 50, tx }),
    };
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let err = client
        .activities_window(ORG, from, to, req)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::TooLarge { limit: 15_000, .. }),
        "{err:?}"
    );
    let mut handed = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        handed.extend(chunk.activities.into_iter().map(|a| a.id));
    }
    // What was decoded before the cap is handed over in order (the poller stores it: dedupe
    // makes the split windows' re-reads harmless); nothing past 15 kB of ~70 kB.
    assert!(!handed.is_empty() && handed.len() < 400, "{}", handed.len());
    let expected: Vec<String> = (0..handed.len()).map(|i| format!("a{i}")).collect();
    assert_eq!(handed, expected);
    assert_eq!(
        server.count(),
        1,
        "too large is not retried: the window is split"
    );
}

#[tokio::test]
async fn a_dropped_stream_receiver_abandons_the_window_without_retries() {
    let server = TestServer::script(vec![Reply::ok(&format!("[{}]", activity("a1")))]).await;
    let (client, _) = client(&server);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let req = WindowRequest {
        stream: Some(StreamTo { batch: 10, tx }),
        ..WindowRequest::default()
    };
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let err = client
        .activities_window(ORG, from, to, req)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("receiver of the streamed activities is gone"),
        "{err}"
    );
    assert_eq!(server.count(), 1, "not retried");
}

#[tokio::test(start_paused = true)]
async fn a_low_priority_window_waits_for_a_free_slot_besides_the_reserved_one() {
    let server = TestServer::script(vec![Reply::ok("[]")]).await;
    let (client, _) = client_with(ApiConfig {
        rate_limit_requests: 2,
        rate_limit_window: Duration::from_secs(10),
        ..config(&server.url())
    });
    let (from, to) = (utc("2025-03-04T10:00:00Z"), utc("2025-03-04T11:00:00Z"));
    let start = Instant::now();
    client.activities(ORG, from, to).await.unwrap();
    let low = tokio::spawn({
        let client = client.clone();
        async move {
            let req = WindowRequest {
                priority: Priority::Low,
                ..WindowRequest::default()
            };
            client.activities_window(ORG, from, to, req).await.unwrap();
            Instant::now() - start
        }
    });
    // Paused clock: a virtual second passes.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!low.is_finished(), "one slot used, the other is reserved");
    // A Normal window takes the reserved slot at once.
    client.activities(ORG, from, to).await.unwrap();
    assert!(Instant::now() - start < Duration::from_secs(2));
    let low_at = low.await.unwrap();
    assert!(
        low_at >= Duration::from_secs(11) && low_at < Duration::from_secs(12),
        "Low waited for both answers to leave the window: {low_at:?}"
    );
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn activities_keep_the_exact_bytes_received() {
    // Odd whitespace, number spellings serde would normalize (1.50, 1E3, -0), escapes, raw
    // UTF-8, unknown fields and an unknown type: all must come back byte for byte.
    let odd = "{\n  \"id\" :\"act-1\" ,\"createdAt\": \"2025-03-04T10:15:30Z\",\n\t\"type\":\"quantum_entangle_2031\", \"cost\": 1.50, \"big\": 1E3, \"neg\": -0,\n \"who\": \"Zo\u{eb} \\u00e9\\n\u{1F600} \\ud83d\\ude00\", \"nested\": {\"a\": [ 1 , {\"b\":null} ] }, \"flag\":true }";
    let plain = activity("act-2");
    let body = format!(
        "{{\"requestId\" : \"req-v\", \"result\" : [ {odd} ,\r\n {plain} ], \"status\" : 200 }}"
    );
    let server = TestServer::script(vec![Reply::json(200, body.clone())]).await;
    let (client, metrics) = client(&server);
    let batch = client
        .activities(
            ORG,
            utc("2025-03-04T00:00:00Z"),
            utc("2025-03-05T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(batch.activities.len(), 2);
    let a = &batch.activities[0];
    assert_eq!(a.raw.get(), odd);
    assert_eq!(a.id, "act-1");
    assert_eq!(a.kind.as_deref(), Some("quantum_entangle_2031"));
    assert_eq!(a.created_at_raw, "2025-03-04T10:15:30Z");
    assert_eq!(batch.activities[1].raw.get(), plain);
    assert_eq!(batch.request_id.as_deref(), Some("req-v"));
    assert_eq!(batch.body_bytes, body.len());
    let received = metrics
        .api_bytes_received
        .with_label_values(&["activities"]);
    assert_eq!(received.get(), body.len() as u64);
}

#[tokio::test]
async fn a_large_answer_streams_through_intact() {
    // ~6 MB in many network chunks: every element must still be exact and in order.
    let items: Vec<String> = (0..30_000)
        .map(|i| {
            format!(
                r#"{{"id":"id-{i}","createdAt":"2025-03-04T10:{:02}:{:02}Z","type":"user_login","actorDetails":"user{i}@example.com","pad":"{}"}}"#,
                i / 60 % 60,
                i % 60,
                "x".repeat(i % 200)
            )
        })
        .collect();
    let body = format!(
        r#"{{"status":200,"requestId":"big","result":[{}]}}"#,
        items.join(",")
    );
    let server = TestServer::script(vec![Reply::json(200, body.clone())]).await;
    let (client, _) = client(&server);
    let batch = client
        .activities(
            ORG,
            utc("2025-03-04T00:00:00Z"),
            utc("2025-03-05T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(batch.activities.len(), items.len());
    assert!(batch.quarantined.is_empty());
    for (a, want) in batch.activities.iter().zip(&items) {
        assert_eq!(a.raw.get(), want);
    }
    assert_eq!(batch.body_bytes, body.len());
}

#[tokio::test]
async fn bad_activities_are_quarantined_and_the_rest_delivered() {
    let result = [
        activity("good-1"),
        r#"{"createdAt":"2025-03-04T10:15:30Z","type":"user_login"}"#.into(),
        r#"{"id":17,"createdAt":"2025-03-04T10:15:30Z"}"#.into(),
        r#"{"id":"bad-time","createdAt":"last tuesday"}"#.into(),
        r#"{"id":"no-time"}"#.into(),
        r#""just a string""#.into(),
        "null".into(),
        r#"{"id":"naive-time","createdAt":"2025-03-04T10:15:30.5"}"#.into(),
        r#"{"id":"offset-time","createdAt":"2025-03-04T12:15:30+02:00"}"#.into(),
    ]
    .join(",");
    let server = TestServer::script(vec![Reply::ok(&format!("[{result}]"))]).await;
    let (client, _) = client(&server);
    let batch = client
        .activities(
            ORG,
            utc("2025-03-04T00:00:00Z"),
            utc("2025-03-05T00:00:00Z"),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = batch.activities.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["good-1", "naive-time", "offset-time"]);
    assert_eq!(
        batch.activities[1].created_at,
        utc("2025-03-04T10:15:30.5Z"),
        "naive createdAt is UTC"
    );
    assert_eq!(batch.activities[2].created_at, utc("2025-03-04T10:15:30Z"));
    assert_eq!(
        batch.activities[2].created_at_raw,
        "2025-03-04T12:15:30+02:00"
    );
    let reasons: Vec<(&str, &str)> = batch
        .quarantined
        .iter()
        .map(|q| (q.reason, q.raw.get()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "missing_id",
                r#"{"createdAt":"2025-03-04T10:15:30Z","type":"user_login"}"#
            ),
            (
                "missing_id",
                r#"{"id":17,"createdAt":"2025-03-04T10:15:30Z"}"#
            ),
            (
                "bad_created_at",
                r#"{"id":"bad-time","createdAt":"last tuesday"}"#
            ),
            ("bad_created_at", r#"{"id":"no-time"}"#),
            ("not_an_object", r#""just a string""#),
            ("not_an_object", "null"),
        ]
    );
    assert!(batch.quarantined[2].detail.contains("\"last tuesday\""));
}

#[tokio::test]
async fn paged_lists_follow_next_cursor_and_members_are_keyed_by_user_id() {
    let server = TestServer::start(|req, _| match req.param("cursor").as_deref() {
        None => Reply::json(
            200,
            r#"{"status":200,"requestId":"p1","result":[{"id":"k1"}],"limit":1,"nextCursor":"c/2"}"#,
        ),
        Some("c/2") => Reply::json(
            200,
            r#"{"status":200,"requestId":"p2","result":[{"id":"k2"},{"userId":"u1"}],"nextCursor":null}"#,
        ),
        Some(other) => panic!("unexpected cursor {other}"),
    })
    .await;
    let (client, _) = client(&server);
    let keys = client.keys(ORG).await.unwrap();
    let ids: Vec<Option<&str>> = keys.iter().map(|k| k.id.as_deref()).collect();
    assert_eq!(ids, [Some("k1"), Some("k2"), None]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].query, "cursor=c%2F2");

    let members = client.members(ORG).await.unwrap();
    assert_eq!(members.last().unwrap().id.as_deref(), Some("u1"));
}

#[tokio::test(start_paused = true)]
async fn a_cursor_that_repeats_is_an_error_not_a_loop() {
    let server = TestServer::script(vec![Reply::json(
        200,
        r#"{"status":200,"result":[],"nextCursor":"same"}"#,
    )])
    .await;
    let (client, _) = client(&server);
    let err = client.organizations().await.unwrap_err();
    assert!(err.to_string().contains("pagination does not end"), "{err}");
    assert_eq!(server.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn connection_errors_are_retried_then_reported_as_transport() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let (client, metrics) = client_with(ApiConfig {
        max_retries: 2,
        ..config(&format!("http://{addr}"))
    });
    let err = client.services(ORG).await.unwrap_err();
    let ApiError::Transport { message } = &err else {
        panic!("{err:?}")
    };
    assert!(message.to_lowercase().contains("connect"), "{message}");
    assert!(err.to_string().contains("check api.base_url"));
    assert_eq!(
        metrics.api_retries.with_label_values(&["services"]).get(),
        2
    );
    assert_eq!(
        metrics
            .api_requests
            .with_label_values(&["services", "error"])
            .get(),
        3
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::script(vec![
        Reply::text(301, "").header("location", "https://api.clickhouse.cloud/v1/organizations"),
    ])
    .await;
    let (client, _) = client(&server);
    let err = client.organizations().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 301, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("redirected to https://api.clickhouse.cloud/v1/organizations"),
        "{err}"
    );
    assert_eq!(server.count(), 1);
}

/// Runs `secret_probe` in a process of its own and checks everything it wrote. (A process of
/// its own because a TRACE subscriber must be the global one to see every log line reliably:
/// scoped subscribers race with other test threads over tracing's callsite interest cache.)
#[test]
fn the_secret_never_reaches_logs_errors_or_debug_output() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "client::secret_probe",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads=1", "--color=never"])
        .env("CH_AUDIT_SECRET_PROBE", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the probe failed:\n{text}");
    for line in [
        "1 passed",
        "DEBUG",
        "API request",
        "will retry",
        "reqwest::connect",
        "client Debug: ",
    ] {
        assert!(
            text.contains(line),
            "the probe output lacks {line:?}:\n{text}"
        );
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"));
    assert!(!text.contains(SECRET), "the secret leaked:\n{text}");
    assert!(
        !text.contains(&basic),
        "the Authorization header leaked:\n{text}"
    );
    assert!(text.contains("bad key [REDACTED]"), "{text}");
}

#[tokio::test(start_paused = true)]
#[ignore = "run by the_secret_never_reaches_logs_errors_or_debug_output in its own process"]
async fn secret_probe() {
    if std::env::var_os("CH_AUDIT_SECRET_PROBE").is_none() {
        return;
    }
    // Global, at TRACE, with the `log` bridge (reqwest logs through `log`).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init()
        .expect("the probe runs alone in its process");

    // The server echoes the credentials in its error bodies, as a careless proxy might.
    let server = TestServer::start(|req, n| {
        let auth = req.header("authorization").unwrap_or("").to_owned();
        match n {
            0 => Reply::text(500, &format!("boom {auth} {SECRET}")),
            1 => Reply::json(200, format!(r#"{{"result":[1, "{auth}{SECRET}""#)), // truncated JSON
            2 => Reply::ok(&format!("[{}]", activity("a1"))),
            _ => Reply::json(401, format!(r#"{{"error":"bad key {SECRET}"}}"#)),
        }
    })
    .await;
    let (client, _) = client(&server);
    let (from, to) = (utc("2025-03-04T00:00:00Z"), utc("2025-03-05T00:00:00Z"));
    client.activities(ORG, from, to).await.unwrap();
    let unauthorized = client.keys(ORG).await.unwrap_err();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (offline, _) = client_with(ApiConfig {
        max_retries: 1,
        ..config(&format!("http://{closed}"))
    });
    let transport = offline.services(ORG).await.unwrap_err();
    println!("client Debug: {client:?}");
    println!("401 Display: {unauthorized}");
    println!("401 Debug: {unauthorized:?}");
    println!("transport Display: {transport}");
    println!("transport Debug: {transport:?}");
}
