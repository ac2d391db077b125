//! Output formats end to end: golden files per SIEM format (ecs, ocsf, cef) over a fixed set of
//! ordinary, unicode, empty and hostile events; OCSF output validated against the official
//! 1.3.0 schema (pydantic-ocsf, when installed); a property test that any payload, compact or
//! pretty-printed, renders as valid output (one line in every format; a JSON object for
//! json/ecs/ocsf).
//!
//! Regenerate the golden files after an intended change: `UPDATE_GOLDEN=1 cargo test --test it formats`.

use std::path::PathBuf;

use clickhouse_audit_exporter::event::{Event, EventKind};
use clickhouse_audit_exporter::format::{Format, catalog};
use proptest::prelude::*;

use crate::support::{fixtures, require};

const VERSION_PLACEHOLDER: &str = "{VERSION}";

fn encode_lines(format: Format, events: &[Event]) -> String {
    let mut out = Vec::new();
    for e in events {
        format.encode(e, &mut out);
        out.push(b'\n');
    }
    String::from_utf8(out).expect("encoders write UTF-8")
}

fn golden_path(format: Format) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/golden")
        .join(format!("{}.golden", format.as_str()))
}

fn check_golden(format: Format) {
    let events = fixtures::golden_events();
    // CEF carries the exporter version: the golden file has a placeholder.
    let got = encode_lines(format, &events).replace(
        &format!("|{}|", env!("CARGO_PKG_VERSION")),
        &format!("|{VERSION_PLACEHOLDER}|"),
    );
    let path = golden_path(format);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (create it with UPDATE_GOLDEN=1 cargo test --test it formats)",
            path.display()
        )
    });
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(
            g,
            w,
            "{} line {} ({}) differs from the golden file",
            format.as_str(),
            i + 1,
            events[i].event_id
        );
    }
    assert_eq!(got.lines().count(), want.lines().count(), "line count");
}

#[test]
fn ecs_matches_its_golden_file() {
    check_golden(Format::Ecs);
}

#[test]
fn ocsf_matches_its_golden_file() {
    check_golden(Format::Ocsf);
}

#[test]
fn cef_matches_its_golden_file() {
    check_golden(Format::Cef);
}

/// Format invariants every record must keep, whatever the payload.
fn assert_valid(format: Format, event: &Event, record: &[u8]) {
    let text = std::str::from_utf8(record).expect("UTF-8");
    // NDJSON and syslog framing need one record per line, whatever the payload's spacing.
    assert!(
        !text.contains(['\n', '\r']),
        "{}: a record is one line: {text:?}",
        format.as_str()
    );
    if format.is_json() && !(format == Format::Raw && event.kind == EventKind::Activity) {
        let v: serde_json::Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", format.as_str()));
        assert!(v.is_object(), "{}: not an object: {text}", format.as_str());
    }
    match format {
        Format::Ecs => {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["event"]["id"], event.event_id.as_str());
            assert!(v["@timestamp"].is_string());
        }
        Format::Ocsf => {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["metadata"]["uid"], event.event_id.as_str());
            let class = v["class_uid"].as_i64().unwrap();
            let activity = v["activity_id"].as_i64().unwrap();
            assert_eq!(v["type_uid"].as_i64().unwrap(), class * 100 + activity);
            assert!(v["time"].is_i64());
        }
        Format::Cef => {
            assert!(
                !text.contains(['\n', '\r']),
                "a CEF record is one line: {text:?}"
            );
            assert!(text.starts_with("CEF:0|ClickHouse|ClickHouse Cloud|"));
            // Exactly 7 unescaped header separators before the extension.
            let mut pipes = 0;
            let mut escaped = false;
            let mut ext_start = None;
            for (i, c) in text.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '|') => {
                        pipes += 1;
                        if pipes == 7 {
                            ext_start = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let ext = &text[ext_start.expect("7 header fields")..];
            let pairs = cef_extension(ext);
            assert_eq!(pairs.first().map(|p| p.0.as_str()), Some("rt"), "{ext}");
            assert!(
                pairs
                    .iter()
                    .any(|(k, v)| k == "cs2" && *v == cef_escape(&event.event_id)),
                "cs2 carries the event id: {ext}"
            );
        }
        _ => {}
    }
}

/// The spec's extension value escaping, for comparisons.
fn cef_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .chars()
        .map(|c| if c.is_ascii_control() { ' ' } else { c })
        .collect()
}

/// Splits a CEF extension into `(key, raw value)` pairs the way receivers do: a key is
/// `[A-Za-z0-9_]+` before an unescaped `=`, and a value runs to the space before the next key.
/// Panics if an unescaped `=` is not preceded by such a key (a value leaked an `=`), or a key is
/// not one this exporter writes.
fn cef_extension(ext: &str) -> Vec<(String, String)> {
    const KEYS: &[&str] = &[
        "rt",
        "cat",
        "act",
        "outcome",
        "externalId",
        "suid",
        "suser",
        "src",
        "requestClientApplication",
        "duser",
        "msg",
        "cs1",
        "cs2",
        "cs3",
        "cs4",
        "cs5",
        "cs6",
        "cs1Label",
        "cs2Label",
        "cs3Label",
        "cs4Label",
        "cs5Label",
        "cs6Label",
        "flexString1",
        "flexString2",
        "flexString1Label",
        "flexString2Label",
    ];
    let bytes = ext.as_bytes();
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                eqs.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut value_start = 0;
    for (n, &eq) in eqs.iter().enumerate() {
        let key_start = ext[..eq].rfind(' ').map_or(0, |s| s + 1);
        let key = &ext[key_start..eq];
        assert!(
            (n == 0 || key_start > value_start) && KEYS.contains(&key),
            "unescaped `=` after {key:?} in {ext:?}"
        );
        if let Some(last) = pairs.last_mut() {
            last.1 = ext[value_start..key_start - 1].to_string();
        }
        pairs.push((key.to_string(), String::new()));
        value_start = eq + 1;
    }
    if let Some(last) = pairs.last_mut() {
        last.1 = ext[value_start..].to_string();
    }
    pairs
}

#[test]
fn every_catalogued_type_renders_in_every_format() {
    let mut out = Vec::new();
    for (i, ty) in catalog::types().chain(["never_seen_before"]).enumerate() {
        let e = fixtures::activity_of_type(i as i64, ty);
        for &format in Format::ALL {
            out.clear();
            format.encode(&e, &mut out);
            assert_valid(format, &e, &out);
        }
    }
}

#[test]
fn golden_events_keep_the_format_invariants() {
    let mut out = Vec::new();
    for e in fixtures::golden_events() {
        for &format in Format::ALL {
            out.clear();
            format.encode(&e, &mut out);
            assert_valid(format, &e, &out);
        }
    }
}

/// OCSF output of the golden set and of every catalogued type, checked by
/// `support/ocsf_validate.py` against the official schema. Skipped when python3 or
/// pydantic-ocsf is missing (`support::require`: a failure in CI).
#[test]
fn ocsf_output_validates_against_the_official_schema() {
    let mut events = fixtures::golden_events();
    for (i, ty) in catalog::types().chain(["never_seen_before"]).enumerate() {
        events.push(fixtures::activity_of_type(1000 + i as i64, ty));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ocsf.ndjson");
    std::fs::write(&file, encode_lines(Format::Ocsf, &events)).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/ocsf_validate.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output();
    if !require::installed(output.is_ok(), "python3", "apt-get install python3") {
        return;
    }
    let output = output.expect("checked just above");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Exit code 3: the script could not import pydantic-ocsf.
    if !require::installed(
        output.status.code() != Some(3),
        "the Python package pydantic-ocsf",
        "pip install pydantic-ocsf==3.0.0",
    ) {
        return;
    }
    assert!(
        output.status.success(),
        "OCSF validation failed:\n{}{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    println!("{}", String::from_utf8_lossy(&output.stdout).trim());
}

/// Arbitrary JSON, with strings full of characters formats must escape.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let string = prop_oneof![
        "[a-z_]{0,12}",
        "\\PC{0,20}",
        "[|\\\\=\n\r\t\"\u{0}\u{1b}\u{2028}é😀 ]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        string.prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the fields formats map, each holding any JSON (or a plausible string).
fn activity_like() -> impl Strategy<Value = serde_json::Value> {
    const KEYS: &[&str] = &[
        "id",
        "createdAt",
        "type",
        "actorType",
        "actorId",
        "actorDetails",
        "actorIpAddress",
        "organizationId",
        "serviceId",
        "userAgent",
        "targetKeyId",
        "keyUpdateType",
        "targetRoleIds",
        "targetRoleNames",
        "targetActorIds",
        "targetResourceIds",
        "resource",
        "resource_id",
        "action",
        "changed",
        "before",
        "after",
        "rule",
        "status",
        "severity",
        "summary",
    ];
    let types: Vec<&'static str> = catalog::types().collect();
    let value = prop_oneof![
        json_value(),
        prop::sample::select(types).prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2025-03-04T10:15:30Z")),
        Just(serde_json::Value::from("192.0.2.1")),
    ];
    prop::collection::btree_map(prop::sample::select(KEYS), value, 0..KEYS.len()).prop_map(|m| {
        serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    })
}

fn any_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Activity),
        Just(EventKind::Inventory),
        Just(EventKind::Finding),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_payload_renders_valid_output(
        payload in prop_oneof![activity_like(), json_value()],
        kind in any_kind(),
        org in "\\PC{0,10}",
        occurred in prop_oneof![Just("2025-03-04T10:15:30Z".to_string()), "\\PC{0,30}"],
        pretty in any::<bool>(),
    ) {
        // Pretty-printed payloads: line breaks between tokens (found by fuzzing, issue 8).
        let payload = if pretty {
            serde_json::to_string_pretty(&payload).unwrap()
        } else {
            payload.to_string()
        };
        let event = Event {
            seq: 1,
            event_id: format!("{}:{org}:x", kind.as_str()),
            kind,
            org_id: org,
            occurred_at: occurred,
            observed_at: "2025-03-04T10:16:00Z".into(),
            payload,
        };
        let mut out = Vec::new();
        for &format in Format::ALL {
            out.clear();
            format.encode(&event, &mut out);
            assert_valid(format, &event, &out);
        }
    }
}
