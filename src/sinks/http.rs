//! What the HTTP sinks (webhook, splunk_hec, clickhouse) share: the reqwest client they build
//! (timeouts, no redirects, our User-Agent, TLS verification on with an optional `ca_file`
//! added to the roots), the `compression = "gzip" | "none"` key, gzip bodies, `Retry-After`,
//! body excerpts and secret-free transport error texts.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

/// A client for one sink. `what` names it in errors ("the webhook HTTP client").
pub fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
    what: &str,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "clickhouse-audit-exporter/",
            env!("CARGO_PKG_VERSION")
        ));
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).with_context(|| format!("reading ca_file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing ca_file {} (PEM)", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "ca_file {} holds no certificate",
            path.display()
        );
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().with_context(|| format!("building {what}"))
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

/// Longest wait a `Retry-After` may ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds or an HTTP date, capped at `MAX_RETRY_AFTER`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(secs) = text.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
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
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
