//! The one home of HTTP plumbing, for the API client, the HTTP sinks (webhook, splunk_hec,
//! clickhouse, elasticsearch, otlp, azure_logs_ingestion) and `healthcheck`: the reqwest client
//! (timeouts, no redirects, our User-Agent, TLS verification on with an optional `ca_file`),
//! `Retry-After` (one parser, a cap per caller), how a status is classified for a sink, a POST
//! with an optional gzip body (and an answer cap per caller: `post_reading`), body excerpts and
//! secret-free transport error texts. `url` holds URL checks and redaction, `headers` the sinks'
//! extra-header tables.

pub mod headers;
pub mod url;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{CONTENT_ENCODING, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::sinks::SinkError;

/// Sent with every request (API, sinks, healthcheck) and as Kafka's client id.
pub const USER_AGENT: &str = concat!("clickhouse-audit-exporter/", env!("CARGO_PKG_VERSION"));

/// Connecting never takes longer than this (or the whole timeout, if shorter).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that never follows redirects (a redirect is an answer to report, and must not carry
/// our credentials elsewhere), with `timeout` per request and the certificates of `ca_file`
/// trusted besides the system roots. `what` names it in errors ("the webhook HTTP client").
pub fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
    what: &str,
) -> anyhow::Result<reqwest::Client> {
    client_with_identity(timeout, ca_file, None, what)
}

/// `client`, presenting a client certificate (mTLS) when `identity` is set.
pub fn client_with_identity(
    timeout: Duration,
    ca_file: Option<&Path>,
    identity: Option<&crate::sinks::tls::ClientIdentity>,
    what: &str,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT);
    if let Some(path) = ca_file {
        for der in crate::sinks::tls::read_ca_file(path)? {
            let cert = reqwest::Certificate::from_der(der.as_ref())
                .with_context(|| format!("ca_file {}: unusable certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(id) = identity {
        let identity = reqwest::Identity::from_pem(&id.pem)
            .context("client_cert_file and client_key_file do not form a usable identity")?;
        builder = builder.identity(identity);
    }
    builder.build().with_context(|| format!("building {what}"))
}

/// An `Authorization` value marked sensitive (kept out of reqwest's `Debug`); `None` when the
/// credential holds characters a header cannot carry.
pub fn authorization(value: &str) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// `Authorization: Basic base64(user:password)`, sensitive.
pub fn basic_auth(user: &str, password: &secrecy::SecretString) -> Option<HeaderValue> {
    use base64::Engine;
    use secrecy::ExposeSecret;
    let pair = format!("{user}:{}", password.expose_secret());
    authorization(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// `compression = "gzip"` (true) or `"none"` (false).
pub fn de_gzip<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match String::deserialize(d)?.as_str() {
        "gzip" => Ok(true),
        "none" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "compression = {other:?}: expected \"gzip\" or \"none\""
        ))),
    }
}

/// Longest wait a sink's receiver may ask for with `Retry-After`.
pub const MAX_SINK_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as (fractional) seconds or an HTTP date (one in the past: `0`), capped at
/// `cap`. `None` when absent, negative or unreadable.
pub fn retry_after(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok()?,
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(cap))
}

/// What a status says about a delivery, before a sink reads its own protocol's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    /// Try again later: 408, 429, 5xx, and anything that is not a 4xx (a redirect — we never
    /// follow one — included: it may be a maintenance page, and the batch is kept).
    Retry,
    /// 401, 403, 407: our credentials are refused.
    Unauthorized,
    /// 404, 405: the URL is wrong; the batch is not to blame (never dead-lettered).
    Endpoint,
    /// Another 4xx (400, 413, 422, …): the receiver refuses this batch.
    Batch,
}

/// The class of `status`.
pub fn classify(status: StatusCode) -> StatusClass {
    match status.as_u16() {
        200..=299 => StatusClass::Success,
        408 | 429 => StatusClass::Retry,
        401 | 403 | 407 => StatusClass::Unauthorized,
        404 | 405 => StatusClass::Endpoint,
        400..=499 => StatusClass::Batch,
        _ => StatusClass::Retry,
    }
}

/// The `SinkError` for a failed answer of `class` (not `Success`): `Retry` becomes `Transient`
/// with the answer's `Retry-After`, `Unauthorized` stays, `Endpoint`/`Batch` are `Rejected`.
pub fn sink_error(class: StatusClass, answer: &Answer, message: String) -> SinkError {
    match class {
        StatusClass::Success | StatusClass::Retry => SinkError::Transient {
            message,
            retry_after: answer.retry_after,
        },
        StatusClass::Unauthorized => SinkError::Unauthorized(message),
        StatusClass::Endpoint | StatusClass::Batch => SinkError::Rejected(message),
    }
}

/// What a sink learns from one answer: its status, `Retry-After` and (the start of) its body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    /// At most `ANSWER_MAX_BYTES` of the body, lossily decoded.
    pub text: String,
    /// The same bytes undecoded (a protobuf answer: OTLP's export response, `google.rpc.Status`).
    pub bytes: Vec<u8>,
}

/// Answers are read up to this size: enough for any acknowledgement or error text, and a
/// misbehaving receiver cannot make us buffer more.
pub const ANSWER_MAX_BYTES: usize = 64 * 1024;

impl Answer {
    /// Reads up to `ANSWER_MAX_BYTES` of the body (a failed read leaves what arrived).
    pub async fn read(resp: reqwest::Response) -> Answer {
        Answer::read_up_to(resp, ANSWER_MAX_BYTES).await
    }

    /// Reads up to `max` bytes of the body, for protocols whose answer grows with the batch
    /// (an Elasticsearch `_bulk` answer has one item per document).
    pub async fn read_up_to(mut resp: reqwest::Response, max: usize) -> Answer {
        let status = resp.status();
        let retry_after = retry_after(resp.headers(), MAX_SINK_RETRY_AFTER);
        let mut body = Vec::new();
        while body.len() < max {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(max);
        Answer {
            status,
            retry_after,
            text: String::from_utf8_lossy(&body).into_owned(),
            bytes: body,
        }
    }

    pub fn class(&self) -> StatusClass {
        classify(self.status)
    }
}

/// POSTs `body` to `url` with `headers`, gzipped at that level off the runtime first when
/// `gzip` is set (and then with `Content-Encoding: gzip`), and reads the answer. A transport failure is `Transient`,
/// worded as `"{target}: timed out: …"` without the URL reqwest would print.
pub async fn post(
    client: &reqwest::Client,
    url: Url,
    headers: HeaderMap,
    body: Vec<u8>,
    gzip: Option<flate2::Compression>,
    target: &str,
) -> Result<Answer, SinkError> {
    post_reading(client, url, headers, body, gzip, target, ANSWER_MAX_BYTES).await
}

/// `post`, reading up to `answer_max` bytes of the answer instead of `ANSWER_MAX_BYTES`.
pub async fn post_reading(
    client: &reqwest::Client,
    url: Url,
    headers: HeaderMap,
    body: Vec<u8>,
    gzip: Option<flate2::Compression>,
    target: &str,
    answer_max: usize,
) -> Result<Answer, SinkError> {
    let body = match gzip {
        Some(level) => tokio::task::spawn_blocking(move || self::gzip(&body, level))
            .await
            .map_err(|e| SinkError::transient(format!("{target}: gzip task failed: {e}")))?,
        None => body,
    };
    let mut req = client.post(url).headers(headers);
    if gzip.is_some() {
        req = req.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| SinkError::transient(format!("{target}: {}", describe(&e))))?;
    Ok(Answer::read_up_to(resp, answer_max).await)
}

/// `body` gzipped at `level` (writing into a Vec cannot fail).
pub fn gzip(body: &[u8], level: flate2::Compression) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), level);
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// At most `max_chars` of a response text for an error message, control characters flattened.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_string()
}

/// A transport error as "timed out: …causes", without the URL reqwest would print (its query
/// may carry a token); callers prefix what they were talking to.
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates_up_to_the_cap() {
        let cap = MAX_SINK_RETRY_AFTER;
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, cap), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("2.5"));
        assert_eq!(retry_after(&h, cap), Some(Duration::from_millis(2500)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h, cap), Some(cap));
        assert_eq!(
            retry_after(&h, Duration::from_secs(900)),
            Some(Duration::from_secs(900))
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let d = retry_after(&h, cap).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h, cap), Some(Duration::ZERO));
        for bad in ["soon", "-1", "NaN"] {
            h.insert(RETRY_AFTER, HeaderValue::from_static(bad));
            assert_eq!(retry_after(&h, cap), None, "{bad}");
        }
    }

    #[test]
    fn statuses_are_classified_once_for_every_sink() {
        let class = |n: u16| classify(StatusCode::from_u16(n).unwrap());
        for (n, want) in [
            (200, StatusClass::Success),
            (204, StatusClass::Success),
            (100, StatusClass::Retry),
            (302, StatusClass::Retry),
            (502, StatusClass::Retry),
            (504, StatusClass::Retry),
            (599, StatusClass::Retry),
            (409, StatusClass::Batch),
            (410, StatusClass::Batch),
            (415, StatusClass::Batch),
            (499, StatusClass::Batch),
            (301, StatusClass::Retry),
            (408, StatusClass::Retry),
            (429, StatusClass::Retry),
            (500, StatusClass::Retry),
            (503, StatusClass::Retry),
            (401, StatusClass::Unauthorized),
            (403, StatusClass::Unauthorized),
            (407, StatusClass::Unauthorized),
            (404, StatusClass::Endpoint),
            (405, StatusClass::Endpoint),
            (400, StatusClass::Batch),
            (413, StatusClass::Batch),
            (422, StatusClass::Batch),
        ] {
            assert_eq!(class(n), want, "{n}");
        }
    }
}
