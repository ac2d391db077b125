//! Sinks: the `Sink` runtime trait, `SinkError` (how dispatch retries), `SinkSpec` (what each
//! type's config provides: validate, cleartext rule, batch timeout, build) and `SinkConfig` —
//! the `[[sinks]]` tables parsed with errors naming the sink and key. The `sink_types!` line
//! list is the registry: a new sink is a file (or folder) plus one line there (see
//! `docs/extending.md`). HTTP plumbing lives in `crate::http`, TLS roots in `tls`, refused
//! events in `dead_letter`.

pub mod azure_logs_ingestion;
pub mod clickhouse;
pub mod dead_letter;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod object_store;
pub mod otlp;
pub mod records;
pub mod splunk_hec;
pub mod stdout;
pub mod syslog;
pub mod tls;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::cleartext::Insecure;
use crate::event::Event;
use crate::format::Format;
use crate::metrics::Metrics;
use crate::values::{ConfigError, KeyPath};

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
    /// A credential this sink sends in clear text because its table says `allow_insecure`.
    pub insecure: Option<Insecure>,
}

/// What each sink type's config provides; `SinkKind::spec` is the only place that picks one.
pub trait SinkSpec {
    /// Checks the settings; errors name the key under `at` and its value.
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError>;
    /// The cleartext rule (`cleartext::check`) for each place this sink sends a credential;
    /// `component` labels the gauge.
    fn cleartext(&self, _at: &KeyPath, _component: &str) -> Result<Option<Insecure>, ConfigError> {
        Ok(None)
    }
    /// How long dispatch may wait to fill a batch before delivering a partial one; `None`:
    /// deliver whatever is pending at once.
    fn batch_timeout(&self) -> Option<Duration> {
        None
    }
    /// The `format` when the table sets none (`json`, the envelope; `ecs` for Elasticsearch).
    fn default_format(&self) -> Format {
        Format::default()
    }
    /// Checks the sink's settings against its `format` (e.g. Parquet only for `ocsf`).
    fn validate_format(&self, _at: &KeyPath, _format: Format) -> Result<(), ConfigError> {
        Ok(())
    }
    /// `batch_max_events` when the table does not set it (`None`: 500). The object-store
    /// sink makes one delivered batch the objects of one flush.
    fn default_batch_max_events(&self) -> Option<usize> {
        None
    }
    /// The online check `validate` runs (not with `--offline`): `None` when the type has
    /// none; else a future answering what it proved (✓) or why it failed (✗), e.g. that a
    /// bucket is writable.
    fn probe(&self) -> Option<futures_util::future::BoxFuture<'static, Result<String, String>>> {
        None
    }
    /// The runtime sink.
    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>>;
}

/// What `SinkSpec::build` gets besides the type's own settings.
pub struct BuildContext<'a> {
    pub name: &'a str,
    pub format: Format,
    /// Sinks that count things of their own (syslog truncations, Splunk ack waits) count here.
    pub metrics: Arc<Metrics>,
}

/// The registry: one line per sink type (`Variant(module::Config) = "type"`), from which
/// `SinkKind`, its parser, `TYPES`, `type_name` and `spec` are generated.
macro_rules! sink_types {
    ($($variant:ident($config:ty) = $name:literal),* $(,)?) => {
        /// Type-specific settings, chosen by `type`.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum SinkKind {
            $($variant($config),)*
        }

        impl SinkKind {
            /// Every accepted `type` value.
            pub const TYPES: &'static [&'static str] = &[$($name),*];

            /// The variant `type_name` from the rest of its table (None: no such type); errors
            /// carry the offending key's path (`token`, `headers.x`), never more of the value
            /// than serde's type message.
            fn from_table(
                type_name: &str,
                table: serde_json::Value,
            ) -> Option<Result<SinkKind, serde_path_to_error::Error<serde_json::Error>>> {
                Some(match type_name {
                    $($name => serde_path_to_error::deserialize(table).map(SinkKind::$variant),)*
                    _ => return None,
                })
            }

            pub fn type_name(&self) -> &'static str {
                match self {
                    $(SinkKind::$variant(_) => $name,)*
                }
            }

            /// The type's settings behind the common interface.
            pub fn spec(&self) -> &dyn SinkSpec {
                match self {
                    $(SinkKind::$variant(c) => c,)*
                }
            }
        }
    };
}

sink_types! {
    Stdout(stdout::StdoutConfig) = "stdout",
    File(file::FileConfig) = "file",
    Webhook(webhook::WebhookConfig) = "webhook",
    Syslog(syslog::SyslogConfig) = "syslog",
    SplunkHec(splunk_hec::SplunkHecConfig) = "splunk_hec",
    Clickhouse(clickhouse::ClickhouseConfig) = "clickhouse",
    Kafka(kafka::KafkaConfig) = "kafka",
    Otlp(otlp::OtlpConfig) = "otlp",
    Elasticsearch(elasticsearch::ElasticsearchConfig) = "elasticsearch",
    AzureLogsIngestion(azure_logs_ingestion::AzureLogsIngestionConfig) = "azure_logs_ingestion",
    ObjectStore(object_store::ObjectStoreConfig) = "object_store",
}

/// Default `timeout` of one delivery attempt (an HTTP request, a syslog connection + write).
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Default `timeout` where one attempt includes the server's own work (a ClickHouse insert, a
/// Kafka produce with its acknowledgements).
pub(crate) fn default_long_timeout() -> Duration {
    Duration::from_secs(30)
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
        let format: Option<Format> = match rest.remove("format") {
            None => None,
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|_| {
                ConfigError(format!(
                    "config key `{}` = {v}: unknown format (expected one of {})",
                    at("format"),
                    Format::NAMES.join(", ")
                ))
            })?,
        };
        let batch_max_events = match rest.remove("batch_max_events") {
            None => 0, // the type's default, below
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
        let format = format.unwrap_or_else(|| kind.spec().default_format());
        let at = KeyPath::sink(index, &name);
        kind.spec().validate(&at)?;
        kind.spec().validate_format(&at, format)?;
        let batch_max_events = match batch_max_events {
            0 => kind
                .spec()
                .default_batch_max_events()
                .unwrap_or(DEFAULT_BATCH_MAX_EVENTS),
            n => n,
        };
        let insecure = kind.spec().cleartext(&at, &format!("sink:{name}"))?;
        Ok(SinkConfig {
            name,
            format,
            batch_max_events,
            kind,
            insecure,
        })
    }

    /// How long dispatch may wait to fill a batch before delivering a partial one; `None`:
    /// deliver whatever is pending at once.
    pub fn batch_timeout(&self) -> Option<Duration> {
        self.kind.spec().batch_timeout()
    }

    /// Builds the runtime sink with its own metrics registry (tests, tools).
    pub fn build(&self) -> anyhow::Result<Box<dyn Sink>> {
        self.build_with_metrics(Arc::new(Metrics::new()))
    }

    /// Builds the runtime sink; sinks that count things of their own (syslog truncations,
    /// Splunk acknowledgement waits) count them in `metrics`.
    pub fn build_with_metrics(&self, metrics: Arc<Metrics>) -> anyhow::Result<Box<dyn Sink>> {
        self.kind.spec().build(BuildContext {
            name: &self.name,
            format: self.format,
            metrics,
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
