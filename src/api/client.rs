//! `Client`: its construction from `ApiConfig` + `Credentials` (checks on `api.base_url`, the
//! HTTP client, the Authorization value), the state its clones share (`Inner`: connection
//! pool, rate limiter, retry settings, date format), the rate-limit handover to the next
//! process, and the URL of each call. The calls themselves: `endpoints.rs`, `activities.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::RateLimiter;
use super::date_format::EffectiveFormat;
use crate::config::{ApiConfig, Credentials, KeySpec};
use crate::metrics::Metrics;

/// The API client. Cheap to clone; clones share the HTTP connection pool, the rate limiter and
/// the effective date format.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of a `Client` shares; `call.rs` and `response.rs` make the requests.
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    /// `api.base_url` without a trailing slash.
    pub(super) base_url: String,
    pub(super) base: Url,
    pub(super) key_id: String,
    /// The key's name (`api.keys[].name`): the `key` label of the `api_key_*` metrics.
    pub(super) key_name: String,
    pub(super) key_secret: SecretString,
    /// base64 of `key_id:key_secret`, as sent in the Authorization header (for `scrub`).
    pub(super) basic_credentials: SecretString,
    pub(super) limiter: RateLimiter,
    pub(super) metrics: Arc<Metrics>,
    pub(super) max_retries: u32,
    pub(super) max_backoff: Duration,
    /// Wait after a 429 that names no reset: the limiter's window.
    pub(super) window: Duration,
    /// The `DateFormat` in use: steps down one format per refusal (`dates::step_down`), or is
    /// set by `set_date_format`.
    pub(super) date_format: EffectiveFormat,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("key", &self.inner.key_name)
            .field("key_id", &self.inner.key_id)
            .field("key_secret", &"[REDACTED]")
            .field("date_format", &self.effective_date_format())
            .field("limiter", &self.inner.limiter)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client (no I/O): reqwest with rustls, `api.request_timeout` per request
    /// (connect to full body), no redirects (a redirect would carry the credentials elsewhere;
    /// it surfaces as an error naming `api.base_url`).
    pub fn new(
        cfg: &ApiConfig,
        creds: Credentials,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Client> {
        let name = crate::config::api_keys_default_name(&creds.key_id);
        let budget = (cfg.rate_limit_requests, cfg.rate_limit_window);
        Self::build(cfg, creds, name, budget, metrics)
    }

    /// The client of one of several keys (`[[api.keys]]`): its own limiter with the key's
    /// budget, its name on the `api_key_*` metrics.
    pub fn for_key(cfg: &ApiConfig, key: KeySpec, metrics: Arc<Metrics>) -> anyhow::Result<Client> {
        let budget = (key.rate_limit_requests, key.rate_limit_window);
        Self::build(cfg, key.credentials, key.name, budget, metrics)
    }

    fn build(
        cfg: &ApiConfig,
        creds: Credentials,
        key_name: String,
        (rate_limit_requests, rate_limit_window): (u32, Duration),
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Client> {
        let base_url = cfg.base_url.trim_end_matches('/').to_string();
        let base = Url::parse(&base_url)
            .with_context(|| format!("api.base_url {base_url:?} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            bail!("api.base_url {base_url:?} must be an http(s) URL with a host");
        }
        if !base.username().is_empty() || base.password().is_some() {
            bail!("api.base_url must not carry credentials: set api.key_id/api.key_secret");
        }
        if creds.key_secret.expose_secret().is_empty() {
            bail!("the API key secret is empty");
        }
        let http = crate::http::client(cfg.request_timeout, None, "the API HTTP client")?;
        let basic_credentials = SecretString::from(STANDARD.encode(format!(
            "{}:{}",
            creds.key_id,
            creds.key_secret.expose_secret()
        )));
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                base,
                basic_credentials,
                key_id: creds.key_id,
                key_name,
                key_secret: creds.key_secret,
                limiter: RateLimiter::new(rate_limit_requests, rate_limit_window),
                metrics,
                max_retries: cfg.max_retries,
                max_backoff: cfg.max_backoff,
                window: rate_limit_window,
                date_format: EffectiveFormat::new(cfg.date_format),
            }),
        })
    }

    /// The key's name (logs, the `key` metric label).
    pub fn key_name(&self) -> &str {
        &self.inner.key_name
    }

    /// The key id (HTTP Basic user name; not a secret).
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The key's own rate-limit budget, e.g. `10 per 10s`.
    pub fn rate_limit(&self) -> String {
        let (max, window) = self.inner.limiter.budget();
        format!("{max} per {}", humantime::format_duration(window))
    }

    /// `api.base_url` without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Wall-clock times of this key's requests still inside the rate-limit window (see
    /// `RateLimiter::recent`), to hand over to the next process.
    pub fn recent_requests(&self) -> Vec<std::time::SystemTime> {
        self.inner.limiter.recent()
    }

    /// Counts a previous process's recent requests against this key's budget.
    pub fn seed_recent_requests(&self, times: &[std::time::SystemTime]) {
        self.inner.limiter.seed(times);
    }

    /// `base_url` + percent-encoded path segments (an org id cannot add a path level).
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("new() accepts only http(s) URLs, which have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }
}
