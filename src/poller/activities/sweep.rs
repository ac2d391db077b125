//! Self-verifying sweeps: every `reconcile_interval`, re-read an organization's recent past —
//! `reconcile_lookback` plus one day behind the cursor, so any zone reading of the bounds is
//! covered — in wide windows at low priority (the shared rate budget serves regular polls
//! first), and store whatever the polls missed. Each recovered activity is logged with its
//! `createdAt` and how late it was found, and counted; visibility delays beyond the overlap
//! grow it (up to `max_overlap`). A sweep is windows like any other: split, paced, stored as it
//! goes, so a crash loses nothing and the next sweep simply reads again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::check::{DAY_MS, floor_day};
use super::window::{Purpose, ReadMode, at};
use super::{ActivityPoller, PollError, STREAM, ms, next_window};
use crate::poller::FetchError;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    pub requests: u32,
    pub fetched: u64,
    pub recovered: u64,
    /// The longest `createdAt` → found delay among the recovered.
    pub max_delay_ms: i64,
}

/// Recovered activities logged one by one per sweep; the rest in the summary line.
const LOG_EACH: u64 = 20;

impl ActivityPoller {
    /// Runs sweeps every `reconcile_interval` (and when answers asked for one) until `token`
    /// is cancelled; nothing when sweeps are off.
    ///
    /// `never_swept` must be read before the polls start (`ActivityPoller::run`): the first
    /// poll records itself as the sweeps' baseline (`begin_cycle`), so a loop that looked at
    /// the facts after it could not tell a fresh state from one swept a moment ago, and would
    /// put the first sweep a whole `reconcile_interval` away instead of a poll interval. Until
    /// that first sweep has run it is due a poll interval after start (again after each poll
    /// interval while there is no cursor yet), whatever the baseline says.
    pub(super) async fn sweep_loop(&self, token: &CancellationToken, never_swept: bool) {
        let every = self.settings.reconcile_interval;
        if every.is_zero() {
            return;
        }
        let mut first_due =
            never_swept.then(|| self.clock.now().timestamp_millis() + ms(self.settings.interval));
        let mut retry_at: Option<i64> = None;
        loop {
            let now = self.clock.now().timestamp_millis();
            let due = match (
                first_due,
                self.learned.facts.get(&self.store, &self.org).await,
            ) {
                (Some(first), _) => first,
                (None, Ok(f)) => f
                    .last_sweep_ms
                    .map_or(now + ms(self.settings.interval), |t| t + ms(every)),
                (None, Err(_)) => now + ms(self.settings.interval),
            };
            let due = retry_at.map_or(due, |r| due.max(r));
            let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.learned.sweep_now.notified() => {}
            }
            retry_at = match self.sweep_logged(token).await {
                // Nothing to sweep yet (no poll completed): look again after a poll interval.
                Ok(None) => Some(self.clock.now().timestamp_millis() + ms(self.settings.interval)),
                Ok(Some(_)) => {
                    first_due = None;
                    None
                }
                // A failed sweep is tried again after a fifth of the interval (at most 5 min).
                Err(_) => Some(
                    self.clock.now().timestamp_millis()
                        + (ms(every) / 5).min(300_000).max(ms(self.settings.interval)),
                ),
            };
        }
    }

    /// Whether a sweep is due now (interval passed, or asked for by an answer).
    pub(super) async fn sweep_due(&self) -> anyhow::Result<bool> {
        let every = self.settings.reconcile_interval;
        if every.is_zero() {
            return Ok(false);
        }
        if self.learned.sweep_requested.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let f = self.learned.facts.get(&self.store, &self.org).await?;
        let now = self.clock.now().timestamp_millis();
        Ok(f.last_sweep_ms.is_some_and(|t| now - t >= ms(every)))
    }

    /// One sweep with its outcome logged; `None` when there is no cursor to sweep behind yet.
    ///
    /// # Errors
    /// The sweep's failure (also logged at WARN); the next one is tried later.
    pub async fn sweep_logged(
        &self,
        token: &CancellationToken,
    ) -> Result<Option<SweepStats>, PollError> {
        match self.sweep(token).await {
            Ok(stats) => Ok(stats),
            Err(e) => {
                tracing::warn!(org = %self.org, error = %format!("{e:#}"), "reconcile sweep failed; will try again");
                Err(e)
            }
        }
    }

    /// Re-reads `[now - reconcile_lookback - 1 day, cursor]` and stores what is missing.
    pub async fn sweep(&self, token: &CancellationToken) -> Result<Option<SweepStats>, PollError> {
        let s = &self.settings;
        let Some(cursor) = self.store.cursor(&self.org, STREAM).await? else {
            return Ok(None);
        };
        self.learned.sweep_requested.store(false, Ordering::Relaxed);
        let started = self.clock.now().timestamp_millis();
        // Only behind the cursor: what lies after it is the polls' to read, not a miss.
        let hi = cursor.cursor_ms.min(started);
        let facts = self.learned.facts.get(&self.store, &self.org).await?;
        // Never before the exporter's first cursor: older history is not owed, and finding it
        // is no recovery.
        let horizon = facts.horizon_ms.unwrap_or(cursor.cursor_ms);
        let mut from = (started - ms(s.reconcile_lookback) - DAY_MS).max(horizon);
        // Start from the last sweep's window length (else the polls'): it already fits the
        // density and any cap.
        let mut window = facts
            .sweep_window_ms
            .or(cursor.window_ms)
            .unwrap_or(ms(s.max_window))
            .clamp(ms(s.min_window), ms(s.max_window).max(ms(s.min_window)));
        let mut stats = SweepStats::default();
        tracing::debug!(org = %self.org, from = %at(from), to = %at(hi), "reconcile sweep starts");
        while from < hi && !token.is_cancelled() {
            let facts = self.learned.facts.get(&self.store, &self.org).await?;
            let day = self.day_mode(&facts);
            if day {
                from = floor_day(from);
                window = (window / DAY_MS).max(1) * DAY_MS;
            }
            let end = from + window;
            let to = end.min(hi);
            let wire_to = if day {
                self.day_wire_to(to, end, &facts)
            } else {
                to
            };
            let splittable = !day && window > ms(s.min_window);
            let mode = ReadMode {
                day,
                splittable,
                purpose: Purpose::Sweep,
            };
            let cap = splittable.then_some(s.max_response_bytes);
            let read = match self.read_window(from, wire_to, cap, mode, &facts).await {
                Ok(r) => r,
                Err(PollError::Fetch(FetchError::TooLarge { .. })) => {
                    stats.requests += 1;
                    window = (window / 2).max(ms(s.min_window));
                    continue;
                }
                Err(e) => return Err(e),
            };
            stats.requests += read.requests;
            stats.fetched += read.fetched;
            self.recovered(&read.fresh, (horizon, hi), started, &mut stats);
            if read.capped && splittable {
                window = (window / 2).max(ms(s.min_window));
                continue;
            }
            let facts = self.learned.facts.update(|_| {});
            window = next_window(
                window,
                (to - from).max(1),
                read.count,
                read.body_bytes,
                &self.sizing(&facts),
            )
            .clamp(ms(s.min_window), ms(s.max_window).max(ms(s.min_window)));
            from = to;
        }
        if token.is_cancelled() {
            return Ok(Some(stats));
        }
        self.learned
            .facts
            .update(|f| f.sweep_window_ms = Some(window));
        self.finish_sweep(&stats).await?;
        Ok(Some(stats))
    }

    /// Logs and counts what a sweep window stored for the first time behind the cursor (`hi`):
    /// the polls never read there again, so each is a miss. What an over-wide answer held
    /// beyond the cursor is stored too, but the polls may simply not have got to it yet.
    fn recovered(
        &self,
        fresh: &[(i64, String)],
        (horizon, hi): (i64, i64),
        found_ms: i64,
        stats: &mut SweepStats,
    ) {
        let (behind, outside): (Vec<_>, Vec<_>) =
            fresh.iter().partition(|(c, _)| (horizon..=hi).contains(c));
        if !outside.is_empty() {
            tracing::debug!(org = %self.org, count = outside.len(), "a sweep answer held new activities outside the range it checks (beyond the cursor, or before the first one); stored");
        }
        let fresh = behind;
        for (created_ms, event_id) in &fresh {
            stats.recovered += 1;
            let delay = (found_ms - created_ms).max(0);
            stats.max_delay_ms = stats.max_delay_ms.max(delay);
            if stats.recovered <= LOG_EACH {
                tracing::warn!(
                    org = %self.org,
                    event_id = %event_id,
                    created_at = %at(*created_ms).to_rfc3339(),
                    found_after = %humantime::format_duration(Duration::from_secs((delay / 1000) as u64)),
                    "a reconcile sweep recovered an activity the polls had missed; it is delivered like any other"
                );
            }
        }
        self.metrics
            .window
            .recovered
            .with_label_values(&[&self.org])
            .inc_by(fresh.len() as u64);
    }

    /// Records the sweep, and grows the overlap when activities turned up later than it and
    /// nothing else (a cap, shifted windows) explains the miss.
    async fn finish_sweep(&self, stats: &SweepStats) -> anyhow::Result<()> {
        let now = self.clock.now().timestamp_millis();
        let before = self.learned.facts.update(|_| {});
        let old_overlap = self.overlap_ms(&before);
        let explained = before.cap.is_some() || before.violations > 0;
        let grow_to = (stats.max_delay_ms + stats.max_delay_ms / 4 + 999) / 1000 * 1000;
        let facts = self.learned.facts.update(|f| {
            f.last_sweep_ms = Some(now);
            f.last_sweep_recovered = stats.recovered;
            f.recovered_total += stats.recovered;
            f.max_recovered_delay_ms = f.max_recovered_delay_ms.max(stats.max_delay_ms);
            if stats.recovered > 0 && !explained && grow_to > old_overlap {
                f.overlap_ms = f.overlap_ms.max(grow_to);
            }
        });
        self.learned.facts.save(&self.store, &self.org).await?;
        self.metrics
            .window
            .sweep_last_success
            .with_label_values(&[&self.org])
            .set(now as f64 / 1000.0);
        let new_overlap = self.overlap_ms(&facts);
        if stats.recovered > 0 {
            let cause = if before.cap.is_some() {
                "the API caps answers silently"
            } else if before.violations > 0 {
                "the API does not filter windows by the bounds asked"
            } else {
                "activities became visible later than the overlap"
            };
            tracing::warn!(
                org = %self.org,
                recovered = stats.recovered,
                requests = stats.requests,
                max_delay_s = stats.max_delay_ms / 1000,
                "a reconcile sweep recovered {} activities the polls had missed (likely cause: {cause})",
                stats.recovered
            );
        } else {
            tracing::info!(org = %self.org, requests = stats.requests, fetched = stats.fetched, "reconcile sweep complete: nothing was missing");
        }
        if new_overlap > old_overlap {
            tracing::warn!(
                org = %self.org,
                from_s = old_overlap / 1000,
                to_s = new_overlap / 1000,
                max_overlap_s = ms(self.settings.max_overlap) / 1000,
                "activities became visible up to {} after their createdAt, beyond the overlap: the overlap grows to {} (activities.max_overlap caps it)",
                humantime::format_duration(Duration::from_secs((stats.max_delay_ms / 1000) as u64)),
                humantime::format_duration(Duration::from_secs((new_overlap / 1000) as u64))
            );
        }
        self.publish_facts(&facts);
        Ok(())
    }
}
