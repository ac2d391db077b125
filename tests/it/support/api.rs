//! A minimal reqwest client for driving an emulator from tests: Basic auth with a chosen key,
//! a fixed User-Agent, bodies returned as bytes (reqwest has no `json` feature here).

use bytes::Bytes;
use clickhouse_audit_exporter::emulator::EmulatorHandle;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const USER_AGENT: &str = "ch-audit-it/1.0 (Zoë)";

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: Option<(String, String)>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (panics with the text if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` string of an error envelope.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl Api {
    /// A client using the emulator's admin key.
    pub fn new(h: &EmulatorHandle) -> Api {
        Api {
            http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .build()
                .expect("reqwest client"),
            base: h.base_url.clone(),
            key: Some((h.emulator.key_id(), h.emulator.key_secret())),
        }
    }

    pub fn with_key(&self, id: &str, secret: &str) -> Api {
        Api {
            key: Some((id.to_owned(), secret.to_owned())),
            ..self.clone()
        }
    }

    pub fn anonymous(&self) -> Api {
        Api {
            key: None,
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    /// Sends and reads the whole body (panics on transport errors; see `try_send`).
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.try_send(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<Resp> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((id, secret)) = &self.key {
            req = req.basic_auth(id, Some(secret));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let body = resp.bytes().await?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
