//! `[api]`: how to reach and authenticate to the ClickHouse Cloud control plane (base URL,
//! key, organizations, timeouts, rate limit, date format, retries), with its defaults, its
//! checks, and the resolution of `Credentials` from config, files and environment. The list
//! of several keys (`[[api.keys]]`) and `KeySpec`: `api_keys.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::api_keys::ApiKeyConfig;
use crate::cleartext::{self, Insecure};
use crate::values::{ConfigError, KeyPath, read_secret_file};

/// `[api]`: how to reach and authenticate to the ClickHouse Cloud control plane.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Control-plane base URL (paths `/v1/...` are appended).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// API key id; else env `CLICKHOUSE_CLOUD_API_KEY`.
    #[serde(default)]
    pub key_id: Option<String>,
    /// API key secret; else `key_secret_file`, env `CLICKHOUSE_CLOUD_API_SECRET`,
    /// or `$CREDENTIALS_DIRECTORY/key_secret` (systemd `LoadCredential=key_secret:…`).
    #[serde(default)]
    pub key_secret: Option<SecretString>,
    /// File holding the key secret (trailing newline ignored).
    #[serde(default)]
    pub key_secret_file: Option<PathBuf>,
    /// Organizations to export; empty = every organization the key can see.
    #[serde(default)]
    pub organizations: Vec<String>,
    /// Timeout of one HTTP request (connect + full body).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// At most this many requests in ANY rolling `rate_limit_window`, shared by every call.
    #[serde(default = "default_rate_limit_requests")]
    pub rate_limit_requests: u32,
    /// The rolling window of the rate limit (vendor: 10 requests / 10 s per key).
    #[serde(default = "default_rate_limit_window", with = "humantime_serde")]
    pub rate_limit_window: Duration,
    /// How `from_date`/`to_date` are written: `rfc3339` (the default,
    /// `YYYY-MM-DDTHH:MM:SS.000Z`: the only date-time form seen to pass the live API, which
    /// refuses other fraction lengths), `naive` (`YYYY-MM-DDTHH:MM:SS.000`, UTC without a zone,
    /// what the vendor's Splunk poller sends; unproven live), or `date` (`YYYY-MM-DD`). A 400
    /// about dates switches the client to `date` for good.
    #[serde(default)]
    pub date_format: DateFormat,
    /// Retries of one call after 5xx, timeouts and connection errors (429s wait and retry too).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Cap of the exponential retry backoff.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Send the key over plain `http://` to a non-loopback `base_url` anyway (WARN at every
    /// start; `clickhouse_audit_insecure_transport{component="api"}` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
    /// Several keys, each with its own organizations and budget (`[[api.keys]]`); instead of
    /// `key_id`/`key_secret`/`organizations` above, not with them.
    #[serde(default)]
    pub keys: Vec<ApiKeyConfig>,
    /// WARN this long before one of our keys expires (its `expireAt`).
    #[serde(default = "default_key_expiry_warning", with = "humantime_serde")]
    pub key_expiry_warning: Duration,
    /// `/readyz` degraded this long before one of our keys expires.
    #[serde(default = "default_key_expiry_degraded", with = "humantime_serde")]
    pub key_expiry_degraded: Duration,
}

fn default_base_url() -> String {
    "https://api.clickhouse.cloud".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_rate_limit_requests() -> u32 {
    10
}
fn default_rate_limit_window() -> Duration {
    Duration::from_secs(10)
}
fn default_max_retries() -> u32 {
    5
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
fn default_key_expiry_warning() -> Duration {
    Duration::from_secs(14 * 86_400)
}
fn default_key_expiry_degraded() -> Duration {
    Duration::from_secs(2 * 86_400)
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_url: default_base_url(),
            key_id: None,
            key_secret: None,
            key_secret_file: None,
            organizations: Vec::new(),
            request_timeout: default_request_timeout(),
            rate_limit_requests: default_rate_limit_requests(),
            rate_limit_window: default_rate_limit_window(),
            date_format: DateFormat::default(),
            max_retries: default_max_retries(),
            max_backoff: default_max_backoff(),
            allow_insecure: false,
            keys: Vec::new(),
            key_expiry_warning: default_key_expiry_warning(),
            key_expiry_degraded: default_key_expiry_degraded(),
        }
    }
}

/// The wire form of the activity window bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateFormat {
    Naive,
    #[default]
    Rfc3339,
    Date,
}

/// API credentials resolved from config, files and environment.
pub struct Credentials {
    pub key_id: String,
    pub key_secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("key_secret", &"[REDACTED]")
            .finish()
    }
}

impl ApiConfig {
    /// Checks values serde cannot: an http(s) URL with a host, a non-zero rate limit and
    /// timeout, and at most one form of the key secret.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at = KeyPath::section("api");
        let base_url = format!("{:?}", self.base_url);
        let url =
            reqwest::Url::parse(&self.base_url).map_err(|e| at.err("base_url", &base_url, e))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(at.err("base_url", &base_url, "must be an http(s) URL with a host"));
        }
        self.cleartext()?;
        if self.rate_limit_requests == 0 {
            return Err(at.err("rate_limit_requests", 0, "must be at least 1"));
        }
        at.nonzero("rate_limit_window", self.rate_limit_window)?;
        at.nonzero("request_timeout", self.request_timeout)?;
        self.validate_keys()?;
        at.one_secret("key_secret", &self.key_secret, &self.key_secret_file, None)
    }

    /// The cleartext rule for the key (sent as HTTP Basic auth with every request): `Some`
    /// when `allow_insecure` lets a plain `http://` non-loopback `base_url` through.
    pub fn cleartext(&self) -> Result<Option<Insecure>, ConfigError> {
        cleartext::check_url(
            &KeyPath::section("api"),
            "api",
            "base_url",
            &self.base_url,
            Some("the API key secret"),
            self.allow_insecure,
        )
    }

    /// Resolves API credentials: `api.key_id` or `CLICKHOUSE_CLOUD_API_KEY`; the secret from
    /// `api.key_secret`, `api.key_secret_file`, `CLICKHOUSE_CLOUD_API_SECRET`, or
    /// `$CREDENTIALS_DIRECTORY/key_secret`, in that order.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let key_id = self
            .key_id
            .clone()
            .or_else(|| std::env::var("CLICKHOUSE_CLOUD_API_KEY").ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "no API key id: set `api.key_id` or env CLICKHOUSE_CLOUD_API_KEY".into(),
                )
            })?;
        let key_secret = if let Some(s) = &self.key_secret {
            s.clone()
        } else if let Some(path) = &self.key_secret_file {
            read_secret_file(path, "api.key_secret_file")?
        } else if let Ok(s) = std::env::var("CLICKHOUSE_CLOUD_API_SECRET") {
            SecretString::from(s)
        } else if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            read_secret_file(
                &Path::new(&dir).join("key_secret"),
                "$CREDENTIALS_DIRECTORY/key_secret",
            )?
        } else {
            return Err(ConfigError(
                "no API key secret: set `api.key_secret`, `api.key_secret_file`, env \
                 CLICKHOUSE_CLOUD_API_SECRET, or systemd LoadCredential=key_secret:…"
                    .into(),
            ));
        };
        if key_secret.expose_secret().is_empty() {
            return Err(ConfigError("the API key secret is empty".into()));
        }
        Ok(Credentials { key_id, key_secret })
    }
}
