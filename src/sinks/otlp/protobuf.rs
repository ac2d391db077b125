//! OTLP over HTTP (`protocol = "http/protobuf"`): the export request as protobuf, POSTed with
//! the shared `http::client` / `http::post` (`Content-Type: application/x-protobuf`, gzip via
//! `Content-Encoding`) to `<base>/v1/logs`, or to the endpoint as given when it already ends in
//! `/v1/logs`. Answers per the OTLP specification: 2xx carries an `ExportLogsServiceResponse`
//! (partial success); 429, 502, 503 and 504 are retryable (honouring `Retry-After`); 401, 403
//! and 407 refuse our credentials; other 4xx blame the request (404/405 the URL); other 5xx
//! must not be retried by the spec, so they are `Rejected` (kept, dispatch retries at the
//! maximum backoff). Error bodies are read as `google.rpc.Status` for the server's message.

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::Failure;
use super::config::OtlpConfig;
use super::rpc;
use crate::http::{self, StatusClass};
use crate::sinks::{SinkError, tls};

pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

pub struct HttpProtobuf {
    client: reqwest::Client,
    url: reqwest::Url,
    shown: String,
    headers: HeaderMap,
    gzip: bool,
}

impl HttpProtobuf {
    pub fn new(
        cfg: &OtlpConfig,
        identity: Option<&tls::ClientIdentity>,
    ) -> anyhow::Result<HttpProtobuf> {
        let client = http::client_with_identity(
            cfg.timeout,
            cfg.ca_file.as_deref(),
            identity,
            "the OTLP HTTP client",
        )?;
        let url = logs_url(cfg.endpoint.as_str())?;
        let mut headers = cfg.headers.to_map()?;
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE_PROTOBUF),
        );
        Ok(HttpProtobuf {
            client,
            shown: http::url::redact_url(url.as_str()),
            url,
            headers,
            gzip: cfg.compression,
        })
    }

    /// One POST of `request`.
    pub async fn export(
        &self,
        request: &ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, Failure> {
        let target = format!("POST {}", self.shown);
        let answer = http::post(
            &self.client,
            self.url.clone(),
            self.headers.clone(),
            request.encode_to_vec(),
            self.gzip.then(flate2::Compression::default),
            &target,
        )
        .await
        .map_err(|error| Failure {
            error,
            blames_batch: false,
        })?;
        let class = match answer.status.as_u16() {
            429 | 502..=504 => StatusClass::Retry,
            500..=599 => StatusClass::Endpoint,
            _ => answer.class(),
        };
        if class == StatusClass::Success {
            // An empty or unreadable body is a full success (the spec allows an empty one).
            return Ok(
                ExportLogsServiceResponse::decode(answer.bytes.as_slice()).unwrap_or_default()
            );
        }
        let said = match rpc::Status::decode_bytes(&answer.bytes).filter(|s| !s.message.is_empty())
        {
            Some(status) => status.message,
            None => answer.text.clone(),
        };
        let message = format!(
            "{target} answered {}: {}",
            answer.status,
            http::excerpt(&said, 300)
        );
        Err(Failure {
            error: match class {
                StatusClass::Endpoint => SinkError::Rejected(message),
                class => http::sink_error(class, &answer, message),
            },
            blames_batch: class == StatusClass::Batch,
        })
    }
}

/// The URL to POST to: `endpoint` itself when it ends in `/v1/logs`, else `endpoint` +
/// `/v1/logs` (the OTLP "base endpoint" rule).
pub fn logs_url(endpoint: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(endpoint).context("parsing endpoint")?;
    if !url.path().ends_with("/v1/logs") {
        let path = format!("{}/v1/logs", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_v1_logs_and_full_urls_stay() {
        for (given, want) in [
            ("http://c:4318", "http://c:4318/v1/logs"),
            ("http://c:4318/", "http://c:4318/v1/logs"),
            ("https://c/otlp", "https://c/otlp/v1/logs"),
            ("https://c/otlp/v1/logs", "https://c/otlp/v1/logs"),
            ("https://c/v1/logs?x=1", "https://c/v1/logs?x=1"),
        ] {
            assert_eq!(logs_url(given).unwrap().as_str(), want, "{given}");
        }
    }
}
