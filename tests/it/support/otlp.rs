//! An OTLP logs receiver built from the official protobufs (`opentelemetry-proto`), on
//! `127.0.0.1:0`: over gRPC it serves tonic's generated `LogsService` server (HTTP/2, gzip
//! accepted), over HTTP/protobuf a hyper endpoint at `/v1/logs` (gzip `Content-Encoding`
//! accepted, errors answered with a protobuf `google.rpc.Status`). Both record every
//! LogRecord with its resource and scope, plus each request's headers, and answer from a
//! script: success, partial success, or an error status (gRPC code / HTTP status).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clickhouse_audit_exporter::sinks::otlp::rpc;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tonic::codec::CompressionEncoding;

/// How the receiver answers the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Accept every record.
    Ok,
    /// Accept, reporting `rejected` records refused with `message`.
    Partial { rejected: i64, message: String },
    /// Refuse with a gRPC code (gRPC receiver) …
    Grpc(tonic::Code, String),
    /// … or an HTTP status, optionally with `Retry-After` seconds (HTTP receiver).
    Http(u16, String, Option<u64>),
}

/// One received record with its resource and scope.
#[derive(Debug, Clone)]
pub struct Received {
    pub resource: Option<Resource>,
    pub scope: Option<InstrumentationScope>,
    pub record: LogRecord,
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    records: Mutex<Vec<Received>>,
    headers: Mutex<Vec<hyper::HeaderMap>>,
}

impl State {
    fn next_reply(&self) -> Reply {
        self.script.lock().unwrap().pop_front().unwrap_or(Reply::Ok)
    }

    fn record(&self, request: ExportLogsServiceRequest) {
        let mut records = self.records.lock().unwrap();
        for rl in request.resource_logs {
            for sl in rl.scope_logs {
                for record in sl.log_records {
                    records.push(Received {
                        resource: rl.resource.clone(),
                        scope: sl.scope.clone(),
                        record,
                    });
                }
            }
        }
    }

    /// Records the request unless the reply refuses it; the response for an accepted one.
    fn answer(
        &self,
        request: ExportLogsServiceRequest,
        reply: &Reply,
    ) -> Option<ExportLogsServiceResponse> {
        match reply {
            Reply::Ok => {
                self.record(request);
                Some(ExportLogsServiceResponse::default())
            }
            Reply::Partial { rejected, message } => {
                self.record(request);
                Some(ExportLogsServiceResponse {
                    partial_success: Some(ExportLogsPartialSuccess {
                        rejected_log_records: *rejected,
                        error_message: message.clone(),
                    }),
                })
            }
            _ => None,
        }
    }
}

pub struct FakeOtlp {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl Drop for FakeOtlp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Service(Arc<State>);

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let reply = self.0.next_reply();
        match self.0.answer(request.into_inner(), &reply) {
            Some(answer) => Ok(tonic::Response::new(answer)),
            None => match reply {
                Reply::Grpc(code, message) => Err(tonic::Status::new(code, message)),
                other => Err(tonic::Status::internal(format!(
                    "scripted {other:?} on gRPC"
                ))),
            },
        }
    }
}

impl FakeOtlp {
    /// The gRPC receiver (`LogsService` over HTTP/2 cleartext).
    pub async fn grpc() -> FakeOtlp {
        Self::grpc_with(None).await
    }

    /// The HTTP/protobuf receiver (`POST /v1/logs`).
    pub async fn http() -> FakeOtlp {
        Self::http_with(None).await
    }

    /// A receiver over TLS with the test server certificate (tests/it/data), requiring a
    /// client certificate signed by `test-client-ca.pem` when `mtls`.
    pub async fn tls(protocol: &str, mtls: bool) -> FakeOtlp {
        let grpc = protocol == "grpc";
        let alpn: &[u8] = if grpc { b"h2" } else { b"http/1.1" };
        let acceptor = tls_acceptor(alpn, mtls);
        if grpc {
            Self::grpc_with(Some(acceptor)).await
        } else {
            Self::http_with(Some(acceptor)).await
        }
    }

    async fn grpc_with(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeOtlp {
        let state = Arc::new(State::default());
        let server = LogsServiceServer::new(Service(state.clone()))
            .accept_compressed(CompressionEncoding::Gzip);
        Self::start(state, tls, move |state, io| {
            let server = server.clone();
            async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    state.headers.lock().unwrap().push(req.headers().clone());
                    let mut server = server.clone();
                    async move { tower_service::Service::call(&mut server, req).await }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
            }
        })
        .await
    }

    async fn http_with(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeOtlp {
        Self::start(Arc::new(State::default()), tls, |state, io| async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        })
        .await
    }

    /// Accepts connections on `127.0.0.1:0` (after a TLS handshake when `tls`), each served
    /// by `serve`.
    async fn start<F, Fut>(
        state: Arc<State>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        serve: F,
    ) -> FakeOtlp
    where
        F: Fn(Arc<State>, TokioIo<Box<dyn Io>>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls_on = tls.is_some();
        let shared = state.clone();
        let serve = Arc::new(serve);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tls, state, serve) = (tls.clone(), shared.clone(), serve.clone());
                tokio::spawn(async move {
                    if let Some(io) = accept(stream, tls).await {
                        serve(state, io).await;
                    }
                });
            }
        });
        FakeOtlp {
            addr,
            state,
            task,
            tls: tls_on,
        }
    }

    /// `http(s)://127.0.0.1:port` (the gRPC endpoint, or the HTTP base URL).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Answers the next requests with `replies`, in order (then success again).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.records.lock().unwrap().clone()
    }

    /// The headers of every request, in order.
    pub fn headers(&self) -> Vec<hyper::HeaderMap> {
        self.state.headers.lock().unwrap().clone()
    }
}

fn protobuf(status: u16, body: Vec<u8>, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf");
    if let Some(secs) = retry_after {
        resp = resp.header("retry-after", secs.to_string());
    }
    resp.body(Full::new(Bytes::from(body))).unwrap()
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.headers.lock().unwrap().push(req.headers().clone());
    if req.uri().path() != "/v1/logs" || req.method() != hyper::Method::POST {
        return Ok(protobuf(404, Vec::new(), None));
    }
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let typed = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-protobuf");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return Ok(status_answer(400, "bad gzip", None));
        }
        out
    } else {
        body.to_vec()
    };
    if !typed {
        return Ok(status_answer(415, "expected application/x-protobuf", None));
    }
    let Ok(request) = ExportLogsServiceRequest::decode(body.as_slice()) else {
        return Ok(status_answer(400, "not an ExportLogsServiceRequest", None));
    };
    let reply = state.next_reply();
    Ok(match state.answer(request, &reply) {
        Some(answer) => protobuf(200, answer.encode_to_vec(), None),
        None => match reply {
            Reply::Http(status, message, retry_after) => {
                status_answer(status, &message, retry_after)
            }
            other => status_answer(500, &format!("scripted {other:?} on HTTP"), None),
        },
    })
}

/// An error answer: a protobuf `google.rpc.Status`, as the OTLP spec says.
fn status_answer(status: u16, message: &str, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let body = rpc::status_with_retry(2, message, None).encode_to_vec();
    protobuf(status, body, retry_after)
}

/// A connection as hyper IO: plain, or after the TLS handshake (a failed one drops it).
async fn accept(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Option<TokioIo<Box<dyn Io>>> {
    let io: Box<dyn Io> = match tls {
        Some(acceptor) => Box::new(acceptor.accept(stream).await.ok()?),
        None => Box::new(stream),
    };
    Some(TokioIo::new(io))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn data(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/data")
        .join(file)
}

fn tls_acceptor(alpn: &[u8], mtls: bool) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs = CertificateDer::pem_file_iter(data("test-server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(data("test-server.key")).unwrap();
    // Explicit provider: ring (via rskafka) and aws-lc-rs are both linked in.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if mtls {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(data("test-client-ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
