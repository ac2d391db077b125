//! The activity poller's metrics: activities fetched, new, duplicate and quarantined, the
//! cursor and its lag, last success, window splits, poll errors, the decode permit wait, and the
//! configured overlap and interval. What answers revealed about the API's windows: `window.rs`.

use super::registry::Def;

pub(super) const ACTIVITIES_FETCHED: Def = Def::new(
    "activities_fetched_total",
    "Activities received from the API (including overlap re-reads).",
    &["org"],
);

pub(super) const ACTIVITIES_NEW: Def = Def::new(
    "activities_new_total",
    "Activities stored for the first time.",
    &["org"],
);

pub(super) const ACTIVITIES_DUPLICATES: Def = Def::new(
    "dedup_dropped_total",
    "Activities dropped because their id was already stored.",
    &["org"],
);

pub(super) const ACTIVITIES_QUARANTINED: Def = Def::new(
    "activities_quarantined_total",
    "Activities newly kept aside because they lack an id or a parseable createdAt (each once, however often it is read again).",
    &["org", "reason"],
);

pub(super) const CURSOR_TIMESTAMP: Def = Def::new(
    "cursor_timestamp_seconds",
    "Activity cursor: everything created before it (minus overlap) is stored.",
    &["org"],
);

pub(super) const CURSOR_LAG: Def = Def::new(
    "cursor_lag_seconds",
    "now - cursor, per organization.",
    &["org"],
);

pub(super) const LAST_SUCCESS: Def = Def::new(
    "last_success_timestamp_seconds",
    "Unix time of the last successful poll, per organization and stream.",
    &["org", "stream"],
);

pub(super) const DECODE_PERMIT_WAIT: Def = Def::new(
    "activities_decode_permit_wait_seconds_total",
    "Seconds the organization's activities reads waited for the decode permit (one answer is read at a time across the organizations of an API key, to bound memory).",
    &["org"],
);

pub(super) const WINDOW_SPLITS: Def = Def::new(
    "window_splits_total",
    "Activity windows split because their answer was too large.",
    &["org"],
);

pub(super) const POLL_ERRORS: Def = Def::new(
    "poll_errors_total",
    "Failed poll cycles by organization, stream and error kind.",
    &["org", "stream", "kind"],
);

pub(super) const OVERLAP_SECONDS: Def = Def::scalar(
    "activities_overlap_seconds",
    "The configured overlap: activities visible later than this after createdAt can be missed.",
);

pub(super) const INTERVAL_SECONDS: Def = Def::scalar(
    "activities_interval_seconds",
    "The configured activity poll interval (alerts compare cursor lag with it).",
);
