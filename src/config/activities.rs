//! `[activities]`: the audit-log poller's knobs (interval, overlap, windows, answer caps,
//! sweeps) with their defaults, and the checks serde cannot make on them. Data only;
//! `poller::activities` reads it (`Settings::from`).

use std::time::Duration;

use serde::Deserialize;

use crate::values::{ConfigError, KeyPath};

/// One day in seconds, for the upper bounds below and what the poller may re-read.
const DAY: u64 = 86_400;

/// `[activities]`: the audit-log poller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesConfig {
    /// Poll the audit log at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between polls of one organization.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// How long after its `createdAt` an activity may become visible and still be read by the
    /// polls (later ones are left to sweeps). How the cursor uses it: `poller::activities`.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
    /// Where a fresh state starts: `now - initial_lookback`.
    #[serde(default = "default_initial_lookback", with = "humantime_serde")]
    pub initial_lookback: Duration,
    /// Longer ranges are split and fetched oldest first.
    #[serde(default = "default_max_window", with = "humantime_serde")]
    pub max_window: Duration,
    /// A window answering more activities than this is split in halves from then on
    /// (the API has no pagination). Answers are streamed into the store, so this bounds the
    /// cost of a re-read, not memory: larger windows spend fewer requests of the budget.
    #[serde(default = "default_split_threshold")]
    pub split_threshold: usize,
    /// Stop reading an answer past this size and split the window instead (refused from its
    /// `Content-Length` before a byte is read; a one-second window is always read whole).
    /// Memory does not depend on it: every answer is stored in chunks while it is read.
    #[serde(
        default = "default_max_response_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub max_response_bytes: u64,
    /// How often each organization's recent past is re-read in wide windows (a self-verifying
    /// sweep that stores whatever the polls missed); `"0s"` turns sweeps off.
    #[serde(default = "default_reconcile_interval", with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How far back a sweep re-reads (widened by a day towards the past, so a zone reading of
    /// the bounds is covered).
    #[serde(default = "default_reconcile_lookback", with = "humantime_serde")]
    pub reconcile_lookback: Duration,
    /// Observed visibility delays grow the poll's overlap up to this.
    #[serde(default = "default_max_overlap", with = "humantime_serde")]
    pub max_overlap: Duration,
}

fn default_reconcile_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_reconcile_lookback() -> Duration {
    Duration::from_secs(2 * 86400)
}
fn default_max_overlap() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_max_response_bytes() -> u64 {
    256 << 20
}

fn yes() -> bool {
    true
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_overlap() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_initial_lookback() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_max_window() -> Duration {
    Duration::from_secs(86400)
}
fn default_split_threshold() -> usize {
    250_000
}

impl Default for ActivitiesConfig {
    fn default() -> Self {
        ActivitiesConfig {
            enabled: true,
            interval: default_interval(),
            overlap: default_overlap(),
            initial_lookback: default_initial_lookback(),
            max_window: default_max_window(),
            split_threshold: default_split_threshold(),
            max_response_bytes: default_max_response_bytes(),
            reconcile_interval: default_reconcile_interval(),
            reconcile_lookback: default_reconcile_lookback(),
            max_overlap: default_max_overlap(),
        }
    }
}

impl ActivitiesConfig {
    /// Checks values serde cannot: non-zero interval and window, upper bounds, and the
    /// relations between overlap, max_overlap and the sweep settings.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at = KeyPath::section("activities");
        at.nonzero("interval", self.interval)?;
        at.nonzero("max_window", self.max_window)?;
        self.within_upper_bounds(&at)?;
        if self.split_threshold == 0 {
            return Err(at.err("split_threshold", 0, "must be at least 1"));
        }
        if self.max_overlap < self.overlap {
            return Err(at.err(
                "max_overlap",
                format!("\"{}\"", humantime::format_duration(self.max_overlap)),
                "must be at least activities.overlap (observed delays only ever grow the overlap)",
            ));
        }
        if self.reconcile_interval > Duration::ZERO && self.reconcile_lookback.is_zero() {
            return Err(at.err(
                "reconcile_lookback",
                "\"0s\"",
                "must be positive while activities.reconcile_interval is on (\"0s\" turns sweeps off)",
            ));
        }
        Ok(())
    }

    /// Upper bounds keep the poller's millisecond arithmetic far from i64 overflow (an absurd
    /// `max_window = "500000000y"` passed validation, found while fuzzing, issue 8).
    fn within_upper_bounds(&self, at: &KeyPath) -> Result<(), ConfigError> {
        for (key, d, max) in [
            ("interval", self.interval, DAY),
            ("overlap", self.overlap, 7 * DAY),
            ("max_overlap", self.max_overlap, 7 * DAY),
            ("reconcile_interval", self.reconcile_interval, 30 * DAY),
            ("reconcile_lookback", self.reconcile_lookback, 366 * DAY),
            ("max_window", self.max_window, 366 * DAY),
            ("initial_lookback", self.initial_lookback, 3660 * DAY),
        ] {
            if d > Duration::from_secs(max) {
                return Err(at.err(
                    key,
                    format!("\"{}\"", humantime::format_duration(d)),
                    format!(
                        "must be at most {}",
                        humantime::format_duration(Duration::from_secs(max))
                    ),
                ));
            }
        }
        Ok(())
    }

    /// How far back the poller may read again what it already stored: a poll's (grown)
    /// overlap, a day-mode window (up to two whole days) and, with sweeps on, a sweep's
    /// lookback plus one day. Dedupe keys must outlive it, or a re-read is exported again.
    /// Validated values keep the sum far from overflow.
    pub(super) fn reread(&self) -> Duration {
        self.max_overlap.max(self.overlap)
            + Duration::from_secs(2 * DAY)
            + if self.reconcile_interval.is_zero() {
                Duration::ZERO
            } else {
                self.reconcile_lookback + Duration::from_secs(DAY)
            }
    }
}
