//! `azure_logs_ingestion` sink: Microsoft Sentinel / Azure Monitor Logs through the Logs
//! Ingestion API (the HTTP Data Collector API it replaces is retired).
//!
//! `POST {endpoint}/dataCollectionRules/{dcr_immutable_id}/streams/{stream_name}?api-version=…`
//! with `Authorization: Bearer <Entra token>` (`token.rs`: client credentials or a managed
//! identity, cached, refreshed ahead of expiry), `Content-Type: application/json`, gzip by
//! default; the body is a JSON array of records (`records.rs`): the event in the sink's
//! `format` with a `TimeGenerated` member put first, because Log Analytics custom tables need
//! that column (a record that is no JSON object becomes `{"TimeGenerated":…,"RawData":…}`).
//!
//! The API takes at most 1 MB per call: batches are split so no body exceeds 1,000,000 bytes
//! before compression. A single record over that can never be sent: the batch is `Rejected`
//! naming it before anything is sent — or, with `dead_letter_path`, that record is written
//! there and the rest is sent.
//!
//! Answers: 204 (any 2xx) = delivered. 401/403 with a cached token: the token is dropped and
//! the same call is made once more with a fresh one inside this `deliver` — re-authentication,
//! not a batch retry (a token revoked or expired early must not cost a backoff); refused again
//! (or refused with a fresh token) → `Unauthorized` (403: the identity lacks "Monitoring
//! Metrics Publisher" on the DCR). 429 and 5xx → `Transient` honouring `Retry-After`; 413 →
//! `Rejected` (the split keeps bodies under the limit, so something in between grew them);
//! 404 → `Rejected` (endpoint, DCR or stream wrong); 400 → `Rejected` naming Azure's error
//! code — dead-lettered with `dead_letter_path` only when the code blames the payload, so a
//! wrong stream name cannot empty the backlog into the file. Calls already accepted when a
//! later one fails are sent again with the batch: at-least-once (deduplicate on `event_id`).

mod config;
mod records;
mod token;

pub use self::config::{AzureLogsIngestionConfig, IMDS_TOKEN_URL};

use anyhow::Context;
use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;

use self::records::{MAX_BODY_BYTES, Records};
use self::token::{Grant, Tokens};
use super::dead_letter::{DeadLetter, Refused};
use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::Format;
use crate::http::{self, Answer, StatusClass};
use crate::metrics::Metrics;
use crate::values::resolve_secret;

/// `api-version` of the IMDS token request.
const IMDS_API_VERSION: &str = "2018-02-01";

pub struct AzureLogsIngestionSink {
    format: Format,
    client: reqwest::Client,
    url: Url,
    /// `url` without its query, for messages.
    shown_url: String,
    dcr: String,
    compression: bool,
    tokens: Tokens,
    dead_letter: Option<DeadLetter>,
    records: Records,
}

/// Azure's error body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorReply {
    #[serde(default)]
    error: ErrorBody,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl AzureLogsIngestionSink {
    /// Builds the client and the token source (the secret file is read now, so a bad path
    /// fails at startup). No token is fetched before the first delivery.
    pub fn new(
        cfg: &AzureLogsIngestionConfig,
        name: &str,
        format: Format,
        metrics: &Metrics,
    ) -> anyhow::Result<AzureLogsIngestionSink> {
        let client = http::client(
            cfg.timeout,
            cfg.ca_file.as_deref(),
            "the Azure Logs Ingestion HTTP client",
        )?;
        let mut url = Url::parse(cfg.endpoint.as_str()).context("parsing endpoint")?;
        url.set_query(None);
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("sink {name:?}: endpoint cannot take a path"))?
            .pop_if_empty()
            .extend([
                "dataCollectionRules",
                &cfg.dcr_immutable_id,
                "streams",
                &cfg.stream_name,
            ]);
        let shown_url = http::url::redact_url(url.as_str());
        url.query_pairs_mut()
            .append_pair("api-version", &cfg.api_version);
        let grant = if cfg.managed_identity {
            let mut imds = Url::parse(cfg.managed_identity_endpoint.as_str())
                .context("managed_identity_endpoint")?;
            let resource = cfg
                .scope
                .trim_end_matches("/.default")
                .trim_end_matches('/');
            {
                let mut q = imds.query_pairs_mut();
                q.append_pair("api-version", IMDS_API_VERSION)
                    .append_pair("resource", resource);
                if let Some(id) = &cfg.managed_identity_client_id {
                    q.append_pair("client_id", id);
                }
            }
            Grant::ManagedIdentity { url: imds }
        } else {
            let secret = resolve_secret(
                &cfg.client_secret,
                &cfg.client_secret_file,
                &format!("sinks.{name}.client_secret_file"),
            )?
            .ok_or_else(|| anyhow::anyhow!("sink {name:?}: no client_secret"))?;
            let tenant = cfg.tenant_id.clone().unwrap_or_default();
            let token_url = format!(
                "{}/{tenant}/oauth2/v2.0/token",
                cfg.authority_host.as_str().trim_end_matches('/')
            );
            Grant::ClientSecret {
                url: Url::parse(&token_url).context("authority_host")?,
                client_id: cfg.client_id.clone().unwrap_or_default(),
                secret,
                scope: cfg.scope.clone(),
            }
        };
        Ok(AzureLogsIngestionSink {
            format,
            tokens: Tokens::new(client.clone(), grant),
            client,
            url,
            shown_url,
            dcr: cfg.dcr_immutable_id.clone(),
            compression: cfg.compression,
            dead_letter: cfg
                .dead_letter_path
                .as_deref()
                .map(|path| DeadLetter::open(path, name, format, metrics))
                .transpose()?,
            records: Records::default(),
        })
    }

    /// Uploads one body: with the cached token, and once more with a fresh one if that token
    /// is refused.
    async fn upload(&mut self, events: &[Event], body: Vec<u8>) -> Result<(), SinkError> {
        let body = if self.compression {
            tokio::task::spawn_blocking(move || http::gzip(&body, flate2::Compression::default()))
                .await
                .map_err(|e| SinkError::transient(format!("gzip task failed: {e}")))?
        } else {
            body
        };
        let target = format!("POST {}", self.shown_url);
        let mut retried = false;
        loop {
            let (auth, fresh) = self.tokens.bearer().await?;
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, auth);
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if self.compression {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let answer = http::post(
                &self.client,
                self.url.clone(),
                headers,
                body.clone(),
                None,
                &target,
            )
            .await?;
            let class = answer.class();
            if class == StatusClass::Success {
                return Ok(());
            }
            if class == StatusClass::Unauthorized && !fresh && !retried {
                tracing::debug!(
                    status = answer.status.as_u16(),
                    "Azure refused the cached access token; fetching a new one"
                );
                self.tokens.invalidate();
                retried = true;
                continue;
            }
            return self.failure(events, &answer, &target).await;
        }
    }

    /// The error for a failed upload (or the dead-letter write that replaces it).
    async fn failure(
        &self,
        events: &[Event],
        answer: &Answer,
        target: &str,
    ) -> Result<(), SinkError> {
        let reply: ErrorReply = serde_json::from_str(&answer.text).unwrap_or_default();
        let ErrorBody { code, message } = reply.error;
        let what = if code.is_empty() {
            http::excerpt(&answer.text, 200)
        } else {
            format!("{code}: {}", http::excerpt(&message, 300))
        };
        let hint = match answer.status.as_u16() {
            401 => "; the token was refused even after a fresh one: check scope (default \
                    https://monitor.azure.com//.default) and the tenant"
                .to_string(),
            403 => format!(
                "; the app registration or managed identity lacks the \"Monitoring Metrics \
                 Publisher\" role on the DCR {} (role assignments take up to 30 minutes to apply)",
                self.dcr
            ),
            404 => "; check endpoint, dcr_immutable_id and stream_name (a new DCR can take a \
                    few minutes to be usable)"
                .to_string(),
            413 => format!(
                "; the API takes 1 MB per call and this sink sends at most {MAX_BODY_BYTES} bytes \
                 before compression: something between us and Azure changed the body"
            ),
            _ => String::new(),
        };
        let text = format!("{target} answered {} ({what}){hint}", answer.status);
        let class = answer.class();
        let blames_payload = answer.status.as_u16() == 400 && {
            let c = code.to_ascii_lowercase();
            c.contains("payload") || c.contains("json") || c.contains("record")
        };
        match (&self.dead_letter, blames_payload) {
            (Some(dead), true) => {
                let reason = format!("{} answered {} ({what})", self.shown_url, answer.status);
                let refused: Vec<Refused<'_>> = events
                    .iter()
                    .map(|event| Refused {
                        event,
                        reason: &reason,
                    })
                    .collect();
                dead.write(&refused, "rejected").await
            }
            _ => Err(http::sink_error(class, answer, text)),
        }
    }
}

#[async_trait]
impl Sink for AzureLogsIngestionSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.records.encode(self.format, batch);
        let (chunks, oversized) = self.records.chunks();
        if let Some(&first) = oversized.first() {
            let why = |i: usize| {
                format!(
                    "record of {} is {} bytes as JSON; the Logs Ingestion API takes at most 1 MB \
                     per call",
                    batch[i].event_id,
                    self.records.record(i).len()
                )
            };
            match &self.dead_letter {
                None => {
                    return Err(SinkError::Rejected(format!(
                        "{} (and {} more such records); set dead_letter_path to set them aside",
                        why(first),
                        oversized.len() - 1
                    )));
                }
                Some(dead) => {
                    let reasons: Vec<String> = oversized.iter().map(|&i| why(i)).collect();
                    let refused: Vec<Refused<'_>> = oversized
                        .iter()
                        .zip(&reasons)
                        .map(|(&i, reason)| Refused {
                            event: &batch[i],
                            reason,
                        })
                        .collect();
                    dead.write(&refused, "too_large").await?;
                }
            }
        }
        for range in chunks {
            let body = self.records.body(range.clone());
            self.upload(&batch[range], body).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_dcr_stream_and_api_version() {
        let cfg: AzureLogsIngestionConfig = serde_json::from_value(serde_json::json!({
            "endpoint": "https://dce.example/base/",
            "dcr_immutable_id": "dcr-00000000000000000000000000000000",
            "stream_name": "Custom-Audit",
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "s",
        }))
        .unwrap();
        let s = AzureLogsIngestionSink::new(&cfg, "t", Format::Json, &Metrics::new()).unwrap();
        assert_eq!(
            s.url.as_str(),
            "https://dce.example/base/dataCollectionRules/dcr-00000000000000000000000000000000/streams/Custom-Audit?api-version=2023-01-01"
        );
    }
}
