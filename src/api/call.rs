//! One API call: wait for the shared limiter, send, read and decode the body, classify the
//! outcome into `ApiError`, and retry what is transient — 429 after its reset (blocking every
//! caller of the key), 5xx/timeouts/connection errors/unreadable bodies after capped
//! exponential backoff with full jitter. Follows `nextCursor` pages. Counts every `api_*`
//! metric and logs each request at DEBUG, each retry at WARN.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes};
use reqwest::header::{ACCEPT, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::decode::{self, Envelope, ResultShape, describe, error_body, excerpt};
use super::{ApiError, Endpoint, Inner};

/// One decoded page of a call.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub request_id: Option<String>,
    pub result: T,
    pub next_cursor: Option<String>,
    /// Body bytes received (summed over pages by `pages`).
    pub bytes: usize,
}

/// First retry waits up to this long (full jitter), doubling up to `api.max_backoff`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// A 429 reset longer than this is capped (a misread epoch must not park the exporter).
const MAX_RESET_WAIT: Duration = Duration::from_secs(15 * 60);
/// Error bodies are read up to this size; the rest is dropped.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Body chunks in flight between the network and the decoding thread.
const CHUNKS_IN_FLIGHT: usize = 16;
/// Chars of a body quoted in a `Decode` error.
const EXCERPT_CHARS: usize = 120;
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
    /// `merge`. Each page is a call of its own (own retries, own limiter slots).
    pub(crate) async fn pages<S: ResultShape>(
        &self,
        ep: Endpoint,
        url: Url,
        shape: &S,
        mut merge: impl FnMut(&mut S::Output, S::Output),
    ) -> Result<Page<S::Output>, ApiError> {
        let mut page = self.fetch(ep, &url, shape).await?;
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
            let next = self.fetch(ep, &next_url, shape).await?;
            merge(&mut page.result, next.result);
            page.bytes += next.bytes;
            page.next_cursor = next.next_cursor;
        }
        Ok(page)
    }

    /// One logical request with its retries.
    pub(crate) async fn fetch<S: ResultShape>(
        &self,
        ep: Endpoint,
        url: &Url,
        shape: &S,
    ) -> Result<Page<S::Output>, ApiError> {
        let mut retries = 0;
        loop {
            let waited = self.limiter.acquire().await;
            let wait_metric = &self.metrics.api_rate_limit_wait_seconds;
            wait_metric
                .with_label_values(&["limiter"])
                .inc_by(waited.limiter.as_secs_f64());
            wait_metric
                .with_label_values(&["reset"])
                .inc_by(waited.reset.as_secs_f64());

            let err = match self.attempt(ep, url, shape.clone()).await {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            if retries >= self.max_retries || !err.is_retryable() {
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
                    "rate limited by the API (429); every call of this key waits for the reset"
                );
            } else {
                let cap = self
                    .max_backoff
                    .min(BACKOFF_BASE.saturating_mul(1 << (retries - 1).min(20)));
                let wait = cap.mul_f64(fastrand::f64());
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

    /// One HTTP exchange, classified.
    async fn attempt<S: ResultShape>(
        &self,
        ep: Endpoint,
        url: &Url,
        shape: S,
    ) -> Result<Page<S::Output>, ApiError> {
        let started = Instant::now();
        let sent = self
            .http
            .get(url.clone())
            .basic_auth(&self.key_id, Some(self.key_secret.expose_secret()))
            .header(ACCEPT, "application/json")
            .send()
            .await;
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
        m.api_request_duration
            .with_label_values(&[ep.label()])
            .observe(elapsed.as_secs_f64());
        match &outcome {
            Err(ApiError::Decode { .. }) => {
                m.api_decode_failures.with_label_values(&[ep.label()]).inc()
            }
            Err(ApiError::RateLimited { .. }) => {
                m.api_rate_limited.with_label_values(&[ep.label()]).inc()
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

    /// Streams a 2xx body into the decoder on a blocking thread (parsing hundreds of MB must
    /// not stall the runtime), so the body is never held whole: only the decoded elements are.
    async fn read_envelope<S: ResultShape>(
        &self,
        ep: Endpoint,
        mut resp: reqwest::Response,
        shape: S,
        header_id: Option<String>,
    ) -> Result<Page<S::Output>, ApiError> {
        let expected = resp.content_length();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let decoder = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            // serde_json reads a byte at a time; through a BufReader that is ~2x faster
            // (measured ≈200 MB/s for activity arrays, vs ≈110 MB/s without).
            let reader = io::BufReader::with_capacity(64 * 1024, reader);
            decode::decode_envelope(&shape, serde_json::Deserializer::from_reader(reader))
        });
        let mut head = Vec::new();
        let mut bytes = 0usize;
        let read_error = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    bytes += chunk.len();
                    self.metrics
                        .api_bytes_received
                        .with_label_values(&[ep.label()])
                        .inc_by(chunk.len() as u64);
                    if head.len() < EXCERPT_CHARS * 4 {
                        head.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_CHARS * 4)]);
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        break None; // the decoder stopped at an error
                    }
                }
                Ok(None) => break None,
                Err(e) => {
                    let _ = tx.send(Err(())).await;
                    break Some(e);
                }
            }
        };
        drop(tx);
        let decoded = match decoder.await {
            Ok(d) => d,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        let decode_error = |request_id, message| ApiError::Decode {
            endpoint: ep.label(),
            request_id,
            message,
            excerpt: self.scrub(excerpt(&head, EXCERPT_CHARS)),
        };
        if let Some(e) = read_error {
            if e.is_timeout() {
                return Err(ApiError::Timeout {
                    endpoint: ep.label(),
                });
            }
            let of = expected.map_or(String::new(), |n| format!(" of {n}"));
            let message = format!(
                "response truncated after {bytes}{of} bytes: the connection closed early ({})",
                causes(&e.without_url())
            );
            return Err(decode_error(header_id, message));
        }
        let env: Envelope<S::Output> = match decoded {
            Ok(env) => env,
            Err(e) => return Err(decode_error(header_id, describe(&e, bytes))),
        };
        let Some(result) = env.result else {
            let said = env
                .error
                .map_or(String::new(), |e| format!(" (error: {e})"));
            let message = format!("the envelope has no `result` field{said}");
            return Err(decode_error(
                env.request_id.or(header_id),
                self.scrub(message),
            ));
        };
        Ok(Page {
            request_id: env.request_id.or(header_id),
            result,
            next_cursor: env.next_cursor,
            bytes,
        })
    }

    /// Maps a non-2xx answer to its `ApiError`, reading at most `ERROR_BODY_LIMIT` of the body
    /// (whatever arrives: these bodies are undocumented and may not be JSON).
    async fn error_response(
        &self,
        ep: Endpoint,
        mut resp: reqwest::Response,
        header_id: Option<String>,
    ) -> ApiError {
        let status = resp.status();
        let reset = reset_after(resp.headers());
        let location = resp.headers().get(LOCATION).map(|l| {
            let l = l.to_str().unwrap_or("?");
            format!("redirected to {l}")
        });
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    self.metrics
                        .api_bytes_received
                        .with_label_values(&[ep.label()])
                        .inc_by(chunk.len() as u64);
                    body.extend_from_slice(&chunk);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let (body_id, message) = error_body(&body);
        let request_id = body_id.or(header_id);
        let message = self.scrub(message);
        match status {
            StatusCode::BAD_REQUEST => ApiError::BadRequest {
                request_id,
                message,
            },
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized {
                request_id,
                message,
            },
            StatusCode::FORBIDDEN => ApiError::Forbidden {
                permission: ep.permission(),
                request_id,
                message,
            },
            StatusCode::NOT_FOUND => ApiError::NotFound {
                request_id,
                message,
            },
            StatusCode::TOO_MANY_REQUESTS => ApiError::RateLimited { reset, request_id },
            s if s.is_client_error() && !matches!(s.as_u16(), 408 | 409 | 425) => {
                ApiError::BadRequest {
                    request_id,
                    message: format!("HTTP {}: {message}", s.as_u16()),
                }
            }
            s => ApiError::Server {
                status: s.as_u16(),
                request_id,
                message: location.unwrap_or(message),
            },
        }
    }

    /// Removes the key secret and the Authorization credentials from text that came from the
    /// network (a body may echo anything).
    fn scrub(&self, mut text: String) -> String {
        for secret in [&self.key_secret, &self.basic_credentials] {
            let secret = secret.expose_secret();
            if text.contains(secret) {
                text = text.replace(secret, "[REDACTED]");
            }
        }
        text
    }
}

/// How long a 429 asks to wait: `X-RateLimit-Reset` (seconds, as the Terraform provider reads
/// it; a value past 1e9 is taken as a Unix time) and `Retry-After` (seconds or an HTTP date);
/// the longer of the two, capped at `MAX_RESET_WAIT`.
pub(crate) fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    let now_unix = || chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let secs = |v: f64| Duration::try_from_secs_f64(v).ok();
    let reset = header("x-ratelimit-reset")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|v| secs(if v > 1e9 { v - now_unix() } else { v }));
    let retry_after = header(RETRY_AFTER.as_str()).and_then(|v| match v.parse::<f64>() {
        Ok(n) => secs(n),
        Err(_) => chrono::DateTime::parse_from_rfc2822(v)
            .ok()
            .and_then(|t| secs(t.timestamp_millis() as f64 / 1000.0 - now_unix())),
    });
    reset.max(retry_after).map(|d| d.min(MAX_RESET_WAIT))
}

/// An error and its sources, `a: b: c`, without repeats.
fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Feeds body chunks from the async side to the blocking decoder. A failed read arrives as
/// `Err(())` and surfaces as an I/O error in the decoder; the async side words it.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, ()>>,
    current: Bytes,
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(())) => return Err(io::Error::other("reading the body failed")),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reset_reads_seconds_epochs_and_retry_after() {
        let d = |s: f64| Some(Duration::from_secs_f64(s));
        assert_eq!(
            reset_after(&headers(&[("x-ratelimit-reset", "2.5")])),
            d(2.5)
        );
        assert_eq!(reset_after(&headers(&[("retry-after", "7")])), d(7.0));
        assert_eq!(
            reset_after(&headers(&[
                ("x-ratelimit-reset", "1"),
                ("retry-after", "3")
            ])),
            d(3.0)
        );
        let epoch = chrono::Utc::now().timestamp() + 30;
        let got = reset_after(&headers(&[("x-ratelimit-reset", &epoch.to_string())])).unwrap();
        assert!(
            got > Duration::from_secs(28) && got <= Duration::from_secs(31),
            "{got:?}"
        );
        assert_eq!(
            reset_after(&headers(&[("x-ratelimit-reset", "1e7")])),
            Some(MAX_RESET_WAIT)
        );
        assert_eq!(reset_after(&headers(&[("x-ratelimit-reset", "-1")])), None);
        assert_eq!(
            reset_after(&headers(&[("x-ratelimit-reset", "soon")])),
            None
        );
        assert_eq!(reset_after(&HeaderMap::new()), None);
    }
}
