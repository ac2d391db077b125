//! `type = "otlp"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`), and the cleartext rule for `headers` (the only way
//! OTLP receivers take credentials, so every header counts as one). The endpoint is an
//! `HttpUrl` and `Headers` show names only, so the derived `Debug` shows no secret.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cleartext::{self, Insecure};
use crate::http::headers::Headers;
use crate::http::url::HttpUrl;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "otlp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// gRPC: `http(s)://host:4317` (no path). http/protobuf: a base URL (`https://host:4318`,
    /// the sink adds `/v1/logs`) or the full URL ending in `/v1/logs`, used as is.
    pub endpoint: HttpUrl,
    /// `grpc` (default) or `http/protobuf`.
    #[serde(default, deserialize_with = "de_protocol")]
    pub protocol: Protocol,
    /// Extra request headers (gRPC metadata), e.g. `{ authorization = "Bearer …" }`. Values may
    /// be credentials: `Debug` shows names only, and over plain http to a non-loopback host
    /// they need `allow_insecure`.
    #[serde(default)]
    pub headers: Headers,
    /// `gzip` (default) or `none`.
    #[serde(
        default = "default_compression",
        deserialize_with = "crate::http::de_gzip"
    )]
    pub compression: bool,
    /// Timeout of one export request (connect, send, answer).
    #[serde(default = "crate::sinks::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Resource attribute `service.name` of every record.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Largest export request (protobuf, before compression); a batch is split across several
    /// requests to stay under it (receivers cap a message: the Collector's gRPC default is
    /// 4 MiB), and a record larger than this goes alone.
    #[serde(
        default = "default_batch_max_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub batch_max_bytes: u64,
    /// How long dispatch may wait to fill a batch before sending a partial one.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Where the events of a request the receiver partly rejected (`partial_success`) or
    /// refused as malformed (HTTP 400, gRPC INVALID_ARGUMENT) are appended as NDJSON; unset =
    /// partial rejections are logged at ERROR and counted only (the spec forbids a retry), and
    /// refused requests are kept and retried.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
    /// Send `headers` over plain `http://` to a non-loopback host anyway (WARN at every start;
    /// `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Grpc,
    HttpProtobuf,
}

fn de_protocol<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    match String::deserialize(d)?.as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        other => Err(serde::de::Error::custom(format!(
            "protocol = {other:?}: expected \"grpc\" or \"http/protobuf\" (http/json is not supported)"
        ))),
    }
}

fn default_compression() -> bool {
    true
}
fn default_service_name() -> String {
    "clickhouse-audit-exporter".into()
}
fn default_batch_max_bytes() -> u64 {
    3 << 20
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Headers the sink sets itself (HTTP) or gRPC reserves.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
    "te",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
];

impl SinkSpec for OtlpConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        let url = self
            .endpoint
            .check(at, "endpoint", "https://collector:4317")?;
        let shown = format!("{:?}", self.endpoint.redacted());
        if self.protocol == Protocol::Grpc && (url.path() != "/" || url.query().is_some()) {
            return Err(at.err(
                "endpoint",
                shown,
                "a gRPC endpoint has no path: give http(s)://host:4317",
            ));
        }
        self.headers.check(at, "headers", RESERVED_HEADERS)?;
        if self.protocol == Protocol::Grpc {
            for name in self.headers.0.keys() {
                if name.to_ascii_lowercase().ends_with("-bin") || name.starts_with("grpc-") {
                    return Err(at.err(
                        "headers",
                        format!("{name:?}"),
                        "binary (-bin) and grpc-* metadata cannot be set",
                    ));
                }
            }
        }
        if self.batch_max_bytes < 1024 {
            return Err(at.err(
                "batch_max_bytes",
                self.batch_max_bytes,
                "must be at least 1KiB",
            ));
        }
        at.nonzero("timeout", self.timeout)?;
        at.nonzero("batch_timeout", self.batch_timeout)?;
        if self.service_name.trim().is_empty() {
            return Err(at.err("service_name", "\"\"", "must not be empty"));
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => return Err(at.missing("client_key_file", "mTLS needs both files")),
            (None, Some(_)) => {
                return Err(at.missing("client_cert_file", "mTLS needs both files"));
            }
            _ => {}
        }
        if self.client_cert_file.is_some() && url.scheme() != "https" {
            return Err(at.err(
                "client_cert_file",
                shown,
                "a client certificate needs an https:// endpoint",
            ));
        }
        crate::sinks::dead_letter::validate(
            at,
            "dead_letter_path",
            self.dead_letter_path.as_deref(),
        )
    }

    /// Every header may be a credential (`authorization`, `x-honeycomb-team`, `dd-api-key`):
    /// OTLP has no other place for one.
    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let credential = (!self.headers.is_empty()).then_some("the headers (may hold credentials)");
        cleartext::check_url(
            at,
            component,
            "endpoint",
            self.endpoint.as_str(),
            credential,
            self.allow_insecure,
        )
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::OtlpSink::new(
            self,
            ctx.name,
            ctx.format,
            &ctx.metrics,
        )?))
    }
}
