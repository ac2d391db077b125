//! The kafka sink against a real Kafka-protocol broker (tansu, support/tansu.rs), consumed back
//! with rskafka: every event once with key = event_id in the Java client's partition for that
//! key, each compression codec, a broker restart with nothing lost, and a broker that refuses
//! the SASL credentials (once stops at once, /readyz fails, no password in messages).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::format::Format;
use clickhouse_audit_exporter::sinks::kafka::partition_for;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};

use crate::support::sinks::{
    assert_no_secret, daemon_not_ready_on_refused_credentials, deliver_retrying, events,
    once_fails_fast_on_refused_credentials, sink,
};
use crate::support::tansu::{self, Consumed, Tansu};

fn kafka(address: &str, topic: &str, extra: &str) -> Box<dyn Sink> {
    sink(&format!(
        "[[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = [\"{address}\"]\ntopic = \"{topic}\"\ntimeout = \"5s\"\n{extra}\n"
    ))
}

fn by_key(got: &[Consumed]) -> HashMap<&str, Vec<&Consumed>> {
    let mut m: HashMap<&str, Vec<&Consumed>> = HashMap::new();
    for c in got {
        m.entry(c.key.as_str()).or_default().push(c);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_keyed_by_event_id_in_its_java_partition() {
    if !tansu::available() {
        return;
    }
    let broker = Tansu::start(false).await;
    broker.create_topic("audit", 3).await;
    let mut s = kafka(&broker.address(), "audit", "compression = \"gzip\"");
    let sent = events(300);
    for chunk in sent.chunks(100) {
        s.deliver(chunk).await.unwrap();
    }
    let got = broker.consume("audit").await;
    assert_eq!(got.len(), sent.len());
    let keys = by_key(&got);
    for e in &sent {
        let c = &keys[e.event_id.as_str()];
        assert_eq!(c.len(), 1, "{} once", e.event_id);
        let mut want = Vec::new();
        Format::Json.encode(e, &mut want);
        assert_eq!(c[0].value, want, "value intact for {}", e.event_id);
        assert_eq!(
            c[0].partition as usize,
            partition_for(e.event_id.as_bytes(), 3),
            "Java default partitioner"
        );
        assert_eq!(c[0].headers["kind"], e.kind.as_str().as_bytes());
        assert_eq!(c[0].headers["org_id"], e.org_id.as_bytes());
    }
    let partitions: std::collections::BTreeSet<i32> = got.iter().map(|c| c.partition).collect();
    assert_eq!(partitions.len(), 3, "keys spread over every partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    if !tansu::available() {
        return;
    }
    let broker = Tansu::start(false).await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("audit-{codec}");
        broker.create_topic(&topic, 1).await;
        let mut s = kafka(
            &broker.address(),
            &topic,
            &format!("compression = \"{codec}\"\nformat = \"cef\""),
        );
        let sent = events(40);
        s.deliver(&sent).await.unwrap();
        let got = broker.consume(&topic).await;
        assert_eq!(got.len(), sent.len(), "{codec}");
        assert!(
            got.iter().all(|c| c.value.starts_with(b"CEF:0|")),
            "{codec}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_transient_and_loses_nothing() {
    if !tansu::available() {
        return;
    }
    let mut broker = Tansu::start(false).await;
    broker.create_topic("audit", 2).await;
    let mut s = kafka(&broker.address(), "audit", "");
    let sent = events(200);
    let batches: Vec<_> = sent.chunks(50).collect();
    s.deliver(batches[0]).await.unwrap();
    broker.stop().await;
    match s.deliver(batches[1]).await {
        Err(SinkError::Transient { message, .. }) => {
            assert!(message.contains(&broker.address()), "{message}")
        }
        other => panic!("broker down: expected transient, got {other:?}"),
    }
    // tansu's in-memory storage comes back empty: what counts is that every batch the sink
    // reported delivered is on the new broker or was acknowledged by the old one.
    broker.restart().await;
    broker.create_topic("audit", 2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for b in &batches[1..] {
        deliver_retrying(&mut s, b, Duration::from_millis(200), deadline).await;
    }
    let got = broker.consume("audit").await;
    let keys = by_key(&got);
    for e in sent[50..].iter() {
        assert_eq!(
            keys.get(e.event_id.as_str()).map(Vec::len),
            Some(1),
            "{}",
            e.event_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_a_clear_transient_error() {
    if !tansu::available() {
        return;
    }
    let broker = Tansu::start(false).await;
    let mut s = kafka(&broker.address(), "nope", "");
    match s.deliver(&events(1)).await {
        Err(SinkError::Transient { message, .. }) => {
            assert!(message.contains("nope"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

const SASL: &str =
    "sasl_mechanism = \"PLAIN\"\nsasl_username = \"exporter\"\nsasl_password = \"kafka-secret-pw\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sasl_credentials_are_unauthorized_stop_once_and_fail_readyz() {
    if !tansu::available() {
        return;
    }
    let broker = Tansu::start(true).await;
    let mut s = kafka(&broker.address(), "audit", SASL);
    let t0 = Instant::now();
    let r = s.deliver(&events(1)).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    match r {
        Err(SinkError::Unauthorized(m)) => {
            assert!(m.contains("authentication"), "{m}");
            assert_no_secret(&m, &["kafka-secret-pw"]);
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    let block = format!(
        "[[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = [\"{}\"]\ntopic = \"audit\"\ntimeout = \"5s\"\n{SASL}\n",
        broker.address()
    );
    let err = once_fails_fast_on_refused_credentials(&block, "kafka").await;
    assert_no_secret(&err, &["kafka-secret-pw"]);
    let body = daemon_not_ready_on_refused_credentials(&block, "kafka").await;
    assert_no_secret(&body, &["kafka-secret-pw"]);
}

/// The whole pipeline: `once` produces every activity once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_produces_every_activity() {
    if !tansu::available() {
        return;
    }
    let broker = Tansu::start(false).await;
    broker.create_topic("audit", 3).await;
    let emu = crate::support::sinks::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let block = format!(
        "[[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = [\"{}\"]\ntopic = \"audit\"\ncompression = \"zstd\"\nbatch_max_events = 200\n",
        broker.address()
    );
    let cfg = crate::support::config(&emu, dir.path(), &block);
    Pipeline::build(cfg).await.unwrap().once().await.unwrap();
    let want = crate::support::sinks::activity_total(&emu);
    let got = broker.consume("audit").await;
    let keys = by_key(&got);
    assert_eq!(keys.len(), want);
    assert!(keys.values().all(|v| v.len() == 1));
}
