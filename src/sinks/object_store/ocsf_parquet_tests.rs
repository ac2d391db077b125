//! Tests of the OCSF Parquet schema: every attribute our formatter emits, for every class,
//! has a column of its JSON type (nothing silently dropped), and a file reads back with the
//! nested values in place.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Fields};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use super::*;
use crate::event::{Event, EventKind};
use crate::format::Format;

fn event(kind: EventKind, payload: &str) -> Event {
    Event {
        seq: 1,
        event_id: "activity:org-1:a1".to_string(),
        kind,
        org_id: "org-1".to_string(),
        occurred_at: "2025-03-04T10:15:30Z".to_string(),
        observed_at: "2025-03-04T10:16:00Z".to_string(),
        payload: payload.to_string(),
    }
}

/// Events of every class and shape the OCSF formatter has (activities of each class with
/// every optional attribute, inventory with before/after, findings, a non-object payload).
fn corpus() -> Vec<Event> {
    let full = r#""actorType":"user","actorId":"u-1","actorDetails":"a@example.com","actorIpAddress":"198.51.100.2","userAgent":"curl/8","serviceId":"svc-1","targetActorIds":["user/7"],"targetRoleNames":["Admin"],"targetKeyId":"k-1""#;
    let mut out: Vec<Event> = [
        "service_delete",
        "user_login",
        "user_login_failed",
        "organization_member_update_roles",
        "organization_member_join",
        "organization_invitation_create",
        "key_create",
        "quantum_entangle",
        "organization_role_create",
    ]
    .iter()
    .map(|t| {
        event(
            EventKind::Activity,
            &format!(r#"{{"id":"a1","createdAt":"2025-03-04T10:15:30Z","type":"{t}",{full}}}"#),
        )
    })
    .collect();
    out.push(event(EventKind::Activity, "not json at all"));
    out.push(event(
        EventKind::Inventory,
        r#"{"resource":"service","resource_id":"s1","action":"updated","before":{"name":"prod","state":"running"},"after":{"name":"prod","state":"stopped"}}"#,
    ));
    out.push(event(
        EventKind::Finding,
        r#"{"rule":"open_ip_access","status":"open","severity":"critical","summary":"open","resource":"service","resource_id":"s1"}"#,
    ));
    out
}

fn ocsf(e: &Event) -> Value {
    let mut out = Vec::new();
    Format::Ocsf.encode(e, &mut out);
    serde_json::from_slice(&out).unwrap()
}

/// Paths in `v` that `fields` has no column of the right kind for.
fn uncovered(v: &serde_json::Map<String, Value>, fields: &Fields, at: &str, out: &mut Vec<String>) {
    for (k, val) in v {
        let path = format!("{at}{k}");
        let Some(f) = fields.iter().find(|f| f.name() == k) else {
            out.push(path);
            continue;
        };
        match (f.data_type(), val) {
            (DataType::Utf8, _) => {} // strings, and JSON text for open-ended attributes
            (DataType::Int32 | DataType::Int64, Value::Number(_)) => {}
            (DataType::Struct(sub), Value::Object(o)) => {
                uncovered(o, sub, &format!("{path}."), out)
            }
            (DataType::List(item), Value::Array(items)) => {
                for i in items {
                    match (item.data_type(), i) {
                        (DataType::Struct(sub), Value::Object(o)) => {
                            uncovered(o, sub, &format!("{path}[]."), out)
                        }
                        (DataType::Utf8, Value::String(_)) => {}
                        _ => out.push(format!("{path}[]")),
                    }
                }
            }
            _ => out.push(format!("{path} ({})", f.data_type())),
        }
    }
}

#[test]
fn every_attribute_the_formatter_emits_has_a_typed_column() {
    let mut classes = std::collections::BTreeSet::new();
    for e in corpus() {
        let v = ocsf(&e);
        let class = v["class_uid"].as_i64().unwrap();
        classes.insert(class);
        let mut missing = Vec::new();
        uncovered(
            v.as_object().unwrap(),
            schema(class).fields(),
            "",
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "class {class}: no column for {missing:?}"
        );
    }
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        [2004, 3001, 3002, 3004, 3005, 6003],
        "the corpus covers every class"
    );
    // Open-ended attributes only are JSON text.
    let s = schema(3004);
    assert_eq!(
        s.field_with_name("unmapped").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        s.field_with_name("time").unwrap().data_type(),
        &DataType::Int64
    );
    assert!(matches!(
        s.field_with_name("actor").unwrap().data_type(),
        DataType::Struct(_)
    ));
}

#[test]
fn a_file_reads_back_with_nested_values_in_place() {
    let e = &corpus()[0]; // service_delete: Entity Management
    let v = ocsf(e);
    let class = v["class_uid"].as_i64().unwrap();
    let mut file = ParquetFile::new(class, 10).unwrap();
    file.write(std::slice::from_ref(&v)).unwrap();
    let bytes = file.finish().unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let b = &batches[0];
    assert_eq!(b.num_rows(), 1);
    let col = |name: &str| b.column_by_name(name).unwrap().clone();
    assert_eq!(col("class_uid").as_primitive::<Int32Type>().value(0), 3004);
    assert_eq!(
        col("time").as_primitive::<Int64Type>().value(0),
        v["time"].as_i64().unwrap()
    );
    let actor = col("actor");
    let user = actor
        .as_struct()
        .column_by_name("user")
        .unwrap()
        .as_struct()
        .clone();
    assert_eq!(
        user.column_by_name("uid")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "u-1"
    );
    let profiles = col("metadata")
        .as_struct()
        .column_by_name("profiles")
        .unwrap()
        .clone();
    assert_eq!(
        profiles
            .as_list::<i32>()
            .value(0)
            .as_string::<i32>()
            .value(0),
        "cloud"
    );
    let unmapped: Value =
        serde_json::from_str(col("unmapped").as_string::<i32>().value(0)).unwrap();
    assert_eq!(unmapped["serviceId"], "svc-1");
    // Absent attributes are nulls, not empty structs.
    assert!(col("entity_result").is_null(0));
}
