//! The HTTP side: accept loop (hyper 1, HTTP/1.1, graceful shutdown on the token) and the
//! per-request pipeline, in this order: spec (`GET /v1`, no auth) → Basic auth (401) → per-key
//! rate limit (429) → injected failure (`fail_next` / error rate) → route (404/405) →
//! permission (403) → handler → body fault on a 200. Every request is logged; latency is added
//! before the response goes out.
//!
//! Rate-limit accounting: every authenticated request takes a slot, including ones that then
//! fail (403, 404, 400, injected 5xx). Requests that fail authentication take none (there is no
//! key to charge, and it would let anyone who knows a key id exhaust its budget), and neither
//! do the 429 refusals themselves, so waiting `X-RateLimit-Reset` always frees a slot.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::{EmuBody, code, error_body, success_body};
use super::handlers::{self, ApiError, Ctx, forbidden};
use super::routes::{self, Miss};
use super::{Inner, RequestRecord, auth, live};

const MAX_BODY: usize = 1024 * 1024;

/// Serves until `shutdown`, then lets open connections finish (idle ones close at once).
pub(crate) async fn serve(
    inner: Arc<Inner>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    if inner.opts.rate_per_min > 0.0 {
        tracker.spawn(live::run(Arc::clone(&inner), shutdown.clone()));
    }
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "emulator: accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let inner = Arc::clone(&inner);
        let token = shutdown.clone();
        tracker.spawn(async move {
            let svc = service_fn(move |req| handle(Arc::clone(&inner), peer, req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = token.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn handle(
    inner: Arc<Inner>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<EmuBody>, Infallible> {
    let at = tokio::time::Instant::now();
    let wall = inner.now();
    let (parts, body) = req.into_parts();
    let mut key_id = None;
    let request_id = uuid::Uuid::new_v4().to_string();
    let resp = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => process(
            &inner,
            &parts,
            &b.to_bytes(),
            peer,
            at,
            &request_id,
            &mut key_id,
        ),
        Err(e) => error(
            &ApiError::new(413, format!("Request body unreadable or over 1 MiB: {e}")),
            &request_id,
        ),
    };
    inner.log_request(RequestRecord {
        at: at.into_std(),
        wall,
        key_id,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        status: resp.status().as_u16(),
    });
    let latency = inner.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut resp = resp;
    // The HTTP `Date` comes from the emulator's own clock (skew included), as a real server's
    // does; hyper only adds its own when none is set.
    let date = inner.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert(hyper::header::DATE, v);
    }
    Ok(resp)
}

fn respond(status: u16, body: EmuBody) -> Response<EmuBody> {
    let mut r = Response::new(body);
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn error(e: &ApiError, request_id: &str) -> Response<EmuBody> {
    respond(
        e.status,
        error_body(e.status, &e.error_string(), request_id),
    )
}

/// 429 with `X-RateLimit-Reset: <seconds, fractional>` (unless switched off) and
/// `Retry-After` (if switched on).
fn too_many(inner: &Inner, wait: Duration, request_id: &str) -> Response<EmuBody> {
    let mut r = respond(429, error_body(429, code(429), request_id));
    if inner.faults.reset_header() {
        let reset = format!("{:.3}", wait.as_secs_f64());
        r.headers_mut().insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset).expect("digits"),
        );
    }
    if inner.faults.retry_after() {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(secs.max(1)));
    }
    r
}

/// `GET /v1`: the vendor spec from `$CH_AUDIT_OPENAPI_SPEC` or the repository's copy
/// (`SPEC_PATH`, present where the binary was built from a checkout), else 404.
fn spec(request_id: &str) -> Response<EmuBody> {
    let path = std::env::var_os("CH_AUDIT_OPENAPI_SPEC")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| super::SPEC_PATH.into());
    match std::fs::read(&path) {
        Ok(bytes) => respond(200, EmuBody::full(Bytes::from(bytes))),
        Err(_) => error(
            &ApiError::not_found("OpenAPI spec is not available on this emulator"),
            request_id,
        ),
    }
}

/// Why `admit` turned a request away.
enum Refusal {
    Error(ApiError),
    /// 429, with the time until a slot frees.
    TooMany(Duration),
}

/// The gate every API request passes: Basic auth (401), the key's rate limit (429), then any
/// injected failure. `key_id` is set once the header parses, for the request log.
fn admit(
    inner: &Inner,
    parts: &hyper::http::request::Parts,
    now: chrono::DateTime<chrono::Utc>,
    at: tokio::time::Instant,
    key_id: &mut Option<String>,
) -> Result<auth::Caller, Refusal> {
    let refuse = |status: u16, msg: String| Err(Refusal::Error(ApiError::new(status, msg)));
    let Some((id, secret)) = auth::parse_basic(parts.headers.get(AUTHORIZATION)) else {
        return refuse(
            401,
            "Missing or malformed Basic credentials (key ID : key secret)".into(),
        );
    };
    *key_id = Some(id.clone());
    let caller = match auth::authenticate(&mut inner.state(), &id, &secret, now) {
        Ok(c) => c,
        Err(msg) => return refuse(401, msg),
    };
    if let Some(limiter) = &inner.limiter {
        let mut l = limiter.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(wait) = l.check(&caller.key_id, at) {
            return Err(Refusal::TooMany(wait));
        }
    }
    match inner.faults.take_failure() {
        None => Ok(caller),
        Some(429) => {
            let wait = inner.limiter.as_ref().map_or(Duration::ZERO, |l| {
                l.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .wait_for(&caller.key_id, at)
            });
            Err(Refusal::TooMany(wait.max(Duration::from_secs(1))))
        }
        Some(status) => refuse(status, "Injected fault".into()),
    }
}

fn process(
    inner: &Inner,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    peer: SocketAddr,
    at: tokio::time::Instant,
    request_id: &str,
    key_id: &mut Option<String>,
) -> Response<EmuBody> {
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    if method == "GET" && (path == "/v1" || path == "/v1/") {
        return spec(request_id);
    }
    let now = inner.now();
    let caller = match admit(inner, parts, now, at, key_id) {
        Ok(c) => c,
        Err(Refusal::Error(e)) => return error(&e, request_id),
        Err(Refusal::TooMany(wait)) => return too_many(inner, wait, request_id),
    };
    let (route, params) = match routes::find(method, path) {
        Ok(found) => found,
        Err(Miss::NotFound) => {
            return error(
                &ApiError::not_found(format!("No such endpoint: {method} {path}")),
                request_id,
            );
        }
        Err(Miss::Method) => {
            return error(
                &ApiError::new(405, format!("Method {method} is not allowed on {path}")),
                request_id,
            );
        }
    };
    if let Some(p) = route.permissions.iter().find(|p| !caller.has(p)) {
        return error(&forbidden(route.operation_id, p), request_id);
    }
    // Lossy: a User-Agent with non-ASCII bytes is still recorded (as real proxies pass it on).
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let ctx = Ctx {
        inner,
        caller: &caller,
        params: &params,
        query: routes::query_pairs(parts.uri.query()),
        body,
        now,
        peer_ip: peer.ip().to_canonical().to_string(),
        user_agent: header(USER_AGENT),
    };
    match handlers::dispatch(route, &ctx) {
        Ok(reply) => respond(
            200,
            success_body(reply, request_id, inner.faults.take_body_fault()),
        ),
        Err(e) => error(&e, request_id),
    }
}
