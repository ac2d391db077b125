//! `type = "clickhouse"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`), and the cleartext rule for the password. The
//! password is a `SecretString` and the URL an `HttpUrl`, so the derived `Debug` shows neither.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::cleartext::{self, Insecure};
use crate::http::url::HttpUrl;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "clickhouse"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickhouseConfig {
    /// HTTP(S) interface, e.g. `https://abc.clickhouse.cloud:8443` or `http://127.0.0.1:8123`.
    pub url: HttpUrl,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_table")]
    pub table: String,
    /// Create the database and table (ReplacingMergeTree by event_id) when missing.
    #[serde(default)]
    pub create_table: bool,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `gzip` (default) or `none`.
    #[serde(
        default = "default_compression",
        deserialize_with = "crate::http::de_gzip"
    )]
    pub compression: bool,
    /// Timeout of one request.
    #[serde(
        default = "crate::sinks::default_long_timeout",
        with = "humantime_serde"
    )]
    pub timeout: Duration,
    /// How long dispatch may wait to fill a batch before inserting a partial one (ClickHouse
    /// prefers fewer, bigger inserts).
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Send the password over plain `http://` to a non-loopback host anyway (WARN at every
    /// start; `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

fn default_database() -> String {
    "default".into()
}
fn default_table() -> String {
    "clickhouse_cloud_audit".into()
}
fn default_user() -> String {
    "default".into()
}
fn default_compression() -> bool {
    true
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(2)
}

/// A plain identifier: no quoting games in generated SQL.
fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 200
}

impl SinkSpec for ClickhouseConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        self.url.check(
            at,
            "url",
            "https://abc.clickhouse.cloud:8443 (the HTTP interface, port 8123 or 8443); put credentials in user and password(_file)",
        )?;
        for (key, v) in [("database", &self.database), ("table", &self.table)] {
            if !is_identifier(v) {
                return Err(at.err(
                    key,
                    format!("{v:?}"),
                    "letters, digits and '_', not starting with a digit",
                ));
            }
        }
        at.one_secret("password", &self.password, &self.password_file, None)?;
        at.nonzero("timeout", self.timeout)
    }

    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let has_password = self.password.is_some() || self.password_file.is_some();
        cleartext::check_url(
            at,
            component,
            "url",
            self.url.as_str(),
            has_password.then_some("the ClickHouse password"),
            self.allow_insecure,
        )
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::ClickhouseSink::new(
            self, ctx.name, ctx.format,
        )?))
    }
}
