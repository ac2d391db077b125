//! The records of one batch as the Logs Ingestion API takes them: each event in the sink's
//! format with `TimeGenerated` (the event's time from `format::Facts`, RFC 3339 with ms) put
//! first — a record that is not a JSON object (`cef`, a `raw` payload that is no object) becomes
//! `{"TimeGenerated":…,"RawData":…}` — and their split into JSON-array bodies of at most
//! `MAX_BODY_BYTES`, with the records too big for any call set apart.

use std::ops::Range;

use crate::event::Event;
use crate::format::time::push_rfc3339_ms;
use crate::format::{Facts, Format, push_json_str};
use crate::sinks::records::{Framing, Records as Buffer};

/// Largest body of one call, before compression (the API's limit is 1 MB per call).
pub const MAX_BODY_BYTES: usize = 1_000_000;

/// A batch's records (`sinks::records`), reused from batch to batch.
#[derive(Default)]
pub struct Records {
    records: Buffer,
    scratch: Vec<u8>,
}

impl Records {
    /// One record per event of `batch` in `format`, `TimeGenerated` first.
    pub fn encode(&mut self, format: Format, batch: &[Event]) {
        self.records.clear();
        for event in batch {
            self.scratch.clear();
            format.encode(event, &mut self.scratch);
            let out = self.records.buf();
            out.extend_from_slice(b"{\"TimeGenerated\":\"");
            push_rfc3339_ms(out, Facts::of(event).time_ms);
            out.push(b'"');
            let text = &self.scratch[..];
            let trimmed = text.trim_ascii();
            match trimmed.strip_prefix(b"{") {
                Some(rest) if format.is_json() && trimmed.ends_with(b"}") => {
                    if !rest.trim_ascii_start().starts_with(b"}") {
                        out.push(b',');
                    }
                    out.extend_from_slice(rest);
                }
                _ => {
                    out.extend_from_slice(b",\"RawData\":");
                    if format.is_json()
                        && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok()
                    {
                        out.extend_from_slice(trimmed);
                    } else {
                        push_json_str(out, &String::from_utf8_lossy(text));
                    }
                    out.push(b'}');
                }
            }
            self.records.end();
        }
    }

    /// Record `i` of the last `encode`.
    pub fn record(&self, i: usize) -> &[u8] {
        self.records.record(i)
    }

    /// Consecutive ranges of the records that fit in one array body of `MAX_BODY_BYTES`, and
    /// the records too big to go at all.
    pub fn chunks(&self) -> (Vec<Range<usize>>, Vec<usize>) {
        let (mut chunks, mut oversized) = (Vec::new(), Vec::new());
        for range in self.records.chunks(MAX_BODY_BYTES, Framing::JSON_ARRAY) {
            if self.records.body_len(range.clone(), Framing::JSON_ARRAY) > MAX_BODY_BYTES {
                oversized.push(range.start); // a lone record
            } else {
                chunks.push(range);
            }
        }
        (chunks, oversized)
    }

    /// The JSON array of the records in `range`.
    pub fn body(&self, range: Range<usize>) -> Vec<u8> {
        self.records.json_array(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: String) -> Event {
        Event {
            seq: 1,
            event_id: "activity:o:1".into(),
            kind: crate::event::EventKind::Activity,
            org_id: "o".into(),
            occurred_at: "2025-03-04T10:15:30Z".into(),
            observed_at: "2025-03-04T10:15:31Z".into(),
            payload,
        }
    }

    #[test]
    fn every_record_is_an_object_with_time_generated_first() {
        let payload = r#"{"id":"1","createdAt":"2025-03-04T10:15:30.250Z","type":"key_create"}"#;
        let mut r = Records::default();
        for format in Format::ALL.iter().copied() {
            r.encode(format, &[event(payload.into()), event("[1,2]".into())]);
            for (i, want) in ["2025-03-04T10:15:30.250Z", "2025-03-04T10:15:30.000Z"]
                .into_iter()
                .enumerate()
            {
                let record = r.record(i);
                assert!(record.starts_with(b"{\"TimeGenerated\":"), "{format:?}");
                let v: serde_json::Value = serde_json::from_slice(record).unwrap();
                assert_eq!(v["TimeGenerated"], want, "{format:?}");
            }
        }
        r.encode(Format::Cef, &[event(payload.into())]);
        let v: serde_json::Value = serde_json::from_slice(r.record(0)).unwrap();
        assert!(v["RawData"].as_str().unwrap().starts_with("CEF:0|"));
        r.encode(Format::Raw, &[event("[1,2]".into()), event("{}".into())]);
        let v: serde_json::Value = serde_json::from_slice(r.record(0)).unwrap();
        assert_eq!(v["RawData"], serde_json::json!([1, 2]));
        let v: serde_json::Value = serde_json::from_slice(r.record(1)).unwrap();
        assert_eq!(
            v.as_object().unwrap().len(),
            1,
            "{{}} gains TimeGenerated only"
        );
    }

    #[test]
    fn bodies_stay_under_one_megabyte_and_oversized_records_are_set_apart() {
        let mut r = Records::default();
        let big = |n: usize| event(format!("{{\"x\":\"{}\"}}", "a".repeat(n)));
        let batch = vec![
            big(400_000),
            big(400_000),
            big(400_000),
            big(1_100_000),
            big(10),
        ];
        r.encode(Format::Raw, &batch);
        let (chunks, oversized) = r.chunks();
        assert_eq!(chunks, vec![0..2, 2..3, 4..5]);
        assert_eq!(oversized, vec![3]);
        for c in chunks {
            let body = r.body(c.clone());
            assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v.as_array().unwrap().len(), c.len());
        }
    }
}
