//! The object_store sink against real stores: S3 (moto in server mode, support/moto.rs),
//! Azure Blob (Azurite, support/azurite.rs) and a local directory through the daemon's `once`.
//! Objects are read back with a standard reader (list + get + gunzip + JSON): every activity
//! once, the Hive layout as configured, the same object names after an interrupted delivery is
//! redelivered, a missing bucket named, refused credentials `Unauthorized` without the key.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::object_store::ObjectStore;
use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::event::Event;
use clickhouse_audit_exporter::sinks::{Sink, SinkError};
use futures_util::StreamExt;

use crate::support::azurite::{self, Azurite};
use crate::support::moto::{self, Moto};
use crate::support::objects::read_all;
use crate::support::sinks::{assert_no_secret, events, sink};

/// A well-formed Azure account key that is not Azurite's.
const WRONG_KEY: &str = "d3Jvbmcta2V5LW5ldmVyLXNob3duLXdyb25nLWtleS13cm9uZy1rZXk=";

/// `n` activities (then the golden ones) spread over two organizations and three hours.
fn spread(n: usize) -> Vec<Event> {
    let mut all = events(n);
    for (i, e) in all.iter_mut().enumerate() {
        e.org_id = format!("org-{}", i % 2 + 1);
        e.occurred_at = format!("2025-03-04T{:02}:15:30Z", 9 + i % 3);
    }
    all
}

fn object_sink(url: &str, keys: &str) -> Box<dyn Sink> {
    sink(&format!(
        "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"{url}\"\nobject_max_events = 40\n{keys}"
    ))
}

/// Every object under `prefix` (the in-flight marker excluded): name → event ids, read with
/// list + get + gunzip + a JSON parser.
async fn read_back(store: &Arc<dyn ObjectStore>, prefix: &str) -> BTreeMap<String, Vec<String>> {
    read_all(store, prefix)
        .await
        .into_iter()
        .map(|(name, o)| {
            let ids = o
                .lines
                .iter()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["event_id"].as_str().unwrap().to_string()
                })
                .collect();
            (name, ids)
        })
        .collect()
}

/// Each sent event in exactly one object, in the partition its organization and hour name.
fn assert_each_once_in_its_partition(
    got: &BTreeMap<String, Vec<String>>,
    sent: &[Event],
    prefix: &str,
) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, ids) in got {
        for id in ids {
            assert!(seen.insert(id, name).is_none(), "{id} twice");
        }
    }
    assert_eq!(
        seen.len(),
        sent.len(),
        "every event once across {} objects",
        got.len()
    );
    for e in sent {
        let name = seen[e.event_id.as_str()];
        let dir = format!(
            "{prefix}/org_id={}/date=2025-03-04/hour={}/",
            e.org_id,
            &e.occurred_at[11..13]
        );
        assert!(
            name.starts_with(&dir),
            "{} in {name}, expected under {dir}",
            e.event_id
        );
        let file = &name[dir.len()..];
        let (range, ext) = file.split_once('.').unwrap();
        assert_eq!(ext, "ndjson.gz");
        let (a, b) = range.split_once('-').unwrap();
        assert!(a.len() == 20 && b.len() == 20, "{file}");
        let (a, b): (i64, i64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!((a..=b).contains(&e.seq), "{file} holds seq {}", e.seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_every_activity_once_in_the_hive_layout() {
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("audit").await;
    let mut s = object_sink("s3://audit/ch", &s3.sink_keys());
    let sent = spread(300);
    for chunk in sent.chunks(100) {
        s.deliver(chunk).await.unwrap();
    }
    let got = read_back(&s3.store("audit"), "ch").await;
    assert_each_once_in_its_partition(&got, &sent, "ch");
    assert!(got.values().all(|ids| ids.len() <= 40), "object_max_events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_redelivery_after_an_interrupted_delivery_rewrites_the_same_objects() {
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("audit").await;
    let sent = spread(200);
    let mut before = object_sink("s3://audit/ch", &s3.sink_keys());
    before.deliver(&sent[..70]).await.unwrap();
    let first = read_back(&s3.store("audit"), "ch").await;
    // The process died before its position moved: a new one gets a longer batch from the same
    // seq, and delivers it twice (a retry).
    let mut after = object_sink("s3://audit/ch", &s3.sink_keys());
    after.deliver(&sent).await.unwrap();
    after.deliver(&sent).await.unwrap();
    let got = read_back(&s3.store("audit"), "ch").await;
    assert_each_once_in_its_partition(&got, &sent, "ch");
    for (name, ids) in &first {
        assert_eq!(got.get(name), Some(ids), "{name} rewritten as it was");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_named() {
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    let mut s = object_sink("s3://no-such-bucket/ch", &s3.sink_keys());
    let err = s.deliver(&spread(3)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SinkError::Rejected(_)), "{err:?}");
    assert!(
        text.contains("s3://no-such-bucket") && text.contains("does not exist"),
        "{text}"
    );
    assert_no_secret(&text, &[moto::SECRET_ACCESS_KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_every_activity_once_and_a_wrong_key_is_unauthorized() {
    if !azurite::available() {
        return;
    }
    let az = Azurite::start().await;
    az.create_container("audit").await;
    let mut s = object_sink("az://audit/ch", &az.sink_keys(azurite::KEY));
    let sent = spread(150);
    for chunk in sent.chunks(60) {
        s.deliver(chunk).await.unwrap();
    }
    let got = read_back(&az.store("audit"), "ch").await;
    assert_each_once_in_its_partition(&got, &sent, "ch");

    let wrong = WRONG_KEY;
    let mut s = object_sink("az://audit/other", &az.sink_keys(wrong));
    let err = s.deliver(&spread(3)).await.unwrap_err();
    assert!(matches!(err, SinkError::Unauthorized(_)), "{err:?}");
    assert_no_secret(&format!("{err} {err:?}"), &[wrong, azurite::KEY]);
    assert!(read_back(&az.store("audit"), "other").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_writes_every_activity_to_a_local_directory() {
    let emu = crate::support::sinks::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let block = format!(
        "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"file://{}\"\npartition = \"{{kind}}/date={{date}}\"\n",
        lake.display()
    );
    let cfg = crate::support::config(&emu, dir.path(), &block);
    assert_eq!(
        cfg.sink_configs[0].batch_max_events, 10_000,
        "batch = object_max_events"
    );
    Pipeline::build(cfg).await.unwrap().once().await.unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
    let prefix = lake.display().to_string();
    let got = read_back(&store, prefix.trim_start_matches('/')).await;
    let ids: Vec<&String> = got.values().flatten().collect();
    let unique: std::collections::BTreeSet<&&String> = ids.iter().collect();
    assert!(!ids.is_empty(), "objects written");
    assert_eq!(unique.len(), ids.len(), "no activity twice");
    assert!(
        got.keys().all(|k| k.contains("/activity/date=")
            || k.contains("/inventory/date=")
            || k.contains("/finding/date=")),
        "{:?}",
        got.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_restart_leaves_every_activity_in_exactly_one_object() {
    use crate::support::daemon::bin;
    use crate::support::rig::{Rig, stop_clean};
    use clickhouse_audit_exporter::emulator::EmulatorOptions;
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("audit").await;
    let rig = Rig::with(EmulatorOptions {
        history: std::time::Duration::from_secs(86400),
        history_events_per_day: 1500,
        rate_limit: None,
        ..Default::default()
    })
    .await;
    rig.configure(
        &format!(
            "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://audit/ch\"\nobject_max_events = 25\nobject_max_age = \"300ms\"\n{}",
            s3.sink_keys()
        ),
        "",
        "",
    );
    let store = s3.store("audit");
    let mut rng = fastrand::Rng::with_seed(14);
    for round in 0..4 {
        let mut child = bin()
            .arg("-c")
            .arg(&rig.cfg)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill once some objects of this run are stored, at a random moment after that.
        let before = read_back(&store, "ch").await.len();
        crate::support::wait::eventually("objects written before the kill", async || {
            (read_back(&store, "ch").await.len() > before).then_some(())
        })
        .await;
        rig.add_live(5, &format!("kill-{round}"));
        tokio::time::sleep(std::time::Duration::from_millis(rng.u64(0..400))).await;
        child.start_kill().unwrap(); // SIGKILL
        let _ = child.wait().await;
    }
    let d = rig.start().await;
    let expected: Vec<String> = rig
        .expected()
        .iter()
        .map(|id| format!("activity:{}:{id}", rig.org))
        .collect();
    let got = crate::support::wait::eventually("every activity in the bucket", async || {
        let got = read_back(&store, "ch").await;
        let ids: std::collections::BTreeSet<&String> = got.values().flatten().collect();
        expected
            .iter()
            .all(|id| ids.contains(id))
            .then_some(got.clone())
    })
    .await;
    let mut all: Vec<&String> = got.values().flatten().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, all.len(), "no activity in two objects after 4 SIGKILLs");
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_proves_the_bucket_writable_and_names_a_missing_one() {
    use crate::support::rig::Rig;
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("audit").await;
    let rig = Rig::new().await;
    let keys = s3.sink_keys();
    rig.configure(
        &format!(
            "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://audit/ch\"\n{keys}\n\
             [[sinks]]\nname = \"listed\"\ntype = \"object_store\"\nurl = \"s3://audit/ch\"\nvalidate_probe = \"list\"\n{keys}\n"
        ),
        "",
        "",
    );
    let (code, out) = rig.cli(&["validate"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ sink lake: s3://audit/ch writable"), "{out}");
    assert!(
        out.contains("✓ sink listed: s3://audit/ch listable"),
        "{out}"
    );
    assert!(
        read_back(&s3.store("audit"), "ch").await.is_empty(),
        "the probe object is gone"
    );
    let mut names = Vec::new();
    let mut list = s3.store("audit").list(None);
    while let Some(m) = list.next().await {
        names.push(m.unwrap().location.to_string());
    }
    assert!(names.is_empty(), "nothing left behind: {names:?}");

    rig.configure(
        &format!("[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://missing-bucket/ch\"\n{keys}"),
        "",
        "",
    );
    let (code, out) = rig.cli(&["validate"], &[]).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("✗ sink lake")
            && out.contains("s3://missing-bucket")
            && out.contains("does not exist"),
        "{out}"
    );
    assert_no_secret(&out, &[moto::SECRET_ACCESS_KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_azure_key_makes_once_fail_at_once_without_showing_it() {
    if !azurite::available() {
        return;
    }
    let az = Azurite::start().await;
    az.create_container("audit").await;
    let wrong = WRONG_KEY;
    let block = format!(
        "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"az://audit/ch\"\n{}",
        az.sink_keys(wrong)
    );
    let text = crate::support::sinks::once_fails_fast_on_refused_credentials(&block, "lake").await;
    assert!(text.contains("az://audit/ch"), "{text}");
    assert_no_secret(&text, &[wrong]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowdown_is_transient_and_clock_skew_is_named_as_the_store_answers_them() {
    use crate::support::receiver::{Receiver, Reply};
    let rx = Receiver::start().await;
    let keys = "region = \"us-east-1\"\naccess_key_id = \"AKIA\"\nsecret_access_key = \"s\"\ntimeout = \"5s\"";
    let slow =
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    rx.set_default(Reply::Status(503, None, slow.to_string()));
    let mut s = object_sink(
        "s3://audit/ch",
        &format!("endpoint = \"{}\"\n{keys}", rx.url()),
    );
    let err = s.deliver(&spread(2)).await.unwrap_err();
    assert!(matches!(err, SinkError::Transient { .. }), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    let skew = "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message></Error>";
    rx.set_default(Reply::Status(403, None, skew.to_string()));
    let mut s = object_sink(
        "s3://audit/ch",
        &format!("endpoint = \"{}\"\n{keys}", rx.url()),
    );
    let err = s.deliver(&spread(2)).await.unwrap_err();
    assert!(matches!(err, SinkError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("clock"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_past_one_part_goes_up_as_a_multipart_upload_and_reads_back_whole() {
    use ::object_store::ObjectStoreExt;
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("audit").await;
    // 20 events of ~1 MiB, uncompressed: one ~20 MiB object, three 8 MiB parts.
    let pad = "x".repeat(1 << 20);
    let mut sent = spread(20);
    sent.truncate(20);
    for e in &mut sent {
        e.occurred_at = "2025-03-04T09:00:00Z".to_string();
        e.org_id = "org-1".to_string();
        e.payload = format!("{{\"id\":\"{}\",\"pad\":\"{pad}\"}}", e.seq);
    }
    let mut s = object_sink(
        "s3://audit/ch",
        &format!("{}compression = \"none\"\n", s3.sink_keys()),
    );
    s.deliver(&sent).await.unwrap();
    let store = s3.store("audit");
    let name = format!(
        "ch/org_id=org-1/date=2025-03-04/hour=09/{:020}-{:020}.ndjson",
        sent[0].seq, sent[19].seq
    );
    let body = store
        .get(&name.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body.len() > 20 << 20, "{} bytes", body.len());
    let ids: Vec<String> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = sent.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids, want);
    // S3 tags a multipart object's ETag with its part count.
    let meta = store.head(&name.as_str().into()).await.unwrap();
    assert!(
        meta.e_tag
            .as_deref()
            .is_some_and(|t| t.trim_matches('"').ends_with("-3")),
        "multipart with 3 parts: {:?}",
        meta.e_tag
    );
    assert_eq!(s3.open_uploads("audit").await, Vec::<String>::new());
    // The upload was recorded in the marker while under way, and is no longer.
    let marker = store
        .get(&"ch/_ch_audit_exporter/lake.inflight".into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let marker: serde_json::Value = serde_json::from_slice(&marker).unwrap();
    assert!(marker.get("uploads").is_none(), "{marker}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_left_by_a_killed_run_is_aborted_on_restart() {
    use ::object_store::ObjectStoreExt;
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("audit").await;
    let sent = spread(100);
    // What a run SIGKILLed mid-upload leaves: one part of an object up, the upload id
    // recorded in the marker, the upload neither completed nor aborted.
    let orphan = "ch/org_id=org-1/date=2025-03-04/hour=09/00000000000000000001-00000000000000000099.ndjson.gz";
    let mp = s3.multipart("audit");
    let id = mp.create_multipart(&orphan.into()).await.unwrap();
    mp.put_part(&orphan.into(), &id, 0, vec![0u8; 1024].into())
        .await
        .unwrap();
    let marker = serde_json::json!({"ranges": [[1, 100]], "uploads": [{"path": orphan, "id": id}]});
    let store = s3.store("audit");
    store
        .put(
            &"ch/_ch_audit_exporter/lake.inflight".into(),
            serde_json::to_vec(&marker).unwrap().into(),
        )
        .await
        .unwrap();
    assert_eq!(s3.open_uploads("audit").await, [orphan]);
    let mut s = object_sink("s3://audit/ch", &s3.sink_keys());
    s.deliver(&sent).await.unwrap();
    assert_eq!(
        s3.open_uploads("audit").await,
        Vec::<String>::new(),
        "the orphaned upload was aborted"
    );
    let got = read_back(&store, "ch").await;
    assert_each_once_in_its_partition(&got, &sent, "ch");
}
