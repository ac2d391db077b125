//! A fake Microsoft Entra token endpoint, Azure Instance Metadata Service and Azure Monitor
//! Logs Ingestion endpoint, following Microsoft's published protocols (no Azure here), on
//! `127.0.0.1:0`, able to go down and come back on the same port.
//!
//! - `POST /{tenant}/oauth2/v2.0/token`, form `client_id`, `client_secret`,
//!   `grant_type=client_credentials`, `scope`: an unknown tenant → 400 `invalid_request`
//!   AADSTS90002; another grant type → 400 `unsupported_grant_type` AADSTS70003; no scope →
//!   400 AADSTS900144; a scope other than `https://monitor.azure.com//.default` → 400
//!   `invalid_scope` AADSTS70011; an unknown client → 400 `unauthorized_client` AADSTS700016; a
//!   wrong secret → 401 `invalid_client` AADSTS7000215. Errors are Entra's JSON
//!   (`error`, `error_description`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`,
//!   `error_uri`). Success: 200 `{"token_type":"Bearer","expires_in":N,"ext_expires_in":N,
//!   "access_token":…}`.
//! - `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…` (IMDS): without
//!   `Metadata: true` → 400 `bad_request_102`; success with `expires_in` as a string.
//! - `POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`: no or unknown
//!   or expired bearer token → 401 `{"error":{"code":"InvalidToken",…}}`; a token without the
//!   role (`deny_role`) → 403 `OperationFailed`; unknown DCR → 404; unknown stream → 400
//!   `InvalidStream`; wrong api-version → 400 `InvalidApiVersion`; `Content-Encoding` other
//!   than gzip → 400; over 1 MB (uncompressed) → 413 `ContentLengthLimitExceeded`; not a JSON
//!   array of objects → 400 `InvalidPayload`; scripted 429 `TooManyRequests` with
//!   `Retry-After`; success 204 and the records land in `table()`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0d9ce0f2-5c47-4f6b-9b8a-1c2d3e4f5a6b";
pub const CLIENT_SECRET: &str = "Qx8Q~azure-client-secret-value~1234";
pub const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
pub const STREAM: &str = "Custom-ClickHouseAudit";
/// The documented limit of one call.
pub const LIMIT: usize = 1_048_576;

struct State {
    /// token → valid until
    tokens: HashMap<String, Instant>,
    lifetime: Duration,
    token_requests: usize,
    ingest_requests: usize,
    /// Uncompressed body sizes of the accepted calls.
    accepted_sizes: Vec<usize>,
    table: Vec<Value>,
    script: VecDeque<(u16, Option<u64>)>,
    deny_role: bool,
    next: u64,
}

pub struct FakeAzure {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    running: Mutex<Option<CancellationToken>>,
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn azure_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

/// Entra's error body for AADSTS `code`.
fn entra_error(status: u16, error: &str, code: u64, text: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: 0f6c0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6 Correlation ID: 6a1b2c3d-4e5f-6789-abcd-ef0123456789 Timestamp: 2026-12-05 08:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-12-05 08:00:00Z",
            "trace_id": "0f6c0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6",
            "correlation_id": "6a1b2c3d-4e5f-6789-abcd-ef0123456789",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

impl FakeAzure {
    /// Entra, IMDS and the ingestion endpoint on one port; tokens live `lifetime`.
    pub async fn start(lifetime: Duration) -> FakeAzure {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeAzure {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                tokens: HashMap::new(),
                lifetime,
                token_requests: 0,
                ingest_requests: 0,
                accepted_sizes: Vec::new(),
                table: Vec::new(),
                script: VecDeque::new(),
                deny_role: false,
                next: 0,
            })),
            running: Mutex::new(None),
        };
        fake.serve(listener);
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sink's keys for this fake (client credentials), with `secret` as the client secret.
    pub fn sink_keys(&self, secret: &str) -> String {
        format!(
            "endpoint = \"{url}\"\ndcr_immutable_id = \"{DCR}\"\nstream_name = \"{STREAM}\"\n\
             tenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{secret}\"\n\
             authority_host = \"{url}\"\n",
            url = self.url()
        )
    }

    /// Every record ingested, in order.
    pub fn table(&self) -> Vec<Value> {
        self.state.lock().unwrap().table.clone()
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    pub fn ingest_requests(&self) -> usize {
        self.state.lock().unwrap().ingest_requests
    }

    pub fn accepted_sizes(&self) -> Vec<usize> {
        self.state.lock().unwrap().accepted_sizes.clone()
    }

    /// Every token issued so far expires now (the next upload with one gets 401).
    pub fn expire_tokens(&self) {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        s.tokens.values_mut().for_each(|until| *until = now);
    }

    /// Whether every token issued so far has run out (by its own lifetime).
    pub fn all_tokens_expired(&self) -> bool {
        let s = self.state.lock().unwrap();
        let now = Instant::now();
        s.tokens.values().all(|until| *until <= now)
    }

    /// Answer the next ingestion calls with these statuses (429 with `Retry-After` seconds).
    pub fn script(&self, replies: impl IntoIterator<Item = (u16, Option<u64>)>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Tokens are valid but the identity has no role on the DCR: 403.
    pub fn deny_role(&self, deny: bool) {
        self.state.lock().unwrap().deny_role = deny;
    }

    pub fn stop(&self) {
        if let Some(t) = self.running.lock().unwrap().take() {
            t.cancel();
        }
    }

    pub async fn restart(&self) {
        let listener = super::net::bind_again(self.addr).await;
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        *self.running.lock().unwrap() = Some(token.clone());
        super::net::serve_http(listener, token, self.state.clone(), handle);
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        self.stop();
    }
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form(req.uri().query().unwrap_or_default().as_bytes())
}

/// `application/x-www-form-urlencoded` pairs (a query string or a form body).
fn form(text: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(text);
    reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let q = query(&req);
    let headers = req.headers().clone();
    let method = req.method().clone();
    let raw = req.into_body().collect().await?.to_bytes();
    Ok(match segments.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] if method == hyper::Method::POST => {
            token(&state, tenant, &raw)
        }
        ["metadata", "identity", "oauth2", "token"] if method == hyper::Method::GET => {
            imds(&state, &q, &headers)
        }
        ["dataCollectionRules", dcr, "streams", stream] if method == hyper::Method::POST => {
            ingest(&state, dcr, stream, &q, &headers, &raw)
        }
        _ => azure_error(404, "NotFound", "The requested resource was not found."),
    })
}

fn issue(state: &Arc<Mutex<State>>) -> (String, u64) {
    let mut s = state.lock().unwrap();
    s.token_requests += 1;
    s.next += 1;
    let token = format!("eyJ0eXAiOiJKV1QifQ.fake-access-token-{}", s.next);
    let lifetime = s.lifetime;
    s.tokens.insert(token.clone(), Instant::now() + lifetime);
    (token, lifetime.as_secs().max(1))
}

fn token(state: &Arc<Mutex<State>>, tenant: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let form = form(body);
    if tenant != TENANT {
        state.lock().unwrap().token_requests += 1;
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let field = |k: &str| form.get(k).map(String::as_str);
    let refuse = |status, error, code, text: &str| {
        state.lock().unwrap().token_requests += 1;
        entra_error(status, error, code, text)
    };
    if field("grant_type") != Some("client_credentials") {
        return refuse(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    match field("scope") {
        None => {
            return refuse(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        }
        Some("https://monitor.azure.com//.default" | "https://monitor.azure.com/.default") => {}
        Some(other) => {
            return refuse(
                400,
                "invalid_scope",
                70011,
                &format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {other} is not valid."
                ),
            );
        }
    }
    if field("client_id") != Some(CLIENT_ID) {
        return refuse(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'.",
                field("client_id").unwrap_or_default()
            ),
        );
    }
    if field("client_secret") != Some(CLIENT_SECRET) {
        return refuse(
            401,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT_ID}'."
            ),
        );
    }
    let (token, secs) = issue(state);
    reply(
        200,
        json!({"token_type":"Bearer","expires_in":secs,"ext_expires_in":secs,"access_token":token}),
    )
}

fn imds(
    state: &Arc<Mutex<State>>,
    q: &HashMap<String, String>,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    if headers.get("metadata").is_none_or(|v| v != "true") {
        return reply(
            400,
            json!({"error":"bad_request_102","error_description":"Required metadata header not specified"}),
        );
    }
    if q.get("api-version").map(String::as_str) != Some("2018-02-01") {
        return reply(
            400,
            json!({"error":"invalid_request","error_description":"Invalid api-version"}),
        );
    }
    let resource = q.get("resource").cloned().unwrap_or_default();
    if resource.trim_end_matches('/') != "https://monitor.azure.com" {
        return reply(
            400,
            json!({"error":"invalid_resource","error_description":"AADSTS500011: The resource principal was not found"}),
        );
    }
    let (token, secs) = issue(state);
    reply(
        200,
        json!({"access_token":token,"refresh_token":"","expires_in":secs.to_string(),"expires_on":"1767225600","not_before":"1767222000","resource":resource,"token_type":"Bearer","client_id":q.get("client_id").cloned().unwrap_or_default()}),
    )
}

fn ingest(
    state: &Arc<Mutex<State>>,
    dcr: &str,
    stream: &str,
    q: &HashMap<String, String>,
    headers: &hyper::HeaderMap,
    raw: &[u8],
) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    s.ingest_requests += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|until| Instant::now() < *until);
    if !valid {
        return azure_error(
            401,
            "InvalidToken",
            "The provided authentication token is invalid or has expired.",
        );
    }
    if s.deny_role {
        return azure_error(
            403,
            "OperationFailed",
            &format!(
                "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '{dcr}'."
            ),
        );
    }
    if dcr != DCR {
        return azure_error(
            404,
            "NotFound",
            &format!("Data collection rule with immutable Id '{dcr}' not found."),
        );
    }
    if stream != STREAM {
        return azure_error(
            400,
            "InvalidStream",
            &format!("Stream '{stream}' is not declared in the data collection rule."),
        );
    }
    if q.get("api-version").map(String::as_str) != Some("2023-01-01") {
        return azure_error(
            400,
            "InvalidApiVersion",
            "The api-version is missing or not supported.",
        );
    }
    if let Some((status, after)) = s.script.pop_front() {
        let mut r = azure_error(
            status,
            if status == 429 {
                "TooManyRequests"
            } else {
                "ServiceUnavailable"
            },
            "Scripted failure.",
        );
        if let Some(secs) = after {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return r;
    }
    let body = match headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => raw.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(raw), &mut out).is_err()
            {
                return azure_error(
                    400,
                    "InvalidContentEncoding",
                    "The gzip body could not be decompressed.",
                );
            }
            out
        }
        Some(other) => {
            return azure_error(
                400,
                "InvalidContentEncoding",
                &format!("Content-Encoding '{other}' is not supported; use gzip."),
            );
        }
    };
    if body.len() > LIMIT {
        return azure_error(
            413,
            "ContentLengthLimitExceeded",
            &format!(
                "Maximum allowed content length: {LIMIT} bytes (1 MB). Provided content length: {} bytes.",
                body.len()
            ),
        );
    }
    let records = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) if items.iter().all(Value::is_object) => items,
        _ => {
            return azure_error(
                400,
                "InvalidPayload",
                "The payload must be a JSON array of objects.",
            );
        }
    };
    s.accepted_sizes.push(body.len());
    s.table.extend(records);
    Response::builder()
        .status(204)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
