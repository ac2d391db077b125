//! A fake Splunk HTTP Event Collector following Splunk's published HEC protocol (no Splunk can
//! be installed here), on `127.0.0.1:0`, able to go down and come back on the same port.
//!
//! - `POST /services/collector/event`: `Authorization: Splunk <token>` — missing → 401
//!   `{"text":"Token is required","code":2}`, not `Splunk <x>` → 401 `{"text":"Invalid
//!   authorization","code":3}`, unknown → 403 `{"text":"Invalid token","code":4}`. Body: HEC
//!   event objects back to back (gzip when `Content-Encoding: gzip`); unparsable → 400
//!   `{"text":"Invalid data format","code":6,"invalid-event-number":N}`; no `event` → 400 code
//!   12 "Event field is required", blank → code 13 "Event field cannot be blank"; a `fields`
//!   value that is not a string or list of strings → 400 code 15 "Error in handling indexed
//!   fields". Busy → 503 `{"text":"Server is busy","code":9}`. Success: 200
//!   `{"text":"Success","code":0}`, with `"ackId":N` when acknowledgement is on.
//! - Indexer acknowledgement (per token): requests need `X-Splunk-Request-Channel` (or
//!   `?channel=`) → else 400 `{"text":"Data channel is missing","code":10}`; ackIds count from 0
//!   per channel; `POST /services/collector/ack` with `{"acks":[ids]}` answers
//!   `{"acks":{"id":bool}}`, true once indexed — and, as in Splunk, an id reported true is
//!   forgotten (later queries say false). With ack off, `/ack` answers 400
//!   `{"text":"ACK is disabled","code":14}`.
//! - Events count as indexed at once without ack, or after `index_delay` with it; `lose_acks`
//!   drops the next requests' events before indexing (their ackIds never turn true).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct State {
    tokens: HashSet<String>,
    ack: bool,
    busy: usize,
    lose: usize,
    index_delay: Duration,
    /// channel → next ackId
    next_ack: HashMap<String, u64>,
    /// (channel, ackId) → indexed?
    acks: HashMap<(String, u64), bool>,
    indexed: Vec<Value>,
    requests: usize,
    ack_queries: usize,
}

pub struct FakeHec {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    running: Mutex<Option<CancellationToken>>,
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

impl FakeHec {
    /// A collector accepting `token`, with indexer acknowledgement on or off.
    pub async fn start(token: &str, ack: bool) -> FakeHec {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hec = FakeHec {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                tokens: [token.to_string()].into(),
                ack,
                ..Default::default()
            })),
            running: Mutex::new(None),
        };
        hec.serve(listener);
        hec
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every indexed event object, in order.
    pub fn indexed(&self) -> Vec<Value> {
        self.state.lock().unwrap().indexed.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    pub fn ack_queries(&self) -> usize {
        self.state.lock().unwrap().ack_queries
    }

    /// Answer the next `n` event requests with 503 code 9.
    pub fn busy(&self, n: usize) {
        self.state.lock().unwrap().busy = n;
    }

    /// Accept the next `n` requests (with ackIds) but never index them.
    pub fn lose_acks(&self, n: usize) {
        self.state.lock().unwrap().lose = n;
    }

    pub fn index_delay(&self, d: Duration) {
        self.state.lock().unwrap().index_delay = d;
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        if let Some(t) = self.running.lock().unwrap().take() {
            t.cancel();
        }
    }

    /// Listens again on the same port.
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

impl Drop for FakeHec {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 401/403 per HEC's token rules, or `None` when the token is good.
fn check_auth(state: &State, req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let Some(value) = req.headers().get("authorization") else {
        return Some(reply(401, json!({"text":"Token is required","code":2})));
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Splunk ")) else {
        return Some(reply(401, json!({"text":"Invalid authorization","code":3})));
    };
    if !state.tokens.contains(token.trim()) {
        return Some(reply(403, json!({"text":"Invalid token","code":4})));
    }
    None
}

fn channel(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("channel=").map(str::to_string))
            })
        })
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    {
        let s = state.lock().unwrap();
        if let Some(denied) = check_auth(&s, &req) {
            return Ok(denied);
        }
    }
    let channel = channel(&req);
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let raw = req.into_body().collect().await?.to_bytes();
    let body = if gzip {
        let mut out = Vec::new();
        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .is_err()
        {
            return Ok(reply(400, json!({"text":"Invalid data format","code":6})));
        }
        out
    } else {
        raw.to_vec()
    };
    match (path.as_str(), channel) {
        ("/services/collector/event", channel) => Ok(event(&state, &body, channel)),
        ("/services/collector/ack", channel) => Ok(ack(&state, &body, channel)),
        _ => Ok(reply(
            404,
            json!({"text":"The requested URL was not found on this server.","code":404}),
        )),
    }
}

fn event(state: &Arc<Mutex<State>>, body: &[u8], channel: Option<String>) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if s.busy > 0 {
        s.busy -= 1;
        return reply(503, json!({"text":"Server is busy","code":9}));
    }
    if s.ack && channel.is_none() {
        return reply(400, json!({"text":"Data channel is missing","code":10}));
    }
    let mut events = Vec::new();
    for (n, item) in serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .enumerate()
    {
        let Ok(v) = item else {
            return reply(
                400,
                json!({"text":"Invalid data format","code":6,"invalid-event-number":n}),
            );
        };
        match v.get("event") {
            None => {
                return reply(
                    400,
                    json!({"text":"Event field is required","code":12,"invalid-event-number":n}),
                );
            }
            Some(Value::String(e)) if e.is_empty() => {
                return reply(
                    400,
                    json!({"text":"Event field cannot be blank","code":13,"invalid-event-number":n}),
                );
            }
            _ => {}
        }
        if let Some(fields) = v.get("fields") {
            let flat = fields.as_object().is_some_and(|m| {
                m.values().all(|f| {
                    f.is_string() || f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                })
            });
            if !flat {
                return reply(
                    400,
                    json!({"text":"Error in handling indexed fields","code":15,"invalid-event-number":n}),
                );
            }
        }
        events.push(v);
    }
    if events.is_empty() {
        return reply(400, json!({"text":"No data","code":5}));
    }
    if !s.ack {
        s.indexed.extend(events);
        return reply(200, json!({"text":"Success","code":0}));
    }
    let channel = channel.unwrap_or_default();
    let id = {
        let next = s.next_ack.entry(channel.clone()).or_insert(0);
        let id = *next;
        *next += 1;
        id
    };
    s.acks.insert((channel.clone(), id), false);
    if s.lose > 0 {
        s.lose -= 1;
    } else {
        let delay = s.index_delay;
        let state = state.clone();
        tokio::spawn(async move {
            // Splunk's indexing lag, the behaviour the ack tests script.
            tokio::time::sleep(delay).await;
            let mut s = state.lock().unwrap();
            s.indexed.extend(events);
            s.acks.insert((channel, id), true);
        });
    }
    reply(200, json!({"text":"Success","code":0,"ackId":id}))
}

fn ack(state: &Arc<Mutex<State>>, body: &[u8], channel: Option<String>) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    s.ack_queries += 1;
    if !s.ack {
        return reply(400, json!({"text":"ACK is disabled","code":14}));
    }
    let Some(channel) = channel else {
        return reply(400, json!({"text":"Data channel is missing","code":10}));
    };
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return reply(400, json!({"text":"Invalid data format","code":6}));
    };
    let Some(ids) = q.get("acks").and_then(Value::as_array) else {
        return reply(400, json!({"text":"Invalid data format","code":6}));
    };
    let mut out = serde_json::Map::new();
    for id in ids.iter().filter_map(Value::as_u64) {
        let key = (channel.clone(), id);
        let done = s.acks.get(&key).copied().unwrap_or(false);
        if done {
            s.acks.remove(&key); // reported once, then forgotten
        }
        out.insert(id.to_string(), Value::Bool(done));
    }
    reply(200, json!({ "acks": out }))
}
