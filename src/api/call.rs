//! One API call: wait for the shared limiter, send, hand the answer to `response` (decode or
//! classify into `ApiError`), and retry what is transient — 429 after its reset (blocking
//! every caller of the key), 5xx/timeouts/connection errors/unreadable bodies after capped
//! exponential backoff with full jitter. Follows `nextCursor` pages. Counts the per-request
//! `api_*` metrics and logs each request at DEBUG, each retry at WARN.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::ACCEPT;
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::decode::ResultShape;
use super::ratelimit::{Permit, Priority};
use super::response::{Page, causes};
use super::{ApiError, Endpoint, Inner};
use crate::retry::{Backoff, Jitter};

/// First retry waits up to this long (full jitter: many callers of one key spread out),
/// doubling up to `api.max_backoff`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// A paged list with more pages than this is taken as a cursor loop.
const MAX_PAGES: usize = 10_000;

impl Inner {
    /// Counts a failure that ends a public call (`api_errors_total`), once per call.
    pub(crate) fn finish<T>(&self, ep: Endpoint, r: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &r {
            self.metrics
                .api_errors
                .with_label_values(&[ep.label(), e.kind()])
                .inc();
        }
        r
    }

    /// Fetches `url` and every further page its `nextCursor` names, merging results with
    /// `merge`. Each page is a call of its own (own retries, own limiter slots, all at
    /// `priority`).
    pub(crate) async fn pages<S: ResultShape>(
        &self,
        ep: Endpoint,
        url: Url,
        shape: &S,
        priority: Priority,
        mut merge: impl FnMut(&mut S::Output, S::Output),
    ) -> Result<Page<S::Output>, ApiError> {
        let mut page = self.fetch(ep, &url, shape, priority).await?;
        let mut seen = HashSet::new();
        while let Some(cursor) = page.next_cursor.take() {
            let looping = if !seen.insert(cursor.clone()) {
                Some(format!("nextCursor {cursor:?} came back"))
            } else if seen.len() >= MAX_PAGES {
                Some(format!("more than {MAX_PAGES} pages"))
            } else {
                None
            };
            if let Some(why) = looping {
                return Err(ApiError::Decode {
                    endpoint: ep.label(),
                    request_id: page.request_id,
                    message: format!("pagination does not end: {why}"),
                    excerpt: String::new(),
                });
            }
            let mut next_url = url.clone();
            next_url.query_pairs_mut().append_pair("cursor", &cursor);
            let next = self.fetch(ep, &next_url, shape, priority).await?;
            merge(&mut page.result, next.result);
            page.bytes += next.bytes;
            page.next_cursor = next.next_cursor;
        }
        Ok(page)
    }

    /// One logical request with its retries, each attempt taking a limiter slot at `priority`.
    pub(crate) async fn fetch<S: ResultShape>(
        &self,
        ep: Endpoint,
        url: &Url,
        shape: &S,
        priority: Priority,
    ) -> Result<Page<S::Output>, ApiError> {
        let mut retries = 0;
        loop {
            let permit = self.limiter.acquire(priority).await;
            let waited = permit.waited();
            let wait_metric = &self.metrics.api_rate_limit_wait_seconds;
            wait_metric
                .with_label_values(&["limiter"])
                .inc_by(waited.limiter.as_secs_f64());
            wait_metric
                .with_label_values(&["reset"])
                .inc_by(waited.reset.as_secs_f64());
            self.metrics
                .api_key_rate_limit_wait_seconds
                .with_label_values(&[&self.key_name])
                .inc_by((waited.limiter + waited.reset).as_secs_f64());

            let err = match self.attempt(ep, url, shape.clone(), permit).await {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            // A streamed answer whose receiver is gone has no one left to retry for.
            if retries >= self.max_retries || !err.is_retryable() || shape.abandoned() {
                return Err(err);
            }
            retries += 1;
            self.metrics
                .api_retries
                .with_label_values(&[ep.label()])
                .inc();
            if let ApiError::RateLimited { reset, .. } = &err {
                // The wait happens in `acquire`, so every caller of this key waits with us.
                let wait = reset.unwrap_or(self.window) + Duration::from_secs_f64(fastrand::f64());
                self.limiter.block_until(Instant::now() + wait);
                tracing::warn!(
                    endpoint = ep.label(),
                    retry = retries,
                    max_retries = self.max_retries,
                    wait_ms = wait.as_millis() as u64,
                    request_id = err.request_id().unwrap_or(""),
                    key = %self.key_name,
                    "rate limited by the API (429); every call of this key waits for the reset"
                );
            } else {
                let backoff = Backoff::new(BACKOFF_BASE, self.max_backoff, Jitter::Full);
                let wait = backoff.delay(retries - 1);
                tracing::warn!(
                    endpoint = ep.label(),
                    retry = retries,
                    max_retries = self.max_retries,
                    wait_ms = wait.as_millis() as u64,
                    error = %err,
                    "API call failed; will retry"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// One HTTP exchange, classified. `permit` is released (stamped "answered") as soon as the
    /// response headers or an error arrive: the server has seen the request by then, and a
    /// long body must not hold the window.
    async fn attempt<S: ResultShape>(
        &self,
        ep: Endpoint,
        url: &Url,
        shape: S,
        permit: Permit<'_>,
    ) -> Result<Page<S::Output>, ApiError> {
        let started = Instant::now();
        let sent = self
            .http
            .get(url.clone())
            .basic_auth(&self.key_id, Some(self.key_secret.expose_secret()))
            .header(ACCEPT, "application/json")
            .send()
            .await;
        permit.answered();
        let (outcome, status, request_id) = match sent {
            Err(e) => {
                let err = if e.is_timeout() {
                    ApiError::Timeout {
                        endpoint: ep.label(),
                    }
                } else {
                    ApiError::Transport {
                        message: self.scrub(causes(&e.without_url())),
                    }
                };
                (Err(err), None, None)
            }
            Ok(resp) => {
                let status = resp.status();
                let header_id = resp
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let outcome = if status.is_success() {
                    self.read_envelope(ep, resp, shape, header_id).await
                } else {
                    Err(self.error_response(ep, resp, header_id).await)
                };
                let request_id = match &outcome {
                    Ok(page) => page.request_id.clone(),
                    Err(e) => e.request_id().map(str::to_owned),
                };
                (outcome, Some(status), request_id)
            }
        };
        let elapsed = started.elapsed();
        let class = match status.map(|s| s.as_u16() / 100) {
            None => "error",
            Some(1) => "1xx",
            Some(2) => "2xx",
            Some(3) => "3xx",
            Some(4) => "4xx",
            Some(_) => "5xx",
        };
        let m = &self.metrics;
        m.api_requests.with_label_values(&[ep.label(), class]).inc();
        m.api_key_requests
            .with_label_values(&[&self.key_name, class])
            .inc();
        m.api_request_duration
            .with_label_values(&[ep.label()])
            .observe(elapsed.as_secs_f64());
        match &outcome {
            Err(ApiError::Decode { .. }) => {
                m.api_decode_failures.with_label_values(&[ep.label()]).inc()
            }
            Err(ApiError::RateLimited { .. }) => {
                m.api_rate_limited.with_label_values(&[ep.label()]).inc();
                m.api_key_rate_limited
                    .with_label_values(&[&self.key_name])
                    .inc();
            }
            _ => {}
        }
        tracing::debug!(
            method = "GET",
            endpoint = ep.label(),
            path = url.path(),
            query = url.query().unwrap_or(""),
            status = status.map_or(0, |s| s.as_u16()),
            ms = elapsed.as_millis() as u64,
            request_id = request_id.as_deref().unwrap_or(""),
            error = outcome.as_ref().err().map(tracing::field::display),
            "API request"
        );
        outcome
    }
}
