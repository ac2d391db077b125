//! A fake Elasticsearch `_bulk` endpoint following Elastic's published protocol (no cluster can
//! be installed here), on `127.0.0.1:0`, able to go down and come back on the same port.
//!
//! - `POST /_bulk` and `POST /<index>/_bulk`. Auth (when users or keys are set):
//!   `Authorization: ApiKey base64(id:key)` or `Basic base64(user:password)`; missing → 401
//!   `security_exception` "missing authentication credentials for REST request [/_bulk]" with
//!   `WWW-Authenticate`, wrong → 401 "unable to authenticate …"; a key marked read-only → item
//!   403 `security_exception` (no `create_doc` privilege).
//! - Query parameters: `pipeline` (unknown → item 400 `illegal_argument_exception` "pipeline
//!   with id [x] does not exist"), `filter_path` (applied to the answer, `*` and commas, unless
//!   `ignore_filter_path`), `refresh`, `timeout`, … — any other → 400
//!   `illegal_argument_exception` "request [/_bulk] contains unrecognized parameter: [x]".
//! - `Content-Type` must be `application/x-ndjson` or `application/json` (else 406);
//!   `Content-Encoding: gzip` bodies are inflated; a body over `max_content_length` (as sent) →
//!   413 with an empty body. The body is NDJSON: action line, source line, each ended by `\n`
//!   (a body not ending in a newline → 400 "The bulk request must be terminated by a newline
//!   [\n]"); an action line that is not one of index/create/update/delete → 400
//!   `illegal_argument_exception` "Malformed action/metadata line"; no index → 400
//!   `action_request_validation_exception`.
//! - Items: `create` of an `_id` already in the index → 409
//!   `version_conflict_engine_exception`; a source that is not a JSON object, or a document
//!   whose `_id` is poisoned → 400 `mapper_parsing_exception`; the next `reject_items(n)`
//!   documents → 429 `es_rejected_execution_exception`; to a data stream only `create`, and a
//!   document without `@timestamp` → 400. Answer: `{"took","errors","items":[{"create":
//!   {"_index","_id","_version","result","_shards","_seq_no","_primary_term","status"}}]}`.
//! - `fail_next(n, status)`: whole-request failures with Elasticsearch's error bodies.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One stored document.
#[derive(Debug, Clone)]
pub struct Doc {
    pub index: String,
    pub id: String,
    pub source: Value,
}

#[derive(Default)]
struct State {
    /// Encoded API keys (`base64(id:key)`) → may write.
    api_keys: HashMap<String, bool>,
    users: HashMap<String, String>,
    pipelines: HashSet<String>,
    data_streams: HashSet<String>,
    poisoned: HashSet<String>,
    reject_items: usize,
    fail: Vec<u16>,
    max_content_length: Option<usize>,
    ignore_filter_path: bool,
    docs: Vec<Doc>,
    ids: HashSet<(String, String)>,
    requests: usize,
    gzip_requests: usize,
    queries: Vec<String>,
    conflicts: usize,
}

pub struct FakeEs {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    running: Mutex<Option<CancellationToken>>,
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-elastic-product", "Elasticsearch")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Elasticsearch's whole-request error body.
fn error(status: u16, kind: &str, reason: &str) -> Response<Full<Bytes>> {
    let cause = json!({"type": kind, "reason": reason});
    reply(
        status,
        json!({"error": {"root_cause": [cause], "type": kind, "reason": reason}, "status": status}),
    )
}

fn unauthenticated(reason: &str) -> Response<Full<Bytes>> {
    let mut r = error(401, "security_exception", reason);
    r.headers_mut().insert(
        "www-authenticate",
        "Basic realm=\"security\" charset=\"UTF-8\", ApiKey"
            .parse()
            .unwrap(),
    );
    r
}

const PARAMS: &[&str] = &[
    "pipeline",
    "filter_path",
    "refresh",
    "routing",
    "timeout",
    "wait_for_active_shards",
    "require_alias",
    "require_data_stream",
    "_source",
    "_source_includes",
    "_source_excludes",
    "error_trace",
    "pretty",
    "human",
    "list_executed_pipelines",
];

impl FakeEs {
    /// A cluster with security off (any request allowed).
    pub async fn start() -> FakeEs {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let es = FakeEs {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State::default())),
            running: Mutex::new(None),
        };
        es.serve(listener);
        es
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Accepts API key `id:key` (sent as `ApiKey base64(id:key)`); `write = false`: the key
    /// authenticates but lacks `create_doc`.
    pub fn api_key(&self, id_key: &str, write: bool) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(id_key);
        self.with(|s| s.api_keys.insert(encoded, write));
    }

    pub fn user(&self, user: &str, password: &str) {
        self.with(|s| s.users.insert(user.into(), password.into()));
    }

    pub fn pipeline(&self, name: &str) {
        self.with(|s| s.pipelines.insert(name.into()));
    }

    pub fn data_stream(&self, name: &str) {
        self.with(|s| s.data_streams.insert(name.into()));
    }

    /// Documents with this `_id` fail with 400 `mapper_parsing_exception`.
    pub fn poison(&self, id: &str) {
        self.with(|s| s.poisoned.insert(id.into()));
    }

    pub fn cure(&self) {
        self.with(|s| s.poisoned.clear());
    }

    /// The next `n` documents are answered 429 `es_rejected_execution_exception`.
    pub fn reject_items(&self, n: usize) {
        self.with(|s| s.reject_items = n);
    }

    /// The next requests are answered `statuses` in turn, as whole-request failures.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.with(|s| s.fail = statuses.iter().rev().copied().collect());
    }

    pub fn max_content_length(&self, bytes: usize) {
        self.with(|s| s.max_content_length = Some(bytes));
    }

    /// Answers in full whatever `filter_path` says (a proxy or version that ignores it).
    pub fn ignore_filter_path(&self) {
        self.with(|s| s.ignore_filter_path = true);
    }

    pub fn docs(&self) -> Vec<Doc> {
        self.with(|s| s.docs.clone())
    }

    pub fn requests(&self) -> usize {
        self.with(|s| s.requests)
    }

    pub fn gzip_requests(&self) -> usize {
        self.with(|s| s.gzip_requests)
    }

    /// The query string of every request.
    pub fn queries(&self) -> Vec<String> {
        self.with(|s| s.queries.clone())
    }

    /// Items answered 409 so far.
    pub fn conflicts(&self) -> usize {
        self.with(|s| s.conflicts)
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

impl Drop for FakeEs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Ok(true)`: may write; `Ok(false)`: authenticated but without the write privilege;
/// `Err`: the 401 answer.
fn check_auth(s: &State, req: &Request<Incoming>) -> Result<bool, Box<Response<Full<Bytes>>>> {
    if s.api_keys.is_empty() && s.users.is_empty() {
        return Ok(true);
    }
    let path = req.uri().path();
    let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Box::new(unauthenticated(&format!(
            "missing authentication credentials for REST request [{path}]"
        ))));
    };
    if let Some(key) = value.strip_prefix("ApiKey ") {
        return match s.api_keys.get(key.trim()) {
            Some(&write) => Ok(write),
            None => Err(Box::new(unauthenticated(&format!(
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request [{path}]"
            )))),
        };
    }
    if let Some(b64) = value.strip_prefix("Basic ") {
        let pair = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (user, password) = pair.split_once(':').unwrap_or((&pair, ""));
        if s.users.get(user).is_some_and(|p| p == password) {
            return Ok(true);
        }
        return Err(Box::new(unauthenticated(&format!(
            "unable to authenticate user [{user}] for REST request [{path}]"
        ))));
    }
    Err(Box::new(unauthenticated(&format!(
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request [{path}]"
    ))))
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let params: Vec<(String, String)> = reqwest::Url::parse(&format!("http://es/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let write = {
        let mut s = state.lock().unwrap();
        s.requests += 1;
        s.queries.push(query.clone());
        match check_auth(&s, &req) {
            Ok(w) => w,
            Err(denied) => return Ok(*denied),
        }
    };
    let path_index = match path.strip_suffix("/_bulk") {
        Some("") => None,
        Some(p) => Some(p.trim_start_matches('/').to_string()),
        None => {
            return Ok(error(
                404,
                "not_found",
                &format!("no handler found for uri [{path}]"),
            ));
        }
    };
    if req.method() != hyper::Method::POST && req.method() != hyper::Method::PUT {
        return Ok(error(
            405,
            "method_not_allowed",
            "Incorrect HTTP method for uri [/_bulk]",
        ));
    }
    if let Some((k, _)) = params.iter().find(|(k, _)| !PARAMS.contains(&k.as_str())) {
        return Ok(error(
            400,
            "illegal_argument_exception",
            &format!("request [{path}] contains unrecognized parameter: [{k}]"),
        ));
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !matches!(media, "application/x-ndjson" | "application/json") {
        return Ok(reply(
            406,
            json!({"error": format!("Content-Type header [{content_type}] is not supported"), "status": 406}),
        ));
    }
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let raw = req.into_body().collect().await?.to_bytes();
    {
        let mut s = state.lock().unwrap();
        if s.max_content_length.is_some_and(|max| raw.len() > max) {
            return Ok(Response::builder()
                .status(413)
                .body(Full::new(Bytes::new()))
                .unwrap());
        }
        if let Some(status) = s.fail.pop() {
            return Ok(match status {
                429 => error(
                    429,
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]",
                ),
                503 => error(
                    503,
                    "unavailable_shards_exception",
                    "[audit][0] primary shard is not active",
                ),
                s => error(s, "exception", "scripted failure"),
            });
        }
        if gzip {
            s.gzip_requests += 1;
        }
    }
    let body = if gzip {
        let mut out = Vec::new();
        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .is_err()
        {
            return Ok(error(
                400,
                "parse_exception",
                "failed to decompress the request body",
            ));
        }
        out
    } else {
        raw.to_vec()
    };
    let pipeline = params
        .iter()
        .find(|(k, _)| k == "pipeline")
        .map(|(_, v)| v.clone());
    let filter = params
        .iter()
        .find(|(k, _)| k == "filter_path")
        .map(|(_, v)| v.clone());
    let started = Instant::now();
    let mut s = state.lock().unwrap();
    let answer = match bulk(&mut s, &body, path_index, pipeline, write) {
        Ok(items) => {
            let errors = items
                .iter()
                .filter_map(|i| i.as_object()?.values().next())
                .any(|r| r.get("error").is_some());
            json!({"took": started.elapsed().as_millis() as u64, "errors": errors, "items": items})
        }
        Err(resp) => return Ok(*resp),
    };
    let answer = match (filter, s.ignore_filter_path) {
        (Some(f), false) => filter_path(&answer, &f).unwrap_or(json!({})),
        _ => answer,
    };
    Ok(reply(200, answer))
}

/// Runs the NDJSON body; the items of the answer, or a whole-request error.
fn bulk(
    s: &mut State,
    body: &[u8],
    path_index: Option<String>,
    pipeline: Option<String>,
    write: bool,
) -> Result<Vec<Value>, Box<Response<Full<Bytes>>>> {
    if !body.is_empty() && !body.ends_with(b"\n") {
        return Err(Box::new(error(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        )));
    }
    let text = String::from_utf8_lossy(body);
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if lines.is_empty() {
        return Err(Box::new(error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        )));
    }
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let action: Value = serde_json::from_str(lines[i]).map_err(|_| {
            Box::new(error(
                400,
                "x_content_parse_exception",
                &format!("[{}:1] Unexpected character in action/metadata line", i + 1),
            ))
        })?;
        let Some((op, meta)) = action
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .filter(|(op, _)| matches!(op.as_str(), "index" | "create" | "update" | "delete"))
        else {
            return Err(Box::new(error(
                400,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line [{}], expected one of [create, delete, index, update]",
                    i + 1
                ),
            )));
        };
        let op = op.clone();
        let index = meta["_index"]
            .as_str()
            .map(str::to_string)
            .or_else(|| path_index.clone())
            .ok_or_else(|| {
                Box::new(error(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                ))
            })?;
        let id = meta["_id"].as_str().unwrap_or("").to_string();
        let source = if op == "delete" {
            None
        } else {
            lines.get(i + 1).copied()
        };
        i += if op == "delete" { 1 } else { 2 };
        items.push(
            json!({ op.clone(): item(s, &op, &index, &id, source, pipeline.as_deref(), write) }),
        );
    }
    Ok(items)
}

fn item_error(index: &str, id: &str, status: u16, kind: &str, reason: &str) -> Value {
    json!({"_index": index, "_id": id, "status": status,
           "error": {"type": kind, "reason": reason, "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0", "index": index}})
}

/// One document's result.
fn item(
    s: &mut State,
    op: &str,
    index: &str,
    id: &str,
    source: Option<&str>,
    pipeline: Option<&str>,
    write: bool,
) -> Value {
    if !write {
        return item_error(
            index,
            id,
            403,
            "security_exception",
            &format!(
                "action [indices:data/write/bulk[s]] is unauthorized for API key id [k] of user [u] on indices [{index}], this action is granted by the index privileges [create_doc,create,index,write,all]"
            ),
        );
    }
    if let Some(p) = pipeline
        && !s.pipelines.contains(p)
    {
        return item_error(
            index,
            id,
            400,
            "illegal_argument_exception",
            &format!("pipeline with id [{p}] does not exist"),
        );
    }
    if s.reject_items > 0 {
        s.reject_items -= 1;
        return json!({"_index": index, "_id": id, "status": 429, "error": {"type": "es_rejected_execution_exception",
            "reason": "rejected execution of org.elasticsearch.action.support.replication.TransportWriteAction$1 on EsThreadPoolExecutor[name = node-1/write, queue capacity = 10000]"}});
    }
    let doc: Option<Value> = source
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object);
    let Some(doc) = doc else {
        return item_error(
            index,
            id,
            400,
            "mapper_parsing_exception",
            "failed to parse",
        );
    };
    if s.data_streams.contains(index) {
        if op != "create" {
            return item_error(
                index,
                id,
                400,
                "illegal_argument_exception",
                "only write ops with an op_type of create are allowed in data streams",
            );
        }
        if doc.get("@timestamp").is_none() {
            return item_error(
                index,
                id,
                400,
                "mapper_parsing_exception",
                "data stream timestamp field [@timestamp] is missing",
            );
        }
    }
    if s.poisoned.contains(id) {
        return item_error(
            index,
            id,
            400,
            "mapper_parsing_exception",
            &format!(
                "failed to parse field [event.duration] of type [long] in document with id '{id}'. Preview of field's value: 'soon'"
            ),
        );
    }
    let key = (index.to_string(), id.to_string());
    if op == "create" && s.ids.contains(&key) {
        s.conflicts += 1;
        return item_error(
            index,
            id,
            409,
            "version_conflict_engine_exception",
            &format!("[{id}]: version conflict, document already exists (current version [1])"),
        );
    }
    let seq = s.docs.len();
    s.ids.insert(key);
    s.docs.push(Doc {
        index: index.into(),
        id: id.into(),
        source: doc,
    });
    json!({"_index": index, "_id": id, "_version": 1, "result": "created",
           "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": seq, "_primary_term": 1, "status": 201})
}

/// Elasticsearch's `filter_path`: comma-separated dotted paths, `*` matching any key; arrays
/// are transparent; what no path keeps is left out.
fn filter_path(v: &Value, filter: &str) -> Option<Value> {
    let paths: Vec<Vec<&str>> = filter
        .split(',')
        .map(|p| p.trim().split('.').collect())
        .collect();
    keep(v, &paths.iter().map(|p| &p[..]).collect::<Vec<_>>())
}

fn keep(v: &Value, paths: &[&[&str]]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return Some(v.clone());
    }
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, child) in m {
                let rest: Vec<&[&str]> = paths
                    .iter()
                    .filter(|p| p[0] == "*" || p[0] == k)
                    .map(|p| &p[1..])
                    .collect();
                if rest.is_empty() {
                    continue;
                }
                if let Some(c) = keep(child, &rest) {
                    out.insert(k.clone(), c);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => {
            let kept: Vec<Value> = a.iter().filter_map(|x| keep(x, paths)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}
