//! `type = "webhook"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`), and the cleartext rule. Secrets (`bearer_token`,
//! `basic_auth_password`, `signing_secret`) are `SecretString`s, the URL is an `HttpUrl` and
//! `Headers` show names only, so the derived `Debug` cannot put a secret in a log line.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::signing;
use crate::cleartext::{self, Insecure};
pub use crate::http::headers::Headers;
use crate::http::url::HttpUrl;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where batches are POSTed (`http://` or `https://`). Redirects are not followed.
    pub url: HttpUrl,
    /// Extra request headers, e.g. `{ "X-Tenant" = "sec" }`. The headers this sink sets
    /// (Content-Type, Content-Encoding, webhook-*, and Authorization when an auth key is set)
    /// cannot be overridden. `Debug` shows their names only (a value may be a credential).
    #[serde(default)]
    pub headers: Headers,
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<SecretString>,
    /// File holding the bearer token (trailing newline ignored).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic auth user (with `basic_auth_password` or `basic_auth_password_file`).
    #[serde(default)]
    pub basic_auth_user: Option<String>,
    #[serde(default)]
    pub basic_auth_password: Option<SecretString>,
    #[serde(default)]
    pub basic_auth_password_file: Option<PathBuf>,
    /// Standard Webhooks secret `whsec_<base64>`, or a list of them while rotating: every
    /// secret signs, and receivers accept the request if any signature verifies.
    #[serde(default, deserialize_with = "de_secrets")]
    pub signing_secret: Vec<SecretString>,
    /// File with the signing secret(s), one per line.
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// Largest request body before compression (`"1MiB"`); a batch is split across several
    /// POSTs to stay under it, and an event larger than this is sent alone.
    #[serde(
        default = "default_batch_max_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub batch_max_bytes: u64,
    /// How long dispatch may wait to fill a batch before sending a partial one.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// `array` (one JSON array per POST, `application/json`) or `ndjson` (one record per line,
    /// `application/x-ndjson`; `text/plain` for cef).
    #[serde(default, deserialize_with = "de_batch_mode")]
    pub batch_mode: BatchMode,
    /// `none` or `gzip` (`Content-Encoding: gzip`; signatures cover the compressed bytes).
    #[serde(default, deserialize_with = "de_compression")]
    pub compression: Compression,
    /// Timeout of one POST: connect, send, and the whole response.
    #[serde(default = "crate::sinks::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Batches the receiver rejects (a 4xx other than 401/403/404/405/407/408/429) are
    /// appended here as NDJSON and the sink moves on; unset = keep retrying them.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
    /// Send the bearer token or basic-auth password over plain `http://` to a non-loopback
    /// host anyway (WARN at every start; `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchMode {
    #[default]
    Array,
    Ndjson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

fn default_batch_max_bytes() -> u64 {
    1 << 20
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Enum keys with errors that name the key (serde's would only say "unknown variant").
fn de_batch_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BatchMode, D::Error> {
    match String::deserialize(d)?.as_str() {
        "array" => Ok(BatchMode::Array),
        "ndjson" => Ok(BatchMode::Ndjson),
        other => Err(serde::de::Error::custom(format!(
            "batch_mode = {other:?}: expected \"array\" or \"ndjson\""
        ))),
    }
}

fn de_compression<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
    match String::deserialize(d)?.as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        other => Err(serde::de::Error::custom(format!(
            "compression = {other:?}: expected \"none\" or \"gzip\""
        ))),
    }
}

/// A secret or a list of secrets.
fn de_secrets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(SecretString),
        Many(Vec<SecretString>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Headers the sink sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl SinkSpec for WebhookConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        self.url.check(at, "url", "https://siem.example/ingest")?;
        self.check_headers(at)?;
        at.one_secret(
            "bearer_token",
            &self.bearer_token,
            &self.bearer_token_file,
            None,
        )?;
        at.one_secret(
            "basic_auth_password",
            &self.basic_auth_password,
            &self.basic_auth_password_file,
            None,
        )?;
        let basic_password =
            self.basic_auth_password.is_some() || self.basic_auth_password_file.is_some();
        if self.has_bearer() && (self.basic_auth_user.is_some() || basic_password) {
            return Err(at.table_err("set either bearer_token(_file) or basic_auth_*, not both"));
        }
        if basic_password != self.basic_auth_user.is_some() {
            return Err(at.err(
                "basic_auth_user",
                format!("{:?}", self.basic_auth_user.as_deref().unwrap_or("")),
                "basic auth needs both basic_auth_user and basic_auth_password(_file)",
            ));
        }
        let signing = (!self.signing_secret.is_empty()).then_some(());
        at.one_secret("signing_secret", &signing, &self.signing_secret_file, None)?;
        for secret in &self.signing_secret {
            signing::decode_secret(secret.expose_secret())
                .map_err(|why| at.err("signing_secret", "<secret>", why))?;
        }
        if self.batch_max_bytes == 0 {
            return Err(at.err("batch_max_bytes", 0, "must be positive"));
        }
        at.nonzero("timeout", self.timeout)?;
        super::super::dead_letter::validate(
            at,
            "dead_letter_path",
            self.dead_letter_path.as_deref(),
        )
    }

    /// A bearer token or basic-auth password is a credential; a signing secret is never sent
    /// (only its HMAC), so signing alone over plain HTTP is fine.
    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let credential = if self.has_bearer() {
            Some("the bearer token")
        } else if self.basic_auth_user.is_some() {
            Some("the basic-auth password")
        } else {
            None
        };
        cleartext::check_url(
            at,
            component,
            "url",
            self.url.as_str(),
            credential,
            self.allow_insecure,
        )
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::WebhookSink::new(
            self,
            ctx.name,
            ctx.format,
            &ctx.metrics,
        )?))
    }
}

impl WebhookConfig {
    fn has_bearer(&self) -> bool {
        self.bearer_token.is_some() || self.bearer_token_file.is_some()
    }

    fn check_headers(&self, at: &KeyPath) -> Result<(), ConfigError> {
        let has_auth = self.has_bearer() || self.basic_auth_user.is_some();
        let mut reserved = RESERVED_HEADERS.to_vec();
        if has_auth {
            reserved.push("authorization");
        }
        self.headers.check(at, "headers", &reserved)
    }
}
