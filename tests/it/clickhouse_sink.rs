//! The clickhouse sink against a real ClickHouse server (support/clickhouse.rs; Debian's 18.16):
//! `create_table` DDL the server accepts, every event queried back once and intact, a
//! redelivered batch collapsing in the ReplacingMergeTree, a server restart with nothing lost,
//! a wrong password as `Unauthorized` (once stops at once, /readyz fails), a missing table as
//! `Rejected` with the fix, and the password kept out of messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::format::Format;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};

use crate::support::clickhouse::{self, ClickHouse, PASSWORD, USER};
use crate::support::sinks::{
    assert_no_secret, daemon_not_ready_on_refused_credentials, deliver_retrying, events,
    once_fails_fast_on_refused_credentials, sink,
};

/// A database name of its own for each test on the shared server.
fn database() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("audit_{}", N.fetch_add(1, Ordering::SeqCst))
}

fn block(url: &str, db: &str, extra: &str) -> String {
    block_with_password(url, db, PASSWORD, extra)
}

fn block_with_password(url: &str, db: &str, password: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"ch\"\ntype = \"clickhouse\"\nurl = \"{url}\"\ndatabase = \"{db}\"\ntable = \"events\"\nuser = \"{USER}\"\npassword = \"{password}\"\n{extra}\n"
    )
}

fn ch_sink(url: &str, db: &str, extra: &str) -> Box<dyn Sink> {
    sink(&block(url, db, extra))
}

async fn count_by_id(ch: &ClickHouse, db: &str) -> HashMap<String, u64> {
    ch.rows(&format!(
        "SELECT event_id, toUInt64(count()) AS n FROM {db}.events GROUP BY event_id"
    ))
    .await
    .into_iter()
    .map(|r| {
        let n = r["n"]
            .as_u64()
            .or_else(|| r["n"].as_str().and_then(|s| s.parse().ok()))
            .unwrap();
        (r["event_id"].as_str().unwrap().to_string(), n)
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_then_every_event_queried_back_once_and_intact() {
    if !clickhouse::available() {
        return;
    }
    let ch = clickhouse::shared();
    let db = database();
    let mut s = ch_sink(&ch.url(), &db, "create_table = true");
    let sent = events(300);
    for chunk in sent.chunks(100) {
        s.deliver(chunk).await.unwrap();
    }
    let counts = count_by_id(ch, &db).await;
    assert_eq!(counts.len(), sent.len());
    assert!(
        counts.values().all(|&n| n == 1),
        "no duplicates in a normal run"
    );

    let ddl = ch
        .query(&format!("SHOW CREATE TABLE {db}.events"))
        .await
        .unwrap();
    assert!(ddl.contains("ReplacingMergeTree"), "{ddl}");
    let version = ch.query("SELECT version()").await.unwrap();
    eprintln!("tested against ClickHouse {}", version.trim());

    let rows = ch
        .rows(&format!(
            "SELECT event_id, kind, org_id, type, toString(occurred_at) AS t, actor_type, actor_id, actor_ip, record FROM {db}.events"
        ))
        .await;
    let by_id: HashMap<&str, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["event_id"].as_str().unwrap(), r))
        .collect();
    for e in &sent {
        let mut want = Vec::new();
        Format::Json.encode(e, &mut want);
        assert_eq!(
            by_id[e.event_id.as_str()]["record"]
                .as_str()
                .unwrap()
                .as_bytes(),
            &want[..],
            "record intact for {}",
            e.event_id
        );
    }
    let key = by_id["activity:org-1:key_create"];
    assert_eq!(key["type"], "key_create");
    assert_eq!(key["t"], "2025-03-04 10:15:30");
    assert_eq!(key["actor_ip"], "203.0.113.7");
    assert_eq!(key["kind"], "activity");
    let tz = by_id["activity:org-1:ip_access_list_by_api"];
    assert_eq!(tz["t"], "2025-03-04 10:15:32", "+01:00 converted to UTC");
    let uni = by_id["activity:org-1:unicode"];
    assert!(uni["record"].as_str().unwrap().contains("Zoë 山田 🚀"));
    assert_eq!(uni["actor_id"], "użytkownik-1");
    let state = by_id["inventory:org-1:service_updated"];
    assert_eq!(state["type"], "inventory_service_updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_collapses_in_the_replacing_merge_tree() {
    if !clickhouse::available() {
        return;
    }
    let ch = clickhouse::shared();
    let db = database();
    let mut s = ch_sink(
        &ch.url(),
        &db,
        "create_table = true\ncompression = \"none\"",
    );
    let sent = events(50);
    s.deliver(&sent).await.unwrap();
    s.deliver(&sent[..30]).await.unwrap(); // at-least-once: a batch comes again
    let total: u64 = count_by_id(ch, &db).await.values().sum();
    assert!(total >= sent.len() as u64);
    ch.query(&format!("OPTIMIZE TABLE {db}.events FINAL"))
        .await
        .unwrap();
    let after = count_by_id(ch, &db).await;
    assert_eq!(after.len(), sent.len());
    assert!(
        after.values().all(|&n| n == 1),
        "duplicates collapse by event_id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_nothing() {
    if !clickhouse::available() {
        return;
    }
    let mut ch = ClickHouse::start();
    let db = "audit_restart";
    let mut s = ch_sink(&ch.url(), db, "create_table = true\ntimeout = \"2s\"");
    let sent = events(200);
    let batches: Vec<_> = sent.chunks(40).collect();
    s.deliver(batches[0]).await.unwrap();
    ch.stop();
    match s.deliver(batches[1]).await {
        Err(SinkError::Transient { message, .. }) => {
            assert!(
                message.contains("ClickHouse http://127.0.0.1:"),
                "{message}"
            )
        }
        other => panic!("server down: expected transient, got {other:?}"),
    }
    let restart = tokio::task::spawn_blocking(move || {
        // The outage lasts a second more, so the retries below meet it too: its length is
        // the behaviour under test.
        std::thread::sleep(Duration::from_secs(1));
        ch.restart();
        ch
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    for b in &batches[1..] {
        deliver_retrying(&mut s, b, Duration::from_millis(300), deadline).await;
    }
    let ch = restart.await.unwrap();
    let counts = count_by_id(&ch, db).await;
    for e in &sent {
        assert!(counts.contains_key(&e.event_id), "{} lost", e.event_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_rejected_with_the_fix() {
    if !clickhouse::available() {
        return;
    }
    let ch = clickhouse::shared();
    let mut s = ch_sink(&ch.url(), "no_such_db", "");
    match s.deliver(&events(1)).await {
        Err(SinkError::Rejected(m)) => assert!(m.contains("create_table"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_unauthorized_stops_once_and_fails_readyz() {
    if !clickhouse::available() {
        return;
    }
    let ch = clickhouse::shared();
    let wrong = block_with_password(
        &ch.url(),
        "audit_auth",
        "nope-wrong-pw",
        "create_table = true",
    );
    let mut s = sink(&wrong);
    match s.deliver(&events(1)).await {
        Err(SinkError::Unauthorized(m)) => {
            assert!(m.contains("401") || m.contains("Code: 193"), "{m}");
            assert_no_secret(&m, &["nope-wrong-pw", PASSWORD]);
        }
        other => panic!("{other:?}"),
    }
    let err = once_fails_fast_on_refused_credentials(&wrong, "ch").await;
    assert_no_secret(&err, &["nope-wrong-pw"]);
    daemon_not_ready_on_refused_credentials(&wrong, "ch").await;
}

/// The whole pipeline: `once` into a table it creates; every activity exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exports_every_activity_into_clickhouse() {
    if !clickhouse::available() {
        return;
    }
    let ch = clickhouse::shared();
    let db = database();
    let emu = crate::support::sinks::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::config(
        &emu,
        dir.path(),
        &block(
            &ch.url(),
            &db,
            "create_table = true\nbatch_max_events = 200",
        ),
    );
    Pipeline::build(cfg).await.unwrap().once().await.unwrap();
    let want = crate::support::sinks::activity_total(&emu);
    let counts = count_by_id(ch, &db).await;
    assert_eq!(counts.len(), want);
    assert!(counts.values().all(|&n| n == 1));
}
