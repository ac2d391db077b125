//! The ClickHouse Cloud control-plane API client (`https://api.clickhouse.cloud/v1/...`): one
//! `Client` per API key, shared by every poller. Every request of a `Client` passes one sliding
//! window rate limiter (`ratelimit`), is retried when transient (`call`), and its envelope is
//! decoded in one streaming pass that keeps each object's exact bytes (`decode`, `models`).
//! Facts and uncertainties about the API: ../shared/docs/clickhouse-cloud-api.md.
//!
//! Files: `call.rs` (one call: limiter, send, retry, pages), `response.rs` (read one answer:
//! stream into the decoder, or classify the error), `decode.rs` (envelopes),
//! `models.rs` (wire types), `dates.rs` (window bounds, `createdAt`), `error.rs` (`ApiError`),
//! `ratelimit.rs` (`RateLimiter`).

mod call;
pub mod dates;
mod decode;
pub mod error;
pub mod models;
pub mod ratelimit;
mod response;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{ApiConfig, Credentials, DateFormat};
use crate::metrics::Metrics;

pub use error::ApiError;
pub use models::{Activity, ActivityBatch, Quarantined, RawObject, WhoAmI};
pub use ratelimit::RateLimiter;
// Entry points for the fuzz targets in fuzz/ (issue 8); not a stable API.
#[doc(hidden)]
pub use decode::{decode_activities_body, error_body};
#[doc(hidden)]
pub use response::reset_after;

use call::Page;
use decode::{Activities, ActivityList, Identity, Objects};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("clickhouse-audit-exporter/", env!("CARGO_PKG_VERSION"));

/// The endpoints the exporter calls: the `endpoint` metric label and the permission each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    WhoAmI,
    Organizations,
    Activities,
    Services,
    Backups,
    Keys,
    Members,
    Invitations,
}

impl Endpoint {
    /// Every endpoint, e.g. for `validate` to probe each permission.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::WhoAmI,
        Endpoint::Organizations,
        Endpoint::Activities,
        Endpoint::Services,
        Endpoint::Backups,
        Endpoint::Keys,
        Endpoint::Members,
        Endpoint::Invitations,
    ];

    /// The fixed `endpoint` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::WhoAmI => "whoami",
            Endpoint::Organizations => "organizations",
            Endpoint::Activities => "activities",
            Endpoint::Services => "services",
            Endpoint::Backups => "backups",
            Endpoint::Keys => "keys",
            Endpoint::Members => "members",
            Endpoint::Invitations => "invitations",
        }
    }

    /// The API key permission the vendor's spec declares for the endpoint (docs §6); `None`
    /// where it declares none (`instanceGetList`, `organizationGetList`, `whoamiGet`).
    pub fn permission(self) -> Option<&'static str> {
        match self {
            Endpoint::Activities => Some("control-plane:organization:view-activities"),
            Endpoint::Keys => Some("control-plane:organization:view-api-keys"),
            Endpoint::Members | Endpoint::Invitations => Some("control-plane:organization:view"),
            Endpoint::Backups => Some("control-plane:service:view-backups"),
            Endpoint::Services | Endpoint::Organizations | Endpoint::WhoAmI => None,
        }
    }
}

/// The API client. Cheap to clone; clones share the HTTP connection pool, the rate limiter and
/// the effective date format.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `api.base_url` without a trailing slash.
    base_url: String,
    base: Url,
    key_id: String,
    key_secret: SecretString,
    /// base64 of `key_id:key_secret`, as sent in the Authorization header (for `scrub`).
    basic_credentials: SecretString,
    limiter: RateLimiter,
    metrics: Arc<Metrics>,
    max_retries: u32,
    max_backoff: Duration,
    /// Wait after a 429 that names no reset: the limiter's window.
    window: Duration,
    /// The `DateFormat` in use, as `date_format_code`; only ever moves to `Date`.
    date_format: AtomicU8,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
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
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(cfg.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
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
                key_secret: creds.key_secret,
                limiter: RateLimiter::new(cfg.rate_limit_requests, cfg.rate_limit_window),
                metrics,
                max_retries: cfg.max_retries,
                max_backoff: cfg.max_backoff,
                window: cfg.rate_limit_window,
                date_format: AtomicU8::new(date_format_code(cfg.date_format)),
            }),
        })
    }

    /// `api.base_url` without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The date format activity windows are sent in: `api.date_format`, or `Date` after the
    /// API rejected a date-time bound (see `activities`).
    pub fn effective_date_format(&self) -> DateFormat {
        match self.inner.date_format.load(Ordering::Relaxed) {
            0 => DateFormat::Naive,
            1 => DateFormat::Rfc3339,
            _ => DateFormat::Date,
        }
    }

    /// `GET /v1/whoami` (beta): the caller's identity; `Ok(None)` when the endpoint answers 404.
    pub async fn whoami(&self) -> Result<Option<WhoAmI>, ApiError> {
        let url = self.url(&["v1", "whoami"]);
        let r = match self.inner.fetch(Endpoint::WhoAmI, &url, &Identity).await {
            Ok(page) => Ok(Some(page.result)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        self.inner.finish(Endpoint::WhoAmI, r)
    }

    /// `GET /v1/organizations`: the organization(s) the key can see (every page).
    pub async fn organizations(&self) -> Result<Vec<RawObject>, ApiError> {
        self.list(Endpoint::Organizations, &["v1", "organizations"], "id")
            .await
    }

    /// `GET /v1/organizations/{org}/activities?from_date=…&to_date=…`: every activity of the
    /// window in one answer (the API has no pagination). Bounds are written per
    /// `effective_date_format` and only ever widen the window (`dates::window_params`).
    ///
    /// If the API answers 400 with an error mentioning a date while a date-time format is in
    /// use, this client switches to `date` for good (one WARN, `api_date_format_fallback_total`)
    /// and repeats the call with day bounds: a wider window, which downstream dedupe absorbs.
    pub async fn activities(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ActivityBatch, ApiError> {
        self.activities_capped(org, from, to, None).await
    }

    /// `activities`, abandoning the answer with `ApiError::TooLarge` once its body passes
    /// `max_bytes` (the poller then splits the window): memory stays bounded however much the
    /// window holds.
    pub async fn activities_capped(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_bytes: Option<usize>,
    ) -> Result<ActivityBatch, ApiError> {
        let format = self.effective_date_format();
        let r = match self.activities_in(org, from, to, format, max_bytes).await {
            Err(ApiError::BadRequest {
                request_id,
                message,
            }) if format != DateFormat::Date && message.to_lowercase().contains("date") => {
                self.fall_back_to_dates(format, request_id.as_deref(), &message);
                self.activities_in(org, from, to, DateFormat::Date, max_bytes)
                    .await
            }
            r => r,
        };
        self.inner.finish(Endpoint::Activities, r)
    }

    async fn activities_in(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        format: DateFormat,
        max_bytes: Option<usize>,
    ) -> Result<ActivityBatch, ApiError> {
        let mut url = self.url(&["v1", "organizations", org, "activities"]);
        let (from_date, to_date) = dates::window_params(format, from, to);
        url.query_pairs_mut()
            .append_pair("from_date", &from_date)
            .append_pair("to_date", &to_date);
        let page = self
            .inner
            .pages(
                Endpoint::Activities,
                url,
                &Activities { max_bytes },
                |acc, more| {
                    acc.activities.extend(more.activities);
                    acc.quarantined.extend(more.quarantined);
                },
            )
            .await?;
        let Page {
            request_id,
            result:
                ActivityList {
                    activities,
                    quarantined,
                },
            bytes,
            date,
            ..
        } = page;
        Ok(ActivityBatch {
            activities,
            quarantined,
            request_id,
            body_bytes: bytes,
            server_date: date,
        })
    }

    fn fall_back_to_dates(&self, from: DateFormat, request_id: Option<&str>, message: &str) {
        let switched = self
            .inner
            .date_format
            .compare_exchange(
                date_format_code(from),
                date_format_code(DateFormat::Date),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if switched {
            self.inner.metrics.api_date_format_fallbacks.inc();
            tracing::warn!(
                from = ?from,
                request_id = request_id.unwrap_or(""),
                api_error = message,
                "the API rejected a date-time activity window; using day-granular dates \
                 (api.date_format = \"date\") from now on — windows get wider, dedupe drops the \
                 repeats"
            );
        }
    }

    /// `GET /v1/organizations/{org}/services`.
    pub async fn services(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(
            Endpoint::Services,
            &["v1", "organizations", org, "services"],
            "id",
        )
        .await
    }

    /// `GET /v1/organizations/{org}/services/{service_id}/backups` (most recent first).
    pub async fn backups(&self, org: &str, service_id: &str) -> Result<Vec<RawObject>, ApiError> {
        let path = [
            "v1",
            "organizations",
            org,
            "services",
            service_id,
            "backups",
        ];
        self.list(Endpoint::Backups, &path, "id").await
    }

    /// `GET /v1/organizations/{org}/keys` (every page).
    pub async fn keys(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(Endpoint::Keys, &["v1", "organizations", org, "keys"], "id")
            .await
    }

    /// `GET /v1/organizations/{org}/members`; ids come from `userId`.
    pub async fn members(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(
            Endpoint::Members,
            &["v1", "organizations", org, "members"],
            "userId",
        )
        .await
    }

    /// `GET /v1/organizations/{org}/invitations`.
    pub async fn invitations(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(
            Endpoint::Invitations,
            &["v1", "organizations", org, "invitations"],
            "id",
        )
        .await
    }

    async fn list(
        &self,
        endpoint: Endpoint,
        path: &[&str],
        id_key: &'static str,
    ) -> Result<Vec<RawObject>, ApiError> {
        let url = self.url(path);
        let r = self
            .inner
            .pages(endpoint, url, &Objects { id_key }, Vec::extend)
            .await
            .map(|page| page.result);
        self.inner.finish(endpoint, r)
    }

    /// `base_url` + percent-encoded path segments (an org id cannot add a path level).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("new() accepts only http(s) URLs, which have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }
}

fn date_format_code(f: DateFormat) -> u8 {
    match f {
        DateFormat::Naive => 0,
        DateFormat::Rfc3339 => 1,
        DateFormat::Date => 2,
    }
}
