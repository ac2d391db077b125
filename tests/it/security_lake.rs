//! The object_store sink's Security Lake mode against moto S3: Parquet objects under the
//! custom-source layout, one OCSF class and event day per object, every activity once, read
//! back with the `parquet` crate and with pyarrow (a standard reader outside Rust), nested
//! columns where OCSF nests, and the same object names after a redelivery.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::object_store::{ObjectStore, ObjectStoreExt};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use clickhouse_audit_exporter::event::Event;
use clickhouse_audit_exporter::sinks::Sink;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::moto::{self, Moto};
use crate::support::sinks::{events, sink};
use crate::support::{fixtures, objects};

const LAKE: &str = "[sinks.security_lake]\nsource_name = \"clickhouse-{class}\"\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\n";

/// `n` activities of every OCSF class our formatter maps to, over two days, then the golden
/// events (odd payloads, not-JSON included).
fn classes_over_two_days(n: usize) -> Vec<Event> {
    const TYPES: &[&str] = &[
        "service_delete",                   // Entity Management
        "user_login",                       // Authentication
        "organization_member_update_roles", // User Access Management
        "organization_member_join",         // Account Change
        "quantum_entangle",                 // API Activity
    ];
    let mut all: Vec<Event> = (0..n)
        .map(|i| {
            let mut e = fixtures::activity_of_type(i as i64 + 1, TYPES[i % TYPES.len()]);
            e.event_id = format!("activity:org-1:t-{i}");
            let day = if i % 3 == 0 { "05" } else { "04" };
            e.payload = e.payload.replace(
                "2025-03-04T10:15:30Z",
                &format!("2025-03-{day}T10:15:{:02}Z", 59 - i % 60),
            );
            e
        })
        .collect();
    for (i, mut e) in events(0).into_iter().enumerate() {
        e.seq = (n + i + 1) as i64;
        all.push(e);
    }
    all
}

fn lake_sink(s3: &Moto) -> Box<dyn Sink> {
    sink(&format!(
        "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://lake\"\nencoding = \"parquet\"\nobject_max_events = 40\n{}{LAKE}",
        s3.sink_keys()
    ))
}

/// Every Parquet object in the bucket (the marker left out), read with the `parquet` crate.
async fn read_back(
    store: &Arc<dyn ObjectStore>,
) -> BTreeMap<String, (Vec<RecordBatch>, bytes::Bytes)> {
    let mut out = BTreeMap::new();
    for (name, (_, body)) in objects::bodies(store, None).await {
        let batches = ParquetRecordBatchReaderBuilder::try_new(body.clone())
            .unwrap_or_else(|e| panic!("{name} is Parquet: {e}"))
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.insert(name, (batches, body));
    }
    out
}

fn strings(b: &RecordBatch, path: &[&str]) -> Vec<Option<String>> {
    let mut col = b.column_by_name(path[0]).unwrap().clone();
    for p in &path[1..] {
        col = col.as_struct().column_by_name(p).unwrap().clone();
    }
    let s = col.as_string::<i32>();
    (0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect()
}

/// Each sent event in exactly one object; each object one class, in the directory of its
/// class and its rows' event day, named by the seqs it holds, rows ordered by time.
fn assert_the_security_lake_layout(
    got: &BTreeMap<String, (Vec<RecordBatch>, bytes::Bytes)>,
    sent: &[Event],
) {
    let by_id: BTreeMap<&str, &Event> = sent.iter().map(|e| (e.event_id.as_str(), e)).collect();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, (batches, _)) in got {
        let (dir, file) = name.rsplit_once('/').unwrap();
        let (range, ext) = file.split_once('.').unwrap();
        assert_eq!(ext, "parquet");
        let (a, b) = range.split_once('-').unwrap();
        assert!(a.len() == 20 && b.len() == 20, "{file}");
        let (a, b): (i64, i64) = (a.parse().unwrap(), b.parse().unwrap());
        let mut last_time = i64::MIN;
        let mut classes = std::collections::BTreeSet::new();
        for batch in batches {
            let class = batch
                .column_by_name("class_uid")
                .unwrap()
                .as_primitive::<Int32Type>()
                .clone();
            let time = batch
                .column_by_name("time")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            for (row, id) in strings(batch, &["metadata", "uid"]).into_iter().enumerate() {
                let id = id.unwrap();
                assert!(seen.insert(id.clone(), name).is_none(), "{id} twice");
                let e = by_id[id.as_str()];
                assert!((a..=b).contains(&e.seq), "{file} holds seq {}", e.seq);
                classes.insert(class.value(row));
                let t = time.value(row);
                assert!(t >= last_time, "{name}: rows ordered by time");
                last_time = t;
                let day = chrono::DateTime::from_timestamp_millis(t)
                    .unwrap()
                    .format("%Y%m%d");
                let word = match class.value(row) {
                    6003 => "api_activity",
                    3002 => "authentication",
                    3001 => "account_change",
                    3005 => "user_access",
                    3004 => "entity_management",
                    2004 => "detection_finding",
                    other => panic!("class {other}"),
                };
                assert_eq!(
                    dir,
                    format!(
                        "ext/clickhouse-{word}/1.0/region=eu-west-1/accountId=123456789012/eventDay={day}"
                    ),
                    "{id}"
                );
            }
        }
        assert_eq!(classes.len(), 1, "{name}: one OCSF class per object");
    }
    assert_eq!(
        seen.len(),
        sent.len(),
        "every event once across {} objects",
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_parquet_objects_in_the_security_lake_layout_every_activity_once() {
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("lake").await;
    let mut s = lake_sink(&s3);
    let sent = classes_over_two_days(300);
    for chunk in sent.chunks(120) {
        s.deliver(chunk).await.unwrap();
    }
    let got = read_back(&s3.store("lake")).await;
    assert_the_security_lake_layout(&got, &sent);
    let dirs: std::collections::BTreeSet<&str> =
        got.keys().map(|n| n.rsplit_once('/').unwrap().0).collect();
    assert!(dirs.len() >= 10, "5 classes × 2 days: {dirs:?}");
    // Nested OCSF columns, not JSON text: actor.user.uid is a struct field, time a long.
    let (batches, _) = got
        .iter()
        .find(|(n, _)| n.contains("clickhouse-authentication"))
        .unwrap()
        .1;
    let schema = batches[0].schema();
    let DataType::Struct(actor) = schema.field_with_name("actor").unwrap().data_type() else {
        panic!("actor is a struct");
    };
    assert!(matches!(
        actor.find("user").unwrap().1.data_type(),
        DataType::Struct(_)
    ));
    assert_eq!(
        schema.field_with_name("time").unwrap().data_type(),
        &DataType::Int64
    );
    let users: Vec<Option<String>> = got
        .values()
        .flat_map(|(b, _)| b.iter())
        .filter(|b| b.column_by_name("actor").is_some())
        .flat_map(|b| strings(b, &["actor", "user", "uid"]))
        .collect();
    assert!(
        users.iter().any(|u| u.as_deref() == Some("user-1")),
        "actor.user.uid read back"
    );
    if pyarrow_available() {
        read_with_pyarrow(&got, sent.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_parquet_redelivery_rewrites_the_same_objects() {
    if !moto::available() {
        return;
    }
    let s3 = Moto::start().await;
    s3.create_bucket("lake").await;
    let sent = classes_over_two_days(200);
    let mut before = lake_sink(&s3);
    before.deliver(&sent[..70]).await.unwrap();
    let first = read_back(&s3.store("lake")).await;
    // Died before the position moved: a new process gets a longer batch from the same seq,
    // and delivers it twice.
    let mut after = lake_sink(&s3);
    after.deliver(&sent).await.unwrap();
    after.deliver(&sent).await.unwrap();
    let got = read_back(&s3.store("lake")).await;
    assert_the_security_lake_layout(&got, &sent);
    for (name, (_, body)) in &first {
        assert_eq!(
            got.get(name).map(|g| &g.1),
            Some(body),
            "{name} rewritten as it was"
        );
    }
    // The marker sits inside the sources' prefix, where a custom source's role may write.
    let store = s3.store("lake");
    let marker = store
        .head(&"ext/clickhouse-state/_ch_audit_exporter/lake.inflight".into())
        .await;
    assert!(marker.is_ok(), "{marker:?}");
}

/// Whether pyarrow imports (else the pyarrow half skips: `support::require`).
fn pyarrow_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import pyarrow.parquet"])
        .status()
        .is_ok_and(|s| s.success());
    crate::support::require::installed(found, "pyarrow", "pip install pyarrow==26.0.1")
}

/// Reads every object with pyarrow: the same rows, `actor.user.uid` a nested string field and
/// `time` an int64 there too.
fn read_with_pyarrow(got: &BTreeMap<String, (Vec<RecordBatch>, bytes::Bytes)>, rows: usize) {
    let dir = tempfile::tempdir().unwrap();
    for (i, (_, body)) in got.values().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.parquet")), body).unwrap();
    }
    let script = r#"
import glob, json, sys
import pyarrow.parquet as pq
rows, ids, checked = 0, set(), 0
for f in glob.glob(sys.argv[1] + "/*.parquet"):
    t = pq.read_table(f)
    s = t.schema
    assert str(s.field("time").type) == "int64", s.field("time").type
    if "actor" in s.names:
        user = s.field("actor").type.field("user").type
        assert str(user.field("uid").type) == "string", user
        checked += 1
    rows += t.num_rows
    ids.update(r["uid"] for r in t.column("metadata").to_pylist())
assert checked > 0, "no object with an actor"
print(json.dumps({"rows": rows, "ids": len(ids)}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], rows, "pyarrow reads every row");
    assert_eq!(v["ids"], rows, "pyarrow sees every activity once");
}
