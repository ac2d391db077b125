//! `type = "webhook"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`). Secrets (`bearer_token`, `basic_auth_password`,
//! `signing_secret`) are `SecretString`s, and `Debug` shows header names but not their values,
//! so neither can reach a log line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::signing;
use crate::values::ConfigError;

/// `type = "webhook"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where batches are POSTed (`http://` or `https://`). Redirects are not followed.
    pub url: String,
    /// Extra request headers, e.g. `{ "X-Tenant" = "sec" }`. The headers this sink sets
    /// (Content-Type, Content-Encoding, webhook-*, and Authorization when an auth key is set)
    /// cannot be overridden.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Batches the receiver rejects (a 4xx other than 401/403/404/405/407/408/429) are
    /// appended here as NDJSON and the sink moves on; unset = keep retrying them.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
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
fn default_timeout() -> Duration {
    Duration::from_secs(10)
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

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("bearer_token_file", &self.bearer_token_file)
            .field("basic_auth_user", &self.basic_auth_user)
            .field(
                "basic_auth_password",
                &self.basic_auth_password.as_ref().map(|_| "[REDACTED]"),
            )
            .field("basic_auth_password_file", &self.basic_auth_password_file)
            .field("signing_secrets", &self.signing_secret.len())
            .field("signing_secret_file", &self.signing_secret_file)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("batch_timeout", &self.batch_timeout)
            .field("batch_mode", &self.batch_mode)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("dead_letter_path", &self.dead_letter_path)
            .finish()
    }
}

/// The URL without user info and query (either may hold a credential), for logs and errors.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
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

impl WebhookConfig {
    pub fn validate(&self, index: usize, name: &str) -> Result<(), ConfigError> {
        let err = |key: &str, value: &dyn std::fmt::Display, why: &str| {
            ConfigError(format!(
                "config key `sinks[{index}].{key}` = {value} (sink {name:?}): {why}"
            ))
        };
        let url = reqwest::Url::parse(&self.url).map_err(|e| {
            err(
                "url",
                &format!("{:?}", redact_url(&self.url)),
                &e.to_string(),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(err(
                "url",
                &format!("{:?}", redact_url(&self.url)),
                "must be an http(s) URL with a host",
            ));
        }
        let has_auth = self.bearer_token.is_some()
            || self.bearer_token_file.is_some()
            || self.basic_auth_user.is_some();
        for (key, value) in &self.headers {
            let lower = key.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(key.as_bytes()).is_err() {
                return Err(err(
                    "headers",
                    &format!("{key:?}"),
                    "not a valid header name",
                ));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(err(
                    &format!("headers.{key}"),
                    &"<value>",
                    "not a valid header value (printable ASCII, no line breaks)",
                ));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) || (has_auth && lower == "authorization")
            {
                return Err(err(
                    "headers",
                    &format!("{key:?}"),
                    "this header is set by the sink itself",
                ));
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(ConfigError(format!(
                "config keys `sinks[{index}].bearer_token` and `bearer_token_file` are both set (sink {name:?}): keep one"
            )));
        }
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        let basic_password =
            self.basic_auth_password.is_some() || self.basic_auth_password_file.is_some();
        if bearer && (self.basic_auth_user.is_some() || basic_password) {
            return Err(ConfigError(format!(
                "sink {name:?} (sinks[{index}]): set either bearer_token(_file) or basic_auth_*, not both"
            )));
        }
        if self.basic_auth_password.is_some() && self.basic_auth_password_file.is_some() {
            return Err(ConfigError(format!(
                "config keys `sinks[{index}].basic_auth_password` and `basic_auth_password_file` are both set (sink {name:?}): keep one"
            )));
        }
        if basic_password != self.basic_auth_user.is_some() {
            return Err(err(
                "basic_auth_user",
                &format!("{:?}", self.basic_auth_user.as_deref().unwrap_or("")),
                "basic auth needs both basic_auth_user and basic_auth_password(_file)",
            ));
        }
        if !self.signing_secret.is_empty() && self.signing_secret_file.is_some() {
            return Err(ConfigError(format!(
                "config keys `sinks[{index}].signing_secret` and `signing_secret_file` are both set (sink {name:?}): keep one"
            )));
        }
        for secret in &self.signing_secret {
            signing::decode_secret(secret.expose_secret())
                .map_err(|why| err("signing_secret", &"<secret>", &why))?;
        }
        if self.batch_max_bytes == 0 {
            return Err(err("batch_max_bytes", &0, "must be positive"));
        }
        if self.timeout.is_zero() {
            return Err(err("timeout", &"\"0s\"", "must be greater than zero"));
        }
        if let Some(p) = &self.dead_letter_path
            && p.as_os_str().is_empty()
        {
            return Err(err("dead_letter_path", &"\"\"", "must be a file path"));
        }
        Ok(())
    }
}
