//! A scriptable HTTP receiver on `127.0.0.1:0` for sink tests (hyper 1): records every request
//! (headers, raw body), answers from a queue of scripted replies (then a default), can hang,
//! drop connections, or go down entirely (listener closed, connections cut) and come back on the
//! same port. Also a Standard Webhooks verifier written from the spec, independent of the sink.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, optional `Retry-After`, body.
    Status(u16, Option<&'static str>, String),
    /// Wait, then answer 200 (or have the client time out first).
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status(200, None, String::new())
    }
    pub fn status(code: u16) -> Reply {
        Reply::Status(code, None, String::new())
    }
}

/// One received request.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// The status answered (`None`: dropped or still delayed).
    pub answered: Option<u16>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body, gunzipped when `Content-Encoding: gzip`.
    pub fn decoded_body(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&self.body[..]), &mut out)
                .expect("a valid gzip body");
            out
        } else {
            self.body.to_vec()
        }
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    received: Vec<Received>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    running: Mutex<Option<CancellationToken>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_with(None).await
    }

    /// An HTTPS receiver with the certificate and key (PEM files) under `tests/it/data/`.
    pub async fn start_tls(cert: &str, key: &str) -> Receiver {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/data");
        let certs = CertificateDer::pem_file_iter(dir.join(cert))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join(key)).unwrap();
        // Explicit provider: ring (via rskafka) and aws-lc-rs are both linked in.
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            addr,
            state: Arc::new(Mutex::new(State::default())),
            running: Mutex::new(None),
            tls,
        };
        r.serve(listener);
        r
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/ingest", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        *self.running.lock().unwrap() = Some(token.clone());
        let state = self.state.clone();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (state, token, tls) = (state.clone(), token.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = async {
                            match tls {
                                None => {
                                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                                }
                                // A failed handshake (client refusing the certificate) just ends.
                                Some(tls) => if let Ok(stream) = tls.accept(stream).await {
                                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                                },
                            }
                        } => {}
                    }
                });
            }
        });
    }

    /// Goes down: the listener is closed and open connections are cut (connection refused).
    pub fn stop(&self) {
        if let Some(token) = self.running.lock().unwrap().take() {
            token.cancel();
        }
    }

    /// Comes back on the same port.
    pub async fn restart(&self) {
        let listener = super::net::bind_again(self.addr).await;
        self.serve(listener);
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// The answer once the script is exhausted (initially 200).
    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let (reply, index) = {
        let mut s = state.lock().unwrap();
        let reply = s
            .script
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or_else(Reply::ok);
        s.received.push(Received {
            headers,
            body,
            answered: None,
        });
        (reply, s.received.len() - 1)
    };
    let (code, retry_after, text) = match reply {
        Reply::Drop => return Err(std::io::Error::other("dropping the connection")),
        Reply::Delay(d) => {
            // A slow receiver is the behaviour this reply scripts.
            tokio::time::sleep(d).await;
            (200, None, String::new())
        }
        Reply::Status(code, retry_after, text) => (code, retry_after, text),
    };
    state.lock().unwrap().received[index].answered = Some(code);
    let mut resp = Response::builder().status(code);
    if let Some(ra) = retry_after {
        resp = resp.header("retry-after", ra);
    }
    Ok(resp.body(Full::new(Bytes::from(text))).unwrap())
}

/// Standard Webhooks verification, written from the spec (standardwebhooks.com): the signed
/// content is `{webhook-id}.{webhook-timestamp}.{body}`, the key the base64-decoded part of the
/// secret after `whsec_`, `webhook-signature` a space-separated list of `v1,<base64 HMAC-SHA256>`;
/// the message is authentic if any listed signature matches. Timestamps more than 5 minutes
/// away from now are refused (replay protection).
pub fn verify_standard_webhook(secret: &str, r: &Received) -> Result<(), String> {
    use hmac::{Hmac, KeyInit, Mac};
    let id = r.header("webhook-id").ok_or("no webhook-id")?;
    let ts = r
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp")?;
    let sigs = r
        .header("webhook-signature")
        .ok_or("no webhook-signature")?;
    let ts_num: i64 = ts.parse().map_err(|_| "timestamp is not an integer")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts_num).abs() > 300 {
        return Err(format!("timestamp {ts} too far from now {now}"));
    }
    let key = STANDARD
        .decode(
            secret
                .strip_prefix("whsec_")
                .ok_or("secret without whsec_")?,
        )
        .map_err(|e| e.to_string())?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    let matches = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected);
    if matches {
        Ok(())
    } else {
        Err(format!("no signature in {sigs:?} matches"))
    }
}
