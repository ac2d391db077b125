//! Helpers shared by the SIEM sink tests (syslog, Splunk HEC, ClickHouse, Kafka): build a sink
//! from a TOML block, deliver with a dispatch-like retry loop, and the two end-to-end checks of
//! issue #5 — `once` exits at once with a clear error when the destination refuses the
//! credentials, and the daemon counts it and fails `/readyz` while it lasts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::config::Config;
use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::emulator::{Emulator, EmulatorHandle, EmulatorOptions};
use clickhouse_audit_exporter::event::Event;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};
use tokio_util::sync::CancellationToken;

use super::fixtures;

/// Builds the one sink of a `[[sinks]]` TOML block.
pub fn sink(toml: &str) -> Box<dyn Sink> {
    let cfg = Config::from_toml(toml, Some(HashMap::new()))
        .unwrap_or_else(|e| panic!("config: {e}\n{toml}"));
    cfg.sink_configs[0].build().expect("sink builds")
}

/// `n` ordinary activities, then the golden events (unicode, hostile values, line breaks).
pub fn events(n: usize) -> Vec<Event> {
    let mut all: Vec<Event> = (0..n).map(fixtures::activity).collect();
    for (i, mut e) in fixtures::golden_events().into_iter().enumerate() {
        e.seq = (n + i + 1) as i64;
        all.push(e);
    }
    all
}

/// Delivers `batch` like dispatch does: retry transient failures (every `pause`) until
/// `deadline`; any other error fails the test. Returns the number of attempts.
pub async fn deliver_retrying(
    sink: &mut Box<dyn Sink>,
    batch: &[Event],
    pause: Duration,
    deadline: Instant,
) -> usize {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match sink.deliver(batch).await {
            Ok(()) => return attempts,
            Err(SinkError::Transient { message, .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "still failing at the deadline: {message}"
                );
                // The pause between attempts, as dispatch would wait (bounded by `deadline`).
                tokio::time::sleep(pause).await;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// How many activities the emulator holds over all its organizations: what a sink must receive.
pub fn activity_total(emu: &EmulatorHandle) -> usize {
    emu.emulator
        .org_ids()
        .iter()
        .map(|o| emu.emulator.all_activity_ids(o).len())
        .sum()
}

pub async fn emulator() -> EmulatorHandle {
    Emulator::start(EmulatorOptions {
        history: Duration::from_secs(6 * 3600),
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// `once` with `sink_block` (a sink named `name` whose destination refuses the credentials)
/// must fail within seconds — not after the minute of transient retries — naming the sink and
/// saying the credentials were refused. Returns the error text.
pub async fn once_fails_fast_on_refused_credentials(sink_block: &str, name: &str) -> String {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = super::config(&emu, dir.path(), sink_block);
    let started = Instant::now();
    let err = Pipeline::build(cfg)
        .await
        .unwrap()
        .once()
        .await
        .expect_err("once must fail when the destination refuses the credentials");
    let text = format!("{err:#}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "once failed fast ({:?}): {text}",
        started.elapsed()
    );
    assert!(text.contains(&format!("sink {name}")), "{text}");
    assert!(text.contains("credentials refused"), "{text}");
    text
}

/// The daemon with `sink_block`: `/readyz` turns 503 naming the sink and the refused
/// credentials, and `/metrics` counts `kind="unauthorized"` failures for it. Returns the
/// `/readyz` body.
pub async fn daemon_not_ready_on_refused_credentials(sink_block: &str, name: &str) -> String {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let port = super::net::free_port(false);
    let toml = super::config_doc(&emu, dir.path(), sink_block)
        .replace("server.listen", format!("127.0.0.1:{port}"))
        .to_string();
    let cfg = Config::from_toml(&toml, Some(HashMap::new())).unwrap();
    let pipeline = Pipeline::build(cfg).await.unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(token.clone()));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let counter =
        format!("clickhouse_audit_sink_failures_total{{kind=\"unauthorized\",sink=\"{name}\"}}");
    let body = loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        let metrics = http.get(format!("{base}/metrics")).send().await;
        if let (Ok(ready), Ok(metrics)) = (ready, metrics) {
            let status = ready.status().as_u16();
            let body = ready.text().await.unwrap_or_default();
            let metrics = metrics.text().await.unwrap_or_default();
            if status == 503 && body.contains("credentials refused") && metrics.contains(&counter) {
                assert!(body.contains(&format!("sink {name}")), "{body}");
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never reported the refused credentials"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    body
}

/// Asserts `text` (a Debug or error rendering) holds none of `secrets`.
pub fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked into: {text}");
    }
}
