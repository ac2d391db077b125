//! The otlp sink against a receiver built from the official OpenTelemetry protobufs
//! (support/otlp.rs), over gRPC and over HTTP/protobuf: every activity arrives exactly once as
//! one LogRecord with its times, severity, event name, semantic-convention attributes and the
//! envelope as a structured body (unknown activity fields kept); gzip on both transports;
//! partial success written to the dead-letter file with the receiver's message, the sink
//! moving on; UNAVAILABLE / 503 retried with nothing lost; UNAUTHENTICATED / 401 reported as
//! refused credentials; a receiver that is down is transient; `once` exports everything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::event::{Event, EventKind};
use clickhouse_audit_exporter::sinks::{Sink, SinkError};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

use crate::support::otlp::{FakeOtlp, Received, Reply};
use crate::support::sinks::{deliver_retrying, events, sink};

const HEADER_SECRET: &str = "Bearer otlp-secret-123";

/// The sink with a `dead_letter_path` in a new temporary directory (kept alive by the guard).
fn otlp_with_dead_letter(
    fake: &FakeOtlp,
    protocol: &str,
) -> (Box<dyn Sink>, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let s = otlp(
        &fake.url(),
        protocol,
        &format!("dead_letter_path = \"{}\"", dead.display()),
    );
    (s, dead, dir)
}

fn otlp(endpoint: &str, protocol: &str, extra: &str) -> Box<dyn Sink> {
    sink(&format!(
        "[[sinks]]\nname = \"otel\"\ntype = \"otlp\"\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\nheaders = {{ authorization = \"{HEADER_SECRET}\" }}\n{extra}\n"
    ))
}

async fn receiver(protocol: &str) -> FakeOtlp {
    match protocol {
        "grpc" => FakeOtlp::grpc().await,
        _ => FakeOtlp::http().await,
    }
}

const PROTOCOLS: [&str; 2] = ["grpc", "http/protobuf"];

fn text(v: Option<&AnyValue>) -> Option<&str> {
    match v?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn get<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    kvs.iter().find(|kv| kv.key == key)?.value.as_ref()
}

fn kvlist(v: Option<&AnyValue>) -> &[KeyValue] {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::KvlistValue(l)) => &l.values,
        other => panic!("not a kvlist: {other:?}"),
    }
}

fn uid(r: &Received) -> String {
    text(get(&r.record.attributes, "log.record.uid"))
        .expect("log.record.uid")
        .to_string()
}

fn counts(received: &[Received]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in received {
        *m.entry(uid(r)).or_default() += 1;
    }
    m
}

fn assert_each_once(received: &[Received], sent: &[Event]) {
    assert_eq!(received.len(), sent.len());
    let c = counts(received);
    for e in sent {
        assert_eq!(c.get(&e.event_id), Some(&1), "{} once", e.event_id);
    }
}

/// An activity with a field the exporter does not know.
fn future_activity() -> Event {
    Event {
        seq: 9999,
        event_id: "activity:org-1:future".into(),
        kind: EventKind::Activity,
        org_id: "org-1".into(),
        occurred_at: "2025-03-04T10:15:31.250Z".into(),
        observed_at: "2025-03-04T10:16:00.5Z".into(),
        payload: r#"{"id":"future","createdAt":"2025-03-04T10:15:31.250Z","type":"key_create","actorType":"user","actorId":"user-7","actorIpAddress":"2001:db8::7","userAgent":"ua/2","serviceId":"svc-9","futureField":{"nested":[1,"x",true,null,2.5]}}"#.into(),
    }
}

#[tokio::test]
async fn every_activity_arrives_once_with_times_severity_attributes_and_a_structured_body() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let mut s = otlp(&fake.url(), protocol, "");
        let mut sent = events(250);
        sent.push(future_activity());
        for chunk in sent.chunks(100) {
            s.deliver(chunk).await.unwrap();
        }
        let got = fake.received();
        assert_each_once(&got, &sent);

        let r = got
            .iter()
            .find(|r| uid(r) == "activity:org-1:future")
            .unwrap();
        let rec = &r.record;
        assert_eq!(rec.time_unix_nano, 1_741_083_331_250_000_000, "{protocol}");
        assert_eq!(rec.observed_time_unix_nano, 1_741_083_360_500_000_000);
        assert_eq!(rec.event_name, "key_create");
        let sev = clickhouse_audit_exporter::format::catalog::info_for("key_create", None).severity;
        let (number, caption) = clickhouse_audit_exporter::sinks::otlp::severity(sev);
        assert_eq!(rec.severity_number, number as i32);
        assert_eq!(rec.severity_text, caption);
        let a = &rec.attributes;
        assert_eq!(text(get(a, "user.id")), Some("user-7"));
        assert_eq!(text(get(a, "client.address")), Some("2001:db8::7"));
        assert_eq!(text(get(a, "user_agent.original")), Some("ua/2"));
        assert_eq!(text(get(a, "cloud.account.id")), Some("org-1"));
        assert_eq!(text(get(a, "clickhouse.audit.kind")), Some("activity"));
        assert_eq!(text(get(a, "clickhouse.service.id")), Some("svc-9"));
        // The body: the json envelope as a kvlist, the verbatim activity inside, unknown
        // fields and their types kept.
        let body = kvlist(rec.body.as_ref());
        assert_eq!(text(get(body, "event_id")), Some("activity:org-1:future"));
        let activity = kvlist(get(body, "activity"));
        assert_eq!(text(get(activity, "actorId")), Some("user-7"));
        let future = kvlist(get(activity, "futureField"));
        let Some(Value::ArrayValue(nested)) = get(future, "nested").and_then(|v| v.value.clone())
        else {
            panic!("nested is not an array")
        };
        let values: Vec<_> = nested.values.into_iter().map(|v| v.value).collect();
        assert_eq!(
            values,
            vec![
                Some(Value::IntValue(1)),
                Some(Value::StringValue("x".into())),
                Some(Value::BoolValue(true)),
                None,
                Some(Value::DoubleValue(2.5)),
            ]
        );
        // Resource and scope.
        let resource = r.resource.as_ref().unwrap();
        assert_eq!(
            text(get(&resource.attributes, "service.name")),
            Some("clickhouse-audit-exporter")
        );
        assert_eq!(
            text(get(&resource.attributes, "service.version")),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(r.scope.as_ref().unwrap().name, "clickhouse-audit-exporter");
        // Inventory and findings map too.
        let inv = got
            .iter()
            .find(|r| text(get(&r.record.attributes, "clickhouse.audit.kind")) == Some("inventory"))
            .expect("an inventory record");
        assert!(inv.record.event_name.starts_with("inventory_"));
        // Headers reach the receiver, gzip is on by default.
        let headers = fake.headers();
        assert_eq!(headers.len(), 3, "one request per batch");
        for h in &headers {
            assert_eq!(h["authorization"], HEADER_SECRET);
            match protocol {
                "grpc" => assert_eq!(h["grpc-encoding"], "gzip"),
                _ => {
                    assert_eq!(h["content-encoding"], "gzip");
                    assert_eq!(h["content-type"], "application/x-protobuf");
                }
            }
        }
    }
}

#[tokio::test]
async fn cef_bodies_are_strings_and_compression_can_be_off() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let mut s = otlp(
            &fake.url(),
            protocol,
            "format = \"cef\"\ncompression = \"none\"\nservice_name = \"audit-prod\"",
        );
        let sent = events(3);
        s.deliver(&sent).await.unwrap();
        let got = fake.received();
        assert_each_once(&got, &sent);
        assert!(
            matches!(got[0].record.body.as_ref().and_then(|b| b.value.as_ref()), Some(Value::StringValue(s)) if s.starts_with("CEF:")),
            "{protocol}"
        );
        let resource = got[0].resource.as_ref().unwrap();
        assert_eq!(
            text(get(&resource.attributes, "service.name")),
            Some("audit-prod")
        );
        let h = &fake.headers()[0];
        assert!(
            h.get("content-encoding").is_none() && h.get("grpc-encoding").is_none(),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn partial_success_writes_the_request_to_the_dead_letter_file_and_the_sink_moves_on() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let (mut s, dead, _dir) = otlp_with_dead_letter(&fake, protocol);
        fake.script([Reply::Partial {
            rejected: 2,
            message: "2 records exceed the attribute limit".into(),
        }]);
        let sent = events(10);
        s.deliver(&sent[..5])
            .await
            .expect("partial success is not retried");
        s.deliver(&sent[5..]).await.unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            5,
            "{protocol}: the whole partly rejected request"
        );
        for (line, event) in lines.iter().zip(&sent[..5]) {
            assert_eq!(line["event_id"], event.event_id.as_str());
            assert_eq!(line["sink"], "otel");
            let reason = line["reason"].as_str().unwrap();
            assert!(reason.contains("2 of 5 log records rejected"), "{reason}");
            assert!(reason.contains("exceed the attribute limit"), "{reason}");
            assert_eq!(line["record"]["event_id"], event.event_id.as_str());
        }
        // The receiver kept the accepted part; nothing was sent twice.
        assert_each_once(&fake.received(), &sent);
    }
}

#[tokio::test]
async fn partial_success_without_a_dead_letter_file_is_logged_counted_and_not_retried() {
    let fake = FakeOtlp::grpc().await;
    let cfg = clickhouse_audit_exporter::config::Config::from_toml(
        &format!(
            "[[sinks]]\nname = \"otel\"\ntype = \"otlp\"\nendpoint = \"{}\"\n",
            fake.url()
        ),
        Some(HashMap::new()),
    )
    .unwrap();
    let metrics = std::sync::Arc::new(clickhouse_audit_exporter::metrics::Metrics::new());
    let mut s = cfg.sink_configs[0]
        .build_with_metrics(metrics.clone())
        .unwrap();
    fake.script([Reply::Partial {
        rejected: 3,
        message: "too old".into(),
    }]);
    let sent = events(4);
    s.deliver(&sent).await.unwrap();
    assert_eq!(
        metrics
            .sink_otlp_rejected_log_records
            .with_label_values(&["otel"])
            .get(),
        3
    );
    assert_eq!(fake.received().len(), sent.len(), "sent once, not again");
}

#[tokio::test]
async fn unavailable_and_503_are_retried_and_nothing_is_lost() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let mut s = otlp(&fake.url(), protocol, "");
        let busy = match protocol {
            "grpc" => Reply::Grpc(tonic::Code::Unavailable, "collector restarting".into()),
            _ => Reply::Http(503, "collector restarting".into(), Some(2)),
        };
        fake.script([busy.clone(), busy]);
        let sent = events(40);
        match s.deliver(&sent[..20]).await {
            Err(SinkError::Transient {
                message,
                retry_after,
            }) => {
                assert!(message.contains("collector restarting"), "{message}");
                if protocol != "grpc" {
                    assert_eq!(retry_after, Some(Duration::from_secs(2)));
                }
            }
            other => panic!("{protocol}: {other:?}"),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let attempts =
            deliver_retrying(&mut s, &sent[..20], Duration::from_millis(50), deadline).await;
        assert_eq!(attempts, 2, "{protocol}: one more refusal, then accepted");
        s.deliver(&sent[20..]).await.unwrap();
        assert_each_once(&fake.received(), &sent);
    }
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_and_the_header_value_never_shows() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let (mut s, dead, _dir) = otlp_with_dead_letter(&fake, protocol);
        let refused = match protocol {
            "grpc" => Reply::Grpc(tonic::Code::Unauthenticated, "bad token".into()),
            _ => Reply::Http(401, "bad token".into(), None),
        };
        fake.script([refused]);
        match s.deliver(&events(3)).await {
            Err(e @ SinkError::Unauthorized(_)) => {
                let text = e.to_string();
                assert!(text.contains("bad token"), "{text}");
                assert!(!text.contains("otlp-secret-123"), "{text}");
            }
            other => panic!("{protocol}: {other:?}"),
        }
        assert!(
            !dead.exists(),
            "refused credentials are never dead-lettered"
        );
    }
}

#[tokio::test]
async fn a_malformed_request_is_rejected_or_dead_lettered() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let refusal = || match protocol {
            "grpc" => Reply::Grpc(tonic::Code::InvalidArgument, "schema mismatch".into()),
            _ => Reply::Http(400, "schema mismatch".into(), None),
        };
        fake.script([refusal()]);
        let mut kept = otlp(&fake.url(), protocol, "");
        match kept.deliver(&events(2)).await {
            Err(SinkError::Rejected(m)) => assert!(m.contains("schema mismatch"), "{m}"),
            other => panic!("{protocol}: {other:?}"),
        }
        let (mut s, dead, _dir) = otlp_with_dead_letter(&fake, protocol);
        fake.script([refusal()]);
        s.deliver(&events(2)).await.unwrap();
        let text = std::fs::read_to_string(&dead).unwrap();
        assert_eq!(text.lines().count(), events(2).len(), "{protocol}");
        assert!(text.contains("schema mismatch"));
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_is_transient() {
    for protocol in PROTOCOLS {
        let port = crate::support::net::free_port(false);
        let mut s = otlp(
            &format!("http://127.0.0.1:{port}"),
            protocol,
            "timeout = \"3s\"",
        );
        match s.deliver(&events(2)).await {
            Err(SinkError::Transient { message, .. }) => {
                assert!(!message.contains("otlp-secret-123"), "{message}")
            }
            other => panic!("{protocol}: {other:?}"),
        }
    }
}

/// The whole pipeline: `once` exports every activity exactly once, over each transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exports_every_activity() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let emu = crate::support::sinks::emulator().await;
        let dir = tempfile::tempdir().unwrap();
        let block = format!(
            "[[sinks]]\nname = \"otel\"\ntype = \"otlp\"\nendpoint = \"{}\"\nprotocol = \"{protocol}\"\nbatch_max_events = 200\n",
            fake.url()
        );
        let cfg = crate::support::config(&emu, dir.path(), &block);
        Pipeline::build(cfg).await.unwrap().once().await.unwrap();
        let want = crate::support::sinks::activity_total(&emu);
        let c = counts(&fake.received());
        assert_eq!(c.len(), want, "{protocol}");
        assert!(c.values().all(|&n| n == 1), "{protocol}");
    }
}

#[tokio::test]
async fn tls_is_verified_ca_file_extends_the_trust_and_mtls_presents_the_client_certificate() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/data");
    for protocol in PROTOCOLS {
        let fake = FakeOtlp::tls(protocol, false).await;
        let mut untrusting = otlp(&fake.url(), protocol, "timeout = \"3s\"");
        match untrusting.deliver(&events(1)).await {
            Err(SinkError::Transient { .. }) => {}
            other => panic!("{protocol}: an unknown CA must be refused, got {other:?}"),
        }
        assert!(fake.received().is_empty());
        let mut trusting = otlp(
            &fake.url(),
            protocol,
            &format!("ca_file = \"{data}/test-ca.pem\""),
        );
        let sent = events(2);
        trusting.deliver(&sent).await.unwrap();
        assert_each_once(&fake.received(), &sent);

        let fake = FakeOtlp::tls(protocol, true).await;
        let mut anonymous = otlp(
            &fake.url(),
            protocol,
            &format!("ca_file = \"{data}/test-ca.pem\"\ntimeout = \"3s\""),
        );
        assert!(
            anonymous.deliver(&events(1)).await.is_err(),
            "{protocol}: no client certificate, no delivery"
        );
        let mut mtls = otlp(
            &fake.url(),
            protocol,
            &format!(
                "ca_file = \"{data}/test-ca.pem\"\nclient_cert_file = \"{data}/test-client.pem\"\nclient_key_file = \"{data}/test-client.key\""
            ),
        );
        mtls.deliver(&sent).await.unwrap();
        assert_each_once(&fake.received(), &sent);
    }
}

#[tokio::test]
async fn a_batch_over_batch_max_bytes_goes_in_several_requests_each_event_once() {
    for protocol in PROTOCOLS {
        let fake = receiver(protocol).await;
        let mut s = otlp(&fake.url(), protocol, "batch_max_bytes = \"16KiB\"");
        let sent = events(200);
        s.deliver(&sent).await.unwrap();
        assert_each_once(&fake.received(), &sent);
        let requests = fake.headers().len();
        assert!(
            requests >= 5,
            "{protocol}: {requests} requests for ~100 KB of records"
        );
    }
}
