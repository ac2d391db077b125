//! Window sizing and bounds: the length range (whole days in day mode), where the next window
//! ends and what `to` is sent, the next length from the last answer's density, and the
//! cursor state a split or a window leaves.

use super::check::{DAY_MS, floor_day};
use super::facts::WindowFacts;
use super::{ActivityPoller, CycleStats, STREAM, Settings, ms};
use crate::config::DateFormat;
use crate::store::CursorState;

impl ActivityPoller {
    /// Keeps the cursor and records a split window (cursor unchanged).
    pub(super) async fn split(
        &self,
        stats: &mut CycleStats,
        cursor: i64,
        window: i64,
        max_window: i64,
    ) -> anyhow::Result<()> {
        stats.splits += 1;
        self.metrics
            .window_splits
            .with_label_values(&[&self.org])
            .inc();
        let state = self.cursor_state(cursor, window, max_window);
        self.store
            .insert_window(&self.org, STREAM, Vec::new(), Vec::new(), Some(state))
            .await?;
        Ok(())
    }

    /// `(min, max)` window length: whole days in day mode.
    pub(super) fn window_range(&self, day: bool) -> (i64, i64) {
        let s = &self.settings;
        let (min, max) = (ms(s.min_window), ms(s.max_window).max(ms(s.min_window)));
        if day {
            (DAY_MS, (max / DAY_MS).max(1) * DAY_MS)
        } else {
            (min, max)
        }
    }

    /// The window's logical end and the `to` sent. In day mode windows end on a UTC midnight
    /// (or now), see `day_wire_to`.
    pub(super) fn next_bounds(
        &self,
        day: bool,
        from: i64,
        window: i64,
        now: i64,
        facts: &WindowFacts,
    ) -> (i64, i64) {
        // A local clock behind the window start (stepped back) must not shrink the windows
        // to a crawl: the server's `Date` still bounds how far the cursor may move.
        if day {
            let end = floor_day(from) + window;
            let to = if now > from { end.min(now) } else { end };
            (to, self.day_wire_to(to, end, facts))
        } else {
            let to = if now > from {
                (from + window).min(now)
            } else {
                from + window
            };
            (to, to)
        }
    }

    /// The `to` sent for a day window ending at `to` (`end` when it reaches the next midnight).
    /// A window ending on midnight asks up to the second before it, so a server reading whole
    /// days does not read the next day too; with date-only bounds, once a `to_date` was seen
    /// to cover its whole day, it asks that last day itself (date-only bounds are otherwise
    /// rounded up to the next day, in case `to_date` means the day's start).
    pub(super) fn day_wire_to(&self, to: i64, end: i64, facts: &WindowFacts) -> i64 {
        if to != end {
            to
        } else if facts.to_date_whole_day && self.source.date_format() == Some(DateFormat::Date) {
            end - DAY_MS
        } else {
            end - 1000
        }
    }

    /// The settings windows are sized with: a learned cap keeps answers at half of it.
    pub(super) fn sizing(&self, facts: &WindowFacts) -> Settings {
        let s = &self.settings;
        Settings {
            split_threshold: facts
                .cap
                .map_or(s.split_threshold, |c| s.split_threshold.min((c / 2).max(1))),
            ..s.clone()
        }
    }

    pub(super) fn cursor_state(&self, cursor_ms: i64, window: i64, max_window: i64) -> CursorState {
        CursorState {
            cursor_ms,
            window_ms: (window < max_window).then_some(window),
        }
    }
}

/// Fraction of the byte cap / split threshold a window aims to fill: close enough to the cap
/// to spend few requests of the shared budget, far enough that density noise rarely overflows.
pub(super) const FILL: f64 = 0.7;

/// The next window length: sized so the answer fills about `FILL` of the caps (at least halved
/// when over the split threshold, at most doubled when small), from this window's answer.
pub(super) fn next_window(window: i64, span: i64, count: usize, bytes: usize, s: &Settings) -> i64 {
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
