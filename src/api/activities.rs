//! The activities endpoint: one window `[from, to]` fetched in the effective date format
//! (stepping down on a 400 about dates, `date_format.rs`), collected into an `ActivityBatch`
//! or streamed in chunks (`WindowRequest`, `StreamTo`), and the date-format probe of
//! `validate` (`DateProbe`).

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::decode::{Activities, ActivityList, StreamedActivities};
use super::{ActivityBatch, ActivityChunk, ApiError, Client, Endpoint, Priority, dates};
use crate::config::DateFormat;

/// How `Client::activities_window` fetches and hands over one window.
#[derive(Debug, Clone, Default)]
pub struct WindowRequest {
    /// Abandon the answer with `ApiError::TooLarge` once its body passes this many bytes (the
    /// poller then splits the window); streamed chunks sent before that stay sent.
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

impl Client {
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
                format = self.inner.date_format.lowest_with(next);
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
                    max_bytes: req.max_bytes,
                    format,
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
}
