//! Fuzz target `api_decode`: arbitrary bytes as the body of an activities answer, through the
//! streaming envelope decoder the client uses (`api::decode_activities_body`, read via
//! `io::Read` like a live body) and the lenient error-body reader (`api::error_body`).
//!
//! Asserts, beyond "no panic": every activity has a non-empty id and a `createdAt` that
//! `parse_created_at` reads back to the same instant; every activity and quarantined element is
//! a verbatim slice of the body, in body order; quarantine reasons are the three documented
//! labels; and, whenever `serde_json::Value` can read the same body, the decoder agrees with a
//! naive `Value`-based reading on the number of elements, the ids kept, the quarantine reason
//! of each element and the `requestId`.

#![no_main]

use std::collections::BTreeMap;

use clickhouse_audit_exporter::api::dates::parse_created_at;
use clickhouse_audit_exporter::api::{decode_activities_body, error_body};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Every raw element appears verbatim in the body, in order.
fn assert_verbatim_in_order<'a>(body: &[u8], raws: impl Iterator<Item = &'a str>) {
    let mut at = 0;
    for raw in raws {
        let pos = find(body, raw.as_bytes(), at)
            .unwrap_or_else(|| panic!("element {raw:?} is not a verbatim slice of the body"));
        at = pos + raw.len();
    }
}

/// What the decoder should make of one array element, read naively from a `Value`.
fn classify(v: &Value) -> Result<String, &'static str> {
    let Value::Object(m) = v else {
        return Err("not_an_object");
    };
    let id = match m.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("missing_id"),
    };
    match m.get("createdAt") {
        Some(Value::String(s)) if parse_created_at(s).is_ok() => Ok(id),
        _ => Err("bad_created_at"),
    }
}

fuzz_target!(|body: &[u8]| {
    // Non-2xx bodies go through the lenient reader: it must not panic on anything.
    let _ = error_body(body);

    let batch = match decode_activities_body(body) {
        Ok(b) => b,
        Err(e) => {
            assert!(!e.is_empty(), "a decode failure is worded");
            return;
        }
    };
    assert_eq!(batch.body_bytes, body.len());
    for a in &batch.activities {
        assert!(!a.id.is_empty(), "an activity has an id");
        assert!(a.raw.get().starts_with('{'), "an activity is an object");
        assert_eq!(
            parse_created_at(&a.created_at_raw),
            Ok(a.created_at),
            "createdAt is kept as received and parses to the same instant"
        );
    }
    for q in &batch.quarantined {
        assert!(
            matches!(q.reason, "missing_id" | "bad_created_at" | "not_an_object"),
            "unknown quarantine reason {}",
            q.reason
        );
        assert!(!q.detail.is_empty(), "a quarantined element says why");
    }
    assert_verbatim_in_order(body, batch.activities.iter().map(|a| a.raw.get()));
    assert_verbatim_in_order(body, batch.quarantined.iter().map(|q| q.raw.get()));

    // Differential: a naive reading through `Value`, when it can read the body at all (it
    // cannot past 128 levels of nesting, out-of-range numbers or lone surrogates).
    let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let elements = match envelope.get("result") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(Value::Null) => &[],
        other => panic!("decoded, but `result` reads as {other:?}"),
    };
    assert_eq!(
        batch.activities.len() + batch.quarantined.len(),
        elements.len(),
        "one activity or quarantine entry per element"
    );
    let mut ids = Vec::new();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for e in elements {
        match classify(e) {
            Ok(id) => ids.push(id),
            Err(r) => *reasons.entry(r).or_default() += 1,
        }
    }
    let got_ids: Vec<&str> = batch.activities.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        got_ids, ids,
        "the same elements become activities, in order"
    );
    let mut got_reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for q in &batch.quarantined {
        *got_reasons.entry(q.reason).or_default() += 1;
    }
    assert_eq!(got_reasons, reasons, "the same quarantine reasons");
    let want_request_id = match envelope.get("requestId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    assert_eq!(batch.request_id, want_request_id);
});
