//! The sink against a local directory (`file://`): objects as planned, readable, and the same
//! object names after an interrupted delivery is redelivered as a longer batch.

use std::io::Read;

use super::*;
use crate::event::EventKind;
use crate::values::KeyPath;

fn events(range: std::ops::RangeInclusive<i64>) -> Vec<Event> {
    range
        .map(|seq| Event {
            seq,
            event_id: format!("activity:o:{seq}"),
            kind: EventKind::Activity,
            org_id: "o".to_string(),
            occurred_at: format!("2026-01-01T0{}:00:00Z", seq % 2),
            observed_at: "2026-01-01T00:00:00Z".to_string(),
            payload: format!("{{\"id\":\"{seq}\"}}"),
        })
        .collect()
}

fn sink(dir: &std::path::Path, extra: &str) -> ObjectStoreSink {
    let text = format!("url = \"file://{}\"\n{extra}", dir.display());
    let cfg: ObjectStoreConfig = toml::from_str(&text).unwrap();
    crate::sinks::SinkSpec::validate(&cfg, &KeyPath::sink(0, "lake")).unwrap();
    ObjectStoreSink::new(
        &cfg,
        BuildContext {
            name: "lake",
            format: Format::Json,
            metrics: Arc::new(Metrics::new()),
        },
    )
    .unwrap()
}

/// Every object below `dir` (marker excluded): relative name → event ids in it.
fn objects(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("_ch_audit_exporter") {
                    stack.push(p);
                }
                continue;
            }
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            let ids = text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            out.push((p.strip_prefix(dir).unwrap().display().to_string(), ids));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_batch_becomes_partitioned_objects_named_by_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), "object_max_events = 2");
    s.deliver(&events(1..=5)).await.unwrap();
    let got = objects(dir.path());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "org_id=o/date=2026-01-01/hour=00/00000000000000000002-00000000000000000004.ndjson.gz",
            "org_id=o/date=2026-01-01/hour=01/00000000000000000001-00000000000000000003.ndjson.gz",
            "org_id=o/date=2026-01-01/hour=01/00000000000000000005-00000000000000000005.ndjson.gz",
        ]
    );
    assert_eq!(got[1].1, ["activity:o:1", "activity:o:3"]);
}

#[tokio::test]
async fn a_redelivery_after_a_crash_rewrites_the_same_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = sink(dir.path(), "");
    first.deliver(&events(1..=4)).await.unwrap();
    // The process died before committing the position; the next run reads a longer batch.
    let mut second = sink(dir.path(), "");
    second.deliver(&events(1..=9)).await.unwrap();
    // And a plain retry of that batch in the same process.
    second.deliver(&events(1..=9)).await.unwrap();
    let got = objects(dir.path());
    let mut ids: Vec<String> = got.iter().flat_map(|(_, i)| i.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = (1..=9).map(|s| format!("activity:o:{s}")).collect();
    want.sort();
    assert_eq!(ids, want, "every event exactly once across {got:?}");
    assert_eq!(got.len(), 4, "{got:?}");
    // The next batch starts after the position: a new marker, new objects.
    second.deliver(&events(10..=10)).await.unwrap();
    assert_eq!(objects(dir.path()).len(), 5);
}

#[tokio::test]
async fn zstd_and_plain_objects_carry_their_suffix() {
    for (c, suffix) in [("zstd", ".ndjson.zst"), ("none", ".ndjson")] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(
            dir.path(),
            &format!("compression = \"{c}\"\npartition = \"p\""),
        );
        s.deliver(&events(1..=3)).await.unwrap();
        let p = dir.path().join(format!(
            "p/00000000000000000001-00000000000000000003{suffix}"
        ));
        let bytes = std::fs::read(&p).unwrap();
        let text = match c {
            "zstd" => String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap(),
            _ => String::from_utf8(bytes).unwrap(),
        };
        assert_eq!(text.lines().count(), 3);
    }
}
