//! `webhook` sink: POSTs batches to an HTTP endpoint in the sink's format — a JSON array per
//! request, or NDJSON lines — optionally gzip-compressed and signed per Standard Webhooks
//! (`signing.rs`; the signature covers the exact bytes sent, i.e. the gzip stream when
//! compression is on). Settings and their checks are in `config.rs`.
//!
//! Dispatch hands over at most `batch_max_events` events; `deliver` splits them further so no
//! body exceeds `batch_max_bytes` (an event larger than that goes alone) and POSTs the parts in
//! order. Each POST's `webhook-id` is derived from the sink name and the event ids it carries, so
//! a retried batch reuses its ids and receivers can deduplicate. If a later POST fails, the error
//! is returned and dispatch sends the whole batch again: at-least-once.
//!
//! Answers are classified by `http::classify`, the same for every HTTP sink: 2xx = delivered;
//! 408, 429, 5xx, redirects (never followed: a POST must not turn into a GET), timeouts and
//! connection errors = `SinkError::Transient` (with `Retry-After`, capped at an hour); other
//! statuses that blame the batch (400, 413, 422, …) = `SinkError::Rejected` with the status and
//! a body excerpt — or, with `dead_letter_path`, the batch is appended there, an ERROR is logged
//! and the sink moves on. 401/403/407 (`Unauthorized`) and 404/405 (`Rejected`) blame the
//! credentials or the URL, not the batch, and are never dead-lettered, so a revoked token cannot
//! empty the backlog into the dead-letter file.
//! Dispatch logs and counts the errors it gets back; a dead-lettered batch looks delivered to
//! dispatch, so this sink logs it itself, at ERROR.

pub mod config;
pub mod signing;

use std::ops::Range;

use anyhow::Context;
use async_trait::async_trait;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

pub use self::config::{BatchMode, Compression, WebhookConfig};
use self::signing::Signer;
use super::dead_letter::{DeadLetter, Refused};
use super::records::{Framing, Records};
use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::{Format, push_json_str};
use crate::http::{self, StatusClass};
use crate::metrics::Metrics;
use crate::values::{read_secret_file, resolve_secret};

/// Characters of a rejecting response body quoted in errors and logs.
const EXCERPT_CHARS: usize = 200;

pub struct WebhookSink {
    name: String,
    format: Format,
    mode: BatchMode,
    compression: Compression,
    max_bytes: usize,
    client: reqwest::Client,
    url: reqwest::Url,
    /// `url` without user info and query, for messages.
    shown_url: String,
    headers: HeaderMap,
    signer: Option<Signer>,
    dead_letter: Option<DeadLetter>,
    /// The batch's records as they go into a body.
    records: Records,
    scratch: Vec<u8>,
}

impl WebhookSink {
    /// Builds the HTTP client (TLS verification on; `ca_file` added to the roots) and resolves
    /// the secrets (files are read now, so a bad path fails at startup).
    pub fn new(
        cfg: &WebhookConfig,
        name: &str,
        format: Format,
        metrics: &Metrics,
    ) -> anyhow::Result<WebhookSink> {
        let client = http::client(
            cfg.timeout,
            cfg.ca_file.as_deref(),
            "the webhook HTTP client",
        )?;
        let url = reqwest::Url::parse(cfg.url.as_str()).context("parsing url")?;

        let mut headers = cfg.headers.to_map()?;
        let content_type = match (cfg.batch_mode, format.is_json()) {
            (BatchMode::Array, _) => "application/json",
            (BatchMode::Ndjson, true) => "application/x-ndjson",
            (BatchMode::Ndjson, false) => "text/plain; charset=utf-8",
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if cfg.compression == Compression::Gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(auth) = authorization(cfg, name)? {
            headers.insert(header::AUTHORIZATION, auth);
        }

        let secrets = match &cfg.signing_secret_file {
            Some(path) => {
                let key = format!("sinks.{name}.signing_secret_file");
                read_secret_file(path, &key)?
                    .expose_secret()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(SecretString::from)
                    .collect()
            }
            None => cfg.signing_secret.clone(),
        };
        let signer = if secrets.is_empty() {
            None
        } else {
            Some(Signer::new(&secrets).map_err(|e| anyhow::anyhow!("sink {name:?}: {e}"))?)
        };

        Ok(WebhookSink {
            name: name.to_string(),
            format,
            mode: cfg.batch_mode,
            compression: cfg.compression,
            max_bytes: usize::try_from(cfg.batch_max_bytes).unwrap_or(usize::MAX),
            client,
            shown_url: cfg.url.redacted(),
            url,
            headers,
            signer,
            dead_letter: cfg
                .dead_letter_path
                .as_deref()
                .map(|path| DeadLetter::open(path, name, format, metrics))
                .transpose()?,
            records: Records::with_capacity(256 * 1024),
            scratch: Vec::new(),
        })
    }

    /// Encodes every event into `records` in its body form (a JSON string for a text format
    /// in array mode).
    fn encode(&mut self, batch: &[Event]) {
        self.records.clear();
        let quote = self.mode == BatchMode::Array && !self.format.is_json();
        for event in batch {
            if quote {
                self.scratch.clear();
                self.format.encode(event, &mut self.scratch);
                push_json_str(self.records.buf(), &String::from_utf8_lossy(&self.scratch));
            } else {
                self.format.encode(event, self.records.buf());
            }
            self.records.end();
        }
    }

    fn framing(&self) -> Framing {
        match self.mode {
            BatchMode::Array => Framing::JSON_ARRAY,
            BatchMode::Ndjson => Framing::NDJSON,
        }
    }

    /// Consecutive index ranges whose bodies stay within `max_bytes` (a single oversized
    /// record forms its own range).
    fn chunks(&self) -> Vec<Range<usize>> {
        self.records.chunks(self.max_bytes, self.framing())
    }

    fn body(&self, range: Range<usize>) -> Vec<u8> {
        match self.mode {
            BatchMode::Array => self.records.json_array(range),
            BatchMode::Ndjson => self.records.ndjson(range),
        }
    }

    /// POSTs one part of the batch.
    async fn post(&self, events: &[Event], body: Vec<u8>) -> Result<(), SinkError> {
        let mut headers = self.headers.clone();
        let gzip = self.compression == Compression::Gzip;
        let body = if gzip {
            // Signed bytes are the bytes sent: compress first, then sign.
            tokio::task::spawn_blocking(move || http::gzip(&body, flate2::Compression::default()))
                .await
                .map_err(|e| SinkError::transient(format!("gzip task failed: {e}")))?
        } else {
            body
        };
        if let Some(signer) = &self.signer {
            let id = signing::webhook_id(&self.name, events);
            let ts = chrono::Utc::now().timestamp();
            let signature = signer.sign(&id, ts, &body);
            for (name, value) in [
                ("webhook-id", id),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", signature),
            ] {
                let value = HeaderValue::from_str(&value)
                    .map_err(|e| SinkError::Fatal(format!("{name} header: {e}")))?;
                headers.insert(name, value);
            }
        }
        let target = format!("POST {}", self.shown_url);
        let answer =
            http::post(&self.client, self.url.clone(), headers, body, None, &target).await?;
        let class = answer.class();
        if class == StatusClass::Success {
            return Ok(());
        }
        let text = http::excerpt(&answer.text, EXCERPT_CHARS);
        let message = format!("{target} answered {}: {text}", answer.status);
        match (class, &self.dead_letter) {
            (StatusClass::Batch, Some(dead)) => {
                let reason = format!("{} answered {}: {text}", self.shown_url, answer.status);
                let refused: Vec<Refused<'_>> = events
                    .iter()
                    .map(|event| Refused {
                        event,
                        reason: &reason,
                    })
                    .collect();
                dead.write(&refused, "rejected").await
            }
            _ => Err(http::sink_error(class, &answer, message)),
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.encode(batch);
        for range in self.chunks() {
            let body = self.body(range.clone());
            self.post(&batch[range], body).await?;
        }
        Ok(())
    }
}

/// `Authorization` from bearer or basic settings (secrets read from their files now).
fn authorization(cfg: &WebhookConfig, name: &str) -> anyhow::Result<Option<HeaderValue>> {
    let file_key = |key: &str| format!("sinks.{name}.{key}_file");
    let token = resolve_secret(
        &cfg.bearer_token,
        &cfg.bearer_token_file,
        &file_key("bearer_token"),
    )?;
    let value = match (token, &cfg.basic_auth_user) {
        (Some(token), _) => http::authorization(&format!("Bearer {}", token.expose_secret())),
        (None, Some(user)) => {
            let password = resolve_secret(
                &cfg.basic_auth_password,
                &cfg.basic_auth_password_file,
                &file_key("basic_auth_password"),
            )?
            .unwrap_or_else(|| SecretString::from(""));
            http::basic_auth(user, &password)
        }
        (None, None) => return Ok(None),
    };
    value
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("sink {name:?}: the credential is not a valid header value"))
}

/// Appends `bytes` to `path` (created 0640 with its directory) and syncs it.
#[cfg(test)]
mod tests {
    use super::*;

    fn sink(max_bytes: u64, mode: BatchMode) -> WebhookSink {
        let cfg: WebhookConfig = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:9/x",
            "batch_max_bytes": max_bytes,
            "batch_mode": if mode == BatchMode::Array { "array" } else { "ndjson" },
        }))
        .unwrap();
        WebhookSink::new(&cfg, "t", Format::Raw, &Metrics::new()).unwrap()
    }

    fn events(sizes: &[usize]) -> Vec<Event> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Event {
                seq: i as i64,
                event_id: format!("e{i}"),
                kind: crate::event::EventKind::Activity,
                org_id: "o".into(),
                occurred_at: String::new(),
                observed_at: String::new(),
                // `"xxx"`: n bytes in all
                payload: format!("\"{}\"", "x".repeat(n - 2)),
            })
            .collect()
    }

    #[test]
    fn bodies_stay_within_max_bytes_and_big_events_go_alone() {
        for mode in [BatchMode::Array, BatchMode::Ndjson] {
            let mut s = sink(100, mode);
            let batch = events(&[30, 30, 30, 500, 10, 60, 60]);
            s.encode(&batch);
            let chunks = s.chunks();
            assert_eq!(chunks, vec![0..3, 3..4, 4..6, 6..7], "{mode:?}");
            for c in chunks {
                let body = s.body(c.clone());
                assert!(
                    body.len() <= 100 || c.len() == 1,
                    "{mode:?} {c:?}: {}",
                    body.len()
                );
                if mode == BatchMode::Array {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(v.as_array().unwrap().len(), c.len());
                } else {
                    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), c.len());
                }
            }
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg: WebhookConfig = serde_json::from_value(serde_json::json!({
            "url": "https://user:pw@siem.example/in?token=abc",
            "headers": {"X-Api-Key": "hunter2"},
            "bearer_token": "tok-secret",
            "signing_secret": ["whsec_c2Vjb25k"],
        }))
        .unwrap();
        let text = format!("{cfg:?}");
        for secret in ["hunter2", "tok-secret", "c2Vjb25k", "abc", "pw@"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("x-api-key") || text.contains("X-Api-Key"));
    }
}
