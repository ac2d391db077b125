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

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ActivitySource, Clock, FetchError, Fetched};
use crate::config::ActivitiesConfig;
use crate::event::{Event, EventKind};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::{CursorState, NewEvent, Store};

/// The cursor's stream name in the store.
pub const STREAM: &str = "activities";

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
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl ActivityPoller {
    /// Polls every `interval` until `token` is cancelled. Errors are logged, counted and kept
    /// in `health`; the next cycle retries.
    pub async fn run(self, token: CancellationToken) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let _ = self.cycle_logged(&token).await;
        }
        tracing::debug!(org = %self.org, "activity poller stopped");
    }

    /// One cycle with its outcome logged, counted and recorded in `health`.
    pub async fn cycle_logged(
        &self,
        token: &CancellationToken,
    ) -> Result<CycleStats, anyhow::Error> {
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
                let kind = e
                    .downcast_ref::<FetchError>()
                    .map(FetchError::kind)
                    .unwrap_or("state");
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
    pub async fn cycle(&self, token: &CancellationToken) -> anyhow::Result<CycleStats> {
        let s = &self.settings;
        let (min_window, max_window) = (ms(s.min_window), ms(s.max_window).max(ms(s.min_window)));
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
        let mut stats = CycleStats::default();
        // Windows walk from the cursor to now, each starting where the last one ended. The
        // cursor follows them only while each answer was complete (`to <= F - overlap`); the
        // first window that leaves it short freezes it for the rest of the cycle (see the
        // module docs). Walking from the cursor instead re-read the front of the overlap
        // without end once a window held less than `interval + overlap` (soak run, issue 8).
        let mut from = cursor;
        let mut frozen = false;
        while !token.is_cancelled() {
            let now = self.clock.now().timestamp_millis();
            // A local clock behind the window start (stepped back) must not shrink the windows
            // to a crawl: the server's `Date` still bounds how far the cursor may move.
            let to = if now > from {
                (from + window).min(now)
            } else {
                from + window
            };
            let splittable = window > min_window;
            let sent = self.clock.now();
            let steady_sent = self.clock.elapsed_ms();
            let cap = splittable.then_some(s.max_response_bytes);
            let fetched = match self.source.fetch(&self.org, at(from), at(to), cap).await {
                Ok(f) => f,
                Err(FetchError::TooLarge { limit, bytes }) => {
                    // At least halve; shrink further when the answer's size is known.
                    let fit = (window as f64 * FILL * limit as f64 / bytes.max(1) as f64) as i64;
                    window = fit.min(window / 2).max(min_window);
                    stats.splits += 1;
                    self.metrics
                        .window_splits
                        .with_label_values(&[&self.org])
                        .inc();
                    tracing::info!(org = %self.org, limit, bytes, window_s = window / 1000, "activity window too large; splitting it");
                    let state = self.cursor_state(cursor, window, max_window);
                    self.store
                        .insert_window(&self.org, STREAM, Vec::new(), Vec::new(), Some(state))
                        .await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let received = self.clock.now();
            // F: a lower bound of the server's clock when the query ran (see the module docs).
            let f = match fetched.server_date {
                Some(date) => {
                    (date - (received - sent) - chrono::Duration::seconds(1)).timestamp_millis()
                }
                None => self.steady_bound(sent.timestamp_millis(), steady_sent),
            };
            let complete_to = to.min(f - ms(s.overlap));
            let new_cursor = if frozen {
                cursor
            } else {
                cursor.max(complete_to)
            };
            frozen |= complete_to < to;
            let (count, bytes) = (fetched.activities.len(), fetched.body_bytes);
            if count > s.split_threshold && splittable {
                stats.splits += 1;
                self.metrics
                    .window_splits
                    .with_label_values(&[&self.org])
                    .inc();
            }
            window = next_window(window, (to - from).max(1), count, bytes, s)
                .clamp(min_window, max_window);
            let state = self.cursor_state(new_cursor, window, max_window);
            stats.add(store_window(self.writer(), fetched, state).await?);
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
        Ok(stats)
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

    fn writer(&self) -> Writer {
        Writer {
            org: self.org.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
        }
    }

    fn cursor_state(&self, cursor_ms: i64, window: i64, max_window: i64) -> CursorState {
        CursorState {
            cursor_ms,
            window_ms: (window < max_window).then_some(window),
        }
    }
}

/// Fraction of the byte cap / split threshold a window aims to fill: close enough to the cap
/// to spend few requests of the shared budget, far enough that density noise rarely overflows.
const FILL: f64 = 0.7;

/// The next window length: sized so the answer fills about `FILL` of the caps (at least halved
/// when over the split threshold, at most doubled when small), from this window's answer.
fn next_window(window: i64, span: i64, count: usize, bytes: usize, s: &Settings) -> i64 {
    let by_bytes = if bytes > 0 {
        span as f64 * FILL * s.max_response_bytes as f64 / bytes as f64
    } else {
        f64::MAX
    };
    let by_count = if count > 0 {
        span as f64 * FILL * s.split_threshold as f64 / count as f64
    } else {
        f64::MAX
    };
    let fit = by_bytes.min(by_count);
    if count > s.split_threshold {
        (fit as i64).min(window / 2)
    } else if fit >= (2 * window) as f64 {
        window * 2
    } else if span < window {
        // A short live-edge window says little about density: keep the length.
        window
    } else {
        (fit as i64).max(window / 2)
    }
}

/// What one stored window added.
#[derive(Debug, Default, Clone, Copy)]
struct WindowStats {
    fetched: u64,
    new: u64,
    duplicates: u64,
    quarantined: u64,
}

impl CycleStats {
    fn add(&mut self, w: WindowStats) {
        self.fetched += w.fetched;
        self.new += w.new;
        self.duplicates += w.duplicates;
        self.quarantined += w.quarantined;
    }
}

/// What storing a window needs.
struct Writer {
    org: String,
    store: Store,
    metrics: Arc<Metrics>,
    wake: watch::Sender<i64>,
}

/// Sorts the window by createdAt, stores it and the new cursor in one transaction, counts,
/// and wakes the sinks.
async fn store_window(
    w: Writer,
    fetched: Fetched,
    cursor: CursorState,
) -> anyhow::Result<WindowStats> {
    let Fetched {
        mut activities,
        quarantined,
        ..
    } = fetched;
    activities.sort_unstable_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let fetched_count = activities.len() as u64;
    let events: Vec<NewEvent> = activities
        .into_iter()
        .map(|a| NewEvent {
            occurred_ms: a.created_at.timestamp_millis(),
            event_id: Event::activity_id(&w.org, &a.id),
            kind: EventKind::Activity,
            org_id: w.org.clone(),
            occurred_at: a.created_at_raw,
            payload: a.raw,
        })
        .collect();
    for q in &quarantined {
        w.metrics
            .activities_quarantined
            .with_label_values(&[&w.org, &q.reason])
            .inc();
    }
    let reasons: Vec<String> = quarantined.iter().map(|q| q.reason.clone()).collect();
    let inserted = w
        .store
        .insert_window(&w.org, STREAM, events, quarantined, Some(cursor))
        .await?;
    if inserted.quarantined_new > 0 {
        tracing::warn!(org = %w.org, count = inserted.quarantined_new, ?reasons, "activities without a usable id or createdAt were quarantined in the state DB (not exported); see `state show`");
    }
    w.metrics
        .activities_fetched
        .with_label_values(&[&w.org])
        .inc_by(fetched_count);
    w.metrics
        .activities_new
        .with_label_values(&[&w.org])
        .inc_by(inserted.new);
    w.metrics
        .activities_duplicates
        .with_label_values(&[&w.org])
        .inc_by(inserted.duplicates);
    if inserted.new > 0 {
        w.wake.send_replace(inserted.max_seq);
    }
    Ok(WindowStats {
        fetched: fetched_count,
        new: inserted.new,
        duplicates: inserted.duplicates,
        quarantined: inserted.quarantined_new,
    })
}

#[cfg(test)]
mod tests;
