//! `elasticsearch` sink: Elasticsearch and OpenSearch `_bulk`, ECS documents by default.
//!
//! `POST <url>/_bulk?filter_path=…[&pipeline=…]` with `Content-Type: application/x-ndjson`
//! (gzip by default): per event an action line `{"create":{"_index":<index for the event's
//! day>,"_id":<event_id>}}` and the record (`cef` lines travel as `{"@timestamp","message"}`).
//! `create` with `_id` = `event_id` makes delivery idempotent: a redelivered document is
//! answered 409 `version_conflict_engine_exception`, which counts as delivered, never as a
//! duplicate document. Bodies are split to stay under `batch_max_bytes`.
//!
//! A `_bulk` answer is HTTP 200 even when items failed (`"errors": true`), so every item is
//! read (`bulk.rs` classifies them). After all parts of the batch are sent:
//! - any item refusing the credentials → `Unauthorized`; the index or pipeline wrong (404,
//!   `index_not_found_exception`, closed or blocked index) → `Rejected` (never dead-lettered:
//!   the documents are not to blame);
//! - any retryable item (429 `es_rejected_execution_exception`, 5xx) → `Transient`, nothing
//!   dead-lettered yet: the sink never retries itself, dispatch sends the batch again, and the
//!   documents already in come back 409 (delivered) while the rest get another chance;
//! - only then documents refused for good (400 `mapper_parsing_exception` …) are written to
//!   `dead_letter_path` with the cluster's reason and the batch counts as delivered — so a
//!   document is dead-lettered once, in the one delivery whose other items all went in —
//!   or, without `dead_letter_path`, `Rejected` naming the first one (batch kept).
//!
//! Whole answers: 401/403 `Unauthorized` (with Elasticsearch's `security_exception` reason),
//! 413 `Rejected` saying to lower `batch_max_bytes` (a lone document too big for the cluster
//! is dead-lettered when `dead_letter_path` is set), 429/5xx/transport errors `Transient` with
//! `Retry-After`. With `urls`, a request that cannot reach a node goes to the next one.

mod bulk;
mod config;
mod index;

pub use self::config::ElasticsearchConfig;

use std::ops::Range;

use anyhow::Context;
use async_trait::async_trait;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;

use self::bulk::Class;
use self::index::IndexName;
use super::dead_letter::{DeadLetter, Refused};
use super::records::{Framing, Records};
use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::time::{first_time_ms, push_rfc3339_ms};
use crate::format::{Format, push_json_str};
use crate::http::{self, Answer, StatusClass};
use crate::metrics::Metrics;
use crate::values::resolve_secret;

/// Characters of an answer quoted in errors.
const EXCERPT_CHARS: usize = 300;
/// A `_bulk` answer may hold this much per document beyond `ANSWER_MAX_BYTES` (a filtered item
/// is ~25 bytes; one with an error type and reason a few hundred).
const ANSWER_BYTES_PER_DOC: usize = 4096;

/// One node: the `_bulk` URL with its query, and how it is shown.
struct Node {
    bulk: reqwest::Url,
    shown: String,
}

pub struct ElasticsearchSink {
    format: Format,
    client: reqwest::Client,
    nodes: Vec<Node>,
    /// The node that answered last; requests start there.
    current: usize,
    headers: HeaderMap,
    gzip: bool,
    max_bytes: usize,
    index: IndexName,
    dead_letter: Option<DeadLetter>,
    /// Event `i`'s action and source lines are record `i`.
    records: Records,
    scratch: Vec<u8>,
}

/// A whole-request error body: `{"error":{"type","reason"},"status"}` (or a bare string).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl ElasticsearchSink {
    /// Builds the client (TLS verified; `ca_file` added) and reads the secret files now, so a
    /// bad path fails at startup.
    pub fn new(
        cfg: &ElasticsearchConfig,
        name: &str,
        format: Format,
        metrics: &Metrics,
    ) -> anyhow::Result<ElasticsearchSink> {
        let client = http::client(
            cfg.timeout,
            cfg.ca_file.as_deref(),
            "the Elasticsearch HTTP client",
        )?;
        let mut nodes = Vec::new();
        for (key, url) in cfg.all_urls() {
            let base = reqwest::Url::parse(url.as_str().trim_end_matches('/'))
                .with_context(|| format!("parsing {key}"))?;
            let mut bulk = base.clone();
            bulk.set_path(&format!("{}/_bulk", base.path().trim_end_matches('/')));
            {
                let mut q = bulk.query_pairs_mut();
                q.append_pair("filter_path", bulk::FILTER_PATH);
                if let Some(p) = &cfg.pipeline {
                    q.append_pair("pipeline", p);
                }
            }
            nodes.push(Node {
                bulk,
                shown: url.redacted(),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        if cfg.compression {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(auth) = authorization(cfg, name)? {
            headers.insert(header::AUTHORIZATION, auth);
        }
        Ok(ElasticsearchSink {
            format,
            client,
            nodes,
            current: 0,
            headers,
            gzip: cfg.compression,
            max_bytes: usize::try_from(cfg.batch_max_bytes).unwrap_or(usize::MAX),
            index: IndexName::new(&cfg.index),
            dead_letter: cfg
                .dead_letter_path
                .as_deref()
                .map(|path| DeadLetter::open(path, name, format, metrics))
                .transpose()?,
            records: Records::with_capacity(256 * 1024),
            scratch: Vec::new(),
        })
    }

    /// The action and source lines of every event into `records`.
    fn encode(&mut self, batch: &[Event]) {
        self.records.clear();
        for event in batch {
            let time_ms =
                first_time_ms(&[Some(event.occurred_at.as_str()), Some(&event.observed_at)]);
            let out = self.records.buf();
            out.extend_from_slice(b"{\"create\":{\"_index\":");
            push_json_str(out, self.index.for_time(time_ms));
            out.extend_from_slice(b",\"_id\":");
            push_json_str(out, &event.event_id);
            out.extend_from_slice(b"}}\n");
            if self.format.is_json() {
                self.format.encode(event, out);
            } else {
                self.scratch.clear();
                self.format.encode(event, &mut self.scratch);
                out.extend_from_slice(b"{\"@timestamp\":\"");
                push_rfc3339_ms(out, time_ms);
                out.extend_from_slice(b"\",\"message\":");
                push_json_str(out, &String::from_utf8_lossy(&self.scratch));
                out.push(b'}');
            }
            out.push(b'\n');
            self.records.end();
        }
    }

    /// Consecutive event ranges whose bodies stay within `max_bytes` (an oversized pair goes
    /// alone).
    fn chunks(&self) -> Vec<Range<usize>> {
        self.records.chunks(self.max_bytes, Framing::CONCATENATED)
    }

    /// POSTs one body, starting at the node that answered last and going on to the next one
    /// while a node cannot be reached. Returns the answer and the node's shown URL.
    async fn send(&mut self, body: Vec<u8>, docs: usize) -> Result<(Answer, String), SinkError> {
        let body = if self.gzip {
            tokio::task::spawn_blocking(move || http::gzip(&body, flate2::Compression::fast()))
                .await
                .map_err(|e| SinkError::transient(format!("gzip task failed: {e}")))?
        } else {
            body
        };
        let answer_max = http::ANSWER_MAX_BYTES + docs.saturating_mul(ANSWER_BYTES_PER_DOC);
        let n = self.nodes.len();
        let mut failures = Vec::new();
        let mut body = Some(body);
        for step in 0..n {
            let at = (self.current + step) % n;
            let node = &self.nodes[at];
            let target = format!("Elasticsearch {}", node.shown);
            // The last node takes the body itself; the others a copy (kept for the next).
            let body = if step + 1 == n {
                body.take().unwrap_or_default()
            } else {
                body.clone().unwrap_or_default()
            };
            match http::post_reading(
                &self.client,
                node.bulk.clone(),
                self.headers.clone(),
                body,
                None,
                &target,
                answer_max,
            )
            .await
            {
                Ok(answer) => {
                    self.current = at;
                    return Ok((answer, node.shown.clone()));
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(SinkError::transient(failures.join("; ")))
    }

    /// A failed whole answer as a `SinkError` (`None`: a lone document the cluster finds too
    /// big, to dead-letter).
    fn failure(&self, answer: &Answer, shown: &str, docs: usize) -> Option<SinkError> {
        let what = error_text(&answer.text);
        let mut message = format!("Elasticsearch {shown} answered {}", answer.status);
        if !what.is_empty() {
            message.push_str(&format!(" ({what})"));
        }
        if answer.status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
            if docs == 1 && self.dead_letter.is_some() {
                return None;
            }
            return Some(SinkError::Rejected(format!(
                "{message}: the request is larger than the cluster's http.max_content_length; \
                 lower batch_max_bytes (now {} bytes)",
                self.max_bytes
            )));
        }
        Some(http::sink_error(answer.class(), answer, message))
    }
}

#[async_trait]
impl Sink for ElasticsearchSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.encode(batch);
        // (event index, why) of documents refused for good, written or reported at the end.
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut duplicates = 0usize;
        for range in self.chunks() {
            let body = self.records.span(range.clone()).to_vec();
            let (answer, shown) = self.send(body, range.len()).await?;
            if answer.class() != StatusClass::Success {
                match self.failure(&answer, &shown, range.len()) {
                    Some(e) => return Err(e),
                    None => {
                        let why = format!("{shown} answered {}", answer.status);
                        refused.push((range.start, why));
                        continue;
                    }
                }
            }
            let outcomes = bulk::read(&answer.text, range.len()).map_err(|e| {
                SinkError::transient(format!(
                    "Elasticsearch {shown}: {e}: {}",
                    http::excerpt(&answer.text, EXCERPT_CHARS)
                ))
            })?;
            let first = |class: Class| {
                outcomes
                    .iter()
                    .enumerate()
                    .find(|(_, o)| o.class == class)
                    .map(|(i, o)| (&batch[range.start + i].event_id, o))
            };
            let count = |class: Class| outcomes.iter().filter(|o| o.class == class).count();
            if let Some((id, o)) = first(Class::Credentials) {
                return Err(SinkError::Unauthorized(format!(
                    "Elasticsearch {shown} refused {} documents with {} (first: event {id}: {}); \
                     the credential needs the create_doc privilege on the index",
                    count(Class::Credentials),
                    o.status,
                    o.error
                )));
            }
            if let Some((id, o)) = first(Class::Target) {
                return Err(SinkError::Rejected(format!(
                    "Elasticsearch {shown} cannot write {} documents to their index or pipeline \
                     (first: event {id}: {} {}); fix index/pipeline or the cluster",
                    count(Class::Target),
                    o.status,
                    o.error
                )));
            }
            if let Some((id, o)) = first(Class::Retry) {
                return Err(SinkError::Transient {
                    message: format!(
                        "Elasticsearch {shown}: {} of {} documents not indexed yet, to be sent \
                         again (first: event {id}: {} {})",
                        count(Class::Retry),
                        range.len(),
                        o.status,
                        o.error
                    ),
                    retry_after: answer.retry_after,
                });
            }
            duplicates += count(Class::Duplicate);
            for (i, o) in outcomes.iter().enumerate() {
                if o.class == Class::Refused {
                    refused.push((range.start + i, format!("{} {}", o.status, o.error)));
                }
            }
        }
        if duplicates > 0 {
            tracing::debug!(
                duplicates,
                "documents already indexed (409 on create): delivered before"
            );
        }
        if refused.is_empty() {
            return Ok(());
        }
        match &self.dead_letter {
            Some(dead) => {
                let list: Vec<Refused<'_>> = refused
                    .iter()
                    .map(|(i, why)| Refused {
                        event: &batch[*i],
                        reason: why,
                    })
                    .collect();
                dead.write(&list, "item_rejected").await
            }
            None => {
                let (i, why) = &refused[0];
                Err(SinkError::Rejected(format!(
                    "Elasticsearch refused {} of {} documents for good (first: event {}: {why}); \
                     the batch is kept: fix the mapping or set dead_letter_path",
                    refused.len(),
                    batch.len(),
                    batch[*i].event_id
                )))
            }
        }
    }
}

/// `type: reason` of an Elasticsearch error body, else an excerpt of it.
fn error_text(text: &str) -> String {
    let body: ErrorBody = serde_json::from_str(text).unwrap_or_default();
    match body.error {
        Some(serde_json::Value::Object(e)) => {
            let s = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            http::excerpt(&format!("{}: {}", s("type"), s("reason")), EXCERPT_CHARS)
        }
        Some(serde_json::Value::String(s)) => http::excerpt(&s, EXCERPT_CHARS),
        _ => http::excerpt(text, EXCERPT_CHARS),
    }
}

/// `Authorization` from the API key, basic or bearer settings (secret files read now).
fn authorization(cfg: &ElasticsearchConfig, name: &str) -> anyhow::Result<Option<HeaderValue>> {
    use base64::Engine;
    let file_key = |key: &str| format!("sinks.{name}.{key}_file");
    let api_key = resolve_secret(&cfg.api_key, &cfg.api_key_file, &file_key("api_key"))?;
    let token = resolve_secret(
        &cfg.bearer_token,
        &cfg.bearer_token_file,
        &file_key("bearer_token"),
    )?;
    let value = match (api_key, token, &cfg.username) {
        (Some(key), _, _) => {
            let key = key.expose_secret().trim();
            // `id:api_key` is encoded here; the `encoded` form is sent as given.
            let encoded = if key.contains(':') {
                base64::engine::general_purpose::STANDARD.encode(key)
            } else {
                key.to_string()
            };
            http::authorization(&format!("ApiKey {encoded}"))
        }
        (None, Some(token), _) => {
            http::authorization(&format!("Bearer {}", token.expose_secret().trim()))
        }
        (None, None, Some(user)) => {
            let password =
                resolve_secret(&cfg.password, &cfg.password_file, &file_key("password"))?
                    .unwrap_or_else(|| secrecy::SecretString::from(""));
            http::basic_auth(user, &password)
        }
        (None, None, None) => return Ok(None),
    };
    value
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("sink {name:?}: the credential is not a valid header value"))
}

impl std::fmt::Debug for ElasticsearchSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.nodes.iter().map(|n| n.shown.as_str()).collect();
        f.debug_struct("ElasticsearchSink")
            .field("urls", &urls)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
