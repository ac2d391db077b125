//! Shared health state: what each poller and sink last did, what each API key of ours is, written by the tasks and read by
//! `/readyz`, `/status` and `once`; and which long-running tasks died (`/healthz`, the systemd
//! watchdog). Small and lock-protected; never held across `.await`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Working, but something needs an operator (e.g. an answer the API capped that could
    /// not be split); not cleared by a success.
    pub degraded: Option<String>,
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

/// One API key of ours (issue 16): what it polls and what its own-key watch last read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KeyHealth {
    /// Organizations polled through this key.
    pub organizations: Vec<String>,
    /// Organizations it also sees, polled through an earlier key.
    pub also_sees: Vec<String>,
    /// Its own rate-limit budget, e.g. `10 per 10s`.
    pub rate_limit: String,
    /// `enabled`, `disabled`, `expired`, `deleted`, `refused` or `unknown`; `None` before
    /// the first check.
    pub state: Option<String>,
    pub expire_at: Option<DateTime<Utc>>,
    pub last_checked: Option<DateTime<Utc>>,
    /// Why the state is what it is (the API's message, what could not be read).
    pub detail: Option<String>,
}

/// Health of every poller (`org/stream`), sink (`name`) and API key of ours (`name`).
#[derive(Debug, Default)]
pub struct Health {
    pollers: Mutex<BTreeMap<String, ComponentHealth>>,
    sinks: Mutex<BTreeMap<String, ComponentHealth>>,
    keys: Mutex<BTreeMap<String, KeyHealth>>,
    /// Tasks that ended although nothing asked them to (a panic, a loop that returned): the
    /// process is no longer alive in any useful sense, so `/healthz` fails and the watchdog
    /// stops pinging. Cleared when a reload starts every task afresh.
    dead: Mutex<BTreeMap<String, String>>,
    /// Poll cycles ended (success or failure), every org and stream: the gauge refresh
    /// releases the executable's pages after each round of polls (`footprint`).
    polls_ended: AtomicU64,
    /// Signalled when a poll cycle ends, so that release follows the round by seconds
    /// instead of waiting for the refresh's next tick (up to 15 s of code left resident).
    poll_ended: tokio::sync::Notify,
}

fn key(org: &str, stream: &str) -> String {
    format!("{org}/{stream}")
}

impl Health {
    pub fn poll_ok(&self, org: &str, stream: &str) {
        self.polls_ended.fetch_add(1, Ordering::Relaxed);
        self.poll_ended.notify_one();
        if let Ok(mut m) = self.pollers.lock() {
            m.entry(key(org, stream)).or_default().ok(Utc::now());
        }
    }

    pub fn poll_failed(&self, org: &str, stream: &str, kind: &str, error: String) {
        self.polls_ended.fetch_add(1, Ordering::Relaxed);
        self.poll_ended.notify_one();
        if let Ok(mut m) = self.pollers.lock() {
            m.entry(key(org, stream))
                .or_default()
                .fail(Utc::now(), kind, error);
        }
    }

    /// Sets or clears why a poller is degraded (`/readyz` names it while set).
    pub fn poll_degraded(&self, org: &str, stream: &str, why: Option<String>) {
        if let Ok(mut m) = self.pollers.lock() {
            m.entry(key(org, stream)).or_default().degraded = why;
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

    /// Records that a long-running task ended unexpectedly, and why.
    pub fn task_died(&self, task: &str, why: String) {
        if let Ok(mut m) = self.dead.lock() {
            m.insert(task.to_string(), why);
        }
    }

    /// Poll cycles ended so far (successful or not), over every org and stream.
    pub fn polls_ended(&self) -> u64 {
        self.polls_ended.load(Ordering::Relaxed)
    }

    /// Resolves once a poll cycle has ended since the last call resolved (one waiter: the
    /// gauge refresh; an end signalled while nobody waits is kept for the next call).
    pub async fn poll_ended(&self) {
        self.poll_ended.notified().await;
    }

    /// Tasks that died (name → why); empty while the process is alive.
    pub fn dead_tasks(&self) -> BTreeMap<String, String> {
        self.dead.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// After a reload: forget pollers and sinks no longer configured and tasks of the old
    /// generation (every task has been started again).
    pub fn retain(&self, pollers: &[String], sinks: &[String]) {
        if let Ok(mut m) = self.pollers.lock() {
            m.retain(|k, _| pollers.contains(k));
        }
        if let Ok(mut m) = self.sinks.lock() {
            m.retain(|k, _| sinks.contains(k));
        }
        if let Ok(mut m) = self.dead.lock() {
            m.clear();
        }
    }

    /// Registers a key of the running configuration (what it polls and its budget), keeping
    /// what its watch last read; forgets keys no longer configured.
    pub fn set_keys(&self, keys: Vec<(String, KeyHealth)>) {
        if let Ok(mut m) = self.keys.lock() {
            let mut next = BTreeMap::new();
            for (name, mut k) in keys {
                if let Some(old) = m.remove(&name) {
                    k.state = old.state;
                    k.expire_at = old.expire_at;
                    k.last_checked = old.last_checked;
                    k.detail = old.detail;
                }
                next.insert(name, k);
            }
            *m = next;
        }
    }

    /// What the own-key watch read of key `name`.
    pub fn key_checked(
        &self,
        name: &str,
        state: &str,
        expire_at: Option<DateTime<Utc>>,
        detail: Option<String>,
    ) {
        if let Ok(mut m) = self.keys.lock() {
            let k = m.entry(name.to_string()).or_default();
            k.state = Some(state.to_string());
            k.expire_at = expire_at;
            k.last_checked = Some(Utc::now());
            k.detail = detail;
        }
    }

    pub fn keys(&self) -> BTreeMap<String, KeyHealth> {
        self.keys.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn pollers(&self) -> BTreeMap<String, ComponentHealth> {
        self.pollers.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn sinks(&self) -> BTreeMap<String, ComponentHealth> {
        self.sinks.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_clears_the_failure_and_retain_forgets_removed_components() {
        let h = Health::default();
        h.poll_failed("o1", "activities", "unauthorized", "401".into());
        h.poll_failed("o1", "activities", "unauthorized", "401 again".into());
        let p = &h.pollers()["o1/activities"];
        let since = p.failing_since.expect("failing");
        assert_eq!(p.last_error.as_deref(), Some("401 again"));
        h.poll_failed("o1", "activities", "unauthorized", "401".into());
        assert_eq!(
            h.pollers()["o1/activities"].failing_since,
            Some(since),
            "a run of failures keeps its start"
        );
        h.poll_ok("o1", "activities");
        let p = &h.pollers()["o1/activities"];
        assert!(p.failing_since.is_none() && p.last_error.is_none() && p.last_success.is_some());

        h.sink_failed("gone", "transient", "x".into());
        h.sink_ok("kept");
        h.poll_ok("o2", "activities");
        h.task_died("poller o2/activities", "panicked".into());
        h.retain(&["o1/activities".into()], &["kept".into()]);
        assert_eq!(h.pollers().keys().collect::<Vec<_>>(), ["o1/activities"]);
        assert_eq!(h.sinks().keys().collect::<Vec<_>>(), ["kept"]);
        assert!(h.dead_tasks().is_empty());
    }
}
