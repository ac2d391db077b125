//! Sinks: the `Sink` runtime trait, `SinkError` (how dispatch retries), and `SinkConfig` —
//! the `[[sinks]]` tables parsed with errors naming the sink and key. `SinkConfig::build` is the
//! registry: a new sink is a file, a `SinkKind` variant and a match arm. `http` holds what the
//! HTTP sinks share (client, TLS roots, gzip key).

pub mod clickhouse;
pub mod file;
pub mod http;
pub mod kafka;
pub mod splunk_hec;
pub mod stdout;
pub mod syslog;
mod tls;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::event::Event;
use crate::format::Format;
use crate::metrics::Metrics;
use crate::values::ConfigError;

/// Why a delivery failed; `dispatch` decides what happens next.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying the same batch (network, 5xx, disk full…), optionally not before a delay.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The receiver refuses this batch (e.g. HTTP 400): kept and retried at the maximum backoff
    /// (or dead-lettered where the sink supports it) — audit data is never dropped.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The destination refuses our credentials (HTTP 401/403, Splunk HEC codes 2–4, Kafka SASL
    /// failure): nothing will get through until an operator fixes them. Kept and retried at the
    /// maximum backoff like `Rejected` by the daemon; `once` stops at once on it (issue #5).
    #[error("credentials refused: {0}")]
    Unauthorized(String),
    /// The sink cannot go on (e.g. stdout closed): the sink stops, others go on.
    #[error("fatal: {0}")]
    Fatal(String),
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// The `kind` label of `sink_failures_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkError::Transient { .. } => "transient",
            SinkError::Rejected(_) => "rejected",
            SinkError::Unauthorized(_) => "unauthorized",
            SinkError::Fatal(_) => "fatal",
        }
    }
}

/// A destination for events.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Delivers the whole batch or fails. After a failure the same batch comes back, so
    /// delivering twice must be harmless.
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError>;
    /// Flushes buffered output; called once during shutdown.
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Reopens files (SIGHUP, for external logrotate).
    fn reopen(&mut self) {}
}

/// One `[[sinks]]` table.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique; keys the sink's delivery position and the `sink` metric label.
    pub name: String,
    pub format: Format,
    /// At most this many events per delivery (and per redelivery after a crash).
    pub batch_max_events: usize,
    pub kind: SinkKind,
}

/// Type-specific settings, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkKind {
    Stdout(stdout::StdoutConfig),
    File(file::FileConfig),
    Webhook(webhook::WebhookConfig),
    Syslog(syslog::SyslogConfig),
    SplunkHec(splunk_hec::SplunkHecConfig),
    Clickhouse(clickhouse::ClickhouseConfig),
    Kafka(kafka::KafkaConfig),
}

impl SinkKind {
    /// The variant `type_name` from the rest of its table (None: no such type); errors carry
    /// the offending key's path (`token`, `headers.x`), never more of the value than serde's
    /// type message.
    fn from_table(
        type_name: &str,
        table: serde_json::Value,
    ) -> Option<Result<SinkKind, serde_path_to_error::Error<serde_json::Error>>> {
        use serde_path_to_error::deserialize as de;
        Some(match type_name {
            "stdout" => de(table).map(SinkKind::Stdout),
            "file" => de(table).map(SinkKind::File),
            "webhook" => de(table).map(SinkKind::Webhook),
            "syslog" => de(table).map(SinkKind::Syslog),
            "splunk_hec" => de(table).map(SinkKind::SplunkHec),
            "clickhouse" => de(table).map(SinkKind::Clickhouse),
            "kafka" => de(table).map(SinkKind::Kafka),
            _ => return None,
        })
    }

    /// Every accepted `type` value.
    pub const TYPES: &'static [&'static str] = &[
        "stdout",
        "file",
        "webhook",
        "syslog",
        "splunk_hec",
        "clickhouse",
        "kafka",
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Stdout(_) => "stdout",
            SinkKind::File(_) => "file",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Syslog(_) => "syslog",
            SinkKind::SplunkHec(_) => "splunk_hec",
            SinkKind::Clickhouse(_) => "clickhouse",
            SinkKind::Kafka(_) => "kafka",
        }
    }
}

const DEFAULT_BATCH_MAX_EVENTS: usize = 500;

impl SinkConfig {
    /// Parses the `index`th `[[sinks]]` table; errors name `sinks[index]`, the key and value.
    pub fn parse(
        index: usize,
        table: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<SinkConfig, ConfigError> {
        let mut rest = table.clone();
        let at = |key: &str| format!("sinks[{index}].{key}");
        let name = match rest.remove("name") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
            Some(other) => {
                return Err(ConfigError(format!(
                    "config key `{}` = {other}: must be a non-empty string",
                    at("name")
                )));
            }
            None => {
                return Err(ConfigError(format!(
                    "config key `{}` is missing: every sink needs a unique name",
                    at("name")
                )));
            }
        };
        let format = match rest.remove("format") {
            None => Format::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                ConfigError(format!(
                    "config key `{}` = {v}: unknown format (expected one of {})",
                    at("format"),
                    Format::NAMES.join(", ")
                ))
            })?,
        };
        let batch_max_events = match rest.remove("batch_max_events") {
            None => DEFAULT_BATCH_MAX_EVENTS,
            Some(v) => match v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n) if (1..=1_000_000).contains(&n) => n as usize,
                _ => {
                    return Err(ConfigError(format!(
                        "config key `{}` = {v}: must be an integer from 1 to 1000000",
                        at("batch_max_events")
                    )));
                }
            },
        };
        if !rest.contains_key("type") {
            return Err(ConfigError(format!(
                "config key `{}` is missing (sink {name:?}): one of {}",
                at("type"),
                SinkKind::TYPES.join(", ")
            )));
        }
        let type_value = rest.remove("type").unwrap_or_default();
        let parsed = type_value
            .as_str()
            .and_then(|t| SinkKind::from_table(t, serde_json::Value::Object(rest)));
        let kind = match parsed {
            Some(result) => result.map_err(|e| {
                let key = e.path().to_string();
                let msg = e.into_inner();
                if key == "." {
                    ConfigError(format!(
                        "config table `sinks[{index}]` (sink {name:?}): {msg}"
                    ))
                } else {
                    ConfigError(format!("config key `{}` (sink {name:?}): {msg}", at(&key)))
                }
            })?,
            None => {
                return Err(ConfigError(format!(
                    "config key `{}` = {type_value} (sink {name:?}): unknown sink type; expected one of {}",
                    at("type"),
                    SinkKind::TYPES.join(", ")
                )));
            }
        };
        let cfg = SinkConfig {
            name,
            format,
            batch_max_events,
            kind,
        };
        cfg.validate(index)?;
        Ok(cfg)
    }

    fn validate(&self, index: usize) -> Result<(), ConfigError> {
        match &self.kind {
            SinkKind::Stdout(_) => Ok(()),
            SinkKind::File(c) => c.validate(index, &self.name),
            SinkKind::Webhook(c) => c.validate(index, &self.name),
            SinkKind::Syslog(c) => c.validate(index, &self.name),
            SinkKind::SplunkHec(c) => c.validate(index, &self.name),
            SinkKind::Clickhouse(c) => c.validate(index, &self.name),
            SinkKind::Kafka(c) => c.validate(index, &self.name),
        }
    }

    /// How long dispatch may wait to fill a batch before delivering a partial one; `None`:
    /// deliver whatever is pending at once.
    pub fn batch_timeout(&self) -> Option<Duration> {
        match &self.kind {
            SinkKind::Webhook(c) => Some(c.batch_timeout),
            SinkKind::SplunkHec(c) => Some(c.batch_timeout),
            SinkKind::Clickhouse(c) => Some(c.batch_timeout),
            SinkKind::Kafka(c) => Some(c.batch_timeout),
            SinkKind::Stdout(_) | SinkKind::File(_) | SinkKind::Syslog(_) => None,
        }
    }

    /// Builds the runtime sink with its own metrics registry (tests, tools).
    pub fn build(&self) -> anyhow::Result<Box<dyn Sink>> {
        self.build_with_metrics(Arc::new(Metrics::new()))
    }

    /// Builds the runtime sink; sinks that count things of their own (syslog truncations,
    /// Splunk acknowledgement waits) count them in `metrics`.
    pub fn build_with_metrics(&self, metrics: Arc<Metrics>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(match &self.kind {
            SinkKind::Stdout(_) => Box::new(stdout::StdoutSink::new(self.format)),
            SinkKind::File(c) => Box::new(file::FileSink::open(c, self.format)?),
            SinkKind::Webhook(c) => {
                Box::new(webhook::WebhookSink::new(c, &self.name, self.format)?)
            }
            SinkKind::Syslog(c) => Box::new(syslog::SyslogSink::new(
                c,
                &self.name,
                self.format,
                metrics,
            )?),
            SinkKind::SplunkHec(c) => Box::new(splunk_hec::SplunkHecSink::new(
                c,
                &self.name,
                self.format,
                metrics,
            )?),
            SinkKind::Clickhouse(c) => {
                Box::new(clickhouse::ClickhouseSink::new(c, &self.name, self.format)?)
            }
            SinkKind::Kafka(c) => Box::new(kafka::KafkaSink::new(c, &self.name, self.format)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_has_a_parser_and_no_other_does() {
        for t in SinkKind::TYPES {
            let parsed = SinkKind::from_table(t, serde_json::json!({}));
            assert!(parsed.is_some(), "{t} is listed but not parsed");
        }
        assert!(SinkKind::from_table("splunk", serde_json::json!({})).is_none());
    }
}
