//! The activity poller: one task per organization. Each cycle fetches windows from the cursor
//! up to now (oldest first, at most `window` long each), stores new activities in createdAt
//! order and moves the cursor in the same transaction, then wakes the sinks.
//!
//! # The cursor rule
//! The cursor `C` means: every activity created before `C` that became visible within
//! `overlap` of its `createdAt` is stored. A cycle walks windows `[from, to]` from `C` to now:
//! the first `from` is `C`, each next `from` is the previous `to`, and
//! `to = min(from + window, now)`. After a successful fetch sent at time `F` (a lower bound of
//! the server's clock when it ran the query: the response's HTTP `Date` minus the request's
//! duration and one second of `Date` truncation; the local send time when there is no `Date`),
//! the cursor becomes `C' = max(C, min(to, F - overlap))` — but only while every earlier
//! window of the cycle moved it to its own `to`. The first window that leaves it short of
//! `to` freezes it for the rest of the cycle; later windows are read for freshness only.
//!
//! *Proof that nothing is skipped* (activity `A`, created at `t`, visible from `t + d`,
//! `d <= overlap`): a cycle's windows are contiguous from `C`, and the next cycle starts at
//! the cursor it left. The cursor can only pass `t` in a fetch while it is not frozen, so
//! `C = from` (each earlier window moved it to its `to`, the next `from`), and the move is to
//! `min(to, F - overlap) > t`: then `from <= t < to`, `t` is inside that window and
//! `F >= t + overlap >= t + d`, so `A` was visible when that query ran and is in its answer.
//! Because `F` is read from the server's own clock, client/server skew does not enter the
//! bound; without a `Date` header the bound needs `d + skew <= overlap`, and `F` is also
//! capped by the previous `F` plus the time elapsed on a clock that never steps
//! (`Clock::elapsed_ms`), so a wall clock stepping forward cannot carry the cursor past
//! activities not yet created (a step back is harmless: the cursor never moves back, the
//! windows just re-read more).
//!
//! *A quiet organization* does not grow windows: `C'` follows `now - overlap`, so each window
//! is about `interval + overlap` long, with or without activity.
//! *A busy organization*, whose `interval + overlap` holds more than one window's worth, reads
//! that span in several windows per cycle and the cycle still ends at now: the overlap is
//! re-read once per cycle, never more.
//! *A fresh or rewound state* starts at `now - initial_lookback` (or the rewound cursor) and
//! walks forward in `window`-sized chunks, oldest first; there `F - overlap` is far past `to`,
//! so chunks do not re-read each other.
//!
//! Windows whose answer is too large (above `split_threshold` activities, or aborted past
//! `max_response_bytes`) are at least halved; every next window is sized from the last answer's
//! density to fill about 70% of those caps (at most doubling while answers are small). The
//! length is stored with the cursor so a restart does not repeat the big fetch.
//!
//! # When the API does not filter the way the proof assumes (issue 12)
//! The proof needs the server to filter exactly by the UTC bounds sent and to return the whole
//! window; nothing documents either (API notes §3.3). So (`window.rs`, `check.rs`, `facts.rs`):
//! - every answer is checked against the bounds asked: activities outside them are stored,
//!   counted, and the first such answer names the likely cause; a shifted window (a zone
//!   reading) widens every later window by a pad, whole days switch the org to *day mode*;
//! - an answer whose size looks like a silent cap (a round number, or the largest answer so
//!   far) is checked by fetching its two halves (`cap.rs`); a cap is learned, persisted and
//!   windows are kept below it; a window that cannot be split is an ERROR and degrades `/readyz`;
//! - *day mode* (date-only bounds, or whole-day filtering): windows are whole UTC days, read
//!   streamed into the store in bounded chunks, never split; the steady state re-reads today
//!   (and yesterday near midnight);
//! - a *sweep* (`sweep.rs`) re-reads `reconcile_lookback` plus a day behind the cursor every
//!   `reconcile_interval`, at low priority, and stores whatever the polls missed; visibility
//!   delays it observes grow the overlap (up to `max_overlap`).
//!
//! Whatever was learned lives in the state (`meta`), so a restart does not learn it again.

mod cap;
mod check;
mod cycle_state;
pub mod facts;
mod learned;
mod sizing;
mod sweep;
mod window;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ActivitySource, Clock, FetchError};
use crate::config::ActivitiesConfig;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::poller::decode_permit::DecodePermit;
use crate::store::Store;
use check::DAY_MS;
use facts::WindowFacts;
pub use learned::Learned;
use sizing::{FILL, next_window};
pub use sweep::SweepStats;
use window::{Purpose, ReadMode};

/// The cursor's stream name in the store.
pub const STREAM: &str = "activities";

/// Why an activity poll or sweep failed. Callers branch on it: `TooLarge` splits the window,
/// and `kind` is the `poll_errors` metric label.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The source refused or failed the request (or the answer was too large).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Anything else: the state (store reads and writes).
    #[error(transparent)]
    State(#[from] anyhow::Error),
}

impl PollError {
    /// The `poll_errors` metric label: the source's kind, or `state`.
    pub fn kind(&self) -> &'static str {
        match self {
            PollError::Fetch(e) => e.kind(),
            PollError::State(_) => "state",
        }
    }
}

/// Poller knobs, from `[activities]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub overlap: Duration,
    pub initial_lookback: Duration,
    pub max_window: Duration,
    pub split_threshold: usize,
    pub max_response_bytes: usize,
    /// Windows are never split below this (`createdAt` has one-second resolution).
    pub min_window: Duration,
    /// Sweeps: how often (zero = never) and how far back.
    pub reconcile_interval: Duration,
    pub reconcile_lookback: Duration,
    /// Observed visibility delays grow the overlap up to this.
    pub max_overlap: Duration,
}

impl From<&ActivitiesConfig> for Settings {
    fn from(c: &ActivitiesConfig) -> Self {
        Settings {
            interval: c.interval,
            overlap: c.overlap,
            initial_lookback: c.initial_lookback,
            max_window: c.max_window,
            split_threshold: c.split_threshold,
            max_response_bytes: usize::try_from(c.max_response_bytes).unwrap_or(usize::MAX),
            min_window: Duration::from_secs(1),
            reconcile_interval: c.reconcile_interval,
            reconcile_lookback: c.reconcile_lookback,
            max_overlap: c.max_overlap,
        }
    }
}

/// What one cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleStats {
    pub windows: u32,
    pub fetched: u64,
    pub new: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub splits: u32,
    /// Activities requests made (windows, cap checks).
    pub requests: u32,
}

/// The poller of one organization.
pub struct ActivityPoller {
    pub org: String,
    pub source: Arc<dyn ActivitySource>,
    pub store: Store,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub wake: watch::Sender<i64>,
    pub clock: Arc<dyn Clock>,
    /// Without a `Date` header: the last `F` used and the steady-clock reading then.
    pub steady_anchor: std::sync::Mutex<Option<(i64, i64)>>,
    /// What this org's answers taught (shared by the poll and sweep loops; persisted).
    pub learned: Arc<Learned>,
    /// Shared by the pollers of the orgs of one API key: one answer read at a time (issue 17).
    pub decode: Arc<DecodePermit>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `meta` key of the date format the API last accepted.
pub const DATE_FORMAT_KEY: &str = "api_date_format";

impl ActivityPoller {
    /// Polls every `interval` until `token` is cancelled. Errors are logged, counted and kept
    /// in `health`; the next cycle retries.
    /// Sweeps run beside the polls, in the same task (`sweep::sweep_loop`).
    pub async fn run(self, token: CancellationToken) {
        let polls = async {
            let mut ticker = tokio::time::interval(self.settings.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let _ = self.cycle_logged(&token).await;
            }
        };
        // Before the polls start: the first one sets the sweeps' baseline (see `sweep_loop`).
        let never_swept = self
            .learned
            .facts
            .get(&self.store, &self.org)
            .await
            .map_or(true, |f| f.last_sweep_ms.is_none());
        tokio::join!(polls, self.sweep_loop(&token, never_swept));
        tracing::debug!(org = %self.org, "activity poller stopped");
    }

    /// `once`: one cycle, then a sweep if one is due or was asked for by what the cycle saw.
    pub async fn once(&self, token: &CancellationToken) -> Result<CycleStats, PollError> {
        let stats = self.cycle_logged(token).await?;
        if self.sweep_due().await? {
            self.sweep_logged(token).await?;
        }
        Ok(stats)
    }

    /// One cycle with its outcome logged, counted and recorded in `health`.
    pub async fn cycle_logged(&self, token: &CancellationToken) -> Result<CycleStats, PollError> {
        match self.cycle(token).await {
            Ok(stats) => {
                self.health.poll_ok(&self.org, STREAM);
                self.metrics
                    .last_success
                    .with_label_values(&[&self.org, STREAM])
                    .set(Utc::now().timestamp() as f64);
                tracing::debug!(org = %self.org, windows = stats.windows, fetched = stats.fetched, new = stats.new, "activity poll done");
                Ok(stats)
            }
            Err(e) => {
                let kind = e.kind();
                self.metrics
                    .poll_errors
                    .with_label_values(&[&self.org, STREAM, kind])
                    .inc();
                self.health
                    .poll_failed(&self.org, STREAM, kind, format!("{e:#}"));
                tracing::error!(org = %self.org, kind, error = %format!("{e:#}"), "activity poll failed; will retry next interval");
                Err(e)
            }
        }
    }

    /// Fetches windows from the cursor to now. Stops early (between windows) on cancel.
    ///
    /// Windows are fetched and stored one after the other. Overlapping the fetch of window k+1
    /// with the store of window k was measured (BENCHMARKS.md): no faster on 2 cores, where the
    /// decoder, SQLite and the emulator already share the CPU, and +40 MiB peak RSS.
    pub async fn cycle(&self, token: &CancellationToken) -> Result<CycleStats, PollError> {
        let s = &self.settings;
        let mut facts = self.begin_cycle().await?;
        let mut day = self.day_mode(&facts);
        let (mut min_window, mut max_window) = self.window_range(day);
        let (mut cursor, mut window) = match self.store.cursor(&self.org, STREAM).await? {
            Some(c) => (
                c.cursor_ms,
                c.window_ms
                    .unwrap_or(max_window)
                    .clamp(min_window, max_window),
            ),
            None => (
                self.clock.now().timestamp_millis() - ms(s.initial_lookback),
                max_window,
            ),
        };
        // An overlap grown by a sweep also reaches back at once: the cursor steps back to
        // `now - overlap` (dedupe drops what is read again).
        // The exporter answers for everything from its first cursor on (a rewind moves it back).
        if facts.horizon_ms.is_none_or(|h| cursor < h) {
            facts = self.learned.facts.update(|f| f.horizon_ms = Some(cursor));
        }
        let overlap = self.overlap_ms(&facts);
        let applied = self
            .learned
            .applied_overlap
            .swap(overlap, std::sync::atomic::Ordering::Relaxed);
        if applied != 0 && overlap > applied {
            cursor = cursor.min(self.clock.now().timestamp_millis() - overlap);
        }
        let mut stats = CycleStats::default();
        // Windows walk from the cursor to now, each starting where the last one ended. The
        // cursor follows them only while each answer was complete (`to <= F - overlap`); the
        // first window that leaves it short freezes it for the rest of the cycle (see the
        // module docs). Walking from the cursor instead re-read the front of the overlap
        // without end once a window held less than `interval + overlap` (soak run, issue 8).
        let mut from = cursor;
        let mut frozen = false;
        while !token.is_cancelled() {
            // What the answers teach applies from the next window on.
            if self.day_mode(&facts) != day {
                day = !day;
                (min_window, max_window) = self.window_range(day);
                window = window.clamp(min_window, max_window);
            }
            let now = self.clock.now().timestamp_millis();
            let (to, wire_to) = self.next_bounds(day, from, window, now, &facts);
            let splittable = !day && window > min_window;
            let sent = self.clock.now();
            let steady_sent = self.clock.elapsed_ms();
            let mode = ReadMode {
                day,
                splittable,
                purpose: Purpose::Poll,
            };
            let cap = splittable.then_some(s.max_response_bytes);
            let read = match self.read_window(from, wire_to, cap, mode, &facts).await {
                Ok(r) => r,
                Err(e) => match e {
                    PollError::Fetch(FetchError::TooLarge { limit, bytes }) => {
                        stats.requests += 1;
                        // At least halve; shrink further when the answer's size is known.
                        let fit =
                            (window as f64 * FILL * limit as f64 / bytes.max(1) as f64) as i64;
                        window = fit.min(window / 2).max(min_window);
                        self.split(&mut stats, cursor, window, max_window).await?;
                        tracing::info!(org = %self.org, limit, bytes, window_s = window / 1000, "activity window too large; splitting it");
                        continue;
                    }
                    e => return Err(e),
                },
            };
            stats.requests += read.requests;
            stats.fetched += read.fetched;
            stats.new += read.new;
            stats.duplicates += read.duplicates;
            stats.quarantined += read.quarantined;
            facts = self.learned.facts.update(|_| {});
            if read.capped && splittable {
                // Read again below the cap from the same `from` (what was read is stored).
                let cap = facts.cap.unwrap_or(read.count).max(2);
                let fit =
                    (window as f64 * FILL * cap as f64 / 2.0 / read.count.max(1) as f64) as i64;
                window = fit.min(window / 2).max(min_window);
                self.split(&mut stats, cursor, window, max_window).await?;
                continue;
            }
            let received = self.clock.now();
            // F: a lower bound of the server's clock when the query ran (see the module docs).
            let f = match read.server_date {
                Some(date) => {
                    (date - (received - sent) - chrono::Duration::seconds(1)).timestamp_millis()
                }
                None => self.steady_bound(sent.timestamp_millis(), steady_sent),
            };
            let complete_to = to.min(f - self.overlap_ms(&facts));
            let new_cursor = if frozen {
                cursor
            } else {
                cursor.max(complete_to)
            };
            frozen |= complete_to < to;
            if read.count > s.split_threshold && splittable {
                stats.splits += 1;
                self.metrics
                    .window_splits
                    .with_label_values(&[&self.org])
                    .inc();
            }
            let sizing = Settings {
                split_threshold: facts
                    .cap
                    .map_or(s.split_threshold, |c| s.split_threshold.min((c / 2).max(1))),
                ..s.clone()
            };
            window = next_window(
                window,
                (to - from).max(1),
                read.count,
                read.body_bytes,
                &sizing,
            )
            .clamp(min_window, max_window);
            if day {
                window = (window / DAY_MS).max(1) * DAY_MS;
            }
            let state = self.cursor_state(new_cursor, window, max_window);
            self.store
                .insert_window(&self.org, STREAM, Vec::new(), Vec::new(), Some(state))
                .await?;
            stats.windows += 1;
            cursor = new_cursor;
            from = to;
            let lag = (Utc::now().timestamp_millis() - cursor) as f64 / 1000.0;
            self.metrics
                .cursor_timestamp
                .with_label_values(&[&self.org])
                .set(cursor as f64 / 1000.0);
            self.metrics
                .cursor_lag
                .with_label_values(&[&self.org])
                .set(lag);
            if to >= now {
                break;
            }
        }
        self.metrics
            .window
            .cycle_requests
            .with_label_values(&[&self.org])
            .set(i64::from(stats.requests));
        self.end_cycle().await?;
        Ok(stats)
    }

    /// The org's overlap: the configured one, grown by observed visibility delays.
    pub(crate) fn overlap_ms(&self, f: &WindowFacts) -> i64 {
        ms(self.settings.overlap).max(f.overlap_ms.min(ms(self.settings.max_overlap)))
    }

    /// `F` without a `Date` header: the local send time, but never more than the last `F`
    /// plus the steady time since, so a wall clock stepping forward cannot skip activities.
    fn steady_bound(&self, sent_ms: i64, steady_ms: i64) -> i64 {
        let mut anchor = self
            .steady_anchor
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let f = match *anchor {
            Some((last_f, last_steady)) => {
                let bound = last_f + (steady_ms - last_steady).max(0);
                if sent_ms > bound + 60_000 {
                    tracing::warn!(org = %self.org, ahead_s = (sent_ms - bound) / 1000, "the system clock moved forward without the API sending a Date header: the cursor follows the steady clock until restart");
                }
                sent_ms.min(bound)
            }
            None => sent_ms,
        };
        *anchor = Some((f, steady_ms));
        f
    }
}

#[cfg(test)]
mod tests;
