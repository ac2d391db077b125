//! Reading a `_bulk` answer: HTTP 200 even when items failed (`"errors": true`), so every item
//! is read and classified. Only the fields needed are deserialized (`items[].<op>.status`,
//! `error.type`, `error.reason`); the sink asks for no more with `filter_path` (`FILTER_PATH`),
//! and a full answer (a proxy or version that ignores it) reads the same.
//!
//! | item answer | class |
//! |---|---|
//! | 2xx | `Created` |
//! | 409 (`version_conflict_engine_exception`: `create` of an `_id` already there) | `Duplicate`: delivered before |
//! | 429, 5xx, 408, `es_rejected_execution_exception`, `circuit_breaking_exception` | `Retry` |
//! | 401, 403 (`security_exception`, a missing `create_doc` privilege) | `Credentials` |
//! | 404, `index_not_found_exception`, `index_closed_exception`, `cluster_block_exception`, `invalid_index_name_exception`, a missing ingest pipeline | `Target`: the index or pipeline is wrong, not the document |
//! | any other 4xx (`mapper_parsing_exception`, `document_parsing_exception`, …) | `Refused`: this document will never go in as it is |

use serde::Deserialize;

/// The `filter_path` that keeps a `_bulk` answer to what `read` needs.
pub const FILTER_PATH: &str = "errors,items.*.status,items.*.error.type,items.*.error.reason";

#[derive(Debug, Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<Item>,
}

/// One item: `{"create": {...}}` (the op is always `create` here; others read the same).
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: Option<ItemResult>,
}

#[derive(Debug, Deserialize)]
struct ItemResult {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    error: Option<ItemError>,
}

#[derive(Debug, Default, Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// What one item's answer means for its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Created,
    Duplicate,
    Retry,
    Credentials,
    Target,
    Refused,
}

/// One document's outcome: its class, and for a failure the status and `type: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub class: Class,
    pub status: u16,
    /// `"mapper_parsing_exception: failed to parse field [x] …"`; empty on success.
    pub error: String,
}

/// The class of an item answered `status` with error `kind` and `reason`.
fn classify(status: u16, kind: &str, reason: &str) -> Class {
    match (status, kind) {
        (200..=299, _) => Class::Created,
        (409, _) => Class::Duplicate,
        (_, "es_rejected_execution_exception" | "circuit_breaking_exception") => Class::Retry,
        (401 | 403, _) | (_, "security_exception") => Class::Credentials,
        (
            _,
            "index_not_found_exception"
            | "index_closed_exception"
            | "cluster_block_exception"
            | "invalid_index_name_exception",
        ) => Class::Target,
        (404, _) => Class::Target,
        (_, "illegal_argument_exception") if reason.contains("pipeline with id") => Class::Target,
        (400..=499, _) if status != 408 && status != 429 => Class::Refused,
        _ => Class::Retry,
    }
}

/// The outcome of each of the `sent` documents, in request order (`_bulk` answers items in the
/// order of the actions). `Err`: the answer is not a `_bulk` answer for `sent` documents.
pub fn read(text: &str, sent: usize) -> Result<Vec<Outcome>, String> {
    let answer: BulkAnswer =
        serde_json::from_str(text).map_err(|e| format!("the _bulk answer does not read ({e})"))?;
    if answer.items.len() != sent {
        return Err(format!(
            "the _bulk answer holds {} items for {sent} documents",
            answer.items.len()
        ));
    }
    let mut failed = false;
    let outcomes: Vec<Outcome> = answer
        .items
        .into_iter()
        .map(|item| {
            let Some(result) = item.create else {
                failed = true;
                return Outcome {
                    class: Class::Retry,
                    status: 0,
                    error: "an item without a result".into(),
                };
            };
            let err = result.error.unwrap_or_default();
            let kind = err.kind.unwrap_or_default();
            let reason = err.reason.unwrap_or_default();
            let class = classify(result.status, &kind, &reason);
            failed |= !matches!(class, Class::Created);
            let error = match class {
                Class::Created => String::new(),
                _ if kind.is_empty() => format!("status {}", result.status),
                _ => format!("{kind}: {reason}"),
            };
            Outcome {
                class,
                status: result.status,
                error,
            }
        })
        .collect();
    if failed && !answer.errors {
        // Not what Elasticsearch does; trust the items, which are what is read.
        tracing::debug!("a _bulk answer with failed items said errors: false");
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_answer_with_errors_true_is_read_item_by_item() {
        let text = r#"{"took":30,"errors":true,"items":[
          {"create":{"_index":"a","_id":"1","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
          {"create":{"_index":"a","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict, document already exists (current version [1])","index_uuid":"x","shard":"0","index":"a"}}},
          {"create":{"_index":"a","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
          {"create":{"_index":"a","_id":"4","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [x] of type [long]","caused_by":{"type":"illegal_argument_exception","reason":"For input string"}}}},
          {"create":{"_index":"a","_id":"5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
          {"create":{"_index":"a","_id":"6","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [a]"}}},
          {"create":{"_index":"a","_id":"7","status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized"}}},
          {"create":{"_index":"a","_id":"8","status":400,"error":{"type":"illegal_argument_exception","reason":"pipeline with id [p] does not exist"}}},
          {"create":{"_index":"a","_id":"9","status":400,"error":{"type":"document_parsing_exception","reason":"[1:2] failed to parse"}}},
          {"create":{"_index":"a","_id":"10","status":500,"error":{"type":"circuit_breaking_exception","reason":"[parent] Data too large"}}}
        ]}"#;
        let got = read(text, 10).unwrap();
        let classes: Vec<Class> = got.iter().map(|o| o.class).collect();
        use Class::*;
        assert_eq!(
            classes,
            [
                Created,
                Duplicate,
                Retry,
                Refused,
                Retry,
                Target,
                Credentials,
                Target,
                Refused,
                Retry
            ]
        );
        assert_eq!(got[0].error, "");
        assert_eq!(got[3].status, 400);
        assert_eq!(
            got[3].error,
            "mapper_parsing_exception: failed to parse field [x] of type [long]"
        );
    }

    #[test]
    fn a_filtered_answer_reads_the_same() {
        let text = r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"r"}}}]}"#;
        let got = read(text, 2).unwrap();
        assert_eq!(got[0].class, Class::Created);
        assert_eq!(got[1].class, Class::Refused);
        assert_eq!(got[1].error, "mapper_parsing_exception: r");
        let ok = read(r#"{"errors":false,"items":[{"create":{"status":201}}]}"#, 1).unwrap();
        assert_eq!(ok[0].class, Class::Created);
    }

    #[test]
    fn answers_that_do_not_match_the_request_are_errors_not_successes() {
        assert!(
            read("<html>proxy</html>", 1)
                .unwrap_err()
                .contains("does not read")
        );
        let e = read(r#"{"errors":false,"items":[]}"#, 2).unwrap_err();
        assert!(e.contains("0 items for 2"), "{e}");
        // An item without a result, or without a status, is never counted as created.
        let odd = read(
            r#"{"errors":false,"items":[{"other":{}},{"create":{}}]}"#,
            2,
        )
        .unwrap();
        assert!(odd.iter().all(|o| o.class == Class::Retry), "{odd:?}");
        // A failed item under errors:false still counts as failed.
        let lie = read(
            r#"{"errors":false,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"r"}}}]}"#,
            1,
        )
        .unwrap();
        assert_eq!(lie[0].class, Class::Refused);
    }
}
