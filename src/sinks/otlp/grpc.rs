//! OTLP over gRPC: tonic's generated `LogsService` client on a lazily connected channel
//! (a receiver that is down at startup is a transient delivery failure, not a startup error).
//! `https://` endpoints connect through our own connector: TCP, then rustls with
//! `sinks::tls` (system roots + `ca_file`, the mTLS identity, ALPN `h2`), so tonic needs no
//! TLS feature of its own. Status codes are read as the OTLP specification says
//! (`failure_of`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use super::Failure;
use super::config::OtlpConfig;
use super::rpc;
use crate::http::{MAX_SINK_RETRY_AFTER, USER_AGENT};
use crate::sinks::{SinkError, tls};

/// Connecting never takes longer than this (or the whole timeout, if shorter).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Grpc {
    client: LogsServiceClient<Channel>,
    metadata: MetadataMap,
    /// The endpoint for messages (no path, no credentials: `validate` made sure).
    shown: String,
}

impl Grpc {
    pub fn new(cfg: &OtlpConfig, identity: Option<tls::ClientIdentity>) -> anyhow::Result<Grpc> {
        let url = cfg.endpoint.as_str();
        let endpoint = Endpoint::from_shared(url.to_string())
            .context("endpoint: not a gRPC URI")?
            .user_agent(USER_AGENT)
            .context("user agent")?
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(MAX_CONNECT_TIMEOUT));
        let channel = if endpoint.uri().scheme_str() == Some("https") {
            let mut config = (*tls::client_config_with(cfg.ca_file.as_deref(), identity)?).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            endpoint.connect_with_connector_lazy(TlsConnect {
                config: Arc::new(config),
            })
        } else {
            endpoint.connect_lazy()
        };
        let mut client =
            LogsServiceClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
        if cfg.compression {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let mut metadata = MetadataMap::new();
        for (name, value) in &cfg.headers.0 {
            let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .with_context(|| format!("headers: {name:?} is not a valid gRPC metadata key"))?;
            let mut value: MetadataValue<_> = value
                .parse()
                .map_err(|_| anyhow::anyhow!("headers.{name}: not a valid gRPC metadata value"))?;
            value.set_sensitive(true);
            metadata.insert(key, value);
        }
        Ok(Grpc {
            client,
            metadata,
            shown: cfg.endpoint.redacted(),
        })
    }

    /// One `Export` call.
    pub async fn export(
        &mut self,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, Failure> {
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.metadata.clone();
        match self.client.export(request).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(status) => Err(failure_of(&status, &self.shown)),
        }
    }
}

/// What a gRPC status means (OTLP spec, "Failures"): UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED,
/// CANCELLED, OUT_OF_RANGE, DATA_LOSS and RESOURCE_EXHAUSTED with `RetryInfo` are retryable
/// (`Transient`, after the `RetryInfo` delay); UNAUTHENTICATED and PERMISSION_DENIED are
/// `Unauthorized`; INVALID_ARGUMENT blames the request (dead-lettered when configured); the
/// rest (RESOURCE_EXHAUSTED without `RetryInfo`, UNIMPLEMENTED, INTERNAL, …) are `Rejected`:
/// not retried at once, but kept (dispatch retries at the maximum backoff).
pub fn failure_of(status: &Status, shown: &str) -> Failure {
    let details = rpc::Status::decode_bytes(status.details());
    let retry = details
        .as_ref()
        .and_then(|d| d.retry_delay(MAX_SINK_RETRY_AFTER));
    let message = format!(
        "OTLP gRPC export to {shown} failed: {:?}: {}",
        status.code(),
        crate::http::excerpt(status.message(), 300)
    );
    let transient = |retry_after| Failure {
        error: SinkError::Transient {
            message: message.clone(),
            retry_after,
        },
        blames_batch: false,
    };
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled
        | Code::OutOfRange
        | Code::DataLoss => transient(retry),
        Code::ResourceExhausted if retry.is_some() => transient(retry),
        Code::Unauthenticated | Code::PermissionDenied => Failure {
            error: SinkError::Unauthorized(message),
            blames_batch: false,
        },
        code => Failure {
            error: SinkError::Rejected(message),
            blames_batch: code == Code::InvalidArgument,
        },
    }
}

/// TCP + rustls for `https://` endpoints.
#[derive(Clone)]
struct TlsConnect {
    config: Arc<rustls::ClientConfig>,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>
            + Send,
    >,
>;

impl tower_service::Service<Uri> for TlsConnect {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move {
            let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
            let host = uri
                .host()
                .ok_or_else(|| invalid("endpoint has no host".into()))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| invalid(format!("{host:?} is not a TLS server name: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: Status) -> (&'static str, bool, Option<Duration>) {
        let f = failure_of(&status, "http://c:4317");
        let after = match &f.error {
            SinkError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        };
        (f.error.kind(), f.blames_batch, after)
    }

    #[test]
    fn status_codes_follow_the_otlp_spec() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Cancelled,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            assert_eq!(kind(Status::new(code, "x")).0, "transient", "{code:?}");
        }
        for code in [Code::Unauthenticated, Code::PermissionDenied] {
            assert_eq!(kind(Status::new(code, "x")).0, "unauthorized", "{code:?}");
        }
        assert_eq!(
            kind(Status::invalid_argument("bad")),
            ("rejected", true, None)
        );
        assert_eq!(kind(Status::unimplemented("no")), ("rejected", false, None));
        assert_eq!(
            kind(Status::resource_exhausted("full")),
            ("rejected", false, None)
        );
        let details = prost::Message::encode_to_vec(&rpc::status_with_retry(
            8,
            "later",
            Some(Duration::from_secs(3)),
        ));
        let status = Status::with_details(Code::ResourceExhausted, "later", details.into());
        assert_eq!(
            kind(status),
            ("transient", false, Some(Duration::from_secs(3)))
        );
    }
}
