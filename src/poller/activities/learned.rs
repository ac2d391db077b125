//! What one org's answers taught, shared by its poll and sweep loops: the facts cell, the
//! sweep request, and the readiness alert of a window that may have lost activities.

use chrono::Utc;

use crate::config::DateFormat;

/// The learned state every loop of one org shares.
#[derive(Debug, Default)]
pub struct Learned {
    pub facts: super::facts::FactsCell,
    /// Asks the sweep loop to run now (violations, a cap).
    pub sweep_now: tokio::sync::Notify,
    /// Set with `sweep_now` so `once` sees the request too.
    pub sweep_requested: std::sync::atomic::AtomicBool,
    /// The overlap the poll last used (ms, 0 = none yet): a grown one rewinds the cursor.
    pub applied_overlap: std::sync::atomic::AtomicI64,
    /// The date format last written to the store.
    pub saved_format: std::sync::Mutex<Option<DateFormat>>,
    /// The largest answer so far: its size and the `createdAt` span it held.
    pub(super) largest: std::sync::Mutex<Option<(usize, (i64, i64))>>,
    /// An unsplittable capped window: why, and when (Unix ms); `/readyz` is degraded for an
    /// hour after the last one.
    alert: std::sync::Mutex<Option<(String, i64)>>,
}

/// How long `/readyz` stays degraded after an answer that may have lost activities.
const ALERT_FOR_MS: i64 = 3_600_000;

impl Learned {
    /// Asks for a sweep as soon as possible.
    pub fn request_sweep(&self) {
        self.sweep_requested
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.sweep_now.notify_one();
    }

    pub(super) fn alert(&self, health: &crate::health::Health, org: &str, why: String) {
        let now = Utc::now().timestamp_millis();
        *self.alert.lock().unwrap_or_else(|p| p.into_inner()) = Some((why.clone(), now));
        health.poll_degraded(org, super::STREAM, Some(why));
    }

    /// Clears the degraded state an hour after the last alert.
    pub(super) fn expire_alert(&self, health: &crate::health::Health, org: &str) {
        let mut a = self.alert.lock().unwrap_or_else(|p| p.into_inner());
        if a.as_ref()
            .is_some_and(|(_, at)| Utc::now().timestamp_millis() - at > ALERT_FOR_MS)
        {
            *a = None;
            health.poll_degraded(org, super::STREAM, None);
        }
    }
}
