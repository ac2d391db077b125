//! Delivery throughput per SIEM sink on loopback, against the same real servers the
//! integration tests start (rsyslogd, ClickHouse, tansu) and the fake Splunk collector.
//!
//! `cargo run --release --example sink_bench -- [N] [sink…]` delivers N synthetic activities
//! (default 100,000; ~420-byte payloads) in batches of 500 (`SINK_BENCH_BATCH=N` to change) —
//! one batch at a time, as dispatch does — through each sink (default: every one), checks that the server holds all N, and
//! prints events/s. Sinks: syslog-tcp, syslog-tls, syslog-udp, splunk, splunk-ack,
//! clickhouse, kafka, otlp-grpc, otlp-http, elasticsearch (the fake `_bulk` endpoint; `ecs`,
//! the sink's default), azure (the fake Entra + Logs Ingestion endpoint), s3 (the object_store
//! sink on moto, in batches of 10,000 = one flush of its default `object_max_events`, unless
//! `SINK_BENCH_BATCH` says otherwise).

// The tests' server harnesses, as top-level modules (they refer to each other via `super::`).
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/azure_monitor.rs"]
mod azure_monitor;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/clickhouse.rs"]
mod clickhouse;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/elasticsearch.rs"]
mod elasticsearch;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/moto.rs"]
mod moto;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/net.rs"]
mod net;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/objects.rs"]
mod objects;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/otlp.rs"]
mod otlp;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/require.rs"]
mod require;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/rsyslog.rs"]
mod rsyslog;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/splunk_hec.rs"]
mod splunk_hec;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/tansu.rs"]
mod tansu;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/it/support/wait.rs"]
mod wait;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::config::Config;
use clickhouse_audit_exporter::event::{Event, EventKind};
use clickhouse_audit_exporter::sinks::Sink;

use rsyslog::{Listen, Rsyslog};

/// Events per delivery (`SINK_BENCH_BATCH` overrides; the exporter's default is 500).
fn batch() -> usize {
    std::env::var("SINK_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}
const ALL: &[&str] = &[
    "syslog-tcp",
    "syslog-tls",
    "syslog-udp",
    "splunk",
    "splunk-ack",
    "clickhouse",
    "kafka",
    "otlp-grpc",
    "otlp-http",
    "elasticsearch",
    "azure",
    "s3",
    "s3-parquet",
];

fn synthetic(n: usize) -> Vec<Event> {
    const TYPES: &[&str] = &[
        "key_create",
        "service_start",
        "user_login",
        "organization_member_update_roles",
    ];
    (0..n)
        .map(|i| Event {
            seq: i as i64 + 1,
            event_id: format!("activity:2b3f6c1e-8a4d-4e2b-9f1c-3d5e7a9b1c2d:{i:08}"),
            kind: EventKind::Activity,
            org_id: "2b3f6c1e-8a4d-4e2b-9f1c-3d5e7a9b1c2d".into(),
            occurred_at: "2025-03-04T10:15:30Z".into(),
            observed_at: "2025-03-04T10:16:00.123456Z".into(),
            payload: format!(
                r#"{{"id":"{i:08}-aaaa-4bbb-8ccc-dddddddddddd","createdAt":"2025-03-04T10:{:02}:{:02}Z","type":"{}","actorType":"user","actorId":"5f0c1b2a-5c1a-4f9e-9d2b-7a3c1e5f9b20","actorDetails":"user{}@example.com","actorIpAddress":"203.0.113.{}","organizationId":"2b3f6c1e-8a4d-4e2b-9f1c-3d5e7a9b1c2d","serviceId":"3b1e9f0a-3333-4333-8333-333333333333","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}}"#,
                i / 60 % 60,
                i % 60,
                TYPES[i % TYPES.len()],
                i % 1000,
                i % 250 + 1,
            ),
        })
        .collect()
}

fn build(block: &str) -> Box<dyn Sink> {
    let toml = format!(
        "[[sinks]]\nname = \"bench\"\nbatch_max_events = {}\n{block}\n",
        batch()
    );
    Config::from_toml(&toml, Some(HashMap::new()))
        .unwrap_or_else(|e| panic!("{e}"))
        .sink_configs[0]
        .build()
        .unwrap()
}

/// Delivers every batch; returns the seconds taken.
async fn run(sink: &mut Box<dyn Sink>, events: &[Event], pace: Option<Duration>) -> f64 {
    let started = Instant::now();
    for batch in events.chunks(batch()) {
        sink.deliver(batch).await.unwrap();
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
    }
    sink.flush().await.unwrap();
    started.elapsed().as_secs_f64()
}

async fn run_batched(sink: &mut Box<dyn Sink>, events: &[Event], size: usize) -> f64 {
    let started = Instant::now();
    for batch in events.chunks(size) {
        sink.deliver(batch).await.unwrap();
    }
    sink.flush().await.unwrap();
    started.elapsed().as_secs_f64()
}

async fn bench(name: &str, events: &[Event]) -> (f64, String) {
    let n = events.len();
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/data/test-ca.pem");
    match name {
        "syslog-tcp" | "syslog-tls" | "syslog-udp" => {
            let (listen, extra) = match name {
                "syslog-tcp" => (Listen::Tcp, String::new()),
                "syslog-tls" => (
                    Listen::Tls,
                    format!("protocol = \"tls\"\nca_file = \"{ca}\""),
                ),
                _ => (Listen::Udp, "protocol = \"udp\"".to_string()),
            };
            let rs = Rsyslog::start(listen).await;
            let mut s = build(&format!(
                "type = \"syslog\"\naddress = \"{}\"\n{extra}",
                rs.address()
            ));
            // UDP has no flow control: pace it so rsyslog's socket buffer is not overrun.
            let pace = (listen == Listen::Udp).then(|| Duration::from_millis(5));
            let secs = run(&mut s, events, pace).await;
            // UDP may drop: count what arrived instead of waiting for all.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut got = rs.received().len();
            while got < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                got = rs.received().len();
            }
            (secs, format!("rsyslogd wrote {got}"))
        }
        "splunk" | "splunk-ack" => {
            let ack = name == "splunk-ack";
            let hec = splunk_hec::FakeHec::start("bench-token", ack).await;
            let mut s = build(&format!(
                "type = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"bench-token\"\nack = {ack}",
                hec.url()
            ));
            let secs = run(&mut s, events, None).await;
            (secs, format!("collector indexed {}", hec.indexed().len()))
        }
        "clickhouse" => {
            let ch = clickhouse::ClickHouse::start();
            let mut s = build(&format!(
                "type = \"clickhouse\"\nurl = \"{}\"\ndatabase = \"bench\"\ntable = \"events\"\ncreate_table = true\nuser = \"{}\"\npassword = \"{}\"",
                ch.url(),
                clickhouse::USER,
                clickhouse::PASSWORD
            ));
            let secs = run(&mut s, events, None).await;
            let count = ch.query("SELECT count() FROM bench.events").await.unwrap();
            let version = ch.query("SELECT version()").await.unwrap();
            (
                secs,
                format!("{} rows in ClickHouse {}", count.trim(), version.trim()),
            )
        }
        "kafka" => {
            let broker = tansu::Tansu::start(false).await;
            broker.create_topic("bench", 3).await;
            let mut s = build(&format!(
                "type = \"kafka\"\nbrokers = [\"{}\"]\ntopic = \"bench\"\ncompression = \"lz4\"",
                broker.address()
            ));
            let secs = run(&mut s, events, None).await;
            let got = broker.consume("bench").await.len();
            (
                secs,
                format!("{got} records consumed back (lz4, 3 partitions)"),
            )
        }
        "otlp-grpc" | "otlp-http" => {
            let (fake, protocol) = if name == "otlp-grpc" {
                (otlp::FakeOtlp::grpc().await, "grpc")
            } else {
                (otlp::FakeOtlp::http().await, "http/protobuf")
            };
            let mut s = build(&format!(
                "type = \"otlp\"\nendpoint = \"{}\"\nprotocol = \"{protocol}\"",
                fake.url()
            ));
            let secs = run(&mut s, events, None).await;
            (
                secs,
                format!(
                    "receiver decoded {} LogRecords (gzip)",
                    fake.received().len()
                ),
            )
        }
        "elasticsearch" => {
            let es = elasticsearch::FakeEs::start().await;
            es.api_key("bench:key", true);
            let mut s = build(&format!(
                "type = \"elasticsearch\"\nurl = \"{}\"\napi_key = \"bench:key\"",
                es.url()
            ));
            let secs = run(&mut s, events, None).await;
            let got = es.docs().len();
            (secs, format!("{got} documents created (ecs, gzip)"))
        }
        "azure" => {
            let fake = azure_monitor::FakeAzure::start(Duration::from_secs(3600)).await;
            let mut s = build(&format!(
                "type = \"azure_logs_ingestion\"\n{}",
                fake.sink_keys(azure_monitor::CLIENT_SECRET)
            ));
            let secs = run(&mut s, events, None).await;
            (
                secs,
                format!(
                    "{} records in the table, {} calls, {} token request(s)",
                    fake.table().len(),
                    fake.ingest_requests(),
                    fake.token_requests()
                ),
            )
        }
        "s3" => {
            let s3 = moto::Moto::start().await;
            s3.create_bucket("bench").await;
            let mut s = build(&format!(
                "type = \"object_store\"\nurl = \"s3://bench/ch\"\n{}",
                s3.sink_keys()
            ));
            let size = std::env::var("SINK_BENCH_BATCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            let secs = run_batched(&mut s, events, size).await;
            let stored = objects::read_all(&s3.store("bench"), "ch").await;
            let objects = stored.len();
            let bytes: u64 = stored.values().map(|o| o.size).sum();
            let lines: usize = stored.values().map(|o| o.lines.len()).sum();
            (
                secs,
                format!(
                    "{lines} lines read back from {objects} gzip objects, {:.0} bytes stored per event",
                    bytes as f64 / lines.max(1) as f64
                ),
            )
        }
        "s3-parquet" => {
            let s3 = moto::Moto::start().await;
            s3.create_bucket("bench").await;
            let mut s = build(&format!(
                "type = \"object_store\"\nurl = \"s3://bench\"\nencoding = \"parquet\"\n{}[sinks.security_lake]\nsource_name = \"clickhouse-{{class}}\"\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\n",
                s3.sink_keys()
            ));
            let size = std::env::var("SINK_BENCH_BATCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            let secs = run_batched(&mut s, events, size).await;
            let (objects, bytes, rows) = parquet_rows(&s3.store("bench")).await;
            (
                secs,
                format!(
                    "{rows} rows read back from {objects} Parquet objects (Security Lake layout), {:.0} bytes stored per event",
                    bytes as f64 / rows.max(1) as f64
                ),
            )
        }
        other => panic!("unknown sink {other}; one of {ALL:?}"),
    }
}

/// Objects, stored bytes and rows (from each file's footer) of the Parquet objects in `store`.
async fn parquet_rows(
    store: &std::sync::Arc<dyn ::object_store::ObjectStore>,
) -> (usize, u64, i64) {
    use ::object_store::ObjectStoreExt;
    use futures_util::StreamExt;
    let (mut objects, mut bytes, mut rows) = (0, 0, 0);
    let mut list = store.list(None);
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        if !meta.location.as_ref().ends_with(".parquet") {
            continue;
        }
        let body = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body).unwrap();
        rows += reader.metadata().file_metadata().num_rows();
        objects += 1;
        bytes += meta.size;
    }
    (objects, bytes, rows)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let n: usize = match args.peek().and_then(|a| a.parse().ok()) {
        Some(n) => {
            args.next();
            n
        }
        None => 100_000,
    };
    let names: Vec<String> = args.collect();
    let names: Vec<&str> = if names.is_empty() {
        ALL.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let events = synthetic(n);
    println!("| sink | events | seconds | events/s | check |");
    println!("|---|---:|---:|---:|---|");
    for name in names {
        let (secs, check) = bench(name, &events).await;
        println!(
            "| {name} | {n} | {secs:.2} | {:.0} | {check} |",
            n as f64 / secs
        );
    }
}
