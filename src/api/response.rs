//! Reading one HTTP answer: a 2xx body is streamed into the envelope decoder on a blocking
//! thread (never held whole), a non-2xx one becomes its `ApiError` (with the 429 reset read
//! from `X-RateLimit-Reset`/`Retry-After`). Every text that came from the network is scrubbed
//! of the key secret before it can reach an error or a log line.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use super::decode::{self, Envelope, ResultShape, describe, error_body, excerpt};
use super::{ApiError, Endpoint, Inner};

/// A 429 reset longer than this is capped (a misread epoch must not park the exporter).
const MAX_RESET_WAIT: Duration = Duration::from_secs(15 * 60);

/// One decoded page of a call.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub request_id: Option<String>,
    pub result: T,
    pub next_cursor: Option<String>,
    /// Body bytes received (summed over pages by `pages`).
    pub bytes: usize,
    /// The server's HTTP `Date` (of the first page).
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

impl<T> Page<T> {
    /// The same page with its result mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Page<U> {
        Page {
            request_id: self.request_id,
            result: f(self.result),
            next_cursor: self.next_cursor,
            bytes: self.bytes,
            date: self.date,
        }
    }
}

/// Error bodies are read up to this size; the rest is dropped.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Body chunks in flight between the network and the decoding thread. Each pins a part of
/// hyper's read buffer (tens of kB); with 16, the body buffers were the largest item of the
/// soak's heap peak (16.7 MiB over three orgs polling at once, heaptrack, issue 17). The
/// decoder is the slower side, so more would only queue.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Chars of a body quoted in a `Decode` error.
const EXCERPT_CHARS: usize = 120;

impl Inner {
    /// Streams a 2xx body into the decoder on a blocking thread (parsing hundreds of MB must
    /// not stall the runtime), so the body is never held whole: only the decoded elements are.
    pub(crate) async fn read_envelope<S: ResultShape>(
        &self,
        ep: Endpoint,
        mut resp: reqwest::Response,
        shape: S,
        header_id: Option<String>,
    ) -> Result<Page<S::Output>, ApiError> {
        let expected = resp.content_length();
        let max_bytes = shape.max_bytes();
        let date = server_date(resp.headers());
        if let (Some(max), Some(len)) = (max_bytes, expected)
            && len > max as u64
        {
            // Announced too large: refuse before reading a byte of it.
            return Err(ApiError::TooLarge {
                endpoint: ep.label(),
                limit: max,
                bytes: len as usize,
            });
        }
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let receiver_check = shape.clone();
        let decoder = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            decode::decode_envelope(&shape, reader)
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
                    if max_bytes.is_some_and(|max| bytes > max) {
                        let _ = tx.send(Err(())).await;
                        break Some(Err(max_bytes.unwrap_or(0)));
                    }
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
                    break Some(Ok(e));
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
        let read_error = match read_error {
            Some(Err(limit)) => {
                // The decoder saw an error chunk and stopped; the rest of the body is dropped.
                return Err(ApiError::TooLarge {
                    endpoint: ep.label(),
                    limit,
                    bytes,
                });
            }
            Some(Ok(e)) => Some(e),
            None => None,
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
            Err(_) if receiver_check.abandoned() => {
                return Err(decode_error(header_id, decode::STREAM_CLOSED.into()));
            }
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
            date,
        })
    }

    /// Maps a non-2xx answer to its `ApiError`, reading at most `ERROR_BODY_LIMIT` of the body
    /// (whatever arrives: these bodies are undocumented and may not be JSON).
    pub(crate) async fn error_response(
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
    pub(crate) fn scrub(&self, mut text: String) -> String {
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
/// the longer of the two, capped at `MAX_RESET_WAIT`. `pub` (hidden) only for the fuzz target
/// `dates`.
pub fn reset_after(headers: &HeaderMap) -> Option<Duration> {
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
    let retry_after = crate::http::retry_after(headers, MAX_RESET_WAIT);
    reset.max(retry_after).map(|d| d.min(MAX_RESET_WAIT))
}

/// An error and its sources, `a: b: c`, without repeats.
pub(crate) fn causes(e: &(dyn StdError + 'static)) -> String {
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

/// The HTTP `Date` of an answer: the server's clock when it answered (1 s resolution).
fn server_date(headers: &HeaderMap) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    chrono::DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|d| d.to_utc())
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
