//! The operations listener (hyper): `/metrics` (Prometheus text), `/healthz` (liveness: 503
//! once a long-running task died), `/readyz` (200 only when every poller succeeded recently and
//! no sink is stuck or had its credentials refused; else 503 with a JSON body naming each
//! failing component and why), `/status` (cursors, positions, errors, config summary; no
//! secrets). `respond` is the whole routing, testable without a socket. What the endpoints describe (`View`) is swapped on a
//! config reload while the listener stays.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the running configuration makes the endpoints report; replaced on reload.
pub struct View {
    pub store: Store,
    /// Expected pollers (`org/stream`) and their interval.
    pub pollers: Vec<(String, Duration)>,
    pub sinks: Vec<String>,
    /// Our API keys (their names); one disabled, expired, deleted or refused, or expiring
    /// within `key_expiry_degraded`, makes the exporter not ready.
    pub keys: Vec<String>,
    pub key_expiry_degraded: Duration,
    /// A sink failing continuously for longer than this makes the exporter not ready.
    pub sink_failure_threshold: Duration,
    /// A secret-free summary of the configuration for `/status`.
    pub config_summary: serde_json::Value,
}

/// What the endpoints read.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    view: RwLock<Arc<View>>,
    started: DateTime<Utc>,
    /// The outcome of the last SIGHUP reload, for `/status`.
    last_reload: Mutex<Option<serde_json::Value>>,
}

impl ServerState {
    pub fn new(metrics: Arc<Metrics>, health: Arc<Health>, view: View) -> ServerState {
        ServerState {
            metrics,
            health,
            view: RwLock::new(Arc::new(view)),
            started: Utc::now(),
            last_reload: Mutex::new(None),
        }
    }

    /// The current view (cheap: an `Arc`).
    pub fn view(&self) -> Arc<View> {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in the view of a reloaded configuration.
    pub fn set_view(&self, view: View) {
        match self.view.write() {
            Ok(mut v) => *v = Arc::new(view),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(view),
        }
    }

    /// Records a reload outcome (`error` = None: success) for `/status`.
    pub fn record_reload(&self, error: Option<String>) {
        let entry = serde_json::json!({
            "at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "ok": error.is_none(),
            "error": error,
        });
        if let Ok(mut r) = self.last_reload.lock() {
            *r = Some(entry);
        }
    }

    /// Components keeping the exporter from being ready (empty: ready); also sets the
    /// `ready` gauge.
    pub fn not_ready(&self) -> serde_json::Map<String, serde_json::Value> {
        let failing = readiness(&self.view(), &self.health, Utc::now());
        self.metrics.ready.set(i64::from(failing.is_empty()));
        failing
    }
}

/// A response: status, content type, body.
pub type Reply = (StatusCode, &'static str, String);

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    (
        status,
        "application/json",
        serde_json::to_string(value).unwrap_or_default() + "\n",
    )
}

/// Routes one request path.
pub async fn respond(path: &str, state: &ServerState) -> Reply {
    match path {
        "/metrics" => {
            let view = state.view();
            state
                .metrics
                .state_db_bytes
                .set(view.store.size_bytes() as i64);
            state.not_ready();
            (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                state.metrics.render(),
            )
        }
        "/healthz" => {
            let dead = state.health.dead_tasks();
            if dead.is_empty() {
                (StatusCode::OK, "text/plain", "ok\n".into())
            } else {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({ "dead_tasks": dead }),
                )
            }
        }
        "/readyz" => {
            let failing = state.not_ready();
            if failing.is_empty() {
                json(StatusCode::OK, &serde_json::json!({ "ready": true }))
            } else {
                json(StatusCode::SERVICE_UNAVAILABLE, &failing.into())
            }
        }
        "/status" => {
            let view = state.view();
            let report = view.store.report(view.sinks.clone()).await;
            let reload = state.last_reload.lock().ok().and_then(|r| r.clone());
            let not_ready = state.not_ready();
            let body = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "started_at": state.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "uptime_seconds": (Utc::now() - state.started).num_seconds(),
                "ready": not_ready.is_empty(),
                "not_ready": not_ready,
                "dead_tasks": state.health.dead_tasks(),
                "state": report.map_err(|e| format!("{e:#}")).ok(),
                "pollers": state.health.pollers(),
                "keys": state.health.keys(),
                "sinks": state.health.sinks(),
                "config": view.config_summary,
                "last_reload": reload,
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

/// Components that keep the exporter from being ready at `now`, with the reason: a poller
/// that has not completed a poll yet, is failing (with the error and since when), or last
/// succeeded more than 3 intervals ago; a sink that stopped or has been failing longer than
/// the threshold.
pub fn readiness(
    view: &View,
    health: &Health,
    now: DateTime<Utc>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut failing = serde_json::Map::new();
    let pollers = health.pollers();
    for (key, interval) in &view.pollers {
        let limit = chrono::Duration::from_std(*interval * 3).unwrap_or(chrono::Duration::MAX);
        let why = match pollers.get(key) {
            None => Some("no poll has completed yet".to_string()),
            Some(h) => match (&h.last_error, h.failing_since, h.last_success) {
                (Some(err), Some(since), _) => {
                    Some(format!("{err} (since {})", since.format("%H:%M:%S UTC")))
                }
                (_, _, Some(ok)) if now - ok > limit => Some(format!(
                    "last success {} ago (more than 3 intervals)",
                    humantime::format_duration(Duration::from_secs(
                        (now - ok).num_seconds().max(0) as u64
                    ))
                )),
                (_, _, None) => Some("no poll has completed yet".to_string()),
                _ => h.degraded.as_ref().map(|why| format!("degraded: {why}")),
            },
        };
        if let Some(why) = why {
            failing.insert(format!("poller {key}"), why.into());
        }
    }
    key_readiness(view, health, now, &mut failing);
    let limit =
        chrono::Duration::from_std(view.sink_failure_threshold).unwrap_or(chrono::Duration::MAX);
    let sinks = health.sinks();
    for name in &view.sinks {
        let Some(h) = sinks.get(name) else { continue };
        if h.stopped {
            failing.insert(
                format!("sink {name}"),
                format!("stopped: {}", h.last_error.clone().unwrap_or_default()).into(),
            );
        } else if let Some(since) = h.failing_since.filter(|s| {
            // Refused credentials do not heal by waiting: not ready at once (issue #5).
            now - *s > limit || h.last_error_kind.as_deref() == Some("unauthorized")
        }) {
            failing.insert(
                format!("sink {name}"),
                format!(
                    "{} (failing since {})",
                    h.last_error.clone().unwrap_or_default(),
                    since.format("%H:%M:%S UTC")
                )
                .into(),
            );
        }
    }
    failing
}

/// Our API keys that keep the exporter from being ready: unusable (disabled, expired, deleted,
/// refused) or expiring within `view.key_expiry_degraded` (judged at `now`, so the day comes
/// without waiting for the next check). A key not checked yet or whose record is unreadable
/// does not count (its pollers say whether it works).
fn key_readiness(
    view: &View,
    health: &Health,
    now: DateTime<Utc>,
    failing: &mut serde_json::Map<String, serde_json::Value>,
) {
    let keys = health.keys();
    let soon =
        chrono::Duration::from_std(view.key_expiry_degraded).unwrap_or(chrono::Duration::MAX);
    for name in &view.keys {
        let Some(k) = keys.get(name) else { continue };
        let why = match (k.state.as_deref(), k.expire_at) {
            (None | Some("unknown"), _) => None,
            (Some("enabled"), Some(at)) if at - now <= soon => Some(format!(
                "degraded: API key {name} expires {} (in {}): put a new key in the configuration",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(Duration::from_secs(
                    (at - now).num_seconds().max(0) as u64
                ))
            )),
            (Some("enabled"), _) => None,
            (Some(state), _) => Some(format!(
                "API key {name} is {state}: {}",
                k.detail.clone().unwrap_or_default()
            )),
        };
        if let Some(why) = why {
            failing.insert(format!("key {name}"), why.into());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &std::path::Path) -> ServerState {
        let view = View {
            store: Store::open(&dir.join("state.db")).unwrap(),
            pollers: vec![("o1/activities".into(), Duration::from_secs(60))],
            sinks: vec!["siem".into()],
            keys: vec!["prod".into()],
            key_expiry_degraded: Duration::from_secs(2 * 86_400),
            sink_failure_threshold: Duration::from_secs(300),
            config_summary: serde_json::json!({"api": {"key_id": "k"}}),
        };
        ServerState::new(Arc::new(Metrics::new()), Arc::new(Health::default()), view)
    }

    async fn readyz(s: &ServerState) -> (StatusCode, serde_json::Value) {
        let (code, ctype, body) = respond("/readyz", s).await;
        assert_eq!(ctype, "application/json");
        (code, serde_json::from_str(&body).unwrap())
    }

    #[tokio::test]
    async fn readyz_names_each_failing_component_and_recovers_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        let (code, body) = readyz(&s).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            serde_json::json!({"poller o1/activities": "no poll has completed yet"})
        );
        assert_eq!(s.metrics.ready.get(), 0);

        s.health.poll_ok("o1", "activities");
        assert_eq!(
            readyz(&s).await,
            (StatusCode::OK, serde_json::json!({"ready": true}))
        );
        assert_eq!(s.metrics.ready.get(), 1);

        s.health.poll_failed(
            "o1",
            "activities",
            "unauthorized",
            "401 Unauthorized: rejected".into(),
        );
        let (code, body) = readyz(&s).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let why = body["poller o1/activities"].as_str().unwrap();
        assert!(
            why.starts_with("401 Unauthorized: rejected (since ") && why.ends_with(" UTC)"),
            "{why}"
        );
        s.health.poll_ok("o1", "activities");
        assert_eq!(readyz(&s).await.0, StatusCode::OK);

        // A sink failing briefly is tolerated; past the threshold it is named.
        s.health.sink_failed("siem", "transient", "HTTP 503".into());
        s.health
            .sink_failed("removed", "transient", "not configured any more".into());
        assert_eq!(readyz(&s).await.0, StatusCode::OK);
        let later = Utc::now() + chrono::Duration::seconds(301);
        let failing = readiness(&s.view(), &s.health, later);
        assert!(
            failing["sink siem"]
                .as_str()
                .unwrap()
                .starts_with("HTTP 503 (failing since ")
        );
        assert!(
            !failing.contains_key("sink removed"),
            "only configured sinks count"
        );
        // A poller whose last success is older than 3 intervals is named too.
        let why = failing["poller o1/activities"].as_str().unwrap();
        assert!(
            why.starts_with("last success 5m") && why.ends_with("ago (more than 3 intervals)"),
            "{why}"
        );
        s.health.sink_stopped("siem", "stdout closed".into());
        assert_eq!(readyz(&s).await.1["sink siem"], "stopped: stdout closed");
    }

    #[tokio::test]
    async fn a_sink_whose_credentials_are_refused_is_not_ready_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        s.health.poll_ok("o1", "activities");
        s.health.sink_failed(
            "siem",
            "unauthorized",
            "credentials refused: Splunk HEC answered 403 (HEC code 4: Invalid token)".into(),
        );
        let (code, body) = readyz(&s).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["sink siem"]
                .as_str()
                .unwrap()
                .starts_with("credentials refused: Splunk HEC"),
            "{body}"
        );
        s.health.sink_ok("siem");
        assert_eq!(readyz(&s).await.0, StatusCode::OK, "recovers once accepted");
    }

    #[tokio::test]
    async fn a_key_expiring_within_the_degraded_period_or_disabled_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        s.health.poll_ok("o1", "activities");
        let in_3d = Utc::now() + chrono::Duration::days(3);
        s.health.key_checked("prod", "enabled", Some(in_3d), None);
        assert_eq!(readyz(&s).await.0, StatusCode::OK, "3 days ahead: ready");
        let in_1d = Utc::now() + chrono::Duration::days(1);
        s.health.key_checked("prod", "enabled", Some(in_1d), None);
        let (code, body) = readyz(&s).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let why = body["key prod"].as_str().unwrap();
        assert!(
            why.starts_with("degraded: API key prod expires ") && why.contains("(in 23h"),
            "{why}"
        );
        s.health.key_checked(
            "prod",
            "disabled",
            None,
            Some("disabled in the console".into()),
        );
        assert_eq!(
            readyz(&s).await.1["key prod"],
            "API key prod is disabled: disabled in the console"
        );
        s.health
            .key_checked("prod", "unknown", None, Some("403".into()));
        assert_eq!(
            readyz(&s).await.0,
            StatusCode::OK,
            "an unreadable record is not a failure"
        );
        let (_, _, status) = respond("/status", &s).await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["keys"]["prod"]["state"], "unknown");
    }

    #[tokio::test]
    async fn healthz_fails_once_a_task_died_and_status_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        assert_eq!(respond("/healthz", &s).await.0, StatusCode::OK);
        s.health
            .task_died("poller o1/activities", "panicked: boom".into());
        let (code, _, body) = respond("/healthz", &s).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("poller o1/activities") && body.contains("panicked: boom"));
        s.record_reload(Some("config key `x`: bad".into()));
        let (code, _, body) = respond("/status", &s).await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["dead_tasks"]["poller o1/activities"], "panicked: boom");
        assert_eq!(v["last_reload"]["ok"], false);
        assert_eq!(v["config"]["api"]["key_id"], "k");
        assert_eq!(v["state"]["schema_version"], crate::store::schema_version());
        let (code, ctype, body) = respond("/metrics", &s).await;
        assert_eq!((code, ctype), (StatusCode::OK, "text/plain; version=0.0.4"));
        assert!(body.contains("clickhouse_audit_state_db_bytes "));
        assert_eq!(respond("/nope", &s).await.0, StatusCode::NOT_FOUND);
    }
}
