//! The azure_logs_ingestion sink against the protocol-faithful fake Entra + Logs Ingestion
//! endpoint (support/azure_monitor.rs): every activity once in the table with `TimeGenerated`,
//! one token for many batches, a token expiring mid-run (refused by Azure, or run out by its
//! own lifetime) refreshed without loss, refused credentials as `Unauthorized` naming the
//! AADSTS code (and stopping `once`), a missing role naming "Monitoring Metrics Publisher",
//! batches split under 1 MB per call, oversized records rejected or dead-lettered, 429
//! retried after `Retry-After`, an outage losing nothing, managed identity through IMDS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::event::Event;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};

use crate::support::azure_monitor::{CLIENT_SECRET, FakeAzure};
use crate::support::sinks::{
    assert_no_secret, daemon_not_ready_on_refused_credentials, deliver_retrying, events,
    once_fails_fast_on_refused_credentials, sink,
};
use crate::support::wait::wait_for;

const HOUR: Duration = Duration::from_secs(3600);

fn block(fake: &FakeAzure, secret: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"sentinel\"\ntype = \"azure_logs_ingestion\"\n{}{extra}\n",
        fake.sink_keys(secret)
    )
}

fn azure(fake: &FakeAzure, extra: &str) -> Box<dyn Sink> {
    sink(&block(fake, CLIENT_SECRET, extra))
}

fn counts(table: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in table {
        *m.entry(r["event_id"].as_str().expect("event_id").to_string())
            .or_default() += 1;
    }
    m
}

fn assert_each_once(fake: &FakeAzure, sent: &[Event]) {
    let c = counts(&fake.table());
    assert_eq!(c.len(), sent.len(), "every event in the table");
    for e in sent {
        assert_eq!(c.get(&e.event_id), Some(&1), "{} once", e.event_id);
    }
}

#[tokio::test]
async fn every_event_lands_once_with_time_generated_and_one_token_serves_many_batches() {
    let fake = FakeAzure::start(HOUR).await;
    let mut s = azure(&fake, "");
    let sent = events(300);
    for chunk in sent.chunks(50) {
        s.deliver(chunk).await.unwrap();
    }
    assert_each_once(&fake, &sent);
    assert_eq!(fake.token_requests(), 1, "the token is cached");
    assert_eq!(fake.ingest_requests(), 7, "one call per batch");
    let table = fake.table();
    let first = &table[0];
    assert_eq!(first["TimeGenerated"], "2025-03-04T10:15:30.000Z");
    assert_eq!(first["kind"], "activity");
    assert_eq!(first["activity"]["id"], "act-0");
    let v6 = table
        .iter()
        .find(|r| r["event_id"] == "activity:org-1:login_failed_v6")
        .unwrap();
    assert_eq!(v6["TimeGenerated"], "2025-03-04T10:15:31.250Z");
    let uni = table
        .iter()
        .find(|r| r["event_id"] == "activity:org-1:unicode")
        .unwrap();
    assert_eq!(uni["activity"]["actorDetails"], "Zoë 山田 🚀 \u{2028}sep");
    assert!(
        table.iter().all(|r| r["TimeGenerated"].is_string()),
        "every record has TimeGenerated"
    );
}

#[tokio::test]
async fn cef_records_arrive_as_raw_data_without_compression_too() {
    let fake = FakeAzure::start(HOUR).await;
    let mut s = azure(&fake, "format = \"cef\"\ncompression = \"none\"");
    let sent = events(20);
    s.deliver(&sent).await.unwrap();
    let table = fake.table();
    assert_eq!(table.len(), sent.len());
    for r in &table {
        assert!(r["RawData"].as_str().unwrap().starts_with("CEF:0|"), "{r}");
        assert!(r["TimeGenerated"].is_string());
    }
}

#[tokio::test]
async fn a_token_expiring_mid_run_is_refreshed_without_loss() {
    // Azure refuses a cached token (revoked, or expired early): one fresh token, same deliver.
    let fake = FakeAzure::start(HOUR).await;
    let mut s = azure(&fake, "");
    let sent = events(200);
    s.deliver(&sent[..100]).await.unwrap();
    fake.expire_tokens();
    s.deliver(&sent[100..]).await.unwrap();
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.ingest_requests(), 3, "one refused call, one again");
    assert_each_once(&fake, &sent);

    // A short-lived token is replaced before it runs out: no call is ever refused.
    let fake = FakeAzure::start(Duration::from_secs(2)).await;
    let mut s = azure(&fake, "");
    s.deliver(&sent[..100]).await.unwrap();
    wait_for(|| fake.all_tokens_expired(), "the first token to run out").await;
    s.deliver(&sent[100..]).await.unwrap();
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.ingest_requests(), 2, "refreshed ahead, never refused");
    assert_each_once(&fake, &sent);
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_naming_the_aadsts_code_and_the_fix() {
    let fake = FakeAzure::start(HOUR).await;
    let wrong = "wrong-secret-value-42";
    let cases = [
        (block(&fake, wrong, ""), "AADSTS7000215", "client_secret"),
        (
            block(&fake, CLIENT_SECRET, "").replace(
                crate::support::azure_monitor::TENANT,
                "00000000-0000-0000-0000-000000000000",
            ),
            "AADSTS90002",
            "tenant_id",
        ),
        (
            block(&fake, CLIENT_SECRET, "").replace(
                crate::support::azure_monitor::CLIENT_ID,
                "11111111-1111-1111-1111-111111111111",
            ),
            "AADSTS700016",
            "client_id",
        ),
    ];
    for (toml, code, fix) in cases {
        match sink(&toml).deliver(&events(1)).await {
            Err(SinkError::Unauthorized(m)) => {
                assert!(m.contains(code) && m.contains(fix), "{code}: {m}");
                assert_no_secret(&m, &[wrong, CLIENT_SECRET]);
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    assert!(fake.table().is_empty());
    assert_eq!(fake.ingest_requests(), 0, "nothing sent without a token");

    // A valid token without the role on the DCR: 403 after one fresh-token attempt.
    fake.deny_role(true);
    let refused_token_requests = fake.token_requests();
    let mut s = azure(&fake, "");
    s.deliver(&[]).await.unwrap();
    match s.deliver(&events(1)).await {
        Err(SinkError::Unauthorized(m)) => {
            assert!(
                m.contains("403") && m.contains("Monitoring Metrics Publisher"),
                "{m}"
            );
            assert!(!m.contains("fake-access-token"), "no token in {m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fake.ingest_requests(),
        1,
        "a fresh token refused is not tried again"
    );
    match s.deliver(&events(1)).await {
        Err(SinkError::Unauthorized(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fake.ingest_requests(),
        3,
        "a cached token refused is replaced once"
    );
    assert_eq!(fake.token_requests() - refused_token_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stops_at_once_and_the_daemon_is_not_ready_when_the_secret_is_refused() {
    let fake = FakeAzure::start(HOUR).await;
    let wrong = "wrong-secret-value-42";
    let b = block(&fake, wrong, "");
    let err = once_fails_fast_on_refused_credentials(&b, "sentinel").await;
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert_no_secret(&err, &[wrong]);
    let body = daemon_not_ready_on_refused_credentials(&b, "sentinel").await;
    assert_no_secret(&body, &[wrong]);
}

fn big_events(n: usize, size: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = crate::support::fixtures::activity(i);
            e.payload = format!(
                r#"{{"id":"act-{i}","createdAt":"2025-03-04T10:15:30Z","type":"key_create","actorDetails":"{}"}}"#,
                "x".repeat(size)
            );
            e
        })
        .collect()
}

#[tokio::test]
async fn big_batches_are_split_into_calls_of_at_most_a_megabyte() {
    let fake = FakeAzure::start(HOUR).await;
    let mut s = azure(&fake, "");
    let sent = big_events(200, 20_000);
    s.deliver(&sent).await.unwrap();
    assert_each_once(&fake, &sent);
    let sizes = fake.accepted_sizes();
    assert!(sizes.len() >= 4, "about 4 MB in several calls: {sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 1_000_000), "{sizes:?}");
    assert!(
        sizes.iter().any(|&n| n > 900_000),
        "calls are filled: {sizes:?}"
    );
}

#[tokio::test]
async fn a_record_over_the_limit_is_rejected_by_name_or_dead_lettered() {
    let fake = FakeAzure::start(HOUR).await;
    let mut sent = big_events(3, 100);
    sent.extend(big_events(4, 1_100_000).into_iter().skip(3));
    let huge = sent[3].event_id.clone();
    match azure(&fake, "").deliver(&sent).await {
        Err(SinkError::Rejected(m)) => {
            assert!(m.contains(&huge) && m.contains("1 MB"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.ingest_requests(), 0, "nothing sent");

    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let mut s = azure(&fake, &format!("dead_letter_path = \"{}\"", dead.display()));
    s.deliver(&sent).await.unwrap();
    assert_each_once(&fake, &sent[..3]);
    let lines = crate::support::read_ndjson(&dead);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event_id"], huge.as_str());
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("1 MB"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_and_an_outage_loses_nothing() {
    let fake = FakeAzure::start(HOUR).await;
    let mut s = azure(&fake, "timeout = \"2s\"");
    let sent = events(300);
    fake.script([(429, Some(1)), (503, None)]);
    match s.deliver(&sent[..50]).await {
        Err(SinkError::Transient {
            message,
            retry_after,
        }) => {
            assert!(message.contains("TooManyRequests"), "{message}");
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let pause = Duration::from_millis(100);
    let attempts = deliver_retrying(&mut s, &sent[..50], pause, deadline).await;
    assert_eq!(attempts, 2, "503 once more, then delivered");
    fake.stop();
    match s.deliver(&sent[50..100]).await {
        Err(SinkError::Transient { .. }) => {}
        other => panic!("receiver down must be transient: {other:?}"),
    }
    fake.restart().await;
    for chunk in sent[50..].chunks(50) {
        deliver_retrying(&mut s, chunk, pause, deadline).await;
    }
    assert_each_once(&fake, &sent);
}

#[tokio::test]
async fn a_managed_identity_takes_its_token_from_imds() {
    let fake = FakeAzure::start(HOUR).await;
    let toml = format!(
        "[[sinks]]\nname = \"sentinel\"\ntype = \"azure_logs_ingestion\"\nendpoint = \"{url}\"\n\
         dcr_immutable_id = \"{dcr}\"\nstream_name = \"{stream}\"\nmanaged_identity = true\n\
         managed_identity_client_id = \"0d9ce0f2-5c47-4f6b-9b8a-1c2d3e4f5a6b\"\n\
         managed_identity_endpoint = \"{url}/metadata/identity/oauth2/token\"\n",
        url = fake.url(),
        dcr = crate::support::azure_monitor::DCR,
        stream = crate::support::azure_monitor::STREAM,
    );
    let mut s = sink(&toml);
    let sent = events(100);
    for chunk in sent.chunks(40) {
        s.deliver(chunk).await.unwrap();
    }
    assert_each_once(&fake, &sent);
    assert_eq!(fake.token_requests(), 1);
}

/// The whole pipeline: `once` exports every activity of the emulator exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exports_every_activity_to_the_table() {
    let fake = FakeAzure::start(HOUR).await;
    let emu = crate::support::sinks::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = block(&fake, CLIENT_SECRET, "batch_max_events = 200");
    let cfg = crate::support::config(&emu, dir.path(), &b);
    Pipeline::build(cfg).await.unwrap().once().await.unwrap();
    let want = crate::support::sinks::activity_total(&emu);
    let c = counts(&fake.table());
    assert_eq!(c.len(), want);
    assert!(c.values().all(|&n| n == 1));
    assert!(fake.table().iter().all(|r| r["TimeGenerated"].is_string()));
    assert_eq!(fake.token_requests(), 1);
}
