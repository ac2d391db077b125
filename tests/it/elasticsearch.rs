//! The elasticsearch sink against the protocol-faithful fake `_bulk` endpoint
//! (support/elasticsearch.rs): ECS documents created once by `_id` = event_id, a redelivery
//! answered 409 and counted as delivered, `errors: true` answers read item by item (429 items
//! sent again, refused documents dead-lettered with the reason or the batch kept), refused
//! credentials as `Unauthorized`, an oversized request naming `batch_max_bytes`, outages and
//! node failover losing nothing, data streams, and `once` exporting every activity.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};

use crate::support::elasticsearch::{Doc, FakeEs};
use crate::support::sinks::{
    assert_no_secret, daemon_not_ready_on_refused_credentials, deliver_retrying, events,
    once_fails_fast_on_refused_credentials, sink,
};

const KEY: &str = "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw";
const KEY_SECRET: &str = "ui2lp2axTNmsyakw9tvNnw";

fn block(url: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\nurl = \"{url}\"\napi_key = \"{KEY}\"\n{extra}\n"
    )
}

fn es(url: &str, extra: &str) -> Box<dyn Sink> {
    sink(&block(url, extra))
}

async fn fake() -> FakeEs {
    let fake = FakeEs::start().await;
    fake.api_key(KEY, true);
    fake
}

fn counts(docs: &[Doc]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for d in docs {
        *m.entry(d.id.clone()).or_default() += 1;
    }
    m
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

const PAUSE: Duration = Duration::from_millis(20);

#[tokio::test]
async fn every_event_is_created_once_as_an_ecs_document_keyed_by_its_event_id() {
    // Answers filtered by `filter_path`, and full ones (a proxy or version ignoring it).
    for full in [false, true] {
        let fake = fake().await;
        fake.pipeline("audit-enrich");
        if full {
            fake.ignore_filter_path();
        }
        let mut s = es(&fake.url(), "pipeline = \"audit-enrich\"");
        let sent = events(300);
        for chunk in sent.chunks(100) {
            s.deliver(chunk).await.unwrap();
        }
        let docs = fake.docs();
        assert_eq!(docs.len(), sent.len(), "full answers: {full}");
        let c = counts(&docs);
        for e in &sent {
            assert_eq!(c.get(&e.event_id), Some(&1), "{} once", e.event_id);
        }
        let first = &docs[0];
        assert_eq!(first.index, "clickhouse-audit-2025.03.04");
        assert_eq!(first.source["event"]["id"], first.id.as_str());
        assert_eq!(first.source["@timestamp"], "2025-03-04T10:15:30.000Z");
        assert!(first.source["ecs"]["version"].is_string(), "ECS by default");
        let uni = docs
            .iter()
            .find(|d| d.id == "activity:org-1:unicode")
            .unwrap();
        assert!(
            uni.source.to_string().contains("Zoë 山田 🚀"),
            "{}",
            uni.source
        );
        assert_eq!(fake.requests(), 4);
        assert_eq!(fake.gzip_requests(), 4, "gzip by default");
        assert!(
            fake.queries()
                .iter()
                .all(|q| q.contains("pipeline=audit-enrich")),
            "{:?}",
            fake.queries()
        );
    }
}

#[tokio::test]
async fn a_redelivered_batch_is_answered_409_per_item_and_counts_as_delivered() {
    let fake = fake().await;
    let mut s = es(&fake.url(), "compression = \"none\"");
    let sent = events(50);
    s.deliver(&sent).await.unwrap();
    s.deliver(&sent).await.unwrap();
    assert_eq!(fake.conflicts(), sent.len(), "every item of the redelivery");
    let c = counts(&fake.docs());
    assert_eq!(c.len(), sent.len());
    assert!(c.values().all(|&n| n == 1), "no duplicate document");
    assert_eq!(fake.gzip_requests(), 0);
}

/// The Guarantees row "`_bulk` answering `errors: true` with mixed items".
#[tokio::test]
async fn a_mixed_errors_true_answer_is_never_taken_for_success() {
    let fake = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead/es.ndjson");
    let mut s = es(
        &fake.url(),
        &format!("dead_letter_path = \"{}\"", dead.display()),
    );
    let sent = events(40);
    let poisoned = sent[10].event_id.clone();
    fake.poison(&poisoned);
    fake.reject_items(5);
    // Created, 429 and 400 items in one HTTP 200 answer: not delivered, nothing dead-lettered
    // while some items are only waiting for another try.
    match s.deliver(&sent).await {
        Err(SinkError::Transient { message, .. }) => assert!(
            message.contains("5 of") && message.contains("es_rejected_execution_exception"),
            "{message}"
        ),
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert!(
        !dead.exists(),
        "nothing dead-lettered while items are retried"
    );
    assert_eq!(fake.docs().len(), sent.len() - 6);
    // The redelivery: the created ones come back 409 (delivered), the 429 ones go in, the
    // refused one goes to the dead-letter file with the cluster's reason, and the batch is done.
    s.deliver(&sent).await.unwrap();
    assert_eq!(fake.conflicts(), sent.len() - 6);
    let c = counts(&fake.docs());
    for e in &sent {
        let want = usize::from(e.event_id != poisoned);
        assert_eq!(
            c.get(&e.event_id).copied().unwrap_or(0),
            want,
            "{}",
            e.event_id
        );
    }
    let lines = crate::support::read_ndjson(&dead);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event_id"], poisoned.as_str());
    assert_eq!(lines[0]["sink"], "es");
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("400 mapper_parsing_exception: failed to parse field [event.duration]"),
        "{reason}"
    );
    assert_eq!(lines[0]["format"], "ecs");
    assert_eq!(lines[0]["record"]["event"]["id"], poisoned.as_str());
}

#[tokio::test]
async fn items_answered_429_are_sent_again_until_all_are_in() {
    let fake = fake().await;
    let mut s = es(&fake.url(), "");
    let sent = events(100);
    fake.reject_items(250);
    let attempts = deliver_retrying(&mut s, &sent, PAUSE, deadline()).await;
    assert!(attempts >= 3, "{attempts}");
    let c = counts(&fake.docs());
    assert_eq!(c.len(), sent.len());
    assert!(c.values().all(|&n| n == 1));
    assert!(fake.conflicts() > 0, "items in before were answered 409");
}

#[tokio::test]
async fn without_a_dead_letter_path_a_refused_document_keeps_the_batch_rejected() {
    let fake = fake().await;
    let mut s = es(&fake.url(), "");
    let sent = events(30);
    let poisoned = sent[3].event_id.clone();
    fake.poison(&poisoned);
    match s.deliver(&sent).await {
        Err(SinkError::Rejected(m)) => {
            assert!(
                m.contains(&poisoned)
                    && m.contains("mapper_parsing_exception")
                    && m.contains("dead_letter_path"),
                "{m}"
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(fake.docs().len(), sent.len() - 1, "the others went in");
    // The mapping is fixed: the kept batch goes through, nothing twice.
    fake.cure();
    s.deliver(&sent).await.unwrap();
    let c = counts(&fake.docs());
    assert_eq!(c.len(), sent.len());
    assert!(c.values().all(|&n| n == 1));
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_with_elasticsearchs_reason_and_never_dead_lettered() {
    let fake = FakeEs::start().await;
    fake.api_key("other:key", true);
    fake.user("elastic", "right-password");
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let dl = format!("dead_letter_path = \"{}\"", dead.display());
    let batch = events(3);
    match es(&fake.url(), &dl).deliver(&batch).await {
        Err(SinkError::Unauthorized(m)) => {
            assert!(m.contains("401") && m.contains("security_exception"), "{m}");
            assert_no_secret(&m, &[KEY_SECRET]);
        }
        other => panic!("{other:?}"),
    }
    let basic = |password: &str| {
        sink(&format!(
            "[[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\nurl = \"{}\"\nusername = \"elastic\"\npassword = \"{password}\"\n{dl}\n",
            fake.url()
        ))
    };
    match basic("wrong-password").deliver(&batch).await {
        Err(SinkError::Unauthorized(m)) => {
            assert!(m.contains("unable to authenticate user [elastic]"), "{m}");
            assert_no_secret(&m, &["wrong-password"]);
        }
        other => panic!("{other:?}"),
    }
    basic("right-password").deliver(&batch).await.unwrap();
    assert_eq!(fake.docs().len(), batch.len());
    // A key without create_doc: item-level 403s are the credentials' fault, not the documents'.
    fake.api_key(KEY, false);
    match es(&fake.url(), &dl).deliver(&events(5)).await {
        Err(SinkError::Unauthorized(m)) => assert!(m.contains("create_doc"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!dead.exists());
}

#[tokio::test]
async fn a_receiver_down_or_busy_is_transient_and_nothing_is_lost() {
    let fake = fake().await;
    let mut s = es(&fake.url(), "timeout = \"2s\"");
    let sent = events(200);
    fake.fail_next(&[429, 503]);
    for status in ["429", "503"] {
        match s.deliver(&sent[..50]).await {
            Err(SinkError::Transient { message, .. }) => {
                assert!(message.contains(status), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
    s.deliver(&sent[..50]).await.unwrap();
    fake.stop();
    match s.deliver(&sent[50..100]).await {
        Err(SinkError::Transient { message, .. }) => {
            assert!(message.contains("connect"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    fake.restart().await;
    for chunk in sent[50..].chunks(50) {
        deliver_retrying(&mut s, chunk, PAUSE, deadline()).await;
    }
    let c = counts(&fake.docs());
    assert_eq!(c.len(), sent.len());
    assert!(c.values().all(|&n| n == 1));
}

#[tokio::test]
async fn with_urls_a_node_that_cannot_be_reached_is_skipped() {
    let fake = fake().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut s = sink(&format!(
        "[[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\nurls = [\"{down}\", \"{}\"]\napi_key = \"{KEY}\"\n",
        fake.url()
    ));
    let sent = events(20);
    s.deliver(&sent[..10]).await.unwrap();
    s.deliver(&sent[10..]).await.unwrap();
    assert_eq!(counts(&fake.docs()).len(), sent.len());
    assert_eq!(fake.requests(), 2, "the node that answered is kept");
}

#[tokio::test]
async fn a_request_over_the_clusters_limit_is_rejected_naming_batch_max_bytes() {
    let fake = fake().await;
    fake.max_content_length(60_000);
    let sent = events(100);
    match es(&fake.url(), "compression = \"none\"")
        .deliver(&sent)
        .await
    {
        Err(SinkError::Rejected(m)) => {
            assert!(
                m.contains("413") && m.contains("lower batch_max_bytes"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.docs().is_empty());
    es(
        &fake.url(),
        "compression = \"none\"\nbatch_max_bytes = \"40KiB\"",
    )
    .deliver(&sent)
    .await
    .unwrap();
    let c = counts(&fake.docs());
    assert_eq!(c.len(), sent.len());
    assert!(fake.requests() > 3, "split into several _bulk requests");
    // A lone document larger than the cluster takes goes to the dead-letter file.
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let mut big = sent[0].clone();
    big.event_id = "activity:org-1:huge".into();
    big.payload = format!(
        r#"{{"id":"huge","type":"user_login","actorDetails":"{}"}}"#,
        "x".repeat(70_000)
    );
    let small = sent[1].clone();
    let mut s = es(
        &fake.url(),
        &format!(
            "compression = \"none\"\nbatch_max_bytes = \"40KiB\"\ndead_letter_path = \"{}\"",
            dead.display()
        ),
    );
    s.deliver(&[big, small]).await.unwrap();
    let lines = crate::support::read_ndjson(&dead);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event_id"], "activity:org-1:huge");
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("413"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_data_stream_takes_the_default_ecs_documents_and_refuses_records_without_a_timestamp() {
    let fake = fake().await;
    let stream = "logs-clickhouse.audit-default";
    fake.data_stream(stream);
    let sent = events(10);
    es(&fake.url(), &format!("index = \"{stream}\""))
        .deliver(&sent)
        .await
        .unwrap();
    let docs = fake.docs();
    assert_eq!(docs.len(), sent.len());
    assert!(
        docs.iter()
            .all(|d| d.index == stream && d.source["@timestamp"].is_string())
    );
    // The json envelope has no @timestamp: the data stream refuses it, and says so.
    let fake = self::fake().await;
    fake.data_stream(stream);
    match es(
        &fake.url(),
        &format!("index = \"{stream}\"\nformat = \"json\""),
    )
    .deliver(&sent)
    .await
    {
        Err(SinkError::Rejected(m)) => assert!(m.contains("@timestamp"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stops_at_once_and_the_daemon_is_not_ready_when_the_key_is_refused() {
    let fake = FakeEs::start().await;
    fake.api_key("other:key", true);
    let b = block(&fake.url(), "");
    let err = once_fails_fast_on_refused_credentials(&b, "es").await;
    assert!(err.contains("security_exception"), "{err}");
    assert_no_secret(&err, &[KEY_SECRET]);
    let body = daemon_not_ready_on_refused_credentials(&b, "es").await;
    assert_no_secret(&body, &[KEY_SECRET]);
}

/// The whole pipeline: `once` puts every activity in the index exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exports_every_activity_into_the_index_once() {
    let fake = fake().await;
    let emu = crate::support::sinks::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::config(
        &emu,
        dir.path(),
        &block(&fake.url(), "batch_max_events = 200"),
    );
    Pipeline::build(cfg).await.unwrap().once().await.unwrap();
    let want = crate::support::sinks::activity_total(&emu);
    let docs = fake.docs();
    let c = counts(&docs);
    assert_eq!(c.len(), want);
    assert!(c.values().all(|&n| n == 1));
    assert!(
        docs.iter()
            .all(|d| d.index.starts_with("clickhouse-audit-20"))
    );
}
