//! The API client's metrics (`api_*`): requests, durations, 429s and rate-limiter waits,
//! retries, decode failures, bytes, date-format step-downs and failed calls, by endpoint.

use super::registry::{DURATION_BUCKETS, Def};

pub(super) const API_REQUESTS: Def = Def::new(
    "api_requests_total",
    "API requests by endpoint and HTTP status class (2xx, 4xx, 5xx, error).",
    &["endpoint", "status_class"],
);

pub(super) const API_REQUEST_DURATION: Def = Def::new(
    "api_request_duration_seconds",
    "API request duration, headers to full body.",
    &["endpoint"],
)
.buckets(DURATION_BUCKETS);

pub(super) const API_RATE_LIMITED: Def = Def::new(
    "api_rate_limited_total",
    "429 Too Many Requests answers received.",
    &["endpoint"],
);

pub(super) const API_RATE_LIMIT_WAIT_SECONDS: Def = Def::new(
    "api_rate_limit_wait_seconds_total",
    "Seconds spent waiting for the shared rate limiter or a 429 reset.",
    &["reason"],
);

pub(super) const API_RETRIES: Def = Def::new(
    "api_retries_total",
    "API requests retried after a transient failure.",
    &["endpoint"],
);

pub(super) const API_DECODE_FAILURES: Def = Def::new(
    "api_decode_failures_total",
    "API responses that could not be decoded (truncated, malformed, wrong shape).",
    &["endpoint"],
);

pub(super) const API_BYTES_RECEIVED: Def = Def::new(
    "api_bytes_received_total",
    "Response body bytes received from the API.",
    &["endpoint"],
);

pub(super) const API_DATE_FORMAT_FALLBACKS: Def = Def::new(
    "api_date_format_fallback_total",
    "Times the API rejected the activity window's date format (400) and the client stepped down one format (rfc3339 -> naive -> date), by from and to format.",
    &["from", "to"],
);

pub(super) const API_ERRORS: Def = Def::new(
    "api_errors_total",
    "API calls that failed for good, by error kind.",
    &["endpoint", "kind"],
);

// Per API key of ours (issue 16): each key has its own budget, so its requests, 429s and waits
// are counted by `key` (the key's configured or derived name, never its secret). The own-key
// watch's gauges are `api_own_key_*`: `api_key_expiry_timestamp_seconds{org,key_id,key_name}`
// is the inventory's, of every key of an organization.

pub(super) const API_KEY_REQUESTS: Def = Def::new(
    "api_key_requests_total",
    "API requests by API key (its configured name) and HTTP status class.",
    &["key", "status_class"],
);

pub(super) const API_KEY_RATE_LIMITED: Def = Def::new(
    "api_key_rate_limited_total",
    "429 Too Many Requests answers received, by API key.",
    &["key"],
);

pub(super) const API_KEY_RATE_LIMIT_WAIT_SECONDS: Def = Def::new(
    "api_key_rate_limit_wait_seconds_total",
    "Seconds spent waiting for a key's own rate limiter or a 429 reset, by API key.",
    &["key"],
);

pub(super) const API_OWN_KEY_EXPIRY: Def = Def::new(
    "api_own_key_expiry_timestamp_seconds",
    "When each of the exporter's own API keys expires (its expireAt, Unix seconds); absent for a key that never expires or whose record is unreadable.",
    &["key"],
);

pub(super) const API_OWN_KEY_STATE: Def = Def::new(
    "api_own_key_state",
    "Each of the exporter's own API keys' state as last read: 1 for the current one of enabled, disabled, deleted, refused (401), unknown (record unreadable).",
    &["key", "state"],
);

pub(super) const API_KEY_ORGANIZATIONS: Def = Def::new(
    "api_key_organizations",
    "Organizations polled through each API key (an organization reachable through several keys counts for the first in config order).",
    &["key"],
);
