//! What the poller has learned about one organization's activity window semantics — a zone
//! reading of zone-less bounds (a pad), whole-day filtering (day mode), a silent answer cap,
//! visibility delays (a grown overlap) — and what its sweeps found. Kept as JSON in the
//! state's `meta` table (`window_facts:<org>`) so a restart does not have to learn it again.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::Store;

/// Learned per organization; every field only ever moves towards the safe side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowFacts {
    /// The API filters by whole UTC days (the time part is ignored): windows are whole days.
    pub whole_days: bool,
    /// Every window is widened by this on both sides: the API read our bounds shifted (a zone
    /// reading of zone-less values), by up to this much.
    pub pad_ms: i64,
    /// The API silently returns at most this many activities per answer.
    pub cap: Option<usize>,
    /// A split of an answer this large showed it was complete: no cap up to this size.
    pub verified_uncapped: usize,
    /// The largest answer seen so far.
    pub max_answer: usize,
    /// The poll's overlap, grown from visibility delays sweeps observed; 0 = configured.
    pub overlap_ms: i64,
    /// Activities outside the bounds asked, ever.
    pub violations: u64,
    /// When the last sweep ended (Unix ms) and what it recovered.
    pub last_sweep_ms: Option<i64>,
    pub last_sweep_recovered: u64,
    /// Every activity a sweep had to recover, ever.
    pub recovered_total: u64,
    /// The longest delay between `createdAt` and a sweep finding a missed activity.
    pub max_recovered_delay_ms: i64,
    /// Where the exporter's responsibility begins (the first cursor, or a rewound one): sweeps
    /// never reach before it, so history older than `initial_lookback` is not "recovered".
    pub horizon_ms: Option<i64>,
    /// A date-only `to_date` was seen to cover its whole day: day windows then ask `to_date`
    /// = their last day instead of the day after (half the bytes).
    pub to_date_whole_day: bool,
    /// The window length the last sweep ended with (fits the density and any cap).
    pub sweep_window_ms: Option<i64>,
}

/// The `meta` key of an org's facts.
pub fn meta_key(org: &str) -> String {
    format!("window_facts:{org}")
}

/// Whether an answer of `count` activities looks like a silent cap: a round number (100, 200,
/// 250, 500, 1,000 …) or exactly the largest answer seen so far, and larger than any answer a
/// split already proved complete.
pub fn suspicious(count: usize, facts: &WindowFacts) -> bool {
    if count <= facts.verified_uncapped || count < 10 {
        return false;
    }
    count == facts.max_answer || round(count)
}

/// A round number (100, 200, 250, 500, 1,000 …).
pub fn round(n: usize) -> bool {
    let mut p = 100usize;
    while p <= n {
        if n == p || n == 2 * p || n * 2 == 5 * p || n == 5 * p {
            return true;
        }
        match p.checked_mul(10) {
            Some(next) => p = next,
            None => break,
        }
    }
    false
}

/// An org's facts shared by its poll loop and its sweep loop: a plain mutex never held across
/// an await; `save` writes the latest value, serialized so an older snapshot never lands last.
#[derive(Debug, Default)]
pub struct FactsCell {
    value: Mutex<Option<WindowFacts>>,
    saving: tokio::sync::Mutex<()>,
}

impl FactsCell {
    /// The facts, loaded from the store on first use.
    pub async fn get(&self, store: &Store, org: &str) -> anyhow::Result<WindowFacts> {
        if let Some(f) = self.lock().clone() {
            return Ok(f);
        }
        let loaded = match store.meta_get(&meta_key(org)).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(org, error = %e, "stored window facts are unreadable; learning them again");
                WindowFacts::default()
            }),
            None => WindowFacts::default(),
        };
        Ok(self.lock().get_or_insert(loaded).clone())
    }

    /// Applies `change` to the facts in memory and returns the new value (call `get` first).
    pub fn update(&self, change: impl FnOnce(&mut WindowFacts)) -> WindowFacts {
        let mut guard = self.lock();
        let f = guard.get_or_insert_with(WindowFacts::default);
        change(f);
        f.clone()
    }

    /// Writes the current facts to the store.
    pub async fn save(&self, store: &Store, org: &str) -> anyhow::Result<()> {
        let _one_at_a_time = self.saving.lock().await;
        let Some(current) = self.lock().clone() else {
            return Ok(());
        };
        let text = serde_json::to_string(&current).expect("facts serialize");
        store.meta_set(&meta_key(org), text).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<WindowFacts>> {
        self.value.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers_and_repeats_of_the_largest_answer_are_suspicious() {
        let f = WindowFacts::default();
        for n in [100, 200, 250, 500, 1000, 2000, 2500, 5000, 10_000, 50_000] {
            assert!(suspicious(n, &f), "{n}");
        }
        for n in [0, 9, 99, 101, 150, 300, 999, 1001, 4999, 12_345] {
            assert!(!suspicious(n, &f), "{n}");
        }
        let f = WindowFacts {
            max_answer: 37,
            ..WindowFacts::default()
        };
        assert!(suspicious(37, &f));
        assert!(!suspicious(36, &f));
        let f = WindowFacts {
            max_answer: 1000,
            verified_uncapped: 1000,
            ..WindowFacts::default()
        };
        assert!(!suspicious(1000, &f), "a split proved 1000 complete");
        assert!(!suspicious(500, &f));
    }

    #[tokio::test]
    async fn facts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let cell = FactsCell::default();
        assert_eq!(cell.get(&store, "o").await.unwrap(), WindowFacts::default());
        cell.update(|f| {
            f.cap = Some(100);
            f.pad_ms = 9 * 3_600_000;
        });
        cell.save(&store, "o").await.unwrap();
        let again = FactsCell::default().get(&store, "o").await.unwrap();
        assert_eq!(again.cap, Some(100));
        assert_eq!(again.pad_ms, 9 * 3_600_000);
    }
}
