//! `type = "splunk_hec"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`), and the cleartext rule for the token. The token is
//! a `SecretString` and the URL an `HttpUrl`, so the derived `Debug` shows neither.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::cleartext::{self, Insecure};
use crate::http::url::HttpUrl;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "splunk_hec"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL of the collector, e.g. `https://splunk.example:8088` (the sink adds
    /// `/services/collector/event`).
    pub url: HttpUrl,
    /// The HEC token.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// File holding the HEC token (trailing newline ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Target index; unset = the token's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// `source` of every event.
    #[serde(default = "default_source")]
    pub source: String,
    /// `sourcetype` of every event.
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// `host` of every event; default: this machine's host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Use indexer acknowledgement (the token must have it enabled; Splunk Enterprise).
    #[serde(default)]
    pub ack: bool,
    /// How long to wait for Splunk to acknowledge a batch before sending it again.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// `X-Splunk-Request-Channel` (a GUID); default: a new random one per start.
    #[serde(default)]
    pub channel: Option<String>,
    /// `gzip` (default) or `none`.
    #[serde(
        default = "default_compression",
        deserialize_with = "crate::http::de_gzip"
    )]
    pub compression: bool,
    /// Largest request body before compression; batches are split to stay under it.
    #[serde(
        default = "default_batch_max_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub batch_max_bytes: u64,
    /// How long dispatch may wait to fill a batch before sending a partial one.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Timeout of one request.
    #[serde(default = "crate::sinks::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Send the token over plain `http://` to a non-loopback host anyway (WARN at every start;
    /// `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

fn default_source() -> String {
    "clickhouse-audit-exporter".into()
}
fn default_sourcetype() -> String {
    "clickhouse:cloud:audit".into()
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_compression() -> bool {
    true
}
fn default_batch_max_bytes() -> u64 {
    1 << 20
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(1)
}

impl SinkSpec for SplunkHecConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        let url = self.url.check(at, "url", "https://splunk.example:8088")?;
        if url.path().contains("/services/collector") {
            return Err(at.err(
                "url",
                format!("{:?}", self.url.redacted()),
                "give the base URL (https://host:8088); the sink adds /services/collector/event",
            ));
        }
        at.one_secret(
            "token",
            &self.token,
            &self.token_file,
            Some("set token or token_file"),
        )?;
        if self.sourcetype.trim().is_empty() {
            return Err(at.err("sourcetype", "\"\"", "must not be empty"));
        }
        if self.batch_max_bytes < 1024 {
            return Err(at.err(
                "batch_max_bytes",
                self.batch_max_bytes,
                "must be at least 1KiB",
            ));
        }
        at.nonzero("timeout", self.timeout)?;
        at.nonzero("ack_timeout", self.ack_timeout)?;
        if let Some(c) = &self.channel
            && uuid::Uuid::parse_str(c).is_err()
        {
            return Err(at.err("channel", format!("{c:?}"), "must be a GUID"));
        }
        Ok(())
    }

    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        cleartext::check_url(
            at,
            component,
            "url",
            self.url.as_str(),
            Some("the HEC token"),
            self.allow_insecure,
        )
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::SplunkHecSink::new(
            self,
            ctx.name,
            ctx.format,
            ctx.metrics,
        )?))
    }
}
