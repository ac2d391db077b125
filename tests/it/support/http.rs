//! A tiny scripted HTTP/1 server for client tests (hyper 1 on `127.0.0.1:0`): each request is
//! recorded (method, path, query, headers, arrival instant on tokio's clock, so paused-clock
//! tests can reason about it) and answered by a responder with a status, headers, body, an
//! optional delay, a truncated body (a Content-Length larger than what is sent, then close), or
//! a chunked one (no Content-Length).

#![allow(dead_code, reason = "each test uses a different part of the helper")]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (tokio clock).
    pub delay: Duration,
    /// Send only this many body bytes, with the full Content-Length, then drop the connection.
    pub truncate_at: Option<usize>,
    /// Send the body with chunked transfer encoding (no Content-Length), in 8 KiB frames.
    pub chunked: bool,
}

impl Reply {
    /// A JSON answer with this status and body.
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into().into_bytes(),
            delay: Duration::ZERO,
            truncate_at: None,
            chunked: false,
        }
    }

    /// A 200 envelope around `result` (JSON text) with request id `req-ok`.
    pub fn ok(result: &str) -> Reply {
        Reply::json(
            200,
            format!(r#"{{"status":200,"requestId":"req-ok","result":{result}}}"#),
        )
    }

    /// A non-JSON answer.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            headers: vec![("content-type".into(), "text/plain".into())],
            ..Reply::json(status, body)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn truncated(mut self, at: usize) -> Reply {
        self.truncate_at = Some(at);
        self
    }

    /// No Content-Length: the size is known only once the body has been read.
    pub fn chunked(mut self) -> Reply {
        self.chunked = true;
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw (still percent-encoded) query string.
    pub query: String,
    pub headers: HeaderMap,
    pub at: Instant,
}

impl Recorded {
    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://x/?{}", self.query)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// The running server; stops accepting when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    accept: JoinHandle<()>,
}

impl TestServer {
    /// Answers the `n`-th request (from 0) with `responder(&request, n)`.
    pub async fn start(
        responder: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let responder: Arc<Responder> = Arc::new(responder);
        let recs = requests.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (recs, responder) = (recs.clone(), responder.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, recs.clone(), responder.clone()));
                    // Errors here are the truncations and aborted requests tests ask for.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestServer {
            addr,
            requests,
            accept,
        }
    }

    /// Answers requests with `replies` in order; the last one repeats.
    pub async fn script(replies: Vec<Reply>) -> TestServer {
        assert!(!replies.is_empty(), "a script needs at least one reply");
        TestServer::start(move |_, n| replies[n.min(replies.len() - 1)].clone()).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    recs: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Responder>,
) -> Result<Response<BoxBody<Bytes, io::Error>>, Infallible> {
    let rec = Recorded {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        headers: req.headers().clone(),
        at: Instant::now(),
    };
    let n = {
        let mut recs = recs.lock().unwrap();
        recs.push(rec.clone());
        recs.len() - 1
    };
    let reply = responder(&rec, n);
    if !reply.delay.is_zero() {
        // A slow answer is the behaviour this reply scripts (client timeouts).
        tokio::time::sleep(reply.delay).await;
    }
    let full_len = reply.body.len();
    let body = match reply.truncate_at {
        None if reply.chunked => {
            let frames: Vec<Result<Frame<Bytes>, io::Error>> = reply
                .body
                .chunks(8 << 10)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            BodyExt::boxed(StreamBody::new(stream::iter(frames)))
        }
        None => BodyExt::boxed(StreamBody::new(stream::iter([Ok(Frame::data(
            Bytes::from(reply.body),
        ))]))),
        Some(at) => {
            let head = Bytes::copy_from_slice(&reply.body[..at.min(full_len)]);
            // Yield once so hyper flushes the partial body, then fail the body: hyper closes
            // the connection short of the Content-Length. (Not a sleep: while the client's
            // decoder thread runs, tokio does not auto-advance a paused clock.)
            let fail = stream::once(async {
                tokio::task::yield_now().await;
                Err(io::Error::other("scripted truncation"))
            });
            BodyExt::boxed(StreamBody::new(
                stream::iter([Ok(Frame::data(head))]).chain(fail),
            ))
        }
    };
    let mut resp = Response::builder().status(reply.status);
    if !reply.chunked {
        resp = resp.header("content-length", full_len.to_string());
    }
    for (k, v) in &reply.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    Ok(resp.body(body).expect("scripted responses are valid"))
}
