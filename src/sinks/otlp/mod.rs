//! `otlp` sink: OpenTelemetry logs over gRPC (`grpc.rs`, tonic) or HTTP/protobuf
//! (`protobuf.rs`, the shared HTTP client), one `LogRecord` per event (`mapping.rs`), built
//! from the official `opentelemetry-proto` messages. Settings are in `config.rs`, the
//! `google.rpc` error details in `rpc.rs`.
//!
//! A batch is one export request, or several when its records would exceed `batch_max_bytes`
//! (receivers cap a message: the Collector at 4 MiB by default); after a failed part the whole
//! batch comes back, so earlier parts may arrive twice (at-least-once). Failures: see `grpc::failure_of` and `protobuf` — retryable
//! statuses are `Transient`, refused credentials `Unauthorized`, the rest `Rejected` (kept);
//! a request the receiver refuses as malformed (gRPC INVALID_ARGUMENT, HTTP 400/413/422…) is
//! written to `dead_letter_path` when one is configured, and the sink moves on.
//!
//! Partial success (`partial_success.rejected_log_records > 0`) is an accepted request whose
//! rejected records the OTLP specification forbids sending again. We cannot tell which records
//! were rejected, so: the count goes to `sink_otlp_rejected_log_records_total{sink}`, the
//! server's `error_message` is logged at ERROR, and with `dead_letter_path` every event of
//! that request is written there (reason: the server's message) for a replay after the cause
//! is fixed; without one, nothing but the log line and the counter keeps them. Either way the
//! batch counts as delivered (it was accepted). A partial success with 0 rejected records and a
//! message is a warning from the receiver, logged at WARN.

pub mod config;
mod grpc;
mod mapping;
mod protobuf;
pub mod rpc;

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prometheus::IntCounterVec;
use prost::Message;
use std::ops::Range;

pub use self::config::{OtlpConfig, Protocol};
pub use self::mapping::{SCOPE_NAME, any_value_of, severity};
pub use self::protobuf::logs_url;
use super::dead_letter::{DeadLetter, Refused};
use super::{Sink, SinkError, tls};
use crate::event::Event;
use crate::format::Format;
use crate::metrics::Metrics;

/// A failed export: the error, and whether the receiver blamed the request's content (then it
/// may be dead-lettered).
pub struct Failure {
    pub error: SinkError,
    pub blames_batch: bool,
}

enum Transport {
    Grpc(grpc::Grpc),
    Http(protobuf::HttpProtobuf),
}

pub struct OtlpSink {
    name: String,
    transport: Transport,
    mapper: mapping::Mapper,
    dead_letter: Option<DeadLetter>,
    rejected_records: IntCounterVec,
    max_bytes: usize,
}

impl OtlpSink {
    /// Reads the mTLS files and `ca_file` now (a bad path fails at startup) and prepares the
    /// transport; gRPC connects lazily, at the first export.
    pub fn new(
        cfg: &OtlpConfig,
        name: &str,
        format: Format,
        metrics: &Metrics,
    ) -> anyhow::Result<OtlpSink> {
        let identity = match (&cfg.client_cert_file, &cfg.client_key_file) {
            (Some(cert), Some(key)) => Some(tls::read_identity(cert, key)?),
            _ => None,
        };
        let transport = match cfg.protocol {
            Protocol::Grpc => Transport::Grpc(grpc::Grpc::new(cfg, identity)?),
            Protocol::HttpProtobuf => {
                Transport::Http(protobuf::HttpProtobuf::new(cfg, identity.as_ref())?)
            }
        };
        Ok(OtlpSink {
            name: name.to_string(),
            transport,
            mapper: mapping::Mapper::new(format, &cfg.service_name),
            dead_letter: cfg
                .dead_letter_path
                .as_deref()
                .map(|path| DeadLetter::open(path, name, format, metrics))
                .transpose()?,
            rejected_records: metrics.sink_otlp_rejected_log_records.clone(),
            max_bytes: usize::try_from(cfg.batch_max_bytes).unwrap_or(usize::MAX),
        })
    }

    async fn export(
        &mut self,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, Failure> {
        match &mut self.transport {
            Transport::Grpc(g) => g.export(request).await,
            Transport::Http(h) => h.export(&request).await,
        }
    }

    /// Writes every event of `batch` to the dead-letter file with `reason`.
    async fn dead_letter(
        dead: &DeadLetter,
        batch: &[Event],
        reason: &str,
        label: &'static str,
    ) -> Result<(), SinkError> {
        let refused: Vec<Refused<'_>> = batch
            .iter()
            .map(|event| Refused { event, reason })
            .collect();
        dead.write(&refused, label).await
    }

    /// Handles an accepted request's `partial_success`.
    async fn partial_success(
        &self,
        batch: &[Event],
        answer: ExportLogsServiceResponse,
    ) -> Result<(), SinkError> {
        let Some(partial) = answer.partial_success else {
            return Ok(());
        };
        let message = crate::http::excerpt(&partial.error_message, 500);
        if partial.rejected_log_records <= 0 {
            if !message.is_empty() {
                tracing::warn!(sink = %self.name, message = %message, "the OTLP receiver accepted the batch with a warning");
            }
            return Ok(());
        }
        let rejected = partial.rejected_log_records as u64;
        self.rejected_records
            .with_label_values(&[&self.name])
            .inc_by(rejected);
        let reason = format!(
            "OTLP partial success: {rejected} of {} log records rejected: {message}",
            batch.len()
        );
        match &self.dead_letter {
            Some(dead) => Self::dead_letter(dead, batch, &reason, "partial_success").await,
            None => {
                tracing::error!(
                    sink = %self.name,
                    rejected,
                    events = batch.len(),
                    first_event_id = %batch[0].event_id,
                    last_event_id = %batch[batch.len() - 1].event_id,
                    message = %message,
                    "the OTLP receiver rejected log records (partial success); the spec forbids \
                     sending them again and no dead_letter_path is set, so they are not kept"
                );
                Ok(())
            }
        }
    }

    /// Sends one request carrying `records`, the records of `events`.
    async fn send(&mut self, events: &[Event], records: Vec<LogRecord>) -> Result<(), SinkError> {
        let request = self.mapper.request(records);
        let result = self.export(request).await;
        match (result, &self.dead_letter) {
            (Ok(answer), _) => self.partial_success(events, answer).await,
            (
                Err(Failure {
                    error: SinkError::Rejected(message),
                    blames_batch: true,
                }),
                Some(dead),
            ) => Self::dead_letter(dead, events, &message, "rejected").await,
            (Err(failure), _) => Err(failure.error),
        }
    }
}

/// Splits `records` into consecutive parts of at most `max_bytes` encoded (a record larger
/// than that goes alone), each with the index range of its events.
fn split(records: Vec<LogRecord>, max_bytes: usize) -> Vec<(Range<usize>, Vec<LogRecord>)> {
    let total = records.len();
    let mut parts = Vec::new();
    let (mut start, mut size, mut part) = (0, 0, Vec::new());
    for (i, record) in records.into_iter().enumerate() {
        // The record's bytes plus its tag and length prefix.
        let len = record.encoded_len() + 6;
        if !part.is_empty() && size + len > max_bytes {
            parts.push((start..i, std::mem::take(&mut part)));
            (start, size) = (i, 0);
        }
        size += len;
        part.push(record);
    }
    if !part.is_empty() {
        parts.push((start..total, part));
    }
    parts
}

#[async_trait]
impl Sink for OtlpSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let records = batch.iter().map(|e| self.mapper.record(e)).collect();
        for (range, records) in split(records, self.max_bytes) {
            self.send(&batch[range], records).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_batches_split_by_encoded_size_and_big_records_go_alone() {
        let record = |n: usize| LogRecord {
            severity_text: "x".repeat(n),
            ..Default::default()
        };
        let sizes = [100, 100, 100, 5000, 10, 300];
        let records: Vec<LogRecord> = sizes.iter().map(|&n| record(n)).collect();
        let parts = split(records, 400);
        let ranges: Vec<Range<usize>> = parts.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(ranges, vec![0..3, 3..4, 4..6]);
        for (range, part) in &parts {
            assert_eq!(part.len(), range.len());
        }
        assert!(split(Vec::new(), 400).is_empty());
    }
}
