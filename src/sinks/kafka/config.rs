//! `type = "kafka"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`), and the cleartext rule (a SASL PLAIN password
//! without TLS). The SASL password is a `SecretString`, so the derived `Debug` hides it.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::cleartext::{self, Insecure, Transport};
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "kafka"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `["host:port", …]`.
    pub brokers: Vec<String>,
    /// The topic (must exist, or the brokers must auto-create it).
    pub topic: String,
    /// `none` (default), `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default, deserialize_with = "de_compression")]
    pub compression: Compression,
    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; unset = no SASL.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Option<SecretString>,
    /// File holding the SASL password (trailing newline ignored).
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// Connect with TLS (system roots plus `ca_file`).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of CA certificates to trust besides the system roots (implies `tls`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Longest time one batch may take, connection and acknowledgements included.
    #[serde(
        default = "crate::sinks::default_long_timeout",
        with = "humantime_serde"
    )]
    pub timeout: Duration,
    /// How long dispatch may wait to fill a batch before producing a partial one.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Largest produce request per partition before compression (`"512KiB"`): a batch is
    /// split to stay under the brokers' `message.max.bytes` (1 MB by default).
    #[serde(
        default = "default_max_request_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub max_request_bytes: u64,
    /// Send a SASL PLAIN password without TLS to a non-loopback broker anyway (WARN at every
    /// start; `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

fn default_batch_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_max_request_bytes() -> u64 {
    512 * 1024
}

fn de_compression<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
    Ok(match String::deserialize(d)?.as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(serde::de::Error::custom(format!(
                "compression = {other:?}: expected none, gzip, snappy, lz4 or zstd"
            )));
        }
    })
}

const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl SinkSpec for KafkaConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        if self.brokers.is_empty() {
            return Err(at.err("brokers", "[]", "list at least one \"host:port\""));
        }
        for b in &self.brokers {
            if crate::sinks::tls::split_host_port(b).is_none() {
                return Err(at.err("brokers", format!("{b:?}"), "expected \"host:port\""));
            }
        }
        // Kafka's topic name rule: 1-249 of [a-zA-Z0-9._-].
        if self.topic.is_empty()
            || self.topic.len() > 249
            || !self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(at.err(
                "topic",
                format!("{:?}", self.topic),
                "1-249 characters of a-z, A-Z, 0-9, '.', '_', '-'",
            ));
        }
        if let Some(m) = &self.sasl_mechanism {
            if !MECHANISMS.contains(&m.as_str()) {
                return Err(at.err(
                    "sasl_mechanism",
                    format!("{m:?}"),
                    "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                ));
            }
            if self.sasl_username.is_none()
                || (self.sasl_password.is_none() && self.sasl_password_file.is_none())
            {
                return Err(at.err(
                    "sasl_mechanism",
                    format!("{m:?}"),
                    "needs sasl_username and sasl_password (or sasl_password_file)",
                ));
            }
        } else if self.sasl_username.is_some()
            || self.sasl_password.is_some()
            || self.sasl_password_file.is_some()
        {
            return Err(at.err(
                "sasl_username",
                "…",
                "set sasl_mechanism too (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
            ));
        }
        at.one_secret(
            "sasl_password",
            &self.sasl_password,
            &self.sasl_password_file,
            None,
        )?;
        at.nonzero("timeout", self.timeout)?;
        if self.max_request_bytes < 1024 {
            return Err(at.err(
                "max_request_bytes",
                self.max_request_bytes,
                "must be at least 1KiB",
            ));
        }
        Ok(())
    }

    /// PLAIN sends the password as it is; SCRAM proves it without sending it.
    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let plain = self.sasl_mechanism.as_deref() == Some("PLAIN");
        let encrypted = self.tls || self.ca_file.is_some();
        let mut allowed = None;
        for broker in &self.brokers {
            allowed = allowed.or(cleartext::check(
                at,
                component,
                &Transport {
                    key: "brokers",
                    shown: broker,
                    host: cleartext::host_of(broker),
                    encrypted,
                    credential: plain.then_some("the SASL PLAIN password"),
                },
                self.allow_insecure,
            )?);
        }
        Ok(allowed)
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::KafkaSink::new(self, ctx.name, ctx.format)?))
    }
}
