//! The ClickHouse Cloud control-plane API client (`https://api.clickhouse.cloud/v1/...`): one
//! `Client` per API key, shared by every poller. Every request of a `Client` passes one sliding
//! window rate limiter (`ratelimit`, `Normal` or `Low` priority), is retried when transient
//! (`call`), and its envelope is decoded in one streaming pass that keeps each object's exact
//! bytes (`decode`, `models`); an activity window can instead be handed on in chunks as it is
//! decoded (`activities_window` with `StreamTo`). The activity window's date format steps down
//! `rfc3339` → `naive` → `date`, one step per 400 about dates (`dates`).
//! Facts and uncertainties about the API: docs/clickhouse-cloud-api.md.
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
use tokio::sync::mpsc;

use crate::config::{ApiConfig, Credentials, DateFormat};
use crate::metrics::Metrics;

pub use error::ApiError;
pub use models::{Activity, ActivityBatch, ActivityChunk, Quarantined, RawObject, WhoAmI};
pub use ratelimit::{Priority, RateLimiter};
// Entry points for the fuzz targets in fuzz/ (issue 8); not a stable API.
#[doc(hidden)]
pub use decode::{decode_activities_body, error_body};
#[doc(hidden)]
pub use response::reset_after;

use decode::{Activities, ActivityList, Identity, Objects, StreamedActivities};

/// `User-Agent` of every request (the one of every HTTP client of ours).
pub use crate::http::USER_AGENT;

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

/// How `Client::activities_window` fetches and hands over one window.
#[derive(Debug, Clone, Default)]
pub struct WindowRequest {
    /// Abandon the answer with `ApiError::TooLarge` once its body passes this many bytes (the
    /// poller then splits the window). Ignored when streaming: memory is bounded anyway.
    pub max_bytes: Option<usize>,
    /// The rate limiter priority of every request of the window (`Low` for background sweeps).
    pub priority: Priority,
    /// Hand the activities over in chunks as they are decoded instead of collecting them.
    pub stream: Option<StreamTo>,
}

/// Where a streamed window's activities go: chunks of `batch` elements (activities +
/// quarantined), sent from the decoding thread, which waits while `tx` is full. Memory stays
/// at about `batch` × (the channel's capacity + 2) elements however large the answer.
///
/// A failed attempt that is retried (a truncated body, a timeout mid-body) may already have
/// sent some chunks, and the retry sends the whole window again: the receiver must dedupe (by
/// activity id, as it does across overlapping windows anyway). Dropping the receiver abandons
/// the fetch (an `ApiError::Decode` that is not retried).
#[derive(Debug, Clone)]
pub struct StreamTo {
    /// Elements per chunk (at least 1); the last chunk may be shorter. An empty answer sends
    /// nothing.
    pub batch: usize,
    /// The receiver of the chunks.
    pub tx: mpsc::Sender<ActivityChunk>,
}

/// What `Client::probe_date_format` found out.
#[derive(Debug, Clone)]
pub struct DateProbe {
    /// The format the API accepted (now the client's effective format).
    pub accepted: DateFormat,
    /// The `from_date` value it accepted.
    pub from_date: String,
    /// The formats refused on the way, in order, each with the API's message.
    pub refused: Vec<(DateFormat, String)>,
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
    /// The `DateFormat` in use, as `date_format_code`: steps down one format per refusal
    /// (`dates::step_down`), or is set by `set_date_format`.
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

    /// The date format activity windows are sent in: `api.date_format` (or what
    /// `set_date_format` restored), stepped down once per refusal (see `activities_window`).
    pub fn effective_date_format(&self) -> DateFormat {
        date_format_of(self.inner.date_format.load(Ordering::Relaxed))
    }

    /// Sets the date format of every clone, e.g. to restore at start the format a previous run
    /// stepped down to (persisted by the caller), so the refusals are not repeated.
    pub fn set_date_format(&self, format: DateFormat) {
        self.inner
            .date_format
            .store(date_format_code(format), Ordering::Relaxed);
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

    /// `GET /v1/whoami` (beta): the caller's identity; `Ok(None)` when the endpoint answers 404.
    pub async fn whoami(&self) -> Result<Option<WhoAmI>, ApiError> {
        let url = self.url(&["v1", "whoami"]);
        let r = match self
            .inner
            .fetch(Endpoint::WhoAmI, &url, &Identity, Priority::Normal)
            .await
        {
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
    /// window in one answer (`activities_window` with the defaults: collected, `Normal`).
    pub async fn activities(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ActivityBatch, ApiError> {
        self.activities_window(org, from, to, WindowRequest::default())
            .await
    }

    /// `activities` abandoned with `ApiError::TooLarge` once the body passes `max_bytes`
    /// (`activities_window` with `WindowRequest::max_bytes`).
    pub async fn activities_capped(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_bytes: Option<usize>,
    ) -> Result<ActivityBatch, ApiError> {
        let req = WindowRequest {
            max_bytes,
            ..WindowRequest::default()
        };
        self.activities_window(org, from, to, req).await
    }

    /// `GET /v1/organizations/{org}/activities?from_date=…&to_date=…` for `[from, to]`: every
    /// activity of the window in one answer (the API has no pagination), collected into the
    /// batch or streamed per `req.stream`. Bounds are written per `effective_date_format` and
    /// only ever widen the window (`dates::window_params`); `ActivityBatch::format` and
    /// `bounds` say what was sent and what the answer may cover.
    ///
    /// If the API answers 400 with an error mentioning a date, the client steps down one
    /// format (`rfc3339` → `naive` → `date`) for good, for every clone (one WARN and
    /// `api_date_format_fallback_total{from,to}` per step), and repeats the window right away
    /// in the next format; a 400 in `date` is returned.
    ///
    /// # Errors
    /// The call's `ApiError` after its retries (`TooLarge` past `req.max_bytes`).
    pub async fn activities_window(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        req: WindowRequest,
    ) -> Result<ActivityBatch, ApiError> {
        let r = self
            .window_stepping_down(org, from, to, &req, &mut Vec::new())
            .await;
        self.inner.finish(Endpoint::Activities, r)
    }

    /// Asks for the one-second window `now - 1 s … now` in the effective format, stepping down
    /// on refusals as `activities_window` does, and reports which format was accepted (for
    /// `validate`; it also proves the key may read activities).
    ///
    /// # Errors
    /// As `activities_window`; a `BadRequest` when even `date` is refused.
    pub async fn probe_date_format(&self, org: &str) -> Result<DateProbe, ApiError> {
        let to = Utc::now();
        let from = to - chrono::TimeDelta::seconds(1);
        let mut refused = Vec::new();
        let r = self
            .window_stepping_down(org, from, to, &WindowRequest::default(), &mut refused)
            .await
            .map(|batch| DateProbe {
                accepted: batch.format,
                from_date: dates::window_params(batch.format, from, to).0,
                refused,
            });
        self.inner.finish(Endpoint::Activities, r)
    }

    /// The window in the effective format, then in each lower one the API's 400s ask for;
    /// `refused` collects the formats refused and the API's messages.
    async fn window_stepping_down(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        req: &WindowRequest,
        refused: &mut Vec<(DateFormat, String)>,
    ) -> Result<ActivityBatch, ApiError> {
        let mut format = self.effective_date_format();
        loop {
            let r = self.window_in(org, from, to, format, req).await;
            if let Err(ApiError::BadRequest {
                request_id,
                message,
            }) = &r
                && message.to_lowercase().contains("date")
                && let Some(next) = dates::step_down(format)
            {
                self.step_down(format, next, request_id.as_deref(), message);
                refused.push((format, message.clone()));
                // Another caller may have stepped further meanwhile: take the lower one.
                let now = self.inner.date_format.load(Ordering::Relaxed);
                format = date_format_of(now.max(date_format_code(next)));
                continue;
            }
            return r;
        }
    }

    async fn window_in(
        &self,
        org: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        format: DateFormat,
        req: &WindowRequest,
    ) -> Result<ActivityBatch, ApiError> {
        let mut url = self.url(&["v1", "organizations", org, "activities"]);
        let (from_date, to_date) = dates::window_params(format, from, to);
        url.query_pairs_mut()
            .append_pair("from_date", &from_date)
            .append_pair("to_date", &to_date);
        let (ep, priority) = (Endpoint::Activities, req.priority);
        let (page, activities, quarantined, count) = match &req.stream {
            None => {
                let shape = Activities {
                    max_bytes: req.max_bytes,
                };
                let page = self
                    .inner
                    .pages(ep, url, &shape, priority, |acc, more| {
                        acc.activities.extend(more.activities);
                        acc.quarantined.extend(more.quarantined);
                    })
                    .await?;
                let mut list = ActivityList::default();
                let page = page.map(|l| list = l);
                let count = list.activities.len() + list.quarantined.len();
                (page, list.activities, list.quarantined, count)
            }
            Some(StreamTo { batch, tx }) => {
                let shape = StreamedActivities {
                    batch: *batch,
                    tx: tx.clone(),
                };
                let page = self
                    .inner
                    .pages(ep, url, &shape, priority, |acc, more| *acc += more)
                    .await?;
                let count = page.result;
                (page.map(drop), Vec::new(), Vec::new(), count)
            }
        };
        Ok(ActivityBatch {
            activities,
            quarantined,
            count,
            format,
            bounds: dates::window_bounds(format, from, to),
            request_id: page.request_id,
            body_bytes: page.bytes,
            server_date: page.date,
        })
    }

    /// Moves the effective format from `from` to `to` (unless another caller already moved
    /// it), logging and counting the step once.
    fn step_down(&self, from: DateFormat, to: DateFormat, request_id: Option<&str>, message: &str) {
        let switched = self
            .inner
            .date_format
            .compare_exchange(
                date_format_code(from),
                date_format_code(to),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if switched {
            let (from, to) = (dates::format_name(from), dates::format_name(to));
            self.inner
                .metrics
                .api_date_format_fallbacks
                .with_label_values(&[from, to])
                .inc();
            tracing::warn!(
                from,
                to,
                request_id = request_id.unwrap_or(""),
                api_error = message,
                "the API rejected the activity window's date format (400); retrying the window \
                 and every later one in the next format (api.date_format)"
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
            .pages(
                endpoint,
                url,
                &Objects { id_key },
                Priority::Normal,
                Vec::extend,
            )
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

/// The format as stored in `Inner::date_format`: a higher code is a lower step
/// (`dates::step_down` order).
fn date_format_code(f: DateFormat) -> u8 {
    match f {
        DateFormat::Rfc3339 => 0,
        DateFormat::Naive => 1,
        DateFormat::Date => 2,
    }
}

fn date_format_of(code: u8) -> DateFormat {
    match code {
        0 => DateFormat::Rfc3339,
        1 => DateFormat::Naive,
        _ => DateFormat::Date,
    }
}
