//! Shared health state: what each poller and sink last did, written by the tasks and read by
//! `/readyz`, `/status` and `once`. Small and lock-protected; never held across `.await`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// One component's recent history.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ComponentHealth {
    pub last_success: Option<DateTime<Utc>>,
    /// Set while failing: when the current run of failures began.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Error kind label (e.g. `unauthorized`, `transient`).
    pub last_error_kind: Option<String>,
    /// The component stopped for good (e.g. stdout closed).
    pub stopped: bool,
}

impl ComponentHealth {
    fn ok(&mut self, now: DateTime<Utc>) {
        self.last_success = Some(now);
        self.failing_since = None;
        self.last_error = None;
        self.last_error_kind = None;
    }

    fn fail(&mut self, now: DateTime<Utc>, kind: &str, error: String) {
        self.failing_since.get_or_insert(now);
        self.last_error = Some(error);
        self.last_error_kind = Some(kind.to_string());
    }
}

/// Health of every poller (`org/stream`) and sink (`name`).
#[derive(Debug, Default)]
pub struct Health {
    pollers: Mutex<BTreeMap<String, ComponentHealth>>,
    sinks: Mutex<BTreeMap<String, ComponentHealth>>,
}

fn key(org: &str, stream: &str) -> String {
    format!("{org}/{stream}")
}

impl Health {
    pub fn poll_ok(&self, org: &str, stream: &str) {
        if let Ok(mut m) = self.pollers.lock() {
            m.entry(key(org, stream)).or_default().ok(Utc::now());
        }
    }

    pub fn poll_failed(&self, org: &str, stream: &str, kind: &str, error: String) {
        if let Ok(mut m) = self.pollers.lock() {
            m.entry(key(org, stream))
                .or_default()
                .fail(Utc::now(), kind, error);
        }
    }

    pub fn sink_ok(&self, sink: &str) {
        if let Ok(mut m) = self.sinks.lock() {
            m.entry(sink.to_string()).or_default().ok(Utc::now());
        }
    }

    pub fn sink_failed(&self, sink: &str, kind: &str, error: String) {
        if let Ok(mut m) = self.sinks.lock() {
            m.entry(sink.to_string())
                .or_default()
                .fail(Utc::now(), kind, error);
        }
    }

    pub fn sink_stopped(&self, sink: &str, error: String) {
        if let Ok(mut m) = self.sinks.lock() {
            let h = m.entry(sink.to_string()).or_default();
            h.fail(Utc::now(), "fatal", error);
            h.stopped = true;
        }
    }

    pub fn pollers(&self) -> BTreeMap<String, ComponentHealth> {
        self.pollers.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn sinks(&self) -> BTreeMap<String, ComponentHealth> {
        self.sinks.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
