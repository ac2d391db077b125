//! The splunk_hec sink against the protocol-faithful fake collector (support/splunk_hec.rs):
//! event objects as HEC wants them (time, host/source/sourcetype/index, flat indexed fields,
//! gzip), indexer acknowledgement (wait for indexing; a lost ack means resend), 503 busy and
//! outages retried with nothing lost, refused tokens as a clear `Unauthorized` that stops `once`
//! at once and fails `/readyz`, and the token kept out of logs and errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};

use crate::support::sinks::{
    assert_no_secret, daemon_not_ready_on_refused_credentials, deliver_retrying, events,
    once_fails_fast_on_refused_credentials, sink,
};
use crate::support::splunk_hec::FakeHec;

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

fn hec(url: &str, extra: &str) -> Box<dyn Sink> {
    sink(&format!(
        "[[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\n{extra}\n"
    ))
}

fn counts(indexed: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in indexed {
        *m.entry(e["fields"]["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

#[tokio::test]
async fn events_arrive_once_as_hec_event_objects_with_flat_indexed_fields() {
    let fake = FakeHec::start(TOKEN, false).await;
    let mut s = hec(&fake.url(), "index = \"audit\"\nhost = \"exporter-1\"");
    let sent = events(300);
    for chunk in sent.chunks(100) {
        s.deliver(chunk).await.unwrap();
    }
    let got = fake.indexed();
    assert_eq!(got.len(), sent.len());
    let c = counts(&got);
    for e in &sent {
        assert_eq!(c.get(&e.event_id), Some(&1), "{} once", e.event_id);
    }
    let first = &got[0];
    assert_eq!(first["sourcetype"], "clickhouse:cloud:audit");
    assert_eq!(first["source"], "clickhouse-audit-exporter");
    assert_eq!(first["index"], "audit");
    assert_eq!(first["host"], "exporter-1");
    assert_eq!(first["time"].as_f64(), Some(1741083330.0));
    assert_eq!(first["event"]["activity"]["id"], "act-0");
    assert_eq!(first["fields"]["type"], "key_create");
    assert_eq!(first["fields"]["kind"], "activity");
    // createdAt with milliseconds keeps them.
    let v6 = got
        .iter()
        .find(|e| e["fields"]["event_id"] == "activity:org-1:login_failed_v6")
        .unwrap();
    assert_eq!(v6["time"].as_f64(), Some(1741083331.25));
    // The unicode event survives intact.
    let uni = got
        .iter()
        .find(|e| e["fields"]["event_id"] == "activity:org-1:unicode")
        .unwrap();
    assert_eq!(
        uni["event"]["activity"]["actorDetails"],
        "Zoë 山田 🚀 \u{2028}sep"
    );
    assert_eq!(
        fake.requests(),
        4,
        "one gzip POST per batch (300 + 22 golden events)"
    );
}

#[tokio::test]
async fn cef_events_travel_as_strings_and_big_batches_split_by_bytes() {
    let fake = FakeHec::start(TOKEN, false).await;
    let mut s = hec(
        &fake.url(),
        "format = \"cef\"\nbatch_max_bytes = \"16KiB\"\ncompression = \"none\"",
    );
    let sent = events(200);
    s.deliver(&sent).await.unwrap();
    let got = fake.indexed();
    assert_eq!(got.len(), sent.len());
    assert!(
        got.iter()
            .all(|e| e["event"].as_str().unwrap().starts_with("CEF:0|"))
    );
    assert!(fake.requests() > 3, "split into several POSTs");
}

#[tokio::test]
async fn with_ack_the_sink_waits_until_splunk_indexed_the_batch() {
    let fake = FakeHec::start(TOKEN, true).await;
    fake.index_delay(Duration::from_millis(400));
    let mut s = hec(&fake.url(), "ack = true");
    let sent = events(50);
    let started = Instant::now();
    s.deliver(&sent).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited for the ack"
    );
    assert_eq!(
        fake.indexed().len(),
        sent.len(),
        "indexed before deliver returned"
    );
    assert!(fake.ack_queries() >= 2, "polled /ack");
}

#[tokio::test]
async fn a_lost_ack_is_transient_and_the_batch_is_sent_again() {
    let fake = FakeHec::start(TOKEN, true).await;
    fake.lose_acks(1);
    let mut s = hec(&fake.url(), "ack = true\nack_timeout = \"1s\"");
    let sent = events(20);
    match s.deliver(&sent).await {
        Err(SinkError::Transient { message, .. }) => {
            assert!(message.contains("not acknowledged"), "{message}")
        }
        other => panic!("expected a transient ack timeout, got {other:?}"),
    }
    assert!(fake.indexed().is_empty());
    s.deliver(&sent).await.unwrap();
    let c = counts(&fake.indexed());
    assert_eq!(c.len(), sent.len());
    assert!(
        c.values().all(|&n| n == 1),
        "the lost request never got indexed"
    );
}

#[tokio::test]
async fn ack_on_a_token_without_ack_is_rejected_with_hecs_reason() {
    let fake = FakeHec::start(TOKEN, false).await;
    let mut s = hec(&fake.url(), "ack = true");
    match s.deliver(&events(1)).await {
        Err(SinkError::Rejected(m)) => assert!(m.contains("ackId"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_busy_is_retried_and_an_outage_loses_nothing() {
    let fake = FakeHec::start(TOKEN, true).await;
    let mut s = hec(&fake.url(), "ack = true\ntimeout = \"1s\"");
    fake.busy(2);
    let sent = events(400);
    match s.deliver(&sent[..50]).await {
        Err(SinkError::Transient { message, .. }) => {
            assert!(message.contains("HEC code 9: Server is busy"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let pause = Duration::from_millis(100);
    deliver_retrying(&mut s, &sent[..50], pause, deadline).await;
    fake.stop();
    let mut down = true;
    let started = Instant::now();
    for chunk in sent[50..].chunks(50) {
        if down && started.elapsed() > Duration::from_secs(2) {
            fake.restart().await;
            down = false;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            match s.deliver(chunk).await {
                Ok(()) => break,
                Err(SinkError::Transient { .. }) => {
                    if down && started.elapsed() > Duration::from_secs(2) {
                        fake.restart().await;
                        down = false;
                    }
                    // The retry pause of a sender: the loop is bounded by `attempts`.
                    tokio::time::sleep(pause).await
                }
                Err(e) => panic!("{e:?}"),
            }
            assert!(attempts < 200);
        }
    }
    let c = counts(&fake.indexed());
    for e in &sent {
        assert_eq!(c.get(&e.event_id), Some(&1), "{}", e.event_id);
    }
}

#[tokio::test]
async fn refused_tokens_are_unauthorized_with_hecs_code_and_no_token_in_the_message() {
    let fake = FakeHec::start("another-token", false).await;
    let mut s = hec(&fake.url(), "");
    match s.deliver(&events(1)).await {
        Err(SinkError::Unauthorized(m)) => {
            assert!(
                m.contains("403") && m.contains("HEC code 4: Invalid token"),
                "{m}"
            );
            assert_no_secret(&m, &[TOKEN]);
        }
        other => panic!("{other:?}"),
    }
    let toml = format!(
        "[[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
        fake.url()
    );
    let cfg =
        clickhouse_audit_exporter::config::Config::from_toml(&toml, Some(HashMap::new())).unwrap();
    assert_no_secret(&format!("{cfg:?}"), &[TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stops_at_once_and_the_daemon_is_not_ready_when_the_token_is_refused() {
    let fake = FakeHec::start("another-token", false).await;
    let block = format!(
        "[[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n",
        fake.url()
    );
    let err = once_fails_fast_on_refused_credentials(&block, "splunk").await;
    assert!(err.contains("Invalid token"), "{err}");
    assert_no_secret(&err, &[TOKEN]);
    let body = daemon_not_ready_on_refused_credentials(&block, "splunk").await;
    assert_no_secret(&body, &[TOKEN]);
}

/// The whole pipeline: `once` with acknowledgement exports every activity exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exports_every_activity_acknowledged() {
    let fake = FakeHec::start(TOKEN, true).await;
    let emu = crate::support::sinks::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let block = format!(
        "[[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\nack = true\nbatch_max_events = 200\n",
        fake.url()
    );
    let cfg = crate::support::config(&emu, dir.path(), &block);
    Pipeline::build(cfg).await.unwrap().once().await.unwrap();
    let want = crate::support::sinks::activity_total(&emu);
    let c = counts(&fake.indexed());
    assert_eq!(c.len(), want);
    assert!(c.values().all(|&n| n == 1));
}
