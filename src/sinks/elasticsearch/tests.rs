//! Unit tests of the elasticsearch sink: bodies (create actions, index per day, split by
//! bytes), cef as messages, error texts.
use super::*;

fn sink(extra: serde_json::Value) -> ElasticsearchSink {
    let mut v = serde_json::json!({"url": "http://127.0.0.1:9", "api_key": "id:key-secret"});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let cfg: ElasticsearchConfig = serde_json::from_value(v).unwrap();
    ElasticsearchSink::new(&cfg, "es", Format::Ecs, &Metrics::new()).unwrap()
}

fn event(i: usize, day: u32, size: usize) -> Event {
    Event {
        seq: i as i64,
        event_id: format!("activity:o:a{i}"),
        kind: crate::event::EventKind::Activity,
        org_id: "o".into(),
        occurred_at: format!("2026-12-{day:02}T23:00:00Z"),
        observed_at: "2026-12-09T00:00:00Z".into(),
        payload: format!(
            r#"{{"id":"a{i}","type":"user_login","actorDetails":"{}"}}"#,
            "x".repeat(size)
        ),
    }
}

#[test]
fn bodies_are_create_actions_by_event_id_into_the_events_day_split_by_bytes() {
    let mut s = sink(serde_json::json!({"batch_max_bytes": "4KiB", "pipeline": "p 1"}));
    let batch: Vec<Event> = (0..6).map(|i| event(i, 4 + (i as u32 % 2), 900)).collect();
    s.encode(&batch);
    let chunks = s.chunks();
    assert!(chunks.len() > 1, "{chunks:?}");
    let text = String::from_utf8(s.records.span(0..s.records.len()).to_vec()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(lines[0]["create"]["_id"], "activity:o:a0");
    assert_eq!(lines[0]["create"]["_index"], "clickhouse-audit-2026.12.04");
    assert_eq!(lines[2]["create"]["_index"], "clickhouse-audit-2026.12.05");
    assert_eq!(lines[1]["event"]["id"], "activity:o:a0");
    for c in &chunks {
        let len = s.records.span(c.clone()).len();
        assert!(len <= 4096 || c.len() == 1, "{c:?}: {len}");
    }
    let q = s.nodes[0].bulk.query().unwrap();
    assert!(
        q.contains("pipeline=p+1") && q.contains("filter_path="),
        "{q}"
    );
    assert_eq!(s.nodes[0].bulk.path(), "/_bulk");
    let auth = s.headers[header::AUTHORIZATION].to_str().unwrap();
    assert_eq!(auth, "ApiKey aWQ6a2V5LXNlY3JldA==");
    assert!(!format!("{s:?}").contains("key-secret"));
}

#[test]
fn cef_lines_travel_as_messages_with_a_timestamp() {
    let mut s = sink(serde_json::json!({}));
    s.format = Format::Cef;
    s.encode(&[event(1, 4, 3)]);
    let text = String::from_utf8(s.records.span(0..s.records.len()).to_vec()).unwrap();
    let doc: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(doc["@timestamp"], "2026-12-04T23:00:00.000Z");
    assert!(doc["message"].as_str().unwrap().starts_with("CEF:0|"));
}

#[test]
fn error_bodies_are_named_by_type_and_reason() {
    let t = r#"{"error":{"root_cause":[],"type":"security_exception","reason":"unable to authenticate"},"status":401}"#;
    assert_eq!(error_text(t), "security_exception: unable to authenticate");
    assert_eq!(
        error_text(r#"{"error":"Content-Type header [x] is not supported","status":406}"#),
        "Content-Type header [x] is not supported"
    );
    assert_eq!(error_text("plain"), "plain");
}
