//! The operations listener (hyper): `/metrics` (Prometheus text), `/healthz` (liveness),
//! `/readyz` (200 only when every poller succeeded recently and no sink is stuck or refused its
//! credentials; else 503 with a JSON body naming each failing component), `/status` (cursors,
//! positions, errors; no secrets). `respond` is the whole routing, testable without a socket.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the endpoints read.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub store: Store,
    /// Expected pollers (`org/stream`) and their interval.
    pub pollers: Vec<(String, Duration)>,
    pub sinks: Vec<String>,
    /// A sink failing continuously for longer than this makes the exporter not ready.
    pub sink_failure_threshold: Duration,
    /// A secret-free summary of the configuration for `/status`.
    pub config_summary: serde_json::Value,
}

/// A response: status, content type, body.
pub type Reply = (StatusCode, &'static str, String);

/// Routes one request path.
pub async fn respond(path: &str, state: &ServerState) -> Reply {
    match path {
        "/metrics" => {
            state
                .metrics
                .state_db_bytes
                .set(state.store.size_bytes() as i64);
            (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                state.metrics.render(),
            )
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            let failing = readiness(state);
            if failing.is_empty() {
                (
                    StatusCode::OK,
                    "application/json",
                    "{\"ready\":true}\n".into(),
                )
            } else {
                let body = serde_json::to_string(&failing).unwrap_or_default();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    body + "\n",
                )
            }
        }
        "/status" => {
            let report = state.store.report(state.sinks.clone()).await;
            let body = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "state": report.map_err(|e| format!("{e:#}")).ok(),
                "pollers": state.health.pollers(),
                "sinks": state.health.sinks(),
                "not_ready": readiness(state),
                "config": state.config_summary,
            });
            (
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics /healthz /readyz /status\n".into(),
        ),
    }
}

/// Components that keep the exporter from being ready, with the reason.
pub fn readiness(state: &ServerState) -> serde_json::Map<String, serde_json::Value> {
    let now = Utc::now();
    let mut failing = serde_json::Map::new();
    let pollers = state.health.pollers();
    for (key, interval) in &state.pollers {
        let limit = chrono::Duration::from_std(*interval * 3).unwrap_or(chrono::Duration::MAX);
        let why = match pollers.get(key) {
            None => Some("no poll has completed yet".to_string()),
            Some(h) => match (&h.last_error, h.failing_since, h.last_success) {
                (Some(err), Some(since), _) => {
                    Some(format!("{err} (since {})", since.format("%H:%M:%S")))
                }
                (_, _, Some(ok)) if now - ok > limit => Some(format!(
                    "last success {} ago",
                    humantime::format_duration((now - ok).to_std().unwrap_or_default())
                )),
                _ => None,
            },
        };
        if let Some(why) = why {
            failing.insert(format!("poller {key}"), why.into());
        }
    }
    let limit =
        chrono::Duration::from_std(state.sink_failure_threshold).unwrap_or(chrono::Duration::MAX);
    for (name, h) in state.health.sinks() {
        if h.stopped {
            failing.insert(
                format!("sink {name}"),
                format!("stopped: {}", h.last_error.unwrap_or_default()).into(),
            );
        } else if let Some(since) = h.failing_since.filter(|s| {
            // Refused credentials do not heal by waiting: not ready at once (issue #5).
            now - *s > limit || h.last_error_kind.as_deref() == Some("unauthorized")
        }) {
            failing.insert(
                format!("sink {name}"),
                format!(
                    "{} (failing since {})",
                    h.last_error.unwrap_or_default(),
                    since.format("%H:%M:%S")
                )
                .into(),
            );
        }
    }
    failing
}

/// Serves until `token` is cancelled.
pub async fn run(listener: TcpListener, state: Arc<ServerState>, token: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => { tracing::warn!(error = %e, "accept failed on the metrics listener"); continue; }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let (status, ctype, body) = respond(req.uri().path(), &state).await;
                    let resp = Response::builder()
                        .status(status)
                        .header("content-type", ctype)
                        .body(Full::new(Bytes::from(body)))
                        .unwrap_or_default();
                    Ok::<_, Infallible>(resp)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}
