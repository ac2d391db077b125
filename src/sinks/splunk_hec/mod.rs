//! `splunk_hec` sink: Splunk's HTTP Event Collector, JSON event endpoint.
//!
//! `POST <url>/services/collector/event` with `Authorization: Splunk <token>`; the body is HEC
//! event objects back to back: `{"time":<createdAt, epoch s with ms>,"host","source",
//! "sourcetype","index","event":<the record in the sink's format; cef as a string>,
//! "fields":{"event_id","org_id","kind","type"}}` — `fields` are flat strings (HEC rejects
//! nested values there) and become indexed fields. Bodies are gzip-compressed by default and
//! split to stay under `batch_max_bytes` (HEC's `max_content_length`).
//!
//! Without indexer acknowledgement a 200 only means "accepted", not "indexed". With `ack = true`
//! (Splunk Enterprise; the token must have it enabled) every POST carries the sink's
//! `X-Splunk-Request-Channel`, each answer holds an `ackId`, and `deliver` polls
//! `POST <url>/services/collector/ack` (`{"acks":[ids]}` → `{"acks":{"id":true}}`) with growing
//! pauses until all are true — so dispatch commits the position only once Splunk indexed the
//! batch. Not acknowledged within `ack_timeout`: `Transient`, and the batch is sent again.
//!
//! Answers (HEC status codes): 401 (code 2 token required, 3 invalid authorization) and 403
//! (1 token disabled, 4 invalid token) → `SinkError::Unauthorized`; 503 (9 server busy, 18–20
//! unhealthy), 500, 429, 408 and network errors → `Transient` (honouring `Retry-After`); other
//! 400s (6 invalid data format, 7 incorrect index, 10/11 channel, 14 ack disabled, …) →
//! `Rejected` with HEC's text. Settings and their checks are in `config.rs`.

mod config;

pub use self::config::SplunkHecConfig;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::view::push_int;
use crate::format::{Facts, Format, push_json_str};
use crate::http::{self, Answer, StatusClass};
use crate::metrics::Metrics;
use crate::retry::{Backoff, Jitter};
use crate::values::resolve_secret;

pub struct SplunkHecSink {
    name: String,
    format: Format,
    client: reqwest::Client,
    event_url: reqwest::Url,
    ack_url: reqwest::Url,
    shown_url: String,
    headers: HeaderMap,
    compression: bool,
    ack: bool,
    ack_timeout: Duration,
    max_bytes: usize,
    /// The constant part of every event object: `"host":…,"source":…,"sourcetype":…,"index":…`.
    meta: Vec<u8>,
    /// Encoded event objects back to back; `ends[i]` ends object `i`.
    records: Vec<u8>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
    metrics: Arc<Metrics>,
}

/// What HEC answers (`text`, `code`, and `ackId` with acknowledgement on).
#[derive(Debug, Default, Deserialize)]
struct HecReply {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default, rename = "ackId")]
    ack_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct AckReply {
    acks: std::collections::HashMap<String, bool>,
}

impl SplunkHecSink {
    pub fn new(
        cfg: &SplunkHecConfig,
        name: &str,
        format: Format,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<SplunkHecSink> {
        let client = http::client(
            cfg.timeout,
            cfg.ca_file.as_deref(),
            "the Splunk HTTP client",
        )?;
        let base =
            reqwest::Url::parse(cfg.url.as_str().trim_end_matches('/')).context("parsing url")?;
        let join = |path: &str| {
            let mut u = base.clone();
            let p = format!("{}{path}", base.path().trim_end_matches('/'));
            u.set_path(&p);
            u
        };
        let token = resolve_secret(
            &cfg.token,
            &cfg.token_file,
            &format!("sinks.{name}.token_file"),
        )?
        .ok_or_else(|| anyhow::anyhow!("sink {name:?}: no token"))?;
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", token.expose_secret()))
            .map_err(|_| anyhow::anyhow!("sink {name:?}: the token is not a valid header value"))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, auth);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if cfg.ack {
            let channel = cfg
                .channel
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            headers.insert(
                "x-splunk-request-channel",
                HeaderValue::from_str(&channel).context("channel")?,
            );
        }
        let mut meta = Vec::new();
        meta.extend_from_slice(b"\"host\":");
        let host = cfg.host.clone().unwrap_or_else(super::syslog::host_name);
        push_json_str(&mut meta, &host);
        meta.extend_from_slice(b",\"source\":");
        push_json_str(&mut meta, &cfg.source);
        meta.extend_from_slice(b",\"sourcetype\":");
        push_json_str(&mut meta, &cfg.sourcetype);
        if let Some(index) = &cfg.index {
            meta.extend_from_slice(b",\"index\":");
            push_json_str(&mut meta, index);
        }
        Ok(SplunkHecSink {
            name: name.to_string(),
            format,
            client,
            event_url: join("/services/collector/event"),
            ack_url: join("/services/collector/ack"),
            shown_url: cfg.url.redacted(),
            headers,
            compression: cfg.compression,
            ack: cfg.ack,
            ack_timeout: cfg.ack_timeout,
            max_bytes: usize::try_from(cfg.batch_max_bytes).unwrap_or(usize::MAX),
            meta,
            records: Vec::with_capacity(256 * 1024),
            ends: Vec::new(),
            scratch: Vec::new(),
            metrics,
        })
    }

    /// One HEC event object per event into `records`.
    fn encode(&mut self, batch: &[Event]) {
        self.records.clear();
        self.ends.clear();
        for event in batch {
            let Facts { ty, time_ms, .. } = Facts::of(event);
            let out = &mut self.records;
            out.extend_from_slice(b"{\"time\":");
            push_int(out, time_ms.div_euclid(1000));
            out.push(b'.');
            let ms = time_ms.rem_euclid(1000);
            out.extend_from_slice(format!("{ms:03}").as_bytes());
            out.push(b',');
            out.extend_from_slice(&self.meta);
            out.extend_from_slice(b",\"event\":");
            if self.format.is_json() {
                self.format.encode(event, out);
            } else {
                self.scratch.clear();
                self.format.encode(event, &mut self.scratch);
                push_json_str(out, &String::from_utf8_lossy(&self.scratch));
            }
            out.extend_from_slice(b",\"fields\":{\"event_id\":");
            push_json_str(out, &event.event_id);
            out.extend_from_slice(b",\"org_id\":");
            push_json_str(out, &event.org_id);
            out.extend_from_slice(b",\"kind\":\"");
            out.extend_from_slice(event.kind.as_str().as_bytes());
            out.push(b'"');
            if !ty.is_empty() {
                out.extend_from_slice(b",\"type\":");
                push_json_str(out, &ty);
            }
            out.extend_from_slice(b"}}");
            self.ends.push(self.records.len());
        }
    }

    /// Bodies of consecutive records within `max_bytes` (an oversized record goes alone).
    fn bodies(&self) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        let mut start = 0;
        let mut from = 0usize;
        for (i, &end) in self.ends.iter().enumerate() {
            if i > from && end - start > self.max_bytes {
                let stop = self.ends[i - 1];
                bodies.push(self.records[start..stop].to_vec());
                start = stop;
                from = i;
            }
        }
        if start < self.records.len() {
            bodies.push(self.records[start..].to_vec());
        }
        bodies
    }

    /// POSTs one body; returns its ackId when acknowledgement is on.
    async fn post(&self, body: Vec<u8>) -> Result<Option<u64>, SinkError> {
        let target = format!("Splunk HEC {} (event)", self.shown_url);
        let answer = http::post(
            &self.client,
            self.event_url.clone(),
            self.headers.clone(),
            body,
            self.compression.then(flate2::Compression::default),
            &target,
        )
        .await?;
        let reply: HecReply = serde_json::from_str(&answer.text).unwrap_or_default();
        if answer.class() != StatusClass::Success {
            return Err(self.failure(&answer, &reply));
        }
        if self.ack && reply.ack_id.is_none() {
            return Err(SinkError::Rejected(format!(
                "Splunk HEC {}: ack = true but the answer carries no ackId ({}); enable indexer acknowledgement on the token or set ack = false",
                self.shown_url,
                http::excerpt(&answer.text, 200)
            )));
        }
        Ok(reply.ack_id)
    }

    /// A failed answer: HEC codes 1–4 blame the token whatever the status; otherwise the status
    /// class decides (`http::classify`).
    fn failure(&self, answer: &Answer, reply: &HecReply) -> SinkError {
        let what = match reply.code {
            Some(code) => format!("HEC code {code}: {}", reply.text),
            None => http::excerpt(&answer.text, 200),
        };
        let message = format!(
            "Splunk HEC {} answered {} ({what})",
            self.shown_url, answer.status
        );
        let class = match reply.code {
            Some(1..=4) => StatusClass::Unauthorized,
            _ => answer.class(),
        };
        http::sink_error(class, answer, message)
    }

    /// Polls `/services/collector/ack` until every id is acknowledged or `ack_timeout` passes.
    async fn wait_for_acks(&self, mut pending: Vec<u64>, sent: Instant) -> Result<(), SinkError> {
        let deadline = sent + self.ack_timeout;
        // A quick, fixed ladder: indexing usually lands within a second.
        let ladder = Backoff::new(
            Duration::from_millis(50),
            Duration::from_secs(2),
            Jitter::None,
        );
        let mut attempt = 0;
        loop {
            let pause = ladder.delay(attempt);
            attempt = attempt.saturating_add(1);
            let body = serde_json::json!({ "acks": pending }).to_string();
            let target = format!("Splunk HEC {} (ack)", self.shown_url);
            let answer = http::post(
                &self.client,
                self.ack_url.clone(),
                self.headers.clone(),
                body.into_bytes(),
                None,
                &target,
            )
            .await?;
            if answer.class() != StatusClass::Success {
                let reply: HecReply = serde_json::from_str(&answer.text).unwrap_or_default();
                return Err(self.failure(&answer, &reply));
            }
            let acks: AckReply = serde_json::from_str(&answer.text).map_err(|e| {
                SinkError::transient(format!(
                    "Splunk HEC {}: unreadable ack answer ({e}): {}",
                    self.shown_url,
                    http::excerpt(&answer.text, 200)
                ))
            })?;
            pending.retain(|id| !acks.acks.get(&id.to_string()).copied().unwrap_or(false));
            if pending.is_empty() {
                self.metrics
                    .sink_ack_latency
                    .with_label_values(&[&self.name])
                    .observe(sent.elapsed().as_secs_f64());
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err(SinkError::transient(format!(
                    "Splunk HEC {}: {} request(s) not acknowledged as indexed within {:?}; the batch will be sent again",
                    self.shown_url,
                    pending.len(),
                    self.ack_timeout
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

#[async_trait]
impl Sink for SplunkHecSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.encode(batch);
        let sent = Instant::now();
        let mut ack_ids = Vec::new();
        for body in self.bodies() {
            if let Some(id) = self.post(body).await? {
                ack_ids.push(id);
            }
        }
        if self.ack {
            self.wait_for_acks(ack_ids, sent).await?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SplunkHecSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplunkHecSink")
            .field("name", &self.name)
            .field("url", &self.shown_url)
            .field("ack", &self.ack)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg: SplunkHecConfig = serde_json::from_value(serde_json::json!({
            "url": "https://splunk.example:8088", "token": "hec-token-1234",
        }))
        .unwrap();
        assert!(!format!("{cfg:?}").contains("hec-token-1234"));
        let sink = SplunkHecSink::new(&cfg, "s", Format::Json, Arc::new(Metrics::new())).unwrap();
        assert!(!format!("{sink:?}").contains("hec-token-1234"));
    }
}
